package main

import (
	"bytes"
	"database/sql"
	"fmt"
	"math/rand"
	"net/http/httptest"
	"os"
	"strconv"
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
	eachStore(t, func(t *testing.T, k storeKind) { kill9Equivalence(t, k, corpus) })
}

func kill9Equivalence(t *testing.T, k storeKind, corpus string) {
	hub := kojitest.New(kojitest.Options{Delay: 15 * time.Millisecond, FailEvery: 15})
	koji := httptest.NewServer(hub)
	defer koji.Close()
	svc := "koji=" + koji.URL + "/kojihub"
	ref := k.newDB(t, "ref")
	start := time.Now()
	if out, err := command("replay", "--db", ref, "--scripts", "../../scripts", "--service", svc, corpus).CombinedOutput(); err != nil {
		t.Fatalf("reference replay: %v\n%s", err, out)
	}
	full := time.Since(start)
	refCalls := hub.Requests()
	if n := countRows(t, ref, `SELECT coalesce(sum(completed + failed), 0) FROM model_build_durations_1h`); n < 50 {
		t.Fatalf("the reference run counted %v finished builds: the queue model was not exercised", n)
	}

	crash := k.newDB(t, "crash")
	rng := rand.New(rand.NewSource(testSeed(t)))
	kills := 0
	// Up to 40 runs, stopping after 25 kills: a run that ends on its own
	// has finished the work, and every run after it ends on its own too.
	for i := 0; i < 40 && kills < 25; i++ {
		// Small batches and frequent time-based commits give many commit
		// points to land a kill between.
		cmd := command("replay", "--db", crash, "--scripts", "../../scripts", "--service", svc, "--batch", "150", "--batch-interval", "20ms", corpus)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Each restart re-reads the whole file (all duplicates by then)
		// before processing resumes, so kills within a fifth of a full run
		// land in ingest, in processing and in commits. (A third let a
		// run on PostgreSQL finish the work after 9 kills.)
		wait := time.Duration(rng.Int63n(int64(full)/5)) + 5*time.Millisecond
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
		t.Fatalf("only %d runs were killed before the work was done: the test did not exercise crashes", kills)
	}
	for _, path := range []string{ref, crash} {
		if failed := query(t, openRO(t, path), `SELECT ident, status_reason FROM models WHERE status != 'ok'`); failed != "" {
			t.Errorf("%s: failed models:\n%s", dbName(path), failed)
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

// testSeed returns the seed of a randomized test: STATSCACHE_TEST_SEED when
// set, else the clock. It is logged, so that a failure names the seed that
// repeats its random choices (kill instants are drawn as fractions of a
// measured run, so they repeat in proportion, not to the microsecond).
func testSeed(t testing.TB) int64 {
	t.Helper()
	seed := time.Now().UnixNano()
	if s := os.Getenv("STATSCACHE_TEST_SEED"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatalf("STATSCACHE_TEST_SEED=%q: want an integer", s)
		}
		seed = n
	}
	t.Logf("random seed %d (STATSCACHE_TEST_SEED=%d repeats it)", seed, seed)
	return seed
}

// dumpDB returns every table of the database as text (model tables,
// journal rows with their late flags, rejects, model cursors with
// cursor_id, state, errors, work queues, the kept figures), ordered so that
// two databases compare equal exactly when their contents are equal. Left
// out are only the columns that record when or in which order a row was
// written, which an interrupted run cannot reproduce: row ids and write
// times (volatile below).
func dumpDB(t testing.TB, path string) map[string]string {
	t.Helper()
	db := openDB(t, path)
	defer db.Close()
	tablesSQL := `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name`
	if isPostgres(db) {
		tablesSQL = `SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY tablename`
	}
	rows, err := db.Query(tablesSQL)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, name)
	}
	rows.Close()
	// Model tables are named by their model ("table <ident>"), so that
	// databases whose tables were created in another order compare.
	idents := map[string]string{}
	if rows, err := db.Query(`SELECT table_name, ident FROM models`); err == nil {
		for rows.Next() {
			var tb, ident string
			if err := rows.Scan(&tb, &ident); err != nil {
				t.Fatal(err)
			}
			idents[tb] = ident
		}
		rows.Close()
	}
	out := map[string]string{}
	for _, tb := range tables {
		name := tb
		if ident, ok := idents[tb]; ok {
			name = "table " + ident
		}
		var cols []string
		for _, c := range columns(t, db, tb) {
			if !volatile[tb+"."+c] && !volatile["*."+c] {
				cols = append(cols, `"`+c+`"`)
			}
		}
		if len(cols) == 0 {
			continue
		}
		list := strings.Join(cols, ", ")
		out[name] = query(t, db, fmt.Sprintf(`SELECT %s FROM "%s" ORDER BY %s`, list, tb, list))
	}
	return out
}

// volatile are the columns dumpDB leaves out: "table.column", or
// "*.column" for every table.
var volatile = map[string]bool{
	"*.id":              true, // row ids: the order rows were written in
	"journal.seq":       true, // arrival order, for diagnostics only
	"models.updated_at": true, // when the last commit ran
	"model_errors.at":   true,
	"rejects.at":        true,
	"migrations.at":     true,
	"models.commits":    true, // PostgreSQL: how many commits wrote the model (more when a run was cut)
}

// openRO opens a database (a SQLite path or a PostgreSQL URL) for reading
// for the rest of the test.
func openRO(t testing.TB, path string) *sql.DB {
	t.Helper()
	db := openDB(t, path)
	t.Cleanup(func() { db.Close() })
	return db
}

// countRows runs a query that returns one number.
func countRows(t testing.TB, path, q string) float64 {
	t.Helper()
	db := openDB(t, path)
	defer db.Close()
	var n float64
	if err := db.QueryRow(q).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// columns lists a table's columns in declaration order.
func columns(t testing.TB, db *sql.DB, table string) []string {
	t.Helper()
	q := `SELECT name FROM pragma_table_info(?) ORDER BY cid`
	if isPostgres(db) {
		q = `SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position`
	}
	rows, err := db.Query(q, table)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var cols []string
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			t.Fatal(err)
		}
		cols = append(cols, c)
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
