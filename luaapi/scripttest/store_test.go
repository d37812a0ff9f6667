package scripttest

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"testing"

	"statscache/engine"
	"statscache/engine/sqlstore"
	"statscache/schema"
)

func storeTestSpec() *engine.ModelSpec {
	return &engine.ModelSpec{Ident: "t", Table: schema.Table{
		Name: "model_t",
		Columns: []schema.Column{
			{Name: "timestamp", Type: schema.Real, NotNull: true},
			{Name: "category", Type: schema.Text},
			{Name: "volume", Type: schema.Integer, NotNull: true},
			{Name: "score", Type: schema.Real},
			{Name: "note", Type: schema.Text},
			{Name: "data", Type: schema.JSON},
			{Name: "extra", Type: schema.Integer},
		},
		Key: []string{"timestamp", "category"},
	}}
}

// TestStoreMatchesSQLStore applies the same batches of row writes to the
// in-memory store and to the SQLite store and checks that both fail on the
// same batches and end with the same rows.
func TestStoreMatchesSQLStore(t *testing.T) {
	ctx := context.Background()
	k1 := engine.Row{"timestamp": 60.0, "category": "a"}
	k2 := engine.Row{"timestamp": int64(60), "category": "b"}
	with := func(k engine.Row, kv ...any) engine.Row {
		r := engine.Row{}
		for c, v := range k {
			r[c] = v
		}
		for i := 0; i < len(kv); i += 2 {
			r[kv[i].(string)] = kv[i+1]
		}
		return r
	}
	ins, ups, add := engine.OpInsert, engine.OpUpsert, engine.OpAdd
	op := func(k engine.OpKind, r engine.Row) engine.RowOp { return engine.RowOp{Kind: k, Row: r} }
	batches := [][]engine.RowOp{
		{op(ins, with(k1, "volume", 2.0, "score", 1.5, "note", "x", "data", map[string]any{"a": []any{1.0, "b"}}))},
		{op(ins, with(k1, "volume", 1.0))},                                           // duplicate key
		{op(add, with(k1, "volume", 3.0, "score", 0.25, "note", "y", "extra", nil))}, // sums, replaces text, NULL extra
		{op(add, with(k1, "volume", int64(1), "extra", 4.0))},                        // NULL + 4
		{op(ups, with(k1, "volume", 7.0, "data", "str"))},                            // keeps score and note
		{op(ups, with(k1, "note", "z"))},                                             // NOT NULL volume missing
		{op(add, with(k2, "note", "n"))},                                             // new row without volume
		{op(add, with(k2, "volume", 1.0)), op(ins, with(k2, "volume", 1.0))},         // a failing batch changes nothing
		{op(ups, with(k2, "volume", 5.0, "score", int64(2), "data", nil)), op(add, with(k2, "volume", 1.0, "score", 0.5))},
		{op(ups, with(k2, "volume", 1.0, "category", "b"))},
		{op(ins, engine.Row{"timestamp": 61.5, "category": "c", "volume": 0.0, "data": []any{}})},
		{op(ins, engine.Row{"timestamp": 62.0, "volume": 1.0})}, // NULL key column
	}
	mem := NewStore()
	sdb, err := sqlstore.Open(ctx, filepath.Join(t.TempDir(), "s.db"), sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer sdb.Close()
	stores := []engine.Store{mem, sdb}
	for _, s := range stores {
		if _, err := s.Register(ctx, storeTestSpec()); err != nil {
			t.Fatal(err)
		}
	}
	keys := []engine.Row{k1, k2, {"timestamp": 61.5, "category": "c"}, {"timestamp": 62.0, "category": "d"}}
	for i, b := range batches {
		var errs [2]error
		for j, s := range stores {
			tx, err := s.Begin(ctx, "t")
			if err != nil {
				t.Fatal(err)
			}
			if errs[j] = tx.Apply(b); errs[j] != nil {
				tx.Rollback()
				continue
			}
			if err := tx.Commit(engine.Checkpoint{Cursor: engine.Position{TimeUS: int64(i + 1), Key: "k"}}); err != nil {
				t.Fatal(err)
			}
		}
		if (errs[0] == nil) != (errs[1] == nil) {
			t.Fatalf("batch %d: in-memory error %v, SQL error %v", i, errs[0], errs[1])
		}
		if errs[1] != nil && errors.Is(errs[1], engine.ErrRowConflict) != errors.Is(errs[0], engine.ErrRowConflict) {
			t.Errorf("batch %d: in-memory error %v, SQL error %v", i, errs[0], errs[1])
		}
		for _, k := range keys {
			var rows [2]engine.Row
			for j, s := range stores {
				if rows[j], err = s.GetRow(ctx, "t", k); err != nil {
					t.Fatal(err)
				}
			}
			if !reflect.DeepEqual(rows[0], rows[1]) {
				t.Errorf("batch %d, key %v:\nin memory %s\nSQL       %s", i, k, show(rows[0]), show(rows[1]))
			}
		}
	}
	all, err := mem.Rows("t")
	if err != nil || len(all) != 3 {
		t.Errorf("rows: %v %v", all, err)
	}
}

func show(r engine.Row) string {
	if r == nil {
		return "nil"
	}
	out := "{"
	for _, c := range storeTestSpec().Table.Columns {
		out += fmt.Sprintf("%s=%#v ", c.Name, r[c.Name])
	}
	return out + "}"
}
