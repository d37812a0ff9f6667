package follow_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"statscache/engine"
	"statscache/engine/follow"
	"statscache/engine/sqlstore"
	"statscache/schema"
)

// The harness drives a real engine over a real SQLite file with a fake
// clock, a scripted archive and a scripted bus.

// T0 is the fake clock's start in every test.
var T0 = time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)

type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []fakeTimer
}

type fakeTimer struct {
	at time.Time
	ch chan time.Time
}

func newClock(t time.Time) *fakeClock { return &fakeClock{now: t} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
		return ch
	}
	c.timers = append(c.timers, fakeTimer{c.now.Add(d), ch})
	return ch
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.timers[:0]
	for _, t := range c.timers {
		if !t.at.After(c.now) {
			t.ch <- c.now
		} else {
			kept = append(kept, t)
		}
	}
	c.timers = kept
}

// msg makes a message at t with a key of its own.
func msg(i int, t time.Time) *engine.Message {
	key := fmt.Sprintf("%08d-0000-4000-8000-%012d", i, i)
	return &engine.Message{ID: fmt.Sprintf("%d-%s", t.Year(), key), Key: key, Topic: "org.fedoraproject.prod.test.event",
		TimeUS: t.UnixMicro(), Raw: []byte(fmt.Sprintf(`{"i":%d}`, i))}
}

// scriptedArchive serves a fixed set of messages in windows; down makes a
// window fail (an archive that cannot be reached).
type scriptedArchive struct {
	msgs   []*engine.Message // sorted by time
	window time.Duration
	down   func() bool
	delay  time.Duration // real time each window takes
	calls  atomic.Int64
	// busy and maxBusy count fetches under way at once.
	busy, maxBusy atomic.Int64
	// windows is every span delivered, for the test to inspect.
	mu      sync.Mutex
	windows []engine.Span
}

func (a *scriptedArchive) FetchSpans(ctx context.Context, from, to time.Time, fn func(engine.Span, []*engine.Message) error) error {
	a.calls.Add(1)
	if n := a.busy.Add(1); n > a.maxBusy.Load() {
		a.maxBusy.Store(n)
	}
	defer a.busy.Add(-1)
	for lo := from; lo.Before(to); lo = lo.Add(a.window) {
		if err := ctx.Err(); err != nil {
			return err
		}
		if a.down != nil && a.down() {
			return errors.New("archive: connection refused")
		}
		hi := lo.Add(a.window)
		if hi.After(to) {
			hi = to
		}
		if a.delay > 0 {
			time.Sleep(a.delay)
		}
		span := engine.Span{FromUS: lo.UnixMicro(), ToUS: hi.UnixMicro()}
		var batch []*engine.Message
		for _, m := range a.msgs {
			if m.TimeUS >= span.FromUS && m.TimeUS < span.ToUS {
				batch = append(batch, clone(m))
			}
		}
		if err := fn(span, batch); err != nil {
			return err
		}
		a.mu.Lock()
		a.windows = append(a.windows, span)
		a.mu.Unlock()
	}
	return nil
}

// scriptedBus delivers each of its messages once the clock has reached its
// time, except those drop says the bus loses, and only those not before
// from (the subscription's start).
type scriptedBus struct {
	clock *fakeClock
	from  int64 // the subscription's start (unix µs), set by start
	msgs  []*engine.Message
	drop  func(m *engine.Message) bool
}

func (b *scriptedBus) RunFunc(ctx context.Context, deliver func(context.Context, *engine.Message, func()) error) error {
	from := b.from
	next := 0
	for next < len(b.msgs) && b.msgs[next].TimeUS < from {
		next++
	}
	for ctx.Err() == nil {
		now := b.clock.Now().UnixMicro()
		for next < len(b.msgs) && b.msgs[next].TimeUS <= now {
			m := b.msgs[next]
			next++
			if b.drop != nil && b.drop(m) {
				continue
			}
			if err := deliver(ctx, clone(m), nil); err != nil {
				return err
			}
		}
		time.Sleep(time.Millisecond)
	}
	return ctx.Err()
}

