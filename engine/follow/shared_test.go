package follow

import (
	"context"
	"testing"
	"time"

	"statscache/engine"
)

// fixedClock stands still at a time.
type fixedClock struct{ t time.Time }

func (c fixedClock) Now() time.Time                         { return c.t }
func (c fixedClock) After(d time.Duration) <-chan time.Time { return make(chan time.Time) }

// stubEngine takes the watermark and nothing else.
type stubEngine struct{ wm time.Time }

func (e *stubEngine) Ingest(context.Context, []*engine.Message) (engine.AppendResult, error) {
	return engine.AppendResult{}, nil
}
func (e *stubEngine) IngestSpan(context.Context, []*engine.Message, engine.Span) (engine.AppendResult, error) {
	return engine.AppendResult{}, nil
}
func (e *stubEngine) SetWatermark(t time.Time)    { e.wm = t }
func (e *stubEngine) Hold(string, int64)          {}
func (e *stubEngine) Positions() map[string]int64 { return nil }

// TestPromiseWaitsForPendingMessages: the watermark an instance publishes
// for the others is held at the oldest message its bus handed over that
// is not journaled yet, and moves on once the append committed.
func TestPromiseWaitsForPendingMessages(t *testing.T) {
	f := New(Config{Lateness: time.Second, Clock: fixedClock{time.UnixMicro(1000).Add(time.Second)}}, &stubEngine{}, nil, nil, nil)
	if _, ok := f.Promise(); ok {
		t.Fatal("a promise before any watermark was set")
	}
	f.setWatermark() // as Run does: now - lateness = 1000 µs
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
