package engine

import "testing"

// TestMessageMemo: each key's function runs once per message, whichever
// key came first (the first is held apart from the others), and each key
// keeps its own value; a nil key is a key like the others.
func TestMessageMemo(t *testing.T) {
	type k struct{ n int }
	keys := []any{k{1}, k{2}, nil, "s", k{3}}
	for first := range keys {
		m := &Message{}
		calls := map[any]int{}
		order := append([]any{keys[first]}, append(append([]any{}, keys[:first]...), keys[first+1:]...)...)
		for round := 0; round < 3; round++ {
			for i, key := range order {
				got := m.Memo(key, func() any { calls[key]++; return i*10 + round })
				if want := i * 10; got != want {
					t.Fatalf("first %v, round %d: Memo(%v) = %v, want %v (the value of its first call)", keys[first], round, key, got, want)
				}
			}
		}
		for _, key := range keys {
			if calls[key] != 1 {
				t.Errorf("first %v: the function of %v ran %d times, want once", keys[first], key, calls[key])
			}
		}
	}
}