// minuteModel counts messages per one-minute bucket.
type minuteModel struct {
	spec   *engine.ModelSpec
	counts map[int64]int64
}

func newMinuteModel(ident string) *minuteModel {
	return &minuteModel{spec: &engine.ModelSpec{
		Ident: ident, Name: ident, Summary: "per minute", Description: "messages per minute",
		Table: schema.Table{
			Name: schema.TableName(ident),
			Columns: []schema.Column{
				{Name: "timestamp", Type: schema.Real, NotNull: true, Index: true},
				{Name: "n", Type: schema.Integer, NotNull: true},
			},
			Key: []string{"timestamp"},
		},
	}}
}

func (m *minuteModel) Spec() *engine.ModelSpec { return m.spec }
func (m *minuteModel) Open(engine.State) error { m.counts = map[int64]int64{}; return nil }
func (m *minuteModel) Close() error            { return nil }
func (m *minuteModel) Process(_ context.Context, msg *engine.Message) error {
	m.counts[msg.TimeUS/60e6*60+60]++
	return nil
}
func (m *minuteModel) Flush(_ context.Context, w engine.RowWriter) error {
	for ts, n := range m.counts {
		if err := w.Add(engine.Row{"timestamp": float64(ts), "n": n}); err != nil {
			return err
		}
	}
	m.counts = map[int64]int64{}
	return nil
}

// errDead is what a store returns once the process it belongs to has
// "died": no write reaches the file any more.
// It wraps engine.ErrModelLimit so that a runner stops at once instead of
// retrying its commit: a dead process retries nothing.
var errDead = fmt.Errorf("the process died: %w", engine.ErrModelLimit)

// dyingStore is a real store that dies (every write fails, nothing more is
// written) when die says so before a write transaction: a SIGKILL between
// two transactions, which is every instant that matters to SQLite.
type dyingStore struct {
	*sqlstore.DB
	mu   sync.Mutex
	dead bool
	// die is asked before each write transaction: what it is ("append",
	// "span", "commit") and how many of that kind came before.
	die    func(kind string, n int) bool
	counts map[string]int
	// fail, if set, is asked before each write transaction and may make
	// it fail without killing the store (a full disk).
	fail func(kind string) error
}

func (s *dyingStore) gate(kind string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dead {
		return errDead
	}
	if s.die != nil && s.die(kind, s.counts[kind]) {
		s.dead = true
		return errDead
	}
	if s.fail != nil {
		if err := s.fail(kind); err != nil {
			return err
		}
	}
	s.counts[kind]++
	return nil
}

func (s *dyingStore) isDead() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dead
}

func (s *dyingStore) Append(ctx context.Context, msgs []*engine.Message) (engine.AppendResult, error) {
	if err := s.gate("append"); err != nil {
		return engine.AppendResult{}, err
	}
	return s.DB.Append(ctx, msgs)
}

func (s *dyingStore) AppendSpan(ctx context.Context, msgs []*engine.Message, span engine.Span) (engine.AppendResult, error) {
	if err := s.gate("span"); err != nil {
		return engine.AppendResult{}, err
	}
	return s.DB.AppendSpan(ctx, msgs, span)
}

func (s *dyingStore) Begin(ctx context.Context, ident string) (engine.ModelTx, error) {
	tx, err := s.DB.Begin(ctx, ident)
	if err != nil {
		return nil, err
	}
	return &dyingTx{ModelTx: tx, s: s}, nil
}

func (s *dyingStore) SetStatus(ctx context.Context, ident, status, reason string, f *engine.Fence) error {
	if s.isDead() {
		return errDead
	}
	return s.DB.SetStatus(ctx, ident, status, reason, f)
}

func (s *dyingStore) AddRejects(ctx context.Context, rs []engine.Reject) error {
	if s.isDead() {
		return errDead
	}
	return s.DB.AddRejects(ctx, rs)
}

type dyingTx struct {
	engine.ModelTx
	s *dyingStore
}

func (t *dyingTx) Commit(cp engine.Checkpoint) error {
	if err := t.s.gate("commit"); err != nil {
		t.ModelTx.Rollback()
		return err
	}
	return t.ModelTx.Commit(cp)
}

