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

	cancel context.CancelFunc // set while running
	done   chan struct{}      // closed when the goroutine returns

	mu        sync.Mutex
	processed int64
	errCount  int64
	failed    string
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
		p := m.Pos()
		if r.committedPos.Less(p) && !r.readTo.Less(p) && (r.inserted == nil || p.Less(*r.inserted)) {
			r.inserted = &p
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
		committedPos: st.Cursor,
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
	if st.Cursor.IsZero() && e.cfg.HoldNewModels {
		r.hold.Store(math.MinInt64)
	}
	r.state = &stateBuffer{ident: spec.Ident, store: e.store}
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
	return RunnerStats{Ident: r.spec.Ident, Processed: r.processed, Errors: r.errCount, Failed: r.failed, Cursor: r.committedPos, Queued: r.queued.Load()}
}

func (r *runner) isFailed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.failed != ""
}

func (r *runner) fail(ctx context.Context, reason string) {
	r.mu.Lock()
	r.failed = reason
	r.mu.Unlock()
	r.log.Error("model stopped", "reason", reason, "cursor", r.committed)
	if err := r.e.store.SetStatus(context.WithoutCancel(ctx), r.spec.Ident, "failed", reason); err != nil {
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
	if err := r.open(); err != nil {
		r.fail(ctx, fmt.Sprintf("open: %v", err))
		return
	}
	defer r.model.Close()
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
	defer r.commit(context.WithoutCancel(ctx))
	r.lastCommit = time.Now()
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil && !r.isFailed() {
		changed := r.e.journalChanged()
		// The read and the publication of how far it reaches are one step
		// with respect to Ingest (see Engine.commitMu).
		r.e.commitMu.RLock()
		batch, err := r.e.cache.next(ctx, r.cursor, r.e.cfg.ScanSize)
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
			if !sleep(ctx, backoff) {
				return
			}
			backoff = min(backoff*2, 10*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		open := r.handle(ctx, batch)
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
			if err := r.e.promote(ctx, r); err != nil {
				r.fail(ctx, err.Error())
				return
			}
		}
		if !follow {
			return
		}
		if r.hasPending() {
			wait := r.e.cfg.BatchInterval - time.Since(r.lastCommit)
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
		select {
		case <-changed:
		case res := <-r.results():
			r.receive(ctx, res)
		case <-ctx.Done():
		}
	}
}

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
// watermark. It reports false when the watermark stopped it.
func (r *runner) handle(ctx context.Context, batch []*Message) bool {
	wm := min(r.e.watermark.Load(), r.hold.Load())
	for _, m := range batch {
		if !r.cursor.Less(m.Pos()) {
			continue // committed before, or skipped after a late arrival
		}
		if m.TimeUS >= wm {
			return false
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

// commit writes the pending batch. On failure the batch is rolled back,
// the model is reopened from its last commit and the messages since then are
// processed again from the journal, so nothing is lost and nothing counted
// twice. A store failure (locked or full disk) is retried with backoff until
// it succeeds or ctx ends; a model whose flush keeps failing is stopped.
func (r *runner) commit(ctx context.Context) {
	if r.window.seen >= min(100, r.e.cfg.ErrorWindow) {
		r.checkErrorShare(ctx)
	}
	if !r.hasPending() || r.isFailed() {
		return
	}
	backoff := 200 * time.Millisecond
	flushFailures := 0
	// The store work of a commit is not cut short by shutdown: the model has
	// already handed its rows over, and the batch must be written whole.
	sctx := context.WithoutCancel(ctx)
	for {
		r.e.commitMu.RLock()
		var err error
		if p, ok := r.takeInserted(); ok && !r.cursor.Less(p) {
			// A message arrived behind where the model has got to, but
			// after its last commit: process the batch again, in order.
			r.log.Debug("message inserted behind the cursor: processing the batch again", "at", p)
			err = r.redo(sctx)
		}
		if err == nil && !r.isFailed() {
			err = r.tryCommit(sctx)
		}
		r.e.commitMu.RUnlock()
		if r.isFailed() {
			return
		}
		if err == nil {
			r.mu.Lock()
			r.processed += r.pending
			r.errCount += int64(len(r.errs))
			r.mu.Unlock()
			r.committed = r.cursor
			r.mu.Lock()
			r.committedPos = r.cursor
			r.mu.Unlock()
			r.pending, r.errs = 0, nil
			if r.wq != nil {
				r.wq.committed()
			}
			r.lastCommit = time.Now()
			return
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
		} else {
			r.log.Error("commit failed", "err", err, "retry_in", backoff)
			if !sleep(ctx, backoff) {
				// Shutting down. The model handed its rows to the failed
				// transaction: rebuild them, so that the last commit writes
				// the batch whole, or the next start redoes it.
				if err := r.redo(sctx); err != nil {
					r.fail(ctx, fmt.Sprintf("redo after failed commit: %v", err))
				}
				return
			}
			backoff = min(backoff*2, 30*time.Second)
		}
		if err := r.redo(sctx); err != nil {
			r.fail(ctx, fmt.Sprintf("redo after failed commit: %v", err))
			return
		}
	}
}

// tryCommit runs the model's update into the row buffer, outside the
// database's write lock, then applies the rows, state and cursor in one
// transaction.
func (r *runner) tryCommit(ctx context.Context) (err error) {
	r.rows.reset()
	r.rows.ctx = ctx
	if err := safeFlush(ctx, r.model, r.rows); err != nil {
		return errFlush{fmt.Errorf("update: %w", err)}
	}
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
			return errFlush{err} // the script's mistake, not the store's
		}
		return fmt.Errorf("write rows: %w", err)
	}
	if err := r.state.flushTo(tx); err != nil {
		return fmt.Errorf("state: %w", err)
	}
	cp := Checkpoint{Cursor: r.cursor, CursorID: r.cursorID, Processed: r.pending, Errors: r.errs}
	if r.wq != nil {
		r.wq.checkpoint(&cp)
	}
	return tx.Commit(cp)
}

// redo rebuilds the model's in-memory view from its last commit and
// processes again, from the journal, every message up to where it had got,
// then delivers again the work outcomes it had been given.
func (r *runner) redo(ctx context.Context) error {
	target := r.cursor
	r.cursor = r.committed
	r.pending, r.errs = 0, nil
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

// stateBuffer holds a model's uncommitted state writes over its committed
// state.
type stateBuffer struct {
	ident   string
	store   ModelStore
	pending map[string]*string
}

func (s *stateBuffer) reset() { s.pending = map[string]*string{} }

func (s *stateBuffer) Get(key string) (string, bool, error) {
	if v, ok := s.pending[key]; ok {
		if v == nil {
			return "", false, nil
		}
		return *v, true, nil
	}
	return s.store.LoadState(context.Background(), s.ident, key)
}

func (s *stateBuffer) Set(key, value string) { s.pending[key] = &value }
func (s *stateBuffer) Delete(key string)     { s.pending[key] = nil }

func (s *stateBuffer) flushTo(tx ModelTx) error {
	for k, v := range s.pending {
		if err := tx.PutState(k, v); err != nil {
			return err
		}
	}
	s.pending = map[string]*string{}
	return nil
}
