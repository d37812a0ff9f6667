package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

// runner drives one model: it processes the messages after the model's
// cursor and commits the model's rows, state and cursor together, in
// batches. It is the only goroutine that touches its model.
type runner struct {
	e     *Engine
	model Model
	spec  *ModelSpec
	log   *slog.Logger
	state *stateBuffer
	rows  *rowBuffer
	wq    *workQueue // nil unless the model is a QueueModel
	// indexed is set once the store has built the table's declared
	// indexes; indexRetry is when to try again after a failure (see
	// buildIndexes).
	indexed    bool
	indexRetry time.Time

	// committed is the cursor of the last successful commit; cursor is where
	// processing has got to (committed plus the pending batch).
	committed, cursor Position
	cursorID          string
	pending           int64
	errs              []ModelError
	window            errorWindow
	logged            int64 // process errors seen, for log rate limiting
	// hold is a watermark of this runner's own (unix µs), set while the
	// archive fills history only it needs; math.MaxInt64 when unset.
	hold atomic.Int64
	// queued mirrors the committed length of the work queue, for Stats.
	queued atomic.Int64
	// promoteTo is set on a shadow runner rebuilding the table of that
	// model; it replaces the model when it reaches the head of the journal.
	promoteTo string
	// startUS: messages before it are passed over (a new model's epoch or
	// backlog limit); math.MinInt64 when unset.
	startUS    int64
	lastCommit time.Time
	// gen counts the model calls that change what its next update writes
	// (Process, Deliver). flushed is set once the update has run since the
	// last commit, and flushedGen is gen at that moment (-1 when the batch
	// must be processed again): a batch whose commit failed in the store is
	// written again as prepared while flushedGen == gen.
	gen, flushedGen int64
	flushed         bool

	cancel context.CancelFunc // set while running
	done   chan struct{}      // closed when the goroutine returns
	// replaced is set, under e.mu, when a promotion stops the runner to
	// put its rebuilt table's runner in its place: a grant must not start
	// it again (see grant).
	replaced bool
	// fence goes with every commit when the model runs under a lease
	// (Config.Leased); set before the goroutine starts, never after.
	fence *Fence

	mu        sync.Mutex
	processed int64
	errCount  int64
	failed    string
	// stalled is why the model is stopped for a passing reason (a full
	// disk): unlike failed, it keeps running and resumes by itself.
	stalled string
	// indexErr is why the table's declared indexes are not built yet,
	// after a failed attempt ("" once they are, or before the first try).
	indexErr string
	// lost is set when the store refused a commit because another
	// instance holds the model's lease: the runner stops, not failed.
	lost bool
	// committedPos mirrors committed for Stats, under mu.
	committedPos Position
	// inserted is the earliest message appended after committedPos since
	// the last commit, under mu; nil when none.
	inserted *Position
	// readTo is the furthest position of any batch the runner has read,
	// under mu: a message inserted at or before it, after committedPos, may
	// have been passed over.
	readTo Position
}

// noteInserted records the earliest of msgs that is after the model's
// committed cursor. It runs with the engine's commitMu held exclusively,
// so no commit is under way.
func (r *runner) noteInserted(msgs []*Message) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range msgs {
		// p is copied to the heap only when kept: taking the address of
		// the loop's own p made every message of every batch escape
		// (56 MB per 100,000 messages with every shipped model).
		if p := m.Pos(); r.committedPos.Less(p) && !r.readTo.Less(p) && (r.inserted == nil || p.Less(*r.inserted)) {
			kept := p
			r.inserted = &kept
		}
	}
}

// takeInserted returns and clears the earliest message appended after
// the committed cursor since the last commit.
func (r *runner) takeInserted() (Position, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.inserted == nil {
		return Position{}, false
	}
	p := *r.inserted
	r.inserted = nil
	return p, true
}

