package amqp

import (
	"sync"

	rmq "github.com/rabbitmq/amqp091-go"
)

// acker acknowledges the deliveries of one channel once each is done
// (journaled, or rejected). Done calls come from any goroutine and in any
// order; an ack with "multiple" set acknowledges every earlier
// unacknowledged delivery of the channel too, so it is sent only up to the
// oldest delivery that is not done yet: a delivery is never acknowledged
// before it is done. Delivery tags belong to their channel: after the
// channel is gone the acker ignores late calls (those deliveries come
// again, and the journal drops the duplicates).
type acker struct {
	s  *Subscriber
	ch *rmq.Channel

	mu      sync.Mutex
	pending []uint64 // delivered, not yet acknowledged, in delivery order
	isDone  map[uint64]bool
	inHand  int // handed to the daemon and not journaled yet
	closed  bool
	// backlog is how many messages waited in the queue when the session
	// began (they are delivered first); once that many are done the
	// subscriber has caught up.
	backlog, finished int
}

func newAcker(s *Subscriber, ch *rmq.Channel, backlog int) *acker {
	if backlog <= 0 {
		s.catchingUp.Store(false)
	}
	return &acker{s: s, ch: ch, isDone: map[uint64]bool{}, backlog: backlog}
}

// delivered records a new delivery (tags grow within a channel).
func (a *acker) delivered(tag uint64) {
	a.mu.Lock()
	a.pending = append(a.pending, tag)
	a.mu.Unlock()
	a.s.unacked.Add(1)
}

// handed counts deliveries handed over (+1) or taken back (-1).
func (a *acker) handed(n int) {
	a.mu.Lock()
	a.inHand += n
	a.mu.Unlock()
}

// done marks a delivery done (handed: it was handed over and is now
// journaled; else it was rejected) and acknowledges the oldest run of
// done deliveries with one ack. A second call for the same tag does
// nothing.
func (a *acker) done(tag uint64, handed bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed || a.isDone[tag] || len(a.pending) == 0 || tag < a.pending[0] {
		return
	}
	a.isDone[tag] = true
	if handed {
		a.inHand--
	}
	if a.finished++; a.finished == a.backlog {
		a.s.catchingUp.Store(false)
	}
	n := 0
	for n < len(a.pending) && a.isDone[a.pending[n]] {
		delete(a.isDone, a.pending[n])
		n++
	}
	if n == 0 {
		return
	}
	last := a.pending[n-1]
	a.pending = a.pending[n:]
	if err := a.ch.Ack(last, true); err != nil {
		// The channel is gone: everything unacknowledged is requeued.
		a.s.log.Debug("amqp: ack failed; the broker will deliver again", "tag", last, "err", err)
		return
	}
	a.s.acked.Add(int64(n))
	a.s.unacked.Add(int64(-n))
}

// outstanding is the number of deliveries handed over and not journaled.
func (a *acker) outstanding() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.inHand
}

// flush acknowledges, one by one, the done deliveries stuck behind one
// that will never be done in this channel (handed back at a stop).
func (a *acker) flush() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return
	}
	keep := a.pending[:0]
	for _, tag := range a.pending {
		if !a.isDone[tag] {
			keep = append(keep, tag)
			continue
		}
		delete(a.isDone, tag)
		if err := a.ch.Ack(tag, false); err == nil {
			a.s.acked.Add(1)
			a.s.unacked.Add(-1)
		}
	}
	a.pending = keep
}

// close makes later done calls no-ops: the channel's tags are void.
func (a *acker) close() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.closed = true
	a.s.unacked.Add(int64(-len(a.pending)))
	a.pending, a.isDone = nil, nil
}
