// Package luaapi runs statscache models written in Lua with gopher-lua:
// it loads and validates scripts, turns their declarations into engine
// model specs, sandboxes each model in its own LState and gives scripts the
// host modules they use (bucket, counter, state, db, json, log, meta).
package luaapi

import (
	lua "github.com/yuin/gopher-lua"

	"statscache/luaapi/sandbox"
)

// newState returns a model's LState: the shared sandbox, whose built-ins
// charge m, with a call stack and registry small enough that runaway
// recursion fails fast.
func newState(m *sandbox.Meter) *lua.LState {
	return sandbox.NewState(lua.Options{
		CallStackSize:       200,
		RegistrySize:        1024 * 20,
		RegistryMaxSize:     1024 * 1024,
		MinimizeStackMemory: true,
	}, m)
}

// rawGlobal reads a global without metamethods: probing a script for its
// functions must not run its code (a script may give _G an __index that
// raises or loops).
func rawGlobal(L *lua.LState, name string) lua.LValue {
	return L.G.Global.RawGetString(name)
}
