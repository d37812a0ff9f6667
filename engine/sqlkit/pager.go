package sqlkit

import (
	"fmt"
	"strings"

	"statscache/engine"
	"statscache/schema"
)

// Dialect is what the two stores write differently in the queries of a
// page of a model table.
type Dialect struct {
	// Param is the marker of the n-th parameter (1-based): "?" or "$n".
	Param func(n int) string
	// Quote quotes an identifier.
	Quote func(name string) string
	// Select is how a column is selected: its quoted name, or a cast
	// (PostgreSQL reads jsonb as text).
	Select func(c schema.Column) string
	// IDBound is the expression the End bound compares. SQLite's is
	// `+"id"`: the unary + keeps it from scanning by row id and sorting
	// the whole table, so the order's index is walked and each entry's row
	// id (which every index entry holds) is checked.
	IDBound string
	// TableID, if not empty, selects an integer that identifies a table
	// (its parameter is the quoted name) and that a table dropped and
	// made again under the same name does not keep (PostgreSQL's OID;
	// SQLite's schema version), even when another process changed it.
	// Page anchors check it (see Anchors).
	TableID string
}

// Stmt is one statement and its arguments.
type Stmt struct {
	SQL  string
	Args []any
}

// Reader is how a store runs a page's statements, all in one read
// snapshot, so that the count always agrees with the rows returned.
type Reader struct {
	// Scalar reads the one integer a statement selects (NULL as 0).
	Scalar func(Stmt) (int64, error)
	// Key reads the values of the one row a statement selects, nil when
	// it selects none.
	Key func(Stmt) ([]any, error)
	// Rows calls each with the values of every row a statement selects
	// (vals is reused from row to row).
	Rows func(s Stmt, each func(vals []any)) error
	// Anchors, if not nil, is the store's cache of anchor keys, which
	// makes a deep page by number cheap (see anchors.go).
	Anchors *Anchors
}

// deepOffset is the offset from which a page is found in two steps: the
// key of its first row through an index-only scan (from whichever end of
// the range is nearer), then the page by key. Below it, a plain OFFSET is
// as cheap.
const deepOffset = 500

