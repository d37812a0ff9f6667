package sqlstore

import (
	"context"
	"fmt"
	"testing"

	"statscache/engine"
	"statscache/schema"
)

// commitSpec is the model of BenchmarkCommit: the test model with a
// second integer column and a text column, which some rows leave out.
func commitSpec(ident string) *engine.ModelSpec {
	sp := testSpec(ident)
	sp.Table.Columns = append(sp.Table.Columns, schema.Column{Name: "other", Type: schema.Integer}, schema.Column{Name: "note", Type: schema.Text})
	return sp
}

// benchOps makes n ops of one kind, keys from key on, with the volume and
// other columns, or only note.
func benchOps(kind engine.OpKind, note bool, key, n int) []engine.RowOp {
	ops := make([]engine.RowOp, n)
	for i := range ops {
		r := engine.Row{"timestamp": float64(3600 * (1 + (key+i)%7)), "category": fmt.Sprintf("c%d", (key+i)/7)}
		if note {
			r["note"] = fmt.Sprintf("n%d", i)
		} else {
			r["volume"], r["other"] = int64(1000+i), int64(i)
		}
		ops[i] = engine.RowOp{Kind: kind, Row: r}
	}
	return ops
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
	batch := func() []engine.RowOp {
		ops := benchOps(engine.OpAdd, false, 0, 1200)
		ops = append(ops, benchOps(engine.OpUpsert, true, 0, 150)...)
		ops = append(ops, benchOps(engine.OpInsert, false, fresh, 100)...)
		fresh += 100
		return ops
	}
	commitBatch(b, db, "bench-1h", batch(), engine.Checkpoint{})
	b.ReportAllocs()
	b.ResetTimer()
	for i := 1; i <= b.N; i++ {
		b.StopTimer()
		ops := batch()
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

// A released argument slice holds no value of any statement it served,
// also past the last statement's length (a longer one before it), so the
// pool keeps no model's row values alive.
func TestRowWriterReleaseDropsEveryValue(t *testing.T) {
	var w rowWriter
	w.args = &[]any{}
	*w.args = append(*w.args, "a", "b", "c", "d", "e")
	*w.args = (*w.args)[:2] // the last statement was shorter
	s := w.args
	w.release()
	if w.args != nil {
		t.Fatal("release kept the slice")
	}
	for i, v := range (*s)[:cap(*s)] {
		if v != nil {
			t.Errorf("value %d still held after release: %v", i, v)
		}
	}
}
