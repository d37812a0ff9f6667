package sqlkit

import (
	"fmt"
	"strings"
	"sync"
)

// A B-tree gives no rank: a page by number deep in a large table walked
// the key index from the nearer end (OFFSET), half a million entries for a
// middle page of a million-row table, about 30 requests/s. Anchors keep
// the key of every anchorEvery-th row of a table in key order, read once
// in one pass; a deep page then starts from the nearest anchor, and its
// OFFSET walks at most anchorEvery entries plus the rows added since.
//
// Model rows are never deleted, only added (an "id" above every earlier
// one) or updated in place (same key, same id), so a set of anchors built
// when the newest row was maxID stays exact for that part of the table:
// the rows a later snapshot has besides are those with an id above maxID,
// and those an older snapshot (an End below maxID) lacks are those with
// an id in (End, maxID]. Both are counted by key in SQL, through the index
// on "id", so the comparison is the database's own collation.

// anchorEvery is how many rows apart the anchors are.
const anchorEvery = 512

// anchorSlack is how many rows may lie between a snapshot's End and the
// anchors' newest row (by "id") before the anchors are read again (when
// the snapshot is the table's newest) or a page is read without them (an
// older one): those rows are counted per request. It counts rows, not ids:
// an upsert that updates a row still takes a number from the store (the
// row keeps its old one), so a batch of many updates and a few new rows
// moves the newest id far on while the table barely changes.
func anchorSlack(rows int64) int64 { return max(4*anchorEvery, rows/256) }

// Anchors caches anchor keys per table, for one store.
type Anchors struct {
	mu     sync.Mutex
	tables map[string]*anchorSet
	// building holds the tables whose anchors a request is reading: one
	// full pass per table at a time, the other requests walk the index
	// meanwhile, as they did before anchors.
	building map[string]bool
	// builds counts the full passes, spans the time ranges counted by
	// anchors, for the tests.
	builds, spans int
}

// anchorSet is the anchors of one table as of the snapshot whose newest
// row id was maxID and row count rows.
type anchorSet struct {
	maxID   int64
	rows    int64
	lastKey string // the key of row maxID, rendered: a table dropped and made again differs
	// tableID is the table's identity in the database (Dialect.TableID),
	// which a table dropped and made again does not keep, whatever rows
	// it holds; 0 where the dialect has none. A model's table name comes
	// back when its declaration is changed and changed back (a rebuilt
	// table is named after the declaration's fingerprint), and the rows
	// of the new table need not be the old one's.
	tableID int64
	keys    [][]any
}

func (a *Anchors) get(table string) *anchorSet {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.tables[table]
}

func (a *Anchors) put(table string, s *anchorSet) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.tables == nil {
		a.tables = map[string]*anchorSet{}
	}
	a.tables[table] = s
	a.builds++
}

func (a *Anchors) claim(table string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.building[table] {
		return false
	}
	if a.building == nil {
		a.building = map[string]bool{}
	}
	a.building[table] = true
	return true
}

func (a *Anchors) release(table string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.building, table)
}

// Forget drops the anchors of a table the store dropped, to free them.
func (a *Anchors) Forget(table string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.tables, table)
}

// Builds returns how many times a table's anchors were read in full.
func (a *Anchors) Builds() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.builds
}

// Spans returns how many time ranges were counted by anchors.
func (a *Anchors) Spans() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.spans
}

// anchorQuery is what finding a page's first key by anchors needs from
// ReadPage: the table, its order and the snapshot's figures.
type anchorQuery struct {
	d        Dialect
	r        Reader
	name     string   // as table_rows holds it
	table    string   // quoted
	keyCols  []string // the order's columns as selected
	tuple    string   // the order's columns as a tuple
	orderAsc string
	end      int64 // the snapshot's End (rows with a greater id are not in it)
	newest   int64 // the table's newest row id in this snapshot
	rows     int64 // the rows of the snapshot up to end
}

// setFor returns the anchors that serve snapshot q, reading them in full
// when none do and q is the table's newest; nil when none can serve (the
// caller then reads the rows without them).
func (a *Anchors) setFor(table string, q anchorQuery) (*anchorSet, error) {
	set := a.get(table)
	if set != nil {
		if valid, err := set.valid(q); err != nil {
			return nil, err
		} else if !valid {
			set = nil
		}
	}
	if set != nil {
		if far, err := set.far(q); err != nil {
			return nil, err
		} else if far {
			set = nil
		}
	}
	if set != nil {
		return set, nil
	}
	if q.end != q.newest {
		return nil, nil // an old snapshot: not worth a full pass
	}
	if !a.claim(table) {
		return nil, nil
	}
	set, err := build(q)
	a.release(table)
	if err != nil {
		return nil, err
	}
	a.put(table, set)
	return set, nil
}

// firstKey returns the key of the row at ascending position pos (0-based)
// among the rows with an id up to q.end, or ok false when anchors cannot
// serve this snapshot (the caller walks the index instead).
func (a *Anchors) firstKey(table string, q anchorQuery, pos int64) (key []any, ok bool, err error) {
	set, err := a.setFor(table, q)
	if err != nil || set == nil {
		return nil, false, err
	}
	return set.keyAt(q, pos)
}

// moved counts the rows with an id between the set's newest and the
// snapshot's End, signed: positive for rows the snapshot has besides the
// set's, negative for rows it lacks. A key, if given, counts only the rows
// before it. far has bounded their number.
func (set *anchorSet) moved(q anchorQuery, before []any) (int64, error) {
	lo, hi, sign := set.maxID, q.end, int64(1)
	if q.end < set.maxID {
		lo, hi, sign = q.end, set.maxID, -1
	}
	if lo == hi {
		return 0, nil
	}
	p := &params{d: q.d}
	sql := `SELECT count(*) FROM ` + q.table + ` WHERE "id" > ` + p.add(lo) + ` AND "id" <= ` + p.add(hi)
	if before != nil {
		sql += ` AND ` + q.tuple + ` < (` + p.list(before) + `)`
	}
	n, err := q.r.Scalar(Stmt{sql, p.args})
	return sign * n, err
}

