package engine_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"statscache/engine"
)

// queueModel pushes one work item per message (the message key); its
// workers turn an item into "<item>!" after a random delay, so outcomes
// come back out of order; Deliver checks they arrive in push order (across
// restarts too, through State) and counts each into the table with Add, so
// an outcome applied twice shows as n = 2.
type queueModel struct {
	*fakeModel
	cfg     engine.QueueConfig
	q       engine.Queue
	work    func(item string, try int) (string, error)
	tries   sync.Map // item -> *atomic.Int32
	pending map[string]int64
	workErr []string // items delivered with an error
	// failFlushOn makes Flush fail while it holds this item's outcome,
	// failFlushTimes times.
	failFlushOn    string
	failFlushTimes int
}

func newQueueModel(ident string, cfg engine.QueueConfig) *queueModel {
	q := &queueModel{fakeModel: newFake(ident), cfg: cfg}
	q.work = func(item string, try int) (string, error) {
		time.Sleep(time.Duration(rand.IntN(300)) * time.Microsecond)
		return item + "!", nil
	}
	return q
}

func (q *queueModel) BindQueue(qu engine.Queue)               { q.q = qu }
func (q *queueModel) QueueConfig() (engine.QueueConfig, bool) { return q.cfg, true }
func (q *queueModel) NewWorker() (engine.Worker, error)       { return queueWorker{q}, nil }
func (q *queueModel) Spec() *engine.ModelSpec                 { return q.fakeModel.spec }
func (q *queueModel) Close() error                            { return nil }
func (q *queueModel) Flush(ctx context.Context, w engine.RowWriter) error {
	if _, ok := q.pending[q.failFlushOn]; ok && q.failFlushTimes > 0 {
		q.failFlushTimes--
		q.pending = map[string]int64{}
		return errors.New("flush failed")
	}
	for item, n := range q.pending {
		if err := w.Add(engine.Row{"timestamp": 0.0, "topic": item, "n": n}); err != nil {
			return err
		}
	}
	q.pending = map[string]int64{}
	return nil
}

func (q *queueModel) Open(st engine.State) error {
	q.pending = map[string]int64{}
	q.workErr = nil
	return q.fakeModel.Open(st)
}

func (q *queueModel) Process(ctx context.Context, m *engine.Message) error {
	return q.q.Push([]byte(m.Key))
}

func (q *queueModel) Deliver(ctx context.Context, item, result []byte, workErr error) error {
	last, _, err := q.st.Get("last")
	if err != nil {
		return err
	}
	if string(item) <= last {
		return fmt.Errorf("item %s delivered after %s", item, last)
	}
	q.st.Set("last", string(item))
	if workErr != nil {
		q.workErr = append(q.workErr, string(item))
		q.pending["error:"+string(item)]++
		return nil
	}
	if string(result) != string(item)+"!" {
		return fmt.Errorf("item %s: result %q", item, result)
	}
	q.pending[string(item)]++
	return nil
}

type queueWorker struct{ q *queueModel }

func (w queueWorker) Work(ctx context.Context, item []byte) ([]byte, error) {
	v, _ := w.q.tries.LoadOrStore(string(item), new(atomic.Int32))
	try := int(v.(*atomic.Int32).Add(1))
	res, err := w.q.work(string(item), try)
	return []byte(res), err
}

func (w queueWorker) Close() error { return nil }

// queueMessages returns n messages whose keys sort in journal order.
func queueMessages(t *testing.T, n int) []*engine.Message {
	var msgs []*engine.Message
	for i := range n {
		msgs = append(msgs, message(t, fmt.Sprintf("2024-k%05d", i), tBuild, 1000+float64(i)))
	}
	return msgs
}

func wantQueueRows(msgs []*engine.Message) map[string]int64 {
	want := map[string]int64{}
	for _, m := range msgs {
		want[m.Key] = 1
	}
	return want
}

