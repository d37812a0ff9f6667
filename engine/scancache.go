package engine

import (
	"context"
	"sync"
	"time"
)

// scanCache lets runners that stand at the same place in the journal share
// one read of it. Runners in step (the common case: every model caught up)
// ask for the batch after the same position; the first asks the store and
// the others wait for its answer. A runner that is behind (a new model, one
// resumed after a failure) reads on its own and holds nobody back.
//
// Only full batches are kept: a short batch ends at the head of the journal
// and would go stale as messages arrive. Messages inserted behind the head
// (late ones) clear the cache, so no runner reads a batch that lacks them.
type scanCache struct {
	scan func(ctx context.Context, after Position, limit int) ([]*Message, error)
	max  int
	// maxBytes bounds the records the cache holds (64 batches of large
	// records would be gigabytes), counted at their unpacked size whether
	// a model has unpacked them yet or not (see Message.SetPacked): a
	// record counted as stored grew by four when a model unpacked it
	// (a huge, repetitive body by a hundred), pushing out batches that
	// runners behind had still to read. A record whose stored form gives
	// no size is counted as stored and its growth told later. The bound
	// is not lower because runners that drift apart (the fedmsg.meta
	// models are slower than the counting ones) then miss the cache: each
	// reads its own copy of a message, and what messages memoize
	// (fedmsg.meta's results) is computed again for each. With 32 MiB,
	// before the pacing (see pace), replaying 100,000 messages through
	// every shipped model took twice the CPU (37 s instead of 17.6 s).
	maxBytes int
	bytes    int // records of the entries held, counted when read
	// drain bounds a read once its caller's context has ended (see next).
	drain time.Duration

	mu      sync.Mutex
	entries map[Position]*scanEntry
	order   []Position
	high    Position // the end of the furthest batch cached
	// readers holds the position each running reader (a runner) last
	// asked for a batch after. A batch before all of them has been read by
	// every one of them and is dropped at once: holding the whole bound
	// of records (maxBytes) when the runners are in step, as they usually
	// are, was most of a replay's heap (150 MB of live heap over 100,000
	// messages, where the runners spanned a few batches).
	readers map[any]Position
	// solo holds the readers that read on their own: their last read was
	// of a batch no longer cached, or pace stopped waiting for them. pace
	// never waits for them.
	solo map[any]bool
	// head holds the readers whose last read was short: they stand at the
	// head of the journal, where a read is not cached and pushes no batch
	// out, so pace does not hold them back (in a daemon, a wait there
	// would only delay the live messages of a model that is up to date).
	head map[any]bool
	// moved is closed, and replaced, when a reader asks for another batch
	// or leaves, or the cache is cleared: pace waits on it.
	moved chan struct{}
	// waits counts the pace calls that held their reader back, timeouts
	// those that gave up after wait: what the tests check, rather
	// than wall time, which a loaded machine stretches by seconds.
	waits, timeouts int
	wait            time.Duration // paceWait
}

// paceWait is the longest pace holds a reader back for the readers behind
// it (scanCache.wait; tests shorten it). A runner behind that long is not
// about to read the batch it waits for (it is committing into a full disk,
// or waiting for its work queue), so it is left to read on its own. It is
// long because a runner's time between two reads includes its commit,
// which queues behind the other models' commits for the one writer, and
// those grow with the tables: with every shipped model (21 runners) on two
// busy cores, 100 ms let a dozen runners a replay go on their own, and
// the batches they read again cost fedmsg.meta's work again (up to
// 146,000 computations for 100,000 messages). 1 s was enough over
// 100,000 messages of one day, not over 300,000 spread over a year, where
// the models that write a row per message and user slow down as their
// indexes grow: 5 to 7 runners a replay went on their own, and
// fedmsg.meta ran 2.6 to 3.6 times per message.
const paceWait = 5 * time.Second

type scanEntry struct {
	done  chan struct{}
	msgs  []*Message
	err   error
	limit int
	size  *entrySize
	// behind: read behind the newest cached batch, by a reader on its
	// own; those that read it after are on their own too (see read).
	behind bool
}

// entrySize is what an entry's messages take, kept as they are unpacked
// (Message.watchSize); a message points to it, not to the entry and its
// other messages.
type entrySize struct {
	c     *scanCache
	bytes int  // under c.mu
	held  bool // counted in c.bytes; under c.mu
}

// grew counts a record of the entry that a model unpacked, and makes room
// under the bound if it is now exceeded.
func (s *entrySize) grew(n int) {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	s.bytes += n
	if s.held {
		c.bytes += n
		c.shrink()
	}
}

func newScanCache(scan func(ctx context.Context, after Position, limit int) ([]*Message, error), max int) *scanCache {
	return &scanCache{scan: scan, max: max, maxBytes: defaultScanCacheBytes, wait: paceWait, drain: DefaultDrain, entries: map[Position]*scanEntry{},
		readers: map[any]Position{}, solo: map[any]bool{}, head: map[any]bool{}, moved: make(chan struct{})}
}

