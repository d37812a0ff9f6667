package main

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"statscache/engine/bus"
)

// copyScripts copies the *.lua files (and the meta rules) of each source
// folder into one new scripts directory.
func copyScripts(t *testing.T, from ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, src := range from {
		files, err := filepath.Glob(filepath.Join(src, "*.lua"))
		if err != nil || len(files) == 0 {
			t.Fatalf("no scripts in %s (%v)", src, err)
		}
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, filepath.Base(f)), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		// The fedmsg.meta rules, which models such as popularity use.
		if rules, _ := filepath.Glob(filepath.Join(src, "meta", "*")); len(rules) > 0 {
			if err := os.MkdirAll(filepath.Join(dir, "meta"), 0o755); err != nil {
				t.Fatal(err)
			}
			for _, f := range rules {
				data, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, "meta", filepath.Base(f)), data, 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	return dir
}

// TestHostileScripts replays a corpus with hostile scripts beside the
// reference models. Each hostile script is rejected at load or quarantined
// with a clear reason, the process stays up, and every reference model's
// table is exactly what it is in a run without the hostile scripts.
func TestHostileScripts(t *testing.T) {
	os.Remove("/tmp/statscache-hostile-was-here")
	corpus := genCorpus(t, 3000, 3, false)
	clean := copyScripts(t, "../../scripts")
	mixed := copyScripts(t, "../../scripts", "testdata/hostile")
	dir := t.TempDir()
	refDB, mixedDB := filepath.Join(dir, "ref.db"), filepath.Join(dir, "mixed.db")
	refOut, err := command("replay", "--db", refDB, "--scripts", clean, corpus).CombinedOutput()
	if err != nil {
		t.Fatalf("clean replay: %v\n%s", err, refOut)
	}
	out, err := command("replay", "--db", mixedDB, "--scripts", mixed, corpus).CombinedOutput()
	if err != nil {
		t.Fatalf("replay with hostile scripts exited with %v\n%s", err, out)
	}
	text := string(out)
	// The fedmsg.meta rules shared by the reference models must not be
	// stopped for a limit in either run (their answer would be empty).
	for _, o := range []string{string(refOut), text} {
		if strings.Contains(o, "meta rules stopped") {
			t.Errorf("meta rules stopped during a replay:\n%s", grep(o, "meta rules stopped"))
		}
	}

	// Scripts that cannot load are reported with file and line, and skipped.
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`script not loaded: \S*syntax-error\.lua:\d+: syntax error`),
		regexp.MustCompile(`script not loaded: \S*toplevel-loop\.lua: the script's top level ran longer than the limit of 2s`),
		regexp.MustCompile(`script not loaded: \S*pattern-toplevel\.lua: the script's top level ran longer than the limit of 2s`),
	} {
		if !want.MatchString(text) {
			t.Errorf("output lacks %s:\n%s", want, text)
		}
	}

	// The others are quarantined with their reason.
	db, err := sql.Open("sqlite3", "file:"+mixedDB+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	reasons := map[string]string{}
	rows, err := db.Query(`SELECT ident, status, status_reason FROM models`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var ident, status, reason string
		if err := rows.Scan(&ident, &status, &reason); err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(ident, "hostile-") {
			if status != "failed" {
				t.Errorf("%s: status %q, want failed", ident, status)
			}
			reasons[ident] = reason
		} else if status != "ok" {
			t.Errorf("reference model %s: status %q (%s)", ident, status, reason)
		}
	}
	rows.Close()
	// Each reason exactly: a time limit must not pass for a memory limit,
	// nor an error share for a limit.
	share := `process failed on 1000 of the last 1000 messages \(over the limit of 50%\); last error: `
	for ident, want := range map[string]string{
		"hostile-runtime":   share + `\S+/runtime-error\.lua:5: broken on \S+`,
		"hostile-loop":      `hostile-loop: model exceeded a limit: a call ran longer than the limit of 2s`,
		"hostile-rep":       share + `\S+/string-rep\.lua:5: string\.rep: the result would be 4294967296 bytes, over the limit of 16777216`,
		"hostile-doubling":  share + `\S+/concat-doubling\.lua:6: concatenation \(\.\.\): the result would be 33554432 bytes, over the limit of 16777216`,
		"hostile-table":     `hostile-table: model exceeded a limit: its tables hold more than 2000000 entries between commits \(a table that grows without bound\?\)`,
		"hostile-recursion": share + `lua callstack overflow`,
		"hostile-os":        share + `\S+/os-execute\.lua:5: attempt to index a non-table object\(nil\) with key 'execute'`,
		"hostile-pattern":   `hostile-pattern: model exceeded a limit: a call ran longer than the limit of 2s`,
		// Writing 512 MiB takes a fraction of a second, unless the machine
		// is starved: the wall-clock limit may then come first. Both
		// reasons are the guilty model's; luaapi's TestBuiltinLimits
		// asserts the allocation reason with the time limit out of reach.
		"hostile-concat-parts": `hostile-concat-parts: model exceeded a limit: (built-in functions allocated more than the limit of 512 MiB during one call|a call ran longer than the limit of 2s)`,
		"hostile-index":        share + `\S+/globals-index-error\.lua:7: boom missing_global`,
	} {
		if got, ok := reasons[ident]; !ok {
			t.Errorf("%s: not registered", ident)
		} else if !regexp.MustCompile(`^` + want + `$`).MatchString(got) {
			t.Errorf("%s: reason\n  %q\nwant\n  %s", ident, got, want)
		}
		delete(reasons, ident)
	}
	for ident, got := range reasons {
		t.Errorf("%s: unexpected hostile model (reason %q)", ident, got)
	}
	if _, err := os.Stat("/tmp/statscache-hostile-was-here"); err == nil {
		t.Error("a script ran a shell command")
	}

	// Every reference model is exact: its table, its state and its cursor.
	want, got := dumpDB(t, refDB), dumpDB(t, mixedDB)
	compared := 0
	for name, w := range want {
		if strings.HasPrefix(name, "table ") {
			compared++
			if got[name] != w {
				t.Errorf("%s differs with hostile scripts beside it:\n%s", name, firstDiff(w, got[name]))
			}
		}
	}
	refModels, mixedModels := modelRecords(t, refDB), modelRecords(t, mixedDB)
	for ident, w := range refModels {
		if got := mixedModels[ident]; got != w {
			t.Errorf("model %s: cursor, status or state differ with hostile scripts beside it:\n%s", ident, firstDiff(w, got))
		}
	}
	if compared == 0 || len(refModels) != compared {
		t.Errorf("compared %d tables and %d model records", compared, len(refModels))
	}
}