func queueLen(t testing.TB, db *testDB, ident string) (n, seq int64) {
	t.Helper()
	if err := db.sql.QueryRow(`SELECT count(*) FROM model_queue WHERE ident = ?`, ident).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if err := db.sql.QueryRow(`SELECT queue_seq FROM models WHERE ident = ?`, ident).Scan(&seq); err != nil {
		t.Fatal(err)
	}
	return n, seq
}

func TestQueueDeliversInOrderOnce(t *testing.T) {
	for _, cfg := range []engine.Config{{}, {BatchSize: 7, ScanSize: 5}} {
		t.Run(fmt.Sprintf("batch%d", cfg.BatchSize), func(t *testing.T) {
			db := openTestDB(t, "")
			qm := newQueueModel("q", engine.QueueConfig{Workers: 4, Limit: 10})
			e := newEngine(t, db, cfg, qm)
			msgs := queueMessages(t, 300)
			ingest(t, e, msgs...)
			run(t, e)
			if got, want := db.counts(t, "q"), wantQueueRows(msgs); !equalCounts(got, want) {
				t.Fatalf("rows: got %d items, want %d (first differences: %s)", len(got), len(want), countDiff(got, want))
			}
			if errs := db.modelErrors(t, "q"); len(errs) != 0 {
				t.Fatalf("errors: %v", errs)
			}
			if n, seq := queueLen(t, db, "q"); n != 0 || seq != 300 {
				t.Fatalf("queue after replay: %d items, last seq %d; want 0, 300", n, seq)
			}
			if got := db.state(t, "q", "last"); got != msgs[len(msgs)-1].Key {
				t.Fatalf("last delivered %s, want %s", got, msgs[len(msgs)-1].Key)
			}
		})
	}
}

