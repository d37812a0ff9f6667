package engine_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"statscache/engine"
	"statscache/engine/sqlstore"
)

// fencedStore is the SQLite store with a lease table in memory: its
// commits check the checkpoint's fence the way a shared database does in
// the commit transaction (engine/pgstore does it for real).
type fencedStore struct {
	*sqlstore.DB
	mu      sync.Mutex
	leases  map[string]engine.Fence
	commits []fencedCommit
}

type fencedCommit struct {
	key      string
	fence    engine.Fence
	from, to engine.Position
}

func newFencedStore(db *testDB) *fencedStore {
	return &fencedStore{DB: db.store, leases: map[string]engine.Fence{}}
}

func (s *fencedStore) setLease(key string, f engine.Fence) {
	s.mu.Lock()
	s.leases[key] = f
	s.mu.Unlock()
}

func (s *fencedStore) Begin(ctx context.Context, ident string) (engine.ModelTx, error) {
	tx, err := s.DB.Begin(ctx, ident)
	if err != nil {
		return nil, err
	}
	return &fencedTx{ModelTx: tx, s: s, ident: ident}, nil
}

type fencedTx struct {
	engine.ModelTx
	s     *fencedStore
	ident string
}

func (tx *fencedTx) Commit(cp engine.Checkpoint) error {
	key := engine.LeaseKey(tx.ident)
	tx.s.mu.Lock()
	defer tx.s.mu.Unlock()
	if cp.Fence == nil || tx.s.leases[key] != *cp.Fence {
		tx.ModelTx.Rollback()
		return fmt.Errorf("commit %s with %+v: %w", tx.ident, cp.Fence, engine.ErrFenced)
	}
	if err := tx.ModelTx.Commit(cp); err != nil {
		return err
	}
	tx.s.commits = append(tx.s.commits, fencedCommit{key, *cp.Fence, cp.From, cp.Cursor})
	return nil
}

// holds reports an error wrapping ErrFenced, as engine/pgstore does, when
// f is not nil and not the lease of ident's model. s.mu is held.
func (s *fencedStore) holds(ident string, f *engine.Fence, what string) error {
	if f != nil && s.leases[engine.LeaseKey(ident)] != *f {
		return fmt.Errorf("%s with %+v: %w", what, *f, engine.ErrFenced)
	}
	return nil
}

// Promote checks the fence as Commit does.
func (s *fencedStore) Promote(ctx context.Context, shadow, target string, f *engine.Fence) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.holds(shadow, f, "promote "+shadow); err != nil {
		return err
	}
	return s.DB.Promote(ctx, shadow, target, f)
}

// SetStatus checks the fence as Commit does.
func (s *fencedStore) SetStatus(ctx context.Context, ident, status, reason string, f *engine.Fence) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.holds(ident, f, "mark "+ident+" "+status); err != nil {
		return err
	}
	return s.DB.SetStatus(ctx, ident, status, reason, f)
}

// leasedEngine is an engine with cfg and leases over a fenced store, in
// which instance a holds the lease of model m with token 1 (the fence
// returned); m is not added.
func leasedEngine(t *testing.T, cfg engine.Config) (*testDB, *fencedStore, *engine.Engine, engine.Fence) {
	t.Helper()
	db := openTestDB(t, "")
	fs := newFencedStore(db)
	f := engine.Fence{Holder: "a", Token: 1}
	fs.setLease("m", f)
	cfg.Leased = true
	return db, fs, engine.New(fs, quietConfig(cfg)), f
}

func messages(t *testing.T, prefix string, from, n int) []*engine.Message {
	var out []*engine.Message
	for i := from; i < from+n; i++ {
		out = append(out, message(t, fmt.Sprintf("%s%03d", prefix, i), tBuild, float64(1000+i)))
	}
	return out
}