// pace holds back a reader that is about to read past the cached batches
// while the cache is full and another reader, in step with the cache,
// still has to read its oldest batch: the new batch would push that one
// out, and the reader behind would read it again on its own, and every
// batch after it. On two cores, the models of a replay drift apart (the
// scheduler gives the fast ones as much time as the slow ones), and over
// 1,000,000 messages with the 11 volume models most batches were read
// several times: 13.1 s of the replay's CPU time went to reading the
// journal, against 0.34 s over 100,000 messages, where the drift stays
// inside the cache. The reader waits until the one behind moves on, at
// most paceWait; then that one reads on its own and holds nobody back
// again. A reader behind the cached batches (a new model catching up)
// never holds back the others. It is called without the engine's locks:
// a reader waiting here must not hold up Ingest or the reader it waits
// for.
func (c *scanCache) pace(ctx context.Context, reader any, after Position) {
	if reader == nil {
		return
	}
	var timer *time.Timer
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.head[reader] {
		return
	}
	for {
		behind := c.needsOldest(reader, after)
		if len(behind) == 0 {
			return
		}
		if timer == nil {
			timer = time.NewTimer(c.wait)
			defer timer.Stop()
			c.waits++
		}
		moved := c.moved
		c.mu.Unlock()
		select {
		case <-moved:
			c.mu.Lock()
		case <-ctx.Done():
			c.mu.Lock()
			return
		case <-timer.C:
			c.mu.Lock()
			c.timeouts++
			for r, p := range behind {
				if c.readers[r] == p {
					c.solo[r] = true
				}
			}
			return
		}
	}
}

// needsOldest returns the readers, with their positions, that the batch
// after the position would push the oldest cached batch away from: the
// batch is not cached and extends the cache, the cache is full, and they
// read in step with it but stand before its oldest batch. c.mu is held.
func (c *scanCache) needsOldest(reader any, after Position) map[any]Position {
	if len(c.order) == 0 || after.Less(c.high) {
		return nil
	}
	if _, ok := c.entries[after]; ok {
		return nil
	}
	if len(c.order) < c.max && c.bytes+c.bytes/len(c.order) <= c.maxBytes {
		return nil
	}
	var behind map[any]Position
	for r, p := range c.readers {
		if r != reader && !c.solo[r] && p.Less(c.order[0]) {
			if behind == nil {
				behind = map[any]Position{}
			}
			behind[r] = p
		}
	}
	return behind
}

// move records where a reader asks for its next batch, and wakes the
// readers pace holds back. c.mu is held.
func (c *scanCache) move(reader any, after Position) {
	c.readers[reader] = after
	c.wake()
	c.dropPassed()
}

// wake has the readers pace holds back look again. c.mu is held.
func (c *scanCache) wake() {
	close(c.moved)
	c.moved = make(chan struct{})
}

// leave forgets a reader that stops reading (its runner returned), so that
// it no longer keeps batches cached.
func (c *scanCache) leave(reader any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.readers, reader)
	delete(c.solo, reader)
	delete(c.head, reader)
	c.wake()
	c.dropPassed()
}

// dropPassed drops the batches that begin before every reader's position.
// c.mu is held.
func (c *scanCache) dropPassed() {
	if len(c.readers) == 0 {
		return
	}
	var low Position
	first := true
	for _, p := range c.readers {
		if first || p.Less(low) {
			low, first = p, false
		}
	}
	for i := 0; i < len(c.order); {
		if p := c.order[i]; p.Less(low) {
			c.remove(p) // removes c.order[i]
			continue
		}
		i++
	}
}

// defaultScanCacheBytes bounds the messages a scanCache holds, counted
// with their records unpacked (about 1 KB for the corpus) and the rest of
// the message: about 45,000 messages of the corpus. What they memoize
// comes on top.
const defaultScanCacheBytes = 64 << 20

// heldBytes is what the cache counts for a message: its record unpacked
// (see Message.Size), its strings, and the struct with what it memoizes.
func heldBytes(m *Message) int {
	return m.Size() + len(m.ID) + len(m.Key) + len(m.Topic) + 256
}

// watchBytes is heldBytes, with s told when the record grows.
func watchBytes(m *Message, s *entrySize) int {
	return m.watchSize(s) + len(m.ID) + len(m.Key) + len(m.Topic) + 256
}

