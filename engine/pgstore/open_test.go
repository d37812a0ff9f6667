package pgstore_test

import (
	"errors"
	"net/url"
	"strings"
	"sync"
	"testing"

	"statscache/engine"
	"statscache/engine/pgstore"
	"statscache/engine/pgstore/pgtest"
	"statscache/schema"
)

// TestOpenReadOnly: a read-only store (statscache serve, a replica) never
// writes: it refuses a database whose schema is not current instead of
// migrating it, and reads one that is.
func TestOpenReadOnly(t *testing.T) {
	u := pgtest.URL(t)
	if _, err := pgstore.Open(t.Context(), u, pgstore.Options{ReadOnly: true}); err == nil || !strings.Contains(err.Error(), "not current") {
		t.Fatalf("read-only open of an empty database: %v, want a schema that is not current", err)
	}
	rw, err := pgstore.Open(t.Context(), u, pgstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer rw.Close()
	if _, err := rw.Register(t.Context(), counterSpec()); err != nil {
		t.Fatal(err)
	}
	if err := addBatch(t, rw, 5, "a"); err != nil {
		t.Fatal(err)
	}
	ro, err := pgstore.Open(t.Context(), u, pgstore.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	page, err := ro.Rows(t.Context(), "counter", engine.RowQuery{})
	if err != nil || page.Total != 1 || page.Rows[0][1] != int64(5) {
		t.Fatalf("read-only rows: %+v, %v", page, err)
	}
	if err := ro.SetStatus(t.Context(), "counter", "failed", "x", nil); err == nil || !strings.Contains(err.Error(), "read-only") {
		t.Errorf("a write through the read-only store: %v, want a read-only transaction error", err)
	}
}

// TestOpenMissingDatabase: a URL naming a database that does not exist
// says so, and how to create it.
func TestOpenMissingDatabase(t *testing.T) {
	u, err := url.Parse(pgtest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/statscache_no_such_database"
	_, err = pgstore.Open(t.Context(), u.String(), pgstore.Options{})
	if err == nil || !strings.Contains(err.Error(), "does not exist") || !strings.Contains(err.Error(), "CREATE DATABASE") {
		t.Errorf("open of a missing database: %v", err)
	}
}

// TestRegisterConcurrently: processes starting at once on one database
// (several daemons) register the same models; each table is created once
// and every process can commit to it.
func TestRegisterConcurrently(t *testing.T) {
	u := pgtest.URL(t)
	dbs := make([]*pgstore.DB, 3)
	for i := range dbs {
		db, err := pgstore.Open(t.Context(), u, pgstore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		dbs[i] = db
	}
	// Each process has its own specs, as it loads its own scripts.
	specs := func() []*engine.ModelSpec {
		out := []*engine.ModelSpec{counterSpec()}
		for _, name := range []string{"select", "a-b.c", "order"} { // names that need quoting
			sp := counterSpec()
			sp.Ident, sp.Table.Name = name, schema.TableName(name)
			sp.Table.Columns = append(sp.Table.Columns, schema.Column{Name: "group", Type: schema.Text})
			out = append(out, sp)
		}
		return out
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(dbs)*4)
	for _, db := range dbs {
		wg.Add(1)
		mine := specs()
		go func() {
			defer wg.Done()
			for _, sp := range mine {
				if _, err := db.Register(t.Context(), sp); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for i, db := range dbs {
		if err := addBatch(t, db, 1, string(rune('a'+i))); err != nil {
			t.Fatal(err)
		}
	}
	row, err := dbs[0].GetRow(t.Context(), "counter", engine.Row{"timestamp": 60.0})
	if err != nil || row["n"] != int64(3) {
		t.Errorf("row %v, %v: want n = 3 from the three processes", row, err)
	}
}

// TestValuesPostgreSQLRefuses: a text with a NUL byte or invalid UTF-8, or
// a JSON string with \u0000, cannot be stored in PostgreSQL (SQLite would
// keep them). The commit fails as the script's mistake
// (engine.ErrRowConflict: the engine stops the model if it persists),
// never as a store failure retried without end, and writes nothing.
func TestValuesPostgreSQLRefuses(t *testing.T) {
	db, err := pgstore.Open(t.Context(), pgtest.URL(t), pgstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	sp := counterSpec()
	sp.Table.Columns = append(sp.Table.Columns, schema.Column{Name: "label", Type: schema.Text}, schema.Column{Name: "doc", Type: schema.JSON})
	if _, err := db.Register(t.Context(), sp); err != nil {
		t.Fatal(err)
	}
	for _, row := range []engine.Row{
		{"timestamp": 1.0, "label": "a\x00b"},
		{"timestamp": 2.0, "label": "\xff\xfe"},
		{"timestamp": 3.0, "doc": map[string]any{"k": "a\x00b"}},
	} {
		tx, err := db.Begin(t.Context(), "counter")
		if err != nil {
			t.Fatal(err)
		}
		err = tx.Apply([]engine.RowOp{{Kind: engine.OpUpsert, Row: row}})
		tx.Rollback()
		if !errors.Is(err, engine.ErrRowConflict) {
			t.Errorf("row %q: %v, want ErrRowConflict", row, err)
		}
	}
	if n, _ := db.CountRows(t.Context(), "counter"); n != 0 {
		t.Errorf("%d rows written", n)
	}
}
