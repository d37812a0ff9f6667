package sqlkit

import (
	"sort"
	"sync"

	"statscache/engine"
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