// TestQueueRestart stops the engine at random points, with items pushed,
// queued, worked on and delivered but not committed, and starts a new one
// over the same database: every outcome is applied once and in order.
func TestQueueRestart(t *testing.T) {
	db := openTestDB(t, "")
	msgs := queueMessages(t, 400)
	cfg := engine.Config{BatchSize: 13, ScanSize: 17, BatchInterval: 5 * time.Millisecond}
	for round := 0; ; round++ {
		qm := newQueueModel("q", engine.QueueConfig{Workers: 3, Limit: 25})
		// A plain model beside it: stopping must not lose its batches either.
		e := newEngine(t, db, cfg, qm, newFake("plain"))
		if round == 0 {
			ingest(t, e, msgs[:200]...)
		} else if round == 3 {
			ingest(t, e, msgs[200:]...)
		}
		if round == 8 {
			run(t, e) // to the end
			break
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { e.Run(ctx, true); close(done) }()
		time.Sleep(time.Duration(5+rand.IntN(30)) * time.Millisecond)
		cancel()
		<-done
	}
	if got, want := db.counts(t, "q"), wantQueueRows(msgs); !equalCounts(got, want) {
		n, seq := queueLen(t, db, "q")
		t.Fatalf("rows: got %d items, want %d (first differences: %s); model %+v; %d items queued, last seq %d",
			len(got), len(want), countDiff(got, want), db.model(t, "q"), n, seq)
	}
	if errs := db.modelErrors(t, "q"); len(errs) != 0 {
		t.Fatalf("errors: %v", errs)
	}
	if got := db.counts(t, "plain"); got[tBuild] != 400 || len(got) != 1 {
		t.Fatalf("plain model: %v, want %s: 400", got, tBuild)
	}
	if n, seq := queueLen(t, db, "q"); n != 0 || seq != 400 {
		t.Fatalf("queue after the last run: %d items, last seq %d; want 0, 400", n, seq)
	}
}

// TestQueueBackpressure holds the workers: the queue model stops at its
// limit while a plain model beside it goes on to the end of the journal,
// and catches up once the workers are let go.
func TestQueueBackpressure(t *testing.T) {
	db := openTestDB(t, "")
	release := make(chan struct{})
	qm := newQueueModel("q", engine.QueueConfig{Workers: 2, Limit: 5})
	qm.work = func(item string, try int) (string, error) {
		<-release
		return item + "!", nil
	}
	plain := newFake("plain")
	e := newEngine(t, db, engine.Config{BatchSize: 3, BatchInterval: 10 * time.Millisecond}, qm, plain)
	msgs := queueMessages(t, 50)
	ingest(t, e, msgs...)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { e.Run(ctx, true); close(done) }()
	waitFor(t, "the plain model to reach the end", func() bool { return db.model(t, "plain").Processed == 50 })
	waitFor(t, "the queue model to commit up to its limit", func() bool { return db.model(t, "q").Processed == 5 })
	time.Sleep(100 * time.Millisecond)
	if got := db.model(t, "q").Processed; got != 5 {
		t.Fatalf("the queue model processed %d messages with its workers held, want its limit of 5", got)
	}
	if n, _ := queueLen(t, db, "q"); n != 5 {
		t.Fatalf("%d items queued, want 5", n)
	}
	close(release)
	waitFor(t, "the queue model to catch up", func() bool {
		n, _ := queueLen(t, db, "q")
		return db.model(t, "q").Processed == 50 && n == 0
	})
	cancel()
	<-done
	if got, want := db.counts(t, "q"), wantQueueRows(msgs); !equalCounts(got, want) {
		t.Fatalf("rows: %s", countDiff(got, want))
	}
}

// TestQueueWorkErrors: temporary failures are retried, and delivered with
// their error once the retries are spent; other failures are delivered at
// once; both are recorded; a limit error stops the model with nothing
// committed past its last good commit.
func TestQueueWorkErrors(t *testing.T) {
	db := openTestDB(t, "")
	qm := newQueueModel("q", engine.QueueConfig{Workers: 2, Limit: 10, Retries: 3, Backoff: time.Millisecond})
	msgs := queueMessages(t, 30)
	qm.work = func(item string, try int) (string, error) {
		switch {
		case strings.HasSuffix(item, "3") && try <= 2:
			return "", fmt.Errorf("service unavailable: %w", engine.ErrTemporary)
		case item == msgs[7].Key:
			return "", errors.New("no such build")
		case item == msgs[9].Key:
			return "", fmt.Errorf("connection refused: %w", engine.ErrTemporary)
		}
		return item + "!", nil
	}
	e := newEngine(t, db, engine.Config{}, qm)
	ingest(t, e, msgs...)
	run(t, e)
	want := wantQueueRows(msgs)
	for _, i := range []int{7, 9} {
		delete(want, msgs[i].Key)
		want["error:"+msgs[i].Key] = 1
	}
	if got := db.counts(t, "q"); !equalCounts(got, want) {
		t.Fatalf("rows: %s", countDiff(got, want))
	}
	for _, c := range []struct {
		i, tries int
	}{{7, 1}, {9, 4}, {13, 3}, {12, 1}} {
		v, _ := qm.tries.Load(msgs[c.i].Key)
		if n := int(v.(*atomic.Int32).Load()); n != c.tries {
			t.Errorf("item %s was tried %d times, want %d", msgs[c.i].Key, n, c.tries)
		}
	}
	errs := db.modelErrors(t, "q")
	if len(errs) != 2 || !strings.Contains(errs[0].Err, "no such build") || !strings.Contains(errs[1].Err, "connection refused") {
		t.Fatalf("recorded errors: %+v", errs)
	}

	db2 := openTestDB(t, "")
	lim := newQueueModel("lim", engine.QueueConfig{Workers: 1, Limit: 10})
	lim.work = func(item string, try int) (string, error) {
		if item == msgs[20].Key {
			return "", fmt.Errorf("work ran longer than 1s: %w", engine.ErrModelLimit)
		}
		return item + "!", nil
	}
	e2 := newEngine(t, db2, engine.Config{BatchSize: 4}, lim)
	ingest(t, e2, msgs...)
	run(t, e2)
	st := db2.model(t, "lim")
	if st.Status != "failed" || !strings.Contains(st.Reason, "ran longer than 1s") {
		t.Fatalf("status %q (%q), want failed for the limit", st.Status, st.Reason)
	}
	got := db2.counts(t, "lim")
	if _, ok := got[msgs[20].Key]; ok || len(got) > 20 {
		t.Fatalf("rows past the failing item were committed: %d rows", len(got))
	}
	if n, _ := queueLen(t, db2, "lim"); n == 0 {
		t.Fatalf("the failing item is no longer queued")
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func equalCounts(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func countDiff(got, want map[string]int64) string {
	var out []string
	for k, v := range want {
		if got[k] != v {
			out = append(out, fmt.Sprintf("%s: got %d want %d", k, got[k], v))
		}
	}
	for k, v := range got {
		if _, ok := want[k]; !ok {
			out = append(out, fmt.Sprintf("%s: got %d, not wanted", k, v))
		}
	}
	sort.Strings(out)
	if len(out) > 5 {
		out = out[:5]
	}
	return strings.Join(out, "; ")
}

// TestQueueFlushFailureRedelivers: when the commit that holds delivered
// outcomes fails, the model is rebuilt from its last commit and the
// outcomes are delivered to it again, so they are neither lost nor doubled.
func TestQueueFlushFailureRedelivers(t *testing.T) {
	msgs := queueMessages(t, 40)
	for _, times := range []int{1, 2, 3} {
		t.Run(fmt.Sprint(times), func(t *testing.T) {
			db := openTestDB(t, "")
			qm := newQueueModel("q", engine.QueueConfig{Workers: 2, Limit: 8})
			qm.failFlushOn, qm.failFlushTimes = msgs[17].Key, times
			e := newEngine(t, db, engine.Config{BatchSize: 5, FlushRetries: 3}, qm)
			ingest(t, e, msgs...)
			run(t, e)
			st := db.model(t, "q")
			if times == 3 {
				// The same outcome breaks update every time: the model stops
				// before the commit that would apply it.
				if st.Status != "failed" {
					t.Fatalf("status %q, want failed after %d flush failures", st.Status, times)
				}
				if got := db.counts(t, "q"); got[msgs[17].Key] != 0 {
					t.Fatalf("the outcome of the failing flush was committed")
				}
				return
			}
			if got, want := db.counts(t, "q"), wantQueueRows(msgs); !equalCounts(got, want) {
				t.Fatalf("status %s; rows: %s", st.Status, countDiff(got, want))
			}
		})
	}
}

// BenchmarkWorkQueue measures the queue's own cost: one item per message,
// workers that answer at once, every outcome delivered and committed.
func BenchmarkWorkQueue(b *testing.B) {
	msgs := make([]*engine.Message, 0, b.N)
	for i := range b.N {
		var d engine.Decoder
		m, err := d.Decode(fmt.Appendf(nil, `{"msg_id": "2024-k%09d", "topic": "t", "timestamp": %d, "msg": {}}`, i, 1000+i))
		if err != nil {
			b.Fatal(err)
		}
		msgs = append(msgs, m)
	}
	db := openTestDB(b, filepath.Join(b.TempDir(), "b.db"))
	qm := newQueueModel("q", engine.QueueConfig{Workers: 2, Limit: 1000})
	qm.work = func(item string, try int) (string, error) { return item + "!", nil }
	e := engine.New(db.store, quietConfig(engine.Config{}))
	if err := e.Add(context.Background(), qm); err != nil {
		b.Fatal(err)
	}
	if _, err := e.Ingest(context.Background(), msgs); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	if err := e.Run(context.Background(), false); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	if n, _ := queueLen(b, db, "q"); n != 0 {
		b.Fatalf("%d items left", n)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "items/s")
}
