// Package follow is the live ordering of the daemon: it journals the bus
// as it delivers, fills from the archive the spans of time the journal may
// lack, and decides how far each model may process so that no model ever
// commits past a message the journal does not hold yet.
//
//	bus ──► live loop ──────────────┐ journaled as they arrive
//	archive ──► filler ─────────────┴─► Engine.Ingest / IngestSpan ─► journal
//	              │ each window's messages and "this span is complete"
//	              │ commit in one transaction (engine.SpanJournal)
//	              ▼
//	complete spans ─► holes ─► per-model hold: the start of the first hole
//	                           after the model's position
//	now − lateness ─► watermark: the bus may still deliver older messages
//
// The record of complete spans is durable, so whatever a crash interrupts
// (a history fill, the gap since the last run, a span half fetched) is
// exactly what the next start fills. Only the archive makes a span
// complete: the bus drops silently (ZeroMQ) or loses what was in flight at
// a crash. Spans the bus delivered during this run are followed live
// (held back only by the lateness window) and checked against the archive
// once they are older than the settle lag; the spans before the bus's
// first delivery (plus a margin) hold the models until the archive has
// filled them. Without an archive nothing can be filled: the spans the bus
// delivers count as complete as they come (in memory only, so that a
// later start with an archive fills them), and earlier holes are reported
// as gaps that cannot be filled.
package follow

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"statscache/engine"
)

// Engine is what the follower drives: *engine.Engine.
type Engine interface {
	Ingest(ctx context.Context, msgs []*engine.Message) (engine.AppendResult, error)
	IngestSpan(ctx context.Context, msgs []*engine.Message, span engine.Span) (engine.AppendResult, error)
	SetWatermark(t time.Time)
	Hold(ident string, untilUS int64)
	Positions() map[string]int64
}

// Spans reads the durable record of complete spans (engine.SpanJournal).
type Spans interface {
	CompleteSpans(ctx context.Context) ([]engine.Span, error)
}

// Archive fetches history: every archived message of [from, to), one
// window at a time, saying which span each call completes
// (archive.Client.FetchSpans). After an error the spans delivered before
// it stay complete; the follower fetches what is left.
type Archive interface {
	FetchSpans(ctx context.Context, from, to time.Time, fn func(span engine.Span, batch []*engine.Message) error) error
}

// Bus is a live subscription. deliver hands one message to the follower;
// journaled, when not nil, is called once the message is durably in the
// journal (or found there already): an AMQP source acknowledges the
// delivery then, so a crash before it means a redelivery.
type Bus interface {
	RunFunc(ctx context.Context, deliver func(ctx context.Context, m *engine.Message, journaled func()) error) error
}

// Clock tells the time and waits; tests drive the follower with a fake.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Config tunes a Follower. Zero values take the defaults.
type Config struct {
	// Settle is how far the archive may lag the bus: a span is fetched
	// only once it is at least this old.
	Settle time.Duration
	// Lateness is how late the bus may deliver a message and still have
	// it processed in order: the watermark is now minus Lateness.
	Lateness time.Duration
	// Margin is how far past the bus's first delivery (or the start of
	// the subscription, whichever is later) the spans that hold the models
	// reach, so the seam between the archive and the bus overlaps.
	Margin time.Duration
	// Verify is how often the spans the bus delivered are checked against
	// the archive once they are Settle old.
	Verify time.Duration
	// Start is where the journal must be complete from when no model says
	// otherwise (the daemon's epoch).
	Start time.Time
	// Drain bounds how long a stop keeps trying to journal what the bus
	// had handed over, counted from the stop (a journal that cannot be
	// written must not keep SIGTERM from ending the process).
	Drain time.Duration
	// LiveBatch and LiveFlush group live messages into journal appends.
	LiveBatch int
	LiveFlush time.Duration
	// OnIngest, if set, is told what each append did ("bus" or "archive").
	OnIngest func(source string, n int, res engine.AppendResult)
	// FillGate, when set, says whether this instance fills from the
	// archive now: several instances share the journal and only the one
	// holding the fill lease fetches (shared.go). The others read the
	// durable record of complete spans every PollSpans (default 1 s).
	FillGate  func() bool
	PollSpans time.Duration
	Clock     Clock
	Logger    *slog.Logger
}

