// Package scripttest runs Lua models offline against example messages and
// the rows they should produce: no database, no network. It is what
// "statscache test" and the Go tests of the shipped scripts run.
//
// # Example format
//
// For a script DIR/foo.lua, the examples live in DIR/examples/:
//
//   - foo.jsonl: the input messages, one datagrepper /raw record per line
//     ({"msg_id", "topic", "timestamp", "msg"}), exactly what "statscache
//     replay" reads (/v2 records, fedmsg envelopes and saved datagrepper
//     pages work too). A record that cannot be decoded fails the script,
//     naming its file and line. The order of the lines does not matter: the
//     messages are journalled and processed in journal order (time, then
//     dedupe key), and duplicates are dropped, as in the daemon.
//
//   - foo.want.json: the expected rows of every model the script declares
//     (one per interval), by ident:
//
//     {"volume-1s": [{"timestamp": 1439121601, "volume": 2}],
//     "volume-1m": [{"timestamp": 1439121660, "volume": 2}]}
//
//     Every row names every column of the table (null for NULL). Rows are
//     compared as a set, matched on the row key; numbers are compared by
//     value (1439121660 equals 1439121660.0), json columns are compared as
//     JSON values. A model of the script missing from the file fails (write
//     "ident": [] for a model that should write nothing), and so does an
//     ident the script does not declare.
//
//   - foo.services.json: for a script with a work queue, the recorded
//     answers of the HTTP services its work function calls (see Fixtures).
//
// A script with neither file has no examples: it is reported, not failed.
//
// # How a script is run
//
// The script is loaded with luaapi (with the fedmsg.meta rules of DIR/meta
// when that folder exists), and its models are run by the real
// engine.Engine over Store, an in-memory engine.Store, twice: once with
// every message in one batch, and once committing after every message with
// a restart (fresh Lua states over the committed rows and state) half way.
// The first run's rows are compared with the expected rows; the second run
// must give the same rows, or the model keeps something in memory across
// commits that a restart loses. A process error on any message, or a model
// the engine stops, fails the model. A declared backlog is ignored, so
// examples may be old.
package scripttest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"statscache/engine"
	"statscache/engine/filesource"
	"statscache/luaapi"
	"statscache/luaapi/meta"
	"statscache/schema"
)

// Options tune a run.
type Options struct {
	// Run selects the models whose ident, or whose script's file name,
	// matches; nil selects every model.
	Run *regexp.Regexp
	// Timeout bounds the run of one script (default one minute).
	Timeout time.Duration
	// Logger receives the engine's and the scripts' logs (default none).
	Logger *slog.Logger
}

// ScriptResult is the outcome for one script.
type ScriptResult struct {
	Script string // the script's path
	// Err fails the whole script: it did not load (the error names the
	// file and line), or its example files are unreadable or malformed.
	Err error
	// NoExamples is set when the script has no example files.
	NoExamples bool
	Messages   int // example messages read
	Models     []*ModelResult
}

// Failed reports whether the script or one of its models failed.
func (r *ScriptResult) Failed() bool {
	if r.Err != nil {
		return true
	}
	for _, m := range r.Models {
		if m.Failed() {
			return true
		}
	}
	return false
}

// ModelResult is the outcome for one model (one interval of a script).
type ModelResult struct {
	Ident string
	Table schema.Table
	// Problems are the reasons the model failed, one per line: rows
	// missing, unexpected or changed, process errors, a stopped model.
	Problems []string
	// Rows are the rows the model wrote, ordered by timestamp then key.
	Rows []engine.Row
	// NoWant is set when the want file does not list the model.
	NoWant bool
}

// Failed reports whether the model failed.
func (m *ModelResult) Failed() bool { return len(m.Problems) > 0 }

// ExamplePaths returns where the examples of a script live.
func ExamplePaths(script string) (input, want string) {
	dir, base := filepath.Split(script)
	base = strings.TrimSuffix(base, ".lua")
	return filepath.Join(dir, "examples", base+".jsonl"), filepath.Join(dir, "examples", base+".want.json")
}

