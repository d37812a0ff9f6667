package follow_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"statscache/engine"
	"statscache/engine/archive"
	"statscache/engine/follow"
)

// skewClock is the daemon's wall clock when it is wrong: the fake clock
// (the world's true time, which the bus and its publishers follow) plus
// an offset that an NTP step can change at any moment.
type skewClock struct {
	base *fakeClock
	skew atomic.Int64 // nanoseconds
}

func (c *skewClock) Now() time.Time                         { return c.base.Now().Add(time.Duration(c.skew.Load())) }
func (c *skewClock) After(d time.Duration) <-chan time.Time { return c.base.After(d) }

// TestBusSlowJoiner: a subscription that delivers its first message only
// 40 s after it started (the publisher was unreachable at start, or
// ZeroMQ's slow joiner took longer than the margin). What was published
// meanwhile is only in the archive; a model must not commit past it before
// the archive has filled it, so nothing ends up late and the table is
// exact.
func TestBusSlowJoiner(t *testing.T) {
	w, all := scenario(t, 21)
	joined := T0.Add(40 * time.Second).UnixMicro()
	missed := 0
	w.bus.drop = func(m *engine.Message) bool {
		if m.TimeUS < joined {
			missed++
			return true
		}
		return false
	}
	want := recount(all, w.cfg.Start, T0.Add(time.Hour))
	r := w.start(nil, w.cfg.Start, newMinuteModel("a"))
	defer r.stop()
	if !r.drive(2*time.Second, 30*time.Second, w.done(want, "a")) {
		t.Errorf("did not finish: %s", diff(w.table("a"), want))
	}
	if missed < 20 {
		t.Fatalf("the bus missed only %d messages: the test does not test", missed)
	}
	if n := w.late(); n != 0 {
		t.Errorf("%d messages late: the models committed past the span before the bus joined", n)
	}
	if d := diff(w.table("a"), want); d != "[]" {
		t.Errorf("model a: %s", d)
	}
}

// TestClockBehindAtRestart: the daemon is killed, and starts again 5
// minutes later with its wall clock 30 minutes behind (a host without a
// battery-backed clock, before NTP steps it). The gap between the kill
// and the new subscription is in the archive only; when NTP steps the
// clock forward, the models must still wait for it to be filled.
func TestClockBehindAtRestart(t *testing.T) {
	rng := rand.New(rand.NewPCG(23, 1))
	history := spread(rng, 0, 300, T0.Add(-time.Hour), T0)
	live := spread(rng, 300, 1200, T0, T0.Add(20*time.Minute))
	w := newWorld(t, history, live)
	all := append(history, live...)
	w.cfg.Start = T0.Add(-time.Hour)
	want := recount(all, w.cfg.Start, T0.Add(time.Hour))

	r := w.start(nil, w.cfg.Start, newMinuteModel("a"))
	r.drive(2*time.Second, 20*time.Second, func() bool { return !w.clock.Now().Before(T0.Add(5 * time.Minute)) })
	r.stop()
	w.clock.Advance(5 * time.Minute) // down: the bus's messages of these minutes reach nobody

	clk := &skewClock{base: w.clock}
	clk.skew.Store(int64(-30 * time.Minute))
	w.cfg.Clock = clk
	r = w.start(nil, w.cfg.Start, newMinuteModel("a"))
	defer r.stop()
	r.drive(2*time.Second, 10*time.Second, func() bool { return !w.clock.Now().Before(T0.Add(12 * time.Minute)) })
	clk.skew.Store(0) // NTP steps the clock forward
	// The fill loop sleeps on the clock (up to Verify) while the models
	// run at once: give them a real second before time moves on.
	time.Sleep(time.Second)
	if !r.drive(2*time.Second, 30*time.Second, w.done(want, "a")) {
		t.Errorf("did not finish: %s", diff(w.table("a"), want))
	}
	if n := w.late(); n != 0 {
		t.Errorf("%d messages late: the model committed past the gap between the kill and the restart", n)
	}
}

// silentBus is a subscription that never delivers anything: its endpoint
// is wrong, or the publisher is down for the whole run.
type silentBus struct{}