// Defaults.
const (
	DefaultSettle    = 2 * time.Minute
	DefaultLateness  = 3 * time.Second
	DefaultMargin    = 5 * time.Second
	DefaultVerify    = time.Minute
	DefaultDrain     = engine.DefaultDrain
	DefaultLiveBatch = 1000
	DefaultLiveFlush = 100 * time.Millisecond
)

func (c *Config) setDefaults() {
	if c.Settle < 0 {
		c.Settle = 0
	}
	if c.Lateness < 0 {
		c.Lateness = 0
	}
	if c.Margin <= 0 {
		c.Margin = DefaultMargin
	}
	if c.Verify <= 0 {
		c.Verify = DefaultVerify
	}
	if c.Drain <= 0 {
		c.Drain = DefaultDrain
	}
	if c.LiveBatch <= 0 {
		c.LiveBatch = DefaultLiveBatch
	}
	if c.LiveFlush <= 0 {
		c.LiveFlush = DefaultLiveFlush
	}
	if c.Clock == nil {
		c.Clock = realClock{}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Follower keeps the journal complete and the models in order. Create it
// with New, then Run it; Replan after models were added or removed.
type Follower struct {
	cfg   Config
	eng   Engine
	spans Spans
	arch  Archive
	bus   Bus
	log   *slog.Logger

	replan chan struct{}

	mu       sync.Mutex
	complete spanSet
	// liveFrom: spans from here on are delivered by this run's bus
	// subscription (math.MaxInt64 without a bus, or before Run).
	liveFrom int64
	started  bool
	filling  *engine.Span
	lastErr  string
	unreach  bool
	holds    map[string]int64
	needFrom int64
	catchUp  catchUp // see catchup.go
	covered  int64   // how much time f.complete covers, for pollSpans

	// Promise's view (shared.go), under pmu: the last watermark set and
	// the times of the bus's messages not journaled yet.
	pmu     sync.Mutex
	wmMu    sync.Mutex // serializes setWatermark
	lastWM  int64
	wmSet   bool
	pending map[int64]int
}

// New returns a follower. arch may be nil (no archive: gaps cannot be
// filled) and so may bus (archive only: the models follow the archive,
// a settle lag behind).
func New(cfg Config, eng Engine, spans Spans, arch Archive, bus Bus) *Follower {
	cfg.setDefaults()
	return &Follower{
		cfg: cfg, eng: eng, spans: spans, arch: arch, bus: bus, log: cfg.Logger,
		replan: make(chan struct{}, 1), liveFrom: math.MaxInt64, holds: map[string]int64{},
	}
}

// Replan makes the follower look at the models again: a reload added a
// model whose history may need filling, or removed one.
func (f *Follower) Replan() {
	select {
	case f.replan <- struct{}{}:
	default:
	}
	f.updateHolds()
}

// Run follows until ctx ends, then journals what the bus had handed over
// and returns. It reads the durable record of complete spans first and
// sets every model's hold before the first message is journaled.
func (f *Follower) Run(ctx context.Context) error {
	spans, err := f.spans.CompleteSpans(ctx)
	if err != nil {
		if ctx.Err() != nil {
			// Stopped while starting (a SIGTERM right after the start):
			// nothing was journaled, so there is nothing to lose.
			return nil
		}
		return fmt.Errorf("follow: %w", err)
	}
	t0 := f.cfg.Clock.Now()
	f.mu.Lock()
	for _, s := range spans {
		f.complete = f.complete.add(s)
	}
	// The live region begins only once the bus has delivered its first
	// message (see joined): until then every span from the models'
	// positions on holds them, as without a bus.
	f.liveFrom = math.MaxInt64
	f.started = true
	f.mu.Unlock()
	f.updateHolds()
	f.setWatermark()

	srcCtx, stop := context.WithCancel(ctx)
	defer stop()
	liveCtx, stopLive := context.WithCancel(context.Background())
	defer stopLive()
	// The live loop's appends outlive ctx by Drain at most, counted from
	// the stop (not from when the live loop starts draining, after the
	// sources ended): an append that the database leaves unanswered when
	// the stop begins is cut then, with everything else.
	appendCtx, cancelAppends := engine.WithDrain(ctx, f.cfg.Drain)
	defer cancelAppends()
	var wg sync.WaitGroup
	live := make(chan liveMsg, 1<<16)
	liveDone := make(chan struct{})
	if f.bus != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var first sync.Once
			err := f.bus.RunFunc(srcCtx, func(ctx context.Context, m *engine.Message, journaled func()) error {
				first.Do(func() { f.joined(t0, m) })
				f.pendingAdd(m)
				select {
				case live <- liveMsg{m, journaled}:
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			})
			if err != nil && !errors.Is(err, context.Canceled) {
				f.log.Error("bus subscription stopped", "err", err)
			}
		}()
		// The live loop outlives the subscription: it journals (and so
		// acknowledges) everything the bus handed over before it stopped,
		// then drains within Drain.
		go func() {
			defer close(liveDone)
			f.liveLoop(liveCtx, appendCtx, live)
		}()
	} else {
		close(liveDone)
	}
	if f.cfg.FillGate != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			every := f.cfg.PollSpans
			if every <= 0 {
				every = time.Second
			}
			f.pollSpans(srcCtx, every)
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		if f.arch != nil {
			f.fillLoop(srcCtx)
		} else {
			f.recordBusLoop(srcCtx)
		}
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				f.setWatermark()
			case <-srcCtx.Done():
				return
			}
		}
	}()
	<-ctx.Done()
	stop()
	wg.Wait()
	stopLive()
	<-liveDone
	return nil
}