// modelRecords returns, per model, its cursor, counts, status and state
// as one text.
func modelRecords(t *testing.T, path string) map[string]string {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	out := map[string]string{}
	rows, err := db.Query(`SELECT ident, cursor_time_us, cursor_key, cursor_id, processed, errors, status, status_reason FROM models ORDER BY ident`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var ident, key, id, status, reason string
		var us, processed, errs int64
		if err := rows.Scan(&ident, &us, &key, &id, &processed, &errs, &status, &reason); err != nil {
			t.Fatal(err)
		}
		out[ident] = fmt.Sprintf("cursor %d %s %s processed %d errors %d status %s %s\n", us, key, id, processed, errs, status, reason)
	}
	rows.Close()
	rows, err = db.Query(`SELECT ident, key, value FROM model_state ORDER BY ident, key`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var ident, key, value string
		if err := rows.Scan(&ident, &key, &value); err != nil {
			t.Fatal(err)
		}
		out[ident] += fmt.Sprintf("state %s = %s\n", key, value)
	}
	for ident := range out {
		if strings.HasPrefix(ident, "hostile-") {
			delete(out, ident)
		}
	}
	return out
}

// TestHostileReload: a SIGHUP that meets a script hanging at its top level
// in a pattern gives up on it after the load time limit and keeps the
// running version; a script that gives _G a raising __index loads without
// crashing the daemon; the daemon answers throughout, reloads again, and
// stops on SIGTERM.
func TestHostileReload(t *testing.T) {
	scripts := copyScripts(t, "../../scripts")
	db := filepath.Join(t.TempDir(), "reload.db")
	d := startDaemon(t, "--db", db, "--scripts", scripts, "--bus", "none")
	vol := filepath.Join(scripts, "volume.lua")
	orig, err := os.ReadFile(vol)
	if err != nil {
		t.Fatal(err)
	}
	reloads := 0
	for _, tc := range []struct{ tail, want string }{
		{`string.find(string.rep("a", 100000), ".-.-.-.-.-b")`, `reload: script not loaded; its running version is kept.*volume\.lua: the script's top level ran longer than the limit of 2s`},
		{`setmetatable(_G, {__index = function(t, k) error("boom " .. tostring(k)) end})`, `reloaded`},
	} {
		if err := os.WriteFile(vol, append(append([]byte(nil), orig...), "\n"+tc.tail+"\n"...), 0o644); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		d.cmd.Process.Signal(syscall.SIGHUP)
		reloads++
		for strings.Count(d.out.String(), "msg=reloaded") < reloads {
			if time.Since(start) > 10*time.Second {
				t.Fatalf("no reload after %s:\n%s", time.Since(start), tail(d.out.String(), 30))
			}
			time.Sleep(50 * time.Millisecond)
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("reload took %s", took)
		}
		if !regexp.MustCompile(tc.want).MatchString(d.out.String()) {
			t.Errorf("log lacks %s:\n%s", tc.want, tail(d.out.String(), 30))
		}
		st := d.status(t)
		if st == nil {
			t.Fatal("no /status after the reload")
		}
		if !strings.Contains(fmt.Sprint(st), "volume-1m") {
			t.Errorf("/status lacks volume-1m after the reload: %v", st)
		}
	}
	d.stop(t)
}

