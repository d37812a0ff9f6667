package follow_test

import (
	"context"
	"database/sql"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"statscache/engine"
	"statscache/engine/follow"
	"statscache/engine/sqlstore"
)

// scenario is the standard world: two hours of history only in the
// archive, five minutes of live traffic on the bus (and in the archive).
func scenario(t *testing.T, seed uint64) (*world, []*engine.Message) {
	rng := rand.New(rand.NewPCG(seed, 1))
	history := spread(rng, 0, 600, T0.Add(-2*time.Hour), T0)
	live := spread(rng, 600, 300, T0, T0.Add(5*time.Minute))
	w := newWorld(t, history, live)
	return w, append(history, live...)
}

// done reports whether every model's table holds want.
func (w *world) done(want map[int64]int64, idents ...string) func() bool {
	total := sum(want)
	return func() bool {
		for _, id := range idents {
			if sum(w.table(id)) != total {
				return false
			}
		}
		return true
	}
}

// TestKillAtEveryStep kills the daemon before each archive window's
// transaction, before model commits and before live appends, then starts
// it again and lets it finish: every table equals the recount, nothing is
// late, nothing is lost or counted twice.
func TestKillAtEveryStep(t *testing.T) {
	// Every archive window and live check; model commits and live appends
	// sampled (there are many of them).
	kinds := map[string][]int{
		"span":   {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20}, // before the n-th archive window (or live check) commits
		"commit": {0, 1, 2, 3, 5, 8, 13, 21, 34},                                             // before the n-th model commit
		"append": {0, 1, 2, 4, 8, 16, 32},                                                    // before the n-th live append
	}
	for kind, ns := range kinds {
		for _, n := range ns {
			began := time.Now()
			w, all := scenario(t, 7)
			want := recount(all, w.cfg.Start, T0.Add(time.Hour))
			epoch := w.cfg.Start
			r := w.start(func(k string, i int) bool { return k == kind && i == n }, epoch, newMinuteModel("a"), newMinuteModel("b"))
			finished := r.drive(2*time.Second, 20*time.Second, w.done(want, "a", "b"))
			died := r.store.isDead()
			r.stop()
			if finished && !died {
				break // the run ends before the n-th such transaction
			}
			if !died {
				t.Fatalf("%s %d: neither died nor finished", kind, n)
			}
			deathAt := w.clock.Now()
			w.clock.Advance(30 * time.Second) // down for a while
			r = w.start(nil, epoch, newMinuteModel("a"), newMinuteModel("b"))
			ok := r.drive(2*time.Second, 30*time.Second, w.done(want, "a", "b"))
			st := r.fol.Status()
			r.stop()
			if !ok {
				t.Fatalf("killed before %s %d at %s: did not finish; status %+v\na: %s", kind, n, deathAt.Format("15:04:05"), st, diff(w.table("a"), want))
			}
			for _, id := range []string{"a", "b"} {
				if d := diff(w.table(id), want); d != "[]" {
					t.Errorf("killed before %s %d: model %s: %s", kind, n, id, d)
				}
			}
			if n := w.late(); n != 0 {
				t.Errorf("killed before %s %d: %d messages late", kind, n, n)
			}
			t.Logf("killed before %s %d at %s: restart exact (%s)", kind, n, deathAt.Format("15:04:05"), time.Since(began).Round(time.Millisecond))
		}
	}
}

// TestArchiveDownThenBack: while the archive cannot be reached, the models
// wait at the first hole and /status says why; when it comes back,
// everything is filled and exact.
func TestArchiveDownThenBack(t *testing.T) {
	w, all := scenario(t, 3)
	back := T0.Add(10 * time.Minute)
	w.arch.down = func() bool { return w.clock.Now().Before(back) }
	want := recount(all, w.cfg.Start, T0.Add(time.Hour))
	r := w.start(nil, w.cfg.Start, newMinuteModel("a"))
	defer r.stop()
	r.drive(2*time.Second, 10*time.Second, func() bool { return !w.clock.Now().Before(back.Add(-time.Minute)) })
	st := r.fol.Status()
	if !st.Unreachable || st.LastError == "" {
		t.Errorf("status does not say the archive is unreachable: %+v", st)
	}
	if held, ok := st.Held["a"]; !ok || !held.Equal(w.cfg.Start) {
		t.Errorf("model a held until %v, want the start of the history %v", held, w.cfg.Start)
	}
	if n := sum(w.table("a")); n != 0 {
		t.Errorf("model a counted %d messages while its history could not be filled", n)
	}
	if st.IncompleteSeconds < (2 * time.Hour).Seconds() {
		t.Errorf("incomplete %.0f s, want at least the two hours of history", st.IncompleteSeconds)
	}
	if !r.drive(2*time.Second, 30*time.Second, w.done(want, "a")) {
		t.Fatalf("did not finish after the archive came back: %s", diff(w.table("a"), want))
	}
	if n := w.late(); n != 0 {
		t.Errorf("%d messages late", n)
	}
	if st := r.fol.Status(); st.Unreachable || len(st.Held) != 0 {
		t.Errorf("after the archive came back: %+v", st)
	}
}

