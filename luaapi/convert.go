package luaapi

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"

	"github.com/valyala/fastjson"
	lua "github.com/yuin/gopher-lua"

	"statscache/luaapi/sandbox"
)

// fromJSON converts a parsed JSON value into Lua values: the conversion
// models and meta rules share (sandbox.JSON; null is nil, or false inside
// an array).
func fromJSON(L *lua.LState, v *fastjson.Value) lua.LValue {
	return sandbox.JSON{}.Value(L, v, 0)
}

// decodeJSON parses s and converts it with fromJSON.
func decodeJSON(L *lua.LState, p *fastjson.Parser, s string) (lua.LValue, error) {
	v, err := p.Parse(s)
	if err != nil {
		return nil, err
	}
	return fromJSON(L, v), nil
}

// fromGo converts a value read from a model table (a row of db.get) into
// a Lua value, by the same rules as fromJSON: nil inside a list is false.
func fromGo(L *lua.LState, v any) lua.LValue {
	switch x := v.(type) {
	case nil:
		return lua.LNil
	case bool:
		return lua.LBool(x)
	case string:
		return lua.LString(x)
	case int64:
		return lua.LNumber(x)
	case int:
		return lua.LNumber(x)
	case float64:
		return lua.LNumber(x)
	case json.Number:
		f, _ := x.Float64()
		return lua.LNumber(f)
	case []any:
		t := L.CreateTable(len(x), 0)
		for i, e := range x {
			lv := fromGo(L, e)
			if lv == lua.LNil {
				lv = lua.LFalse
			}
			t.RawSetInt(i+1, lv)
		}
		return t
	case map[string]any:
		t := L.CreateTable(0, len(x))
		for k, e := range x {
			t.RawSetString(k, fromGo(L, e))
		}
		return t
	}
	return lua.LString(fmt.Sprint(v))
}

// toGo converts a Lua value into plain Go values: float64, string, bool,
// nil, []any for sequences and map[string]any for other tables. Functions,
// userdata and cycles are errors, as is a value whose JSON would pass the
// default string cap (a table shared many times over can describe a value
// far larger than the memory it takes).
func toGo(v lua.LValue) (any, error) { return toGoL(nil, v, DefaultLimits.MaxString) }

// toGoL is toGo for a host function of a running call: it gives up once
// the value's JSON would pass max bytes, and looks at the call's context
// every few thousand values, as the built-ins do.
func toGoL(L *lua.LState, v lua.LValue, max int) (any, error) {
	c := &converter{L: L, max: max, budget: max}
	return c.conv(v, 0)
}

type converter struct {
	L           *lua.LState
	max, budget int
	steps       int
}

// spend counts n bytes of the value's JSON.
func (c *converter) spend(n int) error {
	c.steps++
	if c.L != nil && c.steps%4096 == 0 {
		sandbox.Interrupted(c.L)
	}
	if c.budget -= n; c.budget < 0 {
		return fmt.Errorf("the value is over %d bytes of JSON, the limit", c.max)
	}
	return nil
}

func (c *converter) conv(v lua.LValue, depth int) (any, error) {
	if depth > 64 {
		return nil, fmt.Errorf("table nested deeper than 64 levels (a cycle?)")
	}
	switch x := v.(type) {
	case *lua.LNilType:
		return nil, c.spend(4)
	case lua.LBool:
		return bool(x), c.spend(5)
	case lua.LString:
		return string(x), c.spend(len(x) + 2)
	case lua.LNumber:
		f := float64(x)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, fmt.Errorf("%v is not a finite number", f)
		}
		return f, c.spend(8)
	case *lua.LTable:
		if err := c.spend(2); err != nil {
			return nil, err
		}
		n := x.Len()
		if n > 0 {
			count := 0
			x.ForEach(func(lua.LValue, lua.LValue) { count++ })
			if count == n {
				out := make([]any, n)
				for i := 1; i <= n; i++ {
					e, err := c.conv(x.RawGetInt(i), depth+1)
					if err != nil {
						return nil, err
					}
					out[i-1] = e
				}
				return out, nil
			}
		}
		out := map[string]any{}
		var err error
		x.ForEach(func(k, e lua.LValue) {
			if err != nil {
				return
			}
			var key string
			switch kk := k.(type) {
			case lua.LString:
				key = string(kk)
			case lua.LNumber:
				key = strconv.FormatFloat(float64(kk), 'f', -1, 64)
			default:
				err = fmt.Errorf("table key of type %s cannot be stored", k.Type())
				return
			}
			if err = c.spend(len(key) + 3); err != nil {
				return
			}
			out[key], err = c.conv(e, depth+1)
		})
		return out, err
	}
	return nil, fmt.Errorf("a %s cannot be stored", v.Type())
}

// sortedKeys returns the string keys of a Lua table in order, for stable
// iteration in declarations.
func sortedKeys(t *lua.LTable) []string {
	var keys []string
	t.ForEach(func(k, _ lua.LValue) {
		if s, ok := k.(lua.LString); ok {
			keys = append(keys, string(s))
		}
	})
	sort.Strings(keys)
	return keys
}
