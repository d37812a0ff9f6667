package sqlstore

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"

	"statscache/engine"
	"statscache/schema"
)

// commitSpec is a model whose rows may carry either of two non-key columns
// of the same type, so that a statement written for one column set puts
// the other's values in the wrong column.
func commitSpec(ident string) *engine.ModelSpec {
	sp := testSpec(ident)
	sp.Table.Columns = append(sp.Table.Columns, schema.Column{Name: "other", Type: schema.Integer}, schema.Column{Name: "note", Type: schema.Text})
	return sp
}

// refRow is a row of the reference the test computes in Go.
type refRow struct {
	id                  int64
	volume, other, note any
}

// refApply applies ops to ref as the store must: every op takes the next
// number (next), which a new row keeps; an insert of an existing key is refused
// (the test makes none); an add sums integers, an upsert replaces the
// columns it names.
func refApply(ref map[string]*refRow, next *int64, ops []engine.RowOp) {
	for _, op := range ops {
		id := *next
		*next++
		k := fmt.Sprintf("%v|%v", op.Row["timestamp"], op.Row["category"])
		r := ref[k]
		if r == nil {
			r = &refRow{id: id}
			ref[k] = r
			for c, v := range op.Row {
				switch c {
				case "volume":
					r.volume = v
				case "other":
					r.other = v
				case "note":
					r.note = v
				}
			}
			continue
		}
		for c, v := range op.Row {
			p := map[string]*any{"volume": &r.volume, "other": &r.other, "note": &r.note}[c]
			if p == nil {
				continue
			}
			if op.Kind == engine.OpAdd && c != "note" {
				old, _ := (*p).(int64)
				*p = old + v.(int64)
			} else {
				*p = v
			}
		}
	}
}

func refDump(ref map[string]*refRow) string {
	var lines []string
	for k, r := range ref {
		show := func(v any) string {
			if v == nil {
				return "<nil>"
			}
			return fmt.Sprint(v)
		}
		lines = append(lines, fmt.Sprintf("%d|%s|%s|%s|%s", r.id, k, show(r.volume), show(r.other), show(r.note)))
	}
	sort.Slice(lines, func(i, j int) bool {
		var a, b int64
		fmt.Sscan(lines[i], &a)
		fmt.Sscan(lines[j], &b)
		return a < b
	})
	return strings.Join(lines, "\n")
}

// opGroup makes n ops of one kind and column set, keys from key on.
func opGroup(kind engine.OpKind, cols string, key, n int, val int64) []engine.RowOp {
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
// alternate, so that the statement written for one group would give
// another group wrong rows (values in the wrong column, a sum for a
// replacement, the wrong number of rows) or fail, and compares every row,
// its number included, with the reference.
func TestApplyAlternatingStatements(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, 0)
	sp := commitSpec("alt-1h")
	if _, err := db.Register(ctx, sp); err != nil {
		t.Fatal(err)
	}
	ref := map[string]*refRow{}
	next := int64(1)
	var batches [][]engine.RowOp
	key := 0
	for b := 0; b < 4; b++ {
		var ops []engine.RowOp
		add := func(kind engine.OpKind, cols string, n int, fresh bool) {
			k := key
			if fresh {
				key += n
			} else {
				k = 0 // the rows written first, which exist by now
			}
			ops = append(ops, opGroup(kind, cols, k, n, int64(100*b+len(ops)))...)
		}
		add(engine.OpInsert, "both", 3, true)
		add(engine.OpAdd, "volume", 3, false)
		add(engine.OpAdd, "other", 3, false)
		add(engine.OpUpsert, "other", 3, false)
		add(engine.OpUpsert, "volume", 2, false)
		add(engine.OpUpsert, "note", 2, false)
		add(engine.OpUpsert, "keys", 2, false) // key columns only: DO NOTHING
		add(engine.OpAdd, "volume", 3, true)
		add(engine.OpAdd, "volume", 3, false)
		add(engine.OpUpsert, "volume", 3, false)
		add(engine.OpAdd, "both", 1, false)
		add(engine.OpUpsert, "both", 1, false)
		add(engine.OpInsert, "note", 1, true)
		// More rows than one statement takes, split into a full
		// statement and a remainder.
		add(engine.OpAdd, "both", 700+b, true)
		add(engine.OpAdd, "both", 500, false)
		batches = append(batches, ops)
	}
	for i, ops := range batches {
		tx, err := db.Begin(ctx, "alt-1h")
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
		next = 1
		for _, r := range ref {
			next = max(next, r.id+1)
		}
		refApply(ref, &next, ops)
	}
	got := dumpQuery(t, db, `SELECT "id", CAST("timestamp" AS INTEGER) || '|' || category, volume, other, note FROM model_alt_1h ORDER BY "id"`)
	want := refDump(ref)
	if got != want {
		gl, wl := strings.Split(got, "\n"), strings.Split(want, "\n")
		for i := range min(len(gl), len(wl)) {
			if gl[i] != wl[i] {
				t.Fatalf("rows differ from the reference (%d and %d rows); first difference:\n got  %s\n want %s", len(gl), len(wl), gl[i], wl[i])
			}
		}
		t.Fatalf("%d rows, want %d", len(gl), len(wl))
	}
	if len(ref) < 2000 {
		t.Fatalf("the reference has %d rows: the test wrote fewer than it means to", len(ref))
	}
}

// BenchmarkCommit is one model's commit of a batch like those of a
// replay: most rows updated by adds, some inserted, a few upserts of
// another column set, in several statements with remainders.
func BenchmarkCommit(b *testing.B) {
	ctx := context.Background()
	db := openTest(b, 0)
	if _, err := db.Register(ctx, commitSpec("bench-1h")); err != nil {
		b.Fatal(err)
	}
	fresh := 100000
	batch := func(i int) []engine.RowOp {
		ops := opGroup(engine.OpAdd, "volume", 0, 1200, 1)
		ops = append(ops, opGroup(engine.OpUpsert, "note", 0, 150, int64(i))...)
		ops = append(ops, opGroup(engine.OpInsert, "both", fresh, 100, 1)...)
		fresh += 100
		return ops
	}
	commitBatch(b, db, "bench-1h", batch(0), engine.Checkpoint{})
	b.ReportAllocs()
	b.ResetTimer()
	for i := 1; i <= b.N; i++ {
		b.StopTimer()
		ops := batch(i)
		b.StartTimer()
		tx, err := db.Begin(ctx, "bench-1h")
		if err != nil {
			b.Fatal(err)
		}
		if err := tx.Apply(ops); err != nil {
			b.Fatal(err)
		}
		if err := tx.Commit(engine.Checkpoint{Cursor: engine.Position{TimeUS: int64(i), Key: "a"}}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*1450)/b.Elapsed().Seconds(), "rows/s")
}
