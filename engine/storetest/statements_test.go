package storetest

import (
	"fmt"
	"sort"
	"strings"
	"testing"

	"statscache/engine"
	"statscache/schema"
)

// altSpec is a model whose rows may carry either of two non-key integer
// columns, so that a statement written for one column set puts the other's
// values in the wrong column.
func altSpec(ident string) *engine.ModelSpec {
	sp := spec(ident)
	sp.Table.Columns = append(sp.Table.Columns[:2:2], // timestamp, category
		schema.Column{Name: "volume", Type: schema.Integer},
		schema.Column{Name: "other", Type: schema.Integer},
		schema.Column{Name: "note", Type: schema.Text})
	return sp
}

// refRow is a row of the reference the test computes in Go.
type refRow struct {
	id   int64
	vals map[string]any // volume, other, note
}

// refApply applies ops to ref as a store must: every op takes the next
// number (next), which a new row keeps; an add sums integers, an upsert
// replaces the columns it names (the test inserts only new keys).
func refApply(ref map[string]*refRow, next *int64, ops []engine.RowOp) {
	for _, op := range ops {
		id := *next
		*next++
		k := fmt.Sprintf("%v|%v", op.Row["timestamp"], op.Row["category"])
		r := ref[k]
		if r == nil {
			r = &refRow{id: id, vals: map[string]any{}}
			ref[k] = r
		}
		for c, v := range op.Row {
			if c == "timestamp" || c == "category" {
				continue
			}
			if old, ok := r.vals[c].(int64); ok && op.Kind == engine.OpAdd {
				v = old + v.(int64)
			}
			r.vals[c] = v
		}
	}
}

// altOps makes n ops of one kind and column set, keys from key on.
func altOps(kind engine.OpKind, cols string, key, n int, val int64) []engine.RowOp {
	ops := make([]engine.RowOp, n)
	for i := range ops {
		r := engine.Row{"timestamp": float64(3600 * (1 + (key+i)%7)), "category": fmt.Sprintf("c%d", (key+i)/7)}
		switch cols {
		case "volume":
			r["volume"] = val + int64(i)
		case "other":
			r["other"] = val + int64(i)
		case "both":
			r["volume"], r["other"] = val, val+int64(i)
		case "note":
			r["note"] = fmt.Sprintf("n%d", val+int64(i))
		}
		ops[i] = engine.RowOp{Kind: kind, Row: r}
	}
	return ops
}

// TestApplyAlternatingStatements writes, in one transaction and over
// several, groups of operations whose kinds, column sets and row counts
// alternate, so that a statement written for one group would give another
// wrong rows (values in the wrong column, a sum for a replacement, the
// wrong number of rows) or fail. Each group has keys of its own, which no
// later group of the batch overwrites; as in the engine's batches,
// operations of one kind and column set that follow each other have
// distinct keys (PostgreSQL refuses a statement that updates a row twice). Every row must equal the reference, and
// the rows up to each row number must be as many as the reference has.
func TestApplyAlternatingStatements(t *testing.T) {
	var batches [][]engine.RowOp
	key := 1000 // new keys; the groups that write existing rows have keys below
	for b := 0; b < 4; b++ {
		var ops []engine.RowOp
		for _, g := range []struct {
			kind engine.OpKind
			cols string
			n    int
			at   int // the first key; -1: new keys
		}{
			{engine.OpInsert, "both", 3, -1},
			{engine.OpAdd, "volume", 3, 0},
			{engine.OpAdd, "other", 3, 3},
			{engine.OpUpsert, "other", 3, 6},
			{engine.OpUpsert, "volume", 2, 9},
			{engine.OpUpsert, "note", 2, 11},
			{engine.OpUpsert, "keys", 2, 13}, // key columns only: nothing to update
			{engine.OpAdd, "volume", 3, -1},
			{engine.OpAdd, "volume", 3, 15}, // joins the group before
			{engine.OpUpsert, "volume", 3, 18},
			{engine.OpAdd, "both", 1, 21},
			{engine.OpUpsert, "both", 1, 22},
			{engine.OpInsert, "note", 1, -1},
			// More rows than one statement of the SQLite store takes.
			{engine.OpAdd, "both", 700 + b, -1},
			{engine.OpUpsert, "both", 500, 100},
		} {
			k := g.at
			if k < 0 {
				k, key = key, key+g.n
			}
			ops = append(ops, altOps(g.kind, g.cols, k, g.n, int64(100*b+len(ops)))...)
		}
		batches = append(batches, ops)
	}
	each(t, func(t *testing.T, db store) {
		ctx := t.Context()
		if _, err := db.Register(ctx, altSpec("alt")); err != nil {
			t.Fatal(err)
		}
		ref := map[string]*refRow{}
		for i, ops := range batches {
			tx, err := db.Begin(ctx, "alt")
			if err != nil {
				t.Fatal(err)
			}
			// Half the batches in one call, half in pieces.
			if i%2 == 0 {
				err = tx.Apply(ops)
			} else {
				for j := 0; j < len(ops) && err == nil; j += 5 {
					err = tx.Apply(ops[j:min(j+5, len(ops))])
				}
			}
			if err != nil {
				tx.Rollback()
				t.Fatalf("batch %d: %v", i, err)
			}
			if err := tx.Commit(engine.Checkpoint{Cursor: engine.Position{TimeUS: int64(i + 1), Key: "a"}}); err != nil {
				t.Fatal(err)
			}
			// A transaction numbers on from the largest number in the
			// table: those its updates took last are used again.
			next := int64(1)
			for _, r := range ref {
				next = max(next, r.id+1)
			}
			refApply(ref, &next, ops)
		}
		page, err := db.Rows(ctx, "alt", engine.RowQuery{})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Rows) != len(ref) || len(ref) < 2000 {
			t.Fatalf("%d rows, want %d (at least 2000)", len(page.Rows), len(ref))
		}
		for _, r := range page.Rows {
			k := fmt.Sprintf("%v|%v", r[0], r[1])
			w := ref[k]
			if w == nil {
				t.Fatalf("row %v is not in the reference", r)
			}
			got := fmt.Sprint(r[2:])
			want := fmt.Sprint([]any{w.vals["volume"], w.vals["other"], w.vals["note"]})
			if got != want {
				t.Fatalf("row %s: %s, want %s", k, got, want)
			}
		}
		ids := make([]int64, 0, len(ref))
		for _, r := range ref {
			ids = append(ids, r.id)
		}
		sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
		var bad []string
		for i := 0; i < len(ids); i += 97 {
			p, err := db.Rows(ctx, "alt", engine.RowQuery{End: ids[i], Count: 1})
			if err != nil {
				t.Fatal(err)
			}
			if p.Total != i+1 {
				bad = append(bad, fmt.Sprintf("%d rows up to number %d, want %d", p.Total, ids[i], i+1))
			}
		}
		if len(bad) > 0 {
			t.Errorf("row numbers differ from the reference:\n%s", strings.Join(bad, "\n"))
		}
	})
}
