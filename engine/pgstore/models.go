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

// modelTable caches what the store knows about one model's table.
type modelTable struct {
	ident string
	t     schema.Table
	cols  map[string]schema.Column
	// indexed: the declared indexes exist (BuildIndexes); db.mu guards it.
	indexed bool
	rows    rowTexts // see Apply
}

func newModelTable(ident string, t schema.Table) *modelTable {
	mt := &modelTable{ident: ident, t: t, cols: map[string]schema.Column{}}
	for _, c := range t.Columns {
		mt.cols[c.Name] = c
	}
	return mt
}

var _ engine.IndexBuilder = (*DB)(nil)

// BuildIndexes creates the indexes of the columns a model's script
// declares with index = true, which Register leaves out so that a model
// computing its history does not update them row by row (see
// engine.IndexBuilder). An index another instance made already is left as
// it is.
func (db *DB) BuildIndexes(ctx context.Context, ident string) error {
	mt := db.table(ident)
	if mt == nil {
		return fmt.Errorf("model %s: not registered", ident)
	}
	db.mu.Lock()
	done := mt.indexed
	db.mu.Unlock()
	stmts := declaredIndexDDL(&mt.t)
	if done || len(stmts) == 0 {
		return nil
	}
	err := again0(ctx, func() error {
		return pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
			// Two instances building the same index at once would fail
			// one of them on the catalog's unique name.
			if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, lockRegister); err != nil {
				return fmt.Errorf("lock: %w", err)
			}
			for _, q := range stmts {
				if _, err := tx.Exec(ctx, q); err != nil {
					return err
				}
			}
			return nil
		})
	})
	if err != nil {
		return diskFull(fmt.Errorf("indexes of %s: %w", ident, err))
	}
	db.mu.Lock()
	mt.indexed = true
	db.mu.Unlock()
	return nil
}

func (db *DB) table(ident string) *modelTable {
	db.mu.Lock()
	defer db.mu.Unlock()
	return db.tables[ident]
}

// Register creates the model's table if needed and records its spec. A
// model whose table exists with a different shape is refused: its rows were
// computed by other code and mixing the two would corrupt them. Several
// processes may register the same models at once: the work runs under an
// advisory lock.
func (db *DB) Register(ctx context.Context, spec *engine.ModelSpec) (engine.ModelStatus, error) {
	var st engine.ModelStatus
	t := spec.Table
	if err := t.Validate(); err != nil {
		return st, err
	}
	ddl, err := tableDDL(&t)
	if err != nil {
		return st, err
	}
	specJSON, err := json.Marshal(spec)
	if err != nil {
		return st, fmt.Errorf("encode spec: %w", err)
	}
	err = again0(ctx, func() error { return db.register(ctx, spec, &t, ddl, specJSON) })
	if err != nil {
		return st, diskFull(fmt.Errorf("register %s: %w", spec.Ident, err))
	}
	db.mu.Lock()
	db.tables[spec.Ident] = newModelTable(spec.Ident, t)
	db.mu.Unlock()
	return db.status(ctx, spec.Ident)
}