func newRunner(e *Engine, m Model, st ModelStatus) *runner {
	spec := m.Spec()
	r := &runner{
		e: e, model: m, spec: spec, startUS: math.MinInt64,
		log:       e.log.With("model", spec.Ident),
		committed: st.Cursor, cursor: st.Cursor, cursorID: st.CursorID,
		committedPos: st.Cursor, flushedGen: -1,
	}
	if st.Cursor.IsZero() {
		// A new model: its history starts at the epoch, or at its backlog
		// limit when that is later.
		if !e.cfg.Epoch.IsZero() {
			r.startUS = e.cfg.Epoch.UnixMicro()
		}
		if spec.Backlog > 0 {
			r.startUS = max(r.startUS, time.Now().Add(-spec.Backlog).UnixMicro())
		}
	}
	r.hold.Store(math.MaxInt64)
	if e.cfg.HoldModels {
		r.hold.Store(math.MinInt64)
	}
	r.state = &stateBuffer{ident: spec.Ident, store: e.store, max: max(e.cfg.KnownState, 0)}
	r.rows = newRowBuffer(spec.Ident, &spec.Table, e.store)
	if qm, ok := m.(QueueModel); ok {
		if cfg, ok := qm.QueueConfig(); ok {
			r.wq = newWorkQueue(r, qm, cfg)
		}
	}
	if st.Status == "failed" {
		r.failed = st.Reason
	}
	return r
}

func (r *runner) stats() RunnerStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := RunnerStats{Ident: r.spec.Ident, Processed: r.processed, Errors: r.errCount, Failed: r.failed, Cursor: r.committedPos, Queued: r.queued.Load(),
		Running: r.active() && !r.lost, Lost: r.lost, Indexes: r.indexErr}
	if r.fence != nil {
		s.Token = r.fence.Token
	}
	if s.Failed == "" && r.stalled != "" {
		s.Failed, s.Stalled = r.stalled, true
	}
	return s
}

func (r *runner) failedReason() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.failed
}

// isFailed reports whether the runner must stop: its model failed, or
// another instance took its lease.
func (r *runner) isFailed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.failed != "" || r.lost
}

func (r *runner) fail(ctx context.Context, reason string) {
	r.mu.Lock()
	r.failed = reason
	r.mu.Unlock()
	r.log.Error("model stopped", "reason", reason, "cursor", r.committed)
	sctx, cancel := WithDrain(ctx, r.e.cfg.Drain)
	defer cancel()
	err := r.e.store.SetStatus(sctx, r.spec.Ident, "failed", reason, r.fence)
	if errors.Is(err, ErrFenced) {
		// Another instance runs the model now: the failure is this one's
		// alone (a call that outran its time limit across a pause, say),
		// and the model stops here as at a refused commit.
		r.loseLease(err)
		return
	}
	if err != nil {
		r.log.Error("record model failure", "err", err)
	}
}

