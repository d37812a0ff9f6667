package sqlkit

import (
	"fmt"
	"sort"
	"strings"
	"sync"

	"statscache/engine"
	"statscache/schema"
)

// SortedCols returns the column names of a row, sorted: the column list
// of a multi-row write.
func SortedCols(r engine.Row) []string {
	cols := make([]string, 0, len(r))
	for c := range r {
		cols = append(cols, c)
	}
	sort.Strings(cols)
	return cols
}

// SameCols reports whether r has exactly the columns cols (sorted), so
// that it can join a multi-row write of them.
func SameCols(cols []string, r engine.Row) bool {
	if len(r) != len(cols) {
		return false
	}
	for _, c := range cols {
		if _, ok := r[c]; !ok {
			return false
		}
	}
	return true
}

// ColSets numbers the column sets of the rows a store writes, so that it
// can find the statement it wrote for a set by its number instead of
// writing its text again. A model writes rows of a few sets, each many
// times. The zero value is ready.
type ColSets struct {
	sets [][]string // sorted columns, by number
	last int        // the number of the latest set found
}

// Len is how many column sets are numbered.
func (s *ColSets) Len() int { return len(s.sets) }

// Cols returns the columns (sorted) of set number i.
func (s *ColSets) Cols(i int) []string { return s.sets[i] }

// Of returns the number of r's column set, numbering it if it is new.
func (s *ColSets) Of(r engine.Row) int {
	if s.last < len(s.sets) && SameCols(s.sets[s.last], r) {
		return s.last
	}
	for i, cols := range s.sets {
		if SameCols(cols, r) {
			s.last = i
			return i
		}
	}
	s.sets = append(s.sets, SortedCols(r))
	s.last = len(s.sets) - 1
	return s.last
}

// Group returns how many of ops, from the first on, go into one multi-row
// write: those of the first's kind and column set, at most limit(number of
// columns). set is the number of their column set.
func (s *ColSets) Group(ops []engine.RowOp, limit func(cols int) int) (set, n int) {
	set = s.Of(ops[0].Row)
	cols := s.sets[set]
	per := limit(len(cols))
	n = 1
	for n < len(ops) && n < per && ops[n].Kind == ops[0].Kind && SameCols(cols, ops[n].Row) {
		n++
	}
	return set, n
}

// OnConflict is the clause that ends a multi-row write of cols (sorted)
// of kind upsert or add to t, both stores' SQL, with names quoted by
// quote: an upsert replaces the non-key columns it names, an add sums the
// numeric ones. An insert has none.
func OnConflict(t *schema.Table, cols []string, kind engine.OpKind, quote func(string) string) string {
	if kind == engine.OpInsert {
		return ""
	}
	keys := make([]string, len(t.Key))
	for i, k := range t.Key {
		keys[i] = quote(k)
	}
	var sets []string
	for _, n := range cols {
		if t.IsKey(n) {
			continue
		}
		q := quote(n)
		if c, _ := t.Column(n); kind == engine.OpAdd && c.Type.Numeric() {
			sets = append(sets, fmt.Sprintf("%s = coalesce(%s.%s, 0) + coalesce(excluded.%s, 0)", q, quote(t.Name), q, q))
		} else {
			sets = append(sets, fmt.Sprintf("%s = excluded.%s", q, q))
		}
	}
	if len(sets) == 0 {
		return fmt.Sprintf(" ON CONFLICT (%s) DO NOTHING", strings.Join(keys, ", "))
	}
	return fmt.Sprintf(" ON CONFLICT (%s) DO UPDATE SET %s", strings.Join(keys, ", "), strings.Join(sets, ", "))
}

// JournalDelta is what one append adds to journal_stats: how many
// messages, how many late, and the first and last in journal order.
type JournalDelta struct {
	Added, Late int
	Lo, Hi      engine.Position
}

// Add counts one journaled message.
func (d *JournalDelta) Add(p engine.Position, late int) {
	if d.Added == 0 || p.Less(d.Lo) {
		d.Lo = p
	}
	if d.Added == 0 || d.Hi.Less(p) {
		d.Hi = p
	}
	d.Added++
	d.Late += late
}

// Stalls holds the marks of engine.StallNoter: models stopped for a
// passing reason (a full disk), shown to readers without being written.
// The zero value is ready.
type Stalls struct {
	mu sync.Mutex
	m  map[string]string // ident -> reason
}

// Note marks a model stalled with reason; an empty reason clears it.
func (s *Stalls) Note(ident, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if reason == "" {
		delete(s.m, ident)
		return
	}
	if s.m == nil {
		s.m = map[string]string{}
	}
	s.m[ident] = reason
}

// Apply shows a mark on what the API reads of a model: a stalled model
// that is "ok" in the database reads as failed, with the reason.
func (s *Stalls) Apply(info *engine.ModelInfo) {
	s.mu.Lock()
	reason, ok := s.m[info.Spec.Ident]
	s.mu.Unlock()
	if ok && info.Status.Status == "ok" {
		info.Status.Status, info.Status.Reason = "failed", reason
	}
}
