package sandbox

import (
	"strings"
	"testing"

	lua "github.com/yuin/gopher-lua"
	"github.com/yuin/gopher-lua/parse"
)

// benchConcat runs src's function, given b.N, once in a sandbox state,
// compiled by Compile or by gopher-lua as shipped.
func benchConcat(b *testing.B, src string, sandboxed bool) {
	L := NewState(lua.Options{}, nil)
	defer L.Close()
	chunk, err := parse.Parse(strings.NewReader(src), "bench.lua")
	if err != nil {
		b.Fatal(err)
	}
	var fn *lua.LFunction
	if sandboxed {
		proto, err := Compile(chunk, "bench.lua")
		if err != nil {
			b.Fatal(err)
		}
		if fn, err = Chunk(L, proto); err != nil {
			b.Fatal(err)
		}
	} else {
		proto, err := lua.Compile(chunk, "bench.lua")
		if err != nil {
			b.Fatal(err)
		}
		fn = L.NewFunctionFromProto(proto)
	}
	if err := L.CallByParam(lua.P{Fn: fn, NRet: 1, Protect: true}); err != nil {
		b.Fatal(err)
	}
	loop := L.Get(-1)
	L.Pop(1)
	b.ResetTimer()
	if err := L.CallByParam(lua.P{Fn: loop, NRet: 0, Protect: true}, lua.LNumber(b.N)); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkConcat: one op is one .. chain as models build keys, stock
// VM instruction against the checked call.
func BenchmarkConcat(b *testing.B) {
	for _, bc := range []struct{ name, src string }{
		{"key3", `local topic = "org.fedoraproject.prod.git.receive"
return function(n) for i = 1, n do local k = topic .. ":" .. i end end`},
		{"two", `local a, c = "org.fedoraproject", "prod"
return function(n) for i = 1, n do local k = a .. c end end`},
		{"strnum", `local a = "user:"
return function(n) for i = 1, n do local k = a .. i end end`},
	} {
		b.Run(bc.name+"/stock", func(b *testing.B) { benchConcat(b, bc.src, false) })
		b.Run(bc.name+"/sandbox", func(b *testing.B) { benchConcat(b, bc.src, true) })
	}
}
