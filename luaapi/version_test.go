package luaapi_test

import (
	"os"
	"path/filepath"
	"testing"

	"statscache/luaapi"
)

// TestVersionCoversRequiredHelpers: a model's Version, which a reload
// compares to decide whether to restart it, changes when a lib file its
// script requires changes (lib/system_accounts.lua for the contributor
// models), and not when an unrelated lib file does.
func TestVersionCoversRequiredHelpers(t *testing.T) {
	dir := t.TempDir()
	write := func(name, src string) {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("people.lua", `
local system = {}
for _, n in ipairs(require("accounts")) do system[n] = true end
model {name = "people", summary = "s", description = "d", interval = "1w", columns = {{name = "n", type = "integer"}}}
function process(msg) end
function update(db) end
`)
	write("plain.lua", `
model {name = "plain", summary = "s", description = "d", interval = "1h", columns = {{name = "n", type = "integer"}}}
function process(msg) end
function update(db) end
`)
	write("lib/accounts.lua", `return {"bodhi"}`)
	write("lib/other.lua", `return {}`)
	versions := func() map[string]string {
		t.Helper()
		models, errs := luaapi.LoadDir(dir, luaapi.Options{})
		if len(errs) > 0 {
			t.Fatal(errs)
		}
		out := map[string]string{}
		for _, m := range models {
			out[m.Spec().Ident] = m.Spec().Version
		}
		return out
	}
	v1 := versions()
	if v1["people-1w"] == "" || v1["plain-1h"] == "" {
		t.Fatalf("versions %v", v1)
	}
	if again := versions(); again["people-1w"] != v1["people-1w"] || again["plain-1h"] != v1["plain-1h"] {
		t.Errorf("loading the same files twice gives other versions: %v, %v", v1, again)
	}
	write("lib/other.lua", `return {1}`)
	if v := versions(); v["people-1w"] != v1["people-1w"] || v["plain-1h"] != v1["plain-1h"] {
		t.Errorf("a lib file no script requires changed the versions: %v, %v", v1, v)
	}
	write("lib/accounts.lua", `return {"bodhi", "releng"}`)
	v2 := versions()
	if v2["people-1w"] == v1["people-1w"] {
		t.Errorf("people-1w kept version %s after the helper it requires changed", v1["people-1w"])
	}
	if v2["plain-1h"] != v1["plain-1h"] {
		t.Errorf("plain-1h, which requires nothing, changed version")
	}
}
