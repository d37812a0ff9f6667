package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"statscache/engine"
	"statscache/engine/archive"
	"statscache/engine/bus"
	"statscache/luaapi"
	"statscache/web"
)

// The live daemon, and where its messages enter:
//
//	bus (ZeroMQ SUB) ──► liveLoop ──┐  journaled as they arrive
//	archive (datagrepper) ──────────┴─► Engine.Ingest ─► journal (dedupe on key)
//	                                                        │
//	watermark = min(now − lateness, archive frontier) ──────┤ models process only
//	                                                        ▼ messages older than it
//	                                              runners ─► model tables
//
// Models never see a message the journal may still lack: the archive
// frontier holds them back while a gap is being filled, the lateness window
// while the bus may still deliver older messages. A message that arrives
// after the watermark has passed its time is still journaled, flagged late
// and counted; models that had already committed past it do not see it.

// daemonConfig is everything "run" and "demo" are told.
type daemonConfig struct {
	common
	listen      string
	buses       []string
	topics      []string
	datagrepper string
	epoch       time.Time
	settle      time.Duration
	lateness    time.Duration
	concurrency int
	pidfile     string
	// margin is how far past the start of the live subscription the
	// archive fill reaches, so the seam overlaps.
	margin time.Duration
	// progress draws a progress line on stderr (a terminal).
	progress bool
}

// daemon is one running statscache: sources, engine, API.
type daemon struct {
	cfg  daemonConfig
	log  *slog.Logger
	p    *pipeline
	sub  *bus.Subscriber
	arch *archive.Client
	live chan *engine.Message
	met  *metrics

	// frontier is the time (unix µs) up to which the archive has filled the
	// journal; math.MaxInt64 when no gap is being filled.
	frontier atomic.Int64
	backfill atomic.Pointer[backfillStatus]
	fetched  atomic.Int64 // messages delivered by the archive in this run

	mu      sync.Mutex
	addr    net.Addr
	started time.Time
	reloads []reloadStatus
}

type backfillStatus struct {
	From, To    time.Time
	Done        bool
	Progress    archive.Progress
	LastError   string
	Unreachable bool
}

type reloadStatus struct {
	At     time.Time           `json:"at"`
	Result engine.ReloadResult `json:"result"`
	Errors []string            `json:"errors"`
}

func newDaemon(ctx context.Context, cfg daemonConfig, log *slog.Logger, stderr io.Writer) (*daemon, error) {
	c := cfg.common
	if !cfg.epoch.IsZero() {
		c.epoch = cfg.epoch
	}
	// New models wait until the history they need is in the journal.
	c.holdNew = true
	p, err := openPipeline(ctx, &c, log, stderr)
	if err != nil {
		return nil, err
	}
	d := &daemon{cfg: cfg, log: log, p: p, live: make(chan *engine.Message, 1<<16), started: time.Now()}
	d.frontier.Store(math.MaxInt64)
	d.met = newMetrics(d)
	if len(cfg.buses) > 0 && !(len(cfg.buses) == 1 && cfg.buses[0] == "none") {
		d.sub = bus.New(bus.Config{
			Endpoints: cfg.buses, Topics: cfg.topics, Limits: c.limits(), Logger: log.With("source", "bus"),
			OnReject: func(r engine.Reject) {
				d.met.rejected.WithLabelValues("bus").Inc()
				if err := p.db.AddRejects(context.Background(), []engine.Reject{r}); err != nil {
					log.Error("keep rejected record", "err", err)
				}
			},
		})
	}
	if cfg.datagrepper != "" {
		d.arch = &archive.Client{
			BaseURL: cfg.datagrepper, Concurrency: cfg.concurrency, Limits: c.limits(),
			Logger: log.With("source", "archive"),
			OnReject: func(r engine.Reject) {
				d.met.rejected.WithLabelValues("archive").Inc()
				if err := p.db.AddRejects(context.Background(), []engine.Reject{r}); err != nil {
					log.Error("keep rejected record", "err", err)
				}
			},
		}
	}
	return d, nil
}

