package luaapi_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"statscache/engine"
	"statscache/luaapi"
)

// TestConcatErrorPositions: an error of a .. (compiled into a call of the
// sandbox's checked concatenation) names the line of the chain, as
// gopher-lua's own instruction did, in a model, in a lib module loaded
// with require, and at a script's top level (the load error check and a
// reload report); and the traceback stored with a model error names the
// script's lines and holds no NUL byte (the checked function's local is
// named with one, which a traceback must not show: SQLite tools and
// terminals cut text at it).
func TestConcatErrorPositions(t *testing.T) {
	dir := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "lib", "util"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "lib", "util", "join.lua"), []byte(`local M = {}
function M.key(a, b)
  return a .. ":" ..
    b
end
return M
`), 0o644))
	must(os.WriteFile(filepath.Join(dir, "m.lua"), []byte(`model { name = "cat", summary = "s", description = "d", columns = {{name = "n", type = "integer"}} }
local util = require("util.join")
function process(msg)
  if msg.topic == "a.b.c.lib" then
    return util.key(msg.topic, msg.nothing)
  end
  local k = "x" ..
    msg.topic ..
    msg.nothing
end
function update(db) end
`), 0o644))
	models, errs := luaapi.LoadDir(dir, luaapi.Options{})
	if len(errs) > 0 {
		t.Fatalf("load: %v", errs)
	}
	m := models[0]
	if err := m.Open(nopState{}); err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for _, tc := range []struct{ topic, want, frame string }{
		{"a.b.c.d", "m.lua:7: cannot perform concat operation between string and nil", "m.lua:7:"},
		{"a.b.c.lib", "join.lua:3: cannot perform concat operation between string and nil", "join.lua:3:"},
	} {
		err := m.Process(context.Background(), &engine.Message{ID: "x", Key: "x", Topic: tc.topic, TimeUS: 1})
		if err == nil || !strings.HasSuffix(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error ending in %q", tc.topic, err, tc.want)
			continue
		}
		var tb interface{ Traceback() string }
		if !errors.As(err, &tb) {
			t.Fatalf("%s: error %T has no traceback", tc.topic, err)
		}
		if tr := tb.Traceback(); !strings.Contains(tr, tc.frame) || strings.Contains(tr, "\x00") {
			t.Errorf("%s: traceback %q: want it to show %q and no NUL byte", tc.topic, tr, tc.frame)
		}
	}

	// At the top level, the load error names the line.
	must(os.WriteFile(filepath.Join(dir, "m.lua"), []byte(`model { name = "cat", summary = "s", description = "d", columns = {{name = "n", type = "integer"}} }
local prefix = "k"
  .. "-" ..
  {}
function process(msg) end
function update(db) end
`), 0o644))
	_, errs = luaapi.LoadDir(dir, luaapi.Options{})
	want := "m.lua:2: cannot perform concat operation between string and table"
	if len(errs) != 1 || !strings.HasSuffix(errs[0].Error(), want) {
		t.Fatalf("load errors %v, want one ending in %q", errs, want)
	}
}
