package main

import (
	"bytes"
	"database/sql"
	"fmt"
	"math/rand"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3"

	"statscache/cmd/statscache/kojitest"
)

// TestKill9Equivalence kills "statscache replay" with SIGKILL at random
// instants, many times, restarts it each time, and checks that every model
// table, every model's state and cursor end up identical to those of one
// uninterrupted run: nothing lost, nothing counted twice. The shipped
// models include build-durations, whose work queue looks builds up in a
// slow Koji stand-in that also fails one call in fifteen (retried), so kills
// land with items queued, being worked on, delivered and not committed.
func TestKill9Equivalence(t *testing.T) {
	corpus := genCorpus(t, 20000, 11, true)
	hub := kojitest.New(kojitest.Options{Delay: 15 * time.Millisecond, FailEvery: 15})
	koji := httptest.NewServer(hub)
	defer koji.Close()
	svc := "koji=" + koji.URL + "/kojihub"
	dir := t.TempDir()
	ref := filepath.Join(dir, "ref.db")
	start := time.Now()
	if out, err := command("replay", "--db", ref, "--scripts", "../../scripts", "--service", svc, corpus).CombinedOutput(); err != nil {
		t.Fatalf("reference replay: %v\n%s", err, out)
	}
	full := time.Since(start)
	refCalls := hub.Requests()
	if n := countRows(t, ref, `SELECT total(completed + failed) FROM model_build_durations_1h`); n < 50 {
		t.Fatalf("the reference run counted %v finished builds: the queue model was not exercised", n)
	}

	crash := filepath.Join(dir, "crash.db")
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	kills := 0
	for i := 0; i < 25; i++ {
		// Small batches and frequent time-based commits give many commit
		// points to land a kill between.
		cmd := command("replay", "--db", crash, "--scripts", "../../scripts", "--service", svc, "--batch", "150", "--batch-interval", "20ms", corpus)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Each restart re-reads the whole file (all duplicates by then)
		// before processing resumes, so kills within a third of a full run
		// land in ingest, in processing and in commits.
		wait := time.Duration(rng.Int63n(int64(full)/3)) + 5*time.Millisecond
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("run %d ended on its own with %v\n%s", i, err, out.String())
			}
		case <-time.After(wait):
			cmd.Process.Kill() // SIGKILL: no handler runs, nothing is flushed
			<-done
			kills++
		}
	}
	if out, err := command("replay", "--db", crash, "--scripts", "../../scripts", "--service", svc, corpus).CombinedOutput(); err != nil {
		t.Fatalf("final replay: %v\n%s", err, out)
	}
	t.Logf("%d kills at random points (uninterrupted run: %s); Koji calls: %d in the reference run, %d in all",
		kills, full.Round(time.Millisecond), refCalls, hub.Requests())
	if kills < 10 {
		t.Fatalf("only %d of 25 runs were killed: the test did not exercise crashes", kills)
	}
	for _, path := range []string{ref, crash} {
		if failed := query(t, openRO(t, path), `SELECT ident, status_reason FROM models WHERE status != 'ok'`); failed != "" {
			t.Errorf("%s: failed models:\n%s", filepath.Base(path), failed)
		}
	}
	want, got := dumpDB(t, ref), dumpDB(t, crash)
	if len(want) == 0 {
		t.Fatal("reference dump is empty")
	}
	for name, w := range want {
		if g := got[name]; g != w {
			t.Errorf("%s differs after crashes:\n%s", name, firstDiff(w, g))
		}
	}
	if len(got) != len(want) {
		t.Errorf("crash run has %d tables, reference %d", len(got), len(want))
	}
}

// dumpDB returns every model table, the model state and the model
// cursors and counters as text, ordered so two databases compare equal
// exactly when their contents are equal.
func dumpDB(t testing.TB, path string) map[string]string {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	out := map[string]string{}
	rows, err := db.Query(`SELECT ident, table_name FROM models ORDER BY ident`)
	if err != nil {
		t.Fatal(err)
	}
	var tables [][2]string
	for rows.Next() {
		var ident, table string
		if err := rows.Scan(&ident, &table); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, [2]string{ident, table})
	}
	rows.Close()
	for _, tb := range tables {
		cols := columns(t, db, tb[1])
		out["table "+tb[0]] = query(t, db, fmt.Sprintf(`SELECT %s FROM "%s" ORDER BY %s`, strings.Join(cols, ", "), tb[1], strings.Join(cols, ", ")))
	}
	out["models"] = query(t, db, `SELECT ident, cursor_time_us, cursor_key, processed, errors, status FROM models ORDER BY ident`)
	out["state"] = query(t, db, `SELECT ident, key, value FROM model_state ORDER BY ident, key`)
	out["journal"] = query(t, db, `SELECT count(*), total(time_us), min(key), max(key) FROM journal`)
	out["errors"] = query(t, db, `SELECT ident, msg_id, error FROM model_errors ORDER BY ident, msg_id`)
	out["queues"] = query(t, db, `SELECT ident, queue_seq, (SELECT count(*) FROM model_queue q WHERE q.ident = m.ident) FROM models m ORDER BY ident`)
	return out
}

// openRO opens a database read-only for the rest of the test.
func openRO(t testing.TB, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// countRows runs a query that returns one number.
func countRows(t testing.TB, path, q string) float64 {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n float64
	if err := db.QueryRow(q).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

func columns(t testing.TB, db *sql.DB, table string) []string {
	rows, err := db.Query(fmt.Sprintf(`SELECT name FROM pragma_table_info('%s') WHERE name != 'id' ORDER BY cid`, table))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var cols []string
	for rows.Next() {
		var c string
		rows.Scan(&c)
		cols = append(cols, `"`+c+`"`)
	}
	return cols
}

func query(t testing.TB, db *sql.DB, q string) string {
	t.Helper()
	rows, err := db.Query(q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var b strings.Builder
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		for i, v := range vals {
			if i > 0 {
				b.WriteByte('|')
			}
			if bs, ok := v.([]byte); ok {
				v = string(bs)
			}
			fmt.Fprint(&b, v)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

func firstDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < len(w) || i < len(g); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			return fmt.Sprintf("line %d: want %q, got %q (%d vs %d lines)", i+1, wl, gl, len(w), len(g))
		}
	}
	return "no difference"
}
