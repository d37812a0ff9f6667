package sandbox

import (
	"fmt"
	"sync/atomic"

	lua "github.com/yuin/gopher-lua"
)

// Meter is the allocation account of the call running in an LState. Every
// built-in that builds a string or a table on a script's behalf asks it
// before allocating: a string over MaxString is refused with a Lua error,
// and a call whose built-ins have allocated more than MaxAlloc in total is
// stopped (Over is told, then the call raises). The host functions of
// package luaapi charge the same account.
//
// A Meter belongs to one LState and is used only by the goroutine running
// it.
type Meter struct {
	// MaxString bounds one string built by a built-in; 0 means 16 MiB.
	MaxString int
	// MaxAlloc bounds the bytes built-ins allocate during one call; 0
	// means no bound.
	MaxAlloc int64
	// Over is called once per call, before the raise, when the call goes
	// over MaxAlloc, with the reason; the caller stops the call for it.
	Over func(reason string)

	used int64
	over bool
}

// charged counts every byte charged by every Meter of the process. The
// heap watchdog of package luaapi takes it off the heap growth it sees:
// what the built-ins allocate is already charged to the call that asked
// for it, and must not be blamed on another call running meanwhile.
var charged atomic.Int64

// Charged returns the bytes charged by all Meters since the process
// started.
func Charged() int64 { return charged.Load() }

// DefaultMaxString is the string cap of a Meter that sets none.
const DefaultMaxString = 16 << 20

// Reset starts the account of a new call.
func (m *Meter) Reset() { m.used, m.over = 0, false }

// Used returns the bytes charged since the last Reset.
func (m *Meter) Used() int64 { return m.used }

func (m *Meter) maxString() int {
	if m == nil || m.MaxString <= 0 {
		return DefaultMaxString
	}
	return m.MaxString
}

// Charge counts n bytes allocated for the running call, and stops the call
// when it has allocated more than MaxAlloc.
func (m *Meter) Charge(L *lua.LState, n int64) {
	if m == nil || n <= 0 {
		return
	}
	m.used += n
	charged.Add(n)
	if m.MaxAlloc > 0 && m.used > m.MaxAlloc {
		reason := fmt.Sprintf("built-in functions allocated more than the limit of %d MiB during one call", m.MaxAlloc>>20)
		if !m.over && m.Over != nil {
			m.over = true
			m.Over(reason)
		}
		L.RaiseError("%s", reason)
	}
}

// String checks that a string of n bytes built by fn may be built, and
// charges it.
func (m *Meter) String(L *lua.LState, fn string, n int64) {
	if max := m.maxString(); n > int64(max) {
		L.RaiseError("%s: the result would be %d bytes, over the limit of %d", fn, n, max)
	}
	m.Charge(L, n)
}

// Interrupted raises the error of the call's context when the call must
// stop (its time limit passed, or it was cancelled). Built-ins that loop
// call it every few thousand steps, as the Lua VM does between
// instructions.
func Interrupted(L *lua.LState) {
	if ctx := L.Context(); ctx != nil {
		if err := ctx.Err(); err != nil {
			L.RaiseError("%s", err.Error())
		}
	}
}
