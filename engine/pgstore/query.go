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

// dialect is how PostgreSQL writes a page's queries (see sqlkit.ReadPage).
var dialect = sqlkit.Dialect{
	Param: func(n int) string { return fmt.Sprintf("$%d", n) },
	Quote: quote,
	Select: func(c schema.Column) string {
		if c.Type == schema.JSON {
			return quote(c.Name) + "::text"
		}
		return quote(c.Name)
	},
	IDBound: `"id"`,
	TableID: `SELECT to_regclass($1)::oid::bigint`,
}

// Rows reads one page of a model table, with the semantics of sqlstore's
// Rows (see engine.RowQuery and sqlkit.ReadPage): the count and the page
// from one snapshot, the count from the kept row count, a page after a
// known row found by key, a deep page by number found from the nearer end
// of the range.
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
		page, err = sqlkit.ReadPage(dialect, &info.Spec.Table, q, sqlkit.Reader{
			Anchors: &db.anchors,
			Scalar: func(s sqlkit.Stmt) (int64, error) {
				var n *int64
				if err := tx.QueryRow(ctx, s.SQL, s.Args...).Scan(&n); err != nil || n == nil {
					return 0, err
				}
				return *n, nil
			},
			Key: func(s sqlkit.Stmt) ([]any, error) {
				var first []any
				err := eachRow(ctx, tx, s, func(vals []any) {
					if first == nil {
						first = vals
					}
				})
				return first, err
			},
			Rows: func(s sqlkit.Stmt, each func([]any)) error { return eachRow(ctx, tx, s, each) },
		})
		if err != nil {
			return fmt.Errorf("model %s: %w", ident, err)
		}
		return nil
	})
	if err != nil {
		return engine.RowPage{}, err
	}
	return page, nil
}

// eachRow calls each with the values of every row a statement selects.
func eachRow(ctx context.Context, tx pgx.Tx, s sqlkit.Stmt, each func([]any)) error {
	rows, err := tx.Query(ctx, s.SQL, s.Args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			return err
		}
		each(vals)
	}
	return rows.Err()
}

// AnchorSpans returns how many time ranges were counted by page anchors,
// for the tests.
func (db *DB) AnchorSpans() int { return db.anchors.Spans() }

// AnchorBuilds returns how many times a table's page anchors were read in
// full (see sqlkit.Anchors), for the tests.
func (db *DB) AnchorBuilds() int { return db.anchors.Builds() }
