package luaapi

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	lua "github.com/yuin/gopher-lua"
	"github.com/yuin/gopher-lua/parse"

	"statscache/engine"
	"statscache/luaapi/meta"
	"statscache/luaapi/sandbox"
	"statscache/schema"
)

// ScriptError is a problem with a script, located at a file and line so an
// analyst can go straight to it.
type ScriptError struct {
	File string
	Line int // 0 when unknown
	Msg  string
}

func (e *ScriptError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// Options configure how scripts are loaded and run.
type Options struct {
	Logger *slog.Logger
	// Meta is the fedmsg.meta rule library offered to models as the
	// "meta" module; a model that uses the module without one fails to load.
	Meta *meta.Library
	// Limits bound each model; zero fields take DefaultLimits.
	Limits Limits
	// Lib is the folder that require reads shared helpers from (the lib
	// folder of the scripts directory; LoadFS sets it).
	Lib      fs.FS
	LibLabel string
	// Services are the HTTP services work functions may call; a script
	// that declares a service not among them does not load.
	Services Services
}

// Script is one compiled model file. Its byte code is compiled once and
// shared by every model instance (one per declared interval), each running
// in its own LState.
type Script struct {
	Path   string
	Hash   string // sha256 of the source, to tell a changed script on reload
	proto  *lua.FunctionProto
	decl   *declaration
	source []byte
	// version is the model's Version: the source's and, when the script
	// requires helpers from lib/, theirs too (see version).
	version string
}

type declaration struct {
	line        int
	name        string
	summary     string
	description string
	intervals   []time.Duration
	backlog     time.Duration
	topics      []string
	columns     []schema.Column
	key         []string
	layout      json.RawMessage
	queue       *queueDecl // nil for a script without work and done
}

// LoadDir loads every *.lua file directly in dir (sub-folders hold shared
// libraries and rules, not models). A script that fails to load is reported
// in errs and skipped; the others load.
func LoadDir(dir string, opts Options) (models []*Model, errs []error) {
	if _, err := os.Stat(dir); err != nil {
		return nil, []error{fmt.Errorf("scripts directory: %w", err)}
	}
	return LoadFS(os.DirFS(dir), dir, opts)
}

// LoadFS is LoadDir over a file system, such as the scripts embedded in the
// binary; label prefixes file names in errors.
func LoadFS(fsys fs.FS, label string, opts Options) (models []*Model, errs []error) {
	files, err := fs.Glob(fsys, "*.lua")
	if err != nil {
		return nil, []error{fmt.Errorf("list scripts in %s: %w", label, err)}
	}
	if opts.Lib == nil {
		if sub, err := fs.Sub(fsys, "lib"); err == nil {
			if _, err := fs.Stat(sub, "."); err == nil {
				opts.Lib, opts.LibLabel = sub, filepath.Join(label, "lib")
			}
		}
	}
	if opts.Meta == nil {
		// The fedmsg.meta rules live in the meta folder of the scripts.
		if sub, err := fs.Sub(fsys, "meta"); err == nil {
			if _, err := fs.Stat(sub, "."); err == nil {
				lib, err := meta.LoadFS(sub, filepath.Join(label, "meta"), opts.Logger)
				if err != nil {
					errs = append(errs, fmt.Errorf("fedmsg.meta rules: %w", err))
				} else {
					lim := opts.Limits.withDefaults()
					lib.SetLimits(meta.Limits{Timeout: lim.CallTimeout, MaxString: lim.MaxString, MaxAlloc: int64(lim.MemoryLimit), Watch: metaWatch(lim)})
					opts.Meta = lib
				}
			}
		}
	}
	sort.Strings(files)
	for _, name := range files {
		f := filepath.Join(label, name)
		src, err := fs.ReadFile(fsys, name)
		if err != nil {
			errs = append(errs, fmt.Errorf("load script %s: %w", f, err))
			continue
		}
		ms, err := LoadSource(f, src, opts)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		models = append(models, ms...)
	}
	// Model names are unique: the scripts that declare the same model are
	// all refused (the engine's rule, which its Reload applies too).
	ems := make([]engine.Model, len(models))
	for i, m := range models {
		ems[i] = m
	}
	refused, dups := engine.DuplicateIdents(ems)
	if len(refused) == 0 {
		return models, errs
	}
	for _, err := range dups {
		var de *engine.DuplicateError
		if errors.As(err, &de) {
			err = &ScriptError{File: de.Script, Line: de.Line, Msg: de.Reason()}
		}
		errs = append(errs, err)
	}
	kept := models[:0]
	for _, m := range models {
		if !refused[m.spec.Script] {
			kept = append(kept, m)
		}
	}
	return kept, errs
}

// LoadFile compiles a script, runs it once to read its declaration, checks
// the declaration and its functions, and returns one model per declared
// interval (or one model when it declares none).
func LoadFile(path string, opts Options) ([]*Model, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load script: %w", err)
	}
	if opts.Lib == nil {
		// Shared helpers live in the lib folder beside the script.
		lib := filepath.Join(filepath.Dir(path), "lib")
		if st, err := os.Stat(lib); err == nil && st.IsDir() {
			opts.Lib, opts.LibLabel = os.DirFS(lib), lib
		}
	}
	return LoadSource(path, src, opts)
}

