package luaapi_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"statscache/engine"
	"statscache/luaapi"
)

func TestRequireFromLib(t *testing.T) {
	dir := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "lib", "util"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "lib", "util", "text.lua"), []byte(`
local M = {}
function M.shout(s) return string.upper(s) .. "!" end
return M
`), 0o644))
	model := func(body string) string {
		return `model { name = "req", summary = "s", description = "d", columns = {{name = "n", type = "integer"}} }
` + body + `
function update(db) end
`
	}
	tests := []struct {
		name, src, wantErr string
	}{
		{"OK", `local text = require("util.text")
assert(text.shout("hi") == "HI!")
assert(require("util.text") == text, "loaded once")
function process(msg) end`, ""},
		{"ErrPath", `local x = require("../secret")
function process(msg) end`, "want dotted names"},
		{"ErrMissing", `local x = require("util.nothing")
function process(msg) end`, "not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			must(os.WriteFile(filepath.Join(dir, "m.lua"), []byte(model(tt.src)), 0o644))
			models, errs := luaapi.LoadDir(dir, luaapi.Options{})
			if tt.wantErr == "" {
				if len(errs) > 0 {
					t.Fatalf("load: %v", errs)
				}
				if err := models[0].Open(nopState{}); err != nil {
					t.Fatalf("open: %v", err)
				}
				defer models[0].Close()
				if err := models[0].Process(context.Background(), &engine.Message{ID: "x", Key: "x", Topic: "a.b.c.d", TimeUS: 1}); err != nil {
					t.Fatal(err)
				}
				return
			}
			if len(errs) != 1 || !strings.Contains(errs[0].Error(), tt.wantErr) {
				t.Fatalf("errors %v, want one mentioning %q", errs, tt.wantErr)
			}
		})
	}
}

type nopState struct{}

func (nopState) Get(string) (string, bool, error) { return "", false, nil }
func (nopState) Set(string, string)               {}
func (nopState) Delete(string)                    {}