func (silentBus) RunFunc(ctx context.Context, _ func(context.Context, *engine.Message, func()) error) error {
	<-ctx.Done()
	return ctx.Err()
}

// TestNoArchiveThenArchive: a first run without an archive whose bus never
// delivers anything, then a run with the archive. Nothing made the spans
// of the first run complete (the bus delivered nothing, and only the
// archive can make a span complete), so the second run must fill them.
func TestNoArchiveThenArchive(t *testing.T) {
	w, all := scenario(t, 29)
	want := recount(all, w.cfg.Start, T0.Add(time.Hour))
	r := w.startWith(nil, w.cfg.Start, nil, silentBus{}, newMinuteModel("a"))
	r.drive(2*time.Second, 10*time.Second, func() bool { return !w.clock.Now().Before(T0.Add(10 * time.Minute)) })
	st := r.fol.Status()
	r.stop()
	t.Logf("no-archive run with a silent bus: complete %v", st.Complete)

	r = w.start(nil, w.cfg.Start, newMinuteModel("a"))
	defer r.stop()
	if !r.drive(2*time.Second, 30*time.Second, w.done(want, "a")) {
		t.Errorf("the archive run did not fill what the silent bus never delivered: %s", diff(w.table("a"), want))
	}
}

// TestStopWhileArchiveSlow: the real archive client against an archive
// that answers after a minute. A stop must end the follower within its
// drain time, not after the archive's answer or request timeout.
func TestStopWhileArchiveSlow(t *testing.T) {
	var asked sync.Once
	askedCh := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
		asked.Do(func() { close(askedCh) })
		select {
		case <-req.Context().Done():
		case <-time.After(time.Minute):
		}
		http.Error(rw, "slow", http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	w, _ := scenario(t, 31)
	arch := &archive.Client{BaseURL: srv.URL, Logger: quiet()}
	r := w.startWith(nil, w.cfg.Start, arch, w.bus, newMinuteModel("a"))
	r.w.clock.Advance(3 * time.Minute)
	select {
	case <-askedCh:
	case <-time.After(10 * time.Second):
		r.stop()
		t.Fatal("the archive was never asked")
	}
	began := time.Now()
	r.stop()
	if took := time.Since(began); took > w.cfg.Drain+2*time.Second {
		t.Errorf("the stop took %s with a slow archive, want about the drain time %s", took, w.cfg.Drain)
	}
}

var _ follow.Clock = (*skewClock)(nil)

// laggingArchive is an archive that holds a message only once it is lag
// old by the true clock (datanommer stores what it consumed), unlike
// scriptedArchive, which knows the future.
type laggingArchive struct {
	clock *fakeClock
	lag   time.Duration
	all   []*engine.Message
}

func (a *laggingArchive) FetchSpans(ctx context.Context, from, to time.Time, fn func(engine.Span, []*engine.Message) error) error {
	upto := a.clock.Now().Add(-a.lag).UnixMicro()
	sa := &scriptedArchive{window: 20 * time.Minute}
	for _, m := range a.all {
		if m.TimeUS <= upto {
			sa.msgs = append(sa.msgs, m)
		}
	}
	return sa.FetchSpans(ctx, from, to, fn)
}

// TestClockAheadThenSteppedBack: the daemon runs with its clock 10
// minutes ahead of the true time (and of its publishers'), is killed, and
// starts again 3 minutes later after NTP stepped the clock back. While
// ahead, the fill took spans as settled that the archive could not hold
// yet (settle is measured on the local clock) and recorded them complete;
// the gap between the kill and the restart lies inside them and is never
// filled.
func TestClockAheadThenSteppedBack(t *testing.T) {
	t.Skip("known: the settle lag is measured on the local clock only; a clock ahead by more than --settle records spans complete that the archive does not hold yet, and a crash then leaves a gap inside them that is never filled (needs a witness of true time, e.g. the newest bus or archive message)")
	rng := rand.New(rand.NewPCG(37, 1))
	history := spread(rng, 0, 300, T0.Add(-time.Hour), T0)
	live := spread(rng, 300, 1200, T0, T0.Add(20*time.Minute))
	w := newWorld(t, history, live)
	all := append(history, live...)
	w.cfg.Start = T0.Add(-time.Hour)
	want := recount(all, w.cfg.Start, T0.Add(time.Hour))
	arch := &laggingArchive{clock: w.clock, lag: 10 * time.Second, all: sortMsgs(append([]*engine.Message(nil), all...))}

	clk := &skewClock{base: w.clock}
	clk.skew.Store(int64(10 * time.Minute))
	w.cfg.Clock = clk
	w.bus.from = w.clock.Now().UnixMicro()
	r := w.startWith(nil, w.cfg.Start, arch, w.bus, newMinuteModel("a"))
	r.drive(2*time.Second, 20*time.Second, func() bool { return !w.clock.Now().Before(T0.Add(3 * time.Minute)) })
	r.stop()
	w.clock.Advance(3 * time.Minute) // down

	clk.skew.Store(0) // NTP stepped the clock back
	w.bus.from = w.clock.Now().UnixMicro()
	r = w.startWith(nil, w.cfg.Start, arch, w.bus, newMinuteModel("a"))
	defer r.stop()
	if !r.drive(2*time.Second, 30*time.Second, w.done(want, "a")) {
		t.Errorf("did not finish: %s", diff(w.table("a"), want))
	}
	if n := w.late(); n != 0 {
		t.Errorf("%d messages late", n)
	}
}

// TestDiskFullDuringFill: the disk is full for five minutes of a history
// fill and of live traffic: archive windows, live appends and model
// commits all fail. Nothing is recorded complete without its messages,
// /status says what fails, and once there is space again everything ends
// exact with nothing late.
func TestDiskFullDuringFill(t *testing.T) {
	w, all := scenario(t, 43)
	w.arch.window = 5 * time.Minute
	from, to := T0.Add(30*time.Second), T0.Add(5*time.Minute+30*time.Second)
	var failed atomic.Int64
	w.storeFail = func(kind string) error {
		if now := w.clock.Now(); !now.Before(from) && now.Before(to) {
			failed.Add(1)
			return fmt.Errorf("append: commit: %w", engine.ErrDiskFull)
		}
		return nil
	}
	want := recount(all, w.cfg.Start, T0.Add(time.Hour))
	r := w.start(nil, w.cfg.Start, newMinuteModel("a"))
	defer r.stop()
	r.drive(2*time.Second, 20*time.Second, func() bool { return !w.clock.Now().Before(T0.Add(3 * time.Minute)) })
	st := r.fol.Status()
	if st.LastError == "" || st.Unreachable {
		t.Errorf("status does not say the journal fails (last error %q, archive unreachable %v)", st.LastError, st.Unreachable)
	}
	if !r.drive(2*time.Second, 30*time.Second, w.done(want, "a")) {
		t.Errorf("did not finish once there was space: %s", diff(w.table("a"), want))
	}
	if failed.Load() == 0 {
		t.Fatal("no write failed: the test does not test")
	}
	if n := w.late(); n != 0 {
		t.Errorf("%d messages late", n)
	}
}

// TestPositionInsideAHole: a model that committed with no record of
// complete spans behind it (a database from before fill_spans, or spans
// lost): its position lies inside a hole. It must wait there until the
// archive has filled the hole, then end exact with nothing late.
func TestPositionInsideAHole(t *testing.T) {
	w, all := scenario(t, 47)
	want := recount(all, w.cfg.Start, T0.Add(time.Hour))
	full := w.arch.msgs
	cut := T0.Add(-30 * time.Minute).UnixMicro()
	var early []*engine.Message
	for _, m := range full {
		if m.TimeUS < cut {
			early = append(early, m)
		}
	}
	w.arch.msgs = early
	bus := w.bus
	w.bus = nil
	r := w.start(nil, w.cfg.Start, newMinuteModel("a"))
	wantEarly := recount(early, w.cfg.Start, T0)
	ok := r.drive(time.Second, 20*time.Second, w.done(wantEarly, "a"))
	r.stop()
	if !ok {
		t.Fatalf("first run did not count the early history: %s", diff(w.table("a"), wantEarly))
	}
	db, err := sql.Open("sqlite3", w.path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`DELETE FROM fill_spans`); err != nil {
		t.Fatal(err)
	}
	db.Close()

	w.arch.msgs, w.bus = full, bus
	w.arch.windows = nil
	r = w.start(nil, w.cfg.Start, newMinuteModel("a"))
	defer r.stop()
	defer func() {
		// The hole was filled from the model's position, before cut.
		w.arch.mu.Lock()
		defer w.arch.mu.Unlock()
		if len(w.arch.windows) == 0 || w.arch.windows[0].FromUS >= cut {
			t.Errorf("the second run did not fill from the model's position: windows %v", w.arch.windows)
		}
	}()
	if !r.drive(2*time.Second, 30*time.Second, w.done(want, "a")) {
		t.Errorf("did not finish: %s", diff(w.table("a"), want))
	}
	if n := w.late(); n != 0 {
		t.Errorf("%d messages late", n)
	}
}

// TestSilentBusWithArchive: the bus never delivers anything (a wrong
// endpoint). The models follow the archive, a settle lag behind, end
// exact with nothing late, and /status has no live region.
func TestSilentBusWithArchive(t *testing.T) {
	w, all := scenario(t, 53)
	want := recount(all, w.cfg.Start, T0.Add(time.Hour))
	r := w.startWith(nil, w.cfg.Start, w.arch, silentBus{}, newMinuteModel("a"))
	defer r.stop()
	if !r.drive(2*time.Second, 30*time.Second, w.done(want, "a")) {
		t.Errorf("did not finish: %s", diff(w.table("a"), want))
	}
	if n := w.late(); n != 0 {
		t.Errorf("%d messages late", n)
	}
	if st := r.fol.Status(); st.LiveFrom != nil {
		t.Errorf("status has a live region from %v though the bus delivered nothing", st.LiveFrom)
	}
}

// datagrepper serves msgs as datagrepper's /raw does (start and end
// inclusive, ascending, 100 a page), and lies about the total of every
// query that covers the instant lie while lying() says so: a window whose
// count never adds up.
func datagrepper(msgs []*engine.Message, lie int64, lying func() bool) *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		start, _ := strconv.ParseFloat(q.Get("start"), 64)
		end, _ := strconv.ParseFloat(q.Get("end"), 64)
		page, _ := strconv.Atoi(q.Get("page"))
		in := []json.RawMessage{}
		for _, m := range msgs {
			if ts := float64(m.TimeUS) / 1e6; ts >= start && ts <= end {
				rec, _ := json.Marshal(map[string]any{"msg_id": m.ID, "topic": m.Topic, "timestamp": ts, "msg": json.RawMessage(m.Raw)})
				in = append(in, rec)
			}
		}
		total := len(in)
		if lying() && float64(lie)/1e6 >= start && float64(lie)/1e6 <= end {
			total++
		}
		lo := min((page-1)*100, len(in))
		hi := min(lo+100, len(in))
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"raw_messages": in[lo:hi], "total": total,
			"pages": (total + 99) / 100, "count": hi - lo})
	}))
}

