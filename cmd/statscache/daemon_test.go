package main

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"statscache/cmd/statscache/kojitest"
	"statscache/engine/archive/dgtest"
	"statscache/engine/bus"
)

// corpus holds generated records and an independent recount of them.
type corpus struct {
	rng  *rand.Rand
	tpl  [][]byte
	seen map[string]bool
	all  []map[string]any // unique accepted records
}

func newCorpus(t *testing.T, seed int64) *corpus {
	recs, err := sampleRecords()
	if err != nil {
		t.Fatal(err)
	}
	return &corpus{rng: rand.New(rand.NewSource(seed)), tpl: recs, seen: map[string]bool{}}
}

// record makes a record at time t from a random sample template; with
// envelope it is a fedmsg envelope (integer timestamp).
func (c *corpus) record(t time.Time, envelope bool) (topic string, rec []byte) {
	var m map[string]any
	json.Unmarshal(c.tpl[c.rng.Intn(len(c.tpl))], &m)
	id := fmt.Sprintf("%d-%08x-%04x-4%03x-a%03x-%012x", t.Year(), c.rng.Uint32(), c.rng.Intn(1<<16), c.rng.Intn(1<<12), c.rng.Intn(1<<12), c.rng.Int63n(1<<48))
	m["msg_id"] = id
	if envelope {
		m["timestamp"] = t.Unix()
	} else {
		m["timestamp"] = float64(t.Unix())
	}
	b, _ := json.Marshal(m)
	key := id[5:]
	if !c.seen[key] {
		c.seen[key] = true
		rec := map[string]any{"topic": m["topic"], "timestamp": float64(t.Unix())}
		if body, ok := m["msg"].(map[string]any); ok && strings.HasSuffix(m["topic"].(string), "buildsys.build.state.change") {
			if st, _ := body["new"].(float64); st == 1 || st == 3 {
				rec["finished_build"] = true
			}
		}
		c.all = append(c.all, rec)
	}
	return m["topic"].(string), b
}

// recount counts the unique records per (1h bucket end, category) and per
// 1m bucket end, written out independently of the engine.
func (c *corpus) recount() (byCat map[string]int64, byMin map[string]int64) {
	byCat, byMin = map[string]int64{}, map[string]int64{}
	for _, m := range c.all {
		ts := m["timestamp"].(float64)
		cat := "Unclassified"
		if p := strings.Split(m["topic"].(string), "."); len(p) > 3 {
			cat = p[3]
		}
		byCat[fmt.Sprintf("%.0f|%s", math.Floor(ts/3600)*3600+3600, cat)]++
		byMin[fmt.Sprintf("%.0f", math.Floor(ts/60)*60+60)]++
	}
	return byCat, byMin
}

// tables reads the same counts from a database file.
func tables(t *testing.T, path string) (byCat map[string]int64, byMin map[string]int64) {
	db := openDB(t, path)
	defer db.Close()
	byCat, byMin = map[string]int64{}, map[string]int64{}
	read := func(q string, into map[string]int64, key func(ts float64, cat string) string) {
		rows, err := db.Query(q)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var ts float64
			var cat string
			var n int64
			if err := rows.Scan(&ts, &cat, &n); err != nil {
				t.Fatal(err)
			}
			into[key(ts, cat)] = n
		}
	}
	read(`SELECT timestamp, category, volume FROM model_volume_by_category_1h`, byCat,
		func(ts float64, cat string) string { return fmt.Sprintf("%.0f|%s", ts, cat) })
	read(`SELECT timestamp, '', volume FROM model_volume_1m`, byMin,
		func(ts float64, _ string) string { return fmt.Sprintf("%.0f", ts) })
	return byCat, byMin
}

func sameCounts(t *testing.T, what string, got, want map[string]int64) {
	t.Helper()
	bad := 0
	for k, w := range want {
		if got[k] != w {
			bad++
			if bad <= 5 {
				t.Errorf("%s %s: table has %d, recount %d", what, k, got[k], w)
			}
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			bad++
			if bad <= 5 {
				t.Errorf("%s %s: table has %d, not in the recount", what, k, g)
			}
		}
	}
	if bad > 5 {
		t.Errorf("%s: %d buckets differ", what, bad)
	}
}