// world is one test scenario: what the archive and the bus hold, and the
// recount every table must end equal to.
type world struct {
	t     *testing.T
	path  string
	clock *fakeClock
	arch  *scriptedArchive
	bus   *scriptedBus // nil: no bus
	cfg   follow.Config
	// storeFail, if set, makes the store's write transactions fail while
	// it says so (see dyingStore.fail).
	storeFail func(kind string) error
}

// newWorld makes a journal path and a clock at T0. history messages are
// only in the archive; live messages are in both the archive and on the bus.
func newWorld(t *testing.T, history, live []*engine.Message) *world {
	all := append(slices.Clone(history), live...)
	slices.SortFunc(all, func(a, b *engine.Message) int { return cmpPos(a.Pos(), b.Pos()) })
	slices.SortFunc(live, func(a, b *engine.Message) int { return cmpPos(a.Pos(), b.Pos()) })
	w := &world{t: t, path: filepath.Join(t.TempDir(), "follow.db"), clock: newClock(T0)}
	w.arch = &scriptedArchive{msgs: all, window: 20 * time.Minute}
	if live != nil {
		w.bus = &scriptedBus{clock: w.clock, msgs: live}
	}
	w.cfg = follow.Config{Settle: time.Minute, Lateness: 2 * time.Second, Margin: 5 * time.Second,
		Verify: time.Minute, Start: T0.Add(-2 * time.Hour), Drain: 200 * time.Millisecond, Clock: w.clock, Logger: quiet()}
	return w
}

func cmpPos(a, b engine.Position) int {
	switch {
	case a.Less(b):
		return -1
	case b.Less(a):
		return 1
	}
	return 0
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// run is one life of the daemon: a store that may die, an engine with the
// models, a follower. It returns once until says so (the clock is advanced
// in steps meanwhile) or the store died, then stops as a dead process
// would: nothing more reaches the file.
type run struct {
	w      *world
	store  *dyingStore
	eng    *engine.Engine
	fol    *follow.Follower
	cancel context.CancelFunc
	done   chan struct{}
}

func (w *world) start(die func(kind string, n int) bool, epoch time.Time, models ...engine.Model) *run {
	w.t.Helper()
	var b follow.Bus
	if w.bus != nil {
		w.bus.from = w.clock.Now().UnixMicro()
		b = w.bus
	}
	var a follow.Archive
	if w.arch != nil {
		a = w.arch
	}
	return w.startWith(die, epoch, a, b, models...)
}

// startWith is start with an archive and a bus of the test's own (either
// may be nil).
func (w *world) startWith(die func(kind string, n int) bool, epoch time.Time, a follow.Archive, b follow.Bus, models ...engine.Model) *run {
	w.t.Helper()
	db, err := sqlstore.Open(context.Background(), w.path, sqlstore.Options{})
	if err != nil {
		w.t.Fatal(err)
	}
	st := &dyingStore{DB: db, die: die, counts: map[string]int{}, fail: w.storeFail}
	eng := engine.New(st, engine.Config{Epoch: epoch, HoldModels: true, BatchSize: 500, BatchInterval: 50 * time.Millisecond,
		FlushRetries: 1, Logger: quiet()})
	for _, m := range models {
		if err := eng.Add(context.Background(), m); err != nil {
			w.t.Fatal(err)
		}
	}
	cfg := w.cfg
	cfg.Start = epoch
	fol := follow.New(cfg, eng, st, a, b)
	ctx, cancel := context.WithCancel(context.Background())
	r := &run{w: w, store: st, eng: eng, fol: fol, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); fol.Run(ctx) }()
		go func() { defer wg.Done(); eng.Run(ctx, true) }()
		wg.Wait()
	}()
	return r
}

// drive advances the clock by step every few real milliseconds until cond
// holds, the store died, or the real time limit passes.
func (r *run) drive(step time.Duration, limit time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(limit)
	for i := 0; time.Now().Before(deadline); i++ {
		if i%8 == 0 && cond() {
			return true
		}
		if r.store.isDead() {
			return false
		}
		r.w.clock.Advance(step)
		time.Sleep(3 * time.Millisecond)
	}
	return cond()
}

