// Command statscache keeps statistics about every message that crossed the
// Fedora message bus. It is the only package that wires the engine, the Lua
// models, the SQLite store and the web API together.
//
//	statscache run    [flags]                               the daemon: bus, archive, models, API
//	statscache reload [--db PATH]                          make the daemon reload its scripts
//	statscache replay [--db PATH] [--scripts DIR] FILE...   journal and process saved messages
//	statscache serve  [--db PATH] [--listen ADDR]           serve the REST API
//	statscache check  [--scripts DIR]                       validate the scripts
//	statscache test   [--scripts DIR]                       run the scripts against their examples
//	statscache demo   [--db PATH] [--listen ADDR]           replay the bundled sample, then serve
//	statscache meta   [--scripts DIR] FILE...               print fedmsg.meta helpers for messages
//	statscache migrate --from FILE --to postgres://...       copy a SQLite database to PostgreSQL
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

const usage = `statscache keeps statistics about every message that crossed the Fedora bus.

Usage:
  statscache run    [--bus EP] [--datagrepper URL] ...      the daemon: live bus, gap filling, API
  statscache reload [--db PATH]                            make the running daemon reload its scripts
  statscache replay [--db PATH] [--scripts DIR] FILE...   journal and process saved bus messages
  statscache serve  [--db PATH] [--listen ADDR]           serve the REST API
  statscache check  [--scripts DIR]                       load and validate every script
  statscache test   [--scripts DIR] [--run REGEXP] [-v]   run the scripts against their examples (no database)
  statscache demo   [--db PATH] [--listen ADDR]           replay the bundled sample, then serve
  statscache meta   [--scripts DIR] FILE...               print the fedmsg.meta helpers of messages
  statscache migrate --from FILE --to postgres://... [--replace]   copy a SQLite database to PostgreSQL

Run "statscache COMMAND -h" for the flags of a command.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run dispatches a command line and returns the exit status, so tests can
// run the whole program in-process.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, usage)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	// The first SIGINT or SIGTERM cancels ctx: commands drain and commit.
	// stop() then restores the default handlers, so a second one kills.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		stop()
	}()
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "run":
		return cmdRun(ctx, rest, stdout, stderr)
	case "reload":
		return cmdReload(ctx, rest, stdout, stderr)
	case "replay":
		return cmdReplay(ctx, rest, stdout, stderr)
	case "serve":
		return cmdServe(ctx, rest, stdout, stderr)
	case "check":
		return cmdCheck(ctx, rest, stdout, stderr)
	case "test":
		return runTest(rest, stdout, stderr)
	case "demo":
		return cmdDemo(ctx, rest, stdout, stderr)
	case "meta":
		return runMeta(rest, stdout, stderr)
	case "migrate":
		return cmdMigrate(ctx, rest, stdout, stderr)
	}
	fmt.Fprintf(stderr, "statscache: unknown command %q\n\n%s", cmd, usage)
	return 2
}

// newLogger builds the process logger: text or JSON on stderr.
func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch strings.ToLower(format) {
	case "text", "":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}