// LoadSource is LoadFile for a script already in memory; path names it in
// errors.
func LoadSource(path string, src []byte, opts Options) ([]*Model, error) {
	s, err := compile(path, src)
	if err != nil {
		return nil, err
	}
	if err := s.declare(opts); err != nil {
		return nil, err
	}
	ivs := s.decl.intervals
	if len(ivs) == 0 {
		ivs = []time.Duration{0}
	}
	var out []*Model
	for _, iv := range ivs {
		spec, err := s.spec(iv)
		if err != nil {
			return nil, err
		}
		out = append(out, newModel(s, spec, iv, opts))
	}
	return out, nil
}

var parseLineRe = regexp.MustCompile(`line:(\d+)`)

func compile(path string, src []byte) (*Script, error) {
	chunk, err := parse.Parse(bytes.NewReader(src), path)
	if err != nil {
		line := 0
		if m := parseLineRe.FindStringSubmatch(err.Error()); m != nil {
			line, _ = strconv.Atoi(m[1])
		}
		msg := strings.TrimSpace(strings.TrimPrefix(err.Error(), path+" "))
		if strings.Contains(msg, "at EOF") {
			// The parser reports no line at the end of the file: an "end"
			// is missing. Point at the last line.
			line = bytes.Count(bytes.TrimRight(src, "\n"), []byte("\n")) + 1
			msg = "unexpected end of file: a block (function, if, for, while) is not closed with \"end\""
		}
		return nil, &ScriptError{File: path, Line: line, Msg: "syntax error: " + msg}
	}
	proto, err := sandbox.Compile(chunk, path)
	if err != nil {
		return nil, &ScriptError{File: path, Msg: "compile: " + err.Error()}
	}
	sum := sha256.Sum256(src)
	return &Script{Path: path, Hash: hex.EncodeToString(sum[:]), proto: proto, source: src}, nil
}

var luaLocRe = regexp.MustCompile(`^(.*?):(\d+): (.*)$`)

// luaError turns an error raised while running script code into a
// ScriptError with the line Lua reported.
func luaError(path string, err error) error {
	var ae *lua.ApiError
	msg := err.Error()
	if errors.As(err, &ae) {
		msg = ae.Object.String()
	}
	if m := luaLocRe.FindStringSubmatch(msg); m != nil && strings.HasSuffix(m[1], filepath.Base(path)) {
		line, _ := strconv.Atoi(m[2])
		return &ScriptError{File: path, Line: line, Msg: m[3]}
	}
	return &ScriptError{File: path, Msg: msg}
}

