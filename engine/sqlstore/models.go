package sqlstore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"statscache/engine"
	"statscache/schema"
)

// modelTable caches what the store knows about one model's table.
type modelTable struct {
	ident string
	t     schema.Table
	cols  map[string]schema.Column
	// clustered: the table is stored in key order (schema.DDL), and the
	// store numbers new rows in "id". Tables created before keep their
	// rowid, which numbers them.
	clustered bool
	// indexed: the declared indexes exist (BuildIndexes); db.mu guards it.
	indexed bool
}

var _ engine.IndexBuilder = (*DB)(nil)

// BuildIndexes creates the indexes of the columns a model's script declares
// with index = true (schema.DeclaredIndexDDL), which Register leaves out so
// that a model computing its history does not update them row by row. The
// engine calls it once the model has caught up; a table that has them
// already (made by an earlier version, or an earlier call) is left as it
// is.
func (db *DB) BuildIndexes(ctx context.Context, ident string) error {
	db.mu.Lock()
	mt := db.tables[ident]
	db.mu.Unlock()
	if mt == nil {
		return fmt.Errorf("model %s: not registered", ident)
	}
	db.mu.Lock()
	done := mt.indexed
	db.mu.Unlock()
	stmts := mt.t.DeclaredIndexDDL()
	if done || len(stmts) == 0 {
		return nil
	}
	// CREATE INDEX sorts the table's keys in memory up to the
	// connection's cache_size, then in temporary files, which the
	// connections keep in memory too (temp_store, see driverName): each
	// build held its whole sort on top of the writer's 64 MiB cache. Over
	// 1,000,000 messages, when the models caught up, SQLite's memory rose
	// from 67 to 139 MB for a second for each large table. While it
	// builds, the writer has a small cache and its temporary files on
	// disk; the build holds the writer connection throughout, so no other
	// build can set or reset these meanwhile.
	conn, err := db.w.Conn(ctx)
	if err != nil {
		return diskFull(fmt.Errorf("indexes of %s: %w", ident, err))
	}
	defer conn.Close()
	if err := buildSettings(ctx, conn, true); err != nil {
		return fmt.Errorf("indexes of %s: %w", ident, err)
	}
	defer buildSettings(context.WithoutCancel(ctx), conn, false)
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return diskFull(fmt.Errorf("indexes of %s: %w", ident, err))
	}
	defer tx.Rollback()
	for _, q := range stmts {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return diskFull(fmt.Errorf("indexes of %s: %w", ident, err))
		}
	}
	if err := tx.Commit(); err != nil {
		return diskFull(fmt.Errorf("indexes of %s: %w", ident, err))
	}
	db.mu.Lock()
	mt.indexed = true
	db.mu.Unlock()
	return nil
}

// buildSettings gives the writer connection the page cache and temporary
// storage of an index build (on) or its own (off). If it cannot have its
// own back, the connection is dropped: the next one opens with them.
func buildSettings(ctx context.Context, conn *sql.Conn, on bool) error {
	cache, temp := writerCache, "MEMORY"
	if on {
		cache, temp = indexBuildCache, "FILE"
	}
	_, err := conn.ExecContext(ctx, `PRAGMA cache_size = `+cache)
	if err == nil {
		_, err = conn.ExecContext(ctx, `PRAGMA temp_store = `+temp)
	}
	if err != nil && !on {
		conn.Raw(func(any) error { return driver.ErrBadConn })
	}
	return err
}

