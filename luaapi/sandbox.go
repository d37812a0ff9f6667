// Package luaapi runs statscache models written in Lua with gopher-lua:
// it loads and validates scripts, turns their declarations into engine
// model specs, sandboxes each model in its own LState and gives scripts the
// host modules they use (bucket, counter, state, db, json, log, meta).
package luaapi

import (
	lua "github.com/yuin/gopher-lua"

	"statscache/luaapi/sandbox"
)

// newState returns a model's LState: the shared sandbox, with a call stack
// and registry small enough that runaway recursion fails fast.
func newState() *lua.LState {
	return sandbox.NewState(lua.Options{
		CallStackSize:       200,
		RegistrySize:        1024 * 20,
		RegistryMaxSize:     1024 * 1024,
		MinimizeStackMemory: true,
	})
}