// register is Register's transaction; it may run again after a lost
// connection (a second run finds the model and its table there).
func (db *DB) register(ctx context.Context, spec *engine.ModelSpec, t *schema.Table, ddl []string, specJSON []byte) error {
	return pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, lockRegister); err != nil {
			return fmt.Errorf("lock: %w", err)
		}
		var oldFP, oldTable string
		err := tx.QueryRow(ctx, `SELECT fingerprint, table_name FROM models WHERE ident = $1`, spec.Ident).Scan(&oldFP, &oldTable)
		switch {
		case errNoRows(err):
			var other string
			err := tx.QueryRow(ctx, `SELECT ident FROM models WHERE table_name = $1`, t.Name).Scan(&other)
			if err == nil {
				return fmt.Errorf("table %s is already used by model %s", t.Name, other)
			}
			if !errNoRows(err) {
				return fmt.Errorf("read models: %w", err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO models (ident, spec, table_name, fingerprint, updated_at) VALUES ($1, $2, $3, $4, $5)`,
				spec.Ident, string(specJSON), t.Name, t.Fingerprint(), time.Now().Unix()); err != nil {
				return fmt.Errorf("record model: %w", err)
			}
		case err != nil:
			return fmt.Errorf("read model: %w", err)
		case oldFP != t.Fingerprint():
			return fmt.Errorf("%w %s (columns, types or key changed)", engine.ErrTableChanged, oldTable)
		default:
			// Registering a model again (a restart, a reload with a fixed
			// script) gives a failed model another chance from its cursor.
			if _, err := tx.Exec(ctx, `UPDATE models SET spec = $1, status = 'ok', status_reason = '' WHERE ident = $2`, string(specJSON), spec.Ident); err != nil {
				return fmt.Errorf("update model: %w", err)
			}
		}
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, quote(t.Name)).Scan(&exists); err != nil {
			return fmt.Errorf("read table %s: %w", t.Name, err)
		}
		if exists {
			return nil
		}
		for _, stmt := range ddl {
			if _, err := tx.Exec(ctx, stmt); err != nil {
				return fmt.Errorf("create table %s: %w", t.Name, err)
			}
		}
		return nil
	})
}

func (db *DB) status(ctx context.Context, ident string) (engine.ModelStatus, error) {
	var st engine.ModelStatus
	var at int64
	err := again0(ctx, func() error {
		return db.pool.QueryRow(ctx, `SELECT cursor_time_us, cursor_key, cursor_id, processed, errors, status, status_reason, updated_at
		FROM models WHERE ident = $1`, ident).Scan(&st.Cursor.TimeUS, &st.Cursor.Key, &st.CursorID, &st.Processed, &st.Errors, &st.Status, &st.Reason, &at)
	})
	if errNoRows(err) {
		return st, fmt.Errorf("model %s: %w", ident, engine.ErrNotFound)
	}
	if err != nil {
		return st, fmt.Errorf("model %s status: %w", ident, err)
	}
	st.UpdatedAt = time.Unix(at, 0).UTC()
	return st, nil
}

// SetStatus marks a model ok or failed. With a fence, the model's lease
// must still be held with it (see holdsLease), or nothing is written.
func (db *DB) SetStatus(ctx context.Context, ident, status, reason string, f *engine.Fence) error {
	const q = `UPDATE models SET status = $1, status_reason = $2, updated_at = $3 WHERE ident = $4`
	args := []any{status, safeText(reason), time.Now().Unix(), ident}
	var err error
	if f == nil {
		err = db.exec(ctx, q, args...)
	} else {
		err = again0(ctx, func() error {
			return pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
				if err := holdsLease(ctx, tx, ident, *f, "mark "+ident+" "+status); err != nil {
					return err
				}
				_, err := tx.Exec(ctx, q, args...)
				return err
			})
		})
	}
	if err != nil {
		return diskFull(fmt.Errorf("set status of %s: %w", ident, err))
	}
	return nil
}

// SetStart records where a model's history starts (see Append).
func (db *DB) SetStart(ctx context.Context, ident string, startUS int64) error {
	if err := db.exec(ctx, `UPDATE models SET start_us = $1 WHERE ident = $2`, startUS, ident); err != nil {
		return diskFull(fmt.Errorf("set start of %s: %w", ident, err))
	}
	return nil
}

// ListState reads every committed state value of a model, or reports
// false when it has more than limit keys (engine.StateLister).
func (db *DB) ListState(ctx context.Context, ident string, limit int) (map[string]string, bool, error) {
	vals, err := again(ctx, func() (map[string]string, error) {
		rows, err := db.pool.Query(ctx, `SELECT key, value FROM model_state WHERE ident = $1 LIMIT $2`, ident, limit+1)
		if err != nil {
			return nil, err
		}
		vals := map[string]string{}
		var k, v string
		_, err = pgx.ForEachRow(rows, []any{&k, &v}, func() error {
			vals[k] = v
			return nil
		})
		return vals, err
	})
	if err != nil {
		return nil, false, fmt.Errorf("list state %s: %w", ident, err)
	}
	if len(vals) > limit {
		return nil, false, nil
	}
	return vals, true, nil
}

// LoadState reads one committed state value.
func (db *DB) LoadState(ctx context.Context, ident, key string) (string, bool, error) {
	var v string
	err := again0(ctx, func() error {
		return db.pool.QueryRow(ctx, `SELECT value FROM model_state WHERE ident = $1 AND key = $2`, ident, key).Scan(&v)
	})
	if errNoRows(err) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("load state %s/%s: %w", ident, key, err)
	}
	return v, true, nil
}

// GetRow reads back one committed row by its key.
func (db *DB) GetRow(ctx context.Context, ident string, key engine.Row) (engine.Row, error) {
	mt := db.table(ident)
	if mt == nil {
		return nil, fmt.Errorf("model %s: not registered", ident)
	}
	t := &mt.t
	var where []string
	var args []any
	for i, k := range t.Key {
		v, ok := key[k]
		if !ok || v == nil {
			return nil, fmt.Errorf("row key column %q is missing", k)
		}
		sv, err := schema.StoreValue(mt.cols[k], v)
		if err != nil {
			return nil, err
		}
		where = append(where, fmt.Sprintf("%s = $%d", quote(k), i+1))
		args = append(args, sv)
	}
	q := fmt.Sprintf("SELECT %s FROM %s WHERE %s", selectList(t), quote(t.Name), strings.Join(where, " AND "))
	vals := make([]any, len(t.Columns))
	ptrs := make([]any, len(t.Columns))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	err := again0(ctx, func() error { return db.pool.QueryRow(ctx, q, args...).Scan(ptrs...) })
	if errNoRows(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get from %s: %w", mt.ident, err)
	}
	row := engine.Row{}
	for i, c := range t.Columns {
		row[c.Name] = sqlkit.FromSQL(c, vals[i])
	}
	return row, nil
}

// selectList lists a table's columns for a SELECT, json columns as their
// text (which sqlkit.FromSQL decodes, as it does SQLite's).
func selectList(t *schema.Table) string {
	cols := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		cols[i] = quote(c.Name)
		if c.Type == schema.JSON {
			cols[i] += "::text"
		}
	}
	return strings.Join(cols, ", ")
}

// CountRows returns how many rows a model's table holds (kept current by
// its triggers, so it costs one lookup).
func (db *DB) CountRows(ctx context.Context, ident string) (int64, error) {
	mt := db.table(ident)
	if mt == nil {
		return 0, fmt.Errorf("count rows of %s: %w", ident, engine.ErrNotFound)
	}
	var n int64
	if err := again0(ctx, func() error {
		return db.pool.QueryRow(ctx, `SELECT n FROM table_rows WHERE name = $1`, mt.t.Name).Scan(&n)
	}); err != nil {
		return 0, fmt.Errorf("count rows of %s: %w", ident, err)
	}
	return n, nil
}

// Promote swaps a rebuilt table in for a model's old one, in one
// transaction; readers see either the old table or the complete new one.
// With a fence, the model's lease must still be held with it (see
// holdsLease): an instance paused past its lease between the rebuild's
// last commit and here must not swap the tables under the instance that
// runs the model now.
func (db *DB) Promote(ctx context.Context, shadow, target string, f *engine.Fence) error {
	mt := db.table(shadow)
	if mt == nil {
		return fmt.Errorf("promote %s: %w", shadow, engine.ErrNotFound)
	}
	var oldTable string
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, lockRegister); err != nil {
			return err
		}
		if f != nil {
			if err := holdsLease(ctx, tx, shadow, *f, "swap the tables"); err != nil {
				return err
			}
		}
		err := tx.QueryRow(ctx, `SELECT table_name FROM models WHERE ident = $1`, target).Scan(&oldTable)
		if err != nil && !errNoRows(err) {
			return err
		}
		var specJSON string
		if err := tx.QueryRow(ctx, `SELECT spec FROM models WHERE ident = $1`, shadow).Scan(&specJSON); err != nil {
			return err
		}
		var spec engine.ModelSpec
		if err := json.Unmarshal([]byte(specJSON), &spec); err != nil {
			return err
		}
		spec.Ident = target
		newSpec, err := json.Marshal(spec)
		if err != nil {
			return err
		}
		batch := &pgx.Batch{}
		for _, tb := range []string{"models", "model_state", "model_errors", "model_queue"} {
			batch.Queue(`DELETE FROM `+tb+` WHERE ident = $1`, target)
		}
		batch.Queue(`UPDATE models SET ident = $1, spec = $2 WHERE ident = $3`, target, string(newSpec), shadow)
		for _, tb := range []string{"model_state", "model_errors", "model_queue"} {
			batch.Queue(`UPDATE `+tb+` SET ident = $1 WHERE ident = $2`, target, shadow)
		}
		if oldTable != "" && oldTable != mt.t.Name {
			batch.Queue(`DROP TABLE IF EXISTS ` + quote(oldTable))
			batch.Queue(`DELETE FROM table_rows WHERE name = $1`, oldTable)
		}
		return tx.SendBatch(ctx, batch).Close()
	})
	if err != nil {
		return diskFull(fmt.Errorf("promote %s: %w", shadow, err))
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
	return nil
}

// PendingWork reads a model's committed, undelivered work items in order.
func (db *DB) PendingWork(ctx context.Context, ident string) ([]engine.WorkItem, int64, error) {
	var last int64
	items, err := again(ctx, func() ([]engine.WorkItem, error) {
		var err error
		var items []engine.WorkItem
		items, last, err = db.pendingWork(ctx, ident)
		return items, err
	})
	return items, last, err
}

func (db *DB) pendingWork(ctx context.Context, ident string) ([]engine.WorkItem, int64, error) {
	var last int64
	err := db.pool.QueryRow(ctx, `SELECT queue_seq FROM models WHERE ident = $1`, ident).Scan(&last)
	if errNoRows(err) {
		return nil, 0, fmt.Errorf("work queue of %s: %w", ident, engine.ErrNotFound)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("work queue of %s: %w", ident, err)
	}
	rows, err := db.pool.Query(ctx, `SELECT seq, item FROM model_queue WHERE ident = $1 ORDER BY seq`, ident)
	if err != nil {
		return nil, 0, fmt.Errorf("work queue of %s: %w", ident, err)
	}
	items, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (engine.WorkItem, error) {
		var it engine.WorkItem
		var item string
		err := r.Scan(&it.Seq, &item)
		it.Item = []byte(item)
		return it, err
	})
	if err != nil {
		return nil, 0, fmt.Errorf("work queue of %s: %w", ident, err)
	}
	return items, last, nil
}

// NoteStall implements engine.StallNoter: until cleared, the API of this
// process shows the model as failed with the reason. Nothing is written:
// the disk is full, and the mark must not outlive the cause.
func (db *DB) NoteStall(ident, reason string) { db.stalls.Note(ident, reason) }
