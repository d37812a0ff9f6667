package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"statscache/engine"
	"statscache/engine/archive"
	"statscache/engine/cluster"
	"statscache/engine/follow"
	"statscache/engine/pgstore"
	"statscache/luaapi"
	"statscache/web"
)

// The live daemon: where its messages enter and where their order is
// fixed is engine/follow; this file wires the sources, the follower, the
// engine and the HTTP server together, and answers /status.
//
//	bus (AMQP or ZeroMQ, source.go) ──┐
//	archive ───────────┴─► follow.Follower ─► Engine.Ingest ─► journal ─► runners ─► model tables
//	                         (holds each model behind the spans the journal may lack)

// daemonConfig is everything "run" and "demo" are told.
type daemonConfig struct {
	common
	listen      string
	buses       []string
	amqp        amqpOptions
	topics      []string
	datagrepper string
	epoch       time.Time
	settle      time.Duration
	lateness    time.Duration
	concurrency int
	pidfile     string
	// margin is how far past the live subscription's first delivery the
	// spans that hold the models reach, so the seam overlaps.
	margin time.Duration
	// verify is how often the spans the bus delivered are checked against
	// the archive.
	verify time.Duration
	// progress draws a progress line on stderr (a terminal).
	progress bool
	// cluster: several instances share a PostgreSQL database (cluster.go).
	lease    time.Duration
	instance string
}

// daemon is one running statscache: sources, follower, engine, API.
type daemon struct {
	cfg  daemonConfig
	log  *slog.Logger
	p    *pipeline
	src  liveSource
	arch *archive.Client
	fol  *follow.Follower
	met  *metrics
	node *cluster.Node // nil on SQLite: one instance, no leases
	// drain bounds the stop after SIGTERM: every part of the daemon ends
	// within it (see stop).
	drain time.Duration

	mu      sync.Mutex
	addr    net.Addr
	started time.Time
	reloads []reloadStatus
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
	// Every model waits until the follower has said how far it may go.
	c.hold = true
	// The follower, the models and the cluster node share one drain time.
	c.drain = engine.DefaultDrain
	// On PostgreSQL several instances may share the database: a model
	// runs only where its lease is held.
	c.leased = pgstore.IsURL(c.db)
	if c.leased {
		// An instance paused inside a transaction must not hold the
		// others' appends and commits up for longer than a third of a
		// lease (see pgstore.Options.IdleInTransaction).
		c.idleTx = max(time.Second, leaseOrDefault(cfg.lease)/3)
	}
	p, err := openPipeline(ctx, &c, log, stderr)
	if err != nil {
		return nil, err
	}
	d := &daemon{cfg: cfg, log: log, p: p, started: time.Now(), drain: c.drain}
	d.met = newMetrics(d)
	keepReject := func(source string) func(engine.Reject) {
		return func(r engine.Reject) {
			d.met.rejected.WithLabelValues(source).Inc()
			// Written also while the sources drain, not after the drain.
			rctx, cancel := engine.WithDrain(ctx, d.drain)
			defer cancel()
			if err := p.db.AddRejects(rctx, []engine.Reject{r}); err != nil {
				log.Error("keep rejected record", "err", err)
			}
		}
	}
	if d.src, err = newSource(ctx, cfg, c.limits(), p.db, d.met.reg, log, keepReject("bus")); err != nil {
		p.db.Close()
		return nil, err
	}
	var src follow.Bus
	if d.src != nil {
		src = d.src
	}
	var arch follow.Archive
	if cfg.datagrepper != "" {
		d.arch = &archive.Client{
			BaseURL: cfg.datagrepper, Concurrency: cfg.concurrency, Limits: c.limits(),
			Logger: log.With("source", "archive"), OnReject: keepReject("archive"),
		}
		if cfg.progress {
			d.arch.OnProgress = d.drawProgress
		}
		arch = d.arch
	}
	fcfg := follow.Config{
		Settle: cfg.settle, Lateness: cfg.lateness, Margin: cfg.margin, Verify: cfg.verify,
		Start: c.epoch, OnIngest: d.met.count, Drain: d.drain, Logger: log.With("part", "follow"),
	}
	if c.leased {
		fcfg.FillGate = d.holdsFill
	}
	d.fol = follow.New(fcfg, p.eng, p.db, arch, src)
	if c.leased {
		d.node = d.newNode(ctx, arch != nil)
	}
	return d, nil
}

