package engine

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"
)

// Sleep waits for d or until ctx ends, and reports whether the whole wait
// passed: every retry loop of the engine and its sources waits with it, so
// that a shutdown never waits out a backoff.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// Jitter spreads d over [d/2, d], so that many subscribers that lost the
// same server do not reconnect all at once.
func Jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2+1)
}

// WithDrain returns a context for store work that a stop must not cut short
// at once (a transaction is written whole or not at all, a lease is handed
// back) but that must not outlast the drain either: it does not end with
// ctx, but drain after ctx ended. A database that stops answering (a paused
// server, a dead network path) then holds a shutdown up for drain at most:
// the work cut short is a transaction the database rolls back, done again
// at the next start. The drain counts from the moment ctx ended when ctx
// carries a stop clock (WithStopClock), also for a context made after that
// moment; otherwise from when WithDrain sees ctx end. cancel releases the
// context.
func WithDrain(ctx context.Context, drain time.Duration) (context.Context, context.CancelFunc) {
	dctx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	over := func() error { return fmt.Errorf("%w: %s after the stop", ErrDrainOver, drain) }
	// A context made once the drain is over ends before it is returned:
	// the timer below fires in a goroutine of its own, and store work
	// begun before that (a short SQLite write) would still get through
	// after the drain, a commit the stop no longer expects, or a model's
	// status set to failed because its reads were cut.
	if ctx.Err() != nil && drainLeft(ctx, drain) <= 0 {
		cancel(over())
		return dctx, func() { cancel(context.Canceled) }
	}
	stop := context.AfterFunc(ctx, func() {
		t := time.NewTimer(drainLeft(ctx, drain))
		defer t.Stop()
		select {
		case <-t.C:
			cancel(over())
		case <-dctx.Done():
		}
	})
	return dctx, func() {
		stop()
		cancel(context.Canceled)
	}
}

// drainLeft is what is left of the drain of ctx, which has ended: drain
// from the stop clock's moment when ctx carries one, else all of it. The
// clock notes its moment in a goroutine of its own; one whose context has
// ended but that has not noted it yet is noted here, now, which is no later
// than the clock would. (The clock may sit on a parent of ctx that has not
// ended: then the drain is all there.)
func drainLeft(ctx context.Context, drain time.Duration) time.Duration {
	c, ok := ctx.Value(stopClockKey{}).(*stopClock)
	if !ok {
		return drain
	}
	if c.ctx.Err() != nil {
		c.at.CompareAndSwap(0, time.Now().UnixNano())
	}
	at := c.at.Load()
	if at == 0 {
		return drain
	}
	return time.Until(time.Unix(0, at).Add(drain))
}

// ErrDrainOver is the cause of a WithDrain context ended by its drain.
var ErrDrainOver = errors.New("the drain time is over")

type stopClockKey struct{}

// stopClock holds when a context ended (unix ns), 0 before.
type stopClock struct {
	at  atomic.Int64
	ctx context.Context // the context whose end it notes
}

// WithStopClock returns ctx noting the moment it ends, so that every drain
// derived from it (WithDrain) ends at the same time however late the work
// began: a model that reaches its last commit only after waiting for a lock
// gets what is left of the drain, not a fresh one.
func WithStopClock(ctx context.Context) context.Context {
	c := &stopClock{ctx: ctx}
	ctx = context.WithValue(ctx, stopClockKey{}, c)
	context.AfterFunc(ctx, func() { c.at.CompareAndSwap(0, time.Now().UnixNano()) })
	return ctx
}
