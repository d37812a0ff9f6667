package engine

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The cache shares full batches between runners in step and holds at most
// maxBytes of records: the oldest batches go first, and a batch asked for
// again after it went is read again, never lost.
func TestScanCacheBoundedByBytes(t *testing.T) {
	ctx := context.Background()
	journal, scan, reads := countedJournal(100, 1000)
	c := newScanCache(scan, 64)
	c.maxBytes = 3 * 10 * heldBytes(journal[0]) // three batches of ten
	var at []Position
	after := Position{}
	for i := 0; i < 10; i++ {
		at = append(at, after)
		msgs, err := c.next(ctx, nil, after, 10)
		if err != nil || len(msgs) != 10 {
			t.Fatalf("batch %d: %d messages, %v", i, len(msgs), err)
		}
		after = msgs[9].Pos()
	}
	if n := reads.Load(); n != 10 {
		t.Fatalf("%d reads for 10 batches", n)
	}
	if len(c.entries) != 3 || c.bytes != c.maxBytes {
		t.Errorf("cache holds %d batches, %d bytes; want 3 and %d", len(c.entries), c.bytes, c.maxBytes)
	}
	// The newest three are shared; an older one is read again, whole.
	for _, p := range at[7:] {
		if _, err := c.next(ctx, nil, p, 10); err != nil {
			t.Fatal(err)
		}
	}
	if n := reads.Load(); n != 10 {
		t.Errorf("cached batches were read again: %d reads", n)
	}
	msgs, err := c.next(ctx, nil, at[2], 10)
	if err != nil || len(msgs) != 10 || msgs[0].Key != "k020" {
		t.Fatalf("evicted batch: %d messages, %v", len(msgs), err)
	}
	if n := reads.Load(); n != 11 {
		t.Errorf("%d reads, want 11", n)
	}
}

// A batch every reader has passed is dropped at once, whatever room the
// byte bound leaves; one a reader still stands before stays shared.
func TestScanCacheDropsPassedBatches(t *testing.T) {
	ctx := context.Background()
	_, scan, reads := countedJournal(50, 100)
	c := newScanCache(scan, 64)
	fast, slow := new(int), new(int)
	// The fast reader reads three batches; the slow one stands at the first.
	var at []Position
	after := Position{}
	if _, err := c.next(ctx, slow, after, 10); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		at = append(at, after)
		msgs, err := c.next(ctx, fast, after, 10)
		if err != nil || len(msgs) != 10 {
			t.Fatalf("batch %d: %d messages, %v", i, len(msgs), err)
		}
		after = msgs[9].Pos()
	}
	if len(c.entries) != 3 {
		t.Fatalf("cache holds %d batches while the slow reader is at the first; want 3", len(c.entries))
	}
	// The slow reader moves to the second batch: the first is dropped, the
	// second and third are still shared.
	if _, err := c.next(ctx, slow, at[1], 10); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.entries[at[0]]; ok || len(c.entries) != 2 {
		t.Errorf("after both passed the first batch the cache holds %d batches (first kept: %v); want 2", len(c.entries), ok)
	}
	if _, err := c.next(ctx, slow, at[2], 10); err != nil {
		t.Fatal(err)
	}
	if n := reads.Load(); n != 3 {
		t.Errorf("%d reads, want 3 (the slow reader shares the fast one's)", n)
	}
	// A reader that leaves no longer holds batches.
	c.leave(slow)
	if len(c.entries) != 1 {
		t.Errorf("after the slow reader left: %d batches, want 1 (the fast reader's next)", len(c.entries))
	}
}

// countedJournal is n messages of rawSize bytes and a scan of them that
// counts its calls.
func countedJournal(n, rawSize int) ([]*Message, func(context.Context, Position, int) ([]*Message, error), *atomic.Int64) {
	reads := new(atomic.Int64)
	journal := make([]*Message, n)
	for i := range journal {
		journal[i] = &Message{TimeUS: int64(i + 1), Key: fmt.Sprintf("k%03d", i), Raw: make([]byte, rawSize)}
	}
	scan := func(_ context.Context, after Position, limit int) ([]*Message, error) {
		reads.Add(1)
		var out []*Message
		for _, m := range journal {
			if after.Less(m.Pos()) && len(out) < limit {
				out = append(out, m)
			}
		}
		return out, nil
	}
	return journal, scan, reads
}

