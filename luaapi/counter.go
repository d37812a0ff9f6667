package luaapi

import (
	lua "github.com/yuin/gopher-lua"
)

// counter is a Go map of sums keyed by up to maxKeyParts values. Counting
// in Go instead of a Lua table keyed by concatenated strings is the single
// largest saving on the per-message path (see README, Benchmark).
type counter struct {
	// idx finds a key's place in keys and sums, which hold the keys in
	// first-seen order (so drains are deterministic) and their sums: a
	// count of a key already seen is one map lookup.
	idx  map[ckey]int32
	keys []ckey
	sums []float64
	// spareKeys and spareSums are emptied slices given back by recycle,
	// reused by the next take.
	spareKeys []ckey
	spareSums []float64
	// peak is the most keys a take found since idx was made; a take that
	// finds far fewer after a burst makes them anew (see take).
	peak int
}

// counterKeepRoom is how many keys' room a counter keeps whatever its
// drains find: about 1.5 MB with both slices.
const counterKeepRoom = 4096

func newCounterValue() *counter { return &counter{idx: map[ckey]int32{}} }

// get returns the sum of k, 0 when absent.
func (c *counter) get(k ckey) float64 {
	if i, ok := c.idx[k]; ok {
		return c.sums[i]
	}
	return 0
}

const maxKeyParts = 4

// ckey is a counter key: up to maxKeyParts strings, numbers or booleans,
// held by type rather than as lua.LValue interfaces, so that the map hashes
// plain strings and floats (hashing interfaces went through the runtime's
// type-generic hash and was a tenth of the per-message cost of the volume
// models).
type ckey struct {
	n    int8
	kind [maxKeyParts]uint8 // kindString, kindNumber, kindBool
	s    [maxKeyParts]string
	f    [maxKeyParts]float64 // a number, or 1 for true and 0 for false
}

const (
	kindString = iota + 1
	kindNumber
	kindBool
)

// value returns key part i as the script gave it.
func (k *ckey) value(i int) lua.LValue {
	switch k.kind[i] {
	case kindString:
		return lua.LString(k.s[i])
	case kindNumber:
		return lua.LNumber(k.f[i])
	}
	return lua.LBool(k.f[i] != 0)
}

const counterType = "statscache.counter"

func registerCounterType(L *lua.LState, g *guard) {
	mt := L.NewTypeMetatable(counterType)
	methods := L.NewTable()
	L.SetFuncs(methods, map[string]lua.LGFunction{
		// c:add(k1, ..., kn, amount): adds amount to the sum of (k1..kn).
		"add": func(L *lua.LState) int {
			c := checkCounter(L)
			top := L.GetTop()
			n := L.CheckNumber(top)
			c.add(L, g, 2, top-1, float64(n))
			return 0
		},
		// c:inc(k1, ..., kn): adds 1.
		"inc": func(L *lua.LState) int {
			c := checkCounter(L)
			c.add(L, g, 2, L.GetTop(), 1)
			return 0
		},
		// c:get(k1, ..., kn) -> the sum, 0 when absent.
		"get": func(L *lua.LState) int {
			c := checkCounter(L)
			k := keyOf(L, 2, L.GetTop())
			L.Push(lua.LNumber(c.get(k)))
			return 1
		},
		// c:len() -> how many keys hold a sum.
		"len": func(L *lua.LState) int {
			L.Push(lua.LNumber(len(checkCounter(L).keys)))
			return 1
		},
		// for k1, ..., kn, sum in c:drain() do ... end: every sum in
		// first-seen order; the counter is empty afterwards.
		"drain": func(L *lua.LState) int {
			c := checkCounter(L)
			g.charge(L, 64)
			order, sums := c.take()
			i := 0
			L.Push(L.NewFunction(func(L *lua.LState) int {
				if i >= len(order) {
					L.Push(lua.LNil)
					return 1
				}
				k := order[i]
				i++
				for j := 0; j < int(k.n); j++ {
					L.Push(k.value(j))
				}
				L.Push(lua.LNumber(sums[i-1]))
				return int(k.n) + 1
			}))
			return 1
		},
	})
	mt.RawSetString("__index", methods)
}