// TestBusDropsAtTheSeam: what the bus loses just after it subscribes (the
// slow joiner of ZeroMQ) lies before the end of the seam, which holds the
// models until the archive has filled it: nothing is lost or late.
func TestBusDropsAtTheSeam(t *testing.T) {
	w, all := scenario(t, 5)
	seamEnd := T0.Add(w.cfg.Margin).UnixMicro()
	dropped := 0
	w.bus.drop = func(m *engine.Message) bool {
		if m.TimeUS < seamEnd {
			dropped++
			return true
		}
		return false
	}
	// Put a burst right after the subscription starts.
	burst := spread(rand.New(rand.NewPCG(9, 9)), 5000, 50, T0, T0.Add(4*time.Second))
	w.bus.msgs = sortMsgs(append(w.bus.msgs, burst...))
	w.arch.msgs = sortMsgs(append(w.arch.msgs, burst...))
	all = append(all, burst...)
	want := recount(all, w.cfg.Start, T0.Add(time.Hour))
	r := w.start(nil, w.cfg.Start, newMinuteModel("a"))
	defer r.stop()
	if !r.drive(2*time.Second, 30*time.Second, w.done(want, "a")) {
		t.Fatalf("did not finish: %s", diff(w.table("a"), want))
	}
	if dropped < 10 {
		t.Fatalf("the bus dropped %d messages at the seam: the test does not test", dropped)
	}
	if n := w.late(); n != 0 {
		t.Errorf("%d messages late", n)
	}
}

// TestBusDropsLive: a message the bus loses after the seam is found by the
// check against the archive once settled. Models followed the bus past
// it, so it is journaled and flagged late, never counted twice and never
// lost from the journal: table plus late equals the recount, bucket by
// bucket, and only lost messages are late.
func TestBusDropsLive(t *testing.T) {
	w, all := scenario(t, 11)
	seamEnd := T0.Add(w.cfg.Margin).UnixMicro()
	lost := map[string]bool{}
	w.bus.drop = func(m *engine.Message) bool {
		if m.TimeUS >= seamEnd && len(lost) < 10 && m.TimeUS%3 == 0 {
			lost[m.Key] = true
			return true
		}
		return false
	}
	want := recount(all, w.cfg.Start, T0.Add(time.Hour))
	r := w.start(nil, w.cfg.Start, newMinuteModel("a"))
	defer r.stop()
	// Run until the live spans are checked against the archive.
	r.drive(2*time.Second, 30*time.Second, func() bool {
		st := r.fol.Status()
		return w.clock.Now().After(T0.Add(8*time.Minute)) && len(st.Unverified) == 1 && st.Unverified[0].From.After(T0.Add(5*time.Minute))
	})
	if len(lost) == 0 {
		t.Fatal("the bus lost nothing: the test does not test")
	}
	lateKeys := w.lateKeys()
	for _, k := range lateKeys {
		if !lost[k] {
			t.Errorf("message %s late, but the bus delivered it", k)
		}
	}
	got := w.table("a")
	lateBuckets := w.lateBuckets()
	for b, n := range want {
		if got[b]+lateBuckets[b] != n {
			t.Errorf("bucket %s: table %d + late %d, want %d", time.Unix(b, 0).UTC().Format("15:04"), got[b], lateBuckets[b], n)
		}
	}
	if sum(lateBuckets)+sum(got) != sum(want) {
		t.Errorf("table %d + late %d != %d messages", sum(got), sum(lateBuckets), sum(want))
	}
}

