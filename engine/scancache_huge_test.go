package engine

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// hugePacked is a journal of n messages whose records are stored in 1 KiB
// and unpack to size bytes (a large, very compressible body), counting the
// unpacks of each.
func hugePacked(n, size int) ([]*Message, []*atomic.Int32) {
	msgs := make([]*Message, n)
	calls := make([]*atomic.Int32, n)
	for i := range msgs {
		i := i
		calls[i] = new(atomic.Int32)
		m := &Message{TimeUS: int64(i + 1), Key: fmt.Sprintf("k%03d", i), ID: fmt.Sprintf("2024-k%03d", i), Topic: "t"}
		// No size from a header: counted at the stored size until unpacked.
		m.SetPacked(make([]byte, 1024), 0, func([]byte) ([]byte, error) {
			calls[i].Add(1)
			return bytes.Repeat([]byte{'a' + byte(i%26)}, size), nil
		})
		msgs[i] = m
	}
	return msgs, calls
}

// TestScanCacheCountsUnpackedRecords: records the cache holds in stored
// form that a model unpacks later are counted at their unpacked size, so
// the cache holds no more than its bound however well huge records
// compress. A reader that stands still (a stalled model that does not read
// bodies) keeps the batches after it cached while a body-reading model
// runs ahead and unpacks them; counted as stored, 40 records of 1 MiB
// were held against a bound of 8 MiB. Every record is unpacked once,
// however many readers share its batch.
func TestScanCacheCountsUnpackedRecords(t *testing.T) {
	ctx := context.Background()
	const size = 1 << 20
	journal, calls := hugePacked(40, size)
	scan := func(_ context.Context, after Position, limit int) ([]*Message, error) {
		var out []*Message
		for _, m := range journal {
			if after.Less(m.Pos()) && len(out) < limit {
				out = append(out, m)
			}
		}
		return out, nil
	}
	c := newScanCache(scan, 64)
	c.maxBytes = 8 << 20
	c.wait = 50 * time.Millisecond
	stalled := new(int)
	if _, err := c.next(ctx, stalled, Position{}, 2); err != nil {
		t.Fatal(err)
	}
	// Two body-reading readers in step run ahead, each unpacking every
	// record of the batches they share.
	var after Position
	readers := [2]*int{new(int), new(int)}
	for b := 0; b < 20; b++ {
		var wg sync.WaitGroup
		var got [2][]*Message
		for r := 0; r < 2; r++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				// As a runner does: the cache keeps what a reader in step
				// has still to read, until pace gives up on it.
				c.pace(ctx, readers[r], after)
				msgs, err := c.next(ctx, readers[r], after, 2)
				if err != nil {
					t.Error(err)
					return
				}
				got[r] = msgs
				for _, m := range msgs {
					if raw, err := m.Record(); err != nil || len(raw) != size {
						t.Errorf("record of %s: %d bytes, %v", m.ID, len(raw), err)
					}
				}
			}()
		}
		wg.Wait()
		if t.Failed() {
			t.FailNow()
		}
		after = got[0][len(got[0])-1].Pos()
		held := 0
		c.mu.Lock()
		for _, e := range c.entries {
			for _, m := range e.msgs {
				held += heldBytes(m)
			}
		}
		counted := c.bytes
		c.mu.Unlock()
		// The cache keeps its newest batch whatever its size: 2 MiB here.
		if held > c.maxBytes+2*(size+300) {
			t.Fatalf("after batch %d the cache holds %d MiB of records (counted %d KiB), bound %d MiB", b, held>>20, counted>>10, c.maxBytes>>20)
		}
		if held != counted {
			t.Fatalf("after batch %d the cache counts %d bytes, holds %d", b, counted, held)
		}
	}
	for i, n := range calls {
		if n.Load() != 1 {
			t.Errorf("record %d unpacked %d times, want once", i, n.Load())
		}
	}
}

// A batch the cache let go (a late message cleared it) is no longer
// counted when its records are unpacked afterwards.
func TestScanCacheForgetsClearedBatches(t *testing.T) {
	journal, _ := hugePacked(4, 1<<20)
	c := newScanCache(func(context.Context, Position, int) ([]*Message, error) { return journal, nil }, 64)
	msgs, err := c.next(context.Background(), nil, Position{}, 4)
	if err != nil || len(msgs) != 4 {
		t.Fatalf("%d messages, %v", len(msgs), err)
	}
	c.inserted(Position{}) // a late message before the batch
	for _, m := range msgs {
		if _, err := m.Record(); err != nil {
			t.Fatal(err)
		}
	}
	if c.bytes != 0 || len(c.entries) != 0 {
		t.Errorf("cleared cache counts %d bytes in %d batches, want none", c.bytes, len(c.entries))
	}
}