// take empties the counter and returns its keys in first-seen order and
// their sums. The index keeps its room, and the key and sum slices come
// from what recycle gave back when it can: a counting model drains its
// counters once a batch, and building them anew each time was 170 MB of
// garbage per 100,000 messages with every shipped model.
//
// A map keeps its room however few keys it holds, and clearing it costs
// that room: after a burst (a drain finding more than counterKeepRoom keys
// and four times as many as this one), the index and slices are made anew
// for about as many keys as this drain found, and the spare slices are
// dropped, so that one large batch does not cost its memory, and its room
// at every drain, for as long as the model runs.
func (c *counter) take() ([]ckey, []float64) {
	order, sums := c.keys, c.sums
	c.peak = max(c.peak, len(order))
	if c.peak > counterKeepRoom && len(order) < c.peak/4 {
		c.idx = make(map[ckey]int32, len(order))
		c.keys, c.sums = make([]ckey, 0, len(order)), make([]float64, 0, len(order))
		c.spareKeys, c.spareSums = nil, nil
		c.peak = len(order)
		return order, sums
	}
	clear(c.idx)
	if c.spareKeys != nil {
		c.keys, c.sums = c.spareKeys, c.spareSums
		c.spareKeys, c.spareSums = nil, nil
	} else {
		// The next batch likely has about as many keys.
		c.keys, c.sums = make([]ckey, 0, len(order)), make([]float64, 0, len(order))
	}
	return order, sums
}

// recycle gives back what take returned once nothing reads it any more,
// for the next take to fill. (drain's iterator does not: the script may
// drain again while it still iterates.)
func (c *counter) recycle(order []ckey, sums []float64) {
	clear(order) // let go of the key strings
	c.spareKeys, c.spareSums = order[:0], sums[:0]
}

// goValue returns key part i as toRow converts the Lua value the script
// gave: a string, a float64 or a bool.
func (k *ckey) goValue(i int) any {
	switch k.kind[i] {
	case kindString:
		return k.s[i]
	case kindNumber:
		return k.f[i]
	}
	return k.f[i] != 0
}

func newCounter(L *lua.LState) int {
	ud := L.NewUserData()
	ud.Value = newCounterValue()
	L.SetMetatable(ud, L.GetTypeMetatable(counterType))
	L.Push(ud)
	return 1
}

func checkCounter(L *lua.LState) *counter {
	return checkCounterAt(L, 1, "counter expected (call it as c:add(...))")
}

// checkCounterAt returns the counter at stack index n, raising msg when
// there is none.
func checkCounterAt(L *lua.LState, n int, msg string) *counter {
	ud := L.CheckUserData(n)
	c, ok := ud.Value.(*counter)
	if !ok {
		L.ArgError(n, msg)
	}
	return c
}

func keyOf(L *lua.LState, from, to int) ckey {
	var k ckey
	n := to - from + 1
	if n < 1 || n > maxKeyParts {
		L.RaiseError("counter keys: want 1 to %d key values, got %d", maxKeyParts, max(n, 0))
	}
	k.n = int8(n)
	for i := 0; i < n; i++ {
		v := L.Get(from + i)
		switch x := v.(type) {
		case lua.LString:
			k.kind[i], k.s[i] = kindString, string(x)
		case lua.LBool:
			k.kind[i] = kindBool
			if x {
				k.f[i] = 1
			}
		case lua.LNumber:
			if x != x { // NaN never equals itself and would leak keys
				L.ArgError(from+i, "key is NaN")
			}
			k.kind[i], k.f[i] = kindNumber, float64(x)
		default:
			L.ArgError(from+i, "counter keys must be strings, numbers or booleans, not "+v.Type().String())
		}
	}
	return k
}

// counterKeySize is what one new key of a counter costs (its map entry
// and its place in the order), charged to the call that adds it.
const counterKeySize = 128

func (c *counter) add(L *lua.LState, g *guard, from, to int, n float64) {
	k := keyOf(L, from, to)
	if i, ok := c.idx[k]; ok {
		c.sums[i] += n
		return
	}
	g.charge(L, counterKeySize)
	c.idx[k] = int32(len(c.keys))
	c.keys = append(c.keys, k)
	c.sums = append(c.sums, n)
}
