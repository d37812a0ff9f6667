package schema

import (
	"fmt"
	"testing"
)

// TestStoreValue: each value is stored as its column's type, and one that
// already has that type comes back without an allocation (a replay
// converts millions of them).
func TestStoreValue(t *testing.T) {
	cases := []struct {
		col  Type
		in   any
		want string // %T %v
	}{
		{Integer, int64(1000), "int64 1000"},
		{Integer, 7, "int64 7"},
		{Integer, 3.0, "int64 3"},
		{Integer, true, "int64 1"},
		{Real, 2.5, "float64 2.5"},
		{Real, int64(4), "float64 4"},
		{Text, "some text", "string some text"},
		{JSON, map[string]any{"a": 1}, `string {"a":1}`},
		{Text, nil, "<nil> <nil>"},
	}
	for _, c := range cases {
		got, err := StoreValue(Column{Name: "c", Type: c.col}, c.in)
		if err != nil {
			t.Errorf("%s %v: %v", c.col, c.in, err)
			continue
		}
		if s := fmt.Sprintf("%T %v", got, got); s != c.want {
			t.Errorf("%s %v: %s, want %s", c.col, c.in, s, c.want)
		}
	}
	for _, c := range []struct {
		col Type
		in  any
	}{{Integer, int64(1000)}, {Real, 2.5}, {Text, "some text"}} {
		col := Column{Name: "c", Type: c.col}
		if n := testing.AllocsPerRun(100, func() { StoreValue(col, c.in) }); n != 0 {
			t.Errorf("%s %v: %v allocations, want none", c.col, c.in, n)
		}
	}
	for _, bad := range []struct {
		col Type
		in  any
	}{{Integer, 1.5}, {Real, "x"}, {Text, 1.0}} {
		if _, err := StoreValue(Column{Name: "c", Type: bad.col}, bad.in); err == nil {
			t.Errorf("%s %v: no error", bad.col, bad.in)
		}
	}
}
