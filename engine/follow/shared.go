package follow

import (
	"context"
	"math"
	"time"

	"statscache/engine"
)

// Several instances sharing one journal (engine/cluster) need two things
// from each follower: a promise of how far it has journaled (Promise),
// which the models of every instance respect, and the durable record of
// complete spans read again as other instances fill it (pollSpans), while
// only the instance holding the fill lease fetches (Config.FillGate).

// Promise returns the time (unix µs) before which this follower will
// journal nothing more, except messages that come later than the
// lateness allows (late anyway): the watermark it last set, lowered to
// the oldest message the bus handed over that is not journaled yet.
// False before Run has set a watermark.
func (f *Follower) Promise() (int64, bool) {
	f.pmu.Lock()
	set := f.wmSet
	f.pmu.Unlock()
	if !set {
		return 0, false
	}
	// Set afresh: after a pause (SIGSTOP, a frozen VM) the last one
	// would hold every instance back until the next tick.
	f.setWatermark()
	f.pmu.Lock()
	defer f.pmu.Unlock()
	p := f.lastWM
	for t := range f.pending {
		p = min(p, t)
	}
	return p, true
}

// noteWatermark records the watermark just set, for Promise.
func (f *Follower) noteWatermark(us int64) {
	f.pmu.Lock()
	f.lastWM, f.wmSet = us, true
	f.pmu.Unlock()
}

// pendingAdd counts a message the bus handed over, until it is journaled.
func (f *Follower) pendingAdd(m *engine.Message) {
	f.pmu.Lock()
	if f.pending == nil {
		f.pending = map[int64]int{}
	}
	f.pending[m.TimeUS]++
	f.pmu.Unlock()
}

// pendingDone forgets messages once their append committed.
func (f *Follower) pendingDone(msgs []*engine.Message) {
	f.pmu.Lock()
	for _, m := range msgs {
		if f.pending[m.TimeUS] <= 1 {
			delete(f.pending, m.TimeUS)
		} else {
			f.pending[m.TimeUS]--
		}
	}
	f.pmu.Unlock()
}

// pollSpans reads the durable record of complete spans every interval and
// moves the holds when another instance has filled what held them.
func (f *Follower) pollSpans(ctx context.Context, every time.Duration) {
	for {
		select {
		case <-f.cfg.Clock.After(every):
		case <-ctx.Done():
			return
		}
		spans, err := f.spans.CompleteSpans(ctx)
		if err != nil {
			if ctx.Err() == nil {
				f.log.Warn("read the record of complete spans", "err", err)
			}
			continue
		}
		f.mu.Lock()
		before := len(f.complete)
		var covered int64
		for _, s := range spans {
			f.complete = f.complete.add(s)
		}
		for _, s := range f.complete {
			covered += min(s.ToUS, math.MaxInt64/2) - s.FromUS
		}
		changed := len(f.complete) != before || covered != f.covered
		f.covered = covered
		f.mu.Unlock()
		if changed {
			f.updateHolds()
		}
	}
}

// mayFill reports whether this follower fetches from the archive now.
func (f *Follower) mayFill() bool { return f.cfg.FillGate == nil || f.cfg.FillGate() }
