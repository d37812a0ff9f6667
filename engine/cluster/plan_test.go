package cluster

import (
	"fmt"
	"strings"
	"testing"
)

func instances(n int, keys ...string) []Instance {
	var out []Instance
	for i := 0; i < n; i++ {
		m := map[string]string{}
		for _, k := range keys {
			m[k] = "v1"
		}
		out = append(out, Instance{ID: fmt.Sprintf("i%d", i), Models: m})
	}
	return out
}

func keysN(n int) []string {
	var out []string
	for i := 0; i < n; i++ {
		out = append(out, fmt.Sprintf("model-%02d", i))
	}
	return out
}

func loads(assign map[string]string) map[string]int {
	out := map[string]int{}
	for _, id := range assign {
		out[id]++
	}
	return out
}

// TestPlanEven: 14 models over 3 instances: 5, 5, 4, every model once.
func TestPlanEven(t *testing.T) {
	keys := keysN(14)
	assign, conflicts := Plan(instances(3, keys...), nil)
	if len(conflicts) != 0 {
		t.Fatalf("conflicts: %v", conflicts)
	}
	if len(assign) != 14 {
		t.Fatalf("%d of 14 models assigned", len(assign))
	}
	l := loads(assign)
	for id, n := range l {
		if n < 4 || n > 5 {
			t.Errorf("%s runs %d models, want 4 or 5: %v", id, n, l)
		}
	}
}

// TestPlanKeepsHolders: a balanced assignment is kept as it is, and an
// instance that joins takes only what it needs from the others.
func TestPlanKeepsHolders(t *testing.T) {
	keys := keysN(12)
	first, _ := Plan(instances(2, keys...), nil)
	again, _ := Plan(instances(2, keys...), first)
	for k, h := range first {
		if again[k] != h {
			t.Errorf("%s moved from %s to %s with nothing changed", k, h, again[k])
		}
	}
	three, _ := Plan(instances(3, keys...), first)
	moved := 0
	for k, h := range first {
		if three[k] != h {
			moved++
			if three[k] != "i2" {
				t.Errorf("%s moved from %s to %s, not to the instance that joined", k, h, three[k])
			}
		}
	}
	if moved != 4 {
		t.Errorf("%d models moved when a third instance joined, want 4 (12/3)", moved)
	}
	// One leaves: its models go to the two others, which keep theirs.
	two := []Instance{instances(3, keys...)[0], instances(3, keys...)[2]}
	after, _ := Plan(two, three)
	for k, h := range three {
		if h != "i1" && after[k] != h {
			t.Errorf("%s moved from %s though its holder is still there", k, h)
		}
	}
	if l := loads(after); l["i0"] != 6 || l["i2"] != 6 {
		t.Errorf("after i1 left: %v, want 6 and 6", l)
	}
}

// TestPlanDisagreement: a model whose version differs between two
// instances runs nowhere, and the reason names both; a model only one
// instance has runs there.
func TestPlanDisagreement(t *testing.T) {
	in := instances(2, "a", "b")
	in[1].Models["b"] = "v2"
	in[1].Models["only"] = "v1"
	assign, conflicts := Plan(in, map[string]string{"b": "i0"})
	if _, ok := assign["b"]; ok {
		t.Errorf("b assigned to %s despite the disagreement", assign["b"])
	}
	if c := conflicts["b"]; !strings.Contains(c, "i0 has version v1") || !strings.Contains(c, "i1 has version v2") {
		t.Errorf("conflict reason %q", c)
	}
	if assign["only"] != "i1" {
		t.Errorf("only assigned to %q, want i1, the one instance that has it", assign["only"])
	}
	if _, ok := assign["a"]; !ok {
		t.Error("a not assigned")
	}
}

// TestPlanDeadHolder: keys held by an instance that is not live any more
// go to the live ones.
func TestPlanDeadHolder(t *testing.T) {
	keys := keysN(6)
	holders := map[string]string{}
	for _, k := range keys {
		holders[k] = "gone"
	}
	assign, _ := Plan(instances(2, keys...), holders)
	if l := loads(assign); l["i0"] != 3 || l["i1"] != 3 {
		t.Errorf("%v, want 3 and 3", l)
	}
}