// threeBatchCache is a cache over a countedJournal of n messages of 1000
// bytes, bounded to three batches of ten.
func threeBatchCache(n int) (*scanCache, *atomic.Int64) {
	journal, scan, reads := countedJournal(n, 1000)
	c := newScanCache(scan, 64)
	c.maxBytes = 3 * 10 * heldBytes(journal[0])
	c.wait = time.Second // the tests that time out wait it out
	return c, reads
}

// withStoppedReader is a threeBatchCache of 200 messages with a reader
// that read the first batch and stopped.
func withStoppedReader(t *testing.T) (*scanCache, any) {
	t.Helper()
	c, _ := threeBatchCache(200)
	stopped := new(int)
	if _, err := c.next(context.Background(), stopped, Position{}, 10); err != nil {
		t.Fatal(err)
	}
	return c, stopped
}

// timeouts returns how many times pace gave up waiting after its wait.
func timeouts(c *scanCache) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.timeouts
}

// readAll reads the whole journal as a runner does (pace, then next) and
// returns the keys read; before each batch but the first it calls between.
func readAll(ctx context.Context, t *testing.T, c *scanCache, reader any, limit int, between func(batch int)) []string {
	var keys []string
	after := Position{}
	for i := 0; ; i++ {
		if i > 0 && between != nil {
			between(i)
		}
		c.pace(ctx, reader, after)
		msgs, err := c.next(ctx, reader, after, limit)
		if err != nil {
			t.Error(err)
			return keys
		}
		for _, m := range msgs {
			keys = append(keys, m.Key)
		}
		if len(msgs) < limit {
			return keys
		}
		after = msgs[len(msgs)-1].Pos()
	}
}

// fastAndSlow reads the whole journal with two readers in batches of ten,
// one of them slower, and returns what each read. Both start together, as
// a replay's runners do: a reader that comes later, behind the cached
// batches, reads on its own (TestScanCacheStoppedReaderHoldsBackOnce).
func fastAndSlow(ctx context.Context, t *testing.T, c *scanCache) (fast, slow []string) {
	var wg sync.WaitGroup
	slowIn := make(chan struct{})
	wg.Add(2)
	go func() {
		defer wg.Done()
		fast = readAll(ctx, t, c, new(int), 10, func(batch int) {
			if batch == 1 {
				<-slowIn
			}
		})
	}()
	go func() {
		defer wg.Done()
		slow = readAll(ctx, t, c, new(int), 10, func(batch int) {
			if batch == 1 {
				close(slowIn)
			}
			time.Sleep(5 * time.Millisecond)
		})
	}()
	wg.Wait()
	return fast, slow
}

// A reader ahead waits for a reader behind to read the batches the cache
// holds, instead of pushing them out of it: each batch is read from the
// journal once, however far the two would drift apart.
func TestScanCachePacesTheReaderAhead(t *testing.T) {
	ctx := context.Background()
	c, reads := threeBatchCache(100)
	fast, slow := fastAndSlow(ctx, t, c)
	if len(fast) != 100 || len(slow) != 100 || !slices.Equal(fast, slow) {
		t.Fatalf("read %d and %d messages, equal: %v", len(fast), len(slow), slices.Equal(fast, slow))
	}
	// Ten full batches and the empty read at the end (not cached: each
	// reader makes its own).
	if n := reads.Load(); n > 12 {
		t.Errorf("%d reads of the journal for 10 batches: the reader ahead pushed batches out before the one behind read them", n)
	}
}

