package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"statscache/engine"
	"statscache/schema"
)

// This file holds the read queries of the web API. They use the read pool
// only, so a busy writer never delays them, and each call runs in one read
// transaction, so that every number it returns comes from the same
// snapshot (WAL mode gives each read transaction a consistent view).

// readTx runs fn in one read transaction of the read pool.
func (db *DB) readTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := db.r.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin read: %w", err)
	}
	defer tx.Rollback() // read only: nothing to commit
	return fn(tx)
}

// withJournal fills a model's lag and the journal's figures.
func withJournal(ctx context.Context, tx *sql.Tx, infos []engine.ModelInfo) error {
	st, err := readJournalStats(ctx, tx)
	if err != nil {
		return err
	}
	ok := st.Messages > 0
	for i := range infos {
		infos[i].LagSeconds = lag(infos[i].Status.Cursor, st.Oldest.TimeUS, st.Newest.TimeUS, ok)
		infos[i].JournalMessages = st.Messages
		if ok {
			infos[i].JournalNewestUS = st.Newest.TimeUS
		}
	}
	return nil
}

const modelColumns = `ident, spec, cursor_time_us, cursor_key, cursor_id, processed, errors, status, status_reason, updated_at, queued`

type rowScanner interface {
	Scan(dest ...any) error
}

// scanModel reads one row of modelColumns.
func scanModel(s rowScanner) (engine.ModelInfo, error) {
	var info engine.ModelInfo
	var ident, spec string
	var at int64
	st := &info.Status
	if err := s.Scan(&ident, &spec, &st.Cursor.TimeUS, &st.Cursor.Key, &st.CursorID, &st.Processed, &st.Errors,
		&st.Status, &st.Reason, &at, &info.Queued); err != nil {
		return info, err
	}
	st.UpdatedAt = time.Unix(at, 0).UTC()
	if err := json.Unmarshal([]byte(spec), &info.Spec); err != nil {
		return info, fmt.Errorf("model %s: decode spec: %w", ident, err)
	}
	// The row's ident is the truth; a spec written by other code could
	// disagree, and the API must answer under the name it was asked for.
	info.Spec.Ident = ident
	return info, nil
}

// qLastError reads a model's newest error (one step of its index).
const qLastError = `SELECT msg_id, time_us, error, traceback, at FROM model_errors WHERE ident = ? ORDER BY id DESC LIMIT 1`

// lastError fills info's latest recorded error, if any.
func lastError(ctx context.Context, tx *sql.Tx, info *engine.ModelInfo) error {
	e := engine.ModelError{Ident: info.Spec.Ident}
	var at int64
	err := tx.QueryRowContext(ctx, qLastError, e.Ident).Scan(&e.MsgID, &e.TimeUS, &e.Err, &e.Traceback, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("model %s: last error: %w", e.Ident, err)
	}
	info.LastError = &e
	info.LastErrorAt = time.Unix(at, 0).UTC()
	return nil
}