// run runs the daemon until ctx ends, then drains and commits (see stop).
func (d *daemon) run(ctx context.Context, stdout io.Writer) error {
	// The follower ends only when told to, or when it cannot start: then
	// the daemon stops too (without it nothing is journaled and every
	// model stays held).
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Every part's drain counts from the moment the stop began.
	ctx = engine.WithStopClock(ctx)
	folDone := make(chan error, 1)
	go func() { folDone <- d.fol.Run(ctx) }()
	engDone := make(chan error, 1)
	go func() { engDone <- d.p.eng.Run(ctx, true) }()
	var ferr error
	follower := stopStep{"the follower (journaling what the bus handed over)", func(time.Time) error {
		if folDone != nil {
			ferr = <-folDone
		}
		return ferr
	}}
	models := stopStep{"the models' last commits", func(time.Time) error { return <-engDone }}
	closeDB := stopStep{"closing the database", d.closeStore}

	srv, err := d.serve()
	if err != nil {
		cancel() // the follower and the engine end only when told to
		return errors.Join(err, d.stop(follower, models, closeDB))
	}
	nodeDone := d.runNode(ctx)
	fmt.Fprintf(stdout, "statscache is running: http://%s/ (API at /api/, metrics at /metrics, status at /status)\n", d.addr)
	d.log.Info("running", "addr", d.addr.String(), "models", len(d.p.idents), "bus", d.cfg.buses, "archive", d.cfg.datagrepper)

	select {
	case <-ctx.Done():
		d.log.Info("stopping: draining and committing (a second signal exits at once)", "drain", d.drain)
	case ferr = <-folDone:
		folDone = nil
		d.log.Error("the follower stopped: stopping", "err", ferr)
		cancel()
	}
	return d.stop(follower, models,
		stopStep{"the HTTP server", func(by time.Time) error {
			shut, stop := context.WithDeadline(context.Background(), by)
			defer stop()
			if srv.Shutdown(shut) != nil {
				srv.Close() // requests still waiting for the database end with their connections
			}
			return nil
		}},
		// The leases are released before the store closes.
		stopStep{"the lease release", func(time.Time) error { <-nodeDone; return nil }},
		closeDB)
}

// closeStore closes the store, waiting for it until the drain deadline (and
// a quarter of a second at least, well within drainGrace). A connection
// cut short by the drain may keep closing after that (pgx first asks a
// server that does not answer to cancel the statement, for up to 15 s):
// nothing is at stake then, since every transaction has ended one way or
// the other, so the process need not wait.
func (d *daemon) closeStore(by time.Time) error {
	done := make(chan error, 1)
	go func() { done <- d.p.db.Close() }()
	t := time.NewTimer(max(time.Until(by), 250*time.Millisecond))
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		d.log.Warn("the database's connections are still closing: not waiting for them (no transaction is open)")
		return nil
	}
}

// stopStep is one part of the daemon's stop: do waits for it to end, or
// ends it, by the drain deadline it is given.
type stopStep struct {
	what string
	do   func(by time.Time) error
}

// drainGrace is how long past the drain time stop still waits for a part
// before it abandons it.
const drainGrace = 2 * time.Second

// stop runs the steps of the stop in order, once the daemon's context has
// ended. Each part bounds its own work by the drain time (the follower's
// last appends, the models' last commits, the lease release: see
// engine.WithDrain). A part still running drainGrace after the drain time
// is abandoned, so that SIGTERM ends the process even when a call is stuck
// where no deadline reaches it (SQLite waiting out its busy timeout for a
// lock another process holds, inside cgo): stop logs which part it
// abandoned and returns an error, and the process exits. Nothing is lost by
// it: a transaction that did not commit is rolled back by the database, and
// the next start processes its batch again.
func (d *daemon) stop(steps ...stopStep) error {
	by := time.Now().Add(d.drain)
	var mu sync.Mutex
	current := ""
	done := make(chan error, 1)
	go func() {
		var errs []error
		for _, s := range steps {
			mu.Lock()
			current = s.what
			mu.Unlock()
			errs = append(errs, s.do(by))
		}
		done <- errors.Join(errs...)
	}()
	t := time.NewTimer(d.drain + drainGrace)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
	}
	mu.Lock()
	defer mu.Unlock()
	d.log.Error("the drain time is over: exiting without waiting for "+current+
		" (what was not committed is rolled back by the database and processed again at the next start)",
		"drain", d.drain, "waited", d.drain+drainGrace)
	return fmt.Errorf("stopped after the drain time (%s) without waiting for %s", d.drain, current)
}

