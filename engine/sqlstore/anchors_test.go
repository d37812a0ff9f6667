package sqlstore

import (
	"context"
	"fmt"
	"path/filepath"
	"reflect"
	"testing"

	"statscache/engine"
)

// TestAnchorsNoticeChangedTable: page anchors are kept only while rows are
// merely added. A row taken out of the middle of the table behind the
// store's back (which no model can do) makes them stale; the next deep
// page notices it by the kept row count and reads them again, so the page
// is still the right slice.
func TestAnchorsNoticeChangedTable(t *testing.T) {
	ctx := context.Background()
	db := anchorTable(t, 3000, 3)
	page := func(off int) [][]any {
		p, err := db.Rows(ctx, "v-1h", engine.RowQuery{Offset: off, Count: 5})
		if err != nil {
			t.Fatal(err)
		}
		return p.Rows
	}
	before := page(2000)
	if db.AnchorBuilds() != 1 {
		t.Fatalf("anchors read %d times, want 1", db.AnchorBuilds())
	}
	// A row near the start goes: every later row moves up by one.
	if _, err := db.w.Exec(`DELETE FROM "model_v_1h" WHERE "timestamp" = 3600 AND "category" = 'c1'`); err != nil {
		t.Fatal(err)
	}
	after := page(1999)
	if !reflect.DeepEqual(after, before) {
		t.Errorf("offset 1999 after the delete: %v, want %v", after, before)
	}
	if db.AnchorBuilds() != 2 {
		t.Errorf("anchors read %d times, want 2 (again after the delete)", db.AnchorBuilds())
	}
}

// TestAnchorsReadOnceUnderConcurrentPages: many deep pages asked at once
// of a table without anchors read them in full once; the others walk the
// index meanwhile and give the same pages.
func TestAnchorsReadOnceUnderConcurrentPages(t *testing.T) {
	ctx := context.Background()
	db := anchorTable(t, 20000, 4)
	errs := make(chan error, 16)
	for g := 0; g < 16; g++ {
		go func() {
			off := 600 + 1000*g
			p, err := db.Rows(ctx, "v-1h", engine.RowQuery{Offset: off, Count: 3})
			if err == nil && (len(p.Rows) != 3 || p.Rows[0][0] != float64(3600*(off/4))) {
				err = fmt.Errorf("offset %d: %v", off, p.Rows)
			}
			errs <- err
		}()
	}
	for g := 0; g < 16; g++ {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if n := db.AnchorBuilds(); n != 1 {
		t.Errorf("anchors read %d times, want 1", n)
	}
}

// anchorTable returns a database whose model v-1h holds n rows, perHour
// categories an hour, committed at once.
func anchorTable(t *testing.T, n, perHour int) *DB {
	t.Helper()
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(t.TempDir(), "a.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Register(ctx, testSpec("v-1h")); err != nil {
		t.Fatal(err)
	}
	var ops []engine.RowOp
	for i := 0; i < n; i++ {
		ops = append(ops, engine.RowOp{Kind: engine.OpAdd, Row: engine.Row{"timestamp": float64(3600 * (i / perHour)), "category": fmt.Sprint("c", i%perHour), "volume": int64(i)}})
	}
	commitBatch(t, db, "v-1h", ops, engine.Checkpoint{Cursor: engine.Position{TimeUS: 1, Key: "a"}})
	return db
}
