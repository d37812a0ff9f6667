package engine

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
)

// The cache shares full batches between runners in step and holds at most
// maxBytes of records: the oldest batches go first, and a batch asked for
// again after it went is read again, never lost.
func TestScanCacheBoundedByBytes(t *testing.T) {
	ctx := context.Background()
	var reads atomic.Int64
	journal := make([]*Message, 100)
	for i := range journal {
		journal[i] = &Message{TimeUS: int64(i + 1), Key: fmt.Sprintf("k%03d", i), Raw: make([]byte, 1000)}
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
	var reads atomic.Int64
	journal := make([]*Message, 50)
	for i := range journal {
		journal[i] = &Message{TimeUS: int64(i + 1), Key: fmt.Sprintf("k%03d", i), Raw: make([]byte, 100)}
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