// ReadPage reads one page of a model table; see engine.RowQuery for the
// selection, order and paging. Its cost does not grow with the table: the
// count is the kept row count (table_rows, less the few rows past End), a
// page after a known row is found by key, and a deep page by number is
// found from the nearer end of the range through the key index.
func ReadPage(d Dialect, t *schema.Table, q engine.RowQuery, r Reader) (engine.RowPage, error) {
	var page engine.RowPage
	if len(t.Columns) == 0 || t.Name == "" {
		return page, fmt.Errorf("the stored spec declares no table")
	}
	page.Columns = make([]string, len(t.Columns))
	page.Types = make([]schema.Type, len(t.Columns))
	cols := make([]string, len(t.Columns))
	colIdx := map[string]int{}
	for i, c := range t.Columns {
		page.Columns[i], page.Types[i] = c.Name, c.Type
		cols[i] = d.Select(c)
		colIdx[c.Name] = i
	}
	page.Rows = [][]any{}

	// The order columns: the timestamp, then the rest of the row key.
	page.Order = []string{schema.TimestampColumn}
	for _, k := range t.Key {
		if k != schema.TimestampColumn {
			page.Order = append(page.Order, k)
		}
	}
	orderIdx := make([]int, len(page.Order))
	quoted := make([]string, len(page.Order))
	keyCols := make([]string, len(page.Order))
	for i, name := range page.Order {
		j, ok := colIdx[name]
		if !ok {
			return page, fmt.Errorf("row key column %q is not a column", name)
		}
		orderIdx[i], quoted[i], keyCols[i] = j, d.Quote(name), cols[j]
	}
	after, err := KeyArgs(t, page.Order, q.After, "After")
	if err != nil {
		return page, err
	}
	tuple := "(" + strings.Join(quoted, ", ") + ")"
	orderBy := func(desc bool) string {
		dir := " ASC"
		if desc {
			dir = " DESC"
		}
		return strings.Join(quoted, dir+", ") + dir
	}

	table := d.Quote(t.Name)
	ts := d.Quote(schema.TimestampColumn)
	base := &params{d: d}
	var where []string
	if q.Start != nil {
		where = append(where, ts+" >= "+base.add(*q.Start))
	}
	if q.Stop != nil {
		where = append(where, ts+" <= "+base.add(*q.Stop))
	}
	timeFiltered := len(where) > 0
	if q.End > 0 {
		where = append(where, d.IDBound+" <= "+base.add(q.End))
	}
	filter := ""
	if len(where) > 0 {
		filter = " WHERE " + strings.Join(where, " AND ")
	}
	and := func(cond string) string {
		if filter == "" {
			return " WHERE " + cond
		}
		return filter + " AND " + cond
	}
	one := func(sql string, args ...any) Stmt { return Stmt{sql, args} }

	// The newest row id: what a client passes back as End to keep its
	// pages at this moment while the table grows (upserts keep a row's
	// id, new rows raise it).
	page.End = q.End
	if q.End <= 0 {
		if page.End, err = r.Scalar(one(`SELECT max("id") FROM ` + table)); err != nil {
			return page, fmt.Errorf("newest row: %w", err)
		}
	}

	newest := func() (int64, error) {
		if q.End <= 0 {
			return page.End, nil
		}
		n, err := r.Scalar(one(`SELECT max("id") FROM ` + table))
		if err != nil {
			return 0, fmt.Errorf("newest row: %w", err)
		}
		return n, nil
	}
	aq := anchorQuery{d: d, r: r, name: t.Name, table: table, keyCols: keyCols, tuple: tuple, orderAsc: orderBy(false),
		end: page.End}

	// Total: the matching rows, capped by the limit. Without a time
	// filter it is the kept row count (less the rows past End, which are
	// the few committed since the listing began); with one, the
	// difference of the ranks of its edges, from the anchors, or else a
	// count with the cap in the query, so that a small limit on a huge
	// table stays cheap.
	var total int64
	var span *timeSpan
	if !timeFiltered {
		if total, err = r.Scalar(one(`SELECT n FROM table_rows WHERE name = `+d.Param(1), t.Name)); err != nil {
			return page, fmt.Errorf("count rows: %w", err)
		}
		if q.End > 0 {
			past, err := r.Scalar(one(`SELECT count(*) FROM `+table+` WHERE "id" > `+d.Param(1), q.End))
			if err != nil {
				return page, fmt.Errorf("count rows: %w", err)
			}
			total = max(total-past, 0)
		}
	} else {
		if r.Anchors != nil {
			if aq.newest, err = newest(); err != nil {
				return page, err
			}
			// The whole table's rows, for the anchors' slack only.
			if aq.rows, err = r.Scalar(one(`SELECT n FROM table_rows WHERE name = `+d.Param(1), t.Name)); err != nil {
				return page, fmt.Errorf("count rows: %w", err)
			}
			if span, err = r.Anchors.span(t.Name, aq, q.Start, q.Stop); err != nil {
				return page, fmt.Errorf("count rows: %w", err)
			}
		}
		if span != nil {
			total = span.hi - span.lo
		} else {
			cp := base.with()
			countSQL := "SELECT count(*) FROM " + table + filter
			if q.Limit > 0 {
				countSQL = "SELECT count(*) FROM (SELECT 1 FROM " + table + filter + " LIMIT " + cp.add(q.Limit) + ") AS capped"
			}
			if total, err = r.Scalar(Stmt{countSQL, cp.args}); err != nil {
				return page, fmt.Errorf("count rows: %w", err)
			}
		}
	}
	uncapped := total
	if q.Limit > 0 && int64(q.Limit) < total {
		total = int64(q.Limit)
	}
	page.Total = int(total)
	if q.Offset >= page.Total {
		return page, nil
	}
	n := page.Total - q.Offset
	if q.Count > 0 && q.Count < n {
		n = q.Count
	}

	cmp := func(pp *params, desc, inclusive bool, vals []any) string {
		op := ">"
		if desc {
			op = "<"
		}
		if inclusive {
			op += "="
		}
		ph := make([]string, len(vals))
		for i, v := range vals {
			ph[i] = pp.add(v)
		}
		return tuple + " " + op + " (" + strings.Join(ph, ", ") + ")"
	}
	// The key of a deep page's first row, from the nearest anchor.
	var first []any
	if after == nil && q.Offset >= deepOffset && r.Anchors != nil {
		switch {
		case span != nil:
			pos := span.lo + int64(q.Offset)
			if q.Desc {
				pos = span.hi - 1 - int64(q.Offset)
			}
			if first, _, err = span.set.keyAt(span.q, pos); err != nil {
				return page, fmt.Errorf("read rows: %w", err)
			}
		case !timeFiltered:
			if aq.newest, err = newest(); err != nil {
				return page, err
			}
			pos := int64(q.Offset)
			if q.Desc {
				pos = uncapped - 1 - pos
			}
			aq.rows = uncapped
			if first, _, err = r.Anchors.firstKey(t.Name, aq, pos); err != nil {
				return page, fmt.Errorf("read rows: %w", err)
			}
		}
	}
	pageFilter, pp, offset := filter, base.with(), q.Offset
	switch {
	case after != nil:
		pageFilter, offset = and(cmp(pp, q.Desc, false, after)), 0
	case first != nil:
		pageFilter, offset = and(cmp(pp, q.Desc, true, first)), 0
	case q.Offset >= deepOffset:
		// The key of the page's first row, read from the nearer end of
		// the range (only without a limit: a limit cuts the far end).
		desc, off := q.Desc, q.Offset
		if q.Limit == 0 && int64(off) > uncapped/2 {
			desc, off = !desc, int(uncapped)-1-off
		}
		kp := base.with()
		first, err := r.Key(Stmt{"SELECT " + strings.Join(keyCols, ", ") + " FROM " + table + filter +
			" ORDER BY " + orderBy(desc) + " LIMIT 1 OFFSET " + kp.add(off), kp.args})
		if err != nil {
			return page, fmt.Errorf("read rows: %w", err)
		}
		if first == nil {
			return page, nil // cannot happen within one snapshot; an empty page is the honest answer
		}
		if len(first) != len(quoted) {
			return page, fmt.Errorf("read rows: a key of %d values, want %d", len(first), len(quoted))
		}
		pageFilter, offset = and(cmp(pp, q.Desc, true, first)), 0
	}

	query := fmt.Sprintf("SELECT %s FROM %s%s ORDER BY %s LIMIT %s OFFSET %s",
		strings.Join(cols, ", "), table, pageFilter, orderBy(q.Desc), pp.add(n), pp.add(offset))
	err = r.Rows(Stmt{query, pp.args}, func(vals []any) {
		row := make([]any, len(t.Columns))
		for i, c := range t.Columns {
			row[i] = FromSQL(c, vals[i])
		}
		page.Rows = append(page.Rows, row)
		last := make([]any, len(orderIdx))
		for i, j := range orderIdx {
			last[i] = KeyValue(vals[j])
		}
		page.Last = last
	})
	if err != nil {
		return page, fmt.Errorf("read rows: %w", err)
	}
	return page, nil
}

// KeyValue is a stored value as a row key holds it: text as a string.
func KeyValue(v any) any {
	if b, ok := v.([]byte); ok {
		return string(b)
	}
	return v
}

// params numbers a statement's parameters in the dialect's markers.
type params struct {
	d    Dialect
	args []any
}

func (p *params) add(v any) string {
	p.args = append(p.args, v)
	return p.d.Param(len(p.args))
}

// with copies p, so that a statement adds its own parameters after those
// of the shared filter.
func (p *params) with() *params {
	return &params{d: p.d, args: append([]any(nil), p.args...)}
}