// joined fixes where the live region begins, at the bus's first message:
// the seam reaches Margin past the later of the subscription's start and
// that message's time. A subscription may take long to deliver (ZeroMQ's
// slow joiner, a publisher that cannot be reached at start), and the
// local clock may be behind the publishers' (a host whose clock NTP has
// not stepped yet): either way what was published before the first
// delivery reached nobody, and must hold the models until the archive
// has filled it. A publisher whose clock is ahead only makes the models
// wait for the archive longer.
func (f *Follower) joined(t0 time.Time, m *engine.Message) {
	from := max(t0.UnixMicro(), m.TimeUS)
	f.mu.Lock()
	if f.arch != nil {
		from += f.cfg.Margin.Microseconds()
	}
	f.liveFrom = from
	f.mu.Unlock()
	f.updateHolds()
	select {
	case f.replan <- struct{}{}:
	default:
	}
}

func (f *Follower) setWatermark() {
	f.wmMu.Lock() // Run's ticker and Promise
	defer f.wmMu.Unlock()
	now := f.cfg.Clock.Now()
	wm := f.busHold(now, now.Add(-f.cfg.Lateness).UnixMicro())
	f.eng.SetWatermark(time.UnixMicro(wm))
	f.noteWatermark(wm)
}

type liveMsg struct {
	m         *engine.Message
	journaled func()
}

// liveLoop journals bus messages in small batches (every LiveFlush or
// LiveBatch messages, whichever comes first) and tells the bus which are
// journaled. A journal that fails is retried; a message is acknowledged
// only once its append committed. The loop drains when ctx ends; every
// append runs with appendCtx, which ends Drain after the stop.
func (f *Follower) liveLoop(ctx, appendCtx context.Context, live <-chan liveMsg) {
	var batch []liveMsg
	msgs := make([]*engine.Message, 0, f.cfg.LiveBatch)
	t := time.NewTicker(f.cfg.LiveFlush)
	defer t.Stop()
	// flush appends the batch, retrying a failed append every second
	// until wait ends.
	flush := func(wait context.Context) {
		if len(batch) == 0 {
			return
		}
		msgs = msgs[:0]
		for _, lm := range batch {
			msgs = append(msgs, lm.m)
		}
		for {
			res, err := f.eng.Ingest(appendCtx, msgs)
			if err == nil {
				if f.cfg.OnIngest != nil {
					f.cfg.OnIngest("bus", len(msgs), res)
				}
				if res.Late > 0 {
					f.log.Warn("late messages: journaled, but behind models that had committed past their time", "count", res.Late)
				}
				f.pendingDone(msgs)
				break
			}
			f.log.Error("journal live messages; retrying", "err", err)
			if !engine.Sleep(wait, time.Second) {
				return // not acknowledged: the bus redelivers (AMQP) or the archive fills them
			}
		}
		for _, lm := range batch {
			if lm.journaled != nil {
				lm.journaled()
			}
		}
		batch = batch[:0]
	}
	for {
		select {
		case lm := <-live:
			batch = append(batch, lm)
			if len(batch) >= f.cfg.LiveBatch {
				flush(ctx)
			}
		case <-t.C:
			flush(ctx)
		case <-ctx.Done():
			// Journal what the subscription handed over, then stop,
			// within Drain of the stop.
			for {
				select {
				case lm := <-live:
					batch = append(batch, lm)
				default:
					flush(appendCtx)
					return
				}
			}
		}
	}
}