// TestArchiveTotalNeverAddsUp: one window of the history never adds up
// (the archive counts a row it never returns). The real archive client
// gives up on it; the models wait before it, never skip it, and /status
// says why; once the archive is consistent again everything ends exact.
func TestArchiveTotalNeverAddsUp(t *testing.T) {
	w, all := scenario(t, 59)
	lie := T0.Add(-90 * time.Minute).UnixMicro()
	var lying atomic.Bool
	lying.Store(true)
	srv := datagrepper(sortMsgs(append([]*engine.Message(nil), all...)), lie, lying.Load)
	defer srv.Close()
	arch := &archive.Client{BaseURL: srv.URL, Window: 10 * time.Minute, MaxRefetch: 2, Retries: 1,
		BackoffMin: time.Millisecond, BackoffMax: time.Millisecond, Logger: quiet()}
	want := recount(all, w.cfg.Start, T0.Add(time.Hour))
	w.bus.from = w.clock.Now().UnixMicro()
	r := w.startWith(nil, w.cfg.Start, arch, w.bus, newMinuteModel("a"))
	defer r.stop()
	r.drive(2*time.Second, 10*time.Second, func() bool { return !w.clock.Now().Before(T0.Add(4 * time.Minute)) })
	st := r.fol.Status()
	if !strings.Contains(st.LastError, "total") || !st.Unreachable {
		t.Errorf("status does not say the window does not add up: %q", st.LastError)
	}
	if held, ok := st.Held["a"]; !ok || held.UnixMicro() > lie {
		t.Errorf("model a held at %v, want at or before the window that does not add up (%v)", held, time.UnixMicro(lie).UTC())
	}
	if got := w.table("a"); sum(got) > sum(recount(all, w.cfg.Start, time.UnixMicro(lie))) {
		t.Errorf("model a counted %d messages, more than there are before the window that does not add up", sum(got))
	}
	lying.Store(false)
	if !r.drive(2*time.Second, 30*time.Second, w.done(want, "a")) {
		t.Errorf("did not finish once the archive added up: %s", diff(w.table("a"), want))
	}
	if n := w.late(); n != 0 {
		t.Errorf("%d messages late", n)
	}
}