// run runs the daemon until ctx ends, then drains and commits.
func (d *daemon) run(ctx context.Context, stdout io.Writer) error {
	defer d.p.db.Close()
	t0 := time.Now()
	var wg sync.WaitGroup
	srcCtx, stopSources := context.WithCancel(ctx)
	defer stopSources()

	// The live subscription starts first and is journaled from the start;
	// the watermark keeps models behind the archive fill meanwhile.
	if d.sub != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := d.sub.RunFunc(srcCtx, func(ctx context.Context, m *engine.Message) error {
				select {
				case d.live <- m:
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			})
			if err != nil && !errors.Is(err, context.Canceled) {
				d.log.Error("bus subscriber stopped", "err", err)
			}
		}()
	}
	liveDone := make(chan struct{})
	go func() {
		defer close(liveDone)
		d.liveLoop(srcCtx)
	}()
	if d.arch != nil {
		from, err := d.fillFrom(ctx, t0)
		if err != nil {
			return err
		}
		d.frontier.Store(from.UnixMicro())
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.fill(srcCtx, from, t0.Add(d.cfg.margin))
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		d.watermarkLoop(srcCtx)
	}()

	wg.Add(1)
	go func() {
		defer wg.Done()
		d.history(srcCtx)
	}()

	engDone := make(chan error, 1)
	go func() { engDone <- d.p.eng.Run(ctx, true) }()

	srv, err := d.serve()
	if err != nil {
		stopSources()
		wg.Wait()
		<-liveDone
		return err
	}
	fmt.Fprintf(stdout, "statscache is running: http://%s/ (API at /api/, metrics at /metrics, status at /status)\n", d.addr)
	d.log.Info("running", "addr", d.addr.String(), "models", len(d.p.idents), "bus", d.cfg.buses, "archive", d.cfg.datagrepper)

	<-ctx.Done()
	d.log.Info("stopping: draining and committing (a second signal exits at once)")
	stopSources()
	wg.Wait()
	<-liveDone
	err = <-engDone
	shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(shut)
	return err
}

// fillFrom decides where the archive fill starts: a little before the
// newest journaled message (the seam of the last run), or at the epoch.
func (d *daemon) fillFrom(ctx context.Context, t0 time.Time) (time.Time, error) {
	st, err := d.p.db.JournalStats(ctx)
	if err != nil {
		return time.Time{}, err
	}
	if st.Messages > 0 {
		return time.UnixMicro(st.Newest.TimeUS).Add(-d.cfg.settle).UTC(), nil
	}
	if !d.cfg.epoch.IsZero() {
		return d.cfg.epoch, nil
	}
	return t0.Add(-time.Hour), nil
}

// fill journals the archive's messages from from to to. The archive lags
// the bus by up to settle, so a span is only fetched once it is settle
// old; an unreachable archive is retried with backoff, forever: it delays
// the models, it never makes them skip a window.
func (d *daemon) fill(ctx context.Context, from, to time.Time) {
	st := &backfillStatus{From: from, To: to}
	d.backfill.Store(st)
	d.log.Info("filling from the archive", "from", from, "to", to)
	pos := from
	backoff := time.Second
	for pos.Before(to) && ctx.Err() == nil {
		end := time.Now().Add(-d.cfg.settle)
		if end.After(to) {
			end = to
		}
		if !end.After(pos) {
			// The rest is younger than the settle lag: wait for it to age.
			if !sleep(ctx, min(pos.Sub(end)+10*time.Millisecond, time.Second)) {
				return
			}
			continue
		}
		err := d.arch.Fetch(ctx, pos, end, func(batch []*engine.Message) error {
			res, err := d.p.eng.Ingest(ctx, batch)
			if err != nil {
				return err
			}
			d.met.count("archive", len(batch), res)
			d.fetched.Add(int64(len(batch)))
			if len(batch) > 0 {
				// Everything before the last delivered message is in.
				d.frontier.Store(batch[len(batch)-1].TimeUS)
			}
			d.publishBackfill(st, "", false)
			return nil
		})
		var we *archive.WindowError
		switch {
		case err == nil:
			pos = end
			d.frontier.Store(end.UnixMicro())
			backoff = time.Second
		case errors.As(err, &we):
			pos = we.Start
			d.frontier.Store(pos.UnixMicro())
			d.log.Warn("archive unreachable: the models wait; retrying", "window", we.Start, "err", err, "retry_in", backoff)
			d.publishBackfill(st, err.Error(), true)
			if !sleep(ctx, backoff) {
				return
			}
			backoff = min(backoff*2, time.Minute)
		default:
			if ctx.Err() != nil {
				return
			}
			d.log.Warn("archive fill failed; retrying", "err", err, "retry_in", backoff)
			d.publishBackfill(st, err.Error(), true)
			if !sleep(ctx, backoff) {
				return
			}
			backoff = min(backoff*2, time.Minute)
		}
	}
	if ctx.Err() != nil {
		return
	}
	d.frontier.Store(math.MaxInt64)
	d.publishBackfill(st, "", false)
	done := *d.backfill.Load()
	done.Done = true
	d.backfill.Store(&done)
	if d.cfg.progress {
		fmt.Fprintln(os.Stderr)
	}
	d.log.Info("archive fill done: models follow the bus", "messages", done.Progress.Messages)
}

