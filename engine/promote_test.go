package engine_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"statscache/engine"
	"statscache/engine/sqlstore"
	"statscache/schema"
)

// promoteStore is the real store with a Promote that fails on demand.
type promoteStore struct {
	*sqlstore.DB
	fail  atomic.Bool
	calls atomic.Int32
}

func (s *promoteStore) Promote(ctx context.Context, shadow, target string, f *engine.Fence) error {
	s.calls.Add(1)
	if s.fail.Load() {
		return errors.New("injected: the swap transaction failed")
	}
	return s.DB.Promote(ctx, shadow, target, f)
}

// widened is newFake with one more column: a changed table declaration,
// which a reload rebuilds under a shadow ident.
func widened(ident string) *fakeModel {
	f := newFake(ident)
	f.spec.Table.Columns = append(f.spec.Table.Columns, schema.Column{Name: "extra", Type: schema.Integer})
	return f
}

// tableInfo reads which table serves a model and its total count.
func (db *testDB) tableInfo(t *testing.T, ident string) (table string, cols []string, total int64) {
	t.Helper()
	if err := db.sql.QueryRow(`SELECT table_name FROM models WHERE ident = ?`, ident).Scan(&table); err != nil {
		t.Fatalf("model %s: %v", ident, err)
	}
	rows, err := db.sql.Query(`SELECT name FROM pragma_table_info(?) ORDER BY cid`, table)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var c string
		rows.Scan(&c)
		cols = append(cols, c)
	}
	rows.Close()
	if err := db.sql.QueryRow(`SELECT coalesce(sum(n), 0) FROM "` + table + `"`).Scan(&total); err != nil {
		t.Fatal(err)
	}
	return table, cols, total
}

// watchStats calls Stats without pause until stopped, and reports any view
// where a model shows twice or under an ident that is neither the model's
// nor a shadow of it. Under -race it also catches an ident written without
// the runner's lock.
func watchStats(t *testing.T, e *engine.Engine, ident string) (stop func()) {
	var wg sync.WaitGroup
	done := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			default:
			}
			seen := map[string]bool{}
			for _, s := range e.Stats() {
				if seen[s.Ident] {
					t.Errorf("Stats lists %s twice", s.Ident)
				}
				seen[s.Ident] = true
				if s.Ident != ident && !strings.HasPrefix(s.Ident, ident+engine.ShadowSep) {
					t.Errorf("Stats lists %q", s.Ident)
				}
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// TestEnginePromoteAtomic rebuilds a model's table after a reload changed
// it, and promotes the rebuilt table: either the new table is in place and
// running, or the old one still runs; never neither.
func TestEnginePromoteAtomic(t *testing.T) {
	for _, fail := range []bool{false, true} {
		t.Run(map[bool]string{false: "OKPromoted", true: "OKFailedPromoteKeepsOld"}[fail], func(t *testing.T) {
			db := openTestDB(t, "")
			store := &promoteStore{DB: db.store}
			store.fail.Store(fail)
			e := engine.New(store, quietConfig(engine.Config{BatchInterval: 20 * time.Millisecond}))
			if err := e.Add(context.Background(), newFake("m")); err != nil {
				t.Fatal(err)
			}
			var msgs []*engine.Message
			for i := 1; i <= 3; i++ {
				msgs = append(msgs, message(t, fmt.Sprintf("p%d", i), tBuild, float64(i)))
			}
			ingest(t, e, msgs...)
			stopRun := runFollow(t, e)
			if !within(5*time.Second, func() bool { return db.model(t, "m").Cursor == msgs[2].Pos() }) {
				t.Fatal("the model did not commit the first messages")
			}
			oldTable, oldCols, _ := db.tableInfo(t, "m")
			stopWatch := watchStats(t, e, "m")

			res := e.Reload(context.Background(), []engine.Model{widened("m")}, nil)
			if !reflect.DeepEqual(res.Rebuilding, []string{"m"}) || len(res.Errors) > 0 {
				t.Fatalf("Reload = %+v, want m rebuilding", res)
			}
			if !within(5*time.Second, func() bool { return store.calls.Load() > 0 && len(e.Stats()) == map[bool]int{false: 1, true: 2}[fail] }) {
				t.Fatalf("no promotion after the rebuild caught up: %d calls, stats %+v", store.calls.Load(), e.Stats())
			}
			stopWatch()

			// The model runs on: it commits a new message.
			m4 := message(t, "p4", tBodhi, 4)
			ingest(t, e, m4)
			if !within(5*time.Second, func() bool { return db.model(t, "m").Cursor == m4.Pos() }) {
				t.Fatalf("model m did not commit a message after the promotion (cursor %+v, stats %+v)", db.model(t, "m").Cursor, e.Stats())
			}
			st := stats(e, "m")
			if st.Failed != "" {
				t.Errorf("model m is stopped: %s", st.Failed)
			}
			table, cols, total := db.tableInfo(t, "m")
			if total != 4 {
				t.Errorf("table %s counts %d messages, want 4", table, total)
			}
			if fail {
				if table != oldTable || !reflect.DeepEqual(cols, oldCols) {
					t.Errorf("after a failed promotion m is served by %s %v, want the old %s %v", table, cols, oldTable, oldCols)
				}
				var shadow engine.RunnerStats
				for _, s := range e.Stats() {
					if strings.Contains(s.Ident, engine.ShadowSep) {
						shadow = s
					}
				}
				if !strings.Contains(shadow.Failed, "injected") {
					t.Errorf("the rebuild's runner %+v, want it stopped with the promotion's error", shadow)
				}

				// A reload once the store works again retries the rebuild
				// from where it stopped, and promotes it.
				store.fail.Store(false)
				res := e.Reload(context.Background(), []engine.Model{widened("m")}, nil)
				if !reflect.DeepEqual(res.Rebuilding, []string{"m"}) || len(res.Errors) > 0 {
					t.Fatalf("second Reload = %+v, want m rebuilding", res)
				}
				if !within(5*time.Second, func() bool { return len(e.Stats()) == 1 && db.servingTable(t, "m") != oldTable }) {
					t.Fatalf("the retried rebuild was not promoted: stats %+v", e.Stats())
				}
				m5 := message(t, "p5", tBodhi, 5)
				ingest(t, e, m5)
				if !within(5*time.Second, func() bool { return db.model(t, "m").Cursor == m5.Pos() }) {
					t.Fatalf("model m did not commit a message after the second promotion")
				}
				table, cols, total = db.tableInfo(t, "m")
				if total != 5 {
					t.Errorf("table %s counts %d messages after the second promotion, want 5", table, total)
				}
			}
			if got := cols[len(cols)-1]; table == oldTable || got != "extra" {
				t.Errorf("m is served by %s %v, want the rebuilt table with the extra column", table, cols)
			}
			stopRun()
			var shadows int
			db.sql.QueryRow(`SELECT count(*) FROM models WHERE ident LIKE '%#%'`).Scan(&shadows)
			if shadows != 0 {
				t.Errorf("%d shadow models left in the database", shadows)
			}
		})
	}
}

func (db *testDB) servingTable(t *testing.T, ident string) string {
	table, _, _ := db.tableInfo(t, ident)
	return table
}
