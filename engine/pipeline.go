package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The pipeline, from a record to a committed row:
//
//	sources (files; the bus and the archive)
//	   │  Decoder.Decode: normalize, reject bad records
//	   ▼
//	Engine.Ingest ──► Journal.Append  (dedupe on key; the journal index fixes
//	   │                               the one total order: time, then key)
//	   ▼
//	runner(model A) ─ scan after its cursor ─ Process each message ─ Flush + state + cursor ─► one transaction
//	runner(model B) ─ …
//	   (one goroutine per model: models run in parallel, each strictly in
//	    journal order; runners in step share each journal read, see scanCache)
//
// A runner that is behind (a new model, or one resumed after a failure)
// reads the journal on its own, so it never holds the others back.

// Config tunes the engine. Zero values take the defaults.
type Config struct {
	// BatchSize is how many messages a model processes between commits.
	BatchSize int
	// BatchInterval is the longest a model holds processed messages before
	// committing them, when messages trickle in.
	BatchInterval time.Duration
	// IdleCommit, when positive and shorter than BatchInterval, is how long
	// a following model that has caught up with the journal and the
	// watermark holds what it processed: a daemon then shows a live message
	// sooner (BatchInterval alone adds up to a second to every message's
	// latency), while a model that is catching up still commits by
	// BatchSize and BatchInterval, where commits cost throughput.
	IdleCommit time.Duration
	// ScanSize is how many journal rows the feed reads at a time.
	ScanSize int
	// KnownState is how many committed state values a runner holds in
	// memory to answer its model's reads (see stateBuffer); 0 means
	// DefaultKnownState, a negative value none: every read of committed
	// state goes to the store (a test counting them does that).
	KnownState int
	// FlushRetries is how many times a model's failing flush is retried
	// before the model is marked failed.
	FlushRetries int
	// ErrorWindow and MaxErrorShare quarantine a model that fails on more
	// than MaxErrorShare of ErrorWindow consecutive messages it wanted.
	ErrorWindow   int
	MaxErrorShare float64
	// Epoch is how far back the history of a new model starts (unless its
	// backlog is shorter); zero means the whole journal.
	Epoch time.Time
	// DiskFullWait is how long a model's commits that fail on a full disk
	// are retried at the usual backoff before the model is stalled: shown
	// stopped with that reason, its commit is then tried every StallRetry
	// until there is space again.
	DiskFullWait time.Duration
	StallRetry   time.Duration
	// HoldModels holds every model before its first message until the
	// caller sets how far it may go with Hold: the daemon's follower
	// (engine/follow) lets each model process only up to the first span of
	// time the journal may still lack after the model's position.
	HoldModels bool
	// Leased runs a model only while its lease is granted (see lease.go):
	// several instances share the database and each model runs in one.
	Leased bool
	// OnFenced, if set, is told when a commit was refused because the
	// model's lease moved (the model stopped here). It must not block.
	OnFenced func(key string, f Fence)
	// Drain bounds the store work a model still does once its context has
	// ended (a shutdown, or its lease given up): the commit underway, the
	// last commit, a status write. A commit that does not get through in
	// that time is rolled back, and its batch processed again at the next
	// start (see WithDrain).
	Drain  time.Duration
	Logger *slog.Logger
}

// Default engine settings.
const (
	DefaultBatchSize     = 5000
	DefaultBatchInterval = time.Second
	DefaultScanSize      = 2000
	DefaultKnownState    = 1 << 15
	DefaultFlushRetries  = 3
	DefaultErrorWindow   = 1000
	DefaultMaxErrorShare = 0.5
	DefaultDiskFullWait  = time.Minute
	DefaultStallRetry    = 30 * time.Second
	// DefaultDrain is the drain time of the whole daemon: the follower,
	// the models and the cluster node all stop within it.
	DefaultDrain = 10 * time.Second
)

