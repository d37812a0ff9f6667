package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"
)

// Work queues let a model hand slow work (a lookup in another service, say)
// to a pool of workers, so that the model itself keeps up with the bus:
//
//	Process/Flush ─ Queue.Push(item) ─► pushed (in memory)
//	commit ─► the items are stored in the transaction that commits the
//	          batch that pushed them, then handed to the workers
//	workers (one Worker each, goroutines of their own) ─ Work(item) ─► result
//	runner ─ Deliver(item, result), strictly in push order ─► the model's
//	          rows and state; the next commit deletes the delivered items
//	          with those rows, the state and the cursor
//
// A crash therefore neither loses an item (it was committed with the batch
// that pushed it) nor applies a result twice (its effect and the deletion of
// its item commit together). Work may run again for an item whose result
// was not committed yet: Work must be safe to repeat, as a lookup is.

// WorkItem is one unit of slow work: its place in the model's queue and the
// item the model pushed, as JSON.
type WorkItem struct {
	Seq  int64
	Item []byte
}

// Queue is what a queue model pushes work items through. Push is called
// from Process or Flush, on the runner's goroutine.
type Queue interface {
	Push(item []byte) error
}

// ErrTemporary is wrapped by work errors worth trying again later: a
// service that did not answer, or answered that it is overloaded.
var ErrTemporary = errors.New("temporary failure")

// Worker runs a queue model's work items; each worker runs on a goroutine
// of its own and is used by that goroutine only.
type Worker interface {
	// Work computes the result of one item. An error wrapping ErrTemporary
	// is retried with backoff, then delivered as the item's error; an error
	// wrapping ErrModelLimit stops the model; any other error is delivered
	// as the item's error at once (trying a bug again does not fix it).
	Work(ctx context.Context, item []byte) ([]byte, error)
	Close() error
}

// QueueModel is a Model with a work queue.
type QueueModel interface {
	Model
	// BindQueue gives the model the queue to push to; it is called before
	// every Open.
	BindQueue(q Queue)
	// QueueConfig says how many workers to run and how many items may wait
	// before the model is held back; ok is false for a model that has no
	// queue (a model type may have one for some scripts only).
	QueueConfig() (cfg QueueConfig, ok bool)
	// NewWorker returns an independent worker of the model.
	NewWorker() (Worker, error)
	// Deliver hands the outcome of an item back to the model, in the order
	// the items were pushed: either a result or the error of its last try.
	Deliver(ctx context.Context, item, result []byte, workErr error) error
}

// QueueConfig bounds a model's work queue.
type QueueConfig struct {
	Workers int // workers run in parallel
	// Limit is how many items may be pushed and not yet delivered. A model
	// that reaches it is held (it processes no more messages) until the
	// workers catch up: backpressure rather than unbounded memory.
	Limit int
	// Retries is how many times an item failing with ErrTemporary is tried
	// again before its error is delivered; Backoff is the first wait,
	// doubled each time.
	Retries int
	Backoff time.Duration
}

// Default queue settings.
const (
	DefaultWorkers      = 2
	DefaultQueueLimit   = 1000
	DefaultWorkRetries  = 5
	DefaultWorkBackoff  = time.Second
	maxWorkBackoff      = time.Minute
	queueHardLimitExtra = 10000
)

func (c QueueConfig) withDefaults() QueueConfig {
	if c.Workers <= 0 {
		c.Workers = DefaultWorkers
	}
	if c.Limit <= 0 {
		c.Limit = DefaultQueueLimit
	}
	if c.Retries < 0 {
		c.Retries = 0
	} else if c.Retries == 0 {
		c.Retries = DefaultWorkRetries
	}
	if c.Backoff <= 0 {
		c.Backoff = DefaultWorkBackoff
	}
	return c
}

// workResult is what a worker sends back for one item.
type workResult struct {
	seq    int64
	result []byte
	err    error
}

