package luaapi

import (
	"context"
	"fmt"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"time"

	lua "github.com/yuin/gopher-lua"

	"statscache/engine"
	"statscache/luaapi/sandbox"
)

// Limits bound what one model may cost. A model that exceeds one is
// stopped with an error wrapping engine.ErrModelLimit, which the engine
// turns into a quarantine: the model is marked failed with the reason and
// its cursor stays at its last good commit.
type Limits struct {
	// CallTimeout bounds one call of process, and the script's top level at
	// load; UpdateTimeout one call of update, which may write many rows.
	CallTimeout   time.Duration
	UpdateTimeout time.Duration
	// WorkTimeout bounds one call of a queue model's work, which may wait
	// for services over the network.
	WorkTimeout time.Duration
	// MaxString bounds a string built by a built-in function (string.rep,
	// string.format, string.gsub, table.concat, ...; see sandbox.Meter).
	MaxString int
	// MemoryLimit bounds the growth of the process heap during one call. The
	// Go heap is shared by every model, so a watchdog samples it every 20 ms
	// (runtime/metrics, live heap objects): a call still running at two
	// samples in a row whose heap grew by more than MemoryLimit since the
	// first is stopped. Ordinary calls last microseconds, so a call that
	// stays in Lua while the heap grows by hundreds of MiB is the one
	// growing it. Growth across calls (a table that grows without bound,
	// message after message) is bounded by MaxTableEntries instead.
	//
	// The same bound applies, exactly, to what the built-in and host
	// functions allocate on a call's behalf (sandbox.Meter): those bytes
	// are charged to the call that asked for them, so the heap watchdog is
	// only the last resort for what the host cannot see (the Lua VM's own
	// tables and the .. operator).
	MemoryLimit uint64
}

// DefaultLimits are generous for real models and still stop a runaway one
// long before it hurts the daemon.
var DefaultLimits = Limits{CallTimeout: 2 * time.Second, UpdateTimeout: 20 * time.Second, WorkTimeout: 2 * time.Minute, MaxString: 16 << 20, MemoryLimit: 512 << 20}

func (l Limits) withDefaults() Limits {
	if l.CallTimeout <= 0 {
		l.CallTimeout = DefaultLimits.CallTimeout
	}
	if l.UpdateTimeout <= 0 {
		l.UpdateTimeout = DefaultLimits.UpdateTimeout
	}
	if l.WorkTimeout <= 0 {
		l.WorkTimeout = DefaultLimits.WorkTimeout
	}
	if l.MaxString <= 0 {
		l.MaxString = DefaultLimits.MaxString
	}
	if l.MemoryLimit == 0 {
		l.MemoryLimit = DefaultLimits.MemoryLimit
	}
	return l
}

// guard tracks the call a model is in, so the watchdog can stop it. The
// per-call cost is two atomic stores and a clock read.
type guard struct {
	start atomic.Int64  // unix nanoseconds of the running call's start, 0 when idle
	seq   atomic.Uint64 // counts calls
	// host counts nested host calls that wait outside Lua (a state read, the
	// meta rules, a service): a call waiting there is not the one filling
	// the heap, and the wait does not count against its time limit (a
	// database busy with other models' reads must not quarantine a model).
	host   atomic.Int32
	limit  atomic.Int64 // the running call's time limit
	reason atomic.Pointer[string]
	cancel context.CancelFunc
	limits Limits
	name   string
	// meter is the running call's allocation account, charged by the
	// built-ins and host functions of the guard's LState.
	meter sandbox.Meter

	// Owned by the watchdog: the call it last saw running, and the heap
	// when it first saw it.
	seenSeq  uint64
	seenHeap uint64
	// seenCharged is sandbox.Charged() when seenHeap was taken.
	seenCharged int64
}

// newGuard returns a guard for a call of the named model (or script),
// watched by the watchdog, and the context its LState must run under: the
// guard cancels it to stop the call.
func newGuard(name string, lim Limits) (*guard, context.Context) {
	ctx, cancel := context.WithCancel(context.Background())
	g := &guard{cancel: cancel, limits: lim, name: name}
	g.meter = sandbox.Meter{MaxString: lim.MaxString, MaxAlloc: int64(lim.MemoryLimit), Over: g.stop}
	watch(g)
	return g, ctx
}

// metaWatch keeps the time limit of the fedmsg.meta rules with the
// watchdog, as for a model's call (meta.Limits.Watch).
func metaWatch(lim Limits) func(time.Duration, func(string)) func() {
	return func(limit time.Duration, stop func(string)) func() {
		g := &guard{limits: lim, name: "fedmsg.meta"}
		g.cancel = func() { stop(*g.reason.Load()) }
		watch(g)
		g.enter(limit)
		return func() {
			g.leave()
			unwatch(g)
		}
	}
}