// TestHostileDaemonSIGTERM: a model stuck in a built-in (a pattern that
// backtracks for minutes) while the live daemon runs: the daemon keeps
// serving, the model is stopped at its time limit with that reason, and
// one SIGTERM ends the process within its drain.
func TestHostileDaemonSIGTERM(t *testing.T) {
	scripts := copyScripts(t, "../../scripts")
	hang, err := os.ReadFile("testdata/hostile/pattern-hang.lua")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(scripts, "pattern-hang.lua"), hang, 0o644); err != nil {
		t.Fatal(err)
	}
	pub, err := bus.NewPublisher(context.Background(), "tcp://127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	db := filepath.Join(t.TempDir(), "sigterm.db")
	d := startDaemon(t, "--db", db, "--scripts", scripts, "--bus", pub.Endpoint(),
		"--epoch", time.Now().Add(-time.Minute).Format(time.RFC3339), "--lateness", "1s", "--batch-interval", "100ms")
	d.waitConnected(t, 1)
	c := newCorpus(t, 7)
	publish := func(n int) {
		for i := 0; i < n; i++ {
			topic, env := c.record(time.Now(), true)
			pub.Publish(topic, env)
			time.Sleep(5 * time.Millisecond)
		}
	}
	// The first messages: the hostile model's first call hangs in the
	// pattern until its limit stops it; the other models go on.
	publish(50)
	d.waitTotal(t, 50)
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(fmt.Sprint(d.status(t)), "a call ran longer than the limit of 2s") {
		if time.Now().After(deadline) {
			t.Fatalf("hostile-pattern not stopped with its reason:\n%v", d.status(t))
		}
		time.Sleep(100 * time.Millisecond)
	}
	publish(50)
	d.waitTotal(t, 100)

	// A second time, with SIGTERM while a fresh hostile call hangs: a
	// reload starts the fixed-in-name-only script again from its cursor.
	if err := os.WriteFile(filepath.Join(scripts, "pattern-hang.lua"), append(hang, "\n-- again\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	d.cmd.Process.Signal(syscall.SIGHUP)
	for strings.Count(d.out.String(), "msg=reloaded") < 1 {
		if time.Now().After(deadline.Add(10 * time.Second)) {
			t.Fatalf("no reload:\n%s", tail(d.out.String(), 30))
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The restarted model resumes from its cursor, before the journaled
	// messages: its first call is now hanging in the pattern.
	time.Sleep(300 * time.Millisecond)
	start := time.Now()
	d.stop(t)
	// The drain waits for the hanging call, which its 2 s limit ends.
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("SIGTERM took %s to end the daemon", took)
	}
	t.Logf("SIGTERM ended the daemon in %s", time.Since(start).Round(time.Millisecond))
	if !regexp.MustCompile(`hostile-pattern.*a call ran longer than the limit of 2s`).MatchString(d.out.String()) {
		t.Errorf("the log does not say why hostile-pattern stopped:\n%s", tail(d.out.String(), 30))
	}
}
