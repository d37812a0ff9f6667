package meta

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/valyala/fastjson"
	lua "github.com/yuin/gopher-lua"

	"statscache/luaapi/sandbox"
)

// prelude runs before the rule files. It keeps the registry of declared
// processors and gives them the defaults of the BASE table (defined by the
// rules' own _lib.lua) through a metatable.
const prelude = `
PROCESSORS = {}
BASE = {}
local registry, base = PROCESSORS, BASE
local mt = {__index = base}
function processor(spec)
  if type(spec) ~= "table" then error("processor{...} takes a table", 2) end
  if type(spec.name) ~= "string" or spec.name == "" then error("processor{...} needs a name", 2) end
  spec.file = __FILE
  registry[#registry + 1] = spec
  return setmetatable(spec, mt)
end
`

var preludeProto = func() *lua.FunctionProto {
	p, err := compile(prelude, "<prelude>")
	if err != nil {
		panic(err)
	}
	return p
}()

// helpers in the order they are computed; agent comes last because its
// default is the single user name.
var helperNames = []string{"usernames", "packages", "objects", "title", "subtitle", "link", "icon", "secondary_icon", "agent"}

type state struct {
	L     *lua.LState
	meter *sandbox.Meter
	// stop ends the running computation (its context's cancel) and reason
	// says why, when the meter stopped it.
	stop    func()
	reason  string
	procs   *lua.LTable
	broken  bool
	helpers [9]lua.LString
	topicK  lua.LString
	msgK    lua.LString

	// The message is shown to the rules lazily: a JSON object becomes an
	// empty table whose metatable (lazyMT) fills it from its JSON value
	// (kept in lazy) on the first read of any of its keys. Only the
	// objects a rule reads are converted. The JSON values belong to the
	// parser of the current call: lazy is cleared when it returns, and an
	// object left unread then reads as empty.
	lazyMT *lua.LTable
	conv   sandbox.JSON
	lazy   map[*lua.LTable]*fastjson.Value
	// members already read, kept here rather than in the tables so that
	// a table read by key never grows a Go map of its own; both maps
	// keep their storage from call to call.
	read map[lazyKey]lua.LValue
	env  *lua.LTable // the current envelope, when it is lazy
}

type lazyKey struct {
	t *lua.LTable
	k string
}

func (l *Library) newState() (*state, error) {
	meter := &sandbox.Meter{MaxString: l.limits.MaxString, MaxAlloc: l.limits.MaxAlloc}
	L := sandbox.NewState(lua.Options{
		CallStackSize:       256,
		RegistrySize:        1024 * 20,
		RegistryMaxSize:     1024 * 1024 * 8,
		MinimizeStackMemory: false, // states are pooled: keep one stack rather than regrow it per call
	}, meter)
	logger := l.logger
	L.SetGlobal("print", L.NewFunction(func(L *lua.LState) int {
		parts := make([]string, L.GetTop())
		for i := range parts {
			parts[i] = L.ToStringMeta(L.Get(i + 1)).String()
		}
		logger.Info("meta rule print", "text", strings.Join(parts, "\t"))
		return 0
	}))
	L.SetGlobal("util", l.utilModule(L))
	st := &state{L: L, meter: meter, topicK: "topic", msgK: "msg", lazy: map[*lua.LTable]*fastjson.Value{}, read: map[lazyKey]lua.LValue{}}
	st.conv = sandbox.JSON{Object: st.lazyObject}
	st.installLazy()
	meter.Over = func(reason string) {
		st.reason = reason
		if st.stop != nil {
			st.stop()
		}
	}
	// The rule files' top levels run under the time limit too, and the
	// registry is read and written raw: a rule file that gives _G a
	// metatable runs none of it here.
	ctx, cancel := context.WithTimeout(context.Background(), l.limits.Timeout)
	defer cancel()
	L.SetContext(ctx)
	defer L.RemoveContext()
	globals := L.G.Global
	run := func(proto *lua.FunctionProto, name string) error {
		globals.RawSetString("__FILE", lua.LString(name))
		top, err := sandbox.Chunk(L, proto)
		if err != nil {
			return fmt.Errorf("meta: %w", err)
		}
		L.Push(top)
		if err := L.PCall(0, 0, nil); err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("meta: %s: the rule file's top level ran longer than the limit of %s", name, l.limits.Timeout)
			}
			return fmt.Errorf("meta: %v", err)
		}
		return nil
	}
	if err := run(preludeProto, "<prelude>"); err != nil {
		L.Close()
		return nil, err
	}
	for i, proto := range l.protos {
		if err := run(proto, l.files[i]); err != nil {
			L.Close()
			return nil, err
		}
	}
	globals.RawSetString("__FILE", lua.LNil)
	st.procs, _ = globals.RawGetString("PROCESSORS").(*lua.LTable)
	if st.procs == nil {
		L.Close()
		return nil, fmt.Errorf("meta: the rules replaced PROCESSORS")
	}
	for i, h := range helperNames {
		st.helpers[i] = lua.LString(h)
	}
	return st, nil
}

