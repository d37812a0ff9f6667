package follow

import (
	"context"
	"math"
	"path/filepath"
	"sync/atomic"
	"testing"

	"statscache/engine"
	"statscache/engine/sqlstore"
)

// FuzzSpanSet checks spanSet.add, holes and capFor against a bitmap of 64
// instants: the set must stay sorted, disjoint and not touching, cover
// exactly the instants added, and holes and capFor must agree with the
// bitmap for every range and position.
func FuzzSpanSet(f *testing.F) {
	f.Add([]byte{0, 5, 5, 10, 3, 7})
	f.Add([]byte{10, 20, 0, 10, 20, 30, 5, 5})
	f.Add([]byte{63, 64, 0, 1, 1, 2, 2, 3})
	f.Fuzz(func(t *testing.T, ops []byte) {
		const n = 64
		var ss spanSet
		var bits [n + 1]bool
		for i := 0; i+1 < len(ops) && i < 40; i += 2 {
			a, b := int64(ops[i]%(n+1)), int64(ops[i+1]%(n+1))
			ss = ss.add(engine.Span{FromUS: a, ToUS: b})
			for x := a; x < b; x++ {
				bits[x] = true
			}
			// Invariants: sorted, non-empty, disjoint, not touching.
			for j, s := range ss {
				if s.Empty() {
					t.Fatalf("empty span %v in %v", s, ss)
				}
				if j > 0 && ss[j-1].ToUS >= s.FromUS {
					t.Fatalf("spans %v and %v overlap or touch: %v", ss[j-1], s, ss)
				}
			}
			// Coverage.
			for x := int64(0); x < n; x++ {
				in := false
				for _, s := range ss {
					if s.FromUS <= x && x < s.ToUS {
						in = true
					}
				}
				if in != bits[x] {
					t.Fatalf("instant %d: set says %v, bitmap %v (set %v)", x, in, bits[x], ss)
				}
			}
		}
		// holes against the bitmap, for every range.
		for from := int64(-1); from <= n+1; from++ {
			for to := from - 1; to <= n+1; to++ {
				var want []engine.Span
				for x := from; x < to; x++ {
					covered := x >= 0 && x < n && bits[x]
					if covered {
						continue
					}
					if k := len(want); k > 0 && want[k-1].ToUS == x {
						want[k-1].ToUS++
					} else {
						want = append(want, engine.Span{FromUS: x, ToUS: x + 1})
					}
				}
				got := ss.holes(from, to)
				if len(got) != len(want) {
					t.Fatalf("holes(%d, %d) of %v = %v, want %v", from, to, ss, got, want)
				}
				for i := range got {
					if got[i] != want[i] {
						t.Fatalf("holes(%d, %d) of %v = %v, want %v", from, to, ss, got, want)
					}
				}
			}
		}
		// capFor: the start of the first hole (from 0 to n) ending after pos.
		hs := ss.holes(0, n)
		for pos := int64(-1); pos <= n+1; pos++ {
			want := int64(math.MaxInt64)
			for x := int64(0); x < n; x++ {
				if !bits[x] && x+1 > pos {
					// x is uncovered and its hole ends after pos: the hole
					// containing x starts at the first uncovered instant
					// before it.
					s := x
					for s > 0 && !bits[s-1] {
						s--
					}
					want = s
					break
				}
			}
			if got := capFor(hs, pos); got != want {
				t.Fatalf("capFor(%v, %d) = %d, want %d", hs, pos, got, want)
			}
		}
		// Extremes: holes over the whole int64 range do not overflow and
		// come out in order.
		all := ss.holes(math.MinInt64, math.MaxInt64)
		for i := 1; i < len(all); i++ {
			if all[i-1].ToUS >= all[i].FromUS {
				t.Fatalf("holes over int64 not ordered: %v", all)
			}
		}
		if len(all) == 0 || all[0].FromUS != math.MinInt64 || all[len(all)-1].ToUS != math.MaxInt64 {
			t.Fatalf("holes over int64 = %v, want from -inf to +inf", all)
		}
	})
}

// FuzzStoredSpans checks the durable record (sqlstore's fill_spans, merged
// by AppendSpan) against spanSet: after any sequence of spans recorded,
// CompleteSpans returns exactly the merged set.
func FuzzStoredSpans(f *testing.F) {
	f.Add([]byte{0, 5, 5, 10, 3, 7})
	f.Add([]byte{10, 20, 30, 40, 20, 30, 0, 1, 50, 60, 1, 50})
	db, err := sqlstore.Open(context.Background(), filepath.Join(f.TempDir(), "spans.db"), sqlstore.Options{})
	if err != nil {
		f.Fatal(err)
	}
	defer db.Close()
	f.Fuzz(func(t *testing.T, ops []byte) {
		ctx := context.Background()
		// Each input gets spans of its own, far from every other input's.
		base := int64(next.Add(1)) << 20
		var ss spanSet
		for i := 0; i+1 < len(ops) && i < 24; i += 2 {
			s := engine.Span{FromUS: base + int64(ops[i]), ToUS: base + int64(ops[i+1])}
			ss = ss.add(s)
			if _, err := db.AppendSpan(ctx, nil, s); err != nil {
				t.Fatal(err)
			}
		}
		all, err := db.CompleteSpans(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var got []engine.Span
		for _, s := range all {
			if s.FromUS >= base && s.FromUS < base+1<<20 {
				got = append(got, s)
			}
		}
		if len(got) != len(ss) {
			t.Fatalf("stored %v, want %v", got, ss)
		}
		for i := range got {
			if got[i] != ss[i] {
				t.Fatalf("stored %v, want %v", got, ss)
			}
		}
	})
}

var next atomic.Int64
