package storetest

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"

	"statscache/engine"
)

// TestTimeRangesByAnchors: a time range's total and every one of its pages,
// counted from the store's page anchors, are those of the rows listed one
// page after another by key and filtered by time in Go, for ranges that
// are empty, inside one anchor gap, across many anchors, open on a side,
// at anchors' exact timestamps, before the first row and after the last,
// in both orders, at the table's newest snapshot and at older ones, while
// rows are added at the end and in the middle and updated; the anchors
// count every range while they serve the snapshot (none is counted in
// full), and a snapshot they cannot serve is counted as before.
func TestTimeRangesByAnchors(t *testing.T) {
	each(t, func(t *testing.T, db store) {
		ctx := t.Context()
		spans := db.(interface{ AnchorSpans() int }).AnchorSpans
		builds := db.(interface{ AnchorBuilds() int }).AnchorBuilds
		register(t, db, "a")
		grow := grower(t, db, "a", rand.New(rand.NewPCG(3, 5)))
		f := func(v float64) *float64 { return &v }
		grow(3000, 0, 500)
		older, err := db.Rows(ctx, "a", engine.RowQuery{Count: 1})
		if err != nil {
			t.Fatal(err)
		}
		grow(100, 0, 500) // a snapshot (older) lacking rows the anchors hold
		// The anchors' timestamps: every 512th row of this snapshot, which
		// the first ranged page reads them from.
		var at []float64
		for i, r := range listByKey(t, db, "a", 0, 97) {
			if i%512 == 0 {
				at = append(at, r[0].(float64))
			}
		}
		if len(at) < 5 {
			t.Fatalf("%d anchors, want at least 5", len(at))
		}
		last := 60 * 499.0
		ranges := [][2]*float64{
			{f(30.5), f(30.5)}, {f(600), f(540)}, {f(at[1] + 60), f(at[1] + 120)}, {f(at[1]), f(at[4])},
			{f(at[1] - 30), f(at[4] + 30)}, {f(at[2]), nil}, {nil, f(at[3])}, {f(at[2]), f(at[2])},
			{f(at[2]), f(at[3])}, {f(at[3] + 1), f(at[3] - 1)}, {nil, f(-100)}, {f(-100), f(-50)},
			{f(-100), f(at[2])}, {f(1e9), nil}, {f(last), nil}, {f(last + 1), nil}, {f(-1e9), f(1e9)},
			{nil, f(at[len(at)-1])}, {f(at[len(at)-1]), nil}, {f(0), f(0)}, {f(-1e9), nil},
		}
		calls := 0
		check := func(what string, end int64, anchored bool) {
			t.Helper()
			all := listByKey(t, db, "a", end, 97)
			before := spans()
			calls = 0
			for _, rg := range ranges {
				var want [][]any
				for _, r := range all {
					ts := r[0].(float64)
					if (rg[0] == nil || ts >= *rg[0]) && (rg[1] == nil || ts <= *rg[1]) {
						want = append(want, r)
					}
				}
				for _, desc := range []bool{false, true} {
					src := want
					if desc {
						src = make([][]any, len(want))
						for i, r := range want {
							src[len(want)-1-i] = r
						}
					}
					for _, limit := range []int{0, 1000} {
						exp := src
						if limit > 0 && limit < len(src) {
							exp = src[:limit]
						}
						for off := 0; off == 0 || off < len(exp)+50; off += 97 {
							page, err := db.Rows(ctx, "a", engine.RowQuery{Start: rg[0], Stop: rg[1], Desc: desc, Limit: limit,
								Count: 97, Offset: off, End: end})
							if err != nil {
								t.Fatal(err)
							}
							calls++
							rows := exp[min(off, len(exp)):min(off+97, len(exp))]
							if page.Total != len(exp) || !reflect.DeepEqual(page.Rows, rows) && len(rows)+len(page.Rows) > 0 {
								t.Fatalf("%s: range %v..%v desc %v limit %d offset %d end %d: total %d (want %d), rows\n%v\nwant\n%v",
									what, show(rg[0]), show(rg[1]), desc, limit, off, end, page.Total, len(exp), short(page.Rows), short(rows))
							}
						}
					}
				}
			}
			got := spans() - before
			if anchored && got != calls {
				t.Errorf("%s: %d of %d ranged pages counted by anchors, want all", what, got, calls)
			}
			if !anchored && got != 0 {
				t.Errorf("%s: %d ranged pages counted by anchors that cannot serve the snapshot", what, got)
			}
		}
		check("first", 0, true)
		if builds() != 1 {
			t.Errorf("anchors read %d times over one snapshot, want 1", builds())
		}
		first, err := db.Rows(ctx, "a", engine.RowQuery{Count: 1})
		if err != nil {
			t.Fatal(err)
		}
		old := first.End
		// Rows in the middle (and updates of existing ones), then at the end.
		grow(300, 0, 500)
		check("after middle rows", 0, true)
		grow(200, last+60, 50)
		check("after rows at the end", 0, true)
		check("old snapshot", old, true)
		check("snapshot older than the anchors", older.End, true)
		if builds() != 1 {
			t.Errorf("anchors read %d times for a table that moved a little, want 1", builds())
		}
		// Far more rows: read again at the newest, and an old snapshot far
		// behind them is counted as before.
		grow(4000, 0, 900)
		check("after many rows", 0, true)
		if builds() != 2 {
			t.Errorf("anchors read %d times after the table doubled, want 2", builds())
		}
		check("old snapshot, far behind", old, false)
	})
}

func show(v *float64) string {
	if v == nil {
		return "open"
	}
	return fmt.Sprint(*v)
}