// version identifies a script's code for reload: its source and the
// sources of the lib files its top level requires (the helpers it shares
// with other scripts, such as lib/system_accounts.lua), so that editing a
// helper and reloading restarts the models that use it, with the new
// helper, from their cursors.
func version(src []byte, libs map[string][]byte) string {
	if len(libs) == 0 {
		sum := sha256.Sum256(src)
		return hex.EncodeToString(sum[:])[:16]
	}
	h := sha256.New()
	h.Write(src)
	files := make([]string, 0, len(libs))
	for f := range libs {
		files = append(files, f)
	}
	sort.Strings(files)
	for _, f := range files {
		fmt.Fprintf(h, "\x00%s\x00%d\x00", f, len(libs[f]))
		h.Write(libs[f])
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// declare runs the script in a scratch state to capture its model{...}
// declaration and check its contract.
func (s *Script) declare(opts Options) error {
	lim := opts.Limits.withDefaults()
	g, ctx := newGuard(s.Path, lim)
	defer g.release()
	L := newState(&g.meter)
	defer L.Close()
	L.SetContext(ctx)
	var decl *lua.LTable
	s.decl = &declaration{}
	L.SetGlobal("model", L.NewFunction(func(L *lua.LState) int {
		if decl != nil {
			L.RaiseError("model{...} is declared twice")
		}
		decl = L.CheckTable(1)
		s.decl.line = currentLine(L)
		return 0
	}))
	libs := map[string][]byte{}
	installHost(L, &Model{script: s, opts: opts, log: slog.New(slog.DiscardHandler), guard: g,
		recordLib: func(file string, src []byte) { libs[file] = src }})
	top, err := sandbox.Chunk(L, s.proto)
	if err != nil {
		return &ScriptError{File: s.Path, Msg: err.Error()}
	}
	L.Push(top)
	g.enter(lim.CallTimeout)
	err = L.PCall(0, 0, nil)
	g.leave()
	if err != nil {
		if r := g.reason.Load(); r != nil {
			if *r == timeLimitReason(lim.CallTimeout) {
				return &ScriptError{File: s.Path, Msg: fmt.Sprintf("the script's top level ran longer than the limit of %s", lim.CallTimeout)}
			}
			return &ScriptError{File: s.Path, Msg: "the script's top level was stopped: " + *r}
		}
		return luaError(s.Path, err)
	}
	if decl == nil {
		return &ScriptError{File: s.Path, Msg: "no model{...} declaration"}
	}
	for _, fn := range []string{"process", "update"} {
		v := rawGlobal(L, fn)
		if v.Type() != lua.LTFunction {
			return &ScriptError{File: s.Path, Msg: fmt.Sprintf("function %s is not defined (got %s)", fn, v.Type())}
		}
		if p := v.(*lua.LFunction).Proto; p != nil && p.NumParameters < 1 {
			return &ScriptError{File: s.Path, Line: p.LineDefined, Msg: fmt.Sprintf("function %s must take one argument (%s)", fn, map[string]string{"process": "msg", "update": "db"}[fn])}
		}
	}
	if err := s.parseDecl(decl); err != nil {
		return err
	}
	s.version = version(s.source, libs)
	return s.checkQueue(L, decl, opts)
}

// checkQueue checks the work and done functions of a script against its
// queue declaration and the configured services.
func (s *Script) checkQueue(L *lua.LState, decl *lua.LTable, opts Options) error {
	work, hasWork := rawGlobal(L, "work").(*lua.LFunction)
	done, hasDone := rawGlobal(L, "done").(*lua.LFunction)
	qv := decl.RawGetString("queue")
	switch {
	case !hasWork && !hasDone && qv == lua.LNil:
		return nil
	case !hasWork || !hasDone:
		return s.errAt("queue", "a work queue needs both work(item) and done(item, result, err) functions")
	}
	if work.Proto != nil && work.Proto.NumParameters < 1 {
		return &ScriptError{File: s.Path, Line: work.Proto.LineDefined, Msg: "function work must take one argument (item)"}
	}
	if done.Proto != nil && done.Proto.NumParameters < 2 {
		return &ScriptError{File: s.Path, Line: done.Proto.LineDefined, Msg: "function done must take the arguments (item, result, err)"}
	}
	q := &queueDecl{}
	if qv != lua.LNil {
		qt, ok := qv.(*lua.LTable)
		if !ok {
			return s.errAt("queue", "queue must be a table like {workers = 4, limit = 1000, retries = 5, services = {\"koji\"}}")
		}
		for _, k := range sortedKeys(qt) {
			v := qt.RawGetString(k)
			switch k {
			case "workers", "limit", "retries":
				f := map[string]struct {
					lo, hi int
					dst    *int
				}{"workers": {1, 64, &q.workers}, "limit": {1, 1_000_000, &q.limit}, "retries": {0, 100, &q.retries}}[k]
				n, ok := v.(lua.LNumber)
				if !ok || float64(n) != float64(int(n)) || int(n) < f.lo || int(n) > f.hi {
					return s.errAt(k, "queue.%s must be a whole number from %d to %d", k, f.lo, f.hi)
				}
				*f.dst = int(n)
				if k == "retries" && n == 0 {
					q.retries = -1 // engine.QueueConfig: negative means none
				}
			case "services":
				lt, ok := v.(*lua.LTable)
				if !ok {
					return s.errAt("services", "queue.services must be a list of service names like {\"koji\"}")
				}
				for i := 1; i <= lt.Len(); i++ {
					name, ok := lt.RawGetInt(i).(lua.LString)
					if !ok || name == "" {
						return s.errAt("services", "queue.services[%d] must be a service name", i)
					}
					if opts.Services == nil || !opts.Services.Has(string(name)) {
						hint := fmt.Sprintf("give its URL with --service %s=URL or in the [services] table of the config file", name)
						if h, ok := opts.Services.(interface{ Hint(string) string }); ok {
							hint = h.Hint(string(name))
						}
						return s.errAt(string(name), "service %q is not configured: %s", name, hint)
					}
					q.services = append(q.services, string(name))
				}
			default:
				return s.errAt(k, "unknown field %q in queue = {...} (known: workers, limit, retries, services)", k)
			}
		}
	}
	s.decl.queue = q
	return nil
}

func currentLine(L *lua.LState) int {
	if m := regexp.MustCompile(`:(\d+):`).FindStringSubmatch(L.Where(1)); m != nil {
		n, _ := strconv.Atoi(m[1])
		return n
	}
	return 0
}

// errAt reports a declaration problem at the first line, from the
// declaration on, that mentions needle (the offending value), or at the
// declaration itself.
func (s *Script) errAt(needle, format string, args ...any) error {
	line := s.decl.line
	if needle != "" {
		src := strings.Split(string(s.source), "\n")
		// Prefer the needle as a whole word, so that a bad type "int" is
		// found on its own line and not in an earlier "integer".
	search:
		for _, whole := range []bool{true, false} {
			for i, l := range src {
				if i+1 >= s.decl.line && containsWord(l, needle, whole) {
					line = i + 1
					break search
				}
			}
		}
	}
	return &ScriptError{File: s.Path, Line: line, Msg: fmt.Sprintf(format, args...)}
}

// containsWord reports whether l contains needle; with whole, only where
// it is not part of a longer identifier.
func containsWord(l, needle string, whole bool) bool {
	word := func(c byte) bool { return c == '_' || '0' <= c && c <= '9' || 'a' <= c|0x20 && c|0x20 <= 'z' }
	for off := 0; off < len(l); {
		i := strings.Index(l[off:], needle)
		if i < 0 {
			return false
		}
		i += off
		j := i + len(needle)
		if !whole || (i == 0 || !word(l[i-1])) && (j == len(l) || !word(l[j])) {
			return true
		}
		off = i + 1
	}
	return false
}

var declFields = map[string]bool{
	"name": true, "summary": true, "description": true, "interval": true, "intervals": true,
	"backlog": true, "topics": true, "columns": true, "key": true, "layout": true, "queue": true,
}

func (s *Script) parseDecl(t *lua.LTable) error {
	d := s.decl
	for _, k := range sortedKeys(t) {
		if !declFields[k] {
			return s.errAt(k, "unknown field %q in model{...} (known: name, summary, description, interval, intervals, backlog, topics, columns, key, layout, queue)", k)
		}
	}
	str := func(field string, required bool) (string, error) {
		v := t.RawGetString(field)
		if v == lua.LNil {
			if required {
				return "", s.errAt("", "model{...} needs a %s", field)
			}
			return "", nil
		}
		sv, ok := v.(lua.LString)
		if !ok || strings.TrimSpace(string(sv)) == "" {
			return "", s.errAt(field, "%s must be a non-empty string", field)
		}
		return strings.TrimSpace(string(sv)), nil
	}
	var err error
	if d.name, err = str("name", true); err != nil {
		return err
	}
	if strings.Contains(d.name, engine.ShadowSep) {
		return s.errAt("name", "name must not contain %q (it marks tables being rebuilt)", engine.ShadowSep)
	}
	if d.summary, err = str("summary", true); err != nil {
		return err
	}
	if d.description, err = str("description", true); err != nil {
		return err
	}
	interval := func(v lua.LValue) (time.Duration, error) {
		switch x := v.(type) {
		case lua.LString:
			iv, err := engine.ParseInterval(string(x))
			if err != nil {
				return 0, s.errAt(string(x), "%v", err)
			}
			return iv, nil
		case lua.LNumber:
			iv, err := engine.ParseInterval(strconv.FormatFloat(float64(x), 'f', -1, 64))
			if err != nil {
				return 0, s.errAt("interval", "%v", err)
			}
			return iv, nil
		}
		return 0, s.errAt("interval", "an interval must be a string like \"1h\" or a number of seconds, not a %s", v.Type())
	}
	if v := t.RawGetString("interval"); v != lua.LNil {
		iv, err := interval(v)
		if err != nil {
			return err
		}
		d.intervals = append(d.intervals, iv)
	}
	if v := t.RawGetString("intervals"); v != lua.LNil {
		if len(d.intervals) > 0 {
			return s.errAt("intervals", "declare interval or intervals, not both")
		}
		lt, ok := v.(*lua.LTable)
		if !ok || lt.Len() == 0 {
			return s.errAt("intervals", "intervals must be a non-empty list like {\"1s\", \"1m\"}")
		}
		seen := map[time.Duration]bool{}
		for i := 1; i <= lt.Len(); i++ {
			iv, err := interval(lt.RawGetInt(i))
			if err != nil {
				return err
			}
			if seen[iv] {
				return s.errAt(engine.FormatInterval(iv), "interval %s is listed twice", engine.FormatInterval(iv))
			}
			seen[iv] = true
			d.intervals = append(d.intervals, iv)
		}
	}
	if v := t.RawGetString("backlog"); v != lua.LNil {
		if d.backlog, err = interval(v); err != nil {
			return err
		}
	}
	if v := t.RawGetString("topics"); v != lua.LNil {
		lt, ok := v.(*lua.LTable)
		if !ok {
			return s.errAt("topics", "topics must be a list of topic prefixes")
		}
		for i := 1; i <= lt.Len(); i++ {
			p, ok := lt.RawGetInt(i).(lua.LString)
			if !ok || p == "" {
				return s.errAt("topics", "topics[%d] must be a non-empty string", i)
			}
			d.topics = append(d.topics, string(p))
		}
	}
	if err := s.parseColumns(t.RawGetString("columns")); err != nil {
		return err
	}
	if v := t.RawGetString("key"); v != lua.LNil {
		lt, ok := v.(*lua.LTable)
		if !ok || lt.Len() == 0 {
			return s.errAt("key", "key must be a non-empty list of column names")
		}
		d.key = nil
		for i := 1; i <= lt.Len(); i++ {
			k, ok := lt.RawGetInt(i).(lua.LString)
			if !ok {
				return s.errAt("key", "key[%d] must be a column name", i)
			}
			d.key = append(d.key, string(k))
		}
	}
	if v := t.RawGetString("layout"); v != lua.LNil {
		g, err := toGo(v)
		if err != nil {
			return s.errAt("layout", "layout: %v", err)
		}
		if d.layout, err = json.Marshal(g); err != nil {
			return s.errAt("layout", "layout: %v", err)
		}
	}
	return nil
}

func (s *Script) parseColumns(v lua.LValue) error {
	d := s.decl
	lt, ok := v.(*lua.LTable)
	if !ok || lt.Len() == 0 {
		return s.errAt("columns", "model{...} needs columns: a list like {{name = \"volume\", type = \"integer\"}}")
	}
	d.columns = []schema.Column{{Name: schema.TimestampColumn, Type: schema.Real, NotNull: true, Index: true,
		Doc: "Unix seconds; for bucketed models, the end of the bucket"}}
	d.key = []string{schema.TimestampColumn}
	for i := 1; i <= lt.Len(); i++ {
		ct, ok := lt.RawGetInt(i).(*lua.LTable)
		if !ok {
			return s.errAt("columns", "columns[%d] must be a table like {name = \"volume\", type = \"integer\"}", i)
		}
		get := func(pos int, field string) lua.LValue {
			if v := ct.RawGetString(field); v != lua.LNil {
				return v
			}
			return ct.RawGetInt(pos)
		}
		name, _ := get(1, "name").(lua.LString)
		typ, _ := get(2, "type").(lua.LString)
		if name == "" {
			return s.errAt("columns", "columns[%d] has no name", i)
		}
		if name == schema.TimestampColumn {
			return s.errAt(`"timestamp"`, "column %q is always present; do not declare it", name)
		}
		if typ == "" {
			return s.errAt(string(name), "column %q has no type (integer, real, text or json)", name)
		}
		for _, k := range sortedKeys(ct) {
			switch k {
			case "name", "type", "not_null", "index", "key", "doc", "aggregate":
			default:
				return s.errAt(k, "column %q: unknown field %q (known: name, type, not_null, index, key, doc, aggregate)", name, k)
			}
		}
		c := schema.Column{
			Name:    string(name),
			Type:    schema.Type(strings.ToLower(string(typ))),
			NotNull: lua.LVAsBool(ct.RawGetString("not_null")),
			Index:   lua.LVAsBool(ct.RawGetString("index")),
		}
		if doc, ok := ct.RawGetString("doc").(lua.LString); ok {
			c.Doc = string(doc)
		}
		switch c.Type {
		case schema.Integer, schema.Real, schema.Text, schema.JSON:
		default:
			return s.errAt(string(typ), "column %q: unknown type %q (want integer, real, text or json)", name, typ)
		}
		if agg := ct.RawGetString("aggregate"); agg != lua.LNil {
			a, _ := agg.(lua.LString)
			c.Aggregate = string(a)
			if err := schema.CheckAggregate(c.Aggregate, c.Type); err != nil || a == "" {
				return s.errAt("aggregate", "column %q: aggregate must be \"sum\", \"last\", \"max\" or \"none\" (sum and max for numbers), got %s", name, agg.String())
			}
		}
		d.columns = append(d.columns, c)
		if lua.LVAsBool(ct.RawGetString("key")) {
			d.key = append(d.key, c.Name)
		}
	}
	return nil
}

// spec builds the engine's view of one instance of the script.
func (s *Script) spec(iv time.Duration) (*engine.ModelSpec, error) {
	d := s.decl
	ident := engine.Ident(d.name, iv)
	spec := &engine.ModelSpec{
		Ident: ident, Name: d.name, Summary: d.summary, Description: d.description,
		Interval: iv, Backlog: d.backlog, Topics: d.topics, Script: s.Path, Line: d.line, Layout: d.layout, Version: s.version,
		Table: schema.Table{
			Name:    schema.TableName(ident),
			Columns: append([]schema.Column(nil), d.columns...),
			Key:     append([]string(nil), d.key...),
		},
	}
	if err := spec.Table.Validate(); err != nil {
		return nil, s.errAt("", "%v", err)
	}
	return spec, nil
}
