package follow

import (
	"math"
	"time"
)

// CatchingUp is implemented by a Bus that, after a start or a reconnect,
// delivers messages older than some it may have delivered already: an
// AMQP queue's backlog, which begins with what the broker requeued
// (delivered to the previous connection, never acknowledged, and so maybe
// never journaled). While it reports true the watermark does not move on,
// so that no model commits past those messages (they would be late for
// it); for MaxCatchUp at most, so that a broker that stays unreachable
// does not stop the models for ever.
type CatchingUp interface {
	CatchingUp() bool
}

// MaxCatchUp bounds how long the watermark waits for a bus to catch up.
const MaxCatchUp = 2 * time.Minute

// catchUp is the watermark hold of a catching-up bus; only setWatermark
// touches it (from Run, then from its ticker goroutine).
type catchUp struct {
	holding, expired bool
	at, last         int64 // the hold, and the last watermark set
	since            time.Time
}

// busHold returns the watermark wm lowered to the hold of a bus that is
// catching up. The first hold after the start is the furthest committed
// position of any model: nothing committed past it before the start, and
// the backlog is no older than that (lateness kept every model behind
// what the bus had delivered).
func (f *Follower) busHold(now time.Time, wm int64) int64 {
	cu, ok := f.bus.(CatchingUp)
	c := &f.catchUp
	if !ok || !cu.CatchingUp() {
		c.holding, c.expired = false, false
		c.last = wm
		return wm
	}
	if !c.holding && !c.expired {
		c.holding, c.since, c.at = true, now, c.last
		if c.at == 0 {
			c.at = f.furthestPosition(wm)
		}
	}
	if c.holding && now.Sub(c.since) > MaxCatchUp {
		c.holding, c.expired = false, true
		f.log.Warn("the bus has not caught up with its backlog: the models move on; what it delivers behind them counts as late", "waited", MaxCatchUp)
	}
	if c.holding {
		wm = min(wm, c.at)
	}
	c.last = wm
	return wm
}

// furthestPosition is the furthest committed position of any model (the
// start of history for one that has committed nothing), or wm without
// models.
func (f *Follower) furthestPosition(wm int64) int64 {
	best := int64(math.MinInt64)
	for _, p := range f.eng.Positions() {
		best = max(best, p)
	}
	if best == math.MinInt64 {
		return wm
	}
	return best
}