// ListModels describes every registered model, sorted by ident.
func (db *DB) ListModels(ctx context.Context) ([]engine.ModelInfo, error) {
	var out []engine.ModelInfo
	err := db.readTx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT `+modelColumns+` FROM models WHERE ident NOT LIKE '%`+engine.ShadowSep+`%' ORDER BY ident`)
		if err != nil {
			return fmt.Errorf("read models: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			info, err := scanModel(rows)
			if err != nil {
				return fmt.Errorf("read models: %w", err)
			}
			db.withStall(&info)
			out = append(out, info)
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("read models: %w", err)
		}
		rows.Close()
		if err := withJournal(ctx, tx, out); err != nil {
			return err
		}
		for i := range out {
			if err := lastError(ctx, tx, &out[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list models: %w", err)
	}
	return out, nil
}

// ModelInfo describes one model. An unknown ident gives an error wrapping
// engine.ErrNotFound.
func (db *DB) ModelInfo(ctx context.Context, ident string) (engine.ModelInfo, error) {
	var info engine.ModelInfo
	err := db.readTx(ctx, func(tx *sql.Tx) error {
		var err error
		info, err = readModel(ctx, tx, ident)
		if err != nil {
			return err
		}
		one := []engine.ModelInfo{info}
		if err := withJournal(ctx, tx, one); err != nil {
			return err
		}
		info = one[0]
		db.withStall(&info)
		return lastError(ctx, tx, &info)
	})
	return info, err
}

// readModel reads one model's row. A table being rebuilt under a shadow
// ident is private to the engine (it is half built, or left so by a daemon
// stopped mid-rebuild): it is not found.
func readModel(ctx context.Context, tx *sql.Tx, ident string) (engine.ModelInfo, error) {
	if strings.Contains(ident, engine.ShadowSep) {
		return engine.ModelInfo{}, fmt.Errorf("model %s: %w", ident, engine.ErrNotFound)
	}
	info, err := scanModel(tx.QueryRowContext(ctx, `SELECT `+modelColumns+` FROM models WHERE ident = ?`, ident))
	if errors.Is(err, sql.ErrNoRows) {
		return info, fmt.Errorf("model %s: %w", ident, engine.ErrNotFound)
	}
	if err != nil {
		return info, fmt.Errorf("model %s: %w", ident, err)
	}
	return info, nil
}

// deepOffset is the offset from which a page is found in two steps: the
// key of its first row through an index-only scan (from whichever end of
// the range is nearer), then the page by key. Below it, a plain OFFSET is
// as cheap.
const deepOffset = 500

// Rows reads one page of a model table; see engine.RowQuery for the
// selection, order and paging. The count and the page come from the same
// snapshot, so Total always agrees with the rows returned. An unknown ident
// gives an error wrapping engine.ErrNotFound; an End or After that does not
// fit the table, an *engine.KeyError.
//
// The cost of a page does not grow with the table: the count is the kept
// row count (minus the few rows past End), a page after a known row is
// found by key, and a deep page by number is found from the nearer end of
// the range through the key index.
func (db *DB) Rows(ctx context.Context, ident string, q engine.RowQuery) (engine.RowPage, error) {
	var page engine.RowPage
	if err := checkRowQuery(q); err != nil {
		return page, fmt.Errorf("rows of %s: %w", ident, err)
	}
	err := db.readTx(ctx, func(tx *sql.Tx) error {
		info, err := readModel(ctx, tx, ident)
		if err != nil {
			return err
		}
		t := &info.Spec.Table
		if len(t.Columns) == 0 || t.Name == "" {
			return fmt.Errorf("model %s: the stored spec declares no table", ident)
		}
		page.Columns = make([]string, len(t.Columns))
		page.Types = make([]schema.Type, len(t.Columns))
		cols := make([]string, len(t.Columns))
		colIdx := map[string]int{}
		for i, c := range t.Columns {
			page.Columns[i] = c.Name
			page.Types[i] = c.Type
			cols[i] = schema.Quote(c.Name)
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
		for i, name := range page.Order {
			j, ok := colIdx[name]
			if !ok {
				return fmt.Errorf("model %s: row key column %q is not a column", ident, name)
			}
			orderIdx[i], quoted[i] = j, schema.Quote(name)
		}
		after, err := keyArgs(t, page.Order, q.After, "After")
		if err != nil {
			return err
		}
		tuple := "(" + strings.Join(quoted, ", ") + ")"
		params := "(" + strings.TrimSuffix(strings.Repeat("?, ", len(quoted)), ", ") + ")"
		orderBy := func(desc bool) string {
			dir := " ASC"
			if desc {
				dir = " DESC"
			}
			return strings.Join(quoted, dir+", ") + dir
		}

		table := schema.Quote(t.Name)
		ts := schema.Quote(schema.TimestampColumn)
		var where []string
		var args []any
		if q.Start != nil {
			where = append(where, ts+" >= ?")
			args = append(args, *q.Start)
		}
		if q.Stop != nil {
			where = append(where, ts+" <= ?")
			args = append(args, *q.Stop)
		}
		timeFiltered := len(where) > 0
		if q.End > 0 {
			// The unary + keeps SQLite from scanning by row id and sorting
			// the whole table: the order's index is walked, and each entry's
			// row id (which every index entry holds) is checked.
			where = append(where, `+"id" <= ?`)
			args = append(args, q.End)
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
		withArgs := func(more ...any) []any { return append(append([]any(nil), args...), more...) }
		keyCols := strings.Join(quoted, ", ")

		// The newest row id: what a client passes back as End to keep its
		// pages at this moment while the table grows (the table's "id" is
		// its rowid, which upserts keep and new rows raise).
		page.End = q.End
		if q.End <= 0 {
			var newest sql.NullInt64
			if err := tx.QueryRowContext(ctx, `SELECT max("id") FROM `+table).Scan(&newest); err != nil {
				return fmt.Errorf("newest row of %s: %w", ident, err)
			}
			page.End = newest.Int64
		}

		// Total: the matching rows, capped by the limit. Without a time
		// filter it is the kept row count (less the rows past End, which
		// are the few committed since the listing began); with one, the
		// cap goes into the query so that a small limit on a huge table
		// stays cheap.
		var total int64
		if !timeFiltered {
			if err := tx.QueryRowContext(ctx, qTableRows, t.Name).Scan(&total); err != nil {
				return fmt.Errorf("count rows of %s: %w", ident, err)
			}
			if q.End > 0 {
				var past int64
				if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM "+table+` WHERE "id" > ?`, q.End).Scan(&past); err != nil {
					return fmt.Errorf("count rows of %s: %w", ident, err)
				}
				total = max(total-past, 0)
			}
		} else {
			countSQL := "SELECT count(*) FROM " + table + filter
			countArgs := args
			if q.Limit > 0 {
				countSQL = "SELECT count(*) FROM (SELECT 1 FROM " + table + filter + " LIMIT ?)"
				countArgs = withArgs(q.Limit)
			}
			if err := tx.QueryRowContext(ctx, countSQL, countArgs...).Scan(&total); err != nil {
				return fmt.Errorf("count rows of %s: %w", ident, err)
			}
		}
		uncapped := total
		if q.Limit > 0 && int64(q.Limit) < total {
			total = int64(q.Limit)
		}
		page.Total = int(total)
		if q.Offset >= page.Total {
			return nil
		}
		n := page.Total - q.Offset
		if q.Count > 0 && q.Count < n {
			n = q.Count
		}

		cmp := func(desc, inclusive bool) string {
			op := ">"
			if desc {
				op = "<"
			}
			if inclusive {
				op += "="
			}
			return tuple + " " + op + " " + params
		}
		pageFilter, pageArgs, offset := filter, args, q.Offset
		switch {
		case after != nil:
			pageFilter, pageArgs, offset = and(cmp(q.Desc, false)), withArgs(after...), 0
		case q.Offset >= deepOffset:
			// The key of the page's first row, read from the nearer end
			// of the range (only without a limit: a limit cuts the far end).
			desc, off := q.Desc, q.Offset
			if q.Limit == 0 && int64(off) > uncapped/2 {
				desc, off = !desc, int(uncapped)-1-off
			}
			first, err := keyAt(ctx, tx, "SELECT "+keyCols+" FROM "+table+filter+" ORDER BY "+orderBy(desc)+" LIMIT 1 OFFSET ?",
				withArgs(off), len(quoted))
			if err != nil {
				return fmt.Errorf("read rows of %s: %w", ident, err)
			}
			if first == nil {
				return nil // cannot happen within one snapshot; an empty page is the honest answer
			}
			pageFilter, pageArgs, offset = and(cmp(q.Desc, true)), withArgs(first...), 0
		}

		query := fmt.Sprintf("SELECT %s FROM %s%s ORDER BY %s LIMIT ? OFFSET ?",
			strings.Join(cols, ", "), table, pageFilter, orderBy(q.Desc))
		rows, err := tx.QueryContext(ctx, query, append(pageArgs, n, offset)...)
		if err != nil {
			return fmt.Errorf("read rows of %s: %w", ident, err)
		}
		defer rows.Close()
		vals := make([]any, len(t.Columns))
		ptrs := make([]any, len(t.Columns))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		for rows.Next() {
			if err := rows.Scan(ptrs...); err != nil {
				return fmt.Errorf("read rows of %s: %w", ident, err)
			}
			row := make([]any, len(t.Columns))
			for i, c := range t.Columns {
				row[i] = fromSQL(c, vals[i])
			}
			page.Rows = append(page.Rows, row)
			last := make([]any, len(orderIdx))
			for i, j := range orderIdx {
				last[i] = keyValue(vals[j])
			}
			page.Last = last
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("read rows of %s: %w", ident, err)
		}
		return nil
	})
	if err != nil {
		return engine.RowPage{}, err
	}
	return page, nil
}

// keyAt reads the order values of the one row a query selects, nil when it
// selects none.
func keyAt(ctx context.Context, tx *sql.Tx, query string, args []any, n int) ([]any, error) {
	vals := make([]any, n)
	ptrs := make([]any, n)
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	err := tx.QueryRowContext(ctx, query, args...).Scan(ptrs...)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	for i := range vals {
		vals[i] = keyValue(vals[i])
	}
	return vals, nil
}

// keyValue is a stored value as a row key holds it: text as a string.
func keyValue(v any) any {
	if b, ok := v.([]byte); ok {
		return string(b)
	}
	return v
}
