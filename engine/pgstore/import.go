package pgstore

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"statscache/engine/storemove"
)

// This file receives statscache migrate (storemove.Destination): a whole
// database copied in ONE PostgreSQL transaction. A crash, a kill or an
// error at any instant rolls all of it back, so the destination is either
// the complete copy or as it was, and running the command again is safe;
// PostgreSQL has no limit on a transaction's size that a statscache
// database could reach, and rows COPYed into tables of the same
// transaction are written once. The tables are locked (EXCLUSIVE: readers
// go on, writers wait) before they are checked for data, so no daemon
// writes between the check and the commit.

var _ storemove.Destination = (*DB)(nil)

// moveTables are the daemon's tables a move empties (with --replace) and
// locks; the model tables are those models names.
var moveTables = []string{"journal", "journal_dicts", "models", "model_state", "model_errors", "model_queue", "fill_spans",
	"rejects", "reject_seen", "reject_totals", "journal_stats", "table_rows", "settings"}

// describedColumns are the columns of text written for people (reasons,
// errors, reject sources), which the store makes storable (safeText) as
// it does when it writes them itself.
var describedColumns = map[string][]string{
	"models":        {"status_reason"},
	"model_errors":  {"msg_id", "error", "traceback"},
	"rejects":       {"source", "reason", "origin"},
	"reject_totals": {"origin"},
}

// BeginMove starts the move's transaction (storemove.Destination).
func (db *DB) BeginMove(ctx context.Context, replace bool) (storemove.Tx, error) {
	if db.readOnly {
		return nil, fmt.Errorf("%s is open read-only", db.name)
	}
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: begin: %w", db.name, err)
	}
	m := &moveTx{db: db, tx: tx, copied: map[string]int64{}}
	if err := m.begin(ctx, replace); err != nil {
		tx.Rollback(context.WithoutCancel(ctx))
		return nil, err
	}
	return m, nil
}

type moveTx struct {
	db     *DB
	tx     pgx.Tx
	copied map[string]int64 // rows copied into each model table
}

