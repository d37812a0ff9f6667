package engine

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestWithDrain: a drained context outlives its parent's end by the drain,
// and no more; with a stop clock, one made after the stop gets only what
// is left of the drain, so that work begun late in a shutdown (a model's
// last commit, after it waited for a lock) ends with the rest.
func TestWithDrain(t *testing.T) {
	const drain = 4 * time.Second
	base, stop := context.WithCancel(context.Background())
	parent := WithStopClock(base)
	early, cancelEarly := WithDrain(parent, drain)
	defer cancelEarly()
	stop()
	select {
	case <-early.Done():
		t.Fatal("the drained context ended with its parent")
	case <-time.After(time.Second):
	}
	// Made three quarters into the drain: it ends with the first one,
	// a second later, not a whole drain after it was made (3 s later than
	// that; the check leaves 2 s of slack).
	time.Sleep(2 * time.Second)
	late, cancelLate := WithDrain(parent, drain)
	defer cancelLate()
	<-early.Done()
	if !errors.Is(context.Cause(early), ErrDrainOver) {
		t.Errorf("cause %v, want ErrDrainOver", context.Cause(early))
	}
	select {
	case <-late.Done():
	case <-time.After(2 * time.Second):
		t.Error("a drained context made late in the stop got a fresh drain")
	}

	// Released before the stop: it ends at once, with its parent alive.
	alive, cancelAlive := context.WithCancel(context.Background())
	defer cancelAlive()
	d, cancel := WithDrain(alive, time.Hour)
	cancel()
	<-d.Done()
	if errors.Is(context.Cause(d), ErrDrainOver) {
		t.Error("a released context says its drain is over")
	}
}

// TestWithDrainOverEndsAtOnce: a drained context asked for once the drain
// of its stop clock is over has ended when WithDrain returns, every time,
// so that no store work (a commit, a model's failed status) begins after
// the drain. Before, it ended a moment later, in a goroutine, and a quick
// SQLite write could get through first. And a clock whose context ended a
// moment ago counts from then even before its own goroutine noted it.
func TestWithDrainOverEndsAtOnce(t *testing.T) {
	base, stop := context.WithCancel(context.Background())
	parent := WithStopClock(base)
	stop()
	time.Sleep(100 * time.Millisecond)
	for i := range 1000 {
		d, cancel := WithDrain(parent, 50*time.Millisecond)
		err := context.Cause(d)
		cancel()
		if !errors.Is(err, ErrDrainOver) {
			t.Fatalf("try %d: a context made after the drain has cause %v at once, want ErrDrainOver", i, err)
		}
	}
	// A clock on a context that has not ended leaves the whole drain to a
	// child that has (a runner's own stop inside a live engine).
	alive, cancelAlive := context.WithCancel(context.Background())
	defer cancelAlive()
	clocked := WithStopClock(alive)
	child, cancelChild := context.WithCancel(clocked)
	cancelChild()
	d, cancel := WithDrain(child, time.Hour)
	defer cancel()
	if d.Err() != nil {
		t.Fatal("a child's end shortened the drain of a clock whose context is alive")
	}
	if c := clocked.Value(stopClockKey{}).(*stopClock); c.at.Load() != 0 {
		t.Fatal("a child's end was noted on a clock whose context is alive")
	}
}