// TestLeaseFencedCommitRefused: an instance whose lease was taken while it
// was running (paused past its lease, say) has its next commit refused by
// the store: the model stops there without being marked failed, the
// refusal is counted and reported, and the instance that took the lease
// resumes from the last commit the store accepted. Every message is
// counted once.
func TestLeaseFencedCommitRefused(t *testing.T) {
	db := openTestDB(t, "")
	fs := newFencedStore(db)
	a1 := engine.Fence{Holder: "a", Token: 1}
	fs.setLease("m", a1)
	var fencedMu sync.Mutex
	var fenced []engine.Fence
	cfgA := quietConfig(engine.Config{Leased: true, BatchSize: 5, OnFenced: func(key string, f engine.Fence) {
		fencedMu.Lock()
		fenced = append(fenced, f)
		fencedMu.Unlock()
	}})
	a := engine.New(fs, cfgA)
	ma := newFake("m")
	if err := a.Add(context.Background(), ma); err != nil {
		t.Fatal(err)
	}
	stopA := runFollow(t, a)
	ingest(t, a, messages(t, "x", 0, 10)...)
	if within(time.Second, func() bool { return stats(a, "m").Processed > 0 }) {
		t.Fatal("a model ran before its lease was granted")
	}
	if err := a.Grant(context.Background(), "m", a1); err != nil {
		t.Fatal(err)
	}
	if !within(10*time.Second, func() bool { return stats(a, "m").Processed == 10 }) {
		t.Fatalf("instance a processed %d of 10 messages", stats(a, "m").Processed)
	}
	// Instance b takes the model: a's next commit must be refused.
	b2 := engine.Fence{Holder: "b", Token: 2}
	fs.setLease("m", b2)
	ingest(t, a, messages(t, "x", 10, 5)...)
	if !within(10*time.Second, func() bool { return stats(a, "m").Lost }) {
		t.Fatalf("instance a's commit with a stale token was not refused: %+v", stats(a, "m"))
	}
	if n := a.FencedCommits(); n != 1 {
		t.Errorf("FencedCommits = %d, want 1", n)
	}
	fencedMu.Lock()
	if len(fenced) != 1 || fenced[0] != a1 {
		t.Errorf("OnFenced told %v, want [%v]", fenced, a1)
	}
	fencedMu.Unlock()
	if _, ok := a.Granted()["m"]; ok {
		t.Error("a still lists the lease it lost")
	}
	if st := db.model(t, "m"); st.Status != "ok" || st.Processed != 10 {
		t.Errorf("after the refused commit the model is %q with %d processed, want ok with 10", st.Status, st.Processed)
	}
	stopA()

	b := engine.New(fs, quietConfig(engine.Config{Leased: true, BatchSize: 5}))
	mb := newFake("m")
	if err := b.Add(context.Background(), mb); err != nil {
		t.Fatal(err)
	}
	if err := b.Grant(context.Background(), "m", b2); err != nil {
		t.Fatal(err)
	}
	run(t, b)
	if got := db.counts(t, "m"); got[tBuild] != 15 {
		t.Errorf("counted %d messages, want 15", got[tBuild])
	}
	if len(mb.seen) != 5 {
		t.Errorf("instance b processed %d messages, want the 5 after a's last commit", len(mb.seen))
	}
	// The commits form one chain: each starts where the one before ended.
	var prev engine.Position
	for i, c := range fs.commits {
		if c.from != prev {
			t.Errorf("commit %d by %+v starts at %v, the one before ended at %v", i, c.fence, c.from, prev)
		}
		prev = c.to
	}
}

// TestLeaseReleaseCommitsAndStops: releasing a lease commits what the
// model processed and stops it; granting it again resumes from there.
func TestLeaseReleaseCommitsAndStops(t *testing.T) {
	db, fs, e, f1 := leasedEngine(t, engine.Config{BatchSize: 5})
	if err := e.Add(context.Background(), newFake("m")); err != nil {
		t.Fatal(err)
	}
	runFollow(t, e)
	if err := e.Grant(context.Background(), "m", f1); err != nil {
		t.Fatal(err)
	}
	ingest(t, e, messages(t, "y", 0, 7)...)
	if !within(10*time.Second, func() bool { return stats(e, "m").Processed == 5 }) {
		t.Fatalf("committed %d of the first 5", stats(e, "m").Processed)
	}
	// The last two wait for the batch to fill (BatchSize 5, no interval):
	// the release commits them.
	e.Release("m")
	if st := stats(e, "m"); st.Running {
		t.Error("the model still runs after its lease was released")
	}
	if got := db.counts(t, "m")[tBuild]; got != 7 {
		t.Errorf("release left %d messages committed, want 7; commits %+v", got, fs.commits)
	}
	f2 := engine.Fence{Holder: "a", Token: 2}
	fs.setLease("m", f2)
	if err := e.Grant(context.Background(), "m", f2); err != nil {
		t.Fatal(err)
	}
	if st := stats(e, "m"); !st.Running || st.Token != 2 {
		t.Errorf("after the second grant: %+v, want running with token 2", st)
	}
	ingest(t, e, messages(t, "y", 7, 5)...)
	if !within(10*time.Second, func() bool { return stats(e, "m").Processed == 5 }) {
		t.Fatalf("after the second grant the model committed %d, want 5", stats(e, "m").Processed)
	}
	e.Release("m")
	if got := db.counts(t, "m")[tBuild]; got != 12 {
		t.Errorf("counted %d, want 12", got)
	}
	var tokens []int64
	for _, c := range fs.commits {
		tokens = append(tokens, c.fence.Token)
	}
	if fmt.Sprint(tokens) != "[1 1 2]" {
		t.Errorf("commits made with tokens %v, want [1 1 2]", tokens)
	}
}