// TestDuplicateKeysAcrossWindows: the archive holds some messages twice
// under distant timestamps (its unique key is (msg_id, timestamp)), 45
// minutes apart, in other windows of the history fill. Each is counted
// once (the journal is unique on the key) and nothing is late.
func TestDuplicateKeysAcrossWindows(t *testing.T) {
	w, all := scenario(t, 61)
	var dups []*engine.Message
	for i, m := range all[:600] { // history
		if i%50 == 0 {
			d := clone(m)
			d.TimeUS = m.TimeUS + (45 * time.Minute).Microseconds() // another window
			if d.TimeUS >= T0.UnixMicro() {
				d.TimeUS = m.TimeUS - (45 * time.Minute).Microseconds()
			}
			dups = append(dups, d)
		}
	}
	w.arch.msgs = sortMsgs(append(w.arch.msgs, dups...))
	r := w.start(nil, w.cfg.Start, newMinuteModel("a"))
	defer r.stop()
	total := int64(len(all))
	r.drive(2*time.Second, 30*time.Second, func() bool { return sum(w.table("a")) >= total && w.clock.Now().After(T0.Add(8*time.Minute)) })
	if got := sum(w.table("a")); got != total {
		t.Errorf("counted %d messages, want %d (%d archived twice)", got, total, len(dups))
	}
	if n := w.late(); n != 0 {
		t.Errorf("%d messages late", n)
	}
}

