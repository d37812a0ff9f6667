package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"statscache/web"
)

func cmdServe(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fset := flag.NewFlagSet("serve", flag.ContinueOnError)
	fset.SetOutput(stderr)
	db := fset.String("db", defaultDB, "SQLite database `path`, or a PostgreSQL URL (a read replica will do)")
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
	db, err := openStore(ctx, path, storeOptions{readOnly: true})
	if err != nil {
		return err
	}
	defer db.Close()
	srv := web.New(db, log)
	if err := srv.Open(listen); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "serving the API of %s on http://%s/api/\n", dbName(path), srv.Addr())
	<-ctx.Done()
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Close(shutdown); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}
