package engine

import (
	"context"
)

// StateLister is a ModelStore that reads a model's whole committed state in
// one query. The runners use it to answer state reads from memory (see
// stateBuffer).
type StateLister interface {
	// ListState returns every committed state value of a model, or ok
	// false when it has more than limit keys.
	ListState(ctx context.Context, ident string, limit int) (values map[string]string, ok bool, err error)
}

// stateBuffer holds a model's uncommitted state writes over its committed
// state, and what the runner knows of the committed state.
//
// A runner is the only writer of its model's state while it runs (in a
// cluster, another instance's commits fence it off before it commits), so
// the committed state changes only by its own commits: the values it read
// or committed stay true until it stops. With the whole state read at the
// start (complete), a key the runner does not hold is known to be absent,
// and no read goes to the store. The contributor models read a state key
// for every contributor they meet in a period, most of them absent: over
// 100,000 messages every shipped model made about 55,000 such queries.
type stateBuffer struct {
	ident   string
	store   ModelStore
	pending map[string]*string
	// known holds committed values (nil: the key is absent), at most max
	// of them (Config.KnownState: with the default, a few megabytes; a
	// model with more keys reads the ones it does not hold from the
	// store, one query each); complete says it holds every committed key.
	known    map[string]*string
	complete bool
	max      int
	// ctx is what a read of committed state runs with (the runner's, with
	// its drain: see runner.run); nil: context.Background.
	ctx context.Context
}

func (s *stateBuffer) reset() { s.pending = map[string]*string{} }

// load reads the whole committed state when the store can and the model
// has at most max keys; otherwise reads go to the store until
// the runner learns the values. A failed read only costs the queries.
func (s *stateBuffer) load(ctx context.Context) {
	s.forget()
	sl, ok := s.store.(StateLister)
	if !ok || s.max == 0 {
		return
	}
	vals, ok, err := sl.ListState(ctx, s.ident, s.max)
	if err != nil || !ok {
		return
	}
	for k, v := range vals {
		s.known[k] = &v
	}
	s.complete = true
}

// forget drops what the runner knows of the committed state: it no longer
// knows what is committed (a commit whose outcome is unknown, a new start).
func (s *stateBuffer) forget() {
	s.known, s.complete = map[string]*string{}, false
}

// committed records that the pending writes are committed.
func (s *stateBuffer) committed() {
	for k, v := range s.pending {
		s.learn(k, v)
	}
	s.reset()
}

// learn records a committed value (nil: absent) within the bound; past it
// the runner forgets everything and reads from the store again, as it
// does without StateLister.
func (s *stateBuffer) learn(key string, v *string) {
	if s.max == 0 {
		return
	}
	if _, ok := s.known[key]; !ok && len(s.known) >= s.max || s.known == nil {
		s.forget()
	}
	s.known[key] = v
}

func (s *stateBuffer) Get(key string) (string, bool, error) {
	v, ok := s.pending[key]
	if !ok {
		v, ok = s.known[key]
	}
	if ok {
		if v == nil {
			return "", false, nil
		}
		return *v, true, nil
	}
	if s.complete {
		return "", false, nil
	}
	ctx := s.ctx
	if ctx == nil {
		ctx = context.Background()
	}
	val, found, err := s.store.LoadState(ctx, s.ident, key)
	if err != nil {
		return "", false, err
	}
	if found {
		s.learn(key, &val)
	} else {
		s.learn(key, nil)
	}
	return val, found, nil
}

func (s *stateBuffer) Set(key, value string) { s.pending[key] = &value }
func (s *stateBuffer) Delete(key string)     { s.pending[key] = nil }

// writeTo writes the pending state into a commit transaction. The writes
// stay pending until the commit succeeds (committed), so that a failed
// transaction can be written again.
func (s *stateBuffer) writeTo(tx ModelTx) error {
	for k, v := range s.pending {
		if err := tx.PutState(k, v); err != nil {
			return err
		}
	}
	return nil
}
