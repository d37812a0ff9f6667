package engine_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"statscache/engine"
	"statscache/engine/sqlstore"
	"statscache/schema"
)

// noIndexes hides the store's IndexBuilder: an engine over it computes a
// model's rows and leaves its declared indexes unbuilt, as a daemon killed
// between its last commit and the build does.
type noIndexes struct{ engine.Store }

// countedIndexes is the real store, counting the calls to BuildIndexes.
type countedIndexes struct {
	*sqlstore.DB
	calls atomic.Int32
}

func (c *countedIndexes) BuildIndexes(ctx context.Context, ident string) error {
	c.calls.Add(1)
	return c.DB.BuildIndexes(ctx, ident)
}

// TestDeclaredIndexDiskFullReal: a model's declared index is built on a
// real file system too full for it. The build fails with SQLite's own
// error, which the model's stats report while it runs on; its rows, cursor
// and counts stay as committed; a reload while the index is pending tries
// again and fails the same way; once space is freed the index is built
// over every row, and the messages that arrived meanwhile are counted once.
func TestDeclaredIndexDiskFullReal(t *testing.T) {
	dir := smallDisk(t, "8m")
	t.Cleanup(engine.SetIndexRetryWait(300 * time.Millisecond)) // after the engine stopped
	db := openTestDB(t, filepath.Join(dir, "t.db"))
	indexed := func() *bigRows {
		m := newBigRows("big")
		m.spec.Table.Columns[2].Index = true   // blob: 8 KiB a row, as large as the table
		m.spec.Table.Columns[1].NotNull = true // as Validate makes a key column: the reload sees the same table
		return m
	}
	index := schema.TableName("big") + "_blob"
	has := func() bool {
		var n int
		if err := db.sql.QueryRow(`SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND name = ?`, index).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == 1
	}
	table := func() (rows, keys int) {
		if err := db.sql.QueryRow(`SELECT count(*), count(DISTINCT "key") FROM `+schema.Quote(schema.TableName("big"))).Scan(&rows, &keys); err != nil {
			t.Fatal(err)
		}
		return rows, keys
	}
	var msgs []*engine.Message
	for i := 1; i <= 200; i++ {
		msgs = append(msgs, message(t, fmt.Sprintf("i%03d", i), tBuild, float64(i)))
	}

	// The rows, without the index.
	e := engine.New(noIndexes{db.store}, quietConfig(engine.Config{BatchSize: 50}))
	if err := e.Add(context.Background(), indexed()); err != nil {
		t.Fatal(err)
	}
	ingest(t, e, msgs...)
	run(t, e)
	last := msgs[len(msgs)-1].Pos()
	if n, _ := table(); n != 200 || has() || db.model(t, "big").Cursor != last {
		t.Fatalf("before the build: %d rows, index %v, cursor %v; want 200, none, %v", n, has(), db.model(t, "big").Cursor, last)
	}

	// Full but for 256 KiB: the model registers, the index (1.6 MB) does not fit.
	filler := filepath.Join(dir, "filler")
	fill(t, filler)
	if fi, err := os.Stat(filler); err != nil || os.Truncate(filler, fi.Size()-256<<10) != nil {
		t.Fatalf("free 256 KiB of %s: %v", filler, err)
	}
	store := &countedIndexes{DB: db.store}
	e = engine.New(store, quietConfig(diskFullConfig()))
	if err := e.Add(context.Background(), indexed()); err != nil {
		t.Fatal(err)
	}
	stop := runFollow(t, e)
	failedBuild := func(what string, calls int32) {
		t.Helper()
		if !within(10*time.Second, func() bool { return stats(e, "big").Indexes != "" && store.calls.Load() >= calls }) {
			t.Fatalf("%s: no failed build reported: %+v after %d builds", what, stats(e, "big"), store.calls.Load())
		}
		s := stats(e, "big")
		if !strings.Contains(s.Indexes, "database or disk is full") || !strings.Contains(s.Indexes, "indexes") {
			t.Errorf("%s: reason %q, want SQLite's disk full error about the indexes", what, s.Indexes)
		}
		if s.Failed != "" || s.Stalled {
			t.Errorf("%s: the model stopped (%q, stalled %v): a missing index must not stop it", what, s.Failed, s.Stalled)
		}
		if n, k := table(); n != 200 || k != 200 || has() {
			t.Errorf("%s: %d rows (%d keys), index %v; want the 200 rows, no index", what, n, k, has())
		}
		if m := db.model(t, "big"); m.Cursor != last || m.Processed != 200 || m.Status != "ok" {
			t.Errorf("%s: model %+v, want ok with 200 processed up to %v", what, m, last)
		}
	}
	failedBuild("full disk", 1)

	// A reload while the index is pending tries again, and fails again.
	before := store.calls.Load()
	if res := e.Reload(context.Background(), []engine.Model{indexed()}, nil); len(res.Restarted) != 1 || len(res.Errors) != 0 {
		t.Fatalf("reload: %+v, want big restarted", res)
	}
	failedBuild("after a reload", before+1)

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	// No message arrives: the retry comes at its time all the same.
	if !within(10*time.Second, func() bool { return has() && stats(e, "big").Indexes == "" }) {
		t.Fatalf("space freed, no message since: index %v after %d builds, stats %+v", has(), store.calls.Load(), stats(e, "big"))
	}
	var more []*engine.Message
	for i := 201; i <= 220; i++ {
		more = append(more, message(t, fmt.Sprintf("i%03d", i), tBuild, float64(i)))
	}
	ingest(t, e, more...)
	last = more[len(more)-1].Pos()
	if !within(10*time.Second, func() bool { return db.model(t, "big").Cursor == last }) {
		t.Fatalf("cursor %v, want %v: %+v", db.model(t, "big").Cursor, last, stats(e, "big"))
	}
	calls := store.calls.Load()
	time.Sleep(time.Second)
	if n := store.calls.Load(); n != calls {
		t.Errorf("%d more builds after the index was built", n-calls)
	}
	stop()
	var viaIndex int
	if err := db.sql.QueryRow(`SELECT count(*) FROM ` + schema.Quote(schema.TableName("big")) + ` INDEXED BY ` + schema.Quote(index) + ` WHERE "blob" >= ''`).Scan(&viaIndex); err != nil {
		t.Fatal(err)
	}
	if n, k := table(); n != 220 || k != 220 || viaIndex != 220 {
		t.Errorf("%d rows (%d keys), %d through the index; want 220 of each", n, k, viaIndex)
	}
	if m := db.model(t, "big"); m.Processed != 220 || m.Status != "ok" {
		t.Errorf("model %+v, want ok with 220 processed", m)
	}
}
