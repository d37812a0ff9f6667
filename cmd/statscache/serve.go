package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"statscache/engine/sqlstore"
	"statscache/web"
)

func cmdServe(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fset := flag.NewFlagSet("serve", flag.ContinueOnError)
	fset.SetOutput(stderr)
	db := fset.String("db", defaultDB, "SQLite database `path`")
	listen := fset.String("listen", defaultListen, "`address` to serve the API on")
	logLevel := fset.String("log-level", "info", "log level: debug, info, warn or error")
	logFormat := fset.String("log-format", "text", "log format: text or json")
	if err := fset.Parse(args); err != nil {
		return 2
	}
	log, err := newLogger(stderr, *logLevel, *logFormat)
	if err != nil {
		fmt.Fprintln(stderr, "statscache serve:", err)
		return 2
	}
	if err := serve(ctx, *db, *listen, log, stdout); err != nil {
		fmt.Fprintln(stderr, "statscache serve:", err)
		return 1
	}
	return 0
}

// serve runs the API over the database until ctx ends. It only reads: a
// replay or the daemon can write the same file meanwhile.
func serve(ctx context.Context, path, listen string, log *slog.Logger, stdout io.Writer) error {
	db, err := sqlstore.Open(ctx, path, sqlstore.Options{})
	if err != nil {
		return err
	}
	defer db.Close()
	srv := web.New(db, log)
	if err := srv.Open(listen); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "serving the API of %s on http://%s/api/\n", path, srv.Addr())
	<-ctx.Done()
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Close(shutdown); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

func cmdDemo(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fset := flag.NewFlagSet("demo", flag.ContinueOnError)
	fset.SetOutput(stderr)
	var c common
	c.register(fset)
	fset.Lookup("db").DefValue = "./statscache-demo.db"
	c.db = "./statscache-demo.db"
	fset.Lookup("scripts").DefValue = "embedded"
	c.scripts = "embedded"
	listen := fset.String("listen", defaultListen, "`address` to serve the API on")
	fset.Usage = func() {
		fmt.Fprintln(stderr, "usage: statscache demo [flags]\n\nReplays the bundled sample of real bus messages through the shipped models\n(no network needed), then serves the API until interrupted.\n\nFlags:")
		fset.PrintDefaults()
	}
	if err := fset.Parse(args); err != nil {
		return 2
	}
	if err := c.validate(); err != nil {
		fmt.Fprintln(stderr, "statscache demo:", err)
		return 2
	}
	log, err := newLogger(stderr, c.logLevel, c.logFormat)
	if err != nil {
		fmt.Fprintln(stderr, "statscache demo:", err)
		return 2
	}
	if err := replay(ctx, &c, fset.Args(), true, log, stdout, stderr); err != nil {
		fmt.Fprintln(stderr, "statscache demo:", err)
		return 1
	}
	if ctx.Err() != nil {
		return 0
	}
	fmt.Fprintln(stdout)
	if err := serve(ctx, c.db, *listen, log, stdout); err != nil {
		fmt.Fprintln(stderr, "statscache demo:", err)
		return 1
	}
	return 0
}
