package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"runtime/debug"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"statscache/engine"
	"statscache/engine/filesource"
	"statscache/engine/sqlstore"
	"statscache/luaapi"
	"statscache/scripts"
)

// Defaults shared by the commands.
const (
	defaultDB      = "./statscache.db"
	defaultScripts = "./scripts"
	defaultListen  = "127.0.0.1:8080"
	// idleCommit is how long a model of the daemon that has caught up
	// with the bus holds what it processed (engine.Config.IdleCommit):
	// with --lateness 1s, it keeps a message's latency under 2 s at the
	// 99th percentile at 2,000 msg/s (see README, "Live latency"). A
	// replay never waits at the watermark, so it is unaffected.
	idleCommit = 250 * time.Millisecond
)

// common holds the flags every processing command takes.
type common struct {
	db, scripts         string
	logLevel, logFormat string
	sync                string
	batch               int
	batchInterval       time.Duration
	maxBytes, maxDepth  int
	cpuProfile          string
	memoryLimit         byteSize
	gcPercent           int
	keepErrors          int
	epoch               time.Time     // where a new model's history starts (daemon)
	hold                bool          // hold every model until the follower says how far it may go (daemon)
	leased              bool          // run a model only while this instance holds its lease (daemon on PostgreSQL)
	idleTx              time.Duration // PostgreSQL ends a session idle in a transaction that long (daemon)
	drain               time.Duration // what a model's store work still gets after a stop (engine.Config.Drain)
	services            serviceFlag
	// replay: process the whole journal (final), or hold back its newest
	// second, and lateness more, for the next replay (see holdBack).
	final    bool
	lateness time.Duration
}

func (c *common) register(fs *flag.FlagSet) {
	fs.StringVar(&c.db, "db", defaultDB, "SQLite database `path`, or a PostgreSQL URL (postgres://user@host:port/dbname)")
	fs.StringVar(&c.scripts, "scripts", defaultScripts, "`directory` of Lua models (\"embedded\": the shipped models)")
	fs.StringVar(&c.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&c.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&c.sync, "sync", "NORMAL", "SQLite synchronous mode: NORMAL survives a crash of the process, FULL also a power cut")
	fs.IntVar(&c.batch, "batch", engine.DefaultBatchSize, "messages a model processes between commits")
	fs.DurationVar(&c.batchInterval, "batch-interval", engine.DefaultBatchInterval, "longest time a model holds processed messages before committing")
	fs.IntVar(&c.maxBytes, "max-bytes", engine.DefaultLimits.MaxBytes, "reject records larger than this many bytes")
	fs.IntVar(&c.maxDepth, "max-depth", engine.DefaultLimits.MaxDepth, "reject records nested deeper than this")
	fs.IntVar(&c.keepErrors, "keep-errors", sqlstore.DefaultKeepErrors, "newest model errors kept per model, and rejected records per source (the totals count them all)")
	fs.StringVar(&c.cpuProfile, "cpuprofile", "", "write a Go CPU profile to `file` (for benchmarking)")
	c.memoryLimit = defaultMemoryLimit
	fs.Var(&c.memoryLimit, "memory-limit", "soft limit of the Go heap, e.g. 200MiB or 1GiB; 0: none (SQLite's page caches, about 70 MiB, come on top)")
	fs.IntVar(&c.gcPercent, "gc-percent", defaultGCPercent(), "garbage the Go heap may add, as a percentage of its live part, before a collection; 0 (the default when GOGC is set): leave it to the GOGC environment variable, or Go's 100")
	fs.Var(&c.services, "service", "`name=URL` of an HTTP service that work functions may call, e.g. koji=https://koji.fedoraproject.org/kojihub (repeatable)")
}

// luaOptions are the options every command loads scripts with.
func (c *common) luaOptions(log *slog.Logger) luaapi.Options {
	return luaapi.Options{Logger: log, Services: &luaapi.HTTPServices{URLs: c.services.urls}}
}

// defaultMemoryLimit is --memory-limit: past it, the garbage collector
// works harder to keep the Go heap under it, instead of letting garbage
// grow to twice the live heap whatever that is. SQLite's page caches
// (about 70 MiB) come on top. It is a cap for a heap that grows out of
// hand, not a budget: a limit near the live heap makes the collector run
// without pause (with every shipped model over 100,000 messages, whose
// live heap reaches 180 MB, 200MiB cut the peak RSS from 475 to 307 MB
// for 40% more CPU). The 11 volume models' live heap stays under 90 MB.
const defaultMemoryLimit = 512 << 20

