package engine_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"statscache/engine"
	"statscache/engine/sqlstore"
	"statscache/schema"
)

// TestDeclaredIndexBuiltOnceCaughtUp: the index a model declares on a
// column (index = true) is not in its new table while the model computes
// its history, and is there once the model has caught up, over every row.
func TestDeclaredIndexBuiltOnceCaughtUp(t *testing.T) {
	db := openTestDB(t, "")
	m := newFake("indexed")
	m.spec.Table.Columns[1].Index = true // topic
	e := engine.New(db.store, quietConfig(engine.Config{BatchSize: 50}))
	if err := e.Add(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	index := schema.TableName("indexed") + "_topic"
	has := func() bool {
		var n int
		if err := db.sql.QueryRow(`SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND name = ?`, index).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == 1
	}
	if has() {
		t.Fatalf("index %s exists before the model computed anything", index)
	}
	var msgs []*engine.Message
	for i := 1; i <= 300; i++ {
		msgs = append(msgs, message(t, fmt.Sprintf("m%03d", i), fmt.Sprintf("org.fedoraproject.prod.t%d", i%7), float64(i)))
	}
	ingest(t, e, msgs...)
	stop := runFollow(t, e)
	defer stop()
	last := msgs[len(msgs)-1].Pos()
	if !within(10*time.Second, func() bool { return db.model(t, "indexed").Cursor == last && has() }) {
		t.Fatalf("caught up (cursor %v, want %v): index %s exists = %v", db.model(t, "indexed").Cursor, last, index, has())
	}
	// The index holds every row: a count through it equals the table's.
	var viaIndex, all int
	table := schema.Quote(schema.TableName("indexed"))
	if err := db.sql.QueryRow(`SELECT count(*) FROM ` + table + ` INDEXED BY ` + schema.Quote(index) + ` WHERE "topic" >= ''`).Scan(&viaIndex); err != nil {
		t.Fatal(err)
	}
	if err := db.sql.QueryRow(`SELECT count(*) FROM ` + table).Scan(&all); err != nil {
		t.Fatal(err)
	}
	if all == 0 || viaIndex != all {
		t.Errorf("the index holds %d rows, the table %d", viaIndex, all)
	}
}

// failingIndexes is a store whose declared indexes cannot be built (a full
// disk), counting the attempts.
type failingIndexes struct {
	*sqlstore.DB
	calls atomic.Int32
}

func (f *failingIndexes) BuildIndexes(context.Context, string) error {
	f.calls.Add(1)
	return errors.New("database or disk is full")
}

// TestDeclaredIndexFailureWaits: a model at the head whose indexes cannot
// be built tries again a minute later, not each time it comes back to the
// head (about every batch while messages arrive).
func TestDeclaredIndexFailureWaits(t *testing.T) {
	db := openTestDB(t, "")
	store := &failingIndexes{DB: db.store}
	m := newFake("indexed")
	m.spec.Table.Columns[1].Index = true
	e := engine.New(store, quietConfig(engine.Config{BatchSize: 5}))
	if err := e.Add(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	stop := runFollow(t, e)
	defer stop()
	var last engine.Position
	for i := 1; i <= 20; i++ {
		msg := message(t, fmt.Sprintf("m%03d", i), "org.fedoraproject.prod.t", float64(i))
		ingest(t, e, msg)
		last = msg.Pos()
		time.Sleep(20 * time.Millisecond)
	}
	if !within(10*time.Second, func() bool { return db.model(t, "indexed").Cursor == last }) {
		t.Fatalf("the model did not process the messages: cursor %v", db.model(t, "indexed").Cursor)
	}
	if n := store.calls.Load(); n != 1 {
		t.Errorf("%d attempts to build the indexes over 20 arrivals at the head, want 1 (then a minute's wait)", n)
	}
}
