package luaapi_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"statscache/engine"
	"statscache/luaapi"
)

var quiet = luaapi.Options{Logger: slog.New(slog.DiscardHandler)}

// lines joins script lines, so that a test can name a line by its index.
func lines(ls ...string) []byte { return []byte(strings.Join(ls, "\n") + "\n") }

const decl1m = `model {name = "t", summary = "s", description = "d", interval = "1m", columns = {{name = "k", type = "text", key = true}, {name = "v", type = "json"}}}`

func TestLoadErrors(t *testing.T) {
	decl := `model {name = "x", summary = "s", description = "d", columns = {{name = "n", type = "integer"}}}`
	fns := []string{"function process(msg) end", "function update(db) end"}
	tests := []struct {
		name    string
		src     []byte
		line    int // 0: no line
		wantMsg []string
	}{
		{
			name:    "ErrSyntax",
			src:     lines(decl, "function process(msg)", "  local x = = 1", "end", "function update(db) end"),
			line:    3,
			wantMsg: []string{"syntax error"},
		},
		{
			name:    "ErrUnclosedFunction",
			src:     lines(decl, "function process(msg)", "  if msg then", "end", "function update(db) end"),
			line:    5, // the last line, where the parser notices
			wantMsg: []string{"syntax error", "end of file"},
		},
		{
			name:    "ErrRuntimeTopLevel",
			src:     lines("-- comment", decl, "local t = nil", "t.x = 1", fns[0], fns[1]),
			line:    4,
			wantMsg: []string{"nil"},
		},
		{
			name:    "ErrErrorTopLevel",
			src:     lines(decl, fns[0], fns[1], `error("no config for this model")`),
			line:    4,
			wantMsg: []string{"no config for this model"},
		},
		{
			name:    "ErrNoModel",
			src:     lines(fns[0], fns[1]),
			wantMsg: []string{"no model{...} declaration"},
		},
		{
			name:    "ErrModelTwice",
			src:     lines(decl, decl, fns[0], fns[1]),
			line:    2,
			wantMsg: []string{"declared twice"},
		},
		{
			name:    "ErrNoProcess",
			src:     lines(decl, fns[1]),
			wantMsg: []string{"function process is not defined"},
		},
		{
			name:    "ErrNoUpdate",
			src:     lines(decl, fns[0]),
			wantMsg: []string{"function update is not defined"},
		},
		{
			name:    "ErrProcessNotAFunction",
			src:     lines(decl, "process = 42", fns[1]),
			wantMsg: []string{"function process is not defined", "number"},
		},
		{
			name:    "ErrProcessWithoutArgument",
			src:     lines(decl, fns[1], "function process()", "end"),
			line:    3,
			wantMsg: []string{"process must take one argument"},
		},
		{
			name: "ErrUnknownFieldTypo",
			src: lines(
				"-- sumary of the model, in a comment before the declaration",
				"model {",
				`  name = "x",`,
				`  summary = "s",`,
				`  sumary = "typo",`,
				`  description = "d",`,
				`  columns = {{name = "n", type = "integer"}},`,
				"}", fns[0], fns[1]),
			line:    5,
			wantMsg: []string{`unknown field "sumary"`},
		},
		{
			name: "ErrShadowSeparatorInName",
			src: lines(
				"model {",
				`  name = "volume-1m#0123456789abcdef", summary = "s", description = "d",`,
				`  columns = {{name = "n", type = "integer"}},`,
				"}", fns[0], fns[1]),
			line:    2,
			wantMsg: []string{`name must not contain "#"`},
		},
		{
			name: "ErrUnknownColumnType",
			src: lines(
				"model {",
				`  name = "x", summary = "s", description = "d",`,
				"  columns = {",
				`    {name = "volume", type = "integer"},`,
				`    {name = "count", type = "integr"},`,
				"  },",
				"}", fns[0], fns[1]),
			line:    5,
			wantMsg: []string{`unknown type "integr"`, `"count"`},
		},
		{
			// The bad type is a prefix of a good one on an earlier line.
			name: "ErrUnknownColumnTypePrefix",
			src: lines(
				"model {",
				`  name = "x", summary = "s", description = "d",`,
				"  columns = {",
				`    {name = "volume", type = "integer"},`,
				`    {name = "count", type = "int"},`,
				"  },",
				"}", fns[0], fns[1]),
			line:    5,
			wantMsg: []string{`unknown type "int"`},
		},
		{
			name: "ErrUnknownColumnField",
			src: lines(
				"model {",
				`  name = "x", summary = "s", description = "d",`,
				"  columns = {",
				`    {name = "volume", type = "integer", idx = true},`,
				"  },",
				"}", fns[0], fns[1]),
			line:    4,
			wantMsg: []string{`unknown field "idx"`},
		},
		{
			name: "ErrAggregateOfText",
			src: lines(
				"model {",
				`  name = "x", summary = "s", description = "d",`,
				"  columns = {",
				`    {name = "who", type = "text", aggregate = "sum"},`,
				"  },",
				"}", fns[0], fns[1]),
			line:    4,
			wantMsg: []string{`column "who": aggregate must be`, `got sum`},
		},
		{
			name: "ErrUnknownAggregate",
			src: lines(
				"model {",
				`  name = "x", summary = "s", description = "d",`,
				"  columns = {",
				`    {name = "n", type = "integer", aggregate = "avg"},`,
				"  },",
				"}", fns[0], fns[1]),
			line:    4,
			wantMsg: []string{`column "n": aggregate must be`, `got avg`},
		},
		{
			name: "ErrDeclaresTimestamp",
			src: lines(
				"model {",
				`  name = "x", summary = "s", description = "d",`,
				"  columns = {",
				`    {name = "volume", type = "integer"},`,
				`    {name = "timestamp", type = "real"},`,
				"  },",
				"}", fns[0], fns[1]),
			line:    5,
			wantMsg: []string{`column "timestamp" is always present`},
		},
		{
			name: "ErrDuplicateInterval",
			src: lines(
				"model {",
				`  name = "x", summary = "s", description = "d",`,
				`  intervals = {"1m", "1h", "1m"},`,
				`  columns = {{name = "n", type = "integer"}},`,
				"}", fns[0], fns[1]),
			line:    3,
			wantMsg: []string{"interval 1m is listed twice"},
		},
		{
			name: "ErrBadInterval",
			src: lines(
				"model {",
				`  name = "x", summary = "s", description = "d",`,
				`  columns = {{name = "n", type = "integer"}},`,
				`  interval = "banana",`,
				"}", fns[0], fns[1]),
			line:    4,
			wantMsg: []string{`"banana"`},
		},
		{
			name: "ErrIntervalOrder",
			src: lines(
				"model {",
				`  name = "x", summary = "s", description = "d",`,
				`  columns = {{name = "n", type = "integer"}},`,
				`  intervals = {"1m", "1h1d"},`,
				"}", fns[0], fns[1]),
			line:    4,
			wantMsg: []string{"units must go from days down to seconds"},
		},
		{
			name: "ErrIntervalAndIntervals",
			src: lines(
				"model {",
				`  name = "x", summary = "s", description = "d",`,
				`  columns = {{name = "n", type = "integer"}},`,
				`  interval = "1m",`,
				`  intervals = {"1h"},`,
				"}", fns[0], fns[1]),
			line:    5,
			wantMsg: []string{"not both"},
		},
		{
			name:    "ErrNoSummary",
			src:     lines(`model {name = "x", description = "d", columns = {{name = "n", type = "integer"}}}`, fns[0], fns[1]),
			line:    1,
			wantMsg: []string{"needs a summary"},
		},
		{
			name:    "ErrNoColumns",
			src:     lines(`model {name = "x", summary = "s", description = "d"}`, fns[0], fns[1]),
			line:    1,
			wantMsg: []string{"needs columns"},
		},
		{
			name:    "ErrStateAtLoad",
			src:     lines(decl, `local n = state.get("n")`, fns[0], fns[1]),
			line:    2,
			wantMsg: []string{"state is not available while the script loads"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			models, err := luaapi.LoadSource("models/x.lua", tt.src, quiet)
			if err == nil {
				t.Fatalf("loaded %d models, want an error", len(models))
			}
			var se *luaapi.ScriptError
			if !errors.As(err, &se) {
				t.Fatalf("error %v (%T) is not a *ScriptError", err, err)
			}
			if got, want := se.File, "models/x.lua"; got != want {
				t.Errorf("File = %q, want %q", got, want)
			}
			if got, want := se.Line, tt.line; got != want {
				t.Errorf("Line = %d, want %d (error %q)", got, want, err)
			}
			for _, w := range tt.wantMsg {
				if !strings.Contains(se.Msg, w) {
					t.Errorf("Msg %q, want it to contain %q", se.Msg, w)
				}
			}
			prefix := "models/x.lua: "
			if tt.line > 0 {
				prefix = fmt.Sprintf("models/x.lua:%d: ", tt.line)
			}
			if !strings.HasPrefix(err.Error(), prefix) {
				t.Errorf("error %q, want it to start with %q", err, prefix)
			}
		})
	}
}

