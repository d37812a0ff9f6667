package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// Several engines (one per `statscache run` process) may share one
// database. Each model then runs in exactly one of them at a time, by a
// lease in the database that a coordinator (engine/cluster) acquires,
// renews and releases. The engine knows nothing of how leases are kept:
// with Config.Leased set, a model runs only while the coordinator has
// granted its lease key (Grant) and until it takes it back (Release), and
// every commit carries the lease's Fence, which the store checks inside
// the commit transaction. A store that finds the lease held by another
// instance, or with another token, refuses the commit with an error
// wrapping ErrFenced: the model then stops here without being marked
// failed, since another instance runs it now.

// Fence is the proof that an instance holds a model's lease: the
// instance's id and the lease's token, which every takeover increments.
// A commit made with a fence whose token is no longer the lease's is
// refused, so an instance that was paused past its lease (a long GC,
// SIGSTOP, a frozen VM) can never commit over the instance that took the
// model meanwhile.
type Fence struct {
	Holder string
	Token  int64
}

// ErrFenced is wrapped by a store's commit error when the commit's fence
// no longer matches the model's lease: another instance has taken the
// model, or the lease expired.
var ErrFenced = errors.New("the model's lease is no longer held by this instance")

// LeaseKey is the lease a model runs under: its ident, or for a table
// being rebuilt (ident#fingerprint) the ident of the model it replaces, so
// that a rebuild and its promotion happen in the instance that runs the
// model.
func LeaseKey(ident string) string {
	if i := strings.Index(ident, ShadowSep); i > 0 {
		return ident[:i]
	}
	return ident
}

// LeaseKeys returns the lease key of every model the engine has, mapped
// to what identifies the model's code and table (its version and table
// fingerprint): instances that disagree about it must not run the model.
func (e *Engine) LeaseKeys() map[string]string {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string]string, len(e.runners))
	for id, r := range e.runners {
		if LeaseKey(id) != id {
			continue // a rebuild: the model's own entry stands for it
		}
		out[id] = r.spec.Version + "/" + r.spec.Table.Fingerprint()
	}
	return out
}

// Grant starts the models under lease key key (the model and a rebuild of
// its table), with fence f on every commit, from their committed cursors
// as the store has them now (another instance may have moved them). A
// model already running with the same fence is left alone. It returns an
// error when a model's status cannot be read; the caller should release
// the lease then.
func (e *Engine) Grant(ctx context.Context, key string, f Fence) error {
	e.mu.Lock()
	e.leases[key] = f
	var ids []string
	for _, r := range e.runnersOf(key) {
		ids = append(ids, r.spec.Ident)
	}
	e.mu.Unlock()
	for _, id := range ids {
		if err := e.grant(ctx, id, key, f); err != nil {
			return err
		}
	}
	return nil
}

// grant replaces the runner of ident by a fresh one with fence f, unless
// it already runs with f. The old runner is stopped first, and the new
// one put in only if no one started the old one meanwhile (Run starts
// the runners whose key is granted) and the lease is still f: a model
// never runs twice here, nor after a Release.
func (e *Engine) grant(ctx context.Context, id, key string, f Fence) error {
	for {
		e.mu.Lock()
		r := e.runners[id]
		if r == nil || e.leases[key] != f || r.replaced {
			// Removed, released meanwhile, or stopped by the promotion of
			// its rebuilt table, whose runner takes its place under this
			// lease: started again, it would run beside that one.
			e.mu.Unlock()
			return nil
		}
		// r.fence is read under e.mu: Run sets it (mayStart) when it
		// starts a runner whose lease was granted before Run began.
		held := r.fence != nil && *r.fence == f
		same := held && r.active()
		e.mu.Unlock()
		if same && !r.isFailed() {
			return nil
		}
		if held && r.failedReason() != "" {
			return nil // failed under this lease: it waits for a fix and a reload
		}
		r.stop()
		st, err := e.store.Register(ctx, r.spec)
		if err != nil {
			return fmt.Errorf("grant %s: %w", id, err)
		}
		nr := newRunner(e, r.model, st)
		nr.promoteTo = r.promoteTo
		if st.Cursor.IsZero() {
			// Where a new model's history starts, as this instance fixed
			// it when it added the model. Once another instance has
			// committed, the model goes on from that cursor: a start of
			// this instance's (a Backlog counted from a later clock)
			// would pass over messages after it.
			nr.startUS = r.startUS
		}
		nr.hold.Store(r.hold.Load())
		fc := f
		nr.fence = &fc
		e.mu.Lock()
		// The lease is looked at again: a Release while the old runner
		// stopped or the model registered has stopped what it found,
		// and the new runner must not start after it.
		if e.runners[id] == r && !r.active() && !r.replaced && e.leases[key] == f {
			e.runners[id] = nr
			if e.running != nil {
				e.start(nr)
			}
			e.mu.Unlock()
			return nil
		}
		e.mu.Unlock()
	}
}

