package storetest

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"

	"statscache/engine"
)

// TestDeepPagesByAnchors: a deep page by number, found from the store's
// page anchors, is the same slice of the table as the rows listed one page
// after another by key, in both orders, at the table's newest snapshot
// and at older ones (a fixed End), while the table grows between reads by
// rows at its end, rows in its middle and updates; the anchors are read in
// full only when the table has moved far from them.
func TestDeepPagesByAnchors(t *testing.T) {
	each(t, func(t *testing.T, db store) {
		ctx := t.Context()
		builds := db.(interface{ AnchorBuilds() int }).AnchorBuilds
		register(t, db, "a")
		grow0 := grower(t, db, "a", rand.New(rand.NewPCG(7, 9)))
		grow := func(n int, spread float64) { grow0(n, 0, spread) }
		all := func(end int64) [][]any { return listByKey(t, db, "a", end, 97) }
		check := func(what string, end int64) {
			t.Helper()
			want := all(end)
			rev := make([][]any, len(want))
			for i, r := range want {
				rev[len(want)-1-i] = r
			}
			for _, off := range []int{500, 511, 512, 513, 1024, 1500, len(want) / 2, len(want) - 600, len(want) - 40} {
				for _, desc := range []bool{false, true} {
					page, err := db.Rows(ctx, "a", engine.RowQuery{Count: 40, Offset: off, Desc: desc, End: end})
					if err != nil {
						t.Fatal(err)
					}
					src := want
					if desc {
						src = rev
					}
					exp := src[off:min(off+40, len(src))]
					if page.Total != len(want) || !reflect.DeepEqual(page.Rows, exp) {
						t.Fatalf("%s: offset %d desc %v end %d: total %d (want %d), rows\n%v\nwant\n%v", what, off, desc, end, page.Total, len(want), short(page.Rows), short(exp))
					}
				}
			}
		}
		grow(3000, 500)
		check("first", 0)
		if builds() != 1 {
			t.Errorf("anchors read %d times over one snapshot, want 1", builds())
		}
		first, err := db.Rows(ctx, "a", engine.RowQuery{Count: 1})
		if err != nil {
			t.Fatal(err)
		}
		old := first.End
		// Rows in the middle (earlier times), and updates of existing ones.
		grow(300, 500)
		check("after middle rows", 0)
		check("old snapshot", old)
		if builds() != 1 {
			t.Errorf("anchors read %d times for a table that moved a little, want 1", builds())
		}
		// Far more rows: read again.
		grow(4000, 900)
		check("after many rows", 0)
		if builds() != 2 {
			t.Errorf("anchors read %d times after the table doubled, want 2", builds())
		}
		check("old snapshot, far behind", old)
	})
}

// grower returns what commits n rows to the model's table in one batch,
// at random categories and whole minutes in [from, from+spread minutes):
// rows at the end, in the middle, or updates of existing ones (the same
// key again), as the rows' ids go up.
func grower(t *testing.T, db store, ident string, rng *rand.Rand) func(n int, from, spread float64) {
	cats := []string{"a", "B", "b", "é", "z", "zz", "Ω"}
	seq := int64(0)
	return func(n int, from, spread float64) {
		t.Helper()
		var ops []engine.RowOp
		seen := map[string]bool{} // a batch holds a key once, as the engine folds it
		for i := 0; i < n; i++ {
			seq++
			ts := from + float64(60*int64(rng.Float64()*spread))
			cat := cats[rng.IntN(len(cats))]
			if k := fmt.Sprint(ts, cat); !seen[k] {
				seen[k] = true
				ops = append(ops, engine.RowOp{Kind: engine.OpAdd, Row: row(ts, cat, seq)})
			}
		}
		commit(t, db, ident, ops, nil, engine.Checkpoint{Cursor: engine.Position{TimeUS: seq, Key: "k"}})
	}
}

// listByKey lists the model's table as of end (0: the newest) page after
// page by key, per rows a page: the oracle of the deep pages by number,
// which it does not use.
func listByKey(t *testing.T, db store, ident string, end int64, per int) [][]any {
	t.Helper()
	var rows [][]any
	var after []any
	for {
		page, err := db.Rows(t.Context(), ident, engine.RowQuery{Count: per, After: after, End: end})
		if err != nil {
			t.Fatal(err)
		}
		rows = append(rows, page.Rows...)
		if len(page.Rows) < per {
			return rows
		}
		after = page.Last
	}
}

func short(rows [][]any) string {
	if len(rows) > 3 {
		return fmt.Sprintf("%v ... (%d rows)", rows[:3], len(rows))
	}
	return fmt.Sprint(rows)
}