// run processes the journal after the model's cursor. Without follow it
// returns at the end of the journal; with follow it waits for new messages
// until ctx ends. Either way it commits what it has processed before it
// returns. A journal read that fails (a locked or full disk) is retried with
// backoff: it delays the model, it never makes it skip messages.
func (r *runner) run(ctx context.Context, follow bool) {
	if r.isFailed() {
		return
	}
	// A model reads its committed state while it processes, also while
	// the last commit processes a batch again: those reads get the drain
	// time after ctx ends, as the commit does.
	sctx, cancel := WithDrain(ctx, r.e.cfg.Drain)
	defer cancel()
	r.state.ctx = sctx
	// The runner holds the model (its lease, or the only instance) from
	// here until it returns, so the state it reads now changes only by
	// its own commits.
	r.state.load(ctx)
	if err := r.open(); err != nil {
		r.fail(ctx, fmt.Sprintf("open: %v", err))
		return
	}
	defer r.model.Close()
	defer r.e.cache.leave(r)
	if r.wq == nil {
		r.warnOrphanWork(ctx)
	} else {
		if err := r.wq.start(ctx); err != nil {
			r.fail(ctx, err.Error())
			return
		}
		// Stopped after the last commit below, which may hand the workers
		// a batch's items: they are stored and wait for the next start.
		defer r.wq.stop()
	}
	// A model that stops is no longer stalled, whatever its state.
	defer func() {
		if r.stallReason() != "" {
			r.unstall("stalled model stopped")
		}
	}()
	// The last commit: at the end of a replay, or at shutdown, when ctx has
	// ended and a failing commit is not retried (see commit).
	defer r.commit(ctx)
	r.lastCommit = time.Now()
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil && !r.isFailed() {
		changed := r.e.journalChanged()
		// How far the runner may go is read before the journal: a read
		// made before the watermark moved may lack what other instances
		// appended below the new one (see SetClusterWatermark).
		wm := r.watermark()
		// Before the engine's lock: a runner ahead of the others may wait
		// here for them to read what the cache holds (see scanCache.pace).
		r.e.cache.pace(ctx, r, r.cursor)
		// The read and the publication of how far it reaches are one step
		// with respect to Ingest (see Engine.commitMu).
		r.e.commitMu.RLock()
		batch, err := r.e.cache.next(ctx, r, r.cursor, r.e.cfg.ScanSize)
		if len(batch) > 0 {
			r.mu.Lock()
			if end := batch[len(batch)-1].Pos(); r.readTo.Less(end) {
				r.readTo = end
			}
			r.mu.Unlock()
		}
		r.e.commitMu.RUnlock()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			r.log.Error("read journal", "after", r.cursor, "err", err)
			if !Sleep(ctx, backoff) {
				return
			}
			backoff = min(backoff*2, 10*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		open := r.handle(ctx, batch, wm)
		if r.hasPending() && time.Since(r.lastCommit) >= r.e.cfg.BatchInterval {
			r.commit(ctx)
		}
		if r.isFailed() {
			return
		}
		if open && len(batch) == r.e.cfg.ScanSize {
			continue
		}
		// At the head of the journal, or at the watermark.
		r.buildIndexes(ctx)
		if r.wq != nil && !follow {
			// Replay ends with the queue worked off and committed, also
			// when the watermark holds its newest messages back.
			if r.waitQueue(ctx, 0) {
				r.commit(ctx)
			}
			return
		}
		if r.promoteTo != "" && open && (r.wq == nil || r.wq.outstanding() == 0) {
			r.commit(ctx)
			if r.isFailed() {
				return // a lost lease: the rebuild goes on where the model runs now
			}
			if err := r.e.promote(ctx, r); err != nil {
				if !errors.Is(err, ErrFenced) {
					r.fail(ctx, err.Error())
				}
				return
			}
		}
		if !follow {
			return
		}
		if r.hasPending() {
			hold := r.e.cfg.BatchInterval
			if c := r.e.cfg.IdleCommit; c > 0 && c < hold {
				hold = c
			}
			wait := hold - time.Since(r.lastCommit)
			if wait <= 0 {
				r.commit(ctx)
				continue
			}
			t := time.NewTimer(wait)
			select {
			case <-changed:
			case <-t.C:
				r.commit(ctx)
			case res := <-r.results():
				r.receive(ctx, res)
			case <-ctx.Done():
			}
			t.Stop()
			continue
		}
		// A failed index build is tried again at its time even when no
		// message arrives to bring the runner back to the head.
		var retry <-chan time.Time
		var rt *time.Timer
		if !r.indexed && !r.indexRetry.IsZero() {
			rt = time.NewTimer(max(time.Until(r.indexRetry), 0))
			retry = rt.C
		}
		select {
		case <-changed:
		case res := <-r.results():
			r.receive(ctx, res)
		case <-retry:
		case <-ctx.Done():
		}
		if rt != nil {
			rt.Stop()
		}
	}
}

// buildIndexes has the store build the model table's declared indexes,
// once the model has caught up (see IndexBuilder). A failure (a full
// disk) is logged and tried again a minute later: a model at the head
// comes back here every few hundred milliseconds, and building an index
// over a large table only to fail again would keep a core busy.
func (r *runner) buildIndexes(ctx context.Context) {
	b, ok := r.e.store.(IndexBuilder)
	if r.indexed || !ok || time.Now().Before(r.indexRetry) {
		return
	}
	if err := b.BuildIndexes(ctx, r.spec.Ident); err != nil {
		if ctx.Err() == nil {
			r.log.Warn("could not build the table's declared indexes; trying again in a minute", "err", err)
			r.mu.Lock()
			r.indexErr = "declared indexes not built (tried again every minute): " + err.Error()
			r.mu.Unlock()
		}
		r.indexRetry = time.Now().Add(indexRetryWait)
		return
	}
	r.indexed = true
	r.mu.Lock()
	r.indexErr = ""
	r.mu.Unlock()
}

// indexRetryWait is how long a model waits to build its declared indexes
// again after a failure (a variable for the tests).
var indexRetryWait = time.Minute

// warnOrphanWork logs work items left by an earlier version of a model
// that had a queue: they are kept, and delivered once it has one again.
func (r *runner) warnOrphanWork(ctx context.Context) {
	items, _, err := r.e.store.PendingWork(ctx, r.spec.Ident)
	if err == nil && len(items) > 0 {
		r.log.Warn("work items are waiting but the model defines no work queue any more; they are kept until it has one again", "items", len(items))
	}
}

// hasPending reports whether anything awaits a commit.
func (r *runner) hasPending() bool {
	return r.pending > 0 || len(r.errs) > 0 || r.wq != nil && (r.wq.dirty || len(r.wq.pushed) > 0)
}

// results is the channel the model's workers send outcomes on; nil (never
// ready) for a model without a queue.
func (r *runner) results() <-chan workResult {
	if r.wq == nil || !r.wq.running {
		return nil
	}
	return r.wq.out
}

// receive files one outcome and delivers what is next in order.
func (r *runner) receive(ctx context.Context, res workResult) {
	r.wq.receive(ctx, res)
	r.wq.pump(ctx)
}

// waitQueue holds the model until at most limit of its items are
// outstanding, delivering outcomes as they come and committing them at the
// batch interval. It reports false when ctx ended or the model failed.
func (r *runner) waitQueue(ctx context.Context, limit int64) bool {
	if len(r.wq.pushed) > 0 {
		r.commit(ctx) // the workers see only committed items
	}
	for {
		if r.isFailed() || ctx.Err() != nil {
			return false
		}
		r.wq.pump(ctx)
		if r.wq.outstanding() <= limit {
			return !r.isFailed()
		}
		if len(r.wq.pushed) > 0 {
			// A delivery pushed more items: the workers see only
			// committed ones, so waiting for them without a commit
			// would wait out the batch interval (an hour in the tests,
			// which hung once).
			r.commit(ctx)
			continue
		}
		if r.hasPending() && time.Since(r.lastCommit) >= r.e.cfg.BatchInterval {
			r.commit(ctx)
			continue
		}
		t := time.NewTimer(r.e.cfg.BatchInterval)
		select {
		case res := <-r.wq.out:
			r.wq.receive(ctx, res)
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
	}
}

func (r *runner) open() error {
	r.state.reset()
	if r.wq != nil {
		r.wq.qm.BindQueue(r.wq)
	}
	return r.model.Open(r.state)
}

// handle processes the batch's messages after the cursor and before the
// watermark wm. It reports false when the watermark stopped it.
func (r *runner) handle(ctx context.Context, batch []*Message, wm int64) bool {
	for i, m := range batch {
		if !r.cursor.Less(m.Pos()) {
			continue // committed before, or skipped after a late arrival
		}
		if m.TimeUS >= wm {
			return false
		}
		if i%64 == 0 && ctx.Err() != nil {
			return true // shutting down: commit what is processed
		}
		if r.wq != nil {
			r.wq.pump(ctx)
			if r.wq.full() && !r.waitQueue(ctx, int64(r.wq.cfg.Limit)-1) {
				return true
			}
		}
		r.processOne(ctx, m)
		if r.isFailed() {
			return true
		}
		if r.pending >= int64(r.e.cfg.BatchSize) {
			r.commit(ctx)
			if r.isFailed() {
				return true
			}
		}
	}
	return true
}

func (r *runner) processOne(ctx context.Context, m *Message) {
	r.gen++
	if m.TimeUS >= r.startUS && r.spec.Wants(m.Topic) {
		r.window.seen++
		if err := safeProcess(ctx, r.model, m); err != nil {
			if errors.Is(err, ErrModelLimit) {
				// The model's state cannot be trusted any more: stop it
				// without committing; it resumes from its last commit once
				// fixed and reloaded.
				r.fail(ctx, err.Error())
				return
			}
			r.window.failed++
			r.recordError(ModelError{Ident: r.spec.Ident, MsgID: m.ID, TimeUS: m.TimeUS, Err: err.Error()}, err)
		}
	}
	r.cursor = m.Pos()
	r.cursorID = m.ID
	r.pending++
	if r.window.seen >= r.e.cfg.ErrorWindow {
		r.checkErrorShare(ctx)
	}
}

// recordError keeps an error of the model's code for the next commit.
// Every error is recorded; the log gets the first few and then one in a
// thousand, so a broken model cannot flood it.
func (r *runner) recordError(me ModelError, err error) {
	var tb interface{ Traceback() string }
	if errors.As(err, &tb) {
		me.Traceback = tb.Traceback()
	}
	r.errs = append(r.errs, me)
	if r.logged++; r.logged <= 10 || r.logged%1000 == 0 {
		r.log.Warn("model code failed", "msg_id", me.MsgID, "err", err, "errors_logged", r.logged)
	}
}

// errorWindow counts the messages a model wanted and the ones it failed
// on, over the last ErrorWindow messages.
type errorWindow struct{ seen, failed int }

// checkErrorShare stops a model that fails on more than MaxErrorShare of
// the messages of a window: it is broken, not unlucky, and every further
// message would only add to its error table.
func (r *runner) checkErrorShare(ctx context.Context) {
	w := r.window
	r.window = errorWindow{}
	if w.seen > 0 && float64(w.failed)/float64(w.seen) > r.e.cfg.MaxErrorShare {
		r.fail(ctx, fmt.Sprintf("process failed on %d of the last %d messages (over the limit of %.0f%%); last error: %s",
			w.failed, w.seen, r.e.cfg.MaxErrorShare*100, r.lastErr()))
	}
}

func (r *runner) lastErr() string {
	if len(r.errs) == 0 {
		return "none in this batch"
	}
	return r.errs[len(r.errs)-1].Err
}

func safeProcess(ctx context.Context, m Model, msg *Message) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = &panicError{val: p, stack: string(debug.Stack())}
		}
	}()
	return m.Process(ctx, msg)
}