// needFrom is where the journal must be complete from: the earliest
// position of any model (a model needs nothing before its position), or
// Start when there is no model. A model with no start (math.MinInt64)
// wants the whole journal, which Start stands for; another model's
// earlier position still counts.
func (f *Follower) needFromLocked(pos map[string]int64) int64 {
	need := int64(math.MaxInt64)
	for _, p := range pos {
		if p == math.MinInt64 && !f.cfg.Start.IsZero() {
			p = f.cfg.Start.UnixMicro()
		}
		need = min(need, p)
	}
	if need == math.MaxInt64 {
		// No model: the daemon's start, or the live region.
		if !f.cfg.Start.IsZero() {
			return f.cfg.Start.UnixMicro()
		}
		return f.liveFrom
	}
	return need
}

// blockingLocked returns the holes that hold the models: those before the
// live region, from need on.
func (f *Follower) blockingLocked(need int64) []engine.Span {
	return f.complete.holes(need, f.liveFrom)
}

// updateHolds sets every model's hold: the start of the first hole after
// its position. Without an archive nothing can be filled, so nothing
// holds a model.
func (f *Follower) updateHolds() {
	pos := f.eng.Positions()
	f.mu.Lock()
	if !f.started {
		f.mu.Unlock()
		return
	}
	f.needFrom = f.needFromLocked(pos)
	var holes []engine.Span
	if f.arch != nil {
		holes = f.blockingLocked(f.needFrom)
	}
	set := map[string]int64{}
	for id, p := range pos {
		set[id] = capFor(holes, p)
	}
	f.holds = set
	f.mu.Unlock()
	for id, c := range set {
		f.eng.Hold(id, c)
	}
}

// fillLoop fills holes from the archive, one fetch at a time: first the
// seam (the hole that reaches the live region: it holds every running
// model), then the others from the oldest, then, every Verify, the spans
// the bus delivered once they are Settle old.
func (f *Follower) fillLoop(ctx context.Context) {
	backoff := time.Second
	for ctx.Err() == nil {
		target, wait := f.nextFetch()
		if !f.mayFill() {
			// Another instance holds the fill lease: pollSpans follows
			// what it fills.
			target, wait = nil, time.Second
		}
		if target == nil {
			select {
			case <-f.cfg.Clock.After(wait):
			case <-f.replan:
			case <-ctx.Done():
				return
			}
			continue
		}
		f.mu.Lock()
		f.filling = target
		f.mu.Unlock()
		err := f.fetch(ctx, *target)
		f.mu.Lock()
		f.filling = nil
		f.mu.Unlock()
		if err == nil {
			f.setError("", false)
			backoff = time.Second
			continue
		}
		if ctx.Err() != nil {
			return
		}
		f.log.Warn("archive fill failed: the models it holds wait; retrying", "span", fmtSpan(*target), "err", err, "retry_in", backoff)
		// A journal that cannot be written (a full disk) is not an
		// archive that cannot be reached.
		f.setError(err.Error(), !errors.As(err, new(journalError)))
		select {
		case <-f.cfg.Clock.After(backoff):
		case <-ctx.Done():
			return
		}
		backoff = min(backoff*2, time.Minute)
	}
}

