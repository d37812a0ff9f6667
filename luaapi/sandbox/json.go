package sandbox

import (
	"github.com/valyala/fastjson"
	lua "github.com/yuin/gopher-lua"
)

// MaxJSONDepth bounds the conversion of nested JSON to Lua; deeper values
// read as nil. The engine rejects records nested deeper than 64 levels, so
// no real message reaches it.
const MaxJSONDepth = 64

// JSON is the one conversion of JSON values to Lua, shared by models (the
// message's body and headers, json.decode, state.get, work items and
// results) and the fedmsg.meta rules: an object becomes a table keyed by
// member name, an array a sequence, a string, number or boolean the same
// in Lua. null is nil, so a null member reads like a missing one, except
// inside an array, where it is false: the array keeps its length, and #
// and ipairs see every element.
type JSON struct {
	// Object, when set, converts objects instead (the meta rules make
	// them lazily, on their first read); depth is the object's own.
	Object func(v *fastjson.Value, depth int) lua.LValue
}

// Value converts v, found depth levels down.
func (c JSON) Value(L *lua.LState, v *fastjson.Value, depth int) lua.LValue {
	if v == nil || depth > MaxJSONDepth {
		return lua.LNil
	}
	switch v.Type() {
	case fastjson.TypeObject:
		if c.Object != nil {
			return c.Object(v, depth)
		}
		o, _ := v.Object()
		t := L.CreateTable(0, o.Len())
		o.Visit(func(k []byte, x *fastjson.Value) {
			if lv := c.Value(L, x, depth+1); lv != lua.LNil {
				t.RawSetString(string(k), lv)
			}
		})
		return t
	case fastjson.TypeArray:
		a, _ := v.Array()
		t := L.CreateTable(len(a), 0)
		for i, x := range a {
			lv := c.Value(L, x, depth+1)
			if lv == lua.LNil {
				lv = lua.LFalse
			}
			t.RawSetInt(i+1, lv)
		}
		return t
	case fastjson.TypeString:
		return lua.LString(v.GetStringBytes())
	case fastjson.TypeNumber:
		return lua.LNumber(v.GetFloat64())
	case fastjson.TypeTrue:
		return lua.LTrue
	case fastjson.TypeFalse:
		return lua.LFalse
	}
	return lua.LNil
}