// tuneRuntime sets the Go heap's limit and collection pace from the flags.
func (c *common) tuneRuntime() {
	if c.memoryLimit > 0 {
		debug.SetMemoryLimit(int64(c.memoryLimit))
	}
	if c.gcPercent > 0 {
		debug.SetGCPercent(c.gcPercent)
	}
}

// defaultGCPercent is --gc-percent unless GOGC is set, which then wins.
//
// It is Go's own default, 100: the heap may grow to twice its live part
// before a collection. Sessions before 2 December 2026 (evening) set 50,
// when the 11 volume models' replay of 1,000,000 messages peaked at 324 to
// 365 MB at 100; since the shared journal reads keep the runners in step,
// the same replay peaks at 246 MB at 100 (213 MB at 50), under the 300 MB
// target, and 50 cost about a tenth of the CPU of every replay: with every
// shipped model over 100,000 messages, 8.6 to 8.8 s of user CPU at 100
// against 9.6 to 10.3 s at 50, the peak RSS 424 to 460 MB against 340 to
// 378 MB. --gc-percent 50 still buys the lower peak for that CPU, and
// --memory-limit caps the heap whatever the pace.
func defaultGCPercent() int {
	if os.Getenv("GOGC") != "" {
		return 0
	}
	return 100
}

// byteSize is a flag of a number of bytes with an optional KiB, MiB or
// GiB suffix.
type byteSize int64

func (b *byteSize) String() string {
	switch {
	case *b == 0:
		return "0"
	case *b%(1<<30) == 0:
		return fmt.Sprintf("%dGiB", *b>>30)
	case *b%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", *b>>20)
	case *b%(1<<10) == 0:
		return fmt.Sprintf("%dKiB", *b>>10)
	}
	return strconv.FormatInt(int64(*b), 10)
}

func (b *byteSize) Set(v string) error {
	num, unit := v, int64(1)
	for _, u := range []struct {
		suffix string
		n      int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}} {
		if strings.HasSuffix(v, u.suffix) {
			num, unit = strings.TrimSuffix(v, u.suffix), u.n
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(num), 10, 64)
	if err != nil || n < 0 || n > (1<<62)/unit {
		return fmt.Errorf("want a number of bytes, optionally with KiB, MiB or GiB (e.g. 200MiB), got %q", v)
	}
	*b = byteSize(n * unit)
	return nil
}

// serviceFlag is the repeatable --service name=URL.
type serviceFlag struct{ urls map[string]string }

