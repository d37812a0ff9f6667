package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"

	"statscache/engine"
	"statscache/engine/storemove"
	"statscache/schema"
)

// exportedMigrations are the SQLite migrations whose tables Snapshot knows
// how to read (storemove.DaemonTables). A migration added to schema/ that
// is not listed here makes Snapshot refuse every database, so a change of
// the schema cannot be forgotten by the copy: TestExportKnowsEveryMigration
// fails until this list, and the copy, are brought up to date.
var exportedMigrations = []string{
	"0001_journal.sql", "0002_model_start.sql", "0003_work_queue.sql", "0004_fill_progress.sql",
	"0005_kept_figures.sql", "0007_settings.sql", "0010_journal_clustered.sql",
	"0011_journal_keys_recent.sql", // part of SQLite's dedupe, not copied (see storemove.DaemonTables)
}

// Snapshot is a consistent, read-only view of a statscache SQLite database,
// the source of statscache migrate (storemove.Source). The file is opened
// read-only and read in one read transaction: with the journal in WAL
// mode, the transaction sees the database as it was when it began however
// long the copy takes, and writers are not blocked. What they write after
// that instant is not in the snapshot, so Unchanged tells whether anyone
// wrote (PRAGMA data_version, on a connection of its own).
type Snapshot struct {
	path   string
	db     *sql.DB
	tx     *sql.Tx
	watch  *sql.Conn
	dataV  int64
	tables []storemove.Table
}

var _ storemove.Source = (*Snapshot)(nil)

// OpenSnapshot opens the statscache database at path for a copy. It
// refuses, with an error that says what is wrong, a file that does not
// exist, is not a SQLite database, is not a statscache database, or whose
// schema is not this version's (older: open it once with this version,
// which migrates it in place; newer: use the version that wrote it).
func OpenSnapshot(ctx context.Context, path string) (_ *Snapshot, err error) {
	fi, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%s: no such file", path)
		}
		return nil, err
	}
	if fi.IsDir() {
		return nil, fmt.Errorf("%s is a directory, not a statscache database", path)
	}
	db, err := sql.Open("sqlite3", "file:"+path+"?mode=ro&_busy_timeout=30000")
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	db.SetMaxOpenConns(2)
	s := &Snapshot{path: path, db: db}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	// The write counter is read before the snapshot begins: a write
	// between the two makes Unchanged fail, never pass wrongly.
	if s.watch, err = db.Conn(ctx); err != nil {
		return nil, notSQLite(path, err)
	}
	if err := s.watch.QueryRowContext(ctx, `PRAGMA data_version`).Scan(&s.dataV); err != nil {
		return nil, notSQLite(path, err)
	}
	if s.tx, err = db.BeginTx(ctx, nil); err != nil {
		return nil, notSQLite(path, err)
	}
	if err := s.checkSchema(ctx); err != nil {
		return nil, err
	}
	if err := s.readTables(ctx); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// notSQLite words the driver's error for a file that is not a database.
func notSQLite(path string, err error) error {
	if strings.Contains(err.Error(), "not a database") {
		return fmt.Errorf("%s is not a SQLite database (%v), so not a statscache database", path, err)
	}
	return fmt.Errorf("read %s: %w", path, err)
}

