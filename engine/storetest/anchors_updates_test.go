package storetest

import (
	"reflect"
	"testing"

	"statscache/engine"
)

// TestAnchorsKeptWhileRowsUpdate: an upsert that updates a row keeps its
// "id" but still takes the next number from the store, so a table whose
// rows are only updated (a counter per second and topic, the common model)
// sees its newest id run far ahead of its row count. The anchors stay exact
// then (no row was added), so they must not be read again: reading them
// costs a full pass of the table, which an update-heavy table would pay on
// nearly every deep page. Deep pages, new and at an End from before the
// updates, with limits and odd page sizes, still equal the table listed
// by key.
func TestAnchorsKeptWhileRowsUpdate(t *testing.T) {
	each(t, func(t *testing.T, db store) {
		ctx := t.Context()
		builds := db.(interface{ AnchorBuilds() int }).AnchorBuilds
		register(t, db, "u")
		cats := []string{"a", "B", "b", "é", "z", "Ω"}
		cursor := int64(0)
		put := func(from, n int, refs int64) {
			var ops []engine.RowOp
			for i := from; i < from+n; i++ {
				ops = append(ops, engine.RowOp{Kind: engine.OpUpsert, Row: row(float64(i/len(cats)), cats[i%len(cats)], refs)})
			}
			cursor++
			commit(t, db, "u", ops, nil, engine.Checkpoint{Cursor: engine.Position{TimeUS: cursor, Key: "k"}})
		}
		all := func(end int64) [][]any { return listByKey(t, db, "u", end, 250) }
		check := func(what string, end int64) {
			t.Helper()
			want := all(end)
			rev := make([][]any, len(want))
			for i, r := range want {
				rev[len(want)-1-i] = r
			}
			for _, limit := range []int{0, 2500} {
				n := len(want)
				if limit > 0 {
					n = min(n, limit)
				}
				for _, off := range []int{500, 512, 1023, 1024, n / 2, n - 513, n - 512, n - 7, n - 1} {
					for _, desc := range []bool{false, true} {
						page, err := db.Rows(ctx, "u", engine.RowQuery{Count: 13, Offset: off, Desc: desc, End: end, Limit: limit})
						if err != nil {
							t.Fatal(err)
						}
						src := want
						if desc {
							src = rev
						}
						exp := src[off:min(off+13, n)]
						if page.Total != n || !reflect.DeepEqual(page.Rows, exp) {
							t.Fatalf("%s: offset %d desc %v limit %d end %d: total %d (want %d), rows\n%v\nwant\n%v",
								what, off, desc, limit, end, page.Total, n, short(page.Rows), short(exp))
						}
					}
				}
			}
		}
		put(0, 3000, 1)
		check("new", 0)
		if builds() != 1 {
			t.Fatalf("anchors read %d times over one snapshot, want 1", builds())
		}
		first, err := db.Rows(ctx, "u", engine.RowQuery{Count: 1})
		if err != nil {
			t.Fatal(err)
		}
		// Batches of 3,000 updates and 10 new rows: the new rows' ids are
		// 3,000 past the newest before, so two of them move the newest id
		// 6,020 on while the table gains 20 rows.
		put(0, 3010, 2)
		check("one batch of updates", 0)
		put(0, 3020, 3)
		check("after updates", 0)
		check("before the updates", first.End)
		if builds() != 1 {
			t.Errorf("anchors read %d times for a table that gained 20 rows among 6,000 updates, want 1", builds())
		}
		// Many new rows: read again.
		put(3020, 2500, 9)
		check("many rows added", 0)
		if builds() != 2 {
			t.Errorf("anchors read %d times after 2,500 rows were added, want 2", builds())
		}
	})
}
