package luaapi

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"

	"github.com/valyala/fastjson"
	lua "github.com/yuin/gopher-lua"

	"statscache/engine"
)

// installHost gives a model's LState the host API. Every function carries
// its Lua signature in a comment; misuse raises an error with the script's
// line, expected failures return nil and a message.
func installHost(L *lua.LState, m *Model) {
	if m.interval > 0 {
		L.SetGlobal("interval", lua.LNumber(m.interval.Seconds()))
	}
	// bucket(t [, interval]) -> the end of the bucket holding time t.
	L.SetGlobal("bucket", L.NewFunction(m.luaBucket))
	// counter() -> a Go-backed table of sums keyed by up to 4 values.
	L.SetGlobal("counter", L.NewFunction(newCounter))
	registerCounterType(L, m.guard)
	L.SetGlobal("state", stateModule(L, m))
	L.SetGlobal("json", jsonModule(L, m.guard))
	L.SetGlobal("queue", queueModule(L, m))
	L.SetGlobal("http", httpModule(L, m))
	L.SetGlobal("retry", L.NewFunction(luaRetry(m)))
	installRequire(L, m.opts.Lib, m.opts.LibLabel, m.recordLib)
	if m.opts.Meta != nil {
		L.SetGlobal("meta", metaModule(L, m, m.opts.Meta))
	} else {
		missing := L.NewTable()
		mt := L.NewTable()
		mt.RawSetString("__index", L.NewFunction(func(L *lua.LState) int {
			L.RaiseError("meta.%s: the fedmsg.meta rules are not loaded (no meta folder in the scripts directory)", L.OptString(2, "?"))
			return 0
		}))
		L.SetMetatable(missing, mt)
		L.SetGlobal("meta", missing)
	}
	logf := L.NewFunction(func(L *lua.LState) int {
		parts := make([]string, L.GetTop())
		n := 0
		for i := range parts {
			parts[i] = L.ToStringMeta(L.Get(i + 1)).String()
			n += len(parts[i]) + 1
		}
		m.guard.chargeString(L, "log", n)
		m.log.Info(strings.Join(parts, " "), "script", m.script.Path)
		return 0
	})
	L.SetGlobal("log", logf)
	L.SetGlobal("print", logf)
}

// luaBucket: bucket(t [, interval]) -> number. interval is "1h"-style,
// seconds, or a calendar interval ("1w", "1mo"); it defaults to the model's
// own interval.
func (m *Model) luaBucket(L *lua.LState) int {
	t := float64(L.CheckNumber(1))
	iv := m.interval
	if L.GetTop() >= 2 {
		var err error
		switch x := L.Get(2).(type) {
		case lua.LString:
			iv, err = engine.ParseInterval(string(x))
		case lua.LNumber:
			iv, err = engine.ParseInterval(fmt.Sprint(float64(x)))
		default:
			err = fmt.Errorf("interval must be a string or a number")
		}
		if err != nil {
			L.ArgError(2, err.Error())
		}
	}
	if iv <= 0 {
		L.RaiseError("bucket: this model declares no interval; pass one, e.g. bucket(msg.time, \"1h\")")
	}
	if math.IsNaN(t) || math.IsInf(t, 0) {
		L.ArgError(1, "time must be a finite number")
	}
	us := int64(math.Round(t * 1e6))
	L.Push(lua.LNumber(float64(engine.Bucket(us, iv)) / 1e6))
	return 1
}

// stateModule: state.get(key) -> value|nil, state.set(key, value),
// state.delete(key), state.incr(key [, n]) -> new value. Values are any
// JSON-encodable Lua value; they commit with the model's rows and cursor.
func stateModule(L *lua.LState, m *Model) *lua.LTable {
	t := L.NewTable()
	need := func(L *lua.LState) engine.State {
		if m.worker {
			L.RaiseError("state is not available in work(item): return what done needs, and keep state there")
		}
		if m.state == nil {
			L.RaiseError("state is not available while the script loads; use it in process or update")
		}
		return m.state
	}
	get := func(L *lua.LState, key string) lua.LValue {
		// need raises where there is no state: before inHost, or a script
		// that catches the error would leave the call marked as waiting in
		// the host, where the watchdog never stops it.
		st := need(L)
		host := m.guard.inHost()
		v, ok, err := st.Get(key)
		host.done()
		if err != nil {
			L.RaiseError("state.get(%q): %v", key, err)
		}
		if !ok {
			return lua.LNil
		}
		m.guard.charge(L, 2*len(v)) // the decoded value, about twice its JSON
		lv, err := decodeJSON(L, &m.p, v)
		if err != nil {
			L.RaiseError("state.get(%q): stored value is not JSON: %v", key, err)
		}
		return lv
	}
	set := func(L *lua.LState, key string, v lua.LValue) {
		st := need(L)
		if v == lua.LNil {
			st.Delete(key)
			return
		}
		g, err := toGoL(L, v, m.guard.maxString())
		if err != nil {
			L.RaiseError("state.set(%q): %v", key, err)
		}
		b, err := json.Marshal(g)
		if err != nil {
			L.RaiseError("state.set(%q): %v", key, err)
		}
		st.Set(key, string(b))
	}
	L.SetFuncs(t, map[string]lua.LGFunction{
		"get": func(L *lua.LState) int {
			L.Push(get(L, L.CheckString(1)))
			return 1
		},
		"set": func(L *lua.LState) int {
			set(L, L.CheckString(1), L.Get(2))
			return 0
		},
		"delete": func(L *lua.LState) int {
			need(L).Delete(L.CheckString(1))
			return 0
		},
		"incr": func(L *lua.LState) int {
			key := L.CheckString(1)
			n := L.OptNumber(2, 1)
			cur, _ := get(L, key).(lua.LNumber)
			v := cur + n
			set(L, key, v)
			L.Push(v)
			return 1
		},
	})
	return t
}

