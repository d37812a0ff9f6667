package pgstore_test

import (
	"fmt"
	"testing"

	"statscache/engine"
	"statscache/engine/pgstore"
	"statscache/engine/pgstore/pgtest"
	"statscache/schema"
)

// TestRowSetsBounded: a model whose rows name any subset of its columns
// writes a new column set in nearly every commit. What the table keeps of
// them (their numbers and statement texts, scanned for every group of rows)
// stays bounded however long the daemon runs, and every row is still
// written to its own columns.
func TestRowSetsBounded(t *testing.T) {
	ctx := t.Context()
	const opt = 10 // optional columns: 1,024 column sets
	sp := &engine.ModelSpec{Ident: "subsets", Table: schema.Table{
		Name:    "model_subsets",
		Columns: []schema.Column{{Name: "timestamp", Type: schema.Real, NotNull: true}, {Name: "k", Type: schema.Integer, NotNull: true}},
		Key:     []string{"timestamp", "k"},
	}}
	for c := range opt {
		sp.Table.Columns = append(sp.Table.Columns, schema.Column{Name: fmt.Sprintf("c%d", c), Type: schema.Integer})
	}
	db, err := pgstore.Open(ctx, pgtest.URL(t), pgstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Register(ctx, sp); err != nil {
		t.Fatal(err)
	}
	// Row k names the columns of k's bits, each holding 100*k + column.
	const batches, perBatch = 20, 40
	k := 1
	for b := range batches {
		tx, err := db.Begin(ctx, "subsets")
		if err != nil {
			t.Fatal(err)
		}
		var ops []engine.RowOp
		for range perBatch {
			r := engine.Row{"timestamp": 60.0, "k": int64(k)}
			for c := range opt {
				if k&(1<<c) != 0 {
					r[fmt.Sprintf("c%d", c)] = int64(100*k + c)
				}
			}
			ops = append(ops, engine.RowOp{Kind: engine.OpUpsert, Row: r})
			k++
		}
		if err := tx.Apply(ops); err != nil {
			tx.Rollback()
			t.Fatal(err)
		}
		if err := tx.Commit(engine.Checkpoint{Cursor: engine.Position{TimeUS: int64(b + 1), Key: "a"}}); err != nil {
			t.Fatal(err)
		}
	}
	if n := db.RowSets("subsets"); n > 64 {
		t.Errorf("the table remembers %d column sets after %d commits of new ones, want at most 64", n, batches)
	}
	for k := 1; k < batches*perBatch; k += 37 {
		row, err := db.GetRow(ctx, "subsets", engine.Row{"timestamp": 60.0, "k": int64(k)})
		if err != nil {
			t.Fatal(err)
		}
		for c := range opt {
			var want any
			if k&(1<<c) != 0 {
				want = int64(100*k + c)
			}
			if got := row[fmt.Sprintf("c%d", c)]; fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("row %d column c%d: %v, want %v", k, c, got, want)
			}
		}
	}
}
