package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"regexp"

	"statscache/luaapi/scripttest"
)

// runTest implements "statscache test [--scripts DIR] [--run REGEXP] [-v]":
// every script of DIR runs against the example messages of
// DIR/examples/<script>.jsonl and its rows are compared with
// DIR/examples/<script>.want.json, with no database and no network (see
// package scripttest for the format). It prints one line per model and a
// diff for each failure, and returns 1 when anything failed, 2 for bad
// usage, 0 otherwise.
func runTest(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("scripts", "./scripts", "`directory` of Lua models; examples are in DIR/examples")
	run := fs.String("run", "", "test only the models whose ident or script file name matches this `regexp`")
	verbose := fs.Bool("v", false, "also print the rows of the models that pass")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: statscache test [--scripts DIR] [--run REGEXP] [-v]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return 2
	}
	opts := scripttest.Options{Logger: slog.New(slog.DiscardHandler)}
	if *run != "" {
		re, err := regexp.Compile(*run)
		if err != nil {
			fmt.Fprintf(stderr, "statscache test: --run: %v\n", err)
			return 2
		}
		opts.Run = re
	}
	results, err := scripttest.RunDir(context.Background(), *dir, opts)
	if err != nil {
		fmt.Fprintln(stderr, "statscache test:", err)
		return 1
	}
	if len(results) == 0 {
		fmt.Fprintf(stderr, "statscache test: no scripts in %s match\n", *dir)
		return 1
	}
	if scripttest.Report(stdout, results, *verbose) {
		return 1
	}
	return 0
}
