// Package luaapi runs statscache models written in Lua with gopher-lua:
// it loads and validates scripts, turns their declarations into engine
// model specs, sandboxes each model in its own LState and gives scripts the
// host modules they use (bucket, counter, state, db, json, log).
package luaapi

import (
	lua "github.com/yuin/gopher-lua"
)

// removedGlobals are base-library functions a model has no business
// calling: they read files, load byte code or stall the whole process
// (collectgarbage runs Go's global GC).
var removedGlobals = []string{"dofile", "loadfile", "load", "loadstring", "require", "module", "collectgarbage", "newproxy"}

// newState returns an LState with only the safe standard libraries open.
func newState() *lua.LState {
	L := lua.NewState(lua.Options{
		SkipOpenLibs:        true,
		CallStackSize:       200,
		RegistrySize:        1024 * 20,
		RegistryMaxSize:     1024 * 1024,
		MinimizeStackMemory: true,
	})
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
	for _, g := range removedGlobals {
		L.SetGlobal(g, lua.LNil)
	}
	return L
}
