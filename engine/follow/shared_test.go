package follow

import (
	"testing"

	"statscache/engine"
)

// TestPromiseWaitsForPendingMessages: the watermark an instance publishes
// for the others is held at the oldest message its bus handed over that
// is not journaled yet, and moves on once the append committed.
func TestPromiseWaitsForPendingMessages(t *testing.T) {
	f := New(Config{}, nil, nil, nil, nil)
	if _, ok := f.Promise(); ok {
		t.Fatal("a promise before any watermark was set")
	}
	f.noteWatermark(1000)
	a, b := &engine.Message{TimeUS: 400}, &engine.Message{TimeUS: 700}
	f.pendingAdd(b)
	f.pendingAdd(a)
	f.pendingAdd(a)
	if p, _ := f.Promise(); p != 400 {
		t.Errorf("promise %d with messages of 400 and 700 pending, want 400", p)
	}
	f.pendingDone([]*engine.Message{a})
	if p, _ := f.Promise(); p != 400 {
		t.Errorf("promise %d with one of two messages of 400 journaled, want 400", p)
	}
	f.pendingDone([]*engine.Message{a, b})
	if p, _ := f.Promise(); p != 1000 {
		t.Errorf("promise %d with nothing pending, want the watermark 1000", p)
	}
}
