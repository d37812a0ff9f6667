// Package sandbox builds the gopher-lua states that statscache runs
// untrusted Lua in: model scripts (package luaapi) and fedmsg.meta rules
// (package luaapi/meta). It is a leaf so that both share one definition of
// what a script may reach, and of the built-ins that respect a call's
// limits (see lib.go and Meter).
package sandbox

import lua "github.com/yuin/gopher-lua"

// Removed are the base-library functions a script has no business
// calling: they read files, load byte code, print to the process's
// standard output or stall the whole process (collectgarbage runs Go's
// global GC).
var Removed = []string{"dofile", "loadfile", "load", "loadstring", "require", "module", "collectgarbage", "newproxy", "getfenv", "setfenv", "_printregs"}

// NewState returns an LState with opts (SkipOpenLibs is forced) and only
// the base, table, string and math libraries open, minus Removed, with the
// built-ins that can run long or allocate replaced by versions that look
// at the call's context and charge m (nil: a Meter with the default string
// cap and no allocation bound).
func NewState(opts lua.Options, m *Meter) *lua.LState {
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
	if m == nil {
		m = &Meter{}
	}
	installLimited(L, m)
	installConcat(L, m)
	return L
}