// drawProgress draws the archive fill's progress line on a terminal.
func (d *daemon) drawProgress(p archive.Progress) {
	frac := 0.0
	if p.Windows > 0 {
		frac = float64(p.WindowsDone) / float64(p.Windows)
	}
	bar := strings.Repeat("#", int(frac*30))
	fmt.Fprintf(os.Stderr, "\rfill [%-30s] %3.0f%% %d msgs, %d/%d windows, %.0f msg/s, ETA %s   ",
		bar, frac*100, p.Messages, p.WindowsDone, p.Windows, p.Rate, p.ETA.Round(time.Second))
	if p.WindowsDone == p.Windows {
		fmt.Fprintln(os.Stderr)
	}
}

// reload loads every script again and swaps the running set (SIGHUP).
func (d *daemon) reload(ctx context.Context) engine.ReloadResult {
	start := time.Now()
	if d.cfg.scripts == "embedded" {
		// The embedded models are compiled into the binary: loading them
		// again would change nothing, and silence would let an analyst
		// believe the script they just dropped in is running.
		msg := "reload: nothing to reload: the models are the ones embedded in the binary. " +
			"To develop a model, run the demo in a folder with a scripts/ folder, or with --scripts DIR, and reload after each change"
		d.log.Warn(msg)
		d.recordReload(reloadStatus{At: time.Now().UTC(), Errors: []string{msg}})
		return engine.ReloadResult{}
	}
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
	// New models wait for the spans of their history the journal lacks;
	// the one fill loop takes them in turn.
	d.fol.Replan()
	for _, err := range res.Errors {
		msgs = append(msgs, err.Error())
		d.log.Error("reload", "err", err)
	}
	d.log.Info("reloaded", "kept", res.Kept, "restarted", res.Restarted, "rebuilding", res.Rebuilding,
		"added", res.Added, "removed", res.Removed, "errors", len(msgs), "took", time.Since(start))
	d.recordReload(reloadStatus{At: time.Now().UTC(), Result: res, Errors: msgs})
	d.met.reloads.Inc()
	return res
}

// recordReload keeps the last ten reloads for /status.
func (d *daemon) recordReload(r reloadStatus) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.reloads = append(d.reloads, r)
	if len(d.reloads) > 10 {
		d.reloads = d.reloads[1:]
	}
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
	out := struct {
		Started   time.Time         `json:"started"`
		Watermark *time.Time        `json:"watermark"`
		Bus       any               `json:"bus"`
		Fill      follow.Status     `json:"fill"`
		Archive   *archive.Progress `json:"archive"`
		Journal   any               `json:"journal"`
		Models    []any             `json:"models"`
		Reloads   []reloadStatus    `json:"reloads"`
		Cluster   *cluster.Status   `json:"cluster,omitempty"`
	}{Started: d.started.UTC(), Fill: d.fol.Status()}
	if d.node != nil {
		cs := d.node.Status()
		out.Cluster = &cs
	}
	if wm := d.p.eng.Watermark(); !wm.IsZero() {
		out.Watermark = &wm
	}
	if d.src != nil {
		out.Bus = d.src.Status()
	}
	if d.arch != nil {
		p := d.arch.Progress()
		out.Archive = &p
	}
	if js, err := d.p.db.JournalStats(r.Context()); err == nil {
		out.Journal = map[string]any{"messages": js.Messages, "late": js.Late, "rejected": js.Rejects}
	}
	for _, s := range d.p.eng.Stats() {
		m := map[string]any{"ident": s.Ident, "processed": s.Processed, "errors": s.Errors, "failed": s.Failed, "queued": s.Queued}
		if d.node != nil {
			m["running"], m["lease_token"], m["lease_lost"] = s.Running, s.Token, s.Lost
		}
		if s.Indexes != "" {
			m["indexes"] = s.Indexes // declared indexes that failed to build
		}
		out.Models = append(out.Models, m)
	}
	d.mu.Lock()
	out.Reloads = append(out.Reloads, d.reloads...)
	d.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(out)
}
