package engine_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"statscache/engine"
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
