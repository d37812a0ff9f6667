package main

import (
	"database/sql"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
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
	if out, err := command("replay", "--db", refDB, "--scripts", clean, corpus).CombinedOutput(); err != nil {
		t.Fatalf("clean replay: %v\n%s", err, out)
	}
	out, err := command("replay", "--db", mixedDB, "--scripts", mixed, corpus).CombinedOutput()
	if err != nil {
		t.Fatalf("replay with hostile scripts exited with %v\n%s", err, out)
	}
	text := string(out)

	// Scripts that cannot load are reported with file and line, and skipped.
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`script not loaded: \S*syntax-error\.lua:\d+: syntax error`),
		regexp.MustCompile(`script not loaded: \S*toplevel-loop\.lua: the script's top level ran longer than the limit`),
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
	for ident, want := range map[string]string{
		"hostile-runtime":   "process failed on",
		"hostile-loop":      "limit",
		"hostile-rep":       "string.rep: the result would be",
		"hostile-table":     "model exceeded a limit",
		"hostile-recursion": "stack overflow",
		"hostile-os":        "attempt to index",
	} {
		if got, ok := reasons[ident]; !ok {
			t.Errorf("%s: not registered", ident)
		} else if !strings.Contains(got, want) {
			t.Errorf("%s: reason %q lacks %q", ident, got, want)
		}
	}
	if _, err := os.Stat("/tmp/statscache-hostile-was-here"); err == nil {
		t.Error("a script ran a shell command")
	}

	// Every reference model is exact.
	want, got := dumpDB(t, refDB), dumpDB(t, mixedDB)
	for name, w := range want {
		if strings.HasPrefix(name, "table ") {
			if got[name] != w {
				t.Errorf("%s differs with hostile scripts beside it:\n%s", name, firstDiff(w, got[name]))
			}
		}
	}
}