func (m *moveTx) begin(ctx context.Context, replace bool) error {
	if _, err := m.tx.Exec(ctx, `LOCK TABLE `+strings.Join(moveTables, ", ")+` IN EXCLUSIVE MODE`); err != nil {
		return fmt.Errorf("%s: lock: %w", m.db.name, err)
	}
	// The journal's kept size, and whether it has a row at all: either
	// is data.
	var messages, models, settings, rejects, spans int64
	var anyMessage bool
	if err := m.tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM journal), coalesce((SELECT messages FROM journal_stats WHERE id = 1), 0),
		(SELECT count(*) FROM models), (SELECT count(*) FROM settings), (SELECT count(*) FROM reject_totals), (SELECT count(*) FROM fill_spans)`).
		Scan(&anyMessage, &messages, &models, &settings, &rejects, &spans); err != nil {
		return fmt.Errorf("%s: %w", m.db.name, err)
	}
	if !anyMessage && messages+models+settings+rejects+spans == 0 {
		return nil
	}
	if !replace {
		return fmt.Errorf("%s already holds data (messages: %d, models: %d, settings: %d, reject sources: %d, complete spans: %d): "+
			"migrate writes only into an empty database; --replace removes all of it first, in the same transaction", m.db.name,
			messages, models, settings, rejects, spans)
	}
	rows, err := m.tx.Query(ctx, `SELECT table_name FROM models`)
	if err != nil {
		return fmt.Errorf("%s: %w", m.db.name, err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("%s: %w", m.db.name, err)
	}
	for _, t := range tables {
		if _, err := m.tx.Exec(ctx, `DROP TABLE IF EXISTS `+quote(t)); err != nil {
			return fmt.Errorf("%s: replace: drop %s: %w", m.db.name, t, err)
		}
	}
	if _, err := m.tx.Exec(ctx, `TRUNCATE `+strings.Join(moveTables, ", ")); err != nil {
		return fmt.Errorf("%s: replace: %w", m.db.name, err)
	}
	return nil
}

// Copy COPYs the rows of one table (storemove.Tx). A model's table is
// created first, as Register creates it; a daemon table is emptied first
// (the schema's row of journal_stats, the row counts the model tables'
// triggers just kept: the source's kept figures replace them and Commit
// checks them).
func (m *moveTx) Copy(ctx context.Context, t storemove.Table, rows storemove.Rows) (int64, error) {
	// A model's secondary indexes are built after its rows are in: one
	// sort instead of an insert into each index per row.
	var indexes []string
	if t.Model != nil {
		ddl, err := tableDDL(&t.Model.Table)
		if err != nil {
			return 0, err
		}
		indexes = declaredIndexDDL(&t.Model.Table)
		for _, stmt := range ddl {
			if strings.HasPrefix(stmt, "CREATE INDEX ") {
				indexes = append(indexes, stmt)
				continue
			}
			if _, err := m.tx.Exec(ctx, stmt); err != nil {
				return 0, fmt.Errorf("create table of model %s: %w", t.Model.Ident, err)
			}
		}
	} else if _, err := m.tx.Exec(ctx, `DELETE FROM `+quote(t.Name)); err != nil {
		return 0, err
	}
	var src pgx.CopyFromSource = rows
	if cols := describedColumns[t.Name]; len(cols) > 0 {
		src = describedRows{Rows: rows, at: columnIndexes(t.Columns, cols)}
	}
	n, err := m.tx.CopyFrom(ctx, pgx.Identifier{t.Name}, t.Columns, src)
	if err != nil {
		return n, diskFull(err)
	}
	for _, stmt := range indexes {
		if _, err := m.tx.Exec(ctx, stmt); err != nil {
			return n, diskFull(fmt.Errorf("index the table of model %s: %w", t.Model.Ident, err))
		}
	}
	if t.Model != nil {
		m.copied[t.Name] = n
	}
	switch t.Name {
	case "model_errors", "rejects":
		// The identity column goes on after the copied ids.
		if _, err := m.tx.Exec(ctx, `SELECT setval(pg_get_serial_sequence($1, 'id'), coalesce(max(id), 0) + 1, false) FROM `+quote(t.Name), t.Name); err != nil {
			return n, fmt.Errorf("identity of %s: %w", t.Name, err)
		}
	}
	return n, nil
}

func columnIndexes(cols, names []string) []int {
	var at []int
	for i, c := range cols {
		for _, n := range names {
			if c == n {
				at = append(at, i)
			}
		}
	}
	return at
}

// describedRows passes rows with their described columns made storable.
type describedRows struct {
	storemove.Rows
	at []int
}

func (r describedRows) Values() ([]any, error) {
	v, err := r.Rows.Values()
	if err != nil {
		return nil, err
	}
	for _, i := range r.at {
		if s, ok := v[i].(string); ok {
			v[i] = safeText(s)
		}
	}
	return v, nil
}

// Commit checks the copied kept figures against what was copied (the
// journal's size, every model table's row count) and commits.
func (m *moveTx) Commit(ctx context.Context) error {
	var kept, journal int64
	if err := m.tx.QueryRow(ctx, `SELECT (SELECT messages FROM journal_stats WHERE id = 1), (SELECT count(*) FROM journal)`).Scan(&kept, &journal); err != nil {
		return fmt.Errorf("check the copy: %w", err)
	}
	if kept != journal {
		return fmt.Errorf("check the copy: the source's kept figures say %d messages, its journal holds %d; nothing was committed", kept, journal)
	}
	for table, n := range m.copied {
		var k int64
		if err := m.tx.QueryRow(ctx, `SELECT n FROM table_rows WHERE name = $1`, table).Scan(&k); err != nil {
			return fmt.Errorf("check the copy: rows of %s: %w", table, err)
		}
		if k != n {
			return fmt.Errorf("check the copy: the source's kept figures say %d rows in %s, the table holds %d; nothing was committed", k, table, n)
		}
	}
	if err := m.tx.Commit(ctx); err != nil {
		return diskFull(fmt.Errorf("%s: commit: %w", m.db.name, err))
	}
	return nil
}

// Rollback ends the transaction without committing (after Commit, nothing).
func (m *moveTx) Rollback(ctx context.Context) error { return m.tx.Rollback(ctx) }
