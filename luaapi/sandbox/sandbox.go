// Package sandbox builds the gopher-lua states that statscache runs
// untrusted Lua in: model scripts (package luaapi) and fedmsg.meta rules
// (package luaapi/meta). It is a leaf so that both share one definition of
// what a script may reach.
package sandbox

import lua "github.com/yuin/gopher-lua"

// Removed are the base-library functions a script has no business
// calling: they read files, load byte code or stall the whole process
// (collectgarbage runs Go's global GC).
var Removed = []string{"dofile", "loadfile", "load", "loadstring", "require", "module", "collectgarbage", "newproxy", "getfenv", "setfenv"}

// NewState returns an LState with opts (SkipOpenLibs is forced) and only
// the base, table, string and math libraries open, minus Removed.
func NewState(opts lua.Options) *lua.LState {
	opts.SkipOpenLibs = true
	L := lua.NewState(opts)
	for _, lib := range []struct {
		name string
		fn   lua.LGFunction
	}{
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
		{lua.StringLibName, lua.OpenString},
		{lua.MathLibName, lua.OpenMath},
	} {
		L.Push(L.NewFunction(lib.fn))
		L.Push(lua.LString(lib.name))
		L.Call(1, 0)
	}
	for _, g := range Removed {
		L.SetGlobal(g, lua.LNil)
	}
	return L
}
