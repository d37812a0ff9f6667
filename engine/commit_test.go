package engine_test

import (
	"context"
	"reflect"
	"testing"
	"time"

	"statscache/engine"
)

// within polls cond every 10 ms until it holds or d passes.
func within(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return cond()
}

// runFollow runs e in follow mode until the returned stop is called.
func runFollow(t *testing.T, e *engine.Engine) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx, true) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("Run did not return 20 s after its context ended")
		}
	}
	t.Cleanup(stop)
	return stop
}

// TestEngineSlowUpdateDoesNotStall: while one model's update runs for
// seconds, Ingest returns at once and the other models go on committing.
// The update runs outside the commit lock, which Ingest needs.
func TestEngineSlowUpdateDoesNotStall(t *testing.T) {
	db := openTestDB(t, "")
	slow, fast := newFake("slow"), newFake("fast")
	inUpdate := make(chan struct{}, 1)
	release := make(chan struct{})
	slow.onFlush = func(*fakeModel) {
		select {
		case inUpdate <- struct{}{}:
		default:
		}
		select { // an update that takes seconds
		case <-release:
		case <-time.After(5 * time.Second):
		}
	}
	e := newEngine(t, db, engine.Config{BatchInterval: 20 * time.Millisecond}, slow, fast)
	stop := runFollow(t, e)
	m1, m2 := message(t, "s1", tBuild, 1), message(t, "s2", tBodhi, 2)
	ingest(t, e, m1)
	select {
	case <-inUpdate:
	case <-time.After(5 * time.Second):
		t.Fatal("the slow model never started its update")
	}

	t0 := time.Now()
	res := ingest(t, e, m2)
	if took := time.Since(t0); took > time.Second {
		t.Errorf("Ingest took %s while a model was in its update; want it not to wait for it", took.Round(time.Millisecond))
	}
	if res.Added != 1 || res.Late != 0 {
		t.Errorf("Ingest = %+v, want one message added, none late", res)
	}
	if !within(3*time.Second, func() bool { return db.model(t, "fast").Cursor == m2.Pos() }) {
		t.Errorf("the fast model did not commit %s while the slow one was in its update (cursor %+v)", m2.ID, db.model(t, "fast").Cursor)
	}
	if got := db.model(t, "slow").Cursor; got != (engine.Position{}) {
		t.Errorf("the slow model committed %+v before its update returned", got)
	}
	close(release)
	if !within(5*time.Second, func() bool { return db.model(t, "slow").Cursor == m2.Pos() }) {
		t.Errorf("the slow model did not catch up after its update returned (cursor %+v)", db.model(t, "slow").Cursor)
	}
	stop()
	want := map[string]int64{tBuild: 1, tBodhi: 1}
	for _, ident := range []string{"slow", "fast"} {
		if got := db.counts(t, ident); !reflect.DeepEqual(got, want) {
			t.Errorf("%s rows %v, want %v", ident, got, want)
		}
	}
}

// TestEngineInsertDuringUpdateIsSeen: a message appended behind where a
// model has processed to, after its last commit, while its update runs
// (outside the commit lock), is still seen by the model, in order, before
// it commits; it is not late.
func TestEngineInsertDuringUpdateIsSeen(t *testing.T) {
	db := openTestDB(t, "")
	f := newFake("during")
	e := newEngine(t, db, engine.Config{}, f)
	ingest(t, e, message(t, "m5", tBuild, 5))
	run(t, e) // committed cursor: m5

	done := make(chan engine.AppendResult, 1)
	ingested := false
	armed := true
	f.onFlush = func(*fakeModel) {
		if !armed {
			return
		}
		armed = false
		go func() {
			r, err := e.Ingest(context.Background(), []*engine.Message{message(t, "m50", tBodhi, 50)})
			if err != nil {
				t.Error(err)
			}
			done <- r
		}()
		select {
		case r := <-done:
			ingested = true
			done <- r
		case <-time.After(2 * time.Second):
			// Ingest waits for the update to return.
		}
	}
	ingest(t, e, message(t, "m10", tBuild, 10), message(t, "m100", tBuild, 100))
	run(t, e)
	if !ingested {
		t.Error("Ingest waited for the model's update to return")
	}
	res := <-done
	var seen []string
	for _, p := range f.seen {
		seen = append(seen, p.Key)
	}
	// The batch m10, m100 is processed again from the last commit, with m50.
	if want := []string{"m5", "m10", "m100", "m10", "m50", "m100"}; !reflect.DeepEqual(seen, want) {
		t.Errorf("model processed %v, want %v", seen, want)
	}
	var late int
	if err := db.sql.QueryRow(`SELECT late FROM journal WHERE key = 'm50'`).Scan(&late); err != nil {
		t.Fatal(err)
	}
	if res.Late != 0 || late != 0 {
		t.Errorf("Append reported %d late, journal flag %d; want the message seen, not late", res.Late, late)
	}
	if got, want := db.counts(t, "during"), map[string]int64{tBuild: 3, tBodhi: 1}; !reflect.DeepEqual(got, want) {
		t.Errorf("rows %v, want %v", got, want)
	}
	if m := db.model(t, "during"); m.Processed != 4 || m.Cursor.Key != "m100" {
		t.Errorf("model %+v, want 4 processed up to m100", m)
	}
}