func (d *daemon) publishBackfill(st *backfillStatus, lastErr string, unreachable bool) {
	s := *st
	s.Progress = d.arch.Progress()
	s.Progress.Messages = d.fetched.Load() // over every Fetch of the fill
	s.LastError, s.Unreachable = lastErr, unreachable
	d.backfill.Store(&s)
	if d.cfg.progress {
		p := s.Progress
		frac := 0.0
		if p.Windows > 0 {
			frac = float64(p.WindowsDone) / float64(p.Windows)
		}
		bar := int(frac * 30)
		fmt.Fprintf(os.Stderr, "\rbackfill [%-30s] %3.0f%% %d msgs, %d/%d windows, %.0f msg/s, ETA %s   ",
			string(repeat('#', bar)), frac*100, p.Messages, p.WindowsDone, p.Windows, p.Rate, p.ETA.Round(time.Second))
	}
}

func repeat(c byte, n int) []byte {
	b := make([]byte, max(n, 0))
	for i := range b {
		b[i] = c
	}
	return b
}

// history releases the models held because they have committed nothing
// yet. When a model's history starts before the journal's oldest message,
// the archive fills that span first; the held model waits, the others do
// not. It runs at start and after each reload.
func (d *daemon) history(ctx context.Context) {
	held := d.p.eng.HeldModels()
	if len(held) == 0 {
		return
	}
	st, err := d.p.db.JournalStats(ctx)
	if err != nil {
		d.log.Error("history: read the journal", "err", err)
		return
	}
	from := int64(math.MaxInt64)
	var waiting []string
	for ident, start := range held {
		// An empty journal is filled from the epoch by the tail fill.
		if d.arch == nil || st.Messages == 0 || start >= st.Oldest.TimeUS {
			d.p.eng.Hold(ident, math.MaxInt64)
			continue
		}
		waiting = append(waiting, ident)
		from = min(from, start)
	}
	if len(waiting) == 0 {
		return
	}
	to := time.UnixMicro(st.Oldest.TimeUS)
	d.log.Info("filling history from the archive for new models", "models", waiting, "from", time.UnixMicro(from).UTC(), "to", to.UTC())
	// A client of its own: its progress is separate from the tail fill's.
	client := &archive.Client{BaseURL: d.arch.BaseURL, Concurrency: d.arch.Concurrency, Limits: d.arch.Limits,
		Logger: d.arch.Logger, OnReject: d.arch.OnReject}
	backoff := time.Second
	pos := time.UnixMicro(from)
	for ctx.Err() == nil {
		err := client.Fetch(ctx, pos, to, func(batch []*engine.Message) error {
			res, err := d.p.eng.Ingest(ctx, batch)
			if err != nil {
				return err
			}
			d.met.count("archive", len(batch), res)
			if len(batch) > 0 {
				for _, id := range waiting {
					d.p.eng.Hold(id, batch[len(batch)-1].TimeUS)
				}
			}
			return nil
		})
		if err == nil {
			break
		}
		var we *archive.WindowError
		if errors.As(err, &we) {
			pos = we.Start
		}
		d.log.Warn("history fill failed; the new models wait; retrying", "err", err, "retry_in", backoff)
		if !sleep(ctx, backoff) {
			return
		}
		backoff = min(backoff*2, time.Minute)
	}
	if ctx.Err() != nil {
		return
	}
	for _, id := range waiting {
		d.p.eng.Hold(id, math.MaxInt64)
	}
	d.log.Info("history filled: new models catch up", "models", waiting)
}

// liveLoop journals bus messages in small batches: every 100 ms or 1000
// messages, whichever comes first.
func (d *daemon) liveLoop(ctx context.Context) {
	var batch []*engine.Message
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	flush := func(ctx context.Context) {
		if len(batch) == 0 {
			return
		}
		for {
			res, err := d.p.eng.Ingest(ctx, batch)
			if err == nil {
				d.met.count("bus", len(batch), res)
				if res.Late > 0 {
					d.log.Warn("late messages: journaled, but behind models that had committed past their time", "count", res.Late)
				}
				break
			}
			d.log.Error("journal live messages; retrying", "err", err)
			if !sleep(ctx, time.Second) {
				return
			}
		}
		batch = batch[:0]
	}
	for {
		select {
		case m := <-d.live:
			batch = append(batch, m)
			if len(batch) >= 1000 {
				flush(ctx)
			}
		case <-t.C:
			flush(ctx)
		case <-ctx.Done():
			// Drain what the subscriber handed over, then stop.
			for {
				select {
				case m := <-d.live:
					batch = append(batch, m)
				default:
					flush(context.Background())
					return
				}
			}
		}
	}
}

