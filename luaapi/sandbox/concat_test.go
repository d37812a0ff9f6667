package sandbox

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	lua "github.com/yuin/gopher-lua"
	"github.com/yuin/gopher-lua/parse"
)

// runChunk runs src as a chunk in L, compiled by Compile (sandboxed) or by
// gopher-lua as shipped, and renders what it returned, or the error.
func runChunk(t testing.TB, L *lua.LState, src string, sandboxed bool) string {
	t.Helper()
	chunk, err := parse.Parse(strings.NewReader(src), "c.lua")
	if err != nil {
		t.Fatalf("parse %q: %v", src, err)
	}
	var fn *lua.LFunction
	if sandboxed {
		proto, err := Compile(chunk, "c.lua")
		if err != nil {
			t.Fatalf("compile %q: %v", src, err)
		}
		if fn, err = Chunk(L, proto); err != nil {
			t.Fatal(err)
		}
	} else {
		proto, err := lua.Compile(chunk, "c.lua")
		if err != nil {
			t.Fatalf("compile %q: %v", src, err)
		}
		fn = L.NewFunctionFromProto(proto)
	}
	top := L.GetTop()
	defer L.SetTop(top)
	L.Push(fn)
	if err := L.PCall(0, lua.MultRet, nil); err != nil {
		// The first line only: the traceback names different frames.
		return "error: " + strings.SplitN(err.Error(), "\n", 2)[0]
	}
	var out []string
	for i := top + 1; i <= L.GetTop(); i++ {
		v := L.Get(i)
		out = append(out, fmt.Sprintf("%s:%q", v.Type(), v.String()))
	}
	return strings.Join(out, " ")
}

// TestConcatMatchesVM: a chunk whose .. are rewritten into the checked
// call gives what gopher-lua's own OP_CONCAT gives, values and errors
// (with their line), in every place an expression can stand.
func TestConcatMatchesVM(t *testing.T) {
	mt := `local mt = {__concat = function(a, b)
  local x = type(a) == "table" and a.v or a
  local y = type(b) == "table" and b.v or b
  return "<" .. tostring(x) .. "|" .. tostring(y) .. ">"
end}
local function obj(v) return setmetatable({v = v}, mt) end
`
	for _, src := range []string{
		`return "a" .. "b"`,
		`return "a" .. "b" .. "c" .. "d"`,
		`return 1 .. 2`,
		`return 1.5 .. "x" .. -0.25 .. 1e100 .. 2^53`,
		`return ("a" .. "b") .. ("c" .. "d")`,
		`local function f() return "x", "y" end return f() .. f()`,
		`local function f() return "x", "y" end return "a" .. f()`,
		`local function f(...) return ... .. "!" end return f("a", "b")`,
		`local function f(...) return "!" .. ... end return f("a", "b")`,
		`local t = {["k" .. 1] = "v" .. 2, "p" .. "q"} return t.k1, t[1]`,
		`local s = "" for i = 1, 5 do s = s .. i end return s`,
		`local s = "" for i = 1, 3 .. "" do s = s .. i end return s`,
		`local t = {} t["a" .. "b"] = 1 return t.ab`,
		`return ("a" .. "b"):upper()`,
		`return #("abc" .. "de")`,
		`return "a" .. "b" == "ab", not ("a" .. "") , "x" .. "y" < "y"`,
		`local a = nil return a and a .. "x" or "none"`,
		`while ("a" .. "b") ~= "ab" do end return "ok"`,
		`repeat local x = 1 until "a" .. x == "a1" return "ok"`,
		`if "a" .. 1 == "a1" then return "then" else return "else" end`,
		`local function g(...) return select("#", ...) end return g("a" .. "b", "c" .. "d")`,
		`local t = {f = function(self, x) return x .. "!" end} return t:f("a" .. "b")`,
		`return (function() return "in" .. "ner" end)()`,
		`local o = {} function o.f(x) return x .. x end function o:g(x) return self.f(x) .. "g" end return o:g("z")`,
		mt + `return obj("a") .. "b"`,
		mt + `return "a" .. obj("b")`,
		mt + `return "a" .. obj("b") .. "c" .. "d"`,
		mt + `return obj(1) .. obj(2) .. obj(3)`,
		mt + `return (obj("a") .. "b") .. "c"`,
		// Both operands have a __concat: the left one's is taken.
		mt + `local r = setmetatable({v = "r"}, {__concat = function() return "R" end}) return obj("a") .. r, r .. obj("a")`,
		`return "a" .. nil`,
		`return {} .. "a"`,
		"local x = 1\n\nreturn \"a\" ..\n  x .. {}",
		`return "a" .. true`,
		`local function f() return "a" .. nil end return f()`,
		`local function f() error("in") end return "a" .. f()`,
		// After a return: the error names the line of the .., not the
		// caller's.
		"local function f()\n  return \"a\" .. nil\nend\nreturn f()",
		`return pcall(function() return "a" .. nil end)`,
		`local x = 0 local function f() x = x + 1 return x end return f() .. f() .. f()`,
	} {
		stock := runChunk(t, stockState(), src, false)
		ours := runChunk(t, NewState(lua.Options{}, nil), src, true)
		if stock != ours {
			t.Errorf("%s\nstock: %s\nours:  %s", src, stock, ours)
		}
	}
}