// utilModule is the Go half of the helper module the rules call util (the
// Lua half is the rules' _lib.lua).
func (l *Library) utilModule(L *lua.LState) *lua.LTable {
	um := l.usermap
	t := L.NewTable()
	fns := map[string]lua.LGFunction{
		"sha256": func(L *lua.LState) int {
			s := sha256.Sum256([]byte(L.CheckString(1)))
			L.Push(lua.LString(hex.EncodeToString(s[:])))
			return 1
		},
		"md5": func(L *lua.LState) int {
			s := md5.Sum([]byte(L.CheckString(1)))
			L.Push(lua.LString(hex.EncodeToString(s[:])))
			return 1
		},
		// email2fas maps an e-mail address to an account name:
		// x@fedoraproject.org is x, else the user map, else the address.
		"email2fas": func(L *lua.LState) int {
			v := L.Get(1)
			s, ok := v.(lua.LString)
			if !ok {
				L.Push(v)
				return 1
			}
			e := string(s)
			if strings.HasSuffix(e, "@fedoraproject.org") {
				L.Push(lua.LString(e[:strings.LastIndexByte(e, '@')]))
				return 1
			}
			if u, ok := um[e]; ok {
				L.Push(lua.LString(u))
				return 1
			}
			L.Push(s)
			return 1
		},
		// nick2fas maps an IRC nick to an account name: the user map, else
		// the nick.
		"nick2fas": func(L *lua.LState) int {
			v := L.Get(1)
			if s, ok := v.(lua.LString); ok {
				if u, ok := um[string(s)]; ok {
					L.Push(lua.LString(u))
					return 1
				}
			}
			L.Push(v)
			return 1
		},
		// split(s [, sep [, max]]) splits like Python's str.split: on runs
		// of white space without sep, else on each sep (plain text).
		"split": func(L *lua.LState) int {
			s := L.CheckString(1)
			sep := L.OptString(2, "")
			n := L.OptInt(3, -1)
			var parts []string
			switch {
			case sep == "" && n < 0:
				parts = strings.Fields(s)
			case sep == "":
				parts = fieldsN(s, n)
			case n < 0:
				parts = strings.Split(s, sep)
			default:
				parts = strings.SplitN(s, sep, n+1)
			}
			L.Push(stringList(L, parts))
			return 1
		},
		// rsplit(s, sep, max) splits like Python's str.rsplit.
		"rsplit": func(L *lua.LState) int {
			s := L.CheckString(1)
			sep := L.CheckString(2)
			n := L.OptInt(3, -1)
			if sep == "" {
				L.ArgError(2, "empty separator")
			}
			var parts []string
			for n != 0 {
				i := strings.LastIndex(s, sep)
				if i < 0 {
					break
				}
				parts = append(parts, s[i+len(sep):])
				s = s[:i]
				n--
			}
			parts = append(parts, s)
			for i, j := 0, len(parts)-1; i < j; i, j = i+1, j-1 {
				parts[i], parts[j] = parts[j], parts[i]
			}
			L.Push(stringList(L, parts))
			return 1
		},
		"startswith": func(L *lua.LState) int {
			s, ok := L.Get(1).(lua.LString)
			L.Push(lua.LBool(ok && strings.HasPrefix(string(s), L.CheckString(2))))
			return 1
		},
		"endswith": func(L *lua.LState) int {
			s, ok := L.Get(1).(lua.LString)
			L.Push(lua.LBool(ok && strings.HasSuffix(string(s), L.CheckString(2))))
			return 1
		},
		// contains(s, sub): plain substring test; false when s is not a string.
		"contains": func(L *lua.LState) int {
			s, ok := L.Get(1).(lua.LString)
			L.Push(lua.LBool(ok && strings.Contains(string(s), L.CheckString(2))))
			return 1
		},
		"strip": func(L *lua.LState) int {
			L.Push(lua.LString(strings.TrimSpace(L.CheckString(1))))
			return 1
		},
		"lower": func(L *lua.LState) int {
			L.Push(lua.LString(strings.ToLower(L.CheckString(1))))
			return 1
		},
		// casual_delta("YYYY-MM-DD HH:MM:SS", ref): how far the time is
		// from ref (Unix seconds; now when absent), as "in 2 hours",
		// "in 1 day" or "right now": the largest non-zero unit of a
		// calendar difference, like fedocal's reminders.
		"casual_delta": func(L *lua.LState) int {
			at, err := time.Parse("2006-01-02 15:04:05", L.CheckString(1))
			if err != nil {
				L.RaiseError("casual_delta: %v", err)
			}
			ref := time.Now().UTC()
			if n, ok := L.Get(2).(lua.LNumber); ok {
				sec := float64(n)
				ref = time.Unix(int64(sec), int64((sec-float64(int64(sec)))*1e9)).UTC()
			}
			L.Push(lua.LString(casualDelta(at, ref)))
			return 1
		},
		// ulen(s): the number of characters (UTF-8 code points) of s.
		"ulen": func(L *lua.LState) int {
			L.Push(lua.LNumber(utf8.RuneCountInString(L.CheckString(1))))
			return 1
		},
		// usub(s, n): the first n characters of s (Python's s[:n]).
		"usub": func(L *lua.LState) int {
			s, n := L.CheckString(1), L.CheckInt(2)
			i := len(s)
			for j := range s {
				if n <= 0 {
					i = j
					break
				}
				n--
			}
			L.Push(lua.LString(s[:i]))
			return 1
		},
		"str": func(L *lua.LState) int {
			L.Push(lua.LString(pyStr(L.Get(1))))
			return 1
		},
		"fmt": func(L *lua.LState) int {
			f := L.CheckString(1)
			n, i := L.GetTop(), 1
			var b strings.Builder
			for {
				j := strings.Index(f, "{}")
				if j < 0 {
					break
				}
				if i >= n {
					L.RaiseError("fmt: too few arguments")
				}
				i++
				b.WriteString(f[:j])
				b.WriteString(pyStr(L.Get(i)))
				f = f[j+2:]
			}
			b.WriteString(f)
			L.Push(lua.LString(b.String()))
			return 1
		},
		"format": func(L *lua.LState) int {
			L.Push(lua.LString(format(L, L.CheckString(1), L.Get(2), false)))
			return 1
		},
		"format_req": func(L *lua.LState) int {
			L.Push(lua.LString(format(L, L.CheckString(1), L.Get(2), true)))
			return 1
		},
		// replace(s, old, new): plain replacement of every occurrence.
		"replace": func(L *lua.LState) int {
			L.Push(lua.LString(strings.ReplaceAll(L.CheckString(1), L.CheckString(2), L.CheckString(3))))
			return 1
		},
	}
	for k, f := range fns {
		t.RawSetString(k, L.NewFunction(f))
	}
	return t
}