// TestClusterWatermarkCaps: a model processes nothing at or after the
// cluster watermark, whatever its own engine's watermark says.
func TestClusterWatermarkCaps(t *testing.T) {
	db := openTestDB(t, "")
	e := newEngine(t, db, engine.Config{BatchSize: 5}, newFake("m"))
	e.SetClusterWatermark(time.Unix(1005, 0).UnixMicro())
	runFollow(t, e)
	ingest(t, e, messages(t, "z", 0, 10)...)
	if !within(10*time.Second, func() bool { return stats(e, "m").Processed == 5 }) {
		t.Fatalf("committed %d messages, want the 5 before the cluster watermark", stats(e, "m").Processed)
	}
	if c := stats(e, "m").Cursor.TimeUS; c != time.Unix(1004, 0).UnixMicro() {
		t.Errorf("cursor at %d, want the last message before the cluster watermark", c)
	}
	e.SetClusterWatermark(time.Unix(2000, 0).UnixMicro())
	if !within(10*time.Second, func() bool { return stats(e, "m").Processed == 10 }) {
		t.Fatalf("committed %d after the cluster watermark moved, want 10", stats(e, "m").Processed)
	}
}

// TestLeaseMovesABacklogModelAfterItsStart: two instances add a model whose
// history starts a Backlog before it is added, b a moment after a. a runs
// it and commits its first message; the model moves to b. b resumes from
// a's cursor and processes every message after it, also those before the
// start b computed for the model when it was added: the committed cursor,
// not a start of b's own, says where the model is.
func TestLeaseMovesABacklogModelAfterItsStart(t *testing.T) {
	db := openTestDB(t, "")
	fs := newFencedStore(db)
	ctx := context.Background()
	backlog := func() *fakeModel {
		m := newFake("m")
		m.spec.Backlog = time.Hour
		return m
	}
	a := engine.New(fs, quietConfig(engine.Config{Leased: true, BatchSize: 1}))
	if err := a.Add(ctx, backlog()); err != nil {
		t.Fatal(err)
	}
	added := time.Now()
	for !time.Now().After(added.Add(10 * time.Millisecond)) {
	}
	mb := backlog()
	b := engine.New(fs, quietConfig(engine.Config{Leased: true, BatchSize: 1}))
	if err := b.Add(ctx, mb); err != nil {
		t.Fatal(err)
	}
	// m1 and m2 lie after a's start and before b's.
	start := float64(added.Add(-time.Hour).UnixMicro()) / 1e6
	m1, m2 := message(t, "m1", "t", start+0.001), message(t, "m2", "t", start+0.002)
	m3 := message(t, "m3", "t", float64(time.Now().Add(-time.Minute).UnixMicro())/1e6)
	ingest(t, a, m1, m2, m3)

	fa := engine.Fence{Holder: "a", Token: 1}
	fs.setLease("m", fa)
	a.SetClusterWatermark(m2.TimeUS) // a stops after m1
	if err := a.Grant(ctx, "m", fa); err != nil {
		t.Fatal(err)
	}
	run(t, a)
	if st := db.model(t, "m"); st.Cursor != m1.Pos() {
		t.Fatalf("a committed up to %v, want m1", st.Cursor)
	}
	fb := engine.Fence{Holder: "b", Token: 2}
	fs.setLease("m", fb)
	if err := b.Grant(ctx, "m", fb); err != nil {
		t.Fatal(err)
	}
	run(t, b)
	if got := db.counts(t, "m")["t"]; got != 3 {
		t.Errorf("counted %d messages, want 3 (b processed %v)", got, mb.seen)
	}
}

// gateStore is the fenced store with two gates a test opens by hand: the
// next Register once armed, and every Promote, tell the test they were
// called (on registerIn, promoteIn) and wait until it lets them go on
// (letRegister, letPromote; both at the test's end).
type gateStore struct {
	*fencedStore
	registerArmed          atomic.Bool
	registerIn, registerGo chan struct{}
	promoteIn, promoteGo   chan struct{}
	letRegister            func()
	letPromote             func()
}