// Release stops the models under lease key key: each commits what it has
// processed (with its fence) and stops. It returns once they have stopped,
// so that the caller can then release the lease for another instance to
// take: the models resume there from these commits.
func (e *Engine) Release(key string) {
	e.mu.Lock()
	delete(e.leases, key)
	rs := e.runnersOf(key)
	e.mu.Unlock()
	for _, r := range rs {
		r.stop()
	}
}

// Granted returns the lease keys the engine runs models under, with their
// fences.
func (e *Engine) Granted() map[string]Fence {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string]Fence, len(e.leases))
	for k, f := range e.leases {
		out[k] = f
	}
	return out
}

// FencedCommits is how many commits the store refused because the lease
// had moved (see ErrFenced).
func (e *Engine) FencedCommits() int64 { return e.fenced.Load() }

// SetClusterWatermark caps the watermark at us (unix µs): the time up to
// which every instance sharing the journal has journaled what it will
// journal. Other instances' appends do not wake the runners or mark their
// batches stale as this engine's own do (see commitMu), so a model must
// not read past what all of them have promised. Cached journal reads that
// reach past the old cap are dropped first, since other instances may
// have appended there; a runner reads the cap before the journal (run).
func (e *Engine) SetClusterWatermark(us int64) {
	old := e.clusterWM.Load()
	if old == us {
		return
	}
	e.cache.inserted(Position{TimeUS: min(old, us)})
	e.clusterWM.Store(us)
	e.wake()
}

// Poke wakes the runners: another instance may have appended to the
// journal.
func (e *Engine) Poke() { e.wake() }

// runnersOf returns the runners under lease key key. e.mu is held.
func (e *Engine) runnersOf(key string) []*runner {
	var rs []*runner
	for _, id := range e.order {
		if LeaseKey(id) == key {
			rs = append(rs, e.runners[id])
		}
	}
	return rs
}

// mayStart reports whether r may run: always without leases, and with
// them while its lease key is granted. e.mu is held.
func (e *Engine) mayStart(r *runner) bool {
	if !e.cfg.Leased {
		return true
	}
	f, ok := e.leases[LeaseKey(r.spec.Ident)]
	if !ok {
		return false
	}
	r.fence = &f
	return true
}

// loseLease stops a runner whose commit the store refused: another
// instance holds its lease now. The model is not marked failed; the
// coordinator is told, and may acquire the lease again later (with a new
// token), which starts the model afresh from its committed cursor.
func (r *runner) loseLease(err error) {
	r.mu.Lock()
	r.lost = true
	r.mu.Unlock()
	r.e.fenced.Add(1)
	r.log.Warn("commit refused: another instance holds the model's lease; the model stops here", "token", r.fence.Token, "cursor", r.committed, "err", err)
	key := LeaseKey(r.spec.Ident)
	r.e.mu.Lock()
	if f, ok := r.e.leases[key]; ok && f == *r.fence {
		delete(r.e.leases, key)
	}
	r.e.mu.Unlock()
	if fn := r.e.cfg.OnFenced; fn != nil {
		fn(key, *r.fence)
	}
}

// active reports whether the runner's goroutine is running. e.mu is held.
func (r *runner) active() bool {
	if r.done == nil {
		return false
	}
	select {
	case <-r.done:
		return false
	default:
		return true
	}
}

// stop ends the runner's goroutine, which commits what it has processed,
// and waits for it.
func (r *runner) stop() {
	r.e.mu.Lock()
	cancel, done := r.cancel, r.done
	r.e.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
}

// watermark is how far the runner may process: the engine's watermark,
// the cluster's and its own hold.
func (r *runner) watermark() int64 {
	return min(r.e.watermark.Load(), r.e.clusterWM.Load(), r.hold.Load())
}

// ErrJournaledBehind is wrapped by a store's fenced commit error when the
// journal holds more messages between the model's committed cursor and the
// batch's cursor than the batch passed: another instance journaled one
// there after the batch read the journal (a message the bus delivered
// late, an archive check, an AMQP redelivery), which no lock of this
// process saw. Nothing is written; the model processes the batch again.
var ErrJournaledBehind = errors.New("a message was journaled inside the batch after it was read")