// checkSchema makes sure the file is a statscache database at exactly this
// version's schema, which is what the copy reads.
func (s *Snapshot) checkSchema(ctx context.Context) error {
	var names []string
	rows, err := s.tx.QueryContext(ctx, `SELECT name FROM sqlite_schema WHERE type = 'table'`)
	if err != nil {
		return notSQLite(s.path, err)
	}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return notSQLite(s.path, err)
		}
		names = append(names, n)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return notSQLite(s.path, err)
	}
	for _, want := range []string{"migrations", "journal", "models"} {
		if !slices.Contains(names, want) {
			return fmt.Errorf("%s is not a statscache database: it has no %q table", s.path, want)
		}
	}
	applied := map[string]bool{}
	rows, err = s.tx.QueryContext(ctx, `SELECT name FROM migrations`)
	if err != nil {
		return fmt.Errorf("%s is not a statscache database: %w", s.path, err)
	}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return fmt.Errorf("read migrations of %s: %w", s.path, err)
		}
		applied[n] = true
	}
	rows.Close()
	var missing, unknown []string
	for _, m := range schema.Migrations() {
		if !slices.Contains(exportedMigrations, m.Name) {
			return fmt.Errorf("this statscache cannot copy its own SQLite schema: migration %s is not known to engine/sqlstore/export.go (a bug)", m.Name)
		}
		if !applied[m.Name] {
			missing = append(missing, m.Name)
		}
		delete(applied, m.Name)
	}
	for n := range applied {
		unknown = append(unknown, n)
	}
	slices.Sort(unknown)
	switch {
	case len(unknown) > 0:
		return fmt.Errorf("%s was written by a newer statscache (migrations %s are unknown to this one): migrate it with that version",
			s.path, strings.Join(unknown, ", "))
	case len(missing) > 0:
		return fmt.Errorf("%s has an older schema (migrations %s not applied): open it once with this version to bring it up to date "+
			"(e.g. statscache serve --db %s, then stop it), then migrate again", s.path, strings.Join(missing, ", "), s.path)
	}
	return nil
}

// readTables lists the model tables (each registered model's, shadows being
// rebuilt included) and the daemon's tables, with their sizes.
func (s *Snapshot) readTables(ctx context.Context) error {
	type model struct{ ident, spec, table string }
	var models []model
	rows, err := s.tx.QueryContext(ctx, `SELECT ident, spec, table_name FROM models ORDER BY ident`)
	if err != nil {
		return fmt.Errorf("read models: %w", err)
	}
	for rows.Next() {
		var m model
		if err := rows.Scan(&m.ident, &m.spec, &m.table); err != nil {
			rows.Close()
			return fmt.Errorf("read models: %w", err)
		}
		models = append(models, m)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read models: %w", err)
	}
	for _, m := range models {
		spec := &engine.ModelSpec{}
		if err := json.Unmarshal([]byte(m.spec), spec); err != nil {
			return fmt.Errorf("model %s: decode its declaration: %w", m.ident, err)
		}
		spec.Ident = m.ident
		if spec.Table.Name != m.table {
			return fmt.Errorf("model %s: its declaration names table %s, the models table %s", m.ident, spec.Table.Name, m.table)
		}
		if err := spec.Table.Validate(); err != nil {
			return fmt.Errorf("model %s: %w", m.ident, err)
		}
		var n int64
		if err := s.tx.QueryRowContext(ctx, qTableRows, m.table).Scan(&n); err != nil {
			return fmt.Errorf("model %s: table %s: %w", m.ident, m.table, err)
		}
		cols := []string{"id"}
		for _, c := range spec.Table.Columns {
			cols = append(cols, c.Name)
		}
		s.tables = append(s.tables, storemove.Table{Name: m.table, Columns: cols, Model: spec, Rows: n})
	}
	st, err := readJournalStats(ctx, s.tx)
	if err != nil {
		return err
	}
	for _, t := range storemove.DaemonTables {
		if t.Name == storemove.Journal {
			t.Rows = st.Messages
		} else if err := s.tx.QueryRowContext(ctx, `SELECT count(*) FROM `+schema.Quote(t.Name)).Scan(&t.Rows); err != nil {
			return fmt.Errorf("count %s: %w", t.Name, err)
		}
		s.tables = append(s.tables, t)
	}
	return nil
}

// Tables lists the model tables, then the daemon's (storemove.Source).
func (s *Snapshot) Tables(ctx context.Context) ([]storemove.Table, error) { return s.tables, nil }