func (r *run) stop() {
	r.cancel()
	<-r.done
	r.store.DB.Close()
}

// table reads a minute model's committed counts.
func (w *world) table(ident string) map[int64]int64 {
	w.t.Helper()
	db, err := sql.Open("sqlite3", "file:"+w.path+"?mode=ro")
	if err != nil {
		w.t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(fmt.Sprintf(`SELECT timestamp, n FROM %s`, schema.TableName(ident)))
	if err != nil {
		w.t.Fatal(err)
	}
	defer rows.Close()
	out := map[int64]int64{}
	for rows.Next() {
		var ts float64
		var n int64
		if err := rows.Scan(&ts, &n); err != nil {
			w.t.Fatal(err)
		}
		out[int64(ts)] = n
	}
	return out
}

func (w *world) late() int64 {
	w.t.Helper()
	db, err := sql.Open("sqlite3", "file:"+w.path+"?mode=ro")
	if err != nil {
		w.t.Fatal(err)
	}
	defer db.Close()
	var n int64
	if err := db.QueryRow(`SELECT count(*) FROM journal WHERE late = 1`).Scan(&n); err != nil {
		w.t.Fatal(err)
	}
	return n
}

// recount counts per minute bucket the messages at or after from, before to.
func recount(msgs []*engine.Message, from, to time.Time) map[int64]int64 {
	out := map[int64]int64{}
	for _, m := range msgs {
		if m.TimeUS >= from.UnixMicro() && m.TimeUS < to.UnixMicro() {
			out[m.TimeUS/60e6*60+60]++
		}
	}
	return out
}

func sum(m map[int64]int64) (n int64) {
	for _, v := range m {
		n += v
	}
	return n
}

func diff(got, want map[int64]int64) string {
	var out []string
	for k, v := range want {
		if got[k] != v {
			out = append(out, fmt.Sprintf("%s: got %d want %d", time.Unix(k, 0).UTC().Format("15:04"), got[k], v))
		}
	}
	for k, v := range got {
		if _, ok := want[k]; !ok {
			out = append(out, fmt.Sprintf("%s: got %d want none", time.Unix(k, 0).UTC().Format("15:04"), v))
		}
	}
	slices.Sort(out)
	if len(out) > 8 {
		out = append(out[:8], fmt.Sprintf("... %d buckets differ", len(out)))
	}
	return fmt.Sprint(out)
}

// spread makes n messages at random instants of [from, to), numbered from
// first.
func spread(rng *rand.Rand, first, n int, from, to time.Time) []*engine.Message {
	out := make([]*engine.Message, n)
	span := to.Sub(from)
	for i := range out {
		t := from.Add(time.Duration(rng.Int64N(int64(span/time.Second))) * time.Second).Add(time.Duration(rng.IntN(1000)) * time.Millisecond)
		out[i] = msg(first+i, t)
	}
	return out
}

// lateKeys returns the keys of the messages flagged late.
func (w *world) lateKeys() []string {
	w.t.Helper()
	db, err := sql.Open("sqlite3", "file:"+w.path+"?mode=ro")
	if err != nil {
		w.t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT key FROM journal WHERE late = 1`)
	if err != nil {
		w.t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var k string
		rows.Scan(&k)
		out = append(out, k)
	}
	return out
}

// lateBuckets counts the late messages per minute bucket.
func (w *world) lateBuckets() map[int64]int64 {
	w.t.Helper()
	db, err := sql.Open("sqlite3", "file:"+w.path+"?mode=ro")
	if err != nil {
		w.t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT time_us FROM journal WHERE late = 1`)
	if err != nil {
		w.t.Fatal(err)
	}
	defer rows.Close()
	out := map[int64]int64{}
	for rows.Next() {
		var us int64
		rows.Scan(&us)
		out[us/60e6*60+60]++
	}
	return out
}

func clone(m *engine.Message) *engine.Message {
	return &engine.Message{ID: m.ID, Key: m.Key, Topic: m.Topic, TimeUS: m.TimeUS, Raw: m.Raw}
}
