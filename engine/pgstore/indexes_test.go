package pgstore_test

import (
	"testing"

	"github.com/jackc/pgx/v5"

	"statscache/engine"
	"statscache/engine/pgstore"
	"statscache/engine/pgstore/pgtest"
	"statscache/schema"
)

// TestDeclaredIndexes: as on SQLite, Register leaves out the indexes of
// the columns declared with index = true and BuildIndexes makes them, once;
// two stores on the database building them at once both succeed.
func TestDeclaredIndexes(t *testing.T) {
	ctx := t.Context()
	u := pgtest.URL(t)
	spec := &engine.ModelSpec{Ident: "by-topic", Table: schema.Table{
		Name: "model_by_topic",
		Columns: []schema.Column{
			{Name: "timestamp", Type: schema.Real, NotNull: true},
			{Name: "topic", Type: schema.Text, NotNull: true, Index: true},
			{Name: "n", Type: schema.Integer},
		},
		Key: []string{"timestamp", "topic"},
	}}
	var dbs []*pgstore.DB
	for i := 0; i < 2; i++ {
		db, err := pgstore.Open(ctx, u, pgstore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if _, err := db.Register(ctx, spec); err != nil {
			t.Fatal(err)
		}
		dbs = append(dbs, db)
	}
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	indexes := func() []string {
		rows, err := conn.Query(ctx, `SELECT indexname FROM pg_indexes WHERE tablename = 'model_by_topic' AND indexname NOT LIKE '%pkey' ORDER BY indexname`)
		if err != nil {
			t.Fatal(err)
		}
		names, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		return names
	}
	if got := indexes(); len(got) != 1 || got[0] != "model_by_topic_id" {
		t.Fatalf("indexes after Register: %q, want only the row numbers'", got)
	}
	errs := make(chan error, 2)
	for _, db := range dbs {
		go func() { errs <- db.BuildIndexes(ctx, "by-topic") }()
	}
	for range dbs {
		if err := <-errs; err != nil {
			t.Errorf("BuildIndexes: %v", err)
		}
	}
	if err := dbs[0].BuildIndexes(ctx, "by-topic"); err != nil {
		t.Fatal(err)
	}
	if got := indexes(); len(got) != 2 || got[0] != "model_by_topic_id" || got[1] != "model_by_topic_topic" {
		t.Errorf("indexes after BuildIndexes: %q", got)
	}
}
