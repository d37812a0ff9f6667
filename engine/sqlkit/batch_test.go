package sqlkit

import (
	"reflect"
	"testing"

	"statscache/engine"
)

// TestColSetsGroup: a group ends where the kind or the column set changes
// or the limit is reached, and a column set keeps its number however the
// sets alternate.
func TestColSetsGroup(t *testing.T) {
	ab := engine.Row{"a": 1, "b": 2}
	ba := engine.Row{"b": 3, "a": 4}
	ac := engine.Row{"a": 5, "c": 6}
	abc := engine.Row{"a": 7, "b": 8, "c": 9}
	op := func(k engine.OpKind, r engine.Row) engine.RowOp { return engine.RowOp{Kind: k, Row: r} }
	ops := []engine.RowOp{
		op(engine.OpAdd, ab), op(engine.OpAdd, ba), op(engine.OpAdd, ab), // limit 2 ends the first group
		op(engine.OpUpsert, ab), // kind
		op(engine.OpUpsert, ac), // set of the same size
		op(engine.OpUpsert, abc),
		op(engine.OpUpsert, ab), op(engine.OpUpsert, ab),
	}
	limit := func(cols int) int {
		if cols == 2 {
			return 2
		}
		return 10
	}
	var s ColSets
	type group struct{ set, n int }
	var got []group
	for rest := ops; len(rest) > 0; {
		set, n := s.Group(rest, limit)
		got = append(got, group{set, n})
		rest = rest[n:]
	}
	want := []group{{0, 2}, {0, 1}, {0, 1}, {1, 1}, {2, 1}, {0, 2}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("groups %v, want %v", got, want)
	}
	for i, cols := range [][]string{{"a", "b"}, {"a", "c"}, {"a", "b", "c"}} {
		if !reflect.DeepEqual(s.Cols(i), cols) {
			t.Errorf("set %d: %v, want %v", i, s.Cols(i), cols)
		}
	}
}