func newGateStore(db *testDB) *gateStore {
	s := &gateStore{fencedStore: newFencedStore(db),
		registerIn: make(chan struct{}, 1), registerGo: make(chan struct{}),
		promoteIn: make(chan struct{}, 1), promoteGo: make(chan struct{})}
	s.letRegister = sync.OnceFunc(func() { close(s.registerGo) })
	s.letPromote = sync.OnceFunc(func() { close(s.promoteGo) })
	return s
}

func (s *gateStore) Register(ctx context.Context, spec *engine.ModelSpec) (engine.ModelStatus, error) {
	if s.registerArmed.CompareAndSwap(true, false) {
		s.registerIn <- struct{}{}
		<-s.registerGo
	}
	return s.fencedStore.DB.Register(ctx, spec)
}

func (s *gateStore) Promote(ctx context.Context, shadow, target string, f *engine.Fence) error {
	s.promoteIn <- struct{}{}
	<-s.promoteGo
	return s.fencedStore.Promote(ctx, shadow, target, f)
}

// gateIn waits until a gate of the store is entered.
func gateIn(t *testing.T, in chan struct{}, what string) {
	t.Helper()
	select {
	case <-in:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s was not called", what)
	}
}

// returned waits for the error of a call (what) made on another
// goroutine, and fails the test on one.
func returned(t *testing.T, errc <-chan error, what string) {
	t.Helper()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal(what + " did not return")
	}
}

// leasedAndCommitted runs an engine over gs in follow mode with model m
// granted under f, until m has committed three messages. stop stops it,
// after letting gs's Promote go on.
func leasedAndCommitted(t *testing.T, db *testDB, gs *gateStore, m *fakeModel, f engine.Fence) (e *engine.Engine, stop func()) {
	t.Helper()
	ctx := context.Background()
	gs.setLease("m", f)
	e = engine.New(gs, quietConfig(engine.Config{Leased: true, BatchInterval: 20 * time.Millisecond}))
	if err := e.Add(ctx, m); err != nil {
		t.Fatal(err)
	}
	stopRun := runFollow(t, e)
	stop = func() { gs.letPromote(); stopRun() }
	if err := e.Grant(ctx, "m", f); err != nil {
		stop()
		t.Fatal(err)
	}
	msgs := messages(t, "p", 0, 3)
	ingest(t, e, msgs...)
	if !within(5*time.Second, func() bool { return db.model(t, "m").Cursor == msgs[2].Pos() }) {
		stop()
		t.Fatal("the model did not commit the first messages")
	}
	return e, stop
}

// rebuildUntilPromote has e reload m with a changed table, and waits until
// the rebuild, caught up, calls gs's Promote.
func rebuildUntilPromote(t *testing.T, e *engine.Engine, gs *gateStore) {
	t.Helper()
	if res := e.Reload(context.Background(), []engine.Model{widened("m")}, nil); len(res.Rebuilding) != 1 || len(res.Errors) > 0 {
		t.Fatalf("Reload = %+v, want m rebuilding", res)
	}
	gateIn(t, gs.promoteIn, "Promote")
}

// TestLeaseGrantDuringPromotion: the coordinator grants every held lease
// again at each heartbeat. A grant that meets the promotion of a rebuilt
// table (the old model stopped, the tables swapping in the store) must not
// start the old model again: once the promotion replaces it, nothing could
// stop it, and two runners would commit the model. The grant comes while
// the store swaps the tables, or began before (a new token: it stopped the
// old model and was registering it again when the promotion started).
func TestLeaseGrantDuringPromotion(t *testing.T) {
	for _, early := range []bool{false, true} {
		t.Run(map[bool]string{false: "DuringSwap", true: "BeganBefore"}[early], func(t *testing.T) {
			db := openTestDB(t, "")
			gs := newGateStore(db)
			ctx := context.Background()
			f := engine.Fence{Holder: "a", Token: 1}
			old := newFake("m")
			var oldProcessed atomic.Int64
			old.onProc = func(*engine.Message) { oldProcessed.Add(1) }
			e, stop := leasedAndCommitted(t, db, gs, old, f)
			defer stop()
			defer gs.letRegister()
			oldTable := db.servingTable(t, "m")
			granted := make(chan error, 1)
			if early {
				f = engine.Fence{Holder: "a", Token: 2}
				gs.registerArmed.Store(true)
				go func() { granted <- e.Grant(ctx, "m", f) }()
				gateIn(t, gs.registerIn, "Register")
				gs.setLease("m", f) // the old model has stopped
			}
			rebuildUntilPromote(t, e, gs)
			if early {
				gs.letRegister()
			} else {
				go func() { granted <- e.Grant(ctx, "m", f) }()
			}
			returned(t, granted, "Grant")
			gs.letPromote()
			if !within(5*time.Second, func() bool { return len(e.Stats()) == 1 && db.servingTable(t, "m") != oldTable }) {
				t.Fatalf("the rebuilt table was not promoted: %+v", e.Stats())
			}
			before := oldProcessed.Load()
			m4 := message(t, "p4", tBuild, 2000)
			ingest(t, e, m4)
			if !within(5*time.Second, func() bool { return db.model(t, "m").Cursor == m4.Pos() }) {
				t.Fatalf("the promoted model did not commit a new message: %+v", e.Stats())
			}
			if within(500*time.Millisecond, func() bool { return oldProcessed.Load() > before }) {
				t.Error("the old model processed a message after its table was replaced: the grant started it again")
			}
			stop()
			if old.opens != 1 {
				t.Errorf("the old model was opened %d times, want once", old.opens)
			}
		})
	}
}