func TestLoadSpec(t *testing.T) {
	src := lines(
		"model {",
		`  name = "Volume by Category",`,
		`  summary = "per category",`,
		`  description = [[`,
		`  Messages per category.]],`,
		`  intervals = {"1s", "1m", 3600},`,
		`  topics = {"org.fedoraproject.prod.", "io.pagure.prod."},`,
		`  columns = {`,
		`    {name = "category", type = "text", key = true, index = true},`,
		`    {"volume", "integer", not_null = true, doc = "messages"},`,
		`  },`,
		"}",
		"function process(msg) end",
		"function update(db) end")
	models, err := luaapi.LoadSource("vbc.lua", src, quiet)
	if err != nil {
		t.Fatal(err)
	}
	var idents, tables []string
	for _, m := range models {
		idents = append(idents, m.Spec().Ident)
		tables = append(tables, m.Spec().Table.Name)
	}
	if got, want := idents, []string{"volume-by-category-1s", "volume-by-category-1m", "volume-by-category-1h"}; !reflect.DeepEqual(got, want) {
		t.Errorf("idents %v, want %v", got, want)
	}
	if got, want := tables, []string{"model_volume_by_category_1s", "model_volume_by_category_1m", "model_volume_by_category_1h"}; !reflect.DeepEqual(got, want) {
		t.Errorf("tables %v, want %v", got, want)
	}
	spec := models[1].Spec()
	if got, want := spec.Interval, time.Minute; got != want {
		t.Errorf("Interval = %v, want %v", got, want)
	}
	if got, want := spec.Table.Key, []string{"timestamp", "category"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Key = %v, want %v", got, want)
	}
	var cols []string
	for _, c := range spec.Table.Columns {
		cols = append(cols, fmt.Sprintf("%s %s notnull=%v index=%v", c.Name, c.Type, c.NotNull, c.Index))
	}
	want := []string{"timestamp real notnull=true index=true", "category text notnull=true index=true", "volume integer notnull=true index=false"}
	if !reflect.DeepEqual(cols, want) {
		t.Errorf("columns %v, want %v", cols, want)
	}
	if got, want := spec.Topics, []string{"org.fedoraproject.prod.", "io.pagure.prod."}; !reflect.DeepEqual(got, want) {
		t.Errorf("Topics = %v, want %v", got, want)
	}
	if got, want := spec.Description, "Messages per category."; got != want {
		t.Errorf("Description = %q, want %q", got, want)
	}
	if got, want := spec.Script, "vbc.lua"; got != want {
		t.Errorf("Script = %q, want %q", got, want)
	}
}