// nextFetch picks the next span to fetch, or says how long to wait. A
// hole that reaches past what is ripe (Settle old) is fetched in steps of
// at least minStep, so the archive is not asked for a few milliseconds
// at a time while time passes.
func (f *Follower) nextFetch() (*engine.Span, time.Duration) {
	pos := f.eng.Positions()
	now := f.cfg.Clock.Now()
	ripe := now.Add(-f.cfg.Settle).UnixMicro()
	step := min(f.cfg.Verify, minStep).Microseconds()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.needFrom = f.needFromLocked(pos)
	wait := f.cfg.Verify
	// try returns the ripe part of h, or nil and how long until it is due.
	try := func(h engine.Span, step int64) (*engine.Span, time.Duration) {
		due := h.FromUS + step
		if h.ToUS <= ripe {
			return &h, 0
		}
		if due <= ripe {
			return &engine.Span{FromUS: h.FromUS, ToUS: ripe}, 0
		}
		return nil, time.Duration(due-ripe)*time.Microsecond + 10*time.Millisecond
	}
	// Holes before the live region hold models: the seam first.
	blocking := f.blockingLocked(f.needFrom)
	if n := len(blocking); n > 0 {
		order := append([]engine.Span{blocking[n-1]}, blocking[:n-1]...)
		for _, h := range order {
			if s, d := try(h, step); s != nil {
				return s, 0
			} else {
				wait = min(wait, d)
			}
		}
	}
	// The live region: check what the bus delivered, in steps of Verify.
	// The whole live region, also what the models have passed: a message
	// the bus lost there is journaled (flagged late for the models that
	// committed past it) for the models added later.
	if f.liveFrom != math.MaxInt64 {
		if hs := f.complete.holes(f.liveFrom, math.MaxInt64); len(hs) > 0 {
			if s, d := try(hs[0], f.cfg.Verify.Microseconds()); s != nil {
				return s, 0
			} else {
				wait = min(wait, d)
			}
		}
	}
	return nil, max(wait, 10*time.Millisecond)
}

// minStep is the smallest span fetched from a hole that is not wholly
// ripe yet.
const minStep = 10 * time.Second

// fetch journals the archive's messages of span, recording each window
// complete with its messages, and moves the holds as windows complete.
func (f *Follower) fetch(ctx context.Context, span engine.Span) error {
	return f.arch.FetchSpans(ctx, time.UnixMicro(span.FromUS), time.UnixMicro(span.ToUS), func(s engine.Span, batch []*engine.Message) error {
		res, err := f.eng.IngestSpan(ctx, batch, s)
		if err != nil {
			return journalError{err}
		}
		if f.cfg.OnIngest != nil && len(batch) > 0 {
			f.cfg.OnIngest("archive", len(batch), res)
		}
		f.mu.Lock()
		f.complete = f.complete.add(s)
		f.mu.Unlock()
		f.updateHolds()
		return nil
	})
}

// recordBusLoop, without an archive, counts the spans the bus delivered
// as complete as they age past the lateness window: there is nothing else
// to fill them from. They are kept in memory only: the bus does not make a
// span complete (it drops silently, or never connects), so a later start
// with an archive must still fill them.
func (f *Follower) recordBusLoop(ctx context.Context) {
	if f.bus == nil {
		return
	}
	for {
		select {
		case <-f.cfg.Clock.After(time.Second):
		case <-ctx.Done():
			return
		}
		to := f.cfg.Clock.Now().Add(-f.cfg.Lateness).UnixMicro()
		f.mu.Lock()
		if s := (engine.Span{FromUS: f.liveFrom, ToUS: to}); f.liveFrom != math.MaxInt64 && !s.Empty() {
			f.complete = f.complete.add(s)
		}
		f.mu.Unlock()
	}
}

// journalError is a fill that failed on the journal's side.
type journalError struct{ err error }

func (e journalError) Error() string { return e.err.Error() }
func (e journalError) Unwrap() error { return e.err }

func (f *Follower) setError(msg string, unreachable bool) {
	f.mu.Lock()
	f.lastErr, f.unreach = msg, unreachable
	f.mu.Unlock()
}

func fmtSpan(s engine.Span) string {
	return fmt.Sprintf("[%s, %s)", fmtUS(s.FromUS), fmtUS(s.ToUS))
}

func fmtUS(us int64) string {
	switch us {
	case math.MinInt64:
		return "-inf"
	case math.MaxInt64:
		return "+inf"
	}
	return time.UnixMicro(us).UTC().Format(time.RFC3339Nano)
}