// A batch larger than the others pushes the cache over its bound once it
// is read (pace judged the room by the batches' mean size): the cache
// keeps, over its bound, the batches the reader behind has still to read,
// instead of dropping them for that reader to read again on its own.
func TestScanCacheKeepsWhatAReaderInStepNeeds(t *testing.T) {
	ctx := context.Background()
	journal, scan, reads := countedJournal(100, 1000)
	for _, m := range journal[40:60] {
		m.Raw = make([]byte, 4000) // two batches four times the others
	}
	c := newScanCache(scan, 64)
	c.maxBytes = 3 * 10 * heldBytes(journal[0])
	fast, slow := fastAndSlow(ctx, t, c)
	if len(fast) != 100 || !slices.Equal(fast, slow) {
		t.Fatalf("read %d and %d messages, equal: %v", len(fast), len(slow), slices.Equal(fast, slow))
	}
	if n, to := reads.Load(), timeouts(c); n > 12 || to != 0 {
		t.Errorf("%d reads of the journal for 10 batches, %d waits given up: a batch the reader behind needed was dropped", n, to)
	}
}

// A reader behind that stops reading (its model commits into a full disk)
// holds the reader ahead back once, for paceWait, and then reads on its
// own; so does a reader that starts behind the cached batches.
func TestScanCacheStoppedReaderHoldsBackOnce(t *testing.T) {
	ctx := context.Background()
	c, stopped := withStoppedReader(t)
	start := time.Now()
	late, lateAt := new(int), Position{}
	fast := readAll(ctx, t, c, new(int), 10, func(batch int) {
		if batch >= 10 {
			// A new reader, behind every cached batch, reads a batch
			// between each two of the reader ahead.
			c.pace(ctx, late, lateAt)
			msgs, err := c.next(ctx, late, lateAt, 10)
			if err != nil || len(msgs) != 10 {
				t.Fatalf("the new reader: %d messages, %v", len(msgs), err)
			}
			lateAt = msgs[9].Pos()
		}
	})
	took := time.Since(start)
	if len(fast) != 200 {
		t.Fatalf("read %d messages, want 200", len(fast))
	}
	// Counted, not timed: a loaded machine stretches the 20 batches by
	// seconds, but not below the one wait.
	if n := timeouts(c); took < c.wait || n != 1 {
		t.Errorf("the reader ahead took %v over 20 batches and gave up waiting %d times; want one wait of %v for the stopped reader", took, n, c.wait)
	}
	// The stopped reader goes on, on its own, and misses nothing.
	rest := readAll(ctx, t, c, stopped, 10, nil)
	if len(rest) != 200 || !slices.Equal(rest, fast) {
		t.Errorf("the stopped reader read %d messages after it went on", len(rest))
	}
}

// A reader held in place (a model at its own watermark while the archive
// fills its history, or at the cluster's) reads the same batch again each
// time the journal changes. It does not move on, so it holds the reader
// ahead back once at most, however often it reads its batch again.
func TestScanCacheHeldReaderHoldsBackOnce(t *testing.T) {
	ctx := context.Background()
	c, _ := threeBatchCache(200)
	held := new(int)
	start := time.Now()
	fast := readAll(ctx, t, c, new(int), 10, func(batch int) {
		c.pace(ctx, held, Position{})
		msgs, err := c.next(ctx, held, Position{}, 10)
		if err != nil || len(msgs) != 10 {
			t.Fatalf("the held reader: %d messages, %v", len(msgs), err)
		}
	})
	took := time.Since(start)
	if len(fast) != 200 {
		t.Fatalf("read %d messages, want 200", len(fast))
	}
	if n := timeouts(c); n > 1 {
		t.Errorf("the reader ahead took %v over 20 batches and gave up waiting %d times; want at most one wait of %v for the held reader", took, n, c.wait)
	}
}