// Register creates the model's table if needed and records its spec. A
// model whose table exists with a different shape is refused: its rows were
// computed by other code and mixing the two would corrupt them.
func (db *DB) Register(ctx context.Context, spec *engine.ModelSpec) (engine.ModelStatus, error) {
	var st engine.ModelStatus
	t := spec.Table
	if err := t.Validate(); err != nil {
		return st, err
	}
	specJSON, err := json.Marshal(spec)
	if err != nil {
		return st, fmt.Errorf("encode spec: %w", err)
	}
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return st, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback()
	var oldFP, oldTable string
	err = tx.QueryRowContext(ctx, `SELECT fingerprint, table_name FROM models WHERE ident = ?`, spec.Ident).Scan(&oldFP, &oldTable)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		var other string
		err := tx.QueryRowContext(ctx, `SELECT ident FROM models WHERE table_name = ?`, t.Name).Scan(&other)
		if err == nil {
			return st, fmt.Errorf("table %s is already used by model %s", t.Name, other)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO models (ident, spec, table_name, fingerprint, updated_at) VALUES (?, ?, ?, ?, ?)`,
			spec.Ident, specJSON, t.Name, t.Fingerprint(), time.Now().Unix()); err != nil {
			return st, fmt.Errorf("record model: %w", err)
		}
	case err != nil:
		return st, fmt.Errorf("read model: %w", err)
	case oldFP != t.Fingerprint():
		return st, fmt.Errorf("%w %s (columns, types or key changed)", engine.ErrTableChanged, oldTable)
	default:
		// Registering a model again (a restart, a reload with a fixed
		// script) gives a failed model another chance from its cursor.
		if _, err := tx.ExecContext(ctx, `UPDATE models SET spec = ?, status = 'ok', status_reason = '' WHERE ident = ?`, specJSON, spec.Ident); err != nil {
			return st, fmt.Errorf("update model: %w", err)
		}
	}
	// An existing table keeps its form: one created before tables were
	// stored in key order keeps its rowid and unique key index.
	var ddl string
	err = tx.QueryRowContext(ctx, `SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = ?`, t.Name).Scan(&ddl)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		for _, stmt := range t.DDL() {
			if _, err := tx.ExecContext(ctx, stmt); err != nil {
				return st, fmt.Errorf("create table %s: %w", t.Name, err)
			}
		}
		ddl = t.DDL()[0]
	case err != nil:
		return st, fmt.Errorf("read table %s: %w", t.Name, err)
	}
	clustered := strings.Contains(strings.ToUpper(ddl), "WITHOUT ROWID")
	if err := keepRowCount(ctx, tx, t.Name); err != nil {
		return st, err
	}
	if err := tx.Commit(); err != nil {
		return st, fmt.Errorf("commit: %w", err)
	}
	mt := &modelTable{ident: spec.Ident, t: t, cols: map[string]schema.Column{}, clustered: clustered}
	for _, c := range t.Columns {
		mt.cols[c.Name] = c
	}
	db.mu.Lock()
	db.tables[spec.Ident] = mt
	db.mu.Unlock()
	return db.status(ctx, db.w, spec.Ident)
}

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func (db *DB) status(ctx context.Context, q querier, ident string) (engine.ModelStatus, error) {
	var st engine.ModelStatus
	var at int64
	err := q.QueryRowContext(ctx, `SELECT cursor_time_us, cursor_key, cursor_id, processed, errors, status, status_reason, updated_at
		FROM models WHERE ident = ?`, ident).Scan(&st.Cursor.TimeUS, &st.Cursor.Key, &st.CursorID, &st.Processed, &st.Errors, &st.Status, &st.Reason, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return st, fmt.Errorf("model %s: %w", ident, engine.ErrNotFound)
	}
	if err != nil {
		return st, fmt.Errorf("model %s status: %w", ident, err)
	}
	st.UpdatedAt = time.Unix(at, 0).UTC()
	return st, nil
}

// SetStatus marks a model ok or failed. The fence is not checked (see
// Promote).
func (db *DB) SetStatus(ctx context.Context, ident, status, reason string, _ *engine.Fence) error {
	_, err := db.w.ExecContext(ctx, `UPDATE models SET status = ?, status_reason = ?, updated_at = ? WHERE ident = ?`,
		status, reason, time.Now().Unix(), ident)
	if err != nil {
		return fmt.Errorf("set status of %s: %w", ident, err)
	}
	return nil
}

// LoadState reads one committed state value.
func (db *DB) LoadState(ctx context.Context, ident, key string) (string, bool, error) {
	var v string
	err := db.r.QueryRowContext(ctx, `SELECT value FROM model_state WHERE ident = ? AND key = ?`, ident, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("load state %s/%s: %w", ident, key, err)
	}
	return v, true, nil
}

// ListState reads every committed state value of a model, or reports
// false when it has more than limit keys (engine.StateLister).
func (db *DB) ListState(ctx context.Context, ident string, limit int) (map[string]string, bool, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT key, value FROM model_state WHERE ident = ? LIMIT ?`, ident, limit+1)
	if err != nil {
		return nil, false, fmt.Errorf("list state %s: %w", ident, err)
	}
	defer rows.Close()
	vals := map[string]string{}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			return nil, false, fmt.Errorf("list state %s: %w", ident, err)
		}
		if len(vals) == limit {
			return nil, false, nil
		}
		vals[k] = v
	}
	if err := rows.Err(); err != nil {
		return nil, false, fmt.Errorf("list state %s: %w", ident, err)
	}
	return vals, true, nil
}