// TestConcatChecked: a .. result is checked against the Meter's string cap
// before it is built, and charged to the call; the cap cannot be bypassed
// by naming the checked function, which no source can.
func TestConcatChecked(t *testing.T) {
	m := &Meter{MaxString: 1 << 20}
	L := NewState(lua.Options{}, m)
	// Doubled 17 times, s would be 2 MiB: bounded, so that a broken check
	// fails the test instead of filling the memory.
	got := runChunk(t, L, `local s = "xxxxxxxxxxxxxxxx" for i = 1, 17 do s = s .. s end`, true)
	want := "error: c.lua:1: concatenation (..): the result would be 2097152 bytes, over the limit of 1048576"
	if got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
	// The strings built are 16 bytes doubled up to 1 MiB: 2 MiB in all.
	// Less means the call was not charged; more, that the refused 2 MiB
	// result was built. (Bytes, not seconds: a loaded machine under the
	// race detector can take seconds over the same work.)
	if used := m.Used(); used < 1<<20 || used >= 2<<20 {
		t.Errorf("charged %d bytes, want the strings built (1 to 2 MiB)", used)
	}

	m.Reset()
	// A chain is built at once, as the VM does: charged once.
	if got := runChunk(t, L, `return "a" .. "b" .. "c" .. "d"`, true); got != `string:"abcd"` || m.Used() != 4 {
		t.Errorf("got %s, charged %d; want abcd and 4", got, m.Used())
	}
	// The function's local is not reachable by name: a global of any
	// spelling is not it, and replacing one changes nothing.
	for _, src := range []string{
		`concat = function() return "hijacked" end return "a" .. "b"`,
		`_G["\0concat"] = function() return "hijacked" end return "a" .. "b"`,
		`local concat = nil return "a" .. "b"`,
	} {
		if got := runChunk(t, L, src, true); got != `string:"ab"` {
			t.Errorf("%s: got %s", src, got)
		}
	}
}

// TestConcatNumberText: the checked concatenation's own formatting of
// integral numbers gives the VM's text (lua.LVAsString) for numbers at and
// around its bounds and for random ones (bit patterns, integers around
// 2^53, scaled normals).
func TestConcatNumberText(t *testing.T) {
	vals := []float64{0, math.Copysign(0, -1), 1, -1, 1<<53 - 1, -(1<<53 - 1), 1 << 53, -(1 << 53), 1<<53 + 2,
		1e15, 1e16, 1e21, 1 << 62, 1 << 63, -(1 << 63), 0.5, -0.5, 0.1, math.Inf(1), math.Inf(-1), math.NaN(),
		math.MaxFloat64, -math.MaxFloat64, math.SmallestNonzeroFloat64, 123456789.000001}
	r := rand.New(rand.NewPCG(1, 2))
	for range 100_000 {
		vals = append(vals, math.Float64frombits(r.Uint64()), float64(r.Int64N(1<<55)-1<<54), math.Trunc(r.NormFloat64()*1e6))
	}
	for _, v := range vals {
		if got, want := asString(lua.LNumber(v)), lua.LVAsString(lua.LNumber(v)); got != want {
			t.Errorf("%v: got %q, want %q", v, got, want)
		}
	}
}

