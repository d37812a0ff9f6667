package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/BurntSushi/toml"

	"statscache/engine"
	"statscache/engine/amqp"
	"statscache/engine/cluster"
)

// listFlag is a repeatable string flag.
type listFlag struct {
	vals []string
	set  bool
}

func (l *listFlag) String() string { return strings.Join(l.vals, ",") }
func (l *listFlag) Set(v string) error {
	if !l.set { // the first explicit value replaces the default
		l.vals, l.set = nil, true
	}
	l.vals = append(l.vals, v)
	return nil
}

// parseEpoch reads --epoch: RFC 3339 or Unix seconds.
func parseEpoch(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		return time.UnixMicro(int64(f * 1e6)).UTC(), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("--epoch %q: want RFC 3339 (2015-08-08T00:00:00Z) or Unix seconds", s)
	}
	return t.UTC(), nil
}

// daemonFlags registers the flags of "run" (and "demo").
func daemonFlags(fset *flag.FlagSet, cfg *daemonConfig, buses, topics *listFlag, epoch *string) {
	cfg.common.register(fset)
	fset.StringVar(&cfg.listen, "listen", defaultListen, "`address` of the API, portal and /metrics")
	fset.Var(buses, "bus", "the live bus: an AMQP `URL` of fedora-messaging (amqp://, amqps://user:password@host/vhost), or fedmsg ZeroMQ endpoints (tcp://, ipc://; repeatable); \"none\": no bus")
	fset.Var(topics, "topic", "topic `prefix` to subscribe to (repeatable; default: every topic); over AMQP org.fedoraproject.prod. binds org.fedoraproject.prod.#")
	registerAMQP(fset, &cfg.amqp)
	fset.StringVar(&cfg.datagrepper, "datagrepper", "", "datagrepper base `URL` (the client appends /raw), e.g. https://apps.fedoraproject.org/datagrepper; empty: no gap filling")
	fset.StringVar(epoch, "epoch", "", "where the history of a new model starts: RFC 3339 or Unix seconds (default: one hour before the first start)")
	fset.DurationVar(&cfg.settle, "settle", 2*time.Minute, "how long the archive may lag the bus")
	fset.DurationVar(&cfg.lateness, "lateness", 3*time.Second, "how late the bus may deliver a message and still have it processed in order")
	fset.DurationVar(&cfg.verify, "verify", time.Minute, "how often the spans the bus delivered are checked against the archive (once --settle old)")
	fset.IntVar(&cfg.concurrency, "archive-concurrency", 2, "archive windows fetched at once")
	fset.DurationVar(&cfg.lease, "lease", cluster.DefaultLease, "with a PostgreSQL --db shared by several instances: how long a model's lease lasts without renewal")
	fset.StringVar(&cfg.instance, "instance", "", "with a PostgreSQL --db: this instance's name among those sharing it (default: host-pid-random)")
	fset.StringVar(&cfg.pidfile, "pidfile", "", "write the process id to this `file` (default: DB.pid), for \"statscache reload\"")
}

// applyConfig sets, from a TOML file, every flag not given on the command
// line. Keys are the flag names; lists give repeatable flags.
func applyConfig(fset *flag.FlagSet, path string) error {
	if path == "" {
		return nil
	}
	var raw map[string]any
	if _, err := toml.DecodeFile(path, &raw); err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	given := map[string]bool{}
	fset.Visit(func(f *flag.Flag) { given[f.Name] = true })
	// [services] name = "URL" is the table form of --service name=URL.
	if svc, ok := raw["services"].(map[string]any); ok && fset.Lookup("service") != nil {
		delete(raw, "services")
		if !given["service"] {
			for name, u := range svc {
				if err := fset.Set("service", fmt.Sprintf("%s=%v", name, u)); err != nil {
					return fmt.Errorf("config %s: services: %w", path, err)
				}
			}
		}
	}
	for k, v := range raw {
		f := fset.Lookup(k)
		if f == nil || k == "config" {
			return fmt.Errorf("config %s: unknown setting %q", path, k)
		}
		if given[k] {
			continue
		}
		vals := []any{v}
		if l, ok := v.([]any); ok {
			vals = l
		}
		for _, x := range vals {
			if err := fset.Set(k, fmt.Sprint(x)); err != nil {
				return fmt.Errorf("config %s: %s: %w", path, k, err)
			}
		}
	}
	return nil
}

