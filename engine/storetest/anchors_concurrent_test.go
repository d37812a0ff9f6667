package storetest

import (
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"statscache/engine"
)

// TestDeepPagesWhileTableGrows: deep pages by number read while another
// goroutine commits new rows, at the start, middle and end of the key
// order, are each the slice of the table at the page's own End (listed
// afterwards by key: rows are only added, so the table at an End does
// not change), in both orders. Each page's snapshot is one the anchors
// were not built at, so the rows it has besides them are counted, while
// readers race the writer and each other (run it with -race).
func TestDeepPagesWhileTableGrows(t *testing.T) {
	each(t, func(t *testing.T, db store) {
		ctx := t.Context()
		builds := db.(interface{ AnchorBuilds() int }).AnchorBuilds
		register(t, db, "g")
		var seq atomic.Int64
		add := func(n int) {
			var ops []engine.RowOp
			for i := 0; i < n; i++ {
				s := seq.Add(1)
				// Times spread over the whole range: new rows land everywhere.
				ops = append(ops, engine.RowOp{Kind: engine.OpInsert, Row: row(float64((s*7919)%1000), fmt.Sprint("c", s), s)})
			}
			commit(t, db, "g", ops, nil, engine.Checkpoint{Cursor: engine.Position{TimeUS: seq.Load(), Key: "k"}})
		}
		add(4000)
		type seen struct {
			off  int
			desc bool
			page engine.RowPage
		}
		var (
			mu    sync.Mutex
			pages []seen
			stop  atomic.Bool
			wg    sync.WaitGroup
		)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				add(7)
			}
		}()
		began := time.Now()
		var readers sync.WaitGroup
		for r := 0; r < 4; r++ {
			readers.Add(1)
			go func() {
				defer readers.Done()
				for i := 0; i < 40; i++ {
					off, desc := 500+(i*397+r*131)%3400, (i+r)%2 == 1
					p, err := db.Rows(ctx, "g", engine.RowQuery{Count: 9, Offset: off, Desc: desc})
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					pages = append(pages, seen{off, desc, p})
					mu.Unlock()
				}
			}()
		}
		readers.Wait()
		stop.Store(true)
		wg.Wait()
		t.Logf("read in %v", time.Since(began))
		// The whole table by key, once: its rows were inserted one id
		// each, in the order of their "references", so the table at an End
		// is its rows whose references are at most End.
		whole := listByKey(t, db, "g", 0, 1000)
		for _, s := range pages {
			var want [][]any
			for _, r := range whole {
				if r[2].(int64) <= s.page.End {
					want = append(want, r)
				}
			}
			if s.desc {
				for i, j := 0, len(want)-1; i < j; i, j = i+1, j-1 {
					want[i], want[j] = want[j], want[i]
				}
			}
			exp := want[s.off:min(s.off+9, len(want))]
			if s.page.Total != len(want) || !reflect.DeepEqual(s.page.Rows, exp) {
				t.Fatalf("offset %d desc %v end %d: total %d (want %d), rows\n%v\nwant\n%v", s.off, s.desc, s.page.End, s.page.Total, len(want), short(s.page.Rows), short(exp))
			}
		}
		t.Logf("%d pages, %d rows written, %d full passes", len(pages), seq.Load(), builds())
	})
}