func safeFlush(ctx context.Context, m Model, w RowWriter) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = &panicError{val: p, stack: string(debug.Stack())}
		}
	}()
	return m.Flush(ctx, w)
}

type panicError struct {
	val   any
	stack string
}

func (p *panicError) Error() string     { return fmt.Sprintf("panic: %v", p.val) }
func (p *panicError) Traceback() string { return p.stack }

// errFlush marks a failure of the model's own flush code, as opposed to the
// store: the first is retried a few times, the second until it works.
type errFlush struct{ err error }

func (e errFlush) Error() string { return e.err.Error() }
func (e errFlush) Unwrap() error { return e.err }

// errInsertedBehind stops a commit that found, under the commit lock, a
// message inserted behind the model's cursor since it prepared the batch.
var errInsertedBehind = errors.New("a message was inserted behind the cursor")

// maxUnlockedRedos bounds how many times a commit processes its batch again
// outside the commit lock because messages keep arriving behind its cursor;
// after that it does it under the lock, where no message can arrive, so that
// it always gets through.
const maxUnlockedRedos = 3

// commit writes the pending batch. The model's code (its update, and
// processing the batch again when a message was inserted behind its cursor)
// runs outside Engine.commitMu, so a slow update delays neither Ingest nor
// the other models; the lock is held only to check for such inserts and to
// write the transaction.
//
// A batch whose transaction fails in the store is kept as the model's update
// produced it and written again after a backoff, without running the model;
// a failure of the model's own code makes it process the batch again from
// its last commit, and a model whose update keeps failing is stopped. A
// store failure is retried until it succeeds or ctx ends, except a full disk:
// after Config.DiskFullWait the model is stalled (shown stopped, with the
// reason) and its commit tried again every Config.StallRetry, so it resumes
// by itself once there is space. Every wait ends with ctx: a shutdown tries
// the commit once more and leaves an uncommitted batch to the next start.
// The store work itself is given Config.Drain after ctx ends, no more: a
// database that does not answer must not hold the shutdown up.
func (r *runner) commit(ctx context.Context) {
	if r.window.seen >= min(100, r.e.cfg.ErrorWindow) {
		r.checkErrorShare(ctx)
	}
	if !r.hasPending() || r.isFailed() {
		return
	}
	backoff := 200 * time.Millisecond
	flushFailures, redos := 0, 0
	var fullSince time.Time
	// The store work of a commit is not cut short the moment shutdown
	// begins (a transaction is written whole or not at all), but it ends
	// with the drain time: a transaction cut then is rolled back by the
	// database, and the next start processes the batch again.
	sctx, cancel := WithDrain(ctx, r.e.cfg.Drain)
	defer cancel()
	for {
		err := r.prepare(sctx)
		if err == nil && !r.isFailed() {
			err = r.write(sctx, redos >= maxUnlockedRedos)
		}
		if r.isFailed() {
			return
		}
		if err == nil {
			r.lastCommit = time.Now()
			if reason := r.stallReason(); reason != "" {
				r.unstall("model resumed: its commit got through")
			}
			return
		}
		if errors.Is(err, ErrFenced) {
			r.loseLease(err)
			return
		}
		if errors.Is(err, ErrJournaledBehind) {
			// Another instance journaled inside the batch: process it
			// again from the journal, and drop cached reads that lack it.
			r.e.cache.inserted(r.committed)
			r.invalidate()
			redos++
			r.log.Debug("message journaled inside the batch by another instance: processing it again", "round", redos)
			continue
		}
		if errors.Is(err, errInsertedBehind) {
			redos++
			r.log.Debug("message inserted behind the cursor: processing the batch again", "round", redos)
			continue
		}
		var fe errFlush
		if errors.Is(err, ErrModelLimit) {
			r.fail(ctx, err.Error())
			return
		}
		if errors.As(err, &fe) {
			flushFailures++
			r.log.Error("flush failed", "err", err, "attempt", flushFailures)
			if flushFailures >= r.e.cfg.FlushRetries {
				r.fail(ctx, fmt.Sprintf("update failed %d times: %v", flushFailures, err))
				return
			}
			continue // prepare processes the batch again
		}
		wait := backoff
		if errors.Is(err, ErrDiskFull) {
			if fullSince.IsZero() {
				fullSince = time.Now()
			}
			if r.stallReason() == "" && time.Since(fullSince) >= r.e.cfg.DiskFullWait {
				r.stall(fmt.Sprintf("disk full: commits failed for %s (%v); the batch is kept and its commit tried again every %s",
					time.Since(fullSince).Round(time.Second), err, r.e.cfg.StallRetry))
			}
			if r.stallReason() != "" {
				wait = r.e.cfg.StallRetry
			}
		} else {
			fullSince = time.Time{}
		}
		if ctx.Err() != nil {
			r.log.Error("commit at shutdown failed: the batch is processed again at the next start", "err", err, "cursor", r.committed)
			return
		}
		if r.stallReason() == "" {
			r.log.Error("commit failed", "err", err, "retry_in", wait)
		}
		if !Sleep(ctx, wait) {
			// Shutting down: the batch stays uncommitted (and prepared,
			// should the last commit at exit succeed); the next start
			// processes it again from the cursor.
			return
		}
		backoff = min(backoff*2, 30*time.Second)
	}
}