// watermarkLoop moves the watermark: now minus the lateness window, but
// never past the archive frontier.
func (d *daemon) watermarkLoop(ctx context.Context) {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		wm := time.Now().Add(-d.cfg.lateness).UnixMicro()
		if f := d.frontier.Load(); f < wm {
			wm = f
		}
		d.p.eng.SetWatermark(time.UnixMicro(wm))
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}

// reload loads every script again and swaps the running set (SIGHUP).
func (d *daemon) reload(ctx context.Context) engine.ReloadResult {
	start := time.Now()
	models, errs := loadScripts(d.cfg.scripts, d.cfg.luaOptions(d.log))
	var failed []string
	var msgs []string
	for _, err := range errs {
		var se *luaapi.ScriptError
		if errors.As(err, &se) {
			failed = append(failed, se.File)
		}
		msgs = append(msgs, err.Error())
		d.log.Error("reload: script not loaded; its running version is kept", "err", err)
	}
	ems := make([]engine.Model, len(models))
	for i, m := range models {
		ems[i] = m
	}
	res := d.p.eng.Reload(ctx, ems, failed)
	go d.history(ctx)
	for _, err := range res.Errors {
		msgs = append(msgs, err.Error())
		d.log.Error("reload", "err", err)
	}
	d.log.Info("reloaded", "kept", res.Kept, "restarted", res.Restarted, "rebuilding", res.Rebuilding,
		"added", res.Added, "removed", res.Removed, "errors", len(msgs), "took", time.Since(start))
	d.mu.Lock()
	d.reloads = append(d.reloads, reloadStatus{At: time.Now().UTC(), Result: res, Errors: msgs})
	if len(d.reloads) > 10 {
		d.reloads = d.reloads[1:]
	}
	d.mu.Unlock()
	d.met.reloads.Inc()
	return res
}

// serve starts the HTTP server: the API and portal, /metrics and /status.
func (d *daemon) serve() (*http.Server, error) {
	mux := http.NewServeMux()
	mux.Handle("/metrics", d.met.handler())
	mux.HandleFunc("/status", d.status)
	mux.Handle("/", web.New(d.p.db, d.log).Handler())
	ln, err := net.Listen("tcp", d.cfg.listen)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", d.cfg.listen, err)
	}
	d.mu.Lock()
	d.addr = ln.Addr()
	d.mu.Unlock()
	srv := web.HTTPServer(mux, d.log) // read and write timeouts: a stalled client cannot hold a connection
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.log.Error("http server", "err", err)
		}
	}()
	return srv, nil
}

// status answers GET /status: the daemon's sources, watermark, backfill and
// last reloads, as JSON.
func (d *daemon) status(w http.ResponseWriter, r *http.Request) {
	type busStatus struct {
		Endpoints []string  `json:"endpoints"`
		Stats     bus.Stats `json:"stats"`
	}
	out := struct {
		Started   time.Time       `json:"started"`
		Watermark *time.Time      `json:"watermark"`
		Bus       *busStatus      `json:"bus"`
		Backfill  *backfillStatus `json:"backfill"`
		Journal   any             `json:"journal"`
		Models    []any           `json:"models"`
		Reloads   []reloadStatus  `json:"reloads"`
	}{Started: d.started.UTC()}
	if wm := d.p.eng.Watermark(); !wm.IsZero() {
		out.Watermark = &wm
	}
	if d.sub != nil {
		out.Bus = &busStatus{Endpoints: d.cfg.buses, Stats: d.sub.Stats()}
	}
	out.Backfill = d.backfill.Load()
	if js, err := d.p.db.JournalStats(r.Context()); err == nil {
		out.Journal = map[string]any{"messages": js.Messages, "late": js.Late, "rejected": js.Rejects}
	}
	for _, s := range d.p.eng.Stats() {
		out.Models = append(out.Models, map[string]any{"ident": s.Ident, "processed": s.Processed, "errors": s.Errors, "failed": s.Failed, "queued": s.Queued})
	}
	d.mu.Lock()
	out.Reloads = append(out.Reloads, d.reloads...)
	d.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(out)
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