// daemonProc is a "statscache run" child process.
type daemonProc struct {
	cmd  *exec.Cmd
	addr string
	out  *syncBuffer
	done chan error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var runningRe = regexp.MustCompile(`statscache is running: http://([0-9.:]+)/`)

func startDaemon(t testing.TB, args ...string) *daemonProc {
	t.Helper()
	return startProc(t, "daemon", command(append([]string{"run", "--listen", "127.0.0.1:0", "--log-level", "debug"}, args...)...))
}

// startProc starts a "run" or "demo" process and waits until it says
// where it serves.
func startProc(t testing.TB, what string, cmd *exec.Cmd) *daemonProc {
	t.Helper()
	d := &daemonProc{cmd: cmd, out: &syncBuffer{}, done: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = d.out, d.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.done <- cmd.Wait() }()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if m := runningRe.FindStringSubmatch(d.out.String()); m != nil {
			d.addr = m[1]
			return d
		}
		select {
		case err := <-d.done:
			t.Fatalf("%s exited: %v\n%s", what, err, d.out.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("%s did not start:\n%s", what, d.out.String())
	return nil
}

func (d *daemonProc) stop(t testing.TB) {
	t.Helper()
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-d.done:
		if err != nil {
			t.Fatalf("daemon exited with %v\n%s", err, d.out.String())
		}
	case <-time.After(30 * time.Second):
		d.cmd.Process.Kill()
		t.Fatalf("daemon did not stop on SIGTERM\n%s", d.out.String())
	}
}

func (d *daemonProc) status(t testing.TB) map[string]any {
	resp, err := http.Get("http://" + d.addr + "/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st map[string]any
	json.NewDecoder(resp.Body).Decode(&st)
	return st
}

// total sums volume-1m through the API: the number of messages every
// model has counted so far.
func (d *daemonProc) total(t *testing.T) int64 {
	var sum int64
	url := "http://" + d.addr + "/api/volume-1m?order=asc"
	next := regexp.MustCompile(`<([^>]+)>; rel="next"`)
	for url != "" {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		var rows []struct{ Volume int64 }
		json.NewDecoder(resp.Body).Decode(&rows)
		resp.Body.Close()
		for _, r := range rows {
			sum += r.Volume
		}
		url = ""
		if m := next.FindStringSubmatch(resp.Header.Get("Link")); m != nil {
			url = "http://" + d.addr + m[1]
		}
	}
	return sum
}

// waitTotal waits until volume-1m and volume-by-category-1h, the tables
// the tests compare, have both counted want messages. (Models run
// independently: one can be ahead of another at any instant.)
func (d *daemonProc) waitTotal(t *testing.T, want int64) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var got int64
	for time.Now().Before(deadline) {
		if got = d.total(t); got == want && sumVolume(t, d.addr, "volume-by-category-1h") == want {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("models counted %d messages, want %d\nstatus: %v\n%s", got, want, d.status(t), tail(d.out.String(), 40))
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// libzmqPublisher starts a real libzmq PUB socket (Debian's python3-zmq)
// that publishes the "topic\tenvelope" lines written to its stdin.
func libzmqPublisher(t *testing.T) (endpoint string, in io.WriteCloser, wait func()) {
	t.Helper()
	return startLibzmqPublisher(t, 2*time.Millisecond)
}

// startLibzmqPublisher is libzmqPublisher with the pause after each
// message given: none for a caller that paces the lines itself.
func startLibzmqPublisher(t testing.TB, pause time.Duration) (endpoint string, in io.WriteCloser, wait func()) {
	t.Helper()
	if _, err := exec.Command("/usr/bin/python3", "-c", "import zmq").CombinedOutput(); err != nil {
		if os.Getenv("STATSCACHE_SKIP_LIBZMQ") == "1" {
			t.Skip("python3-zmq missing and STATSCACHE_SKIP_LIBZMQ=1")
		}
		t.Fatalf("python3-zmq is needed (apt-get install python3-zmq): %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	script := `
import sys, time, zmq
ctx = zmq.Context()
s = ctx.socket(zmq.PUB)
s.setsockopt(zmq.SNDHWM, 100000)
s.bind("tcp://127.0.0.1:%d" % int(sys.argv[1]))
pause = float(sys.argv[2])
print("ready", flush=True)
for line in sys.stdin:
    line = line.rstrip("\n")
    if not line:
        continue
    topic, env = line.split("\t", 1)
    s.send_multipart([topic.encode(), env.encode()])
    if pause > 0:
        time.sleep(pause)
time.sleep(0.5)
s.close(linger=1000)
`
	cmd := exec.Command("/usr/bin/python3", "-c", script, fmt.Sprint(port), fmt.Sprint(pause.Seconds()))
	in, _ = cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if line, _ := bufio.NewReader(out).ReadString('\n'); !strings.HasPrefix(line, "ready") {
		t.Fatalf("python publisher: %q", line)
	}
	return fmt.Sprintf("tcp://127.0.0.1:%d", port), in, func() { cmd.Wait() }
}

// waitConnected waits until the daemon's subscriber holds n connections.
func (d *daemonProc) waitConnected(t testing.TB, n float64) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if b, ok := d.status(t)["bus"].(map[string]any); ok {
			if st, ok := b["stats"].(map[string]any); ok && st["Connected"].(float64) >= n {
				time.Sleep(300 * time.Millisecond) // the subscription follows the connection
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("bus not connected:\n%s", tail(d.out.String(), 20))
}

// TestDaemonLiveArchiveAndRestart runs the daemon over a zmq4 and a libzmq
// publisher while the archive holds older history, stops it, publishes
// while it is down (those messages reach only the archive), restarts it,
// and checks every count against an independent recount: the gap is
// filled and nothing is counted twice across the seams. Bad bus input is
// rejected with counted reasons and loses nothing else.
func TestDaemonLiveArchiveAndRestart(t *testing.T) {
	c := newCorpus(t, 42)
	now := time.Now()
	var history [][]byte
	for i := 0; i < 1500; i++ {
		ts := now.Add(-50 * time.Minute).Add(time.Duration(i) * 40 * time.Minute / 1500).Truncate(time.Second)
		_, rec := c.record(ts, false)
		history = append(history, rec)
	}
	dg := dgtest.New(history, dgtest.Options{})
	defer dg.Close()
	ctx := context.Background()
	pub, err := bus.NewPublisher(ctx, "tcp://127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	pyEP, pyIn, pyWait := libzmqPublisher(t)

	// build-durations looks finished builds up in a slow, flaky Koji.
	koji := httptest.NewServer(kojitest.New(kojitest.Options{Delay: 20 * time.Millisecond, FailEvery: 7}))
	defer koji.Close()

	db := filepath.Join(t.TempDir(), "live.db")
	args := []string{"--db", db, "--scripts", "../../scripts", "--bus", pub.Endpoint(), "--bus", pyEP,
		"--datagrepper", dg.URL, "--epoch", now.Add(-time.Hour).Format(time.RFC3339),
		"--settle", "1s", "--lateness", "2s", "--batch-interval", "100ms", "--max-bytes", "65536",
		"--service", "koji=" + koji.URL + "/kojihub"}
	d := startDaemon(t, args...)
	d.waitConnected(t, 2)

	// One live message in four never reaches the archive: only the bus
	// delivers it, so a bus that loses messages fails the recount (the
	// archive fill cannot make up for it).
	busOnly := 0
	publish := func(n int, libzmq bool) {
		for i := 0; i < n; i++ {
			topic, env := c.record(time.Now(), true)
			if i%4 == 3 {
				busOnly++
			} else {
				dg.Add(env) // the archive gets the others, as datanommer does
			}
			if libzmq && i%2 == 1 {
				fmt.Fprintf(pyIn, "%s\t%s\n", topic, env)
			} else if err := pub.Publish(topic, env); err != nil {
				t.Fatal(err)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	publish(300, true)
	// Bad input: wrong frame count, topic mismatch, invalid JSON, a huge
	// body, deep nesting, missing fields.
	_, good := c.record(time.Now(), true)
	var goodMsg map[string]any
	json.Unmarshal(good, &goodMsg)
	c.all = c.all[:len(c.all)-1] // never published as is
	pub.PublishFrames([]byte("a"), []byte("b"), []byte("c"))
	pub.Publish("org.fedoraproject.prod.wrong.topic", good)
	pub.Publish("org.fedoraproject.prod.x.y", []byte("{not json"))
	pub.Publish("org.fedoraproject.prod.x.y", []byte(`{"msg_id":"2026-huge","topic":"org.fedoraproject.prod.x.y","timestamp":1,"msg":{"blob":"`+strings.Repeat("x", 70000)+`"}}`))
	pub.Publish("org.fedoraproject.prod.x.y", []byte(`{"msg_id":"2026-deep","topic":"org.fedoraproject.prod.x.y","timestamp":1,"msg":`+strings.Repeat("[", 100)+strings.Repeat("]", 100)+`}`))
	pub.Publish("org.fedoraproject.prod.x.y", []byte(`{"topic":"org.fedoraproject.prod.x.y","msg":{}}`))
	publish(50, false)
	d.waitTotal(t, int64(len(c.all)))
	metrics := get(t, "http://"+d.addr+"/metrics")
	m := regexp.MustCompile(`statscache_messages_rejected_total\{source="bus"\} ([56])\b`).FindStringSubmatch(metrics)
	if m == nil {
		t.Errorf("bus rejects not counted as 5 or 6 (a 3-frame message may be counted by the transport):\n%s", grep(metrics, "rejected"))
	}
	checkRejectLogs(t, d.out.String(), m)
	d.stop(t)

	// While the daemon is down, messages reach only the archive.
	for i := 0; i < 200; i++ {
		_, env := c.record(time.Now(), true)
		dg.Add(env)
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(1100 * time.Millisecond)

	d = startDaemon(t, args...)
	d.waitConnected(t, 2)
	publish(200, true)
	d.waitTotal(t, int64(len(c.all)))
	wantBuilds := c.recountBuilds()
	d.waitBuilds(t, db, wantBuilds)
	d.stop(t)
	pyIn.Close()
	pyWait()

	wantCat, wantMin := c.recount()
	gotCat, gotMin := tables(t, db)
	sameCounts(t, "volume-by-category-1h", gotCat, wantCat)
	sameCounts(t, "volume-1m", gotMin, wantMin)
	if busOnly < 100 {
		t.Errorf("only %d messages went to the bus alone", busOnly)
	}
	if len(wantBuilds) == 0 {
		t.Fatal("the corpus has no finished builds: build-durations was not exercised")
	}
	sameCounts(t, "build-durations-1h", buildCounts(t, db), wantBuilds)
}

// checkRejectLogs checks the daemon's log lines of the bad bus messages
// published above: one "bus: message rejected" line per rejected message,
// each with its reason and the detail that tells them apart, as many as
// the metric counted (counted[1]).
func checkRejectLogs(t *testing.T, log string, counted []string) {
	t.Helper()
	reasonRe := regexp.MustCompile(`reason=("[^"]*"|\S+)`)
	var lines []string
	byReason := map[string]int{}
	for _, line := range strings.Split(log, "\n") {
		if !strings.Contains(line, `msg="bus: message rejected"`) {
			continue
		}
		lines = append(lines, line)
		if m := reasonRe.FindStringSubmatch(line); m != nil {
			byReason[strings.Trim(m[1], `"`)]++
		}
	}
	want := map[string]int{"topic mismatch": 1, "decode": 4}
	if byReason["frame count"] == 1 {
		want["frame count"] = 1
	}
	if !reflect.DeepEqual(byReason, want) {
		t.Errorf("rejects logged by reason %v, want %v:\n%s", byReason, want, strings.Join(lines, "\n"))
	}
	if counted != nil && strconv.Itoa(len(lines)) != counted[1] {
		t.Errorf("%d reject lines logged, %s counted", len(lines), counted[1])
	}
	for _, detail := range []string{"not valid JSON", "over the limit of 65536", "nesting depth 101", "no string msg_id or id", "org.fedoraproject.prod.wrong.topic"} {
		n := 0
		for _, line := range lines {
			if strings.Contains(line, detail) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%d reject lines say %q, want 1:\n%s", n, detail, strings.Join(lines, "\n"))
		}
	}
}

// recountBuilds counts the finished builds per 1h bucket end.
func (c *corpus) recountBuilds() map[string]int64 {
	out := map[string]int64{}
	for _, m := range c.all {
		if m["finished_build"] == true {
			out[fmt.Sprintf("%.0f", math.Floor(m["timestamp"].(float64)/3600)*3600+3600)]++
		}
	}
	return out
}

// buildCounts reads build-durations' finished builds per bucket.
func buildCounts(t *testing.T, path string) map[string]int64 {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT printf('%.0f', timestamp), sum(completed + failed) FROM model_build_durations_1h GROUP BY timestamp`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var k string
		var n int64
		if err := rows.Scan(&k, &n); err != nil {
			t.Fatal(err)
		}
		out[k] = n
	}
	return out
}

// waitBuilds waits until build-durations has committed the outcome of
// as many builds as want counts, with no work left queued.
func (d *daemonProc) waitBuilds(t *testing.T, db string, want map[string]int64) {
	t.Helper()
	var total int64
	for _, n := range want {
		total += n
	}
	deadline := time.Now().Add(60 * time.Second)
	var got int64
	for time.Now().Before(deadline) {
		got = 0
		for _, n := range buildCounts(t, db) {
			got += n
		}
		models, _ := d.status(t)["models"].([]any)
		for _, m := range models {
			if mm, _ := m.(map[string]any); mm["ident"] == "build-durations-1h" && mm["queued"] == 0.0 && got == total {
				t.Logf("build-durations counted %d finished builds", got)
				return
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("build-durations counted %d finished builds, want %d; status: %v", got, total, d.status(t)["models"])
}

// TestDaemonFlakyArchive backfills from an archive that fails one request
// in ten with an HTML error page, truncates some bodies and shuffles ties
// in time: the result is still exact.
func TestDaemonFlakyArchive(t *testing.T) {
	c := newCorpus(t, 7)
	now := time.Now()
	var history [][]byte
	for i := 0; i < 3000; i++ {
		// Many messages share a second: ties come back in any order.
		ts := now.Add(-40 * time.Minute).Add(time.Duration(i/7) * time.Second)
		_, rec := c.record(ts, false)
		history = append(history, rec)
	}
	dg := dgtest.New(history, dgtest.Options{FailEvery: 10, TruncateEvery: 7})
	defer dg.Close()
	db := filepath.Join(t.TempDir(), "flaky.db")
	d := startDaemon(t, "--db", db, "--scripts", "../../scripts", "--bus", "none",
		"--datagrepper", dg.URL, "--epoch", now.Add(-time.Hour).Format(time.RFC3339),
		"--settle", "1s", "--lateness", "0s", "--batch-interval", "100ms")
	d.waitTotal(t, int64(len(c.all)))
	d.stop(t)
	wantCat, wantMin := c.recount()
	gotCat, gotMin := tables(t, db)
	sameCounts(t, "volume-by-category-1h", gotCat, wantCat)
	sameCounts(t, "volume-1m", gotMin, wantMin)
	if n := len(dg.Requests()); n < 20 {
		t.Errorf("only %d archive requests: failures not exercised", n)
	}
}

func get(t testing.TB, url string) string {
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func grep(s, word string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, word) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestDaemonHistoryForNewModel adds a model whose history starts before
// the journal's oldest message: the archive fills that span for it, the
// other models neither see it (their history starts later) nor count it as
// late, and the new model ends with every message since its epoch.
func TestDaemonHistoryForNewModel(t *testing.T) {
	c := newCorpus(t, 3)
	now := time.Now()
	var history [][]byte
	for i := 0; i < 600; i++ { // older history, before the first epoch
		_, rec := c.record(now.Add(-50*time.Minute).Add(time.Duration(i)*time.Second), false)
		history = append(history, rec)
	}
	older := len(c.all)
	for i := 0; i < 600; i++ {
		_, rec := c.record(now.Add(-20*time.Minute).Add(time.Duration(i)*time.Second), false)
		history = append(history, rec)
	}
	newer := len(c.all) - older
	dg := dgtest.New(history, dgtest.Options{})
	defer dg.Close()
	scripts := copyScripts(t, "../../scripts")
	db := filepath.Join(t.TempDir(), "history.db")
	args := func(epoch time.Duration) []string {
		return []string{"--db", db, "--scripts", scripts, "--bus", "none", "--datagrepper", dg.URL,
			"--epoch", now.Add(-epoch).Format(time.RFC3339), "--settle", "1s", "--lateness", "0s", "--batch-interval", "100ms"}
	}
	d := startDaemon(t, args(25*time.Minute)...)
	d.waitTotal(t, int64(newer))
	d.stop(t)

	src, err := os.ReadFile(filepath.Join(scripts, "volume.lua"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(scripts, "history-new.lua"), []byte(strings.Replace(string(src), `name = "volume"`, `name = "history-new"`, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	d = startDaemon(t, args(55*time.Minute)...)
	deadline := time.Now().Add(60 * time.Second)
	for sumVolume(t, d.addr, "history-new-1m") != int64(older+newer) && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	if got := sumVolume(t, d.addr, "history-new-1m"); got != int64(older+newer) {
		t.Errorf("the new model counted %d messages, want %d (its history and the journal's)\n%s", got, older+newer, tail(d.out.String(), 30))
	}
	if got := d.total(t); got != int64(newer) {
		t.Errorf("volume-1m counted %d messages, want %d: its history starts at the first epoch", got, newer)
	}
	st := d.status(t)
	if late := st["journal"].(map[string]any)["late"].(float64); late != 0 {
		t.Errorf("%v history messages flagged late", late)
	}
	d.stop(t)
}