// RunDir tests every *.lua script directly in dir. The error is for a
// directory that cannot be read or fedmsg.meta rules that do not load;
// everything else is in the results.
func RunDir(ctx context.Context, dir string, opts Options) ([]*ScriptResult, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Timeout <= 0 {
		opts.Timeout = time.Minute
	}
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("scripts directory: %w", err)
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.lua"))
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	var lib *meta.Library
	if st, err := os.Stat(filepath.Join(dir, "meta")); err == nil && st.IsDir() {
		if lib, err = meta.Load(filepath.Join(dir, "meta"), opts.Logger); err != nil {
			return nil, fmt.Errorf("fedmsg.meta rules: %w", err)
		}
		defer lib.Close()
	}
	var out []*ScriptResult
	for _, f := range files {
		if r := RunScript(ctx, f, lib, opts); r != nil {
			out = append(out, r)
		}
	}
	return out, nil
}

// RunScript tests one script with its examples; lib is the fedmsg.meta
// rule library (nil when the script uses none). It returns nil when
// opts.Run selects none of the script's models.
func RunScript(ctx context.Context, path string, lib *meta.Library, opts Options) *ScriptResult {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Timeout <= 0 {
		opts.Timeout = time.Minute
	}
	res := &ScriptResult{Script: path}
	svc, err := LoadFixtures(ServicesPath(path))
	if err != nil {
		res.Err = err
		return res
	}
	lopts := luaapi.Options{Logger: opts.Logger, Meta: lib, Services: svc}
	load := func() ([]*luaapi.Model, error) { return luaapi.LoadFile(path, lopts) }
	models, err := load()
	if err != nil {
		if opts.Run != nil && !opts.Run.MatchString(filepath.Base(path)) {
			return nil
		}
		res.Err = err
		return res
	}
	selected := func(ident string) bool {
		return opts.Run == nil || opts.Run.MatchString(ident) || opts.Run.MatchString(filepath.Base(path))
	}
	some := false
	for _, m := range models {
		some = some || selected(m.Spec().Ident)
	}
	if !some {
		return nil
	}
	inPath, wantPath := ExamplePaths(path)
	_, inErr := os.Stat(inPath)
	_, wantErr := os.Stat(wantPath)
	switch {
	case errors.Is(inErr, fs.ErrNotExist) && errors.Is(wantErr, fs.ErrNotExist):
		res.NoExamples = true
		return res
	case errors.Is(inErr, fs.ErrNotExist):
		res.Err = fmt.Errorf("%s exists but %s does not", wantPath, inPath)
		return res
	}
	msgs, err := readMessages(ctx, inPath)
	if err != nil {
		res.Err = err
		return res
	}
	res.Messages = len(msgs)
	var want map[string][]map[string]any
	if wantErr == nil {
		if want, err = readWant(wantPath); err != nil {
			res.Err = err
			return res
		}
		idents := map[string]bool{}
		for _, m := range models {
			idents[m.Spec().Ident] = true
		}
		var unknown []string
		for id := range want {
			if !idents[id] {
				unknown = append(unknown, id)
			}
		}
		if len(unknown) > 0 {
			sort.Strings(unknown)
			res.Err = fmt.Errorf("%s lists %s, which %s does not declare", wantPath, strings.Join(unknown, ", "), path)
			return res
		}
	}

	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	// Run 1: every message in one batch.
	store := NewStore()
	cfg := engine.Config{Logger: opts.Logger, BatchInterval: time.Hour}
	if err := runEngine(ctx, store, models, cfg, msgs); err != nil {
		res.Err = err
		return res
	}
	// Run 2: a commit after every message, and a restart half way.
	store2 := NewStore()
	cfg2 := engine.Config{Logger: opts.Logger, BatchInterval: time.Hour, BatchSize: 1, ScanSize: 1}
	half := len(msgs) / 2
	var run2Err error
	for _, part := range [][]*engine.Message{msgs[:half], msgs[half:]} {
		fresh, err := load()
		if err == nil {
			err = runEngine(ctx, store2, fresh, cfg2, part)
		}
		if err != nil {
			run2Err = err
			break
		}
	}
	if ctx.Err() != nil {
		res.Err = fmt.Errorf("%s: the examples did not finish within %s", path, opts.Timeout)
		return res
	}

	for _, m := range models {
		spec := m.Spec()
		if !selected(spec.Ident) {
			continue
		}
		mr := &ModelResult{Ident: spec.Ident, Table: spec.Table}
		res.Models = append(res.Models, mr)
		rows, err := store.Rows(spec.Ident)
		if err != nil {
			mr.Problems = append(mr.Problems, err.Error())
			continue
		}
		mr.Rows = sortRows(&spec.Table, rows)
		if st, ok := store.Status(spec.Ident); ok && st.Status == "failed" {
			mr.Problems = append(mr.Problems, "the engine stopped the model: "+st.Reason)
		}
		if errs := store.Errors(spec.Ident); len(errs) > 0 {
			mr.Problems = append(mr.Problems, fmt.Sprintf("%d errors in process, work or done, over %d messages:", len(errs), len(msgs)))
			for i, e := range errs {
				if i == 3 {
					mr.Problems = append(mr.Problems, fmt.Sprintf("  ... and %d more", len(errs)-3))
					break
				}
				if e.TimeUS == 0 && strings.HasPrefix(e.MsgID, "work item") {
					mr.Problems = append(mr.Problems, fmt.Sprintf("  %s: %s", e.MsgID, e.Err))
					continue
				}
				mr.Problems = append(mr.Problems, fmt.Sprintf("  message %s (%s): %s", e.MsgID, time.UnixMicro(e.TimeUS).UTC().Format(time.RFC3339Nano), e.Err))
			}
		}
		w, ok := want[spec.Ident]
		switch {
		case want == nil:
			mr.NoWant = true
			mr.Problems = append(mr.Problems, fmt.Sprintf("%s does not exist; the model wrote the rows below", wantPath))
		case !ok:
			mr.NoWant = true
			mr.Problems = append(mr.Problems, fmt.Sprintf("%s has no rows for %s (write %q: [] for none); the model wrote the rows below", wantPath, spec.Ident, spec.Ident))
		default:
			mr.Problems = append(mr.Problems, Diff(&spec.Table, w, rows)...)
		}
		if run2Err != nil {
			mr.Problems = append(mr.Problems, "committing after every message with a restart half way failed: "+run2Err.Error())
			continue
		}
		rows2, err := store2.Rows(spec.Ident)
		if err != nil {
			mr.Problems = append(mr.Problems, err.Error())
			continue
		}
		if d := diffRows(&spec.Table, asWant(rows), rows2); len(d) > 0 {
			mr.Problems = append(mr.Problems, "committing after every message with a restart half way gives other rows (does the model keep in memory what it should keep in state or rows?):")
			for _, l := range d {
				mr.Problems = append(mr.Problems, "  "+l)
			}
		}
	}
	return res
}