// release takes the guard off the watchdog and cancels its context.
func (g *guard) release() {
	if g != nil {
		unwatch(g)
		g.cancel()
	}
}

// charge counts n bytes a host function allocates for the running call
// (see sandbox.Meter.Charge).
func (g *guard) charge(L *lua.LState, n int) {
	if g != nil {
		g.meter.Charge(L, int64(n))
	}
}

// maxString is the string cap of the guard's calls.
func (g *guard) maxString() int {
	if g == nil {
		return DefaultLimits.MaxString
	}
	return g.limits.MaxString
}

// chargeString checks and charges a string of n bytes built by fn.
func (g *guard) chargeString(L *lua.LState, fn string, n int) {
	if g != nil {
		g.meter.String(L, fn, int64(n))
	} else if n > DefaultLimits.MaxString {
		L.RaiseError("%s: the result would be %d bytes, over the limit of %d", fn, n, DefaultLimits.MaxString)
	}
}

func (g *guard) enter(limit time.Duration) {
	g.meter.Reset()
	// A call starts outside the host. A host function that panicked
	// between inHost and done (gopher-lua makes the panic the call's
	// error) left the count up, and the watchdog never stops a call
	// waiting in the host.
	g.host.Store(0)
	g.seq.Add(1)
	g.limit.Store(int64(limit))
	g.start.Store(time.Now().UnixNano())
}

func (g *guard) leave() { g.start.Store(0) }

// inHost marks the current call as waiting in a host function until the
// returned hostCall's done is called; the wait is taken off the call's
// running time by moving its start forward. It returns a value rather than
// a closure: state.get and fedmsg.meta call it for nearly every message of
// every model, and a closure per call was 50 MB of garbage per 100,000
// messages with every shipped model.
func (g *guard) inHost() hostCall {
	if g == nil {
		return hostCall{}
	}
	t0 := time.Now()
	g.host.Add(1)
	return hostCall{g: g, t0: t0}
}

// hostCall is one wait in a host function (see guard.inHost).
type hostCall struct {
	g  *guard
	t0 time.Time
}

// done ends the wait.
func (h hostCall) done() {
	if h.g == nil {
		return
	}
	if h.g.start.Load() != 0 {
		h.g.start.Add(int64(time.Since(h.t0)))
	}
	h.g.host.Add(-1)
}

func (g *guard) stop(reason string) {
	if g.reason.CompareAndSwap(nil, &reason) {
		g.cancel()
	}
}

// limitErr returns the error for a call the watchdog stopped, or nil.
func (g *guard) limitErr() error {
	if r := g.reason.Load(); r != nil {
		return fmt.Errorf("%s: %w: %s", g.name, engine.ErrModelLimit, *r)
	}
	return nil
}

// timeLimitReason is the reason of a call stopped for its time limit.
func timeLimitReason(limit time.Duration) string {
	return fmt.Sprintf("a call ran longer than the limit of %s", limit)
}

var heapSample = []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
var heapMu sync.Mutex

func heapBytes() uint64 {
	heapMu.Lock()
	defer heapMu.Unlock()
	metrics.Read(heapSample)
	if heapSample[0].Value.Kind() == metrics.KindUint64 {
		return heapSample[0].Value.Uint64()
	}
	return 0
}

// watchdog checks every running call a few times a second.
var watchdog = struct {
	once   sync.Once
	mu     sync.Mutex
	guards map[*guard]struct{}
}{guards: map[*guard]struct{}{}}

func watch(g *guard) {
	watchdog.once.Do(func() { go runWatchdog() })
	watchdog.mu.Lock()
	watchdog.guards[g] = struct{}{}
	watchdog.mu.Unlock()
}

func unwatch(g *guard) {
	watchdog.mu.Lock()
	delete(watchdog.guards, g)
	watchdog.mu.Unlock()
}

func runWatchdog() {
	// Often: a string doubled with .. grows tenfold in 20 ms, and only
	// the watchdog sees it. A tick costs one heap sample and a walk of
	// the running calls.
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for range t.C {
		checkGuards(time.Now(), heapBytes(), sandbox.Charged())
	}
}

// The watchdog's view of stalls: when it could not run for a while (a
// runaway model filling the heap makes the garbage collector stop the
// world), every call was stalled too, so time limits count from the end of
// the stall; likewise after a runaway call is stopped.
var lastTick, stallEnd time.Time