func TestLoadDir(t *testing.T) {
	dir := t.TempDir()
	script := func(name string) string {
		return fmt.Sprintf("model {name = %q, summary = \"s\", description = \"d\", interval = \"1m\", columns = {{name = \"n\", type = \"integer\"}}}\nfunction process(msg) end\nfunction update(db) end\n", name)
	}
	files := map[string]string{
		"a.lua":       script("dup"),
		"b.lua":       "\n\n" + script("dup"),
		"c.lua":       script("other"),
		"d.lua":       "model {",
		"notes.txt":   "not a script",
		"lib/lib.lua": "this is not lua at all (",
	}
	for name, src := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	models, errs := luaapi.LoadDir(dir, quiet)
	var got []string
	for _, m := range models {
		got = append(got, m.Spec().Ident+" from "+filepath.Base(m.Spec().Script))
	}
	// Neither script declaring dup-1m wins: both are refused.
	if want := []string{"other-1m from c.lua"}; !reflect.DeepEqual(got, want) {
		t.Errorf("loaded %v, want %v", got, want)
	}
	if len(errs) != 3 {
		t.Fatalf("errors %v, want 3 (d.lua, then a.lua and b.lua)", errs)
	}
	t.Run("ErrDuplicateIdentRefusesBoth", func(t *testing.T) {
		for i, tc := range []struct {
			file, other string
			line        int
		}{{"a.lua", "b.lua:3", 1}, {"b.lua", "a.lua:1", 3}} {
			var se *luaapi.ScriptError
			if !errors.As(errs[1+i], &se) {
				t.Fatalf("error %v is not a *ScriptError", errs[1+i])
			}
			if got, want := se.File, filepath.Join(dir, tc.file); got != want {
				t.Errorf("File = %q, want %q", got, want)
			}
			if got, want := se.Line, tc.line; got != want {
				t.Errorf("%s: Line = %d, want %d", tc.file, got, want)
			}
			if !strings.Contains(se.Msg, `"dup-1m" is also declared by `+filepath.Join(dir, tc.other)) {
				t.Errorf("Msg %q, want it to name the ident and %s", se.Msg, tc.other)
			}
		}
	})
	t.Run("ErrSyntaxInOtherFile", func(t *testing.T) {
		var se *luaapi.ScriptError
		if !errors.As(errs[0], &se) || se.File != filepath.Join(dir, "d.lua") || !strings.Contains(se.Msg, "syntax error") {
			t.Errorf("error %v, want a syntax error in d.lua", errs[0])
		}
	})
	t.Run("ErrNoDirectory", func(t *testing.T) {
		models, errs := luaapi.LoadDir(filepath.Join(dir, "missing"), quiet)
		if len(models) != 0 || len(errs) != 1 {
			t.Errorf("LoadDir of a missing directory: %d models, errors %v; want one error", len(models), errs)
		}
	})
}

