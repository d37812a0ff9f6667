package pgstore

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"statscache/engine"
	"statscache/engine/sqlkit"
	"statscache/schema"
)

// This file holds the read queries of the web API. Each call runs in one
// read-only REPEATABLE READ transaction, so every number it returns comes
// from the same snapshot; they also run on a read replica.

// readTx runs fn in one read-only snapshot.
func (db *DB) readTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	return again0(ctx, func() error { return db.readTx1(ctx, fn) })
}

func (db *DB) readTx1(ctx context.Context, fn func(tx pgx.Tx) error) error {
	tx, err := db.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return fmt.Errorf("begin read: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) // read only: nothing to commit
	return fn(tx)
}

// withJournal fills a model's lag and the journal's figures.
func withJournal(ctx context.Context, tx pgx.Tx, infos []engine.ModelInfo) error {
	st, err := readJournalStats(ctx, tx)
	if err != nil {
		return err
	}
	ok := st.Messages > 0
	for i := range infos {
		infos[i].LagSeconds = sqlkit.Lag(infos[i].Status.Cursor, st.Oldest.TimeUS, st.Newest.TimeUS, ok)
		infos[i].JournalMessages = st.Messages
		if ok {
			infos[i].JournalNewestUS = st.Newest.TimeUS
		}
	}
	return nil
}

const modelColumns = `ident, spec, cursor_time_us, cursor_key, cursor_id, processed, errors, status, status_reason, updated_at, queued`

// scanModel reads one row of modelColumns.
func scanModel(s pgx.Row) (engine.ModelInfo, error) {
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
	// The row's ident is the truth; the API answers under the name it was asked for.
	info.Spec.Ident = ident
	return info, nil
}

// lastError fills info's latest recorded error, if any.
func lastError(ctx context.Context, tx pgx.Tx, info *engine.ModelInfo) error {
	e := engine.ModelError{Ident: info.Spec.Ident}
	var at int64
	err := tx.QueryRow(ctx, `SELECT msg_id, time_us, error, traceback, at FROM model_errors WHERE ident = $1 ORDER BY id DESC LIMIT 1`,
		e.Ident).Scan(&e.MsgID, &e.TimeUS, &e.Err, &e.Traceback, &at)
	if errNoRows(err) {
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
	err := db.readTx(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT `+modelColumns+` FROM models WHERE strpos(ident, $1) = 0 ORDER BY ident`, engine.ShadowSep)
		if err != nil {
			return fmt.Errorf("read models: %w", err)
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (engine.ModelInfo, error) { return scanModel(r) })
		if err != nil {
			return fmt.Errorf("read models: %w", err)
		}
		for i := range out {
			db.stalls.Apply(&out[i])
		}
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
	err := db.readTx(ctx, func(tx pgx.Tx) error {
		var err error
		if info, err = readModel(ctx, tx, ident); err != nil {
			return err
		}
		one := []engine.ModelInfo{info}
		if err := withJournal(ctx, tx, one); err != nil {
			return err
		}
		info = one[0]
		db.stalls.Apply(&info)
		return lastError(ctx, tx, &info)
	})
	return info, err
}

// readModel reads one model's row. A table being rebuilt under a shadow
// ident is private to the engine: it is not found.
func readModel(ctx context.Context, tx pgx.Tx, ident string) (engine.ModelInfo, error) {
	if strings.Contains(ident, engine.ShadowSep) {
		return engine.ModelInfo{}, fmt.Errorf("model %s: %w", ident, engine.ErrNotFound)
	}
	info, err := scanModel(tx.QueryRow(ctx, `SELECT `+modelColumns+` FROM models WHERE ident = $1`, ident))
	if errNoRows(err) {
		return info, fmt.Errorf("model %s: %w", ident, engine.ErrNotFound)
	}
	if err != nil {
		return info, fmt.Errorf("model %s: %w", ident, err)
	}
	return info, nil
}

// deepOffset is the offset from which a page is found in two steps: the
// key of its first row (from whichever end of the range is nearer), then
// the page by key. Below it, a plain OFFSET is as cheap.
const deepOffset = 500

// params numbers query parameters.
type params struct{ args []any }

func (p *params) add(v any) string {
	p.args = append(p.args, v)
	return fmt.Sprintf("$%d", len(p.args))
}

func (p *params) with(more ...any) *params {
	return &params{args: append(append([]any(nil), p.args...), more...)}
}

// Rows reads one page of a model table, with the semantics of sqlstore's
// Rows (see engine.RowQuery): the count and the page from one snapshot,
// the count from the kept row count, a page after a known row found by
// key, a deep page by number found from the nearer end of the range.
func (db *DB) Rows(ctx context.Context, ident string, q engine.RowQuery) (engine.RowPage, error) {
	var page engine.RowPage
	if err := sqlkit.CheckRowQuery(q); err != nil {
		return page, fmt.Errorf("rows of %s: %w", ident, err)
	}
	err := db.readTx(ctx, func(tx pgx.Tx) error {
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
		colIdx := map[string]int{}
		for i, c := range t.Columns {
			page.Columns[i], page.Types[i] = c.Name, c.Type
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
			orderIdx[i], quoted[i] = j, quote(name)
		}
		after, err := sqlkit.KeyArgs(t, page.Order, q.After, "After")
		if err != nil {
			return err
		}
		tuple := "(" + strings.Join(quoted, ", ") + ")"
		orderBy := func(desc bool) string {
			dir := " ASC"
			if desc {
				dir = " DESC"
			}
			return strings.Join(quoted, dir+", ") + dir
		}
		table := quote(t.Name)
		ts := quote(schema.TimestampColumn)
		var where []string
		p := &params{}
		if q.Start != nil {
			where = append(where, ts+" >= "+p.add(*q.Start))
		}
		if q.Stop != nil {
			where = append(where, ts+" <= "+p.add(*q.Stop))
		}
		timeFiltered := len(where) > 0
		if q.End > 0 {
			where = append(where, `"id" <= `+p.add(q.End))
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

		// The newest row id: what a client passes back as End to keep its
		// pages at this moment while the table grows.
		page.End = q.End
		if q.End <= 0 {
			var newest *int64
			if err := tx.QueryRow(ctx, `SELECT max("id") FROM `+table).Scan(&newest); err != nil {
				return fmt.Errorf("newest row of %s: %w", ident, err)
			}
			if newest != nil {
				page.End = *newest
			}
		}

		// Total: the kept row count without a time filter (less the rows
		// past End); with one, a count capped by the limit.
		var total int64
		if !timeFiltered {
			if err := tx.QueryRow(ctx, `SELECT n FROM table_rows WHERE name = $1`, t.Name).Scan(&total); err != nil {
				return fmt.Errorf("count rows of %s: %w", ident, err)
			}
			if q.End > 0 {
				var past int64
				if err := tx.QueryRow(ctx, `SELECT count(*) FROM `+table+` WHERE "id" > $1`, q.End).Scan(&past); err != nil {
					return fmt.Errorf("count rows of %s: %w", ident, err)
				}
				total = max(total-past, 0)
			}
		} else {
			cp := p.with()
			countSQL := "SELECT count(*) FROM " + table + filter
			if q.Limit > 0 {
				countSQL = "SELECT count(*) FROM (SELECT 1 FROM " + table + filter + " LIMIT " + cp.add(q.Limit) + ") AS capped"
			}
			if err := tx.QueryRow(ctx, countSQL, cp.args...).Scan(&total); err != nil {
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
		pageFilter, pp, offset := filter, p.with(), q.Offset
		switch {
		case after != nil:
			pageFilter, offset = and(cmp(pp, q.Desc, false, after)), 0
		case q.Offset >= deepOffset:
			desc, off := q.Desc, q.Offset
			if q.Limit == 0 && int64(off) > uncapped/2 {
				desc, off = !desc, int(uncapped)-1-off
			}
			kp := p.with()
			first, err := keyAt(ctx, tx, "SELECT "+keyList(t, page.Order)+" FROM "+table+filter+" ORDER BY "+orderBy(desc)+" OFFSET "+kp.add(off)+" LIMIT 1",
				kp.args, len(quoted))
			if err != nil {
				return fmt.Errorf("read rows of %s: %w", ident, err)
			}
			if first == nil {
				return nil // cannot happen within one snapshot; an empty page is the honest answer
			}
			pageFilter, offset = and(cmp(pp, q.Desc, true, first)), 0
		}
		query := fmt.Sprintf("SELECT %s FROM %s%s ORDER BY %s LIMIT %s OFFSET %s",
			selectList(t), table, pageFilter, orderBy(q.Desc), pp.add(n), pp.add(offset))
		rows, err := tx.Query(ctx, query, pp.args...)
		if err != nil {
			return fmt.Errorf("read rows of %s: %w", ident, err)
		}
		defer rows.Close()
		for rows.Next() {
			vals, err := rows.Values()
			if err != nil {
				return fmt.Errorf("read rows of %s: %w", ident, err)
			}
			row := make([]any, len(t.Columns))
			for i, c := range t.Columns {
				row[i] = sqlkit.FromSQL(c, vals[i])
			}
			page.Rows = append(page.Rows, row)
			last := make([]any, len(orderIdx))
			for i, j := range orderIdx {
				last[i] = vals[j]
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

// keyList lists the order columns for a SELECT, json ones as their text.
func keyList(t *schema.Table, order []string) string {
	out := make([]string, len(order))
	for i, name := range order {
		out[i] = quote(name)
		if c, _ := t.Column(name); c.Type == schema.JSON {
			out[i] += "::text"
		}
	}
	return strings.Join(out, ", ")
}

// keyAt reads the order values of the one row a query selects, nil when it
// selects none.
func keyAt(ctx context.Context, tx pgx.Tx, query string, args []any, n int) ([]any, error) {
	rows, err := tx.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	if !rows.Next() {
		return nil, rows.Err()
	}
	vals, err := rows.Values()
	if err != nil {
		return nil, err
	}
	if len(vals) != n {
		return nil, fmt.Errorf("key of %d values, want %d", len(vals), n)
	}
	return vals, rows.Err()
}
