package follow

import (
	"math"
	"slices"

	"statscache/engine"
)

// spanSet is a sorted set of disjoint, non-touching spans: the spans of
// time the journal holds completely.
type spanSet []engine.Span

// add merges s into the set.
func (ss spanSet) add(s engine.Span) spanSet {
	if s.Empty() {
		return ss
	}
	out := make(spanSet, 0, len(ss)+1)
	for _, x := range ss {
		switch {
		case x.ToUS < s.FromUS || x.FromUS > s.ToUS:
			out = append(out, x) // apart: neither overlaps nor touches
		default:
			s.FromUS, s.ToUS = min(s.FromUS, x.FromUS), max(s.ToUS, x.ToUS)
		}
	}
	out = append(out, s)
	slices.SortFunc(out, func(a, b engine.Span) int {
		switch {
		case a.FromUS < b.FromUS:
			return -1
		case a.FromUS > b.FromUS:
			return 1
		}
		return 0
	})
	return out
}

// holes returns the parts of [from, to) the set does not cover, in order.
func (ss spanSet) holes(from, to int64) []engine.Span {
	if to <= from {
		return nil
	}
	var out []engine.Span
	pos := from
	for _, x := range ss {
		if x.ToUS <= pos {
			continue
		}
		if x.FromUS >= to {
			break
		}
		if x.FromUS > pos {
			out = append(out, engine.Span{FromUS: pos, ToUS: x.FromUS})
		}
		pos = x.ToUS
		if pos >= to {
			return out
		}
	}
	if pos < to {
		out = append(out, engine.Span{FromUS: pos, ToUS: to})
	}
	return out
}

// capFor is how far a model at pos may process: the start of the first
// hole that ends after pos, or math.MaxInt64 when none does. A model whose
// position lies inside a hole may process nothing until the hole is
// filled.
func capFor(holes []engine.Span, pos int64) int64 {
	for _, h := range holes {
		if h.ToUS > pos {
			return h.FromUS
		}
	}
	return math.MaxInt64
}