// TestSandbox checks that the dangerous globals are gone; require is
// replaced by one limited to the lib folder (TestRequireFromLib).
func TestSandbox(t *testing.T) {
	for _, name := range []string{"os", "io", "debug", "package", "dofile", "loadfile", "load", "loadstring", "module", "collectgarbage", "newproxy"} {
		t.Run("OK"+name, func(t *testing.T) {
			check := fmt.Sprintf(`assert(%s == nil, "%s is reachable")`, name, name)
			src := lines(decl1m, check, "function process(msg) "+check+" end", "function update(db) end")
			models, err := luaapi.LoadSource("sandbox.lua", src, quiet)
			if err != nil {
				t.Fatalf("at load: %v", err)
			}
			m := models[0]
			if err := m.Open(newState()); err != nil {
				t.Fatalf("at open: %v", err)
			}
			defer m.Close()
			if err := m.Process(context.Background(), decode(t, rawRecord("m1", "a.b.c.d", 1, `{}`))); err != nil {
				t.Errorf("in process: %v", err)
			}
		})
	}
	t.Run("OKSafeLibrariesPresent", func(t *testing.T) {
		src := lines(decl1m,
			`assert(string.format and table.insert and math.floor and pairs and ipairs and pcall and tostring and type, "missing")`,
			"function process(msg) end", "function update(db) end")
		if _, err := luaapi.LoadSource("safe.lua", src, quiet); err != nil {
			t.Errorf("safe libraries: %v", err)
		}
	})
}

// fakeState is an in-memory engine.State.
type fakeState map[string]string

func newState() fakeState { return fakeState{} }