// FuzzConcatDifferential joins random operands with .. in random
// groupings, in one of several places an expression can stand, sandboxed
// and stock, and wants the same result or the same error. The first byte
// picks the place; each further byte an operand (low bits) and whether a
// parenthesis opens before it or closes after it (high bits). The operands
// cover numbers the VM formats specially, values of other types, and
// metamethods that return nothing, several values or a number, or raise.
func FuzzConcatDifferential(f *testing.F) {
	f.Add([]byte{0, 0, 1, 2, 3})
	f.Add([]byte{0, 5, 9, 0, 7, 4})
	f.Add([]byte{1, 8, 1, 8})
	f.Add([]byte{2, 26, 0, 26, 1})
	f.Add([]byte{5, 0, 21, 0})
	f.Add([]byte{3, 12, 13, 14, 15, 16, 17, 18, 19})
	f.Add([]byte{6, 0x80, 22, 0x40, 23, 24, 0x80, 8, 0x40, 8})
	f.Add([]byte{0, 8, 24})
	f.Add([]byte{1, 24, 8})
	operands := []string{`"a"`, `""`, `1`, `-2.5`, `1e300`, `s`, `n`, `f()`, `obj`, `nil`, `(f())`, `"\0"`,
		`-0`, `0/0`, `1/0`, `2^53`, `2^63`, `0.1`, `1e15`, `1e16`, `true`, `{}`,
		`none`, `multi`, `num`, `bad`, `...`, `(...)`, `s:upper()`, `t.k`, `t[s]`, `-n`}
	places := []string{
		"return %s",
		"local v = %s return v",
		"return (function(...) return %s end)(\"va\", 2)",
		"local t = {%s} return #t, t[1]",
		"return select(\"#\", %s)",
		"return pcall(function(...) return %s end, \"va\")",
		"local r for i = 1, 2 do r = %s end return r",
		"return s and %s or \"no\"",
		"local o = {} function o:m(...) return %s end return o:m(1, 2)",
		"local ok, e = pcall(function(...) return %s end) return ok, type(e)",
	}
	prelude := `local s, n = "str", 42
local t = {k = "kv", str = 5}
local function f() return "f1", "f2" end
local function side(a, b) return type(a) == "table" and "O" or tostring(a), type(b) == "table" and "O" or tostring(b) end
local obj = setmetatable({}, {__concat = function(a, b) local x, y = side(a, b) return x .. "+" .. y end})
local none = setmetatable({}, {__concat = function() end})
local multi = setmetatable({}, {__concat = function(a, b) local x, y = side(a, b) return x, y end})
local num = setmetatable({}, {__concat = function() return 7 end})
local bad = setmetatable({}, {__concat = function(a, b) error("bad " .. select(2, side(a, b)), 2) end})
`
	f.Fuzz(func(t *testing.T, gen []byte) {
		if len(gen) < 3 || len(gen) > 24 {
			t.Skip()
		}
		place, gen := places[int(gen[0])%len(places)], gen[1:]
		var b strings.Builder
		open := 0
		for i, g := range gen {
			if i > 0 {
				b.WriteString(" .. ")
			}
			if g&0x80 != 0 && i < len(gen)-1 {
				b.WriteString("(")
				open++
			}
			b.WriteString(operands[int(g&0x3f)%len(operands)])
			if g&0x40 != 0 && open > 0 {
				b.WriteString(")")
				open--
			}
		}
		b.WriteString(strings.Repeat(")", open))
		src := prelude + strings.Replace(place, "%s", b.String(), 1)
		stock := runChunk(t, stockState(), src, false)
		ours := runChunk(t, NewState(lua.Options{}, nil), src, true)
		if stock != ours {
			t.Errorf("%s\nstock: %s\nours:  %s", src, stock, ours)
		}
	})
}