// prepare runs the model's update for the pending batch into the row
// buffer, outside the commit lock, unless the batch it prepared before is
// still current (its commit failed in the store). When a message was
// inserted behind the cursor since the last commit, or the model has been
// called since an update whose batch was not committed, it first processes
// the batch again from the last commit.
func (r *runner) prepare(ctx context.Context) error {
	stale := r.flushed && r.flushedGen != r.gen
	if p, ok := r.takeInserted(); ok && !r.cursor.Less(p) {
		stale = true
	}
	if stale {
		if err := r.redo(ctx); err != nil {
			return err
		}
		if r.isFailed() {
			return nil
		}
	}
	if r.flushed {
		return nil
	}
	r.rows.reset()
	r.rows.ctx = ctx
	r.flushed, r.flushedGen = true, r.gen
	if err := safeFlush(ctx, r.model, r.rows); err != nil {
		r.invalidate() // the model may have handed over part of its batch
		return errFlush{fmt.Errorf("update: %w", err)}
	}
	return nil
}

// invalidate makes the next prepare process the batch again.
func (r *runner) invalidate() { r.flushed, r.flushedGen = true, -1 }

// write commits the prepared batch. Holding the commit lock (shared with
// other models' commits, exclusive with Ingest), it checks that no message
// was inserted behind the cursor since the batch was prepared, and writes
// the transaction: a message appended between the committed cursor and
// the cursor is thus either seen before this commit, or appended after it
// and flagged late by the store. With underLock, such a message is
// processed under the lock instead of reported with errInsertedBehind.
func (r *runner) write(ctx context.Context, underLock bool) error {
	r.e.commitMu.RLock()
	defer r.e.commitMu.RUnlock()
	if p, ok := r.takeInserted(); ok && !r.cursor.Less(p) {
		r.invalidate()
		if !underLock {
			return errInsertedBehind
		}
		if err := r.prepare(ctx); err != nil || r.isFailed() {
			return err
		}
	}
	if err := r.tryCommit(ctx); err != nil {
		// Whether the transaction got in is not always known (a lost
		// connection at COMMIT): what the runner knew of its committed
		// state is read again from the store.
		r.state.forget()
		return err
	}
	r.mu.Lock()
	r.processed += r.pending
	r.errCount += int64(len(r.errs))
	r.committedPos = r.cursor
	r.mu.Unlock()
	r.committed = r.cursor
	r.pending, r.errs = 0, nil
	r.flushed = false
	r.state.committed()
	if r.wq != nil {
		r.wq.committed()
	}
	return nil
}

