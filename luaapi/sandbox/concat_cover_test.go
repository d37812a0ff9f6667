package sandbox

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	lua "github.com/yuin/gopher-lua"
	"github.com/yuin/gopher-lua/ast"
	"github.com/yuin/gopher-lua/parse"
)

// concatOps counts the VM's concatenation instructions in proto and the
// functions nested in it (an instruction's opcode is its top 6 bits).
func concatOps(proto *lua.FunctionProto) int {
	n := 0
	for _, inst := range proto.Code {
		if int(inst>>26) == lua.OP_CONCAT {
			n++
		}
	}
	for _, p := range proto.FunctionPrototypes {
		n += concatOps(p)
	}
	return n
}

// TestConcatLeavesNoVMConcat: a chunk compiled by Compile holds no OP_CONCAT,
// the unchecked instruction, wherever its .. stand: the differential tests
// cannot see a .. the rewrite missed, since the VM gives the same result
// unchecked. Checked on every shipped script, lib module and fedmsg.meta
// rule file, and on a chunk with a .. in every kind of statement and
// expression gopher-lua's AST has; each compiled by gopher-lua as shipped
// has some, so the count is not vacuous.
func TestConcatLeavesNoVMConcat(t *testing.T) {
	sources := map[string]string{"every-place.lua": `local a, b = "a" .. 1, {["k" .. 2] = "v" .. 3, "p" .. 4}
local function lf(...) return ... .. "x", select("#", ...) .. "" end
function gf(x) return x .. "g" end
local o = {} function o.f(x) return x .. "f" end function o:m(x) return self.f(x) .. "m" end
o["i" .. 1] = "x" .. "y"
lf("a" .. "b")
o:m("c" .. "d")
do local d = "do" .. 1 end
while ("w" .. 1) == "" do end
repeat local r = 1 until "r" .. r ~= ""
if "i" .. 1 == "" then elseif "e" .. 1 == "" then else local e = "el" .. "se" end
for i = #("a" .. "b"), -(1 .. "") do local f = i .. "" end
for k, v in pairs({"g" .. 1}) do local g = k .. v end
::top:: local n = not ("n" .. 1) and 1 + #("p" .. 2) < 3 or ("q" .. 3) > "a"
local fe = (function() return "fe" .. 1 end)
return ("ret" .. 1):upper() .. fe()
`}
	files, err := filepath.Glob("../../scripts/*.lua")
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{"lib", "meta"} {
		more, err := filepath.Glob(filepath.Join("../../scripts", dir, "*.lua"))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, more...)
	}
	if len(files) < 60 {
		t.Fatalf("found %d shipped Lua files, want the scripts, lib and meta rules", len(files))
	}
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		sources[f] = string(src)
	}
	stockTotal := 0
	for name, src := range sources {
		parsed := func() []ast.Stmt {
			chunk, err := parse.Parse(strings.NewReader(src), name)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			return chunk
		}
		stock, err := lua.Compile(parsed(), name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		ours, err := Compile(parsed(), name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		stockTotal += concatOps(stock)
		if n := concatOps(ours); n != 0 {
			t.Errorf("%s: %d OP_CONCAT left after the rewrite (stock has %d)", name, n, concatOps(stock))
		}
		if name == "every-place.lua" && concatOps(stock) < 30 {
			t.Errorf("%s: stock compiles %d OP_CONCAT, want one for each of its .. chains", name, concatOps(stock))
		}
	}
	if stockTotal < 100 {
		t.Errorf("stock gopher-lua compiles %d OP_CONCAT in all, want many: is the opcode read right?", stockTotal)
	}
}