// casualDelta names the largest non-zero unit of the calendar difference
// at - ref (years, months, days, hours, minutes), as dateutil's
// relativedelta splits it.
func casualDelta(at, ref time.Time) string {
	months := (at.Year()-ref.Year())*12 + int(at.Month()-ref.Month())
	if months != 0 {
		s := 1
		if months < 0 {
			s = -1
		}
		if d := addMonths(ref, months); (s > 0 && d.After(at)) || (s < 0 && d.Before(at)) {
			months -= s
		}
	}
	rest := int64(at.Sub(addMonths(ref, months)) / time.Second)
	sign := int64(1)
	if rest < 0 {
		sign, rest = -1, -rest
	}
	units := []struct {
		n    int64
		name string
	}{
		{int64(months / 12), "years"}, {int64(months % 12), "months"},
		{sign * (rest / 86400), "days"}, {sign * (rest % 86400 / 3600), "hours"},
		{sign * (rest % 3600 / 60), "minutes"},
	}
	for _, x := range units {
		if x.n != 0 {
			name := x.name
			if x.n == 1 {
				name = name[:len(name)-1]
			}
			return fmt.Sprintf("in %d %s", x.n, name)
		}
	}
	return "right now"
}

// addMonths adds n calendar months, keeping the day within the month.
func addMonths(t time.Time, n int) time.Time {
	y, m, d := t.Date()
	total := int(m) - 1 + n
	y += total / 12
	total %= 12
	if total < 0 {
		total += 12
		y--
	}
	first := time.Date(y, time.Month(total+1), 1, t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), time.UTC)
	if last := first.AddDate(0, 1, -1).Day(); d > last {
		d = last
	}
	return first.AddDate(0, 0, d-1)
}