// TestLeaseReleaseDuringGrant: a Release that comes while a Grant of the
// same key is registering the model again (after stopping its runner)
// ends with the model stopped, as it would had it come after the Grant:
// the grant must not put in and start a runner for a lease no longer held.
func TestLeaseReleaseDuringGrant(t *testing.T) {
	db := openTestDB(t, "")
	gs := newGateStore(db)
	ctx := context.Background()
	f := engine.Fence{Holder: "a", Token: 1}
	gs.setLease("m", f)
	e := engine.New(gs, quietConfig(engine.Config{Leased: true, BatchSize: 1}))
	if err := e.Add(ctx, newFake("m")); err != nil {
		t.Fatal(err)
	}
	defer runFollow(t, e)()
	defer gs.letRegister()
	gs.registerArmed.Store(true)
	granted := make(chan error, 1)
	go func() { granted <- e.Grant(ctx, "m", f) }()
	gateIn(t, gs.registerIn, "Register")
	e.Release("m")
	gs.letRegister()
	returned(t, granted, "Grant")
	if st := stats(e, "m"); st.Running {
		t.Errorf("the model runs after its lease was released: %+v", st)
	}
	if g := e.Granted(); len(g) != 0 {
		t.Errorf("Granted = %v after the release", g)
	}
	ingest(t, e, messages(t, "r", 0, 2)...)
	if within(500*time.Millisecond, func() bool { return stats(e, "m").Processed > 0 }) {
		t.Error("the model processed messages after its lease was released")
	}
}

