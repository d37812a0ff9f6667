package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"statscache/cmd/statscache/kojitest"
	"statscache/engine/archive/dgtest"
	"statscache/engine/bus"
	"statscache/scripts"
)

// cmdDemo runs the daemon against a local bus publisher and a local
// archive, both serving the bundled real messages, so a new user sees live
// statistics with no network. The tests use the same pieces.
func cmdDemo(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fset := flag.NewFlagSet("demo", flag.ContinueOnError)
	fset.SetOutput(stderr)
	var cfg daemonConfig
	buses, topics := &listFlag{}, &listFlag{}
	var epoch string
	daemonFlags(fset, &cfg, buses, topics, &epoch)
	fset.Lookup("db").DefValue = "./statscache-demo.db"
	cfg.db = "./statscache-demo.db"
	fset.Lookup("scripts").DefValue = "./scripts if that folder exists, else embedded"
	cfg.scripts = ""
	rate := fset.Duration("every", 500*time.Millisecond, "how often the local publisher sends a message")
	fset.Usage = func() {
		fmt.Fprintln(stderr, "usage: statscache demo [flags]\n\nThe daemon over a local fedmsg publisher and a local datagrepper, both\nserving the bundled sample of real bus messages: the archive holds the last\nhour of history, the publisher sends a message every half second. A local\nstand-in for Koji hub answers the build-durations model (unless --service\nkoji=URL is given).\n\nFlags:")
		fset.PrintDefaults()
	}
	if err := fset.Parse(args); err != nil {
		return 2
	}
	cfg.scripts = demoScripts(cfg.scripts, cfg.db, stderr)
	recs, err := sampleRecords()
	if err != nil {
		fmt.Fprintln(stderr, "statscache demo:", err)
		return 1
	}
	now := time.Now()
	// The archive: the sample spread over the hour before now.
	var history [][]byte
	for i, r := range recs {
		t := now.Add(-time.Hour).Add(time.Duration(i) * time.Hour / time.Duration(len(recs)+1))
		history = append(history, retime(r, t, false))
	}
	dg := dgtest.New(history, dgtest.Options{})
	defer dg.Close()
	pub, err := bus.NewPublisher(ctx, "tcp://127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(stderr, "statscache demo:", err)
		return 1
	}
	defer pub.Close()
	go func() {
		t := time.NewTicker(*rate)
		defer t.Stop()
		for i := 0; ; i++ {
			select {
			case <-t.C:
			case <-ctx.Done():
				return
			}
			env := retime(recs[i%len(recs)], time.Now(), true)
			var m struct {
				Topic string `json:"topic"`
			}
			json.Unmarshal(env, &m)
			pub.Publish(m.Topic, env)
		}
	}()
	if cfg.services.urls["koji"] == "" {
		// A local stand-in for Koji hub, for the build-durations model.
		url, stop, err := serveKoji(ctx)
		if err != nil {
			fmt.Fprintln(stderr, "statscache demo:", err)
			return 1
		}
		defer stop()
		cfg.services.Set("koji=" + url)
	}
	cfg.buses = []string{pub.Endpoint()}
	cfg.topics = topics.vals
	cfg.datagrepper = dg.URL
	if epoch == "" {
		epoch = now.Add(-time.Hour).UTC().Format(time.RFC3339)
	}
	if fset.Lookup("settle").Value.String() == (2 * time.Minute).String() {
		cfg.settle = 2 * time.Second // the local archive has everything at once
	}
	return runDaemon(ctx, cfg, epoch, stdout, stderr)
}

// demoScripts chooses the demo's models and says which: the folder given
// with --scripts, else ./scripts when it exists (an analyst's first hour is
// spent there: copy an example, "statscache test", drop it in, reload),
// else the shipped models embedded in the binary, which a reload cannot
// change.
func demoScripts(given, db string, stderr io.Writer) string {
	dir := given
	if dir == "" {
		if st, err := os.Stat("scripts"); err != nil || !st.IsDir() {
			fmt.Fprintln(stderr, "statscache demo: running the shipped models embedded in the binary (there is no ./scripts folder here).")
			fmt.Fprintln(stderr, "  To write your own models, start the demo in a folder that has a scripts/ folder (the repository's own")
			fmt.Fprintln(stderr, "  scripts/ is one) or pass --scripts DIR: the demo then loads that folder, and a reload picks up your changes.")
			return "embedded"
		}
		dir = "./scripts"
	}
	if dir == "embedded" {
		fmt.Fprintln(stderr, "statscache demo: running the shipped models embedded in the binary (--scripts embedded); a reload has nothing to load.")
		return dir
	}
	n := 0
	if files, err := filepath.Glob(filepath.Join(dir, "*.lua")); err == nil {
		n = len(files)
	}
	fmt.Fprintf(stderr, "statscache demo: loading the models of %s (%d scripts). Edit or add a script there, then send SIGHUP\n", dir, n)
	fmt.Fprintf(stderr, "  or run \"statscache reload --db %s\" to reload; \"statscache test --scripts %s\" checks them first.\n", db, dir)
	return dir
}

// serveKoji serves kojitest's stand-in for Koji hub on a loopback port,
// answering like a busy hub (tens of milliseconds a call).
func serveKoji(ctx context.Context) (url string, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, fmt.Errorf("koji stand-in: %w", err)
	}
	srv := &http.Server{Handler: kojitest.New(kojitest.Options{Delay: 40 * time.Millisecond}), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	return "http://" + ln.Addr().String() + "/kojihub", func() { srv.Close() }, nil
}

// sampleRecords returns the bundled sample, one raw record per element.
func sampleRecords() ([][]byte, error) {
	data, err := scripts.FS.ReadFile(scripts.SamplePath)
	if err != nil {
		return nil, fmt.Errorf("bundled sample: %w", err)
	}
	var out [][]byte
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		out = append(out, append([]byte(nil), sc.Bytes()...))
	}
	return out, sc.Err()
}

// retime gives a sample record a fresh id and time t; envelope makes it a
// fedmsg envelope (integer timestamp, as fedmsg publishes).
func retime(rec []byte, t time.Time, envelope bool) []byte {
	var m map[string]any
	if err := json.Unmarshal(rec, &m); err != nil {
		return rec
	}
	var u [16]byte
	rand.Read(u[:])
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	m["msg_id"] = fmt.Sprintf("%d-%x-%x-%x-%x-%x", t.Year(), u[0:4], u[4:6], u[6:8], u[8:10], u[10:])
	if envelope {
		m["timestamp"] = t.Unix()
		delete(m, "source_name")
		delete(m, "source_version")
	} else {
		m["timestamp"] = float64(t.Unix())
	}
	b, _ := json.Marshal(m)
	return b
}