// workQueue is a runner's side of its model's queue. Fields without a
// comment about locking are the runner goroutine's alone.
type workQueue struct {
	r   *runner
	qm  QueueModel
	cfg QueueConfig

	// As of the last commit: the last seq pushed, and the last delivered.
	committedSeq, committedDone int64
	// Where the runner has got to: seq ≥ committedSeq, done ≥ committedDone.
	seq, done int64
	pushed    []WorkItem // pushed since the last commit
	// items are the committed items not yet committed as delivered, in
	// order: items[i].Seq == committedDone+1+i.
	items   []WorkItem
	results map[int64]workResult // outcomes not yet delivered, or delivered but not committed
	dirty   bool                 // something was delivered since the last commit

	out     chan workResult
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	log     *slog.Logger // the workers' logger (the runner's may be renamed by a promotion)
	mu      sync.Mutex   // guards todo
	todo    []WorkItem   // committed items no worker has taken yet
	wakeup  chan struct{}
	running bool
}

func newWorkQueue(r *runner, qm QueueModel, cfg QueueConfig) *workQueue {
	return &workQueue{r: r, qm: qm, cfg: cfg.withDefaults()}
}

// Push is the model's Queue: it records an item of the batch being
// processed. It refuses items far beyond the limit: a script pushing
// without end would otherwise take all memory before the runner can hold
// it back.
func (q *workQueue) Push(item []byte) error {
	if n := q.seq - q.done; n >= int64(q.cfg.Limit+queueHardLimitExtra) {
		return fmt.Errorf("queue.push: %d items are waiting for the workers: %w", n, ErrModelLimit)
	}
	q.seq++
	q.pushed = append(q.pushed, WorkItem{Seq: q.seq, Item: item})
	return nil
}

// outstanding is how many items are pushed and not delivered.
func (q *workQueue) outstanding() int64 { return q.seq - q.done }

// full reports whether the model must wait for its workers.
func (q *workQueue) full() bool { return q.outstanding() >= int64(q.cfg.Limit) }

// start reads the model's committed queue and starts the workers on it.
func (q *workQueue) start(ctx context.Context) error {
	items, last, err := q.r.e.store.PendingWork(ctx, q.r.spec.Ident)
	if err != nil {
		return fmt.Errorf("read work queue: %w", err)
	}
	q.committedSeq, q.committedDone = last, last
	if len(items) > 0 {
		q.committedDone = items[0].Seq - 1
	}
	for i, it := range items {
		if it.Seq != q.committedDone+1+int64(i) {
			return fmt.Errorf("read work queue: item %d follows item %d", it.Seq, q.committedDone+int64(i))
		}
	}
	q.seq, q.done = q.committedSeq, q.committedDone
	q.r.queued.Store(q.committedSeq - q.committedDone)
	q.items = items
	q.pushed = nil
	q.results = map[int64]workResult{}
	q.dirty = false
	q.out = make(chan workResult, q.cfg.Workers)
	q.wakeup = make(chan struct{}, 1)
	q.todo = append([]WorkItem(nil), items...)
	wctx, cancel := context.WithCancel(ctx)
	q.cancel = cancel
	workers := make([]Worker, 0, q.cfg.Workers)
	for range q.cfg.Workers {
		w, err := q.qm.NewWorker()
		if err != nil {
			for _, w := range workers {
				w.Close()
			}
			cancel()
			return fmt.Errorf("start worker: %w", err)
		}
		workers = append(workers, w)
	}
	q.running = true
	q.log = q.r.log
	for _, w := range workers {
		q.wg.Add(1)
		go q.work(wctx, w)
	}
	if len(items) > 0 {
		q.r.log.Info("work queue resumed", "items", len(items))
	}
	return nil
}

// stop stops the workers; what they had not delivered is done again at
// the next start.
func (q *workQueue) stop() {
	if !q.running {
		return
	}
	q.cancel()
	q.wg.Wait()
	q.running = false
}

// take hands the next item to a worker, waiting for one.
func (q *workQueue) take(ctx context.Context) (WorkItem, bool) {
	for {
		q.mu.Lock()
		if len(q.todo) > 0 {
			it := q.todo[0]
			q.todo = q.todo[1:]
			more := len(q.todo) > 0
			q.mu.Unlock()
			if more {
				q.signal() // let the next idle worker look too
			}
			return it, true
		}
		q.mu.Unlock()
		select {
		case <-q.wakeup:
		case <-ctx.Done():
			return WorkItem{}, false
		}
	}
}

func (q *workQueue) signal() {
	select {
	case q.wakeup <- struct{}{}:
	default:
	}
}