// A reader at the head of the journal (its last read was short) reads
// batches the cache does not keep: they push no batch out, and it is not
// held back for a reader behind, which would only delay the live
// messages of an up-to-date model in a daemon.
func TestScanCacheReaderAtTheHeadIsNotHeldBack(t *testing.T) {
	ctx := context.Background()
	_, scan, _ := countedJournal(30, 100)
	c := newScanCache(scan, 2) // full at two batches
	behind, head := new(int), new(int)
	read := func(reader any, after Position, want int) {
		t.Helper()
		if msgs, err := c.next(ctx, reader, after, 10); err != nil || len(msgs) != want {
			t.Fatalf("after %v: %d messages, %v; want %d", after, len(msgs), err, want)
		}
	}
	read(behind, Position{}, 10)
	// The reader ahead reads to the head; its third batch pushes out the
	// first, which the reader behind still stands at.
	read(head, Position{}, 10)
	for _, us := range []int64{10, 20} {
		read(head, Position{TimeUS: us, Key: fmt.Sprintf("k%03d", us-1)}, 10)
	}
	end := Position{TimeUS: 30, Key: "k029"}
	read(head, end, 0)
	if len(c.order) != 2 {
		t.Fatalf("the cache holds %v after the short read at the head; want the two batches before it", c.order)
	}
	if !c.readers[behind].Less(c.order[0]) || c.solo[behind] {
		t.Fatalf("the test did not set up a reader in step behind the cache: %v", c.readers[behind])
	}
	// Each time the journal changes, the reader at the head reads again.
	for range 5 {
		c.pace(ctx, head, end)
		read(head, end, 0)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.waits != 0 {
		t.Errorf("the reader at the head was held back %d times in 5 reads: it waited for the reader behind", c.waits)
	}
}

// paceHeldBack is a cache bounded to three batches of ten where a reader
// that read the first batch stopped, and another read the next three: pace
// holds the second back before its fifth batch, which it returns the
// position of.
func paceHeldBack(t *testing.T) (c *scanCache, stopped, ahead any, at Position) {
	t.Helper()
	ctx := context.Background()
	c, stopped = withStoppedReader(t)
	ahead = new(int)
	for range 4 {
		msgs, err := c.next(ctx, ahead, at, 10)
		if err != nil || len(msgs) != 10 {
			t.Fatalf("after %v: %d messages, %v", at, len(msgs), err)
		}
		at = msgs[9].Pos()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.needsOldest(ahead, at)) == 0 {
		t.Fatal("pace would not hold the reader ahead back")
	}
	return c, stopped, ahead, at
}

// pace stops holding a reader back as soon as nobody is left to wait for
// (the reader behind left, or the cache was cleared for a late message)
// or its runner shuts down, not paceWait later.
func TestScanCachePaceEndsEarly(t *testing.T) {
	for _, tc := range []struct {
		name string
		end  func(c *scanCache, stopped any, cancel func())
	}{
		{"reader behind leaves", func(c *scanCache, stopped any, _ func()) { c.leave(stopped) }},
		{"late message", func(c *scanCache, _ any, _ func()) { c.inserted(Position{TimeUS: 5, Key: "k004"}) }},
		{"shutdown", func(_ *scanCache, _ any, cancel func()) { cancel() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, stopped, ahead, at := paceHeldBack(t)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan time.Duration)
			go func() {
				start := time.Now()
				c.pace(ctx, ahead, at)
				done <- time.Since(start)
			}()
			time.Sleep(5 * time.Millisecond)
			tc.end(c, stopped, cancel)
			if took, n := <-done, timeouts(c); n != 0 {
				t.Errorf("pace returned after %v, when paceWait ran out: the end did not wake it", took)
			}
		})
	}
}

// Twenty readers, one of them stopped after its first batch: the others
// each read the whole journal, in order, once held back for the stopped one.
func TestScanCacheManyReadersOneStopped(t *testing.T) {
	ctx := context.Background()
	c, _ := withStoppedReader(t)
	var want []string
	for i := range 200 {
		want = append(want, fmt.Sprintf("k%03d", i))
	}
	var wg sync.WaitGroup
	start := time.Now()
	for i := range 19 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got := readAll(ctx, t, c, new(int), 10, func(int) {
				if i%3 == 0 {
					time.Sleep(time.Millisecond)
				}
			})
			if !slices.Equal(got, want) {
				t.Errorf("reader %d read %d messages, want the %d of the journal in order", i, len(got), len(want))
			}
		}()
	}
	wg.Wait()
	if took := time.Since(start); took >= 5*c.wait {
		t.Errorf("19 readers took %v over 20 batches", took)
	}
}

// catchUpCache is a cache over a countedJournal of 400 messages of 1000
// bytes, bounded to three batches of ten (batch bytes each), whose pace
// gives up after a millisecond: the tests count its timeouts, each one
// a whole paceWait in a runner.
func catchUpCache() (c *scanCache, journal []*Message, batch int, reads *atomic.Int64) {
	journal, scan, reads := countedJournal(400, 1000)
	c = newScanCache(scan, 64)
	batch = 10 * heldBytes(journal[0])
	c.maxBytes = 3 * batch
	c.wait = time.Millisecond
	return c, journal, batch, reads
}