// shrink drops the oldest batches while the cache holds more than its
// bound, keeping the newest, and keeping every batch that a reader in
// step (not solo) has still to read. The bound is checked before a read
// with the batches' mean size (see needsOldest), so a batch larger than
// the mean, or records that grow once read, push the cache over it after
// the fact; dropping a batch that a reader behind still needs then had
// that reader read it again, on its own, and compute what its messages
// memoize again: over 300,000 messages of a year through every shipped
// model, 194 batches were dropped so, and fedmsg.meta ran twice per
// message. Kept instead, the cache stays over its bound by that batch
// until the readers behind move on: pace holds the readers ahead back
// meanwhile, and gives up on a reader that does not move within its wait.
// c.mu is held.
func (c *scanCache) shrink() {
	low, inStep := Position{}, false
	for r, p := range c.readers {
		if !c.solo[r] && (!inStep || p.Less(low)) {
			low, inStep = p, true
		}
	}
	for i := 0; c.bytes > c.maxBytes && len(c.order) > 1 && i < len(c.order); {
		if inStep && low.Less(c.order[i]) {
			i++ // a reader in step has still to read it
			continue
		}
		c.remove(c.order[i])
	}
}

// next returns up to limit messages after the position, in order. reader
// identifies the caller (see readers); nil is a reader that is not tracked.
func (c *scanCache) next(ctx context.Context, reader any, after Position, limit int) ([]*Message, error) {
	msgs, err := c.read(ctx, reader, after, limit)
	if reader != nil && err == nil {
		c.mu.Lock()
		if len(msgs) < limit {
			c.head[reader] = true
		} else {
			delete(c.head, reader)
		}
		c.mu.Unlock()
	}
	return msgs, err
}

// read is next, but for what the cache keeps of the reader's last read.
func (c *scanCache) read(ctx context.Context, reader any, after Position, limit int) ([]*Message, error) {
	c.mu.Lock()
	if reader != nil {
		old, ok := c.readers[reader]
		moved := !ok || old != after
		if moved {
			c.move(reader, after)
		}
		// A read of a batch no longer cached, behind the newest one, is
		// on the reader's own: pace does not wait for it. So is a read
		// of a batch that such a reader cached (two models catching up
		// together): in step with its companion, not with the cache, it
		// would pin every batch ahead of it (see shrink) and hold the
		// readers there back for the whole wait before each of their
		// batches until it caught up. Nor does pace wait for a reader
		// that reads the same batch again (held at a watermark): it is
		// not about to move on, and a wait for it would come back each
		// time it reads again.
		if e, ok := c.entries[after]; !ok && after.Less(c.high) || ok && e.behind {
			c.solo[reader] = true
		} else if moved {
			delete(c.solo, reader)
		}
	}
	if e, ok := c.entries[after]; ok && e.limit == limit {
		c.mu.Unlock()
		select {
		case <-e.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if e.err == nil && len(e.msgs) == limit {
			return e.msgs, nil
		}
		// A failed or short read is not shared: read again below.
		c.mu.Lock()
		if c.entries[after] == e {
			c.remove(after)
		}
	}
	e := &scanEntry{done: make(chan struct{}), limit: limit, size: &entrySize{c: c}, behind: after.Less(c.high)}
	c.entries[after] = e
	c.order = append(c.order, after)
	c.mu.Unlock()

	// The read is not cut short when the caller's context ends, so that
	// one runner shutting down does not fail the read that others wait
	// for; it ends with the drain, like a commit.
	sctx, cancel := WithDrain(ctx, c.drain)
	e.msgs, e.err = c.scan(sctx, after, limit)
	cancel()
	close(e.done)
	if e.err != nil || len(e.msgs) < limit {
		c.mu.Lock()
		if c.entries[after] == e {
			c.remove(after)
		}
		c.mu.Unlock()
	} else {
		n := 0
		for _, m := range e.msgs {
			n += watchBytes(m, e.size)
		}
		c.mu.Lock()
		if end := e.msgs[len(e.msgs)-1].Pos(); c.high.Less(end) {
			c.high = end
		}
		if c.entries[after] == e {
			// Growth told before this point is in e.size.bytes already.
			e.size.bytes += n
			e.size.held = true
			c.bytes += e.size.bytes
			// Bounded once the batch is known to be full: a short one,
			// read at the head of the journal, is not kept and pushes
			// no batch out.
			for len(c.order) > c.max {
				c.remove(c.order[0])
			}
			c.shrink()
		}
		c.mu.Unlock()
	}
	return e.msgs, e.err
}

func (c *scanCache) remove(p Position) {
	if e := c.entries[p]; e != nil && e.size.held {
		c.bytes -= e.size.bytes
		e.size.held = false
	}
	delete(c.entries, p)
	for i, q := range c.order {
		if q == p {
			c.order = append(c.order[:i], c.order[i+1:]...)
			break
		}
	}
}

// inserted tells the cache that messages from position from on were
// added to the journal: cached batches that may now miss them are dropped.
func (c *scanCache) inserted(from Position) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !from.Less(c.high) {
		return // appended at the head: every cached batch is still whole
	}
	for _, e := range c.entries {
		e.size.held = false // growth told later is not the cache's
	}
	c.entries = map[Position]*scanEntry{}
	c.order = nil
	c.bytes = 0
	c.high = Position{}
	c.wake() // nothing is cached for them to wait for any more
}
