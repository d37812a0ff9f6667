package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"statscache/luaapi/meta"
)

// runMeta implements "statscache meta [--scripts DIR] FILE...": for each
// line of each JSONL file (a message, a datagrepper record or a corpus
// case) it prints one JSON line with the output of every fedmsg.meta
// helper. It returns the exit status.
func runMeta(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("meta", flag.ContinueOnError)
	fs.SetOutput(stderr)
	scripts := fs.String("scripts", "./scripts", "scripts directory; the rules are in DIR/meta")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: statscache meta [--scripts DIR] FILE...")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	lib, err := meta.Load(filepath.Join(*scripts, "meta"), logger)
	if err != nil {
		fmt.Fprintln(stderr, "statscache meta:", err)
		return 1
	}
	defer lib.Close()
	status := 0
	for _, name := range fs.Args() {
		f, err := os.Open(name)
		if err != nil {
			fmt.Fprintln(stderr, "statscache meta:", err)
			status = 1
			continue
		}
		err = meta.RunJSONL(f, stdout, lib)
		f.Close()
		if err != nil {
			fmt.Fprintf(stderr, "statscache meta: %s: %v\n", name, err)
			status = 1
		}
	}
	return status
}
