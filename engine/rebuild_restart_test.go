package engine_test

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	"statscache/engine"
)

// TestEngineRestartAfterRebuild: once a reload has rebuilt a model's
// table for its changed declaration and promoted it, the same declaration
// reloaded again, or at the next start, goes on with the rebuilt table and
// its declared index: no second rebuild, nothing counted twice. Before,
// both asked for the same rebuild again, which the store refused ("table
// ... is already used by model ..."), and after a restart the model did
// not run at all.
func TestEngineRestartAfterRebuild(t *testing.T) {
	db := openTestDB(t, "")
	declare := func(wide bool) *fakeModel {
		m := newFake("re")
		if wide {
			m = widened("re")
		}
		m.spec.Table.Columns[1].Index = true // topic
		return m
	}
	var msgs []*engine.Message
	for i := 1; i <= 40; i++ {
		msgs = append(msgs, message(t, fmt.Sprintf("m%03d", i), tBuild, float64(i)))
	}
	e := newEngine(t, db, engine.Config{BatchSize: 10}, declare(false))
	ingest(t, e, msgs...)
	stop := runFollow(t, e)
	last := msgs[len(msgs)-1].Pos()
	if !within(10*time.Second, func() bool { return db.model(t, "re").Cursor == last }) {
		t.Fatalf("first run: cursor %v", db.model(t, "re").Cursor)
	}
	if res := e.Reload(context.Background(), []engine.Model{declare(true)}, nil); !reflect.DeepEqual(res.Rebuilding, []string{"re"}) || len(res.Errors) != 0 {
		t.Fatalf("reload with a changed table: %+v, want re rebuilt", res)
	}
	var table string
	if !within(10*time.Second, func() bool {
		tb, cols, total := db.tableInfo(t, "re")
		table = tb
		return hasCol(cols, "extra") && total == 40 && db.model(t, "re").Cursor == last && len(e.Stats()) == 1
	}) {
		tb, cols, total := db.tableInfo(t, "re")
		t.Fatalf("the rebuilt table was not promoted: %s %v counting %d, %+v", tb, cols, total, e.Stats())
	}
	index := func() int {
		var n int
		if err := db.sql.QueryRow(`SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND tbl_name = ? AND name = ?`, table, table+"_topic").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if !within(10*time.Second, func() bool { return index() == 1 }) {
		t.Fatalf("no declared index on the rebuilt table %s", table)
	}
	// The same declaration again: kept or restarted, not rebuilt.
	res := e.Reload(context.Background(), []engine.Model{declare(true)}, nil)
	if len(res.Errors) != 0 || len(res.Rebuilding) != 0 || len(res.Kept)+len(res.Restarted) != 1 {
		t.Errorf("reload with the same declaration: %+v, want re kept or restarted", res)
	}
	stop()

	// The next start, with the same scripts.
	e = engine.New(db.store, quietConfig(engine.Config{BatchSize: 1}))
	if res := e.Reload(context.Background(), []engine.Model{declare(true)}, nil); len(res.Errors) != 0 || !reflect.DeepEqual(res.Added, []string{"re"}) {
		t.Fatalf("start after the rebuild: %+v, want re added", res)
	}
	more := message(t, "m041", tBuild, 41)
	ingest(t, e, more)
	stop = runFollow(t, e)
	if !within(10*time.Second, func() bool { return db.model(t, "re").Cursor == more.Pos() }) {
		t.Fatalf("after the restart: cursor %v, stats %+v", db.model(t, "re").Cursor, e.Stats())
	}
	stop()
	if tb, cols, total := db.tableInfo(t, "re"); tb != table || !hasCol(cols, "extra") || total != 41 {
		t.Errorf("after the restart: table %s %v with %d counted; want %s with the extra column, 41", tb, cols, total, table)
	}
	if index() != 1 {
		t.Errorf("the declared index of %s is gone", table)
	}
	if s := stats(e, "re"); s.Failed != "" || s.Indexes != "" {
		t.Errorf("stats %+v", s)
	}
}

func hasCol(cols []string, name string) bool {
	for _, c := range cols {
		if c == name {
			return true
		}
	}
	return false
}