func (f *serviceFlag) String() string {
	var out []string
	for n, u := range f.urls {
		out = append(out, n+"="+u)
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

func (f *serviceFlag) Set(v string) error {
	name, raw, ok := strings.Cut(v, "=")
	if !ok || name == "" || raw == "" {
		return fmt.Errorf("want name=URL, e.g. koji=https://koji.fedoraproject.org/kojihub")
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("service %s: %q is not an http or https URL", name, raw)
	}
	if f.urls == nil {
		f.urls = map[string]string{}
	}
	f.urls[name] = raw
	return nil
}

func (c *common) validate() error {
	if c.batch < 1 {
		return fmt.Errorf("--batch %d: must be at least 1", c.batch)
	}
	if c.batchInterval <= 0 {
		return fmt.Errorf("--batch-interval %s: must be positive", c.batchInterval)
	}
	if c.maxBytes < 1024 {
		return fmt.Errorf("--max-bytes %d: must be at least 1024", c.maxBytes)
	}
	if c.maxDepth < 2 {
		return fmt.Errorf("--max-depth %d: must be at least 2", c.maxDepth)
	}
	if c.keepErrors < 1 {
		return fmt.Errorf("--keep-errors %d: must be at least 1", c.keepErrors)
	}
	if c.sync != "NORMAL" && c.sync != "FULL" {
		return fmt.Errorf("--sync %q: want NORMAL or FULL", c.sync)
	}
	return nil
}

func (c *common) limits() engine.Limits {
	return engine.Limits{MaxBytes: c.maxBytes, MaxDepth: c.maxDepth}
}

// loadModels loads the scripts and reports each one that does not load.
func loadModels(dir string, opts luaapi.Options, stderr io.Writer) ([]*luaapi.Model, int) {
	models, errs := loadScripts(dir, opts)
	for _, err := range errs {
		fmt.Fprintf(stderr, "script not loaded: %v\n", err)
	}
	return models, len(errs)
}

// loadScripts loads the models of a scripts directory, or the shipped
// ones embedded in the binary when dir is "embedded".
func loadScripts(dir string, opts luaapi.Options) ([]*luaapi.Model, []error) {
	if dir == "embedded" {
		return luaapi.LoadFS(scripts.FS, "scripts", opts)
	}
	return luaapi.LoadDir(dir, opts)
}

// pipeline is an open store with an engine and its models.
type pipeline struct {
	db     store
	eng    *engine.Engine
	log    *slog.Logger
	idents []string
}

func openPipeline(ctx context.Context, c *common, log *slog.Logger, stderr io.Writer) (*pipeline, error) {
	c.tuneRuntime()
	models, _ := loadModels(c.scripts, c.luaOptions(log), stderr)
	db, err := openStore(ctx, c.db, storeOptions{sync: c.sync, keepErrors: c.keepErrors, idleTx: c.idleTx})
	if err != nil {
		return nil, err
	}
	if c.hold && c.epoch.IsZero() {
		// The daemon's default epoch is one hour before its first start,
		// fixed in the database so that a restart (after a crash during
		// the first history fill, say) keeps the same one.
		v, err := db.InitSetting(ctx, "default_epoch", time.Now().Add(-time.Hour).UTC().Format(time.RFC3339Nano))
		if err == nil {
			c.epoch, err = time.Parse(time.RFC3339Nano, v)
		}
		if err != nil {
			db.Close()
			return nil, fmt.Errorf("default epoch: %w", err)
		}
	}
	eng := engine.New(db, engine.Config{BatchSize: c.batch, BatchInterval: c.batchInterval, IdleCommit: idleCommit, Epoch: c.epoch, HoldModels: c.hold, Leased: c.leased, Drain: c.drain, Logger: log})
	p := &pipeline{db: db, eng: eng, log: log}
	// Starting is a reload from nothing: the same checks (unique names)
	// and the same handling of changed tables.
	ems := make([]engine.Model, len(models))
	for i, m := range models {
		ems[i] = m
	}
	res := eng.Reload(ctx, ems, nil)
	for _, err := range res.Errors {
		fmt.Fprintf(stderr, "model not started: %v\n", err)
	}
	p.idents = append(res.Added, res.Rebuilding...)
	sort.Strings(p.idents)
	return p, nil
}

// ingestStats counts what replay did with the input records.
type ingestStats struct {
	records, accepted, duplicates, rejected, late int
	held                                          int       // journaled messages left for the next replay
	heldFrom                                      time.Time // the watermark: the held messages are from then on
}

// ingestFile journals one file's records; rejected records are kept in the
// rejects table and logged, and never stop the run. Decoding runs in its
// own goroutine, one batch ahead of the journal writes.
func (p *pipeline) ingestFile(ctx context.Context, path string, lim engine.Limits, st *ingestStats) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	return p.ingest(ctx, path, f, lim, st)
}

// replayBatch is how many records replay journals per transaction.
const replayBatch = 10000

// ingest journals the records read from in; name labels them in rejects.
func (p *pipeline) ingest(ctx context.Context, name string, in io.Reader, lim engine.Limits, st *ingestStats) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	batches := make(chan filesource.Batch, 2)
	readErr := make(chan error, 1)
	go func() {
		defer close(batches)
		// Large batches: an append writes each page of the journal's key
		// hashes it touches once, however many of its keys fall there,
		// and those pages are spread at random (see migration 0010).
		r := filesource.Reader{Limits: lim, BatchSize: replayBatch}
		readErr <- r.Read(ctx, name, in, func(b filesource.Batch) error {
			select {
			case batches <- b:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	}()
	for b := range batches {
		if err := p.journal(ctx, b, st); err != nil {
			cancel()
			for range batches {
			}
			<-readErr
			return err
		}
	}
	return <-readErr
}

func (p *pipeline) journal(ctx context.Context, b filesource.Batch, st *ingestStats) error {
	st.records += len(b.Messages) + len(b.Rejects)
	if len(b.Rejects) > 0 {
		st.rejected += len(b.Rejects)
		for _, rj := range b.Rejects {
			p.log.Warn("record rejected", "source", rj.Source, "reason", rj.Reason)
		}
		if err := p.db.AddRejects(ctx, b.Rejects); err != nil {
			return err
		}
	}
	res, err := p.eng.Ingest(ctx, b.Messages)
	if err != nil {
		return err
	}
	st.accepted += res.Added
	st.duplicates += res.Duplicates
	st.late += res.Late
	return nil
}

func cmdReplay(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fset := flag.NewFlagSet("replay", flag.ContinueOnError)
	fset.SetOutput(stderr)
	var c common
	c.register(fset)
	fset.BoolVar(&c.final, "final", false, "process the whole journal, its newest second included: no later file will add to it (FILEs may then be omitted)")
	fset.DurationVar(&c.lateness, "lateness", 0, "how much older than the newest journaled message a message of the next replay may be and still be processed in order")
	fset.Usage = func() {
		fmt.Fprintln(stderr, "usage: statscache replay [flags] FILE...\n\nJournals the bus messages in each FILE (JSON Lines of datagrepper /raw records,\nor JSON documents holding raw_messages), runs every model over the journal and\nprints a summary. Replaying the same file again changes nothing.\n\nThe models stop short of the newest second of the journal (and --lateness\nbefore it), which the next replay of the following files processes, so that\nreplaying consecutive files one after the other gives the same tables as\nreplaying them together; --final processes it.\n\nFlags:")
		fset.PrintDefaults()
	}
	if err := fset.Parse(args); err != nil {
		return 2
	}
	if err := c.validate(); err != nil {
		fmt.Fprintln(stderr, "statscache replay:", err)
		return 2
	}
	if c.lateness < 0 {
		fmt.Fprintln(stderr, "statscache replay: --lateness must not be negative")
		return 2
	}
	if fset.NArg() == 0 && !c.final {
		fmt.Fprintln(stderr, "statscache replay: no input files")
		fset.Usage()
		return 2
	}
	log, err := newLogger(stderr, c.logLevel, c.logFormat)
	if err != nil {
		fmt.Fprintln(stderr, "statscache replay:", err)
		return 2
	}
	if c.cpuProfile != "" {
		f, err := os.Create(c.cpuProfile)
		if err != nil {
			fmt.Fprintln(stderr, "statscache replay:", err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(stderr, "statscache replay:", err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}
	if err := replay(ctx, &c, fset.Args(), false, log, stdout, stderr); err != nil {
		fmt.Fprintln(stderr, "statscache replay:", err)
		return 1
	}
	return 0
}

// replay journals files (and, with embedded, the bundled sample), runs
// the models to the end of the journal and prints the summary.
func replay(ctx context.Context, c *common, files []string, embedded bool, log *slog.Logger, stdout, stderr io.Writer) error {
	p, err := openPipeline(ctx, c, log, stderr)
	if err != nil {
		return err
	}
	defer p.db.Close()
	start := time.Now()
	var st ingestStats
	ingestErr := func(err error) error {
		if errors.Is(err, context.Canceled) {
			return nil
		}
		return err
	}
	if embedded {
		f, err := scripts.FS.Open(scripts.SamplePath)
		if err != nil {
			return fmt.Errorf("bundled sample: %w", err)
		}
		err = p.ingest(ctx, "sample:"+scripts.SamplePath, f, c.limits(), &st)
		f.Close()
		if err := ingestErr(err); err != nil {
			return err
		}
	}
	for _, f := range files {
		if err := ingestErr(p.ingestFile(ctx, f, c.limits(), &st)); err != nil {
			return err
		}
		if ctx.Err() != nil {
			break
		}
	}
	ingested := time.Since(start)
	if !c.final {
		if err := p.holdBack(ctx, c.lateness, &st); err != nil {
			return err
		}
	}
	if err := p.eng.Run(ctx, false); err != nil {
		return err
	}
	elapsed := time.Since(start)
	return p.summary(ctx, &st, ingested, elapsed, stdout)
}

// holdBack keeps the models of a replay short of the newest second of the
// journal, and of lateness before it: they process only messages older
// than the newest journaled time minus lateness, rounded down to the
// second. The next replay may bring more messages of that second (a dump
// cut by count rather than by time, or messages of one second written in
// any order), and a model that had committed past them would see them as
// late and never count them. Held back, they are processed in order with
// the next file's messages, so consecutive replays give the tables of one
// replay of everything; --final processes the tail.
func (p *pipeline) holdBack(ctx context.Context, lateness time.Duration, st *ingestStats) error {
	js, err := p.db.JournalStats(ctx)
	if err != nil {
		return err
	}
	if js.Newest.IsZero() {
		return nil
	}
	wm := time.UnixMicro(js.Newest.TimeUS).Add(-lateness).Truncate(time.Second)
	p.eng.SetWatermark(wm)
	st.heldFrom = wm
	// Count what waits (little: a second's worth, or lateness's).
	after := engine.Position{TimeUS: wm.UnixMicro()}
	for {
		msgs, err := p.db.Scan(ctx, after, 1000)
		if err != nil {
			return err
		}
		for _, m := range msgs {
			if m.TimeUS >= wm.UnixMicro() {
				st.held++
			}
		}
		if len(msgs) < 1000 {
			return nil
		}
		after = msgs[len(msgs)-1].Pos()
	}
}

func (p *pipeline) summary(ctx context.Context, st *ingestStats, ingested, elapsed time.Duration, w io.Writer) error {
	fmt.Fprintf(w, "records:    %d\naccepted:   %d\nduplicates: %d\nrejected:   %d\nlate:       %d\n",
		st.records, st.accepted, st.duplicates, st.rejected, st.late)
	if st.held > 0 {
		fmt.Fprintf(w, "held back:  %d (from %s on: the next replay processes them, or run with --final)\n",
			st.held, st.heldFrom.UTC().Format(time.RFC3339))
	}
	fmt.Fprintf(w, "time:       %s (journal %s)\n\n", elapsed.Round(time.Millisecond), ingested.Round(time.Millisecond))
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "MODEL\tPROCESSED\tROWS\tERRORS\tSTATUS")
	for _, s := range p.eng.Stats() {
		rows, err := p.db.CountRows(ctx, s.Ident)
		if err != nil {
			return err
		}
		status := "ok"
		if s.Failed != "" {
			status = "failed: " + s.Failed
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\n", s.Ident, s.Processed, rows, s.Errors, status)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if ctx.Err() != nil {
		fmt.Fprintln(w, "\ninterrupted: committed what was processed; run again to continue")
	}
	return nil
}

// anyService accepts every service name: check validates scripts, not a
// deployment.
type anyService struct{}

func (anyService) Has(string) bool { return true }

func (anyService) Do(context.Context, string, *luaapi.HTTPRequest) (*luaapi.HTTPResponse, error) {
	return nil, errors.New("statscache check calls no service")
}

func cmdCheck(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fset := flag.NewFlagSet("check", flag.ContinueOnError)
	fset.SetOutput(stderr)
	dir := fset.String("scripts", defaultScripts, "`directory` of Lua models")
	var c common
	fset.Var(&c.services, "service", "`name=URL` of a service work functions call; with none given, any service a script declares is accepted")
	if err := fset.Parse(args); err != nil {
		return 2
	}
	c.scripts = *dir
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	opts := c.luaOptions(log)
	if len(c.services.urls) == 0 {
		// Checking scripts needs no deployment: their services are listed
		// for the operator to configure.
		opts.Services = anyService{}
	}
	models, bad := loadModels(c.scripts, opts, stderr)
	tw := tabwriter.NewWriter(stdout, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "MODEL\tTABLE\tKEY\tSERVICES\tSCRIPT")
	for _, m := range models {
		s := m.Spec()
		svc := strings.Join(m.Services(), ",")
		if svc == "" {
			svc = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%v\t%s\t%s\n", s.Ident, s.Table.Name, s.Table.Key, svc, s.Script)
	}
	tw.Flush()
	if bad > 0 {
		fmt.Fprintf(stderr, "%d script(s) failed to load\n", bad)
		return 1
	}
	if len(models) == 0 {
		fmt.Fprintf(stderr, "no models in %s\n", *dir)
		return 1
	}
	return 0
}