// jsonModule: json.encode(v) -> string | nil, err; json.decode(s) -> v | nil, err.
func jsonModule(L *lua.LState, gd *guard) *lua.LTable {
	var p fastjson.Parser // one LState runs one call at a time
	t := L.NewTable()
	L.SetFuncs(t, map[string]lua.LGFunction{
		"encode": func(L *lua.LState) int {
			g, err := toGoL(L, L.Get(1), gd.maxString())
			if err == nil {
				var b []byte
				if b, err = json.Marshal(g); err == nil {
					gd.chargeString(L, "json.encode", len(b))
					L.Push(lua.LString(b))
					return 1
				}
			}
			L.Push(lua.LNil)
			L.Push(lua.LString(err.Error()))
			return 2
		},
		"decode": func(L *lua.LState) int {
			s := L.CheckString(1)
			gd.charge(L, 2*len(s)) // the decoded value, about twice its JSON
			v, err := decodeJSON(L, &p, s)
			if err != nil {
				L.Push(lua.LNil)
				L.Push(lua.LString(err.Error()))
				return 2
			}
			L.Push(v)
			return 1
		},
	})
	return t
}

// newDBTable builds the db object passed to update: db:insert(row),
// db:upsert(row), db:add(row), db:add_counts(counter, keys, column),
// db:get(key) -> row|nil. It works only while
// update runs; rows go into the same transaction as the model's cursor.
func newDBTable(L *lua.LState, m *Model) *lua.LTable {
	t := L.NewTable()
	rowArg := func(L *lua.LState) *lua.LTable {
		// Accept both db:add(row) and db.add(row).
		if L.GetTop() >= 2 && L.Get(1) == t {
			return L.CheckTable(2)
		}
		return L.CheckTable(1)
	}
	write := func(name string, fn func(engine.RowWriter, engine.Row) error) lua.LGFunction {
		return func(L *lua.LState) int {
			if m.writer == nil {
				L.RaiseError("db.%s: the db is only usable inside update(db)", name)
			}
			row, err := toRow(L, rowArg(L), m.guard.maxString())
			if err != nil {
				L.RaiseError("db.%s: %v", name, err)
			}
			if err := fn(m.writer, row); err != nil {
				L.RaiseError("db.%s: %v", name, err)
			}
			return 0
		}
	}
	L.SetFuncs(t, map[string]lua.LGFunction{
		"insert": write("insert", engine.RowWriter.Insert),
		"upsert": write("upsert", engine.RowWriter.Upsert),
		"add":    write("add", engine.RowWriter.Add),
		// db:add_counts(c, {col1, ..., coln}, col): every sum of counter c
		// as db:add{col1 = k1, ..., coln = kn, col = sum}.
		"add_counts": dbAddCounts(m, t),
		"get": func(L *lua.LState) int {
			if m.writer == nil {
				L.RaiseError("db.get: the db is only usable inside update(db)")
			}
			key, err := toRow(L, rowArg(L), m.guard.maxString())
			if err != nil {
				L.RaiseError("db.get: %v", err)
			}
			host := m.guard.inHost()
			row, err := m.writer.Get(key)
			host.done()
			if err != nil {
				L.RaiseError("db.get: %v", err)
			}
			if row == nil {
				L.Push(lua.LNil)
				return 1
			}
			m.guard.charge(L, 64*len(row))
			out := L.CreateTable(0, len(row))
			for k, v := range row {
				out.RawSetString(k, fromGo(L, v))
			}
			L.Push(out)
			return 1
		},
	})
	return t
}

// toRow converts a row table; its JSON may take up to max bytes.
func toRow(L *lua.LState, t *lua.LTable, max int) (engine.Row, error) {
	c := &converter{L: L, max: max, budget: max}
	row := engine.Row{}
	var err error
	t.ForEach(func(k, v lua.LValue) {
		if err != nil {
			return
		}
		ks, ok := k.(lua.LString)
		if !ok {
			err = fmt.Errorf("row keys must be column names, got a %s", k.Type())
			return
		}
		row[string(ks)], err = c.conv(v, 0)
		if err != nil {
			err = fmt.Errorf("column %q: %v", ks, err)
		}
	})
	return row, err
}
