package storetest

import (
	"fmt"
	"reflect"
	"testing"

	"statscache/engine"
	"statscache/schema"
)

// TestAnchorsForgetDroppedTable: a table's name comes back when a model's
// declaration is changed and then changed back (a rebuild names its table
// after the declaration's fingerprint), so a promotion may put a new table
// under a name whose page anchors the store still holds. The new table's
// rows here differ from the old one's everywhere but in the row with the
// old newest id and in their number, which is all the anchors' own check
// looks at: the anchors of the dropped table must not be used for it,
// whether this store or another process (an instance sharing the
// PostgreSQL database, a second process on the SQLite file) promoted.
func TestAnchorsForgetDroppedTable(t *testing.T) {
	for _, k := range kinds {
		for _, other := range []bool{false, true} {
			t.Run(fmt.Sprint(k.name, "/other=", other), func(t *testing.T) {
				reader := k.open(t, opts{})
				writer := reader
				if other {
					writer = k.reopen(t, reader)
				}
				anchorsForgetDroppedTable(t, reader, writer)
			})
		}
	}
}

func anchorsForgetDroppedTable(t *testing.T, db, w store) {
	{
		ctx := t.Context()
		fill := func(ident string, first float64, cp int64) {
			var ops []engine.RowOp
			for i := 0; i < 2999; i++ {
				ops = append(ops, engine.RowOp{Kind: engine.OpInsert, Row: row(first+float64(i), "a", int64(i))})
			}
			// The newest row: the same key in both tables.
			ops = append(ops, engine.RowOp{Kind: engine.OpInsert, Row: row(5000, "z", 0)})
			commit(t, w, ident, ops, nil, engine.Checkpoint{Cursor: engine.Position{TimeUS: cp, Key: "k"}})
		}
		deep := func() engine.RowPage {
			p, err := db.Rows(ctx, "m", engine.RowQuery{Count: 3, Offset: 1024})
			if err != nil {
				t.Fatal(err)
			}
			return p
		}
		register(t, w, "m")
		name := spec("m").Table.Name
		fill("m", 0, 1)
		deep() // the anchors of the first table
		promote := func(n, table string, first float64, cp int64) {
			shadow := "m" + engine.ShadowSep + n
			sp := spec(shadow)
			sp.Table.Name = table
			if _, err := w.Register(ctx, sp); err != nil {
				t.Fatal(err)
			}
			fill(shadow, first, cp)
			if err := w.Promote(ctx, shadow, "m", nil); err != nil {
				t.Fatal(err)
			}
		}
		promote("2", schema.TableName("m_2"), 100000, 2) // drops the first table
		promote("3", name, 10000, 3)                     // the first table's name again
		got := deep()
		page, err := db.Rows(ctx, "m", engine.RowQuery{Count: 3, After: []any{float64(10000 + 1022), "a"}})
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got.Rows, page.Rows) {
			t.Errorf("offset 1024 of the table made again under its old name:\n%v\nwant\n%v", short(got.Rows), short(page.Rows))
		}
	}
}