// Begin starts a model's batch transaction.
func (db *DB) Begin(ctx context.Context, ident string) (engine.ModelTx, error) {
	db.mu.Lock()
	mt := db.tables[ident]
	db.mu.Unlock()
	if mt == nil {
		return nil, fmt.Errorf("model %s: not registered", ident)
	}
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, diskFull(fmt.Errorf("model %s: begin: %w", ident, err))
	}
	return fullTx{&modelTx{ctx: ctx, tx: tx, mt: mt, keep: db.keep, stmts: map[string]*sql.Stmt{}, rowWriter: rowWriter{rowStmts: map[rowStmtKey]*sql.Stmt{}}}}, nil
}

// modelTx is one model's batch transaction. Statements are prepared once per
// transaction and reused for every row of the batch.
type modelTx struct {
	ctx   context.Context
	tx    *sql.Tx
	mt    *modelTable
	keep  int // Options.KeepErrors
	stmts map[string]*sql.Stmt
	done  bool
	// nextID is the "id" the next new row of a clustered table gets; 0
	// until read.
	nextID int64
	rowWriter
}

func (m *modelTx) stmt(query string) (*sql.Stmt, error) {
	if s, ok := m.stmts[query]; ok {
		return s, nil
	}
	s, err := m.tx.PrepareContext(m.ctx, query)
	if err != nil {
		return nil, err
	}
	m.stmts[query] = s
	return s, nil
}

// GetRow reads back one committed row by its key.
func (db *DB) GetRow(ctx context.Context, ident string, key engine.Row) (engine.Row, error) {
	db.mu.Lock()
	mt := db.tables[ident]
	db.mu.Unlock()
	if mt == nil {
		return nil, fmt.Errorf("model %s: not registered", ident)
	}
	t := &mt.t
	var where []string
	var args []any
	for _, k := range t.Key {
		v, ok := key[k]
		if !ok || v == nil {
			return nil, fmt.Errorf("row key column %q is missing", k)
		}
		sv, err := schema.StoreValue(mt.cols[k], v)
		if err != nil {
			return nil, err
		}
		where = append(where, schema.Quote(k)+" = ?")
		args = append(args, sv)
	}
	cols := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		cols[i] = schema.Quote(c.Name)
	}
	q := fmt.Sprintf("SELECT %s FROM %s WHERE %s", strings.Join(cols, ", "), schema.Quote(t.Name), strings.Join(where, " AND "))
	vals := make([]any, len(t.Columns))
	ptrs := make([]any, len(t.Columns))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	err := db.r.QueryRowContext(ctx, q, args...).Scan(ptrs...)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get from %s: %w", mt.ident, err)
	}
	row := engine.Row{}
	for i, c := range t.Columns {
		row[c.Name] = fromSQL(c, vals[i])
	}
	return row, nil
}

func (m *modelTx) PutState(key string, value *string) error {
	var err error
	if value == nil {
		_, err = m.tx.ExecContext(m.ctx, `DELETE FROM model_state WHERE ident = ? AND key = ?`, m.mt.ident, key)
	} else {
		_, err = m.tx.ExecContext(m.ctx, `INSERT INTO model_state (ident, key, value) VALUES (?, ?, ?)
			ON CONFLICT (ident, key) DO UPDATE SET value = excluded.value`, m.mt.ident, key, *value)
	}
	if err != nil {
		return fmt.Errorf("state %s/%s: %w", m.mt.ident, key, err)
	}
	return nil
}

