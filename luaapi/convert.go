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
// userdata and cycles are errors.
func toGo(v lua.LValue) (any, error) { return toGoDepth(v, 0) }

func toGoDepth(v lua.LValue, depth int) (any, error) {
	if depth > 64 {
		return nil, fmt.Errorf("table nested deeper than 64 levels (a cycle?)")
	}
	switch x := v.(type) {
	case *lua.LNilType:
		return nil, nil
	case lua.LBool:
		return bool(x), nil
	case lua.LString:
		return string(x), nil
	case lua.LNumber:
		f := float64(x)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, fmt.Errorf("%v is not a finite number", f)
		}
		return f, nil
	case *lua.LTable:
		n := x.Len()
		if n > 0 {
			count := 0
			x.ForEach(func(lua.LValue, lua.LValue) { count++ })
			if count == n {
				out := make([]any, n)
				for i := 1; i <= n; i++ {
					e, err := toGoDepth(x.RawGetInt(i), depth+1)
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
			out[key], err = toGoDepth(e, depth+1)
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
