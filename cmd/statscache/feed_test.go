package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"statscache/engine/archive/dgtest"
)

// feed publishes generated records at a steady pace, as a live bus with
// datanommer behind it: each record goes to the archive double and to a
// libzmq publisher, whether a daemon listens or not.
type feed struct {
	c         *corpus
	mu        sync.Mutex // guards c between the feed and the recount
	stop      chan struct{}
	wg        sync.WaitGroup
	published atomic.Int64
}

// startFeed publishes a record from c every period to dg and pub (a
// libzmq publisher's stdin) until Stop.
func startFeed(c *corpus, dg *dgtest.Server, pub io.Writer, every time.Duration) *feed {
	f := &feed{c: c, stop: make(chan struct{})}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-f.stop:
				return
			case <-tick.C:
			}
			f.mu.Lock()
			topic, env := c.record(time.Now(), true)
			f.mu.Unlock()
			dg.Add(env)
			fmt.Fprintf(pub, "%s\t%s\n", topic, env)
			f.published.Add(1)
		}
	}()
	return f
}

// Stop ends the feed and returns how many unique records the corpus
// holds, history included.
func (f *feed) Stop() int64 {
	close(f.stop)
	f.wg.Wait()
	f.mu.Lock()
	defer f.mu.Unlock()
	return int64(len(f.c.all))
}

// shippedScripts copies shipped scripts into a new scripts directory.
func shippedScripts(t testing.TB, names ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range names {
		src, err := os.ReadFile(filepath.Join("../../scripts", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), src, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// recountAfterFeed lets d run for settle more, stops the feed, waits until
// d's models have counted every record the corpus holds, stops d and the
// publisher (pub, and wait for it), and checks db's tables against an
// independent recount, and that nothing was journaled late. It returns
// how many records the corpus holds and the hourly recount by category.
func recountAfterFeed(t *testing.T, d *daemonProc, settle time.Duration, fd *feed, pub io.Closer, wait func(), db string) (int64, map[string]int64) {
	t.Helper()
	time.Sleep(settle)
	want := fd.Stop()
	d.waitTotal(t, want)
	st := d.status(t)
	d.stop(t)
	pub.Close()
	wait()

	wantCat, wantMin := fd.c.recount()
	gotCat, gotMin := tables(t, db)
	sameCounts(t, "volume-by-category-1h", gotCat, wantCat)
	sameCounts(t, "volume-1m", gotMin, wantMin)
	if late := st["journal"].(map[string]any)["late"].(float64); late != 0 {
		t.Errorf("%v messages flagged late", late)
	}
	return want, wantCat
}
