package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// The pipeline, from a record to a committed row:
//
//	sources (files, later the bus and the archive)
//	   │  Decoder.Decode: normalize, reject bad records
//	   ▼
//	Engine.Ingest ──► Journal.Append  (dedupe on key; the journal index fixes
//	   │                               the one total order: time, then key)
//	   ▼
//	feed: one goroutine scans the journal in order from the oldest cursor
//	   │  and hands each batch, read-only, to every runner
//	   ├──► runner(model A) ─ Process each message ─ Flush + state + cursor ─► one transaction
//	   ├──► runner(model B) ─ …
//	   └──► …                  (one goroutine per model: models run in parallel,
//	                            each strictly in journal order)
//
// A runner skips the messages at or before its cursor, so models that are
// at different places share one scan.

// Config tunes the engine. Zero values take the defaults.
type Config struct {
	// BatchSize is how many messages a model processes between commits.
	BatchSize int
	// BatchInterval is the longest a model holds processed messages before
	// committing them, when messages trickle in.
	BatchInterval time.Duration
	// ScanSize is how many journal rows the feed reads at a time.
	ScanSize int
	// FlushRetries is how many times a model's failing flush is retried
	// before the model is marked failed.
	FlushRetries int
	Logger       *slog.Logger
}

// Default engine settings.
const (
	DefaultBatchSize     = 5000
	DefaultBatchInterval = time.Second
	DefaultScanSize      = 2000
	DefaultFlushRetries  = 3
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
	if c.FlushRetries <= 0 {
		c.FlushRetries = DefaultFlushRetries
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Engine owns the models and moves journal messages through them.
type Engine struct {
	store   Store
	cfg     Config
	log     *slog.Logger
	mu      sync.Mutex
	runners []*runner
	notify  chan struct{}
}

// New returns an engine over store. Add models, then Run.
func New(store Store, cfg Config) *Engine {
	cfg.setDefaults()
	return &Engine{store: store, cfg: cfg, log: cfg.Logger, notify: make(chan struct{}, 1)}
}

// Add registers a model: its table is created or checked and its cursor
// read. A model whose table cannot be registered is not added.
func (e *Engine) Add(ctx context.Context, m Model) error {
	spec := m.Spec()
	for _, r := range e.runners {
		if r.spec.Ident == spec.Ident {
			return fmt.Errorf("model %s (%s): ident already used by %s", spec.Ident, spec.Script, r.spec.Script)
		}
	}
	st, err := e.store.Register(ctx, spec)
	if err != nil {
		return fmt.Errorf("register model %s: %w", spec.Ident, err)
	}
	r := newRunner(e, m, st)
	e.mu.Lock()
	e.runners = append(e.runners, r)
	e.mu.Unlock()
	return nil
}

// Ingest appends messages to the journal and wakes the feed.
func (e *Engine) Ingest(ctx context.Context, msgs []*Message) (AppendResult, error) {
	res, err := e.store.Append(ctx, msgs)
	if err != nil {
		return res, fmt.Errorf("ingest %d messages: %w", len(msgs), err)
	}
	select {
	case e.notify <- struct{}{}:
	default:
	}
	return res, nil
}

// RunnerStats is a model's progress as the engine sees it.
type RunnerStats struct {
	Ident     string
	Processed int64 // messages processed by this engine (not the total)
	Errors    int64 // process errors in this engine run
	Failed    string
}

// Stats returns every model's progress in this run.
func (e *Engine) Stats() []RunnerStats {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]RunnerStats, 0, len(e.runners))
	for _, r := range e.runners {
		out = append(out, r.stats())
	}
	return out
}

// Run moves messages from the journal through every model. With follow
// false it returns once every model has processed and committed the whole
// journal; with follow true it keeps waiting for new messages until ctx is
// cancelled, then commits and returns.
func (e *Engine) Run(ctx context.Context, follow bool) error {
	e.mu.Lock()
	runners := append([]*runner(nil), e.runners...)
	e.mu.Unlock()
	if len(runners) == 0 {
		return nil
	}
	from := runners[0].committed
	for _, r := range runners[1:] {
		if r.committed.Less(from) {
			from = r.committed
		}
	}
	chans := make([]chan []*Message, len(runners))
	var wg sync.WaitGroup
	for i, r := range runners {
		chans[i] = make(chan []*Message, 4)
		wg.Add(1)
		go func(r *runner, in <-chan []*Message) {
			defer wg.Done()
			r.run(ctx, in)
		}(r, chans[i])
	}
	err := e.feed(ctx, from, chans, follow)
	for _, c := range chans {
		close(c)
	}
	wg.Wait()
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// feed scans the journal from the oldest cursor and hands every batch to
// every runner. A scan error (a locked or full disk) is retried with
// backoff: it delays the models, it never makes them skip messages.
func (e *Engine) feed(ctx context.Context, from Position, outs []chan []*Message, follow bool) error {
	pos := from
	backoff := 100 * time.Millisecond
	for {
		batch, err := e.store.Scan(ctx, pos, e.cfg.ScanSize)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			e.log.Error("scan journal", "after", pos, "err", err)
			if !sleep(ctx, backoff) {
				return ctx.Err()
			}
			backoff = min(backoff*2, 10*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		if len(batch) > 0 {
			pos = batch[len(batch)-1].Pos()
			for _, out := range outs {
				select {
				case out <- batch:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
		}
		if len(batch) < e.cfg.ScanSize {
			if !follow {
				return nil
			}
			select {
			case <-e.notify:
			case <-time.After(e.cfg.BatchInterval):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