// rankOf is the number of rows of the snapshot before anchor j: the
// anchors' own rank, less the rows the snapshot lacks, plus those it has
// besides.
func (set *anchorSet) rankOf(q anchorQuery, j int) (int64, error) {
	n, err := set.moved(q, set.keys[j])
	return int64(j)*anchorEvery + n, err
}

// keyAt returns the key of the row at ascending position pos (0-based)
// among the rows with an id up to q.end.
func (set *anchorSet) keyAt(q anchorQuery, pos int64) (key []any, ok bool, err error) {
	j := int(pos / anchorEvery)
	if j >= len(set.keys) {
		j = len(set.keys) - 1
	}
	var rank int64
	for ; j >= 0; j-- {
		if rank, err = set.rankOf(q, j); err != nil {
			return nil, false, err
		}
		if rank <= pos {
			break
		}
	}
	p := &params{d: q.d}
	where := q.d.IDBound + ` <= ` + p.add(q.end)
	if j >= 0 {
		where += ` AND ` + q.tuple + ` >= (` + p.list(set.keys[j]) + `)`
	} else {
		rank = 0
	}
	key, err = q.r.Key(Stmt{`SELECT ` + strings.Join(q.keyCols, ", ") + ` FROM ` + q.table + ` WHERE ` + where +
		` ORDER BY ` + q.orderAsc + ` LIMIT 1 OFFSET ` + p.add(pos-rank), p.args})
	return key, key != nil, err
}

// valid tells whether set still describes the table: no row was added
// between its newest and this snapshot's but those with greater ids (a
// table dropped and made again, say by a rebuild, fails this).
func (set *anchorSet) valid(q anchorQuery) (bool, error) {
	if id, err := tableID(q); err != nil || id != set.tableID {
		return false, err
	}
	p := &params{d: q.d}
	last, err := q.r.Key(Stmt{`SELECT ` + strings.Join(q.keyCols, ", ") + ` FROM ` + q.table + ` WHERE "id" = ` + p.add(set.maxID), p.args})
	if err != nil || last == nil || render(last) != set.lastKey {
		return false, err
	}
	p = &params{d: q.d}
	added, err := q.r.Scalar(Stmt{`SELECT count(*) FROM ` + q.table + ` WHERE "id" > ` + p.add(set.maxID) + ` AND "id" <= ` + p.add(q.newest), p.args})
	if err != nil {
		return false, err
	}
	// The snapshot's whole table (up to its newest row) against the set's.
	total, err := q.r.Scalar(Stmt{`SELECT n FROM table_rows WHERE name = ` + q.d.Param(1), []any{q.name}})
	return err == nil && total == set.rows+added, err
}

// far tells whether more than anchorSlack rows lie between the set's
// newest row and the snapshot's End, counting no further than that.
func (set *anchorSet) far(q anchorQuery) (bool, error) {
	lo, hi := min(set.maxID, q.end), max(set.maxID, q.end)
	if lo == hi {
		return false, nil
	}
	slack := anchorSlack(q.rows)
	p := &params{d: q.d}
	n, err := q.r.Scalar(Stmt{`SELECT count(*) FROM (SELECT 1 FROM ` + q.table + ` WHERE "id" > ` + p.add(lo) + ` AND "id" <= ` + p.add(hi) +
		` LIMIT ` + p.add(slack+1) + `) AS moved`, p.args})
	if err != nil {
		return false, fmt.Errorf("anchors: %w", err)
	}
	return n > slack, nil
}

// build reads every anchorEvery-th key of the table in this snapshot.
func build(q anchorQuery) (*anchorSet, error) {
	set := &anchorSet{maxID: q.newest}
	var err error
	if set.tableID, err = tableID(q); err != nil {
		return nil, err
	}
	p := &params{d: q.d}
	last, err := q.r.Key(Stmt{`SELECT ` + strings.Join(q.keyCols, ", ") + ` FROM ` + q.table + ` WHERE "id" = ` + p.add(q.newest), p.args})
	if err != nil {
		return nil, fmt.Errorf("anchors: %w", err)
	}
	set.lastKey = render(last)
	var i int64
	err = q.r.Rows(Stmt{`SELECT ` + strings.Join(q.keyCols, ", ") + ` FROM ` + q.table + ` ORDER BY ` + q.orderAsc, nil}, func(vals []any) {
		if i%anchorEvery == 0 {
			k := make([]any, len(vals))
			for c, v := range vals {
				k[c] = KeyValue(v)
			}
			set.keys = append(set.keys, k)
		}
		i++
	})
	if err != nil {
		return nil, fmt.Errorf("anchors: %w", err)
	}
	set.rows = i
	return set, nil
}

// tableID reads the table's identity in the database, 0 where the
// dialect has none.
func tableID(q anchorQuery) (int64, error) {
	if q.d.TableID == "" {
		return 0, nil
	}
	id, err := q.r.Scalar(Stmt{q.d.TableID, []any{q.table}})
	if err != nil {
		return 0, fmt.Errorf("anchors: table identity: %w", err)
	}
	return id, nil
}

func render(key []any) string { return fmt.Sprintf("%#v", key) }

// list adds vals as parameters and returns their markers, comma-separated.
func (p *params) list(vals []any) string {
	ph := make([]string, len(vals))
	for i, v := range vals {
		ph[i] = p.add(v)
	}
	return strings.Join(ph, ", ")
}