// tryCommit applies the prepared rows, state, errors, work items and cursor
// in one transaction.
func (r *runner) tryCommit(ctx context.Context) (err error) {
	tx, err := r.e.store.Begin(ctx, r.spec.Ident)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() {
		if err != nil {
			tx.Rollback()
		}
	}()
	if err := tx.Apply(r.rows.ops); err != nil {
		if errors.Is(err, ErrRowConflict) {
			r.invalidate()
			return errFlush{err} // the script's mistake, not the store's
		}
		return fmt.Errorf("write rows: %w", err)
	}
	if err := r.state.writeTo(tx); err != nil {
		return fmt.Errorf("state: %w", err)
	}
	cp := Checkpoint{Cursor: r.cursor, CursorID: r.cursorID, Processed: r.pending, Errors: r.errs, Fence: r.fence, From: r.committed, StartUS: r.startUS}
	if r.wq != nil {
		r.wq.checkpoint(&cp)
	}
	return tx.Commit(cp)
}

// stallReason is why the model is stalled (a full disk), or "".
func (r *runner) stallReason() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stalled
}

// stall marks the model stopped for a passing reason: it keeps its batch
// and its goroutine, and resumes when a commit gets through. The mark is
// not written to the database (the write would fail for the same reason,
// and must not outlive it); a store that serves readers shows it.
func (r *runner) stall(reason string) {
	r.mu.Lock()
	r.stalled = reason
	r.mu.Unlock()
	r.log.Error("model stopped: the disk is full", "reason", reason, "cursor", r.committed)
	if sn, ok := r.e.store.(StallNoter); ok {
		sn.NoteStall(r.spec.Ident, reason)
	}
}