// TestLeaseGrantWhileRunEnds: once Run's context has ended, a Grant (the
// coordinator's tick runs on until it sees the end too) must not start a
// model: the other models are making their last commits and Run waits for
// them, and a runner started then is one Run may already have stopped
// waiting for.
func TestLeaseGrantWhileRunEnds(t *testing.T) {
	db := openTestDB(t, "")
	fs := newFencedStore(db)
	ctx := context.Background()
	fSlow, fM := engine.Fence{Holder: "a", Token: 1}, engine.Fence{Holder: "a", Token: 2}
	fs.setLease("slow", fSlow)
	fs.setLease("m", fM)
	e := engine.New(fs, quietConfig(engine.Config{Leased: true, BatchSize: 100}))
	slow, m := newFake("slow"), newFake("m")
	var processed atomic.Int64
	slow.onProc = func(*engine.Message) { processed.Add(1) }
	var hold atomic.Bool
	flushIn, flushGo := make(chan struct{}, 1), make(chan struct{})
	letFlush := sync.OnceFunc(func() { close(flushGo) })
	defer letFlush()
	slow.onFlush = func(*fakeModel) {
		if hold.Load() {
			flushIn <- struct{}{}
			<-flushGo
		}
	}
	for _, mod := range []engine.Model{slow, m} {
		if err := e.Add(ctx, mod); err != nil {
			t.Fatal(err)
		}
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	ran := make(chan error, 1)
	go func() { ran <- e.Run(runCtx, true) }()
	if err := e.Grant(ctx, "slow", fSlow); err != nil {
		t.Fatal(err)
	}
	ingest(t, e, messages(t, "w", 0, 3)...)
	if !within(5*time.Second, func() bool { return processed.Load() == 3 }) {
		t.Fatal("the model did not process the messages")
	}
	// Run ends; slow's last commit holds it up.
	hold.Store(true)
	cancel()
	gateIn(t, flushIn, "slow's last Flush")
	if err := e.Grant(ctx, "m", fM); err != nil {
		t.Fatal(err)
	}
	letFlush()
	returned(t, ran, "Run")
	if m.opens != 0 {
		t.Errorf("model m was started %d times after Run's context ended", m.opens)
	}
	if st := stats(e, "m"); st.Running {
		t.Errorf("model m runs after Run returned: %+v", st)
	}
}

// TestLeasePromotionFenced: an instance whose lease another took between
// the rebuild's last commit and the promotion (paused there, say) has the
// promotion refused by the store, as a commit: the rebuild stops without
// being marked failed, the old table stays, the refusal is counted and the
// lease dropped, and the old model is back in place but not running.
func TestLeasePromotionFenced(t *testing.T) {
	db := openTestDB(t, "")
	gs := newGateStore(db)
	e, stop := leasedAndCommitted(t, db, gs, newFake("m"), engine.Fence{Holder: "a", Token: 1})
	defer stop()
	oldTable := db.servingTable(t, "m")
	rebuildUntilPromote(t, e, gs)
	gs.setLease("m", engine.Fence{Holder: "b", Token: 2})
	gs.letPromote()
	var shadow engine.RunnerStats
	if !within(5*time.Second, func() bool {
		for _, s := range e.Stats() {
			if strings.Contains(s.Ident, engine.ShadowSep) {
				shadow = s
			}
		}
		return shadow.Lost
	}) {
		t.Fatalf("the rebuild did not stop at the refused promotion: %+v", e.Stats())
	}
	if shadow.Failed != "" || db.model(t, shadow.Ident).Status != "ok" {
		t.Errorf("the rebuild is marked failed: %+v, status %q", shadow, db.model(t, shadow.Ident).Status)
	}
	if got := db.servingTable(t, "m"); got != oldTable {
		t.Errorf("m is served by %s after the refused promotion, want %s", got, oldTable)
	}
	if st := stats(e, "m"); st.Running || st.Failed != "" {
		t.Errorf("the old model after the refused promotion: %+v, want stopped, not failed", st)
	}
	if n := e.FencedCommits(); n != 1 {
		t.Errorf("FencedCommits = %d, want 1", n)
	}
	if _, ok := e.Granted()["m"]; ok {
		t.Error("the engine still lists the lease it lost")
	}
}

// TestLeaseFailureAfterTakeover: a model that fails on an instance whose
// lease another has taken meanwhile (its update fails there, without a
// commit to be refused) does not mark the model failed in the database
// under the instance that runs it now: the store refuses the status as it
// refuses a commit, and the model stops here as lost.
func TestLeaseFailureAfterTakeover(t *testing.T) {
	db, fs, e, a1 := leasedEngine(t, engine.Config{BatchSize: 5})
	m := newFake("m")
	var broken atomic.Bool
	m.flushErr = func(int) error {
		if broken.Load() {
			return errors.New("injected: the update fails on this instance")
		}
		return nil
	}
	if err := e.Add(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	defer runFollow(t, e)()
	if err := e.Grant(context.Background(), "m", a1); err != nil {
		t.Fatal(err)
	}
	ingest(t, e, messages(t, "s", 0, 5)...)
	if !within(5*time.Second, func() bool { return stats(e, "m").Processed == 5 }) {
		t.Fatalf("committed %d of the first 5", stats(e, "m").Processed)
	}
	fs.setLease("m", engine.Fence{Holder: "b", Token: 2})
	broken.Store(true)
	ingest(t, e, messages(t, "s", 5, 5)...)
	if !within(5*time.Second, func() bool { return stats(e, "m").Failed != "" }) {
		t.Fatalf("the model did not stop on its failing update: %+v", stats(e, "m"))
	}
	if st := db.model(t, "m"); st.Status != "ok" {
		t.Errorf("the instance that lost the lease marked the model %q (%s) in the database", st.Status, st.Reason)
	}
	if st := stats(e, "m"); !st.Lost || st.Running {
		t.Errorf("the model here: %+v, want stopped and lost", st)
	}
	if n := e.FencedCommits(); n != 1 {
		t.Errorf("FencedCommits = %d, want 1", n)
	}
	if _, ok := e.Granted()["m"]; ok {
		t.Error("the engine still lists the lease it lost")
	}
}
