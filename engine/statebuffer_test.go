package engine

import (
	"context"
	"fmt"
	"testing"
)

// stateStore is a ModelStore with only a committed state, counting the
// reads that go to it.
type stateStore struct {
	ModelStore
	vals   map[string]string
	lister bool // whether ListState answers (else: too many keys)
	loads  int
}

func (s *stateStore) LoadState(_ context.Context, _, key string) (string, bool, error) {
	s.loads++
	v, ok := s.vals[key]
	return v, ok, nil
}

func (s *stateStore) ListState(_ context.Context, _ string, limit int) (map[string]string, bool, error) {
	if !s.lister || len(s.vals) > limit {
		return nil, false, nil
	}
	out := map[string]string{}
	for k, v := range s.vals {
		out[k] = v
	}
	return out, true, nil
}

// commit writes the buffer's pending state to the store, as a commit does.
func (s *stateStore) commit(b *stateBuffer) {
	for k, v := range b.pending {
		if v == nil {
			delete(s.vals, k)
		} else {
			s.vals[k] = *v
		}
	}
	b.committed()
}

func expect(t *testing.T, b *stateBuffer, key, want string, wantOK bool) {
	t.Helper()
	v, ok, err := b.Get(key)
	if err != nil || v != want || ok != wantOK {
		t.Fatalf("Get(%q) = %q %v %v, want %q %v", key, v, ok, err, want, wantOK)
	}
}

// TestStateBufferComplete: with the whole state read at the start, reads
// of present and absent keys, and of keys the runner committed or deleted
// since, are answered without a query, and read what the store holds.
func TestStateBufferComplete(t *testing.T) {
	st := &stateStore{vals: map[string]string{"a": "1", "b": "2"}, lister: true}
	b := &stateBuffer{store: st, max: DefaultKnownState}
	b.reset()
	b.load(context.Background())
	expect(t, b, "a", "1", true)
	expect(t, b, "nope", "", false)
	b.Set("c", "3")
	b.Delete("a")
	expect(t, b, "a", "", false) // its own write
	st.commit(b)
	expect(t, b, "a", "", false)
	expect(t, b, "c", "3", true)
	expect(t, b, "b", "2", true)
	if st.loads != 0 {
		t.Errorf("%d reads went to the store, want none", st.loads)
	}
}

// TestStateBufferPartial: without the whole state (too many keys, or a
// store that cannot list it), a key is read from the store once, present
// or absent, and then known; after forget (a commit whose outcome is
// unknown) it is read again.
func TestStateBufferPartial(t *testing.T) {
	st := &stateStore{vals: map[string]string{"a": "1"}}
	b := &stateBuffer{store: st, max: DefaultKnownState}
	b.reset()
	b.load(context.Background())
	expect(t, b, "a", "1", true)
	expect(t, b, "x", "", false)
	expect(t, b, "a", "1", true)
	expect(t, b, "x", "", false)
	if st.loads != 2 {
		t.Fatalf("%d reads went to the store, want 2 (one per key)", st.loads)
	}
	b.Set("x", "new")
	st.commit(b)
	expect(t, b, "x", "new", true)
	if st.loads != 2 {
		t.Fatalf("a committed value was read from the store")
	}
	st.vals["a"] = "changed elsewhere" // as after a commit with an unknown outcome
	b.forget()
	expect(t, b, "a", "changed elsewhere", true)
	if st.loads != 3 {
		t.Fatalf("%d reads went to the store after forget, want 3", st.loads)
	}
}

// TestStateBufferBound: past its bound (Config.KnownState) the runner forgets what it
// knew, the claim to hold every key included: a key committed before and
// no longer held is read from the store, not taken as absent.
func TestStateBufferBound(t *testing.T) {
	st := &stateStore{vals: map[string]string{"first": "1"}, lister: true}
	b := &stateBuffer{store: st, max: DefaultKnownState}
	b.reset()
	b.load(context.Background())
	for i := 0; i < DefaultKnownState; i++ {
		b.Set(fmt.Sprint("k", i), "v")
	}
	st.commit(b)
	expect(t, b, "first", "1", true)
	expect(t, b, fmt.Sprint("k", DefaultKnownState-1), "v", true)
	if st.loads == 0 {
		t.Fatal("every read answered from memory past the bound")
	}
	if len(b.known) > DefaultKnownState {
		t.Errorf("%d values held, over the bound of %d", len(b.known), DefaultKnownState)
	}
}

// TestStateBufferNone: with no values held (a negative Config.KnownState),
// every read of committed state goes to the store.
func TestStateBufferNone(t *testing.T) {
	st := &stateStore{vals: map[string]string{"a": "1"}, lister: true}
	b := &stateBuffer{store: st}
	b.reset()
	b.load(context.Background())
	expect(t, b, "a", "1", true)
	expect(t, b, "x", "", false)
	b.Set("x", "2")
	st.commit(b)
	expect(t, b, "x", "2", true)
	expect(t, b, "a", "1", true)
	if st.loads != 4 {
		t.Errorf("%d reads went to the store, want all 4", st.loads)
	}
}
