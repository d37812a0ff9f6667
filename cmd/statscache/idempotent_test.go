package main

import (
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"statscache/cmd/statscache/kojitest"
)

// TestReplaySameFileTwiceChangesNothing is the README's promise: replaying
// a file a second time (good records, duplicates and bad lines) leaves
// every table of the database as the first replay left it, rejects and
// their totals included.
func TestReplaySameFileTwiceChangesNothing(t *testing.T) {
	corpus := genCorpus(t, 3000, 7, true)
	eachStore(t, func(t *testing.T, k storeKind) { replayTwice(t, k, corpus) })
}

func replayTwice(t *testing.T, k storeKind, corpus string) {
	data, err := os.ReadFile(corpus)
	if err != nil {
		t.Fatal(err)
	}
	// Bad lines of every kind the reader rejects, twice each, at
	// different lines: two rejects each.
	bad := []string{`not json`, `{"msg_id": "x"}`, `[1, 2`, `{"raw_messages": 3}`, `{"raw_messages": [{"nope": 1}]}`}
	var b strings.Builder
	b.Write(data)
	for i := 0; i < 2; i++ {
		for _, l := range bad {
			b.WriteString(l + "\n")
		}
	}
	file := filepath.Join(t.TempDir(), "twice.jsonl")
	if err := os.WriteFile(file, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	koji := httptest.NewServer(kojitest.New(kojitest.Options{}))
	defer koji.Close()
	db := k.newDB(t, "twice")
	replay := func() string {
		t.Helper()
		out, err := command("replay", "--db", db, "--scripts", "../../scripts", "--service", "koji="+koji.URL+"/kojihub", file).CombinedOutput()
		if err != nil {
			t.Fatalf("replay: %v\n%s", err, out)
		}
		return string(out)
	}
	replay()
	first := dumpDB(t, db)
	if n := countRows(t, db, `SELECT count(*) FROM rejects WHERE source LIKE '%twice.jsonl:%'`); n < float64(2*len(bad)) {
		t.Fatalf("%v rejects kept, want at least %d: the bad lines were not kept", n, 2*len(bad))
	}
	for _, tb := range []string{"journal", "rejects", "reject_totals", "journal_stats", "models"} {
		if first[tb] == "" {
			t.Fatalf("the dump has no %s", tb)
		}
	}
	out := replay()
	second := dumpDB(t, db)
	for name, w := range first {
		if g := second[name]; g != w {
			t.Errorf("%s changed on the second replay:\n%s", name, firstDiff(w, g))
		}
	}
	if len(second) != len(first) {
		t.Errorf("%d tables after the second replay, %d after the first", len(second), len(first))
	}
	if t.Failed() {
		t.Logf("second replay:\n%s", out)
	}
}