func (m *modelTx) Commit(cp engine.Checkpoint) error {
	now := time.Now().Unix()
	for _, e := range cp.Errors {
		if _, err := m.tx.ExecContext(m.ctx, `INSERT INTO model_errors (ident, msg_id, time_us, error, traceback, at) VALUES (?, ?, ?, ?, ?, ?)`,
			m.mt.ident, e.MsgID, e.TimeUS, e.Err, e.Traceback, now); err != nil {
			return fmt.Errorf("record error of %s: %w", m.mt.ident, err)
		}
	}
	if len(cp.Errors) > 0 {
		// models.errors below is the exact total; the table keeps the newest.
		if err := pruneErrors(m.ctx, m.tx, m.mt.ident, m.keep); err != nil {
			return err
		}
	}
	queued, err := m.commitWork(cp)
	if err != nil {
		return err
	}
	if _, err := m.tx.ExecContext(m.ctx, `UPDATE models SET cursor_time_us = ?, cursor_key = ?, cursor_id = ?,
		processed = processed + ?, errors = errors + ?, updated_at = ?, queue_seq = max(queue_seq, ?), queued = queued + ? WHERE ident = ?`,
		cp.Cursor.TimeUS, cp.Cursor.Key, cp.CursorID, cp.Processed, len(cp.Errors), now, cp.WorkSeq, queued, m.mt.ident); err != nil {
		return fmt.Errorf("cursor of %s: %w", m.mt.ident, err)
	}
	m.closeStmts()
	m.done = true
	if err := m.tx.Commit(); err != nil {
		return fmt.Errorf("commit %s: %w", m.mt.ident, err)
	}
	return nil
}

func (m *modelTx) Rollback() error {
	if m.done {
		return nil
	}
	m.closeStmts()
	m.done = true
	return m.tx.Rollback()
}

func (m *modelTx) closeStmts() {
	for _, s := range m.stmts {
		s.Close()
	}
	for _, s := range m.rowStmts {
		s.Close()
	}
	m.release()
}

// CountRows returns how many rows a model's table holds (kept current by
// triggers, so it costs one lookup).
func (db *DB) CountRows(ctx context.Context, ident string) (int64, error) {
	db.mu.Lock()
	mt := db.tables[ident]
	db.mu.Unlock()
	if mt == nil {
		return 0, fmt.Errorf("count rows of %s: %w", ident, engine.ErrNotFound)
	}
	var n int64
	if err := db.r.QueryRowContext(ctx, qTableRows, mt.t.Name).Scan(&n); err != nil {
		return 0, fmt.Errorf("count rows of %s: %w", ident, err)
	}
	return n, nil
}

// qTableRows reads a model table's kept row count.
const qTableRows = `SELECT n FROM table_rows WHERE name = ?`