// TestArchiveLagsMoreThanSettle: datanommer is 3 minutes behind (a
// consumer backlog) while --settle is 1 minute, and the bus loses a few
// messages after the seam. The seam and the check against the archive
// take spans as complete before the archive holds all their messages: the
// messages the bus lost, and the history of the minutes before the start
// (only ever in the archive), never reach the journal, not even as late
// (23 of 900 here).
func TestArchiveLagsMoreThanSettle(t *testing.T) {
	t.Skip("known: a span is fetched once, when it is --settle old; an archive that lags more than that (datanommer backlog) makes it complete without the messages the bus lost there, and nothing checks it again (a second check at a multiple of --settle would)")
	w, all := scenario(t, 67)
	seamEnd := T0.Add(w.cfg.Margin + 2*time.Second).UnixMicro()
	lost := 0
	w.bus.drop = func(m *engine.Message) bool {
		if m.TimeUS >= seamEnd && lost < 10 && m.TimeUS%3 == 0 {
			lost++
			return true
		}
		return false
	}
	arch := &laggingArchive{clock: w.clock, lag: 3 * time.Minute, all: sortMsgs(append([]*engine.Message(nil), all...))}
	w.bus.from = w.clock.Now().UnixMicro()
	r := w.startWith(nil, w.cfg.Start, arch, w.bus, newMinuteModel("a"))
	defer r.stop()
	r.drive(2*time.Second, 30*time.Second, func() bool { return w.clock.Now().After(T0.Add(20 * time.Minute)) })
	if lost == 0 {
		t.Fatal("the bus lost nothing: the test does not test")
	}
	db, err := sql.Open("sqlite3", "file:"+w.path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM journal`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != len(all) {
		t.Errorf("the journal holds %d messages, the archive %d: %d lost by the bus never fetched", n, len(all), len(all)-n)
	}
}
