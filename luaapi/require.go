package luaapi

import (
	"bytes"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"strings"

	lua "github.com/yuin/gopher-lua"
	"github.com/yuin/gopher-lua/parse"

	"statscache/luaapi/sandbox"
)

var moduleNameRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$`)

// installRequire gives scripts a require limited to the lib folder of the
// scripts directory: require("util.text") runs lib/util/text.lua once per
// model state and returns what it returned. No other file can be reached:
// names are plain dotted identifiers, and the folder is an fs.FS rooted at
// lib.
//
// record, when not nil, is told of every file loaded (its path under lib
// and its source), so that a script's version covers the helpers it uses.
func installRequire(L *lua.LState, lib fs.FS, label string, record func(file string, src []byte)) {
	loaded := L.NewTable()
	loading := map[string]bool{}
	L.SetGlobal("require", L.NewFunction(func(L *lua.LState) int {
		name := L.CheckString(1)
		if v := loaded.RawGetString(name); v != lua.LNil {
			L.Push(v)
			return 1
		}
		if !moduleNameRe.MatchString(name) {
			L.ArgError(1, fmt.Sprintf("module name %q: want dotted names like \"util.text\"", name))
		}
		if lib == nil {
			L.RaiseError("require(%q): there is no lib folder in the scripts directory", name)
		}
		if loading[name] {
			L.RaiseError("require(%q): circular require", name)
		}
		file := path.Join(strings.Split(name, ".")...) + ".lua"
		src, err := fs.ReadFile(lib, file)
		if err != nil {
			L.RaiseError("require(%q): %s/%s: not found", name, label, file)
		}
		if record != nil {
			record(file, src)
		}
		chunk, err := parse.Parse(bytes.NewReader(src), label+"/"+file)
		if err != nil {
			L.RaiseError("require(%q): syntax error: %v", name, err)
		}
		proto, err := sandbox.Compile(chunk, label+"/"+file)
		if err != nil {
			L.RaiseError("require(%q): %v", name, err)
		}
		top, err := sandbox.Chunk(L, proto)
		if err != nil {
			L.RaiseError("require(%q): %v", name, err)
		}
		loading[name] = true
		L.Push(top)
		L.Call(0, 1)
		delete(loading, name)
		v := L.Get(-1)
		L.Pop(1)
		if v == lua.LNil {
			v = lua.LTrue
		}
		loaded.RawSetString(name, v)
		L.Push(v)
		return 1
	}))
}