func (c *Config) setDefaults() {
	if c.BatchSize <= 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.BatchInterval <= 0 {
		c.BatchInterval = DefaultBatchInterval
	}
	if c.ScanSize <= 0 {
		c.ScanSize = DefaultScanSize
	}
	if c.KnownState == 0 {
		c.KnownState = DefaultKnownState
	}
	if c.FlushRetries <= 0 {
		c.FlushRetries = DefaultFlushRetries
	}
	if c.ErrorWindow <= 0 {
		c.ErrorWindow = DefaultErrorWindow
	}
	if c.MaxErrorShare <= 0 {
		c.MaxErrorShare = DefaultMaxErrorShare
	}
	if c.DiskFullWait <= 0 {
		c.DiskFullWait = DefaultDiskFullWait
	}
	if c.Drain <= 0 {
		c.Drain = DefaultDrain
	}
	if c.StallRetry <= 0 {
		c.StallRetry = DefaultStallRetry
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Engine owns the models and moves journal messages through them.
type Engine struct {
	store Store
	cfg   Config
	log   *slog.Logger
	cache *scanCache

	mu      sync.Mutex
	runners map[string]*runner
	order   []string // idents in the order they were added
	changed chan struct{}
	running *runState
	// swap is held (a one-slot semaphore that a cancelled context can stop
	// waiting for) by a reload and by the promotion of a rebuilt table, so
	// that neither sees the other's runners half changed.
	swap chan struct{}
	// commitMu orders journal appends against model commits: Ingest holds
	// it exclusively, commits share it. So a message appended between a
	// model's committed cursor and where the model has processed to is
	// either seen by the model before it commits (it redoes the batch), or
	// appended after the commit and flagged late by the store.
	commitMu sync.RWMutex
	// watermark: runners process only messages older than this (unix
	// microseconds). The daemon holds it back while the archive fills a
	// gap and by the lateness window of the live bus; replay leaves it open.
	watermark atomic.Int64
	// clusterWM caps the watermark when several instances share the
	// journal (SetClusterWatermark); math.MaxInt64 otherwise.
	clusterWM atomic.Int64
	// leases are the lease keys granted to this engine (Config.Leased),
	// under mu; fenced counts the commits the store refused.
	leases map[string]Fence
	fenced atomic.Int64
}

// runState is the context models run in while Run is active.
type runState struct {
	ctx    context.Context
	follow bool
	// n counts the runners' goroutines, under e.mu. Once ended is set
	// (under e.mu: when Run's context has ended in follow mode, or a
	// replay's last runner has returned) no runner starts any more, and
	// idle is closed when n is 0: Run returns then, and no runner started
	// by a Grant or an Add at its end outlives it.
	n     int
	ended bool
	idle  chan struct{}
}

// settle closes rs.idle once rs has ended and its last runner returned.
// A replay ends with its last runner. e.mu is held.
func (rs *runState) settle() {
	if rs.n > 0 {
		return
	}
	if !rs.follow {
		rs.ended = true
	}
	if rs.ended {
		select {
		case <-rs.idle:
		default:
			close(rs.idle)
		}
	}
}

// New returns an engine over store. Add models, then Run.
func New(store Store, cfg Config) *Engine {
	cfg.setDefaults()
	e := &Engine{
		store: store, cfg: cfg, log: cfg.Logger,
		cache:   newScanCache(store.Scan, 64),
		runners: map[string]*runner{},
		changed: make(chan struct{}),
		swap:    make(chan struct{}, 1),
		leases:  map[string]Fence{},
	}
	e.cache.drain = cfg.Drain
	e.watermark.Store(math.MaxInt64)
	e.clusterWM.Store(math.MaxInt64)
	return e
}

// SetWatermark lets models process messages older than t, and no newer
// ones. Every message before the watermark must be in the journal: that is
// what makes a model never see a message out of order.
func (e *Engine) SetWatermark(t time.Time) {
	e.watermark.Store(t.UnixMicro())
	e.wake()
}

// Watermark returns the current watermark.
func (e *Engine) Watermark() time.Time {
	w := e.watermark.Load()
	if w == math.MaxInt64 {
		return time.Time{}
	}
	return time.UnixMicro(w).UTC()
}

func (e *Engine) wake() {
	e.mu.Lock()
	close(e.changed)
	e.changed = make(chan struct{})
	e.mu.Unlock()
}

// Add registers a model: its table is created or checked and its cursor
// read. A model whose table cannot be registered is not added. While Run is
// active the model starts at once and catches up on its own.
func (e *Engine) Add(ctx context.Context, m Model) error {
	return e.add(ctx, m, "")
}

// add is Add. promoteTo is set for the rebuild of that model's table under
// a shadow ident, which a model may not declare itself.
func (e *Engine) add(ctx context.Context, m Model, promoteTo string) error {
	spec := m.Spec()
	shadow := promoteTo != ""
	if !shadow && strings.Contains(spec.Ident, ShadowSep) {
		return fmt.Errorf("model %s (%s): %q is reserved for tables being rebuilt and cannot be part of a model's name", spec.Ident, spec.Script, ShadowSep)
	}
	e.mu.Lock()
	if r, ok := e.runners[spec.Ident]; ok {
		e.mu.Unlock()
		return fmt.Errorf("model %s (%s): ident already used by %s", spec.Ident, spec.Script, r.spec.Script)
	}
	e.mu.Unlock()
	st, err := e.store.Register(ctx, spec)
	if errors.Is(err, ErrTableChanged) && !shadow {
		// The table may be the one a rebuild of this declaration made,
		// promoted before this start or reload: the model goes on with it.
		if st, err = e.registerRebuilt(ctx, spec); errors.Is(err, ErrTableChanged) {
			e.log.Info("table declaration changed: rebuilding it from the journal; the old table serves meanwhile", "model", spec.Ident)
			return e.addShadow(ctx, m)
		}
	}
	if err != nil {
		return fmt.Errorf("register model %s: %w", spec.Ident, err)
	}
	r := newRunner(e, m, st)
	r.promoteTo = promoteTo // before the runner starts: its goroutine reads it
	if st.Cursor.IsZero() && r.startUS != math.MinInt64 {
		if ss, ok := e.store.(interface {
			SetStart(ctx context.Context, ident string, startUS int64) error
		}); ok {
			if err := ss.SetStart(ctx, spec.Ident, r.startUS); err != nil {
				return fmt.Errorf("register model %s: %w", spec.Ident, err)
			}
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.runners[spec.Ident] = r
	e.order = append(e.order, spec.Ident)
	if e.running != nil && e.mayStart(r) {
		e.start(r)
	}
	return nil
}

// start runs r's goroutine under the active Run, unless Run is ending:
// its context ended, or it returns. e.mu is held.
func (e *Engine) start(r *runner) {
	rs := e.running
	if rs.ended || rs.ctx.Err() != nil {
		return
	}
	// The runner's stop clock notes when it was told to stop (the
	// engine's stop, or its lease given up): its last commit's drain
	// counts from then.
	ctx, cancel := context.WithCancel(rs.ctx)
	ctx = WithStopClock(ctx)
	r.cancel = cancel
	r.done = make(chan struct{})
	rs.n++
	go func() {
		defer func() {
			e.mu.Lock()
			rs.n--
			rs.settle()
			e.mu.Unlock()
		}()
		defer close(r.done)
		r.run(ctx, rs.follow)
	}()
}

// Remove stops a model: it commits what it has processed and leaves its
// table and cursor in place, so adding it again resumes where it stopped.
func (e *Engine) Remove(ident string) bool {
	e.mu.Lock()
	r, ok := e.runners[ident]
	if ok {
		delete(e.runners, ident)
		for i, id := range e.order {
			if id == ident {
				e.order = append(e.order[:i], e.order[i+1:]...)
				break
			}
		}
	}
	e.mu.Unlock()
	if !ok {
		return false
	}
	r.stop()
	return true
}

// Ingest appends messages to the journal and wakes the runners. A model
// that had already processed past one of the new messages, without having
// committed it, processes its batch again so that it sees the message in
// order; one that had committed past it will not see it (it is late).
func (e *Engine) Ingest(ctx context.Context, msgs []*Message) (AppendResult, error) {
	return e.ingest(ctx, msgs, nil)
}

// IngestSpan is Ingest for a span of time fetched whole from the archive:
// in the same transaction as the messages, the store records that the
// journal now holds every message of span. A crash either keeps both or
// neither, so a span is never taken as complete while its messages are
// missing. The store must implement SpanJournal.
func (e *Engine) IngestSpan(ctx context.Context, msgs []*Message, span Span) (AppendResult, error) {
	return e.ingest(ctx, msgs, &span)
}

func (e *Engine) ingest(ctx context.Context, msgs []*Message, span *Span) (AppendResult, error) {
	if len(msgs) == 0 && span == nil {
		return AppendResult{}, nil
	}
	var sj SpanJournal
	if span != nil {
		var ok bool
		if sj, ok = e.store.(SpanJournal); !ok {
			return AppendResult{}, errors.New("ingest a complete span: the store does not record spans")
		}
	}
	e.commitMu.Lock()
	var res AppendResult
	var err error
	if span != nil {
		res, err = sj.AppendSpan(ctx, msgs, *span)
	} else {
		res, err = e.store.Append(ctx, msgs)
	}
	if err == nil && res.Added > 0 {
		first := msgs[0].Pos()
		for _, m := range msgs[1:] {
			if m.Pos().Less(first) {
				first = m.Pos()
			}
		}
		e.cache.inserted(first)
		e.mu.Lock()
		for _, r := range e.runners {
			r.noteInserted(msgs)
		}
		e.mu.Unlock()
	}
	e.commitMu.Unlock()
	if err != nil {
		return res, fmt.Errorf("ingest %d messages: %w", len(msgs), err)
	}
	if res.Added > 0 {
		e.wake()
	}
	return res, nil
}

// journalChanged returns a channel closed at the next ingest.
func (e *Engine) journalChanged() <-chan struct{} {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.changed
}

// RunnerStats is a model's progress as the engine sees it.
type RunnerStats struct {
	Ident     string
	Processed int64 // messages processed by this engine (not the total)
	Errors    int64 // process errors in this engine run
	// Failed is why the model is stopped, "" while it runs.
	Failed string
	// Stalled is set when the stop is for a passing reason (a full disk):
	// the model resumes by itself once its commit gets through.
	Stalled bool
	Cursor  Position
	// Queued is how many work items the model's last commit left waiting
	// for its workers (0 for a model without a queue).
	Queued int64
	// Running is set while the model's goroutine runs in this engine;
	// with leases (Config.Leased), Token is the lease token it runs
	// under, and Lost is set when a commit was refused because another
	// instance took the lease.
	Running bool
	Token   int64
	Lost    bool
	// Indexes is why the table's declared indexes (index = true) are
	// missing after an attempt to build them failed (a full disk), ""
	// otherwise: the model runs on, but queries by those columns scan the
	// table until a later attempt succeeds.
	Indexes string
}

// Stats returns every model's progress in this run, in the order the
// models were added.
func (e *Engine) Stats() []RunnerStats {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]RunnerStats, 0, len(e.runners))
	for _, id := range e.order {
		out = append(out, e.runners[id].stats())
	}
	return out
}

// Run moves messages from the journal through every model. With follow
// false it returns once every model has processed and committed the whole
// journal; with follow true it keeps waiting for new messages until ctx is
// cancelled, then commits and returns.
func (e *Engine) Run(ctx context.Context, follow bool) error {
	e.mu.Lock()
	if e.running != nil {
		e.mu.Unlock()
		return errors.New("engine is already running")
	}
	rs := &runState{ctx: ctx, follow: follow, idle: make(chan struct{})}
	e.running = rs
	for _, id := range e.order {
		if r := e.runners[id]; e.mayStart(r) {
			e.start(r)
		}
	}
	rs.settle()
	e.mu.Unlock()
	if follow {
		<-ctx.Done()
		e.mu.Lock()
		rs.ended = true
		rs.settle()
		e.mu.Unlock()
	}
	<-rs.idle
	e.mu.Lock()
	e.running = nil
	e.mu.Unlock()
	return nil
}

// Positions returns, for every model, where it stands in time (unix µs):
// its committed cursor, or where its history starts when it has committed
// nothing yet (math.MinInt64 for a model that wants the whole journal).
// Spans of time before a model's position are of no use to it.
func (e *Engine) Positions() map[string]int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string]int64, len(e.runners))
	for id, r := range e.runners {
		r.mu.Lock()
		pos := r.committedPos
		r.mu.Unlock()
		if pos.IsZero() {
			out[id] = r.startUS
		} else {
			out[id] = max(pos.TimeUS, r.startUS)
		}
	}
	return out
}

// Hold keeps one model from processing messages at or after untilUS, on
// top of the watermark, while the journal may still lack messages there;
// math.MaxInt64 releases it. The other models are not held back.
func (e *Engine) Hold(ident string, untilUS int64) {
	e.mu.Lock()
	r := e.runners[ident]
	e.mu.Unlock()
	if r != nil && r.hold.Swap(untilUS) != untilUS {
		e.wake()
	}
}