// openSource loads the one model of src and opens it over an empty state;
// it is closed when the test ends.
func openSource(t testing.TB, name string, src []byte, opts luaapi.Options) *luaapi.Model {
	t.Helper()
	models, err := luaapi.LoadSource(name, src, opts)
	if err != nil {
		t.Fatal(err)
	}
	m := models[0]
	if err := m.Open(newState()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func (s fakeState) Get(key string) (string, bool, error) { v, ok := s[key]; return v, ok, nil }
func (s fakeState) Set(key, value string)                { s[key] = value }
func (s fakeState) Delete(key string)                    { delete(s, key) }

// recWriter records every write; Get reads rows preloaded by the test,
// keyed by their "k" or "topic" column.
type recWriter struct {
	ops    []string
	rows   []engine.Row
	stored map[string]engine.Row
	failOn string
}

func (w *recWriter) write(kind string, r engine.Row) error {
	if w.failOn != "" && r["topic"] == w.failOn {
		return fmt.Errorf("writer refuses %s", w.failOn)
	}
	w.ops = append(w.ops, kind)
	w.rows = append(w.rows, maps.Clone(r)) // the caller may reuse r (engine.RowWriter)
	return nil
}

func (w *recWriter) Insert(r engine.Row) error { return w.write("insert", r) }
func (w *recWriter) Upsert(r engine.Row) error { return w.write("upsert", r) }
func (w *recWriter) Add(r engine.Row) error    { return w.write("add", r) }
func (w *recWriter) Get(key engine.Row) (engine.Row, error) {
	w.ops = append(w.ops, "get")
	w.rows = append(w.rows, key)
	r, ok := w.stored[fmt.Sprint(key["timestamp"], "/", key["topic"])]
	if !ok {
		return nil, nil
	}
	return r, nil
}

func rawRecord(id, topic string, seconds float64, body string) string {
	return fmt.Sprintf(`{"msg_id": %q, "topic": %q, "timestamp": %v, "msg": %s}`, id, topic, seconds, body)
}

func decode(t *testing.T, rec string) *engine.Message {
	t.Helper()
	var d engine.Decoder
	m, err := d.Decode([]byte(rec))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// runModel loads a script, runs the records through Process and returns
// what one Flush wrote.
func runModel(t *testing.T, src []byte, st engine.State, recs ...string) (*luaapi.Model, *recWriter) {
	t.Helper()
	models, err := luaapi.LoadSource("m.lua", src, quiet)
	if err != nil {
		t.Fatal(err)
	}
	m := models[0]
	if st == nil {
		st = newState()
	}
	if err := m.Open(st); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	for _, rec := range recs {
		if err := m.Process(context.Background(), decode(t, rec)); err != nil {
			t.Fatalf("Process: %v", err)
		}
	}
	w := &recWriter{}
	if err := m.Flush(context.Background(), w); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	return m, w
}

// kv flattens recorded rows of the (timestamp, k, v) shape.
func kv(w *recWriter) []string {
	var out []string
	for i, r := range w.rows {
		out = append(out, fmt.Sprintf("%s %s %v %v", w.ops[i], num(r["timestamp"]), r["k"], r["v"]))
	}
	return out
}

// num prints a number without an exponent.
func num(v any) string {
	if f, ok := v.(float64); ok {
		return strconv.FormatFloat(f, 'f', -1, 64)
	}
	return fmt.Sprint(v)
}

func TestBucket(t *testing.T) {
	src := lines(decl1m,
		"local out = {}",
		"function process(msg)",
		`  out[#out + 1] = {timestamp = bucket(msg.time), k = msg.id .. "/1m"}`,
		`  out[#out + 1] = {timestamp = bucket(msg.time, "1h"), k = msg.id .. "/1h"}`,
		`  out[#out + 1] = {timestamp = bucket(msg.time, 5), k = msg.id .. "/5s"}`,
		`  out[#out + 1] = {timestamp = bucket(msg.time, "1w"), k = msg.id .. "/1w"}`,
		`  out[#out + 1] = {timestamp = bucket(msg.time, "1mo"), k = msg.id .. "/1mo"}`,
		"end",
		"function update(db)",
		`  db:upsert{timestamp = 0, k = "interval", v = interval}`,
		"  for _, r in ipairs(out) do db:upsert(r) end",
		"end")
	_, w := runModel(t, src, nil,
		rawRecord("a", "a.b.c.d", 1439121600.0, "{}"),
		rawRecord("b", "a.b.c.d", 1439121659.9, "{}"),
		rawRecord("c", "a.b.c.d", 1439121660, "{}"),
		rawRecord("d", "a.b.c.d", -0.5, "{}"),
	)
	got := kv(w)
	want := []string{
		"upsert 0 interval 60",
		"upsert 1439121660 a/1m <nil>",
		"upsert 1439125200 a/1h <nil>",
		"upsert 1439121605 a/5s <nil>",
		"upsert 1439164800 a/1w <nil>",  // Sunday 2015-08-09 12:00: Monday 2015-08-10
		"upsert 1441065600 a/1mo <nil>", // 2015-09-01
		"upsert 1439121660 b/1m <nil>",
		"upsert 1439125200 b/1h <nil>",
		"upsert 1439121660 b/5s <nil>",
		"upsert 1439164800 b/1w <nil>",
		"upsert 1441065600 b/1mo <nil>",
		"upsert 1439121720 c/1m <nil>",
		"upsert 1439125200 c/1h <nil>",
		"upsert 1439121665 c/5s <nil>",
		"upsert 1439164800 c/1w <nil>",
		"upsert 1441065600 c/1mo <nil>",
		"upsert 0 d/1m <nil>",
		"upsert 0 d/1h <nil>",
		"upsert 0 d/5s <nil>",
		"upsert 345600 d/1w <nil>", // 1969-12-31 23:59:59.5, a Wednesday: Monday 1970-01-05
		"upsert 0 d/1mo <nil>",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("rows\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestBucketErrors(t *testing.T) {
	tests := []struct {
		name, decl, call, wantErr string
	}{
		{"ErrBadInterval", decl1m, `bucket(msg.time, "banana")`, "bad argument #2"},
		{"ErrZeroInterval", decl1m, `bucket(msg.time, 0)`, "must be positive"},
		{"ErrTwoWeeks", decl1m, `bucket(msg.time, "2w")`, "calendar intervals are 1w"},
		{"ErrNotATime", decl1m, `bucket("soon")`, "bad argument #1"},
		{"ErrNaN", decl1m, `bucket(0/0)`, "finite"},
		{"ErrNoModelInterval", `model {name = "t", summary = "s", description = "d", columns = {{name = "n", type = "integer"}}}`, `bucket(msg.time)`, "declares no interval"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := lines(tt.decl, "function process(msg)", "  local b = "+tt.call, "end", "function update(db) end")
			m := openSource(t, "m.lua", src, quiet)
			err := m.Process(context.Background(), decode(t, rawRecord("a", "a.b.c.d", 60, "{}")))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "m.lua:3:") {
				t.Errorf("Process: %v, want an error at m.lua:3 containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestMessageFields(t *testing.T) {
	src := lines(decl1m,
		"local rows = {}",
		"function process(msg)",
		`  local r = {before = rawget(msg, "body") == nil, stale = msg.extra}`,
		"  r.owner = msg.body.owner",
		"  r.extra = msg.body.extra",
		`  r.after = rawget(msg, "body") ~= nil`,
		"  r.same = msg.msg == msg.body",
		`  r.sent = msg.headers["sent-at"]`,
		"  r.noheaders = next(msg.headers) == nil",
		"  r.topic, r.category, r.key, r.time = msg.topic, msg.category, msg.key, msg.time",
		"  rows[#rows + 1] = {timestamp = 0, k = msg.id, v = r}",
		"end",
		"function update(db)",
		"  for _, r in ipairs(rows) do db:upsert(r) end",
		"end")
	_, w := runModel(t, src, nil,
		rawRecord("2015-m1", "org.fedoraproject.prod.buildsys.tag", 1439121600.5, `{"owner": "alice", "extra": "only-in-1"}`),
		`{"id": "m2", "topic": "org.fedoraproject.prod.bodhi.update.comment", "body": {"owner": "bob"}, "headers": {"sent-at": "2018-11-18T10:11:41+00:00"}}`,
		rawRecord("m3", "short.topic", 2, `{"extra": null}`),
	)
	want := []map[string]any{
		{
			"before": true, "after": true, "same": true, "noheaders": true,
			"owner": "alice", "extra": "only-in-1",
			"topic": "org.fedoraproject.prod.buildsys.tag", "category": "buildsys", "key": "m1", "time": 1439121600.5,
		},
		{
			"before": true, "after": true, "same": true, "noheaders": false,
			"owner": "bob", "sent": "2018-11-18T10:11:41+00:00",
			"topic": "org.fedoraproject.prod.bodhi.update.comment", "category": "bodhi", "key": "m2", "time": 1542535901.0,
		},
		{
			"before": true, "after": true, "same": true, "noheaders": true,
			"topic": "short.topic", "category": "Unclassified", "key": "m3", "time": 2.0,
		},
	}
	if len(w.rows) != len(want) {
		t.Fatalf("%d rows, want %d", len(w.rows), len(want))
	}
	for i, r := range w.rows {
		got := r["v"]
		if !reflect.DeepEqual(got, want[i]) {
			t.Errorf("message %d (%v): got %v\nwant %v", i+1, r["k"], got, want[i])
		}
	}
}

func TestProcessError(t *testing.T) {
	src := lines(decl1m,
		"local n = 0",
		"function process(msg)",
		`  if msg.topic:find("bad", 1, true) then`,
		`    error("bad topic " .. msg.topic)`,
		"  end",
		`  if msg.topic:find("nil", 1, true) then`,
		"    local t = nil",
		"    return t.field",
		"  end",
		"  n = n + 1",
		"end",
		"function update(db)",
		`  db:upsert{timestamp = 0, k = "n", v = n}`,
		"  if n > 1 then",
		`    error("update saw " .. n)`,
		"  end",
		"end")
	m := openSource(t, "m.lua", src, quiet)
	ctx := context.Background()
	tests := []struct {
		name    string
		topic   string
		wantErr []string // empty: no error
	}{
		{"OKGood", "a.b.c.good", nil},
		{"ErrRaised", "a.b.c.bad", []string{"m.lua:5:", "bad topic a.b.c.bad"}},
		{"ErrRuntime", "a.b.c.nil", []string{"m.lua:9:", "nil"}},
		{"OKAfterErrors", "a.b.c.fine", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := m.Process(ctx, decode(t, rawRecord("x", tt.topic, 1, "{}")))
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatalf("Process: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Process succeeded, want an error")
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q, want it to contain %q", err, w)
				}
			}
			var tb interface{ Traceback() string }
			if !errors.As(err, &tb) {
				t.Fatalf("error %T has no Traceback", err)
			}
			if tr := tb.Traceback(); !strings.Contains(tr, "m.lua") {
				t.Errorf("traceback %q does not show the script", tr)
			}
		})
	}
	t.Run("ErrUpdate", func(t *testing.T) {
		w := &recWriter{}
		err := m.Flush(ctx, w)
		if err == nil {
			t.Fatal("Flush succeeded, want an error")
		}
		for _, want := range []string{"t-1m", "update", "m.lua:16:", "update saw 2"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q, want it to contain %q", err, want)
			}
		}
		var tb interface{ Traceback() string }
		if !errors.As(err, &tb) || tb.Traceback() == "" {
			t.Errorf("update error %v has no traceback", err)
		}
	})
}

func TestCounter(t *testing.T) {
	src := lines(decl1m,
		"local c1, c2, c3 = counter(), counter(), counter()",
		"function process(msg)",
		"  c1:inc(msg.category)",
		`  c2:add(msg.category, "bytes", 2.5)`,
		`  c3:inc(1) c3:inc("1") c3:inc(true)`,
		"end",
		"function update(db)",
		"  local seq = 0",
		"  local function put(k, v) seq = seq + 1; db:upsert{timestamp = seq, k = k, v = v} end",
		`  put("len", {c1:len(), c2:len(), c3:len()})`,
		`  put("get", c2:get("buildsys", "bytes"))`,
		`  put("get0", c2:get("nope", "bytes"))`,
		`  for cat, n in c1:drain() do put("c1", {cat, n}) end`,
		`  for cat, what, n in c2:drain() do put("c2", {cat, what, n}) end`,
		`  for k, n in c3:drain() do put("c3", {type(k) .. ":" .. tostring(k), n}) end`,
		`  put("after", c1:len() + c2:len() + c3:len())`,
		"end")
	m, w := runModel(t, src, nil,
		rawRecord("m1", "org.fedoraproject.prod.buildsys.tag", 1, "{}"),
		rawRecord("m2", "org.fedoraproject.prod.bodhi.update", 2, "{}"),
		rawRecord("m3", "org.fedoraproject.prod.buildsys.build", 3, "{}"),
	)
	got := kv(w)
	want := []string{
		"upsert 1 len [2 2 3]",
		"upsert 2 get 5",
		"upsert 3 get0 0",
		"upsert 4 c1 [buildsys 2]",
		"upsert 5 c1 [bodhi 1]",
		"upsert 6 c2 [buildsys bytes 5]",
		"upsert 7 c2 [bodhi bytes 2.5]",
		"upsert 8 c3 [number:1 3]",
		"upsert 9 c3 [string:1 3]",
		"upsert 10 c3 [boolean:true 3]",
		"upsert 11 after 0",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("first flush\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// A drained counter starts empty.
	w2 := &recWriter{}
	if err := m.Flush(context.Background(), w2); err != nil {
		t.Fatal(err)
	}
	got, want = kv(w2), []string{"upsert 1 len [0 0 0]", "upsert 2 get 0", "upsert 3 get0 0", "upsert 4 after 0"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("second flush\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestCounterErrors(t *testing.T) {
	tests := []struct {
		name, call, wantErr string
	}{
		{"ErrTooManyKeys", `c:inc(1, 2, 3, 4, 5)`, "want 1 to 4 key values, got 5"},
		{"ErrNoKey", `c:inc()`, "want 1 to 4 key values, got 0"},
		{"ErrTableKey", `c:inc({})`, "counter keys must be strings, numbers or booleans"},
		{"ErrNaNKey", `c:inc(0/0)`, "key is NaN"},
		{"ErrNotANumber", `c:add("k", "lots")`, "number expected"},
		{"ErrDotCall", `c.inc("k")`, "userdata expected"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := lines(decl1m, "local c = counter()", "function process(msg)", "  "+tt.call, "end", "function update(db) end")
			m := openSource(t, "m.lua", src, quiet)
			err := m.Process(context.Background(), decode(t, rawRecord("a", "a.b.c.d", 1, "{}")))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "m.lua:4:") {
				t.Errorf("Process: %v, want an error at m.lua:4 containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestState(t *testing.T) {
	src := lines(decl1m,
		"function process(msg)",
		`  local n = state.incr("count")`,
		`  state.incr("by5", 5)`,
		`  state.set("last", {id = msg.id, n = n, tags = {"a", "b"}, nested = {x = 1.5}})`,
		`  local back = state.get("last")`,
		`  state.set("check", back.id == msg.id and back.n == n and back.tags[2] == "b" and back.nested.x == 1.5)`,
		`  state.set("gone", "x")`,
		`  state.set("gone", nil)`,
		`  state.set("temp", 1)`,
		`  state.delete("temp")`,
		`  state.set("missing_is_nil", state.get("never") == nil)`,
		"end",
		"function update(db)",
		`  db:upsert{timestamp = 0, k = "count", v = state.get("count")}`,
		"end")
	st := fakeState{"count": "10"}
	_, w := runModel(t, src, st,
		rawRecord("m1", "a.b.c.d", 1, "{}"),
		rawRecord("m2", "a.b.c.d", 2, "{}"),
	)
	want := fakeState{
		"count":          "12",
		"by5":            "10",
		"last":           `{"id":"m2","n":12,"nested":{"x":1.5},"tags":["a","b"]}`,
		"check":          "true",
		"missing_is_nil": "true",
	}
	if !reflect.DeepEqual(st, want) {
		t.Errorf("state %v, want %v", st, want)
	}
	if got, want := kv(w), []string{"upsert 0 count 12"}; !reflect.DeepEqual(got, want) {
		t.Errorf("rows %v, want %v", got, want)
	}
}

func TestStateErrors(t *testing.T) {
	tests := []struct {
		name, call, wantErr string
	}{
		{"ErrFunction", `state.set("f", function() end)`, `state.set("f")`},
		{"ErrNotJSON", `state.get("broken")`, "stored value is not JSON"},
		{"ErrNaN", `state.set("nan", 0/0)`, "not a finite number"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := lines(decl1m, "function process(msg)", "  "+tt.call, "end", "function update(db) end")
			models, err := luaapi.LoadSource("m.lua", src, quiet)
			if err != nil {
				t.Fatal(err)
			}
			m := models[0]
			st := fakeState{"broken": "{not json"}
			if err := m.Open(st); err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			err = m.Process(context.Background(), decode(t, rawRecord("a", "a.b.c.d", 1, "{}")))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "m.lua:3:") {
				t.Errorf("Process: %v, want an error at m.lua:3 containing %q", err, tt.wantErr)
			}
			if got, want := st, (fakeState{"broken": "{not json"}); !reflect.DeepEqual(got, want) {
				t.Errorf("state changed to %v", got)
			}
		})
	}
}

// TestJSONNull: a model sees JSON null in its message as meta rules do
// (sandbox.JSON): nil for a member, false inside an array, which keeps
// its length; json.decode and state.get convert the same way.
func TestJSONNull(t *testing.T) {
	src := lines(decl1m,
		"local out",
		"function process(msg)",
		"  local l = msg.body.list",
		`  state.set("l", {1, false, "x"})`,
		`  local d, s = json.decode('[1, null, "x"]'), state.get("l")`,
		`  out = table.concat({#l, tostring(l[1]), tostring(l[2]), tostring(l[3]), tostring(msg.body.gone),`,
		`    #d, tostring(d[2]), #s, tostring(s[2])}, " ")`,
		"end",
		"function update(db)",
		`  db:upsert{timestamp = 0, k = "nulls", v = out}`,
		"end")
	_, w := runModel(t, src, nil, rawRecord("m1", "a.b.c.d", 1, `{"list": [1, null, "x"], "gone": null}`))
	if got, want := w.rows[0]["v"], "3 1 false x nil 3 false 3 false"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestJSON(t *testing.T) {
	src := lines(decl1m,
		"local out",
		"function process(msg)",
		`  local s = json.encode({a = 1, b = {1, 2, 3}, c = "x", d = {}})`,
		`  local t = json.decode('{"x": [1, "two", true, null], "y": {"z": 2.5}}')`,
		"  local bad, err = json.encode(function() end)",
		`  local bad2, err2 = json.decode("not json")`,
		"  local back = json.decode(s)",
		"  out = {s = s, x1 = t.x[1], x2 = t.x[2], x3 = t.x[3], x4 = t.x[4], n = #t.x, z = t.y.z,",
		`    bad = bad == nil, err = type(err), bad2 = bad2 == nil, err2 = type(err2), c = back.c, b3 = back.b[3]}`,
		"end",
		"function update(db)",
		`  db:upsert{timestamp = 0, k = "json", v = out}`,
		"end")
	_, w := runModel(t, src, nil, rawRecord("m1", "a.b.c.d", 1, "{}"))
	if len(w.rows) != 1 {
		t.Fatalf("rows %v, want one", w.rows)
	}
	got := w.rows[0]["v"]
	want := map[string]any{
		"s": `{"a":1,"b":[1,2,3],"c":"x","d":{}}`,
		// null inside an array is false: the array keeps its length.
		"x1": 1.0, "x2": "two", "x3": true, "x4": false, "n": 4.0, "z": 2.5,
		"bad": true, "err": "string", "bad2": true, "err2": "string",
		"c": "x", "b3": 3.0,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v\nwant %v", got, want)
	}
}

func TestDB(t *testing.T) {
	src := lines(decl1m,
		"local saved",
		"function process(msg)",
		`  if msg.topic == "use.saved.db.now" then saved:add{timestamp = 1, topic = "x", volume = 1} end`,
		"end",
		"function update(db)",
		"  saved = db",
		`  local r = db:get{timestamp = 60, topic = "a"}`,
		`  local missing = db:get{timestamp = 60, topic = "zzz"}`,
		`  db:add{timestamp = 60, topic = "a", volume = r.volume + 1, note = r.note}`,
		`  db.add({timestamp = 120, topic = "b", volume = 1})`,
		`  db:insert{timestamp = 180, topic = "c", volume = missing == nil and 1 or 0}`,
		`  db:upsert{timestamp = 240, topic = "d", volume = 4, tags = {"x", "y"}}`,
		`  db:add{timestamp = 300, topic = "fail", volume = 1}`,
		"end")
	m := openSource(t, "m.lua", src, quiet)
	w := &recWriter{
		stored: map[string]engine.Row{"60/a": {"timestamp": 60.0, "topic": "a", "volume": int64(10), "note": "kept"}},
		failOn: "fail",
	}
	err := m.Flush(context.Background(), w)
	t.Run("OKWrites", func(t *testing.T) {
		want := []engine.Row{
			{"timestamp": 60.0, "topic": "a"},
			{"timestamp": 60.0, "topic": "zzz"},
			{"timestamp": 60.0, "topic": "a", "volume": 11.0, "note": "kept"},
			{"timestamp": 120.0, "topic": "b", "volume": 1.0},
			{"timestamp": 180.0, "topic": "c", "volume": 1.0},
			{"timestamp": 240.0, "topic": "d", "volume": 4.0, "tags": []any{"x", "y"}},
		}
		if got, want := w.ops, []string{"get", "get", "add", "add", "insert", "upsert"}; !reflect.DeepEqual(got, want) {
			t.Errorf("ops %v, want %v", got, want)
		}
		if !reflect.DeepEqual(w.rows, want) {
			t.Errorf("rows\n%v\nwant\n%v", w.rows, want)
		}
	})
	t.Run("ErrWriterError", func(t *testing.T) {
		if err == nil || !strings.Contains(err.Error(), "db.add: writer refuses fail") || !strings.Contains(err.Error(), "m.lua:14:") {
			t.Errorf("Flush: %v, want the writer's error at m.lua:14", err)
		}
	})
	t.Run("ErrOutsideUpdate", func(t *testing.T) {
		err := m.Process(context.Background(), decode(t, rawRecord("m1", "use.saved.db.now", 1, "{}")))
		if err == nil || !strings.Contains(err.Error(), "only usable inside update") {
			t.Errorf("Process: %v, want the db refused outside update", err)
		}
	})
}