// work is one worker's loop.
func (q *workQueue) work(ctx context.Context, w Worker) {
	defer q.wg.Done()
	defer w.Close()
	for {
		it, ok := q.take(ctx)
		if !ok {
			return
		}
		res := workResult{seq: it.Seq}
		backoff := q.cfg.Backoff
		for try := 0; ; try++ {
			res.result, res.err = safeWork(ctx, w, it.Item)
			if res.err == nil || !errors.Is(res.err, ErrTemporary) || try >= q.cfg.Retries || ctx.Err() != nil {
				break
			}
			q.log.Warn("work failed; trying again", "item", it.Seq, "err", res.err, "retry_in", backoff)
			if !Sleep(ctx, backoff) {
				return
			}
			backoff = min(backoff*2, maxWorkBackoff)
		}
		if ctx.Err() != nil {
			return // stopping: the item is done again at the next start
		}
		select {
		case q.out <- res:
		case <-ctx.Done():
			return
		}
	}
}

func safeWork(ctx context.Context, w Worker, item []byte) (res []byte, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = &panicError{val: p, stack: string(debug.Stack())}
		}
	}()
	return w.Work(ctx, item)
}

// receive files a worker's outcome; a limit error stops the model.
func (q *workQueue) receive(ctx context.Context, res workResult) {
	if res.err != nil && errors.Is(res.err, ErrModelLimit) {
		q.r.fail(ctx, fmt.Sprintf("work item %d: %v", res.seq, res.err))
		return
	}
	q.results[res.seq] = res
}

// pump files the outcomes the workers have sent, without waiting, and
// delivers those that are next in order.
func (q *workQueue) pump(ctx context.Context) {
	for {
		select {
		case res := <-q.out:
			q.receive(ctx, res)
		default:
			q.deliver(ctx)
			return
		}
	}
}

// deliver hands the model every outcome that is next in order. A failed
// item counts as a failed message towards the model's error share, and its
// error is recorded, as is an error of the model's Deliver.
func (q *workQueue) deliver(ctx context.Context) {
	for !q.r.isFailed() {
		i := q.done - q.committedDone
		if i >= int64(len(q.items)) {
			return
		}
		res, ok := q.results[q.done+1]
		if !ok {
			return
		}
		it := q.items[i]
		label := fmt.Sprintf("work item %d", it.Seq)
		r := q.r
		r.window.seen++
		if res.err != nil {
			r.window.failed++
			r.recordError(ModelError{Ident: r.spec.Ident, MsgID: label, Err: "work: " + res.err.Error()}, res.err)
		}
		err := safeDeliver(ctx, q.qm, it.Item, res.result, res.err)
		q.done++
		r.gen++
		q.dirty = true
		if err != nil {
			if errors.Is(err, ErrModelLimit) {
				r.fail(ctx, err.Error())
				return
			}
			if res.err == nil {
				r.window.failed++
			}
			r.recordError(ModelError{Ident: r.spec.Ident, MsgID: label, Err: err.Error()}, err)
		}
		if r.window.seen >= r.e.cfg.ErrorWindow {
			r.checkErrorShare(ctx)
		}
	}
}

func safeDeliver(ctx context.Context, qm QueueModel, item, result []byte, workErr error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = &panicError{val: p, stack: string(debug.Stack())}
		}
	}()
	return qm.Deliver(ctx, item, result, workErr)
}

// checkpoint adds the queue's changes to a batch's checkpoint.
func (q *workQueue) checkpoint(cp *Checkpoint) {
	cp.Work = q.pushed
	cp.WorkSeq = q.seq
	cp.WorkDone = q.done
}

// committed moves the queue to what the batch committed and hands the
// batch's items to the workers.
func (q *workQueue) committed() {
	n := q.done - q.committedDone
	for s := q.committedDone + 1; s <= q.done; s++ {
		delete(q.results, s)
	}
	q.items = append(q.items[n:], q.pushed...)
	q.committedDone, q.committedSeq = q.done, q.seq
	q.r.queued.Store(q.committedSeq - q.committedDone)
	if len(q.pushed) > 0 {
		q.mu.Lock()
		q.todo = append(q.todo, q.pushed...)
		q.mu.Unlock()
		q.signal()
	}
	q.pushed = nil
	q.dirty = false
}

// rewind drops what happened since the last commit, for a redo: the
// batch's items were never handed out, and the outcomes delivered since are
// kept to be delivered again.
func (q *workQueue) rewind() {
	q.seq, q.done = q.committedSeq, q.committedDone
	q.pushed = nil
	q.dirty = false
}
