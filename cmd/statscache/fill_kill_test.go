package main

import (
	"math/rand"
	"syscall"
	"testing"
	"time"

	"statscache/engine/archive/dgtest"
)

// TestDaemonKilledDuringHistoryFill is the continuity promise under the
// worst timing: a daemon filling 36 hours of history from a slow archive
// that fails one request in twenty, while a libzmq publisher keeps
// publishing, is killed with SIGKILL at random instants of the fill, five
// times in a row, then left to finish. Every table must equal an
// independent recount of everything published and archived: the durable
// record of complete spans makes each restart fill exactly what the killed
// one had not, and holds the models at the first hole until it has.
func TestDaemonKilledDuringHistoryFill(t *testing.T) {
	eachStore(t, daemonKilledDuringHistoryFill)
}

func daemonKilledDuringHistoryFill(t *testing.T, k storeKind) {
	seed := testSeed(t)
	rng := rand.New(rand.NewSource(seed))
	c := newCorpus(t, seed)
	now := time.Now()
	epoch := now.Add(-36 * time.Hour).Truncate(time.Second)
	var history [][]byte
	for i := 0; i < 8000; i++ {
		ts := epoch.Add(time.Duration(rng.Int63n(int64(36*time.Hour-time.Minute)) / int64(time.Second) * int64(time.Second)))
		_, rec := c.record(ts, false)
		history = append(history, rec)
	}
	dg := dgtest.New(history, dgtest.Options{FailEvery: 20, SlowEvery: 1, Slow: 100 * time.Millisecond})
	defer dg.Close()
	pyEP, pyIn, pyWait := libzmqPublisher(t)

	scripts := shippedScripts(t, "volume.lua", "volume-by-category.lua")
	db := k.newDB(t, "kill")
	args := []string{"--db", db, "--scripts", scripts, "--bus", pyEP, "--datagrepper", dg.URL,
		"--epoch", epoch.Format(time.RFC3339), "--settle", "1s", "--lateness", "2s", "--batch-interval", "100ms",
		"--verify", "2s"}

	// The publisher sends 40 messages a second for the whole test, each
	// also to the archive (as datanommer does), whether a daemon runs or not.
	fd := startFeed(c, dg, pyIn, 25*time.Millisecond)

	midFill := 0
	for kill := 1; kill <= 5; kill++ {
		d := startDaemon(t, args...)
		after := time.Duration(500+rng.Intn(2000)) * time.Millisecond
		time.Sleep(after)
		st := d.status(t)
		fill, _ := st["fill"].(map[string]any)
		d.cmd.Process.Signal(syscall.SIGKILL)
		<-d.done
		left, _ := fill["incomplete_seconds"].(float64)
		t.Logf("kill %d after %s: %.0f s of history left to fill", kill, after, left)
		if left > 600 {
			midFill++
		}
	}
	if midFill < 3 {
		t.Errorf("only %d of 5 kills came during the history fill: the test does not test what it says", midFill)
	}
	d := startDaemon(t, args...)
	want, wantCat := recountAfterFeed(t, d, 2*time.Second, fd, pyIn, pyWait, db)
	if len(wantCat) < 30 {
		t.Errorf("only %d hourly buckets: the history does not span the fill", len(wantCat))
	}
	t.Logf("%d messages (%d published live), %d archive requests", want, fd.published.Load(), len(dg.Requests()))
}