// TestReloadDuringHistoryFill adds two models whose history starts before
// anything the journal holds, the second while the first one's history
// is being filled: one fetch at a time, each new model ends exact, and
// the old model neither sees their history nor counts it late.
func TestReloadDuringHistoryFill(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 1))
	history := spread(rng, 0, 900, T0.Add(-3*time.Hour), T0)
	live := spread(rng, 900, 200, T0, T0.Add(5*time.Minute))
	w := newWorld(t, history, live)
	all := append(history, live...)
	e1 := T0.Add(-time.Hour)
	wantA := recount(all, e1, T0.Add(time.Hour))
	r := w.start(nil, e1, newMinuteModel("a"))
	if !r.drive(2*time.Second, 20*time.Second, w.done(wantA, "a")) {
		r.stop()
		t.Fatalf("first run did not finish: %s", diff(w.table("a"), wantA))
	}
	r.stop()

	// A second life with an earlier epoch: model a keeps its cursor.
	e2 := T0.Add(-3 * time.Hour)
	w.arch.delay = 30 * time.Millisecond
	w.arch.maxBusy.Store(0)
	r = w.start(nil, e2, newMinuteModel("a"))
	defer r.stop()
	wantNew := recount(all, e2, T0.Add(time.Hour))
	add := func(id string) {
		if err := r.eng.Add(t.Context(), newMinuteModel(id)); err != nil {
			t.Fatal(err)
		}
		r.fol.Replan()
	}
	add("b")
	// Wait until b's history fill is under way, then add c.
	r.drive(time.Second, 10*time.Second, func() bool {
		st := r.fol.Status()
		return st.Filling != nil && st.Filling.From.Before(e1)
	})
	add("c")
	if !r.drive(2*time.Second, 60*time.Second, w.done(wantNew, "b", "c")) {
		t.Fatalf("new models did not finish: b %s c %s", diff(w.table("b"), wantNew), diff(w.table("c"), wantNew))
	}
	r.drive(2*time.Second, 10*time.Second, w.done(wantA, "a"))
	if d := diff(w.table("a"), wantA); d != "[]" {
		t.Errorf("model a: %s", d)
	}
	if n := w.arch.maxBusy.Load(); n != 1 {
		t.Errorf("%d archive fetches at once, want one at a time", n)
	}
	if n := w.late(); n != 0 {
		t.Errorf("%d messages late", n)
	}
}

// TestNoArchive: without an archive nothing can be filled; the bus's spans
// are recorded as delivered, the models are not held, and /status says
// gaps cannot be filled.
func TestNoArchive(t *testing.T) {
	w, all := scenario(t, 17)
	w.arch = nil
	var live []*engine.Message
	for _, m := range all {
		if m.TimeUS >= T0.UnixMicro() {
			live = append(live, m)
		}
	}
	want := recount(live, w.cfg.Start, T0.Add(time.Hour))
	r := w.start(nil, w.cfg.Start, newMinuteModel("a"))
	if !r.drive(2*time.Second, 20*time.Second, w.done(want, "a")) {
		r.stop()
		t.Fatalf("did not follow the bus: %s", diff(w.table("a"), want))
	}
	st := r.fol.Status()
	r.stop()
	if st.Archive || st.Note == "" {
		t.Errorf("status does not say gaps cannot be filled: %+v", st)
	}
	if len(st.Incomplete) == 0 || !st.Incomplete[0].From.Equal(w.cfg.Start) {
		t.Errorf("the history before the bus is not reported as a gap: %+v", st.Incomplete)
	}
	if len(st.Complete) == 0 || st.Complete[0].From.After(T0.Add(10*time.Second)) || st.Complete[0].To.Before(T0.Add(5*time.Minute)) {
		t.Errorf("the bus's span is not recorded complete: %+v", st.Complete)
	}
}

func sortMsgs(ms []*engine.Message) []*engine.Message {
	slices.SortFunc(ms, func(a, b *engine.Message) int { return cmpPos(a.Pos(), b.Pos()) })
	return ms
}

var _ follow.Bus = (*scriptedBus)(nil)

// TestStopWhileStarting: a follower stopped before it has read its record
// of complete spans (a SIGTERM right after the daemon starts) returns
// without an error: nothing was journaled. A record that cannot be read
// while the follower runs is still an error.
func TestStopWhileStarting(t *testing.T) {
	w, _ := scenario(t, 5)
	db, err := sqlstore.Open(context.Background(), w.path, sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	eng := engine.New(db, engine.Config{HoldModels: true, Logger: quiet()})
	cfg := w.cfg
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := follow.New(cfg, eng, db, w.arch, nil).Run(ctx); err != nil {
		t.Errorf("stopped while starting: %v, want no error", err)
	}
	raw, err := sql.Open("sqlite3", w.path)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.Exec(`DROP TABLE fill_spans`); err != nil {
		t.Fatal(err)
	}
	live, stop := context.WithTimeout(context.Background(), 5*time.Second)
	defer stop()
	if err := follow.New(cfg, eng, db, w.arch, nil).Run(live); err == nil || !strings.Contains(err.Error(), "spans") {
		t.Errorf("record of spans gone: %v, want an error about it", err)
	}
}