// pyStr is Python's "%s" of a value: nil is None, booleans True and
// False, whole numbers print without a fraction.
func pyStr(v lua.LValue) string {
	switch x := v.(type) {
	case *lua.LNilType:
		return "None"
	case lua.LBool:
		if x {
			return "True"
		}
		return "False"
	case lua.LString:
		return string(x)
	case lua.LNumber:
		f := float64(x)
		if f == float64(int64(f)) && f > -1e15 && f < 1e15 {
			return strconv.FormatInt(int64(f), 10)
		}
		return x.String()
	}
	return v.String()
}

// format replaces each {key} of tmpl (key: letters, digits, "_") by
// pyStr(vals[key]), reading vals through its metatable. With strict, a
// missing value raises an error instead of printing None.
func format(L *lua.LState, tmpl string, vals lua.LValue, strict bool) string {
	var b strings.Builder
	b.Grow(len(tmpl) + 32)
	for {
		i := strings.IndexByte(tmpl, '{')
		if i < 0 {
			b.WriteString(tmpl)
			return b.String()
		}
		j := i + 1
		for j < len(tmpl) && isWordByte(tmpl[j]) {
			j++
		}
		if j == i+1 || j >= len(tmpl) || tmpl[j] != '}' {
			b.WriteString(tmpl[:i+1])
			tmpl = tmpl[i+1:]
			continue
		}
		b.WriteString(tmpl[:i])
		key := tmpl[i+1 : j]
		var v lua.LValue = lua.LNil
		if vals != lua.LNil {
			v = L.GetField(vals, key)
		}
		if v == lua.LNil && strict {
			L.RaiseError("missing %s", key)
		}
		b.WriteString(pyStr(v))
		tmpl = tmpl[j+1:]
	}
}