// runEngine runs the models over the store until they have processed the
// messages.
func runEngine(ctx context.Context, store *Store, models []*luaapi.Model, cfg engine.Config, msgs []*engine.Message) error {
	e := engine.New(store, cfg)
	for _, m := range models {
		m.Spec().Backlog = 0 // examples may be old
		if err := e.Add(ctx, m); err != nil {
			return err
		}
	}
	if _, err := e.Ingest(ctx, msgs); err != nil {
		return err
	}
	return e.Run(ctx, false)
}

// readMessages reads the example records as "replay" does; a record that
// is rejected is an error naming its file and line.
func readMessages(ctx context.Context, path string) ([]*engine.Message, error) {
	var msgs []*engine.Message
	var rejects []string
	r := filesource.Reader{}
	err := r.ReadFile(ctx, path, func(b filesource.Batch) error {
		for _, rj := range b.Rejects {
			rejects = append(rejects, fmt.Sprintf("%s: %s", rj.Source, rj.Reason))
		}
		msgs = append(msgs, b.Messages...)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(rejects) > 0 {
		return nil, fmt.Errorf("bad example records:\n  %s", strings.Join(rejects, "\n  "))
	}
	if len(msgs) == 0 {
		return nil, fmt.Errorf("%s: no messages", path)
	}
	sort.SliceStable(msgs, func(i, j int) bool { return msgs[i].Pos().Less(msgs[j].Pos()) })
	return msgs, nil
}

// readWant reads a want file, keeping numbers exact.
func readWant(path string) (map[string][]map[string]any, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	d := json.NewDecoder(strings.NewReader(string(b)))
	d.UseNumber()
	var want map[string][]map[string]any
	if err := d.Decode(&want); err != nil {
		return nil, fmt.Errorf("%s: %v (want an object of model ident to a list of rows)", path, err)
	}
	if want == nil {
		want = map[string][]map[string]any{}
	}
	return want, nil
}