// Rows reads one table of the snapshot: a model table's rows in the
// order they were first inserted, with their values in the declared types;
// the journal in its order.
func (s *Snapshot) Rows(ctx context.Context, t storemove.Table) (storemove.Rows, error) {
	cols := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		cols[i] = schema.Quote(c)
	}
	var conv func([]any) error
	order := ""
	switch {
	case t.Model != nil:
		// A table created before tables were stored in key order has no
		// "id": its rowid numbers its rows.
		var ddl string
		if err := s.tx.QueryRowContext(ctx, `SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = ?`, t.Name).Scan(&ddl); err != nil {
			return nil, fmt.Errorf("table %s of model %s: %w", t.Name, t.Model.Ident, err)
		}
		if !strings.Contains(strings.ToUpper(ddl), "WITHOUT ROWID") {
			cols[0] = "rowid"
		}
		order = " ORDER BY " + cols[0]
		conv = func(v []any) error { return modelValues(t, v) }
	case t.Name == storemove.Journal:
		// The records go as stored: compressed in the format and with
		// the dictionaries (journal_dicts, copied before) both stores
		// share (sqlkit's codec).
		order = " ORDER BY time_us, key"
	}
	rows, err := s.tx.QueryContext(ctx, `SELECT `+strings.Join(cols, ", ")+` FROM `+schema.Quote(t.Name)+order)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", t.Name, err)
	}
	return &exportRows{rows: rows, vals: make([]any, len(cols)), conv: conv}, nil
}

// modelValues converts a model row as SQLite returns it to the declared
// column types (SQLite keeps whatever type a value came with; the other
// store does not).
func modelValues(t storemove.Table, v []any) error {
	for i, c := range t.Model.Table.Columns {
		x := v[i+1]
		if x == nil {
			continue
		}
		switch c.Type {
		case schema.Integer:
			if f, ok := x.(float64); ok && f == math.Trunc(f) && math.Abs(f) <= 1<<53 {
				x = int64(f)
			}
		case schema.Real:
			if n, ok := x.(int64); ok {
				x = float64(n)
			}
		default:
			if b, ok := x.([]byte); ok {
				x = string(b)
			}
		}
		switch x.(type) {
		case int64, float64, string:
		default:
			return fmt.Errorf("row %v, column %s (%s): a %T the column cannot hold", v[0], c.Name, c.Type, x)
		}
		v[i+1] = x
	}
	return nil
}

// exportRows is storemove.Rows over a query of the snapshot.
type exportRows struct {
	rows *sql.Rows
	vals []any
	ptrs []any // to vals, for Scan
	conv func([]any) error
	err  error
}

func (r *exportRows) Next() bool {
	if r.err != nil || !r.rows.Next() {
		return false
	}
	if r.ptrs == nil {
		r.ptrs = make([]any, len(r.vals))
		for i := range r.vals {
			r.ptrs[i] = &r.vals[i]
		}
	}
	clear(r.vals)
	if err := r.rows.Scan(r.ptrs...); err != nil {
		r.err = err
		return false
	}
	if r.conv != nil {
		if err := r.conv(r.vals); err != nil {
			r.err = err
			return false
		}
	}
	return true
}

func (r *exportRows) Values() ([]any, error) { return r.vals, nil }

func (r *exportRows) Err() error {
	if r.err != nil {
		return r.err
	}
	return r.rows.Err()
}

func (r *exportRows) Close() error { return r.rows.Close() }

// Unchanged fails when anyone wrote to the database since the snapshot
// began (storemove.Source).
func (s *Snapshot) Unchanged(ctx context.Context) error {
	var v int64
	if err := s.watch.QueryRowContext(ctx, `PRAGMA data_version`).Scan(&v); err != nil {
		return fmt.Errorf("%s: %w", s.path, err)
	}
	if v != s.dataV {
		return fmt.Errorf("%s was written during the copy (a daemon or a replay is using it): stop it and migrate again; nothing was committed", s.path)
	}
	return nil
}

// String names the source.
func (s *Snapshot) String() string { return s.path }

// Close ends the snapshot.
func (s *Snapshot) Close() error {
	if s.tx != nil {
		s.tx.Rollback()
	}
	if s.watch != nil {
		s.watch.Close()
	}
	return s.db.Close()
}