func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fset := flag.NewFlagSet("run", flag.ContinueOnError)
	fset.SetOutput(stderr)
	var cfg daemonConfig
	buses := &listFlag{vals: []string{amqp.FedoraURL}}
	topics := &listFlag{}
	var epoch, config string
	daemonFlags(fset, &cfg, buses, topics, &epoch)
	fset.StringVar(&config, "config", "", "TOML `file` of settings named like the flags (flags win)")
	fset.Usage = func() {
		fmt.Fprintln(stderr, "usage: statscache run [flags]\n\nThe daemon: subscribes to the bus, fills gaps from datagrepper, runs every\nmodel and serves the API, portal and /metrics. SIGHUP reloads the scripts;\nSIGINT or SIGTERM drain and commit, a second one exits at once.\n\nThe bus is Fedora's: fedora-messaging over AMQP, by default from Fedora's\npublic broker "+amqp.FedoraURL+" with the\nCA, certificate and key the fedora-messaging package installs as\n"+amqp.FedoraCA+", "+amqp.FedoraCert+" and\n"+amqp.FedoraKey+". A durable queue named once (kept in the\ndatabase) holds what is published while the daemon is down, for up to an\nhour on Fedora's broker; the archive (--datagrepper) fills the rest.\nZeroMQ endpoints (tcp://) follow a fedmsg bus, as Fedora's was until 2025.\n\nFlags:")
		fset.PrintDefaults()
	}
	if err := fset.Parse(args); err != nil {
		return 2
	}
	if err := applyConfig(fset, config); err != nil {
		fmt.Fprintln(stderr, "statscache run:", err)
		return 2
	}
	cfg.buses, cfg.topics = buses.vals, topics.vals
	if _, err := transport(cfg.buses); err != nil {
		fmt.Fprintln(stderr, "statscache run:", err)
		return 2
	}
	if err := checkFedoraBroker(cfg.buses, &cfg.amqp); err != nil {
		fmt.Fprintln(stderr, "statscache run:", err)
		return 2
	}
	return runDaemon(ctx, cfg, epoch, stdout, stderr)
}

func runDaemon(ctx context.Context, cfg daemonConfig, epoch string, stdout, stderr io.Writer) int {
	var err error
	if cfg.epoch, err = parseEpoch(epoch); err != nil {
		fmt.Fprintln(stderr, "statscache run:", err)
		return 2
	}
	if err := cfg.validate(); err != nil {
		fmt.Fprintln(stderr, "statscache run:", err)
		return 2
	}
	if cfg.settle < 0 || cfg.lateness < 0 || cfg.concurrency < 1 {
		fmt.Fprintln(stderr, "statscache run: --settle and --lateness must not be negative, --archive-concurrency at least 1")
		return 2
	}
	if cfg.margin == 0 {
		cfg.margin = 5 * time.Second
	}
	if f, ok := stderr.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			cfg.progress = true
		}
	}
	log, err := newLogger(stderr, cfg.logLevel, cfg.logFormat)
	if err != nil {
		fmt.Fprintln(stderr, "statscache run:", err)
		return 2
	}
	if cfg.lateness < 1500*time.Millisecond && len(cfg.buses) > 0 && cfg.buses[0] != "none" {
		log.Warn("--lateness is under 1.5s: fedmsg timestamps are whole seconds, so on-time messages may be counted late", "lateness", cfg.lateness)
	}
	// The drains of what the stop does not cut short at once count from
	// the signal (see engine.WithDrain).
	ctx = engine.WithStopClock(ctx)
	d, err := newDaemon(ctx, cfg, log, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "statscache run:", err)
		return 1
	}
	pidfile := cfg.pidfile
	if pidfile == "" {
		pidfile = defaultPidfile(cfg.db)
	}
	if err := os.WriteFile(pidfile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		log.Warn("no pid file: statscache reload will not find this daemon", "err", err)
	} else {
		defer os.Remove(pidfile)
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-hup:
				d.hup(ctx)
			case <-ctx.Done():
				return
			}
		}
	}()
	if err := d.run(ctx, stdout); err != nil {
		fmt.Fprintln(stderr, "statscache run:", err)
		return 1
	}
	return 0
}

// cmdReload signals the running daemon to reload its scripts.
func cmdReload(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fset := flag.NewFlagSet("reload", flag.ContinueOnError)
	fset.SetOutput(stderr)
	db := fset.String("db", defaultDB, "the daemon's database `path` or PostgreSQL URL")
	pidfile := fset.String("pidfile", "", "the daemon's pid `file` (default: DB.pid)")
	if err := fset.Parse(args); err != nil {
		return 2
	}
	if *pidfile == "" {
		*pidfile = defaultPidfile(*db)
	}
	b, err := os.ReadFile(*pidfile)
	if err != nil {
		fmt.Fprintf(stderr, "statscache reload: is the daemon running? %v\n", err)
		return 1
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		fmt.Fprintf(stderr, "statscache reload: %s does not hold a process id\n", *pidfile)
		return 1
	}
	if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
		if errors.Is(err, syscall.ESRCH) {
			fmt.Fprintf(stderr, "statscache reload: no process %d (stale %s)\n", pid, *pidfile)
		} else {
			fmt.Fprintf(stderr, "statscache reload: signal %d: %v\n", pid, err)
		}
		return 1
	}
	fmt.Fprintf(stdout, "asked statscache (pid %d) to reload its scripts; see its log or /status\n", pid)
	return 0
}
