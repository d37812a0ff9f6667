package scripts_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"statscache/engine"
	"statscache/engine/sqlstore"
)

// countingStore counts the committed state a model reads (a state.get that
// its own batch has not written goes to the store).
type countingStore struct {
	*sqlstore.DB
	mu    sync.Mutex
	reads map[string]int
}

func (c *countingStore) LoadState(ctx context.Context, ident, key string) (string, bool, error) {
	c.mu.Lock()
	c.reads[ident]++
	c.mu.Unlock()
	return c.DB.LoadState(ctx, ident, key)
}

// weeklyCorpus is weeks ISO weeks of wiki edits from Monday 2015-01-05:
// each week 100 regulars and 100 people never seen before edit twice each,
// so the contributors ever seen grow by 100 a week while each week looks
// the same.
func weeklyCorpus(weeks int) []*engine.Message {
	start := time.Date(2015, 1, 5, 0, 0, 0, 0, time.UTC)
	var out []*engine.Message
	for w := 0; w < weeks; w++ {
		for i := 0; i < 400; i++ {
			user := fmt.Sprintf("regular%03d", i%100)
			if i%200 >= 100 {
				user = fmt.Sprintf("w%03d-newcomer%03d", w, i%100)
			}
			t := start.Add(time.Duration(w)*7*24*time.Hour + time.Duration(i)*20*time.Minute)
			id := fmt.Sprintf("2015-w%03d-%03d", w, i)
			raw, _ := json.Marshal(map[string]any{"msg_id": id, "topic": "org.fedoraproject.prod.wiki.article.edit",
				"timestamp": t.Unix(), "msg": map[string]any{"user": user, "title": "Page", "url": "https://fedoraproject.org/wiki/Page"}})
			out = append(out, &engine.Message{ID: id, Key: engine.DedupeKey(id), Topic: "org.fedoraproject.prod.wiki.article.edit",
				TimeUS: t.UnixMicro(), Raw: raw})
		}
	}
	return out
}

// TestContributorStateReadsDoNotGrow replays 1, 11 and 41 weeks of the
// same weekly pattern through the contributor models and counts their reads
// of committed state per contributor active in a period: in weeks 12 to 41
// (after 1,200 to 4,100 contributors seen) it must be what it is in weeks 2
// to 11, and at most two. The first week reads less (nobody has a history);
// a read of a key written in the same batch costs nothing, and batches of
// 500 messages line up with weeks of 400 every 5 weeks, so both spans are
// whole multiples of 5 weeks.
func TestContributorStateReadsDoNotGrow(t *testing.T) {
	reads, pairs := map[int]map[string]int{}, map[int]map[string]int{}
	for _, weeks := range []int{1, 11, 41} {
		ctx := context.Background()
		path := filepath.Join(t.TempDir(), "t.db")
		db, err := sqlstore.Open(ctx, path, sqlstore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		store := &countingStore{DB: db, reads: map[string]int{}}
		// KnownState -1: every read of committed state goes to the store
		// and is counted, instead of being answered from the runner's
		// memory; what is measured is how many the scripts make.
		e := engine.New(store, engine.Config{Logger: logger, BatchSize: 500, BatchInterval: time.Hour, KnownState: -1})
		for _, m := range loadModels(t, []string{"contributors.lua", "contributor-retention.lua", "activity-by-category.lua"}) {
			if err := e.Add(ctx, m); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := e.Ingest(ctx, weeklyCorpus(weeks)); err != nil {
			t.Fatal(err)
		}
		if err := e.Run(ctx, false); err != nil {
			t.Fatal(err)
		}
		for _, s := range e.Stats() {
			if s.Errors != 0 || s.Failed != "" {
				t.Errorf("%s: %d errors, failed %q", s.Ident, s.Errors, s.Failed)
			}
		}
		db.Close()
		sdb, err := sql.Open("sqlite3", "file:"+path+"?mode=ro")
		if err != nil {
			t.Fatal(err)
		}
		// The (contributor, period) pairs each model counted.
		pairs[weeks] = map[string]int{}
		for ident, q := range map[string]string{
			"contributors-1w":          `SELECT sum(active) FROM model_contributors_1w`,
			"contributors-1mo":         `SELECT sum(active) FROM model_contributors_1mo`,
			"contributor-retention-1w": `SELECT sum(active) FROM model_contributor_retention_1w`,
			"activity-by-category-1w":  `SELECT sum(contributors) FROM model_activity_by_category_1w`,
		} {
			var n int
			if err := sdb.QueryRow(q).Scan(&n); err != nil {
				t.Fatal(err)
			}
			pairs[weeks][ident] = n
		}
		sdb.Close()
		if got := pairs[weeks]["contributors-1w"]; got != weeks*200 {
			t.Fatalf("%d weeks: contributors-1w counted %d active, want %d", weeks, got, weeks*200)
		}
		reads[weeks] = store.reads
	}
	for _, ident := range []string{"contributors-1w", "contributors-1mo", "contributor-retention-1w", "activity-by-category-1w"} {
		early := float64(reads[11][ident]-reads[1][ident]) / float64(pairs[11][ident]-pairs[1][ident])
		late := float64(reads[41][ident]-reads[11][ident]) / float64(pairs[41][ident]-pairs[11][ident])
		t.Logf("%s: committed state reads per contributor and period: %.3f in weeks 2-11, %.3f in weeks 12-41", ident, early, late)
		if early <= 0 || late <= 0 {
			t.Errorf("%s: no state read counted (%v)", ident, reads)
			continue
		}
		if late > early*1.05 {
			t.Errorf("%s: %.3f state reads per contributor and period in weeks 12-41, %.3f in weeks 2-11: the reads grow with the contributors seen", ident, late, early)
		}
		if late > 2 {
			t.Errorf("%s: %.3f state reads per contributor and period", ident, late)
		}
	}
}