func isWordByte(c byte) bool {
	return c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

func fieldsN(s string, n int) []string {
	var out []string
	s = strings.TrimLeft(s, " \t\r\n\v\f")
	for len(out) < n && s != "" {
		i := strings.IndexAny(s, " \t\r\n\v\f")
		if i < 0 {
			break
		}
		out = append(out, s[:i])
		s = strings.TrimLeft(s[i:], " \t\r\n\v\f")
	}
	if s != "" {
		out = append(out, s)
	}
	return out
}

func stringList(L *lua.LState, parts []string) *lua.LTable {
	t := L.CreateTable(len(parts), 0)
	for i, p := range parts {
		t.RawSetInt(i+1, lua.LString(p))
	}
	return t
}

// installLazy sets up the metatable of lazy objects, and pairs, next and
// ipairs that fill a lazy object before they walk it.
func (st *state) installLazy() {
	L := st.L
	st.lazyMT = L.NewTable()
	st.lazyMT.RawSetString("__index", L.NewFunction(func(L *lua.LState) int {
		L.Push(st.member(L.CheckTable(1), L.Get(2)))
		return 1
	}))
	st.lazyMT.RawSetString("__metatable", lua.LString("message"))
	next := L.NewFunction(func(L *lua.LState) int {
		t := L.CheckTable(1)
		st.fill(t)
		k, v := t.Next(L.Get(2))
		if k == lua.LNil {
			L.Push(lua.LNil)
			return 1
		}
		L.Push(k)
		L.Push(v)
		return 2
	})
	inext := L.NewFunction(func(L *lua.LState) int {
		t := L.CheckTable(1)
		i := L.CheckInt(2) + 1
		v := t.RawGetInt(i)
		if v == lua.LNil {
			return 0
		}
		L.Push(lua.LNumber(i))
		L.Push(v)
		return 2
	})
	L.SetGlobal("next", next)
	// truthy is Python's truth of a value; it tells an unread object's
	// emptiness without converting it.
	if util, ok := L.GetGlobal("util").(*lua.LTable); ok {
		util.RawSetString("truthy", L.NewFunction(func(L *lua.LState) int {
			L.Push(lua.LBool(st.truthy(L.Get(1))))
			return 1
		}))
	}
	L.SetGlobal("pairs", L.NewFunction(func(L *lua.LState) int {
		t := L.CheckTable(1)
		st.fill(t)
		L.Push(next)
		L.Push(t)
		L.Push(lua.LNil)
		return 3
	}))
	L.SetGlobal("ipairs", L.NewFunction(func(L *lua.LState) int {
		t := L.CheckTable(1)
		st.fill(t)
		L.Push(inext)
		L.Push(t)
		L.Push(lua.LNumber(0))
		return 3
	}))
}

// member reads one member of a lazy object, converting it on its first
// read.
func (st *state) member(t *lua.LTable, k lua.LValue) lua.LValue {
	ks, isStr := k.(lua.LString)
	if !isStr {
		return lua.LNil
	}
	key := lazyKey{t, string(ks)}
	if lv, ok := st.read[key]; ok {
		return lv
	}
	v, ok := st.lazy[t]
	if !ok {
		return lua.LNil
	}
	lv := st.value(v.Get(key.k), 1)
	st.read[key] = lv
	return lv
}

func (st *state) truthy(v lua.LValue) bool {
	switch x := v.(type) {
	case *lua.LNilType:
		return false
	case lua.LBool:
		return bool(x)
	case lua.LString:
		return x != ""
	case lua.LNumber:
		return x != 0
	case *lua.LTable:
		if j, ok := st.lazy[x]; ok {
			o, _ := j.Object()
			return o.Len() > 0
		}
		k, _ := x.Next(lua.LNil)
		return k != lua.LNil
	}
	return true
}

// fill converts every member of a lazy object (before the table is
// walked) and makes it a plain table.
func (st *state) fill(t *lua.LTable) {
	v, ok := st.lazy[t]
	if !ok {
		if t.Metatable == st.lazyMT {
			t.Metatable = lua.LNil // left over from an earlier call
		}
		return
	}
	delete(st.lazy, t)
	t.Metatable = lua.LNil
	if t == st.env {
		// topic and msg, which Go set
		t.RawSetString("topic", st.read[lazyKey{t, "topic"}])
		t.RawSetString("msg", st.read[lazyKey{t, "msg"}])
	}
	o, _ := v.Object()
	o.Visit(func(k []byte, x *fastjson.Value) {
		if t.RawGetString(string(k)) != lua.LNil {
			return // set by Go (topic, msg)
		}
		lv, ok := st.read[lazyKey{t, string(k)}]
		if !ok {
			lv = st.value(x, 1)
		}
		if lv != lua.LNil {
			t.RawSetString(string(k), lv)
		}
	})
}

// value converts a JSON value by the conversion models use
// (sandbox.JSON: null is nil, or false inside an array), with objects made
// lazily.
func (st *state) value(v *fastjson.Value, depth int) lua.LValue {
	return st.conv.Value(st.L, v, depth)
}

// lazyObject is an object of the message, filled on its first read.
func (st *state) lazyObject(v *fastjson.Value, depth int) lua.LValue {
	t := st.L.CreateTable(0, 0)
	t.Metatable = st.lazyMT
	st.lazy[t] = v
	return t
}

// release forgets the JSON values of the objects no rule read.
func (st *state) release() {
	st.env = nil
	clear(st.lazy)
	if len(st.read) > 4096 {
		st.read = map[lazyKey]lua.LValue{} // do not keep clearing a huge map
	} else {
		clear(st.read)
	}
}

// envelope builds the message table the helpers see: the fedmsg envelope
// {topic, msg, timestamp, ...}, whatever shape the record came in. Its
// own keys are converted at once, the objects under them lazily.
func (st *state) envelope(topic string, rec *fastjson.Value) *lua.LTable {
	L := st.L
	var env *lua.LTable
	switch {
	case rec.Get("msg") != nil:
		// The envelope is lazy too: its topic and msg are given as
		// already-read members, so that it needs no Go map of its own.
		env = st.value(rec, 0).(*lua.LTable)
		body := st.value(rec.Get("msg"), 1)
		if _, ok := body.(*lua.LTable); !ok {
			body = L.CreateTable(0, 0)
		}
		st.read[lazyKey{env, "topic"}] = lua.LString(topic)
		st.read[lazyKey{env, "msg"}] = body
		st.env = env
		return env
	case rec.Get("body") != nil:
		env = L.CreateTable(0, 4)
		env.RawSetString("msg", st.value(rec.Get("body"), 1))
		if h := rec.Get("headers"); h != nil {
			env.RawSetString("headers", st.value(h, 1))
		}
		for _, k := range []string{"id", "msg_id", "timestamp", "username"} {
			if x := rec.Get(k); x != nil {
				env.RawSetString(k, st.value(x, 1))
			}
		}
	default:
		env = L.CreateTable(0, 2)
		env.RawSetString("msg", st.value(rec, 1))
	}
	env.RawSetString("topic", lua.LString(topic))
	if _, ok := env.RawGetString("msg").(*lua.LTable); !ok {
		env.RawSetString("msg", L.CreateTable(0, 0))
	}
	return env
}

// run calls the helpers of hs of proc on msg; users are the usernames
// the rules gave before, the agent's default when hs lacks usernames. A helper that fails in the rules
// gives its default, like the original's graceful decorator.
func (st *state) run(l *Library, proc *Processor, msg *lua.LTable, hs Helpers, users []string) (*Result, []string) {
	L := st.L
	ptab, _ := st.procs.RawGetInt(proc.idx).(*lua.LTable)
	r := &Result{Processor: proc.Name, Usernames: []string{}, Packages: []string{}, Objects: []string{}}
	for i, h := range helperNames {
		if hs&(1<<i) == 0 {
			continue
		}
		var fv lua.LValue = lua.LNil
		if ptab != nil {
			fv = L.GetField(ptab, string(st.helpers[i]))
		}
		var out lua.LValue = lua.LNil
		failed := false
		switch f := fv.(type) {
		case *lua.LFunction:
			L.Push(f)
			L.Push(msg)
			L.Push(ptab)
			if err := L.PCall(2, 1, nil); err != nil {
				failed = true
				l.errs.Add(1)
				l.logger.Debug("meta rule failed", "processor", proc.Name, "helper", h, "topic", L.GetField(msg, "topic").String(), "err", err)
			} else {
				out = L.Get(-1)
				L.Pop(1)
			}
		default:
			out = fv
		}
		if t, ok := out.(*lua.LTable); ok {
			st.fill(t) // a rule may return a part of the message
		}
		switch h {
		case "usernames":
			r.Usernames = toSet(out)
			users = r.Usernames
		case "packages":
			r.Packages = toSet(out)
		case "objects":
			r.Objects = toSet(out)
		case "title":
			r.Title = luaString(out)
		case "subtitle":
			r.Subtitle = luaString(out)
		case "link":
			r.Link = luaString(out)
			if out == lua.LNil && !failed {
				r.nulls |= nullLink
			}
		case "icon":
			r.Icon = luaString(out)
			if out == lua.LNil && !failed {
				r.nulls |= nullIcon
			}
		case "secondary_icon":
			r.SecondaryIcon = luaString(out)
			if out == lua.LNil && !failed {
				r.nulls |= nullSecondaryIcon
			}
		case "agent":
			if fv == lua.LNil {
				// No agent rule: the single user name, if there is one.
				if len(users) == 1 {
					a := users[0]
					r.Agent = &a
				}
			} else if s, ok := out.(lua.LString); ok {
				a := string(s)
				r.Agent = &a
			}
		}
	}
	L.SetTop(0)
	return r, users
}

func luaString(v lua.LValue) string {
	switch x := v.(type) {
	case lua.LString:
		return string(x)
	case lua.LNumber:
		return x.String()
	}
	return ""
}

// toSet reads a set the rules returned: an array of strings, a table whose
// keys are the members (value true), or a single string. The result is
// sorted, without duplicates or empty strings, and never nil.
func toSet(v lua.LValue) []string {
	out := []string{}
	switch x := v.(type) {
	case lua.LString:
		if x != "" {
			out = append(out, string(x))
		}
		return out
	case *lua.LTable:
		x.ForEach(func(k, e lua.LValue) {
			if _, isNum := k.(lua.LNumber); isNum {
				if s := luaString(e); s != "" {
					out = append(out, s)
				}
				return
			}
			if ks, ok := k.(lua.LString); ok && e == lua.LTrue && ks != "" {
				out = append(out, string(ks))
			}
		})
	}
	if len(out) < 2 {
		return out
	}
	sort.Strings(out)
	j := 1
	for i := 1; i < len(out); i++ {
		if out[i] != out[j-1] {
			out[j] = out[i]
			j++
		}
	}
	return out[:j]
}
