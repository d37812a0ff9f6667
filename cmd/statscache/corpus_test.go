package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"statscache/scripts"
)

// The tests in this package run the statscache command itself. When the
// test binary is started with STATSCACHE_MAIN=1 it behaves as the command,
// so crash tests can kill a real child process without a separate build.
func TestMain(m *testing.M) {
	if os.Getenv("STATSCACHE_MAIN") == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// command returns a child process running statscache with args.
func command(args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "STATSCACHE_MAIN=1")
	return cmd
}

// genCorpus writes n realistic records: bodies and topics of the bundled
// real messages, fresh ids, timestamps one to two per second with many
// ties, a share of duplicates (with and without the year prefix) and of
// malformed records. It prefers the shared corpus generator when present,
// and falls back to this generator so the tests run without ../shared.
func genCorpus(t testing.TB, n int, seed int64, faults bool) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), fmt.Sprintf("corpus-%d-%d.jsonl", n, seed))
	if tool := "../../../shared/tools/fedmsg-corpus"; fileExists(tool) && pythonOK() {
		args := []string{tool, "--count", fmt.Sprint(n), "--seed", fmt.Sprint(seed)}
		if faults {
			args = append(args, "--faults", "0.02")
		}
		out, err := exec.Command("python3", args...).Output()
		if err == nil {
			if err := os.WriteFile(path, out, 0o644); err != nil {
				t.Fatal(err)
			}
			return path
		}
		t.Logf("fedmsg-corpus failed (%v); using the built-in generator", err)
	}
	data, err := scripts.FS.ReadFile(scripts.SamplePath)
	if err != nil {
		t.Fatal(err)
	}
	var templates []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatal(err)
		}
		templates = append(templates, m)
	}
	rng := rand.New(rand.NewSource(seed))
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := bufio.NewWriter(f)
	ts := 1439078400.0
	var prev []byte
	for i := 0; i < n; i++ {
		if faults && rng.Intn(50) == 0 {
			switch rng.Intn(4) {
			case 0:
				w.WriteString(`{"msg_id": "2015-broken", "topic": 7, "timestamp": 1.0, "msg": {}}` + "\n")
			case 1:
				w.WriteString("{not json\n")
			case 2:
				if prev != nil {
					w.Write(prev) // an exact duplicate
					w.WriteByte('\n')
				}
			case 3:
				w.WriteString(`{"topic": "org.fedoraproject.prod.x.y", "timestamp": 1439078400, "msg": {}}` + "\n")
			}
			continue
		}
		tpl := templates[rng.Intn(len(templates))]
		rec := map[string]any{}
		for k, v := range tpl {
			rec[k] = v
		}
		ts += float64(rng.Intn(3)) // ties: about a third of messages share a second
		id := fmt.Sprintf("%08x-%04x-4%03x-%04x-%012x", rng.Uint32(), rng.Intn(1<<16), rng.Intn(1<<12), rng.Intn(1<<16), rng.Int63n(1<<48))
		if rng.Intn(2) == 0 {
			id = "2015-" + id
		}
		rec["msg_id"] = id
		rec["timestamp"] = ts
		b, err := json.Marshal(rec)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(b)
		w.WriteByte('\n')
		prev = b
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return path
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func pythonOK() bool {
	_, err := exec.LookPath("python3")
	return err == nil
}