// unstall clears the stall, logging why.
func (r *runner) unstall(why string) {
	r.mu.Lock()
	r.stalled = ""
	r.mu.Unlock()
	r.log.Info(why, "cursor", r.committed)
	if sn, ok := r.e.store.(StallNoter); ok {
		sn.NoteStall(r.spec.Ident, "")
	}
}

// redo rebuilds the model's in-memory view from its last commit and
// processes again, from the journal, every message up to where it had got,
// then delivers again the work outcomes it had been given.
func (r *runner) redo(ctx context.Context) error {
	target := r.cursor
	r.cursor = r.committed
	r.pending, r.errs = 0, nil
	r.flushed = false
	if r.wq != nil {
		r.wq.rewind()
	}
	if err := r.model.Close(); err != nil {
		r.log.Warn("close model before redo", "err", err)
	}
	if err := r.open(); err != nil {
		return err
	}
	if err := r.reprocess(ctx, target); err != nil {
		return err
	}
	if r.wq != nil && !r.isFailed() {
		r.wq.deliver(ctx)
	}
	return nil
}

// reprocess processes the journal from the cursor up to target.
func (r *runner) reprocess(ctx context.Context, target Position) error {
	for r.cursor.Less(target) {
		batch, err := r.e.store.Scan(ctx, r.cursor, r.e.cfg.ScanSize)
		if err != nil {
			return err
		}
		if len(batch) == 0 {
			break
		}
		for _, m := range batch {
			if target.Less(m.Pos()) {
				return nil
			}
			r.processOne(ctx, m)
			if r.isFailed() {
				return nil
			}
		}
	}
	return nil
}
