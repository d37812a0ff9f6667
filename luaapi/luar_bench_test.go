package luaapi

import (
	"testing"

	lua "github.com/yuin/gopher-lua"
	luar "layeh.com/gopher-luar"
)

// luarCounter is the counter bound with gopher-luar instead of by hand:
// the same Go code behind each method, reached through luar's reflected
// method table. BenchmarkCounterBinding measures what that costs on the
// per-message path (see README, "Host objects").
type luarCounter struct{ c *counter }

func (lc *luarCounter) Inc(L *luar.LState) int {
	lc.c.add(L.LState, nil, 1, L.GetTop(), 1)
	return 0
}

func (lc *luarCounter) Get(L *luar.LState) int {
	L.Push(lua.LNumber(lc.c.get(keyOf(L.LState, 1, L.GetTop()))))
	return 1
}

// BenchmarkCounterBinding: c:inc(k) and c:get(k), as process calls them
// for every message, through the hand-built binding and through
// gopher-luar.
func BenchmarkCounterBinding(b *testing.B) {
	const loop = `for i = 1, 1000 do c:inc("topic", i % 50) c:get("topic", i % 50) end`
	for _, bind := range []string{"hand", "luar"} {
		b.Run(bind, func(b *testing.B) {
			L := newState(nil)
			defer L.Close()
			registerCounterType(L, nil)
			if bind == "hand" {
				L.Push(L.NewFunction(newCounter))
				L.Call(0, 1)
				L.SetGlobal("c", L.Get(-1))
				L.Pop(1)
			} else {
				L.SetGlobal("c", luar.New(L, &luarCounter{c: newCounterValue()}))
			}
			fn, err := L.LoadString(loop)
			if err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				L.Push(fn)
				L.Call(0, 0)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/2000, "ns/call")
		})
	}
}