func checkGuards(now time.Time, heap uint64, charged int64) {
	watchdog.mu.Lock()
	defer watchdog.mu.Unlock()
	if !lastTick.IsZero() && now.Sub(lastTick) > 500*time.Millisecond {
		stallEnd = now
	}
	lastTick = now
	var suspect, overdue *guard
	for g := range watchdog.guards {
		s := g.start.Load()
		if s == 0 {
			continue
		}
		if seq := g.seq.Load(); seq != g.seenSeq {
			// A call first seen now: its baseline is now, not the previous
			// tick, so that garbage left by a call that has ended is not
			// blamed on one that just started.
			g.seenSeq, g.seenHeap, g.seenCharged = seq, heap, charged
			continue
		}
		if g.host.Load() > 0 {
			// Waiting for the host, which bounds its own waits; what the
			// heap does meanwhile is not this call's doing.
			g.seenHeap, g.seenCharged = heap, charged
			continue
		}
		limit := time.Duration(g.limit.Load())
		started := time.Unix(0, s)
		if started.Before(stallEnd) {
			started = stallEnd
		}
		if now.Sub(started) > limit {
			// Only the longest-running call over its limit is stopped per
			// tick: when a runaway call starves the machine, the calls it
			// stalled started later, and finish once it is stopped.
			if overdue == nil || s < overdue.start.Load() {
				overdue = g
			}
			continue
		}
		// The call has run since the previous tick at least. Ordinary calls
		// take microseconds; of the long ones that saw the heap grow past
		// the limit, the one running longest is stopped, one per tick, until
		// the growth stops. (A call merely slowed down by the garbage
		// collector started later than the call that fills the heap.)
		// What the built-ins allocated meanwhile is charged to the calls
		// that asked for it (and bounded there): only the growth the host
		// could not see counts here.
		unseen := int64(heap) - int64(g.seenHeap) - (charged - g.seenCharged)
		if unseen > int64(g.limits.MemoryLimit) && g.host.Load() == 0 && (suspect == nil || s < suspect.start.Load()) {
			suspect = g
		}
	}
	switch {
	case overdue != nil:
		overdue.stop(timeLimitReason(time.Duration(overdue.limit.Load())))
	case suspect != nil:
		suspect.stop(fmt.Sprintf("the heap grew by more than the limit of %d MiB during one call", suspect.limits.MemoryLimit>>20))
	default:
		return
	}
	// The stopped call leaves its garbage and the stall it caused behind:
	// the other calls' clocks and heap baselines start again from here.
	stallEnd = now
	for g := range watchdog.guards {
		g.seenHeap, g.seenCharged = heap, charged
	}
}

// MaxTableEntries bounds how many table entries (and counter keys) a model
// may keep reachable between commits; see Model.checkSize.
const MaxTableEntries = 2_000_000

// sizeCheckEvery returns after how many process calls the next size check
// runs: rarely enough that the walk costs well under one entry visit per
// message however large the tables are (a model's globals alone, the
// standard library included, are a few hundred entries: walking them every
// 64 calls was an eighth of the volume models' process cost), and, when the
// tables grow, before they can reach the limit at the rate they grew since
// the previous check.
func sizeCheckEvery(count, prevCount, calls int) int {
	every := min(max(count*4, 1024), 5000)
	if grew := count - prevCount; grew > 0 && calls > 0 {
		perCall := max(1, grew/calls)
		every = min(every, max(1, (MaxTableEntries-count)/perCall/2))
	}
	return every
}

// checkSize counts the entries of every table and counter reachable from
// the model's globals and the upvalues of its functions, and fails when a
// model keeps more than MaxTableEntries between commits: the signature of a
// table that grows without bound. The walk stops as soon as the limit is
// passed, so it costs at most the limit.
func (m *Model) checkSize() error {
	if m.sizeSeen == nil {
		m.sizeSeen = map[any]bool{}
	}
	seen := m.sizeSeen
	defer clear(seen)
	n := 0
	var walk func(v lua.LValue) bool
	walk = func(v lua.LValue) bool {
		if n > MaxTableEntries {
			return false
		}
		switch x := v.(type) {
		case *lua.LTable:
			if seen[x] {
				return true
			}
			seen[x] = true
			ok := true
			x.ForEach(func(k, e lua.LValue) {
				if !ok {
					return
				}
				n++
				ok = walk(k) && walk(e)
			})
			if mt, isT := x.Metatable.(*lua.LTable); isT {
				ok = ok && walk(mt)
			}
			return ok
		case *lua.LFunction:
			if seen[x] {
				return true
			}
			seen[x] = true
			for _, uv := range x.Upvalues {
				if uv != nil && !walk(uv.Value()) {
					return false
				}
			}
		case *lua.LUserData:
			if c, ok := x.Value.(*counter); ok {
				n += len(c.keys)
			}
		}
		return n <= MaxTableEntries
	}
	ok := walk(m.L.G.Global)
	m.untilSizeCheck = sizeCheckEvery(n, m.sizeCount, m.sizeCalls)
	m.sizeCount, m.sizeCalls = n, m.untilSizeCheck
	if !ok {
		return fmt.Errorf("%s: %w: its tables hold more than %d entries between commits (a table that grows without bound?)",
			m.spec.Ident, engine.ErrModelLimit, MaxTableEntries)
	}
	return nil
}