// readTen reads the batch of ten after the position and returns where it
// ends.
func readTen(ctx context.Context, t *testing.T, c *scanCache, reader any, after Position) Position {
	t.Helper()
	msgs, err := c.next(ctx, reader, after, 10)
	if err != nil || len(msgs) != 10 {
		t.Fatalf("after %v: %d messages, %v", after, len(msgs), err)
	}
	return msgs[9].Pos()
}

// Two runners catching up together from behind the cached batches (two
// models a reload added) share the batches the first of them reads, but
// stay on their own: the second reads what the first cached, behind the
// batches of the runners ahead, and neither holds those back or keeps
// their batches over the bound. Made in step by reading a batch its
// companion cached, the second pinned every batch ahead of it, and the
// reader ahead was held for the whole wait (paceWait, 5 s) before 9 of
// its 10 batches.
func TestScanCacheReadersCatchingUpHoldNobody(t *testing.T) {
	ctx := context.Background()
	c, journal, batch, reads := catchUpCache()
	ahead, first, second := new(int), new(int), new(int)
	most := 0
	read := func(reader any, after Position) Position {
		t.Helper()
		end := readTen(ctx, t, c, reader, after)
		c.mu.Lock()
		most = max(most, c.bytes)
		c.mu.Unlock()
		return end
	}
	// The reader ahead fills the cache from the middle of the journal.
	front := journal[199].Pos()
	for range 3 {
		c.pace(ctx, ahead, front)
		front = read(ahead, front)
	}
	// Each time pace lets the reader ahead go, the two behind read a batch
	// while it reads its own from the journal, as runners do.
	var back Position
	for range 10 {
		c.pace(ctx, ahead, front)
		c.pace(ctx, first, back)
		next := read(first, back)
		c.pace(ctx, second, back)
		if read(second, back) != next {
			t.Fatal("the two readers behind read different batches")
		}
		back = next
		front = read(ahead, front)
	}
	c.mu.Lock()
	waits, solo := c.waits, c.solo[second]
	c.mu.Unlock()
	if n := timeouts(c); n != 0 || waits != 0 || !solo {
		t.Errorf("the reader ahead was held back %d times, %d of them for the whole wait (second reader behind on its own: %v)", waits, n, solo)
	}
	if most > c.maxBytes+batch {
		t.Errorf("the cache held %d batches' worth of records, bound %d", most/batch, c.maxBytes/batch)
	}
	// Each batch was read from the journal once: the second reader shares
	// the first's.
	if n := reads.Load(); n != 23 {
		t.Errorf("%d journal reads for 23 batches", n)
	}
}

// Of two runners catching up together, the first drifts ahead of the
// second (a counting model ahead of a fedmsg.meta one). Nothing paces
// the first (it reads behind the cache's newest batch), so the second,
// made in step by the batches the first cached, pinned each of them: the
// cache grew by a batch for each the first read (13 batches against a
// bound of 3 here), up to its count of batches (64 of 2,000 messages:
// three times the 64 MiB bound with the corpus's records, more with larger
// ones). On their own, the two keep the cache within its bound.
func TestScanCacheReadersCatchingUpKeepTheBound(t *testing.T) {
	ctx := context.Background()
	c, journal, batch, _ := catchUpCache()
	read := func(reader any, after Position) Position {
		t.Helper()
		c.pace(ctx, reader, after)
		return readTen(ctx, t, c, reader, after)
	}
	front := journal[199].Pos()
	for range 3 {
		front = read(new(int), front)
	}
	first, second := new(int), new(int)
	var back Position
	for i := range 12 {
		if i == 1 {
			read(second, Position{}) // then stops, its model slower
		}
		back = read(first, back)
		c.mu.Lock()
		held := c.bytes
		c.mu.Unlock()
		if held > c.maxBytes+batch {
			t.Fatalf("after %d batches of the first reader the cache holds %d batches' worth of records, bound %d", i+1, held/batch, c.maxBytes/batch)
		}
	}
}
