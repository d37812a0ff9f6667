package sqlkit

import (
	"sort"

	"statscache/schema"
)

// A time range's rows were counted per request, so a page of a day's range
// of a million-row table cost a quarter of a million index entries. The
// order starts with the timestamp, so the rows of a range are one run in
// key order, and its count is the difference of two ranks: the rows before
// its start and those up to its stop. Each rank comes from the nearest
// anchor before its edge: that anchor's rank (as rankOf adjusts it to the
// snapshot) plus the rows from it to the edge, at most anchorEvery of the
// anchors' rows plus those added since.

// timeSpan is a time range as positions in the key order of a snapshot's
// rows: [lo, hi) are the range's rows.
type timeSpan struct {
	set    *anchorSet
	q      anchorQuery
	lo, hi int64
}

// span returns the positions of the rows with a timestamp in [start, stop]
// (nil for an open side) among the rows of snapshot q, or nil when anchors
// cannot serve it (the caller counts the range instead).
func (a *Anchors) span(table string, q anchorQuery, start, stop *float64) (*timeSpan, error) {
	set, err := a.setFor(table, q)
	if err != nil || set == nil || len(set.keys) == 0 {
		return nil, err
	}
	s := &timeSpan{set: set, q: q}
	if start != nil {
		n, ok, err := set.before(q, *start, false)
		if err != nil || !ok {
			return nil, err
		}
		s.lo = n
	}
	if stop != nil {
		n, ok, err := set.before(q, *stop, true)
		if err != nil || !ok {
			return nil, err
		}
		s.hi = n
	} else {
		moved, err := set.moved(q, nil)
		if err != nil {
			return nil, err
		}
		s.hi = set.rows + moved
	}
	s.hi = max(s.hi, s.lo) // a start after the stop: no rows
	a.mu.Lock()
	a.spans++
	a.mu.Unlock()
	return s, nil
}

// before counts the snapshot's rows with a timestamp below ts (up to ts
// when through), or returns ok false when an anchor's timestamp is not a
// number Go can compare as the database does.
func (set *anchorSet) before(q anchorQuery, ts float64, through bool) (n int64, ok bool, err error) {
	for _, k := range set.keys {
		if _, num := k[0].(float64); !num {
			return 0, false, nil
		}
	}
	// The anchors before the edge are a prefix of them; the count starts
	// at its last (j), or at the table's start when there is none.
	i := sort.Search(len(set.keys), func(k int) bool {
		v := set.keys[k][0].(float64)
		return v > ts || !through && v == ts
	})
	op := " < "
	if through {
		op = " <= "
	}
	p := &params{d: q.d}
	where := q.d.IDBound + ` <= ` + p.add(q.end) + ` AND ` + q.d.Quote(schema.TimestampColumn) + op + p.add(ts)
	j := i - 1
	var rank int64
	if j >= 0 {
		if rank, err = set.rankOf(q, j); err != nil {
			return 0, false, err
		}
		where += ` AND ` + q.tuple + ` >= (` + p.list(set.keys[j]) + `)`
	}
	n, err = q.r.Scalar(Stmt{`SELECT count(*) FROM ` + q.table + ` WHERE ` + where, p.args})
	return rank + n, err == nil, err
}
