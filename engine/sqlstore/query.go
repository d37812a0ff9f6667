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
	"statscache/engine/sqlkit"
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

// dialect is how SQLite writes a page's queries (see sqlkit.ReadPage).
var dialect = sqlkit.Dialect{
	Param:   func(int) string { return "?" },
	Quote:   schema.Quote,
	Select:  func(c schema.Column) string { return schema.Quote(c.Name) },
	IDBound: `+"id"`,
	// SQLite has no identity per table; its schema version moves with
	// every table created or dropped in the file (by any process), which
	// is rare enough that all anchors may be read again then.
	TableID: `SELECT schema_version FROM pragma_schema_version() WHERE ? IS NOT NULL`,
}

// Rows reads one page of a model table; see engine.RowQuery for the
// selection, order and paging, and sqlkit.ReadPage for the queries. The
// count and the page come from the same snapshot, so Total always agrees
// with the rows returned. An unknown ident gives an error wrapping
// engine.ErrNotFound; an End or After that does not fit the table, an
// *engine.KeyError.
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
		page, err = sqlkit.ReadPage(dialect, &info.Spec.Table, q, sqlkit.Reader{
			Anchors: &db.anchors,
			Scalar: func(s sqlkit.Stmt) (int64, error) {
				var n sql.NullInt64
				err := tx.QueryRowContext(ctx, s.SQL, s.Args...).Scan(&n)
				return n.Int64, err
			},
			Key: func(s sqlkit.Stmt) ([]any, error) { return keyAt(ctx, tx, s.SQL, s.Args) },
			Rows: func(s sqlkit.Stmt, each func([]any)) error {
				rows, err := tx.QueryContext(ctx, s.SQL, s.Args...)
				if err != nil {
					return err
				}
				defer rows.Close()
				cols, err := rows.Columns()
				if err != nil {
					return err
				}
				vals := make([]any, len(cols))
				ptrs := make([]any, len(cols))
				for i := range vals {
					ptrs[i] = &vals[i]
				}
				for rows.Next() {
					if err := rows.Scan(ptrs...); err != nil {
						return err
					}
					each(vals)
				}
				return rows.Err()
			},
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

// keyAt reads the values of the one row a query selects, nil when it
// selects none.
func keyAt(ctx context.Context, tx *sql.Tx, query string, args []any) ([]any, error) {
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	if !rows.Next() {
		return nil, rows.Err()
	}
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		return nil, err
	}
	return vals, rows.Err()
}

// AnchorSpans returns how many time ranges were counted by page anchors,
// for the tests.
func (db *DB) AnchorSpans() int { return db.anchors.Spans() }

// AnchorBuilds returns how many times a table's page anchors were read in
// full (see sqlkit.Anchors), for the tests.
func (db *DB) AnchorBuilds() int { return db.anchors.Builds() }
