package luaapi

import (
	"runtime"
	"strconv"
	"testing"
)

// TestCounterLetsGoAfterABurst: a counter drained once with many keys and
// then, batch after batch, with few, does not keep the room of the burst
// (a map keeps its room however few keys it holds, and clearing it costs
// that room at every drain), whether add_counts hands its slices back or
// drain's iterator keeps them.
func TestCounterLetsGoAfterABurst(t *testing.T) {
	heap := func() int64 {
		var ms runtime.MemStats
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&ms)
		return int64(ms.HeapAlloc)
	}
	fill := func(c *counter, n int, prefix string) {
		for i := range n {
			k := ckey{n: 1}
			k.kind[0], k.s[0] = kindString, prefix+strconv.Itoa(i)
			if _, ok := c.idx[k]; !ok {
				c.idx[k] = int32(len(c.keys))
				c.keys = append(c.keys, k)
				c.sums = append(c.sums, 0)
			}
			c.sums[c.idx[k]]++
		}
	}
	// Which batches add_counts writes (and hands the slices back); drain's
	// iterator reads the others.
	for _, mode := range []struct {
		name     string
		recycled func(batch int) bool
	}{
		{"add_counts", func(int) bool { return true }},
		{"drain", func(int) bool { return false }},
		{"drain after the burst", func(b int) bool { return b != 2 }},
	} {
		before := heap()
		c := newCounterValue()
		const burst = 300_000 // about 130 MB of map and slices
		for b := range 6 {
			n := 50
			if b == 1 {
				n = burst
			}
			fill(c, n, "k")
			order, sums := c.take()
			if len(order) != n || sums[0] != 1 || order[n-1].s[0] != "k"+strconv.Itoa(n-1) {
				t.Fatalf("batch %d: %d keys, first sum %v, last key %q", b, len(order), sums[0], order[n-1].s[0])
			}
			if mode.recycled(b) {
				c.recycle(order, sums)
			}
		}
		kept := heap() - before
		t.Logf("%s: %d MB", mode.name, kept>>20)
		if kept > 16<<20 {
			t.Errorf("%s: the counter keeps %d MB four batches of 50 keys after a batch of %d", mode.name, kept>>20, burst)
		}
		runtime.KeepAlive(c)
	}
}