// Promote swaps a rebuilt table in for a model's old one, in one
// transaction; readers see either the old table or the complete new one.
// The fence is not checked: SQLite serves one instance, which runs every
// model without leases.
func (db *DB) Promote(ctx context.Context, shadow, target string, _ *engine.Fence) error {
	db.mu.Lock()
	mt := db.tables[shadow]
	old := db.tables[target]
	db.mu.Unlock()
	if mt == nil {
		return fmt.Errorf("promote %s: %w", shadow, engine.ErrNotFound)
	}
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("promote %s: %w", shadow, err)
	}
	defer tx.Rollback()
	var oldTable string
	err = tx.QueryRowContext(ctx, `SELECT table_name FROM models WHERE ident = ?`, target).Scan(&oldTable)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("promote %s: %w", shadow, err)
	}
	var spec engine.ModelSpec
	var specJSON string
	if err := tx.QueryRowContext(ctx, `SELECT spec FROM models WHERE ident = ?`, shadow).Scan(&specJSON); err != nil {
		return fmt.Errorf("promote %s: %w", shadow, err)
	}
	if err := json.Unmarshal([]byte(specJSON), &spec); err != nil {
		return fmt.Errorf("promote %s: %w", shadow, err)
	}
	spec.Ident = target
	newSpec, _ := json.Marshal(spec)
	stmts := []struct {
		q    string
		args []any
	}{
		{`DELETE FROM models WHERE ident = ?`, []any{target}},
		{`DELETE FROM model_state WHERE ident = ?`, []any{target}},
		{`DELETE FROM model_errors WHERE ident = ?`, []any{target}},
		{`DELETE FROM model_queue WHERE ident = ?`, []any{target}},
		{`UPDATE models SET ident = ?, spec = ? WHERE ident = ?`, []any{target, string(newSpec), shadow}},
		{`UPDATE model_state SET ident = ? WHERE ident = ?`, []any{target, shadow}},
		{`UPDATE model_errors SET ident = ? WHERE ident = ?`, []any{target, shadow}},
		{`UPDATE model_queue SET ident = ? WHERE ident = ?`, []any{target, shadow}},
	}
	if oldTable != "" && oldTable != mt.t.Name {
		stmts = append(stmts, struct {
			q    string
			args []any
		}{`DROP TABLE IF EXISTS ` + schema.Quote(oldTable), nil}, struct {
			q    string
			args []any
		}{`DELETE FROM table_rows WHERE name = ?`, []any{oldTable}})
	}
	for _, s := range stmts {
		if _, err := tx.ExecContext(ctx, s.q, s.args...); err != nil {
			return fmt.Errorf("promote %s: %w", shadow, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("promote %s: %w", shadow, err)
	}
	db.mu.Lock()
	mt.ident = target
	db.tables[target] = mt
	delete(db.tables, shadow)
	db.mu.Unlock()
	// The dropped table's anchors are of no more use (were its name to
	// come back, their table identity check would refuse them).
	if oldTable != mt.t.Name {
		db.anchors.Forget(oldTable)
	}
	_ = old
	return nil
}

// SetStart records where a model's history starts (see Append).
func (db *DB) SetStart(ctx context.Context, ident string, startUS int64) error {
	if _, err := db.w.ExecContext(ctx, `UPDATE models SET start_us = ? WHERE ident = ?`, startUS, ident); err != nil {
		return fmt.Errorf("set start of %s: %w", ident, err)
	}
	return nil
}

// commitWork stores the items a batch pushed and deletes the ones whose
// outcome the batch delivered. It returns how the number of queued items
// changed, for models.queued.
func (m *modelTx) commitWork(cp engine.Checkpoint) (int64, error) {
	var delta int64
	if cp.WorkDone > 0 {
		res, err := m.tx.ExecContext(m.ctx, `DELETE FROM model_queue WHERE ident = ? AND seq <= ?`, m.mt.ident, cp.WorkDone)
		if err != nil {
			return 0, fmt.Errorf("work queue of %s: %w", m.mt.ident, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return 0, fmt.Errorf("work queue of %s: %w", m.mt.ident, err)
		}
		delta -= n
	}
	if len(cp.Work) == 0 {
		return delta, nil
	}
	s, err := m.stmt(`INSERT INTO model_queue (ident, seq, item) VALUES (?, ?, ?)`)
	if err != nil {
		return 0, fmt.Errorf("work queue of %s: %w", m.mt.ident, err)
	}
	for _, it := range cp.Work {
		if _, err := s.Exec(m.mt.ident, it.Seq, it.Item); err != nil {
			return 0, fmt.Errorf("work queue of %s: item %d: %w", m.mt.ident, it.Seq, err)
		}
	}
	return delta + int64(len(cp.Work)), nil
}

// PendingWork reads a model's committed, undelivered work items in order.
func (db *DB) PendingWork(ctx context.Context, ident string) ([]engine.WorkItem, int64, error) {
	var last int64
	err := db.r.QueryRowContext(ctx, `SELECT queue_seq FROM models WHERE ident = ?`, ident).Scan(&last)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, 0, fmt.Errorf("work queue of %s: %w", ident, engine.ErrNotFound)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("work queue of %s: %w", ident, err)
	}
	rows, err := db.r.QueryContext(ctx, `SELECT seq, item FROM model_queue WHERE ident = ? ORDER BY seq`, ident)
	if err != nil {
		return nil, 0, fmt.Errorf("work queue of %s: %w", ident, err)
	}
	defer rows.Close()
	var items []engine.WorkItem
	for rows.Next() {
		var it engine.WorkItem
		var item string
		if err := rows.Scan(&it.Seq, &item); err != nil {
			return nil, 0, fmt.Errorf("work queue of %s: %w", ident, err)
		}
		it.Item = []byte(item)
		items = append(items, it)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("work queue of %s: %w", ident, err)
	}
	return items, last, nil
}
