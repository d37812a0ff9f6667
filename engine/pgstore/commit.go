package pgstore

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"statscache/engine"
	"statscache/engine/sqlkit"
	"statscache/schema"
)

// Begin starts a model's batch transaction. It locks the model's row
// (FOR UPDATE) and reads its commit count and cursor: a journal append
// reading the cursors waits for this commit, and after a COMMIT lost with
// the connection they tell whether it went through (see Commit).
func (db *DB) Begin(ctx context.Context, ident string) (engine.ModelTx, error) {
	mt := db.table(ident)
	if mt == nil {
		return nil, fmt.Errorf("model %s: not registered", ident)
	}
	var commits int64
	var cursor engine.Position
	tx, err := again(ctx, func() (pgx.Tx, error) {
		tx, err := db.pool.Begin(ctx)
		if err != nil {
			return nil, err
		}
		if db.leased.Load() {
			// The journal lock before the model's row, as appends take it
			// before the cursors (insertJournal): no deadlock between the
			// two. Both hold back every instance's appends: a paused
			// instance's session ends them (Options.IdleInTransaction).
			if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock_shared($1)`, lockJournal); err != nil {
				tx.Rollback(context.WithoutCancel(ctx))
				return nil, err
			}
		}
		if err := tx.QueryRow(ctx, `SELECT commits, cursor_time_us, cursor_key FROM models WHERE ident = $1 FOR UPDATE`, ident).
			Scan(&commits, &cursor.TimeUS, &cursor.Key); err != nil {
			tx.Rollback(context.WithoutCancel(ctx))
			return nil, err
		}
		return tx, nil
	})
	if err != nil {
		return nil, diskFull(fmt.Errorf("model %s: begin: %w", ident, err))
	}
	return &modelTx{ctx: ctx, db: db, tx: tx, mt: mt, commits: commits, cursor: cursor}, nil
}

// unsureCommit is a model's commit whose COMMIT was lost with its
// connection: the commit count and cursor it would have left.
type unsureCommit struct {
	commits int64
	cursor  engine.Position
}

// modelTx is one model's batch transaction.
type modelTx struct {
	ctx     context.Context
	db      *DB
	tx      pgx.Tx
	mt      *modelTable
	commits int64           // models.commits when the transaction began
	cursor  engine.Position // and the committed cursor
	done    bool
	// nextID is the "id" the next new row gets; 0 until read.
	nextID int64
	// state holds the state writes until Commit (nil deletes).
	state map[string]*string
}

// maxRows bounds the rows of one multi-row write.
const maxRows = 5000

func maxRowsOf(int) int { return maxRows }

// rowTexts are the texts of a model's multi-row writes by kind and column
// set. They do not depend on the number of rows (the values go as arrays),
// so each is written once instead of at every statement. They live as long
// as the model's table, so they are forgotten, all at once, when there are
// maxRowSets sets: a model whose rows name any subset of their columns
// would otherwise add sets for as long as the daemon runs, each scanned by
// every group of rows (sqlkit.ColSets.Of).
type rowTexts struct {
	mu    sync.Mutex
	sets  sqlkit.ColSets
	texts map[rowTextKey]string
}

// maxRowSets bounds the column sets a model's table remembers (a model
// writes rows of a few).
const maxRowSets = 64

type rowTextKey struct {
	kind engine.OpKind
	cols int // number of the column set in rowTexts.sets
}

// Apply writes the batch's folded row operations. Consecutive operations
// of the same kind on the same columns go into one statement, their values
// sent as one array per column.
func (m *modelTx) Apply(ops []engine.RowOp) error {
	for len(ops) > 0 {
		q, cols, n := m.mt.rowSQL(ops)
		if err := m.apply(ops[0].Kind, q, cols, ops[:n]); err != nil {
			return err
		}
		ops = ops[n:]
	}
	return nil
}

func (m *modelTx) apply(kind engine.OpKind, q string, cols []string, ops []engine.RowOp) error {
	t := &m.mt.t
	if m.nextID == 0 {
		if err := m.tx.QueryRow(m.ctx, `SELECT coalesce(max("id"), 0) + 1 FROM `+quote(t.Name)).Scan(&m.nextID); err != nil {
			return diskFull(fmt.Errorf("write %s: %w", m.mt.ident, err))
		}
	}
	// Every row is numbered; an upsert that updates a row keeps its
	// number (the SET below leaves "id" alone).
	ids := make([]int64, len(ops))
	for i := range ops {
		ids[i] = m.nextID
		m.nextID++
	}
	args := make([]any, 1, 1+len(cols))
	args[0] = ids
	for _, name := range cols {
		col, ok := m.mt.cols[name]
		if !ok {
			return fmt.Errorf("no column %q in %s", name, m.mt.ident)
		}
		arr, err := columnArray(col, ops)
		if err != nil {
			return err
		}
		args = append(args, arr)
	}
	if _, err := m.tx.Exec(m.ctx, q, args...); err != nil {
		return rowError(m.mt.ident, kind.String(), err)
	}
	return nil
}

// rowSQL returns the statement that writes the first n of ops, those of
// the first's kind and column set, and their columns (sorted). The set's
// number is only used under the lock: the sets may be forgotten as soon as
// it is released.
func (mt *modelTable) rowSQL(ops []engine.RowOp) (q string, cols []string, n int) {
	rt := &mt.rows
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if rt.sets.Len() >= maxRowSets {
		rt.sets, rt.texts = sqlkit.ColSets{}, nil
	}
	set, n := rt.sets.Group(ops, maxRowsOf)
	cols = rt.sets.Cols(set)
	key := rowTextKey{kind: ops[0].Kind, cols: set}
	if q, ok := rt.texts[key]; ok {
		return q, cols, n
	}
	t := &mt.t
	var b strings.Builder
	fmt.Fprintf(&b, `INSERT INTO %s ("id"`, quote(t.Name))
	for _, n := range cols {
		b.WriteString(", " + quote(n))
	}
	b.WriteString(") SELECT u0")
	for i, n := range cols {
		fmt.Fprintf(&b, ", u%d", i+1)
		if mt.cols[n].Type == schema.JSON {
			b.WriteString("::jsonb")
		}
	}
	b.WriteString(" FROM unnest($1::bigint[]")
	for i, n := range cols {
		fmt.Fprintf(&b, ", $%d::%s", i+2, arrayType(mt.cols[n].Type))
	}
	b.WriteString(") AS u(u0")
	for i := range cols {
		fmt.Fprintf(&b, ", u%d", i+1)
	}
	b.WriteString(")")
	b.WriteString(sqlkit.OnConflict(t, cols, key.kind, quote))
	if rt.texts == nil {
		rt.texts = map[rowTextKey]string{}
	}
	rt.texts[key] = b.String()
	return rt.texts[key], cols, n
}

// columnArray converts one column's values of ops to the array sent for
// it (nil elements are NULLs), through schema.StoreValue as every store.
func columnArray(c schema.Column, ops []engine.RowOp) (any, error) {
	switch c.Type {
	case schema.Integer:
		return columnValues[int64](c, ops)
	case schema.Real:
		return columnValues[float64](c, ops)
	default:
		return columnValues[string](c, ops)
	}
}

// columnValues is columnArray for a column whose values StoreValue gives
// as T. The values live in one slice, not one allocation each.
func columnValues[T any](c schema.Column, ops []engine.RowOp) ([]*T, error) {
	out := make([]*T, len(ops))
	vals := make([]T, len(ops))
	for i, op := range ops {
		v, err := schema.StoreValue(c, op.Row[c.Name])
		if err != nil {
			return nil, err
		}
		if v != nil {
			// StoreValue gives a column's type as T; checked all the
			// same, since a panic here would end the daemon, not the
			// commit.
			x, ok := v.(T)
			if !ok {
				return nil, fmt.Errorf("column %q (%s): a %T where the store expects a %T", c.Name, c.Type, v, x)
			}
			vals[i] = x
			out[i] = &vals[i]
		}
	}
	return out, nil
}

// PutState buffers a state write: they are all sent at Commit, two
// statements for however many keys (a model may touch thousands a batch).
func (m *modelTx) PutState(key string, value *string) error {
	if m.state == nil {
		m.state = map[string]*string{}
	}
	m.state[key] = value
	return nil
}

// writeState sends the buffered state writes.
func (m *modelTx) writeState() error {
	var setK, setV, del []string
	for k, v := range m.state {
		if v == nil {
			del = append(del, k)
		} else {
			setK, setV = append(setK, k), append(setV, *v)
		}
	}
	if len(del) > 0 {
		if _, err := m.tx.Exec(m.ctx, `DELETE FROM model_state WHERE ident = $1 AND key = ANY($2::text[])`, m.mt.ident, del); err != nil {
			return diskFull(fmt.Errorf("state of %s: %w", m.mt.ident, err))
		}
	}
	if len(setK) > 0 {
		if _, err := m.tx.Exec(m.ctx, `INSERT INTO model_state (ident, key, value) SELECT $1, * FROM unnest($2::text[], $3::text[])
			ON CONFLICT (ident, key) DO UPDATE SET value = excluded.value`, m.mt.ident, setK, setV); err != nil {
			return rowError(m.mt.ident, "state", err)
		}
	}
	return nil
}

// Commit writes the errors, the work queue and the cursor, and commits.
//
// When COMMIT fails without an answer from the server (the connection was
// lost), the transaction may have committed or not. The store remembers
// the commit count and cursor it would have left; when the engine writes
// the same batch again (the same cursor) and the model's row shows exactly
// that commit, the batch is already there: this transaction ends without
// writing it a second time. Any other batch (a model restarted from its
// committed cursor, say) commits as usual.
func (m *modelTx) Commit(cp engine.Checkpoint) error {
	m.db.mu.Lock()
	u, unsure := m.db.unsure[m.mt.ident]
	delete(m.db.unsure, m.mt.ident)
	m.db.mu.Unlock()
	if unsure && u.commits == m.commits && u.cursor == m.cursor && cp.Cursor == u.cursor {
		m.done = true
		return m.tx.Rollback(context.WithoutCancel(m.ctx))
	}
	ident := m.mt.ident
	if cp.Fence != nil { // several instances share the database (lease.go)
		if err := checkFence(m.ctx, m.tx, ident, cp); err != nil {
			return err
		}
	}
	now := time.Now().Unix()
	if err := m.writeState(); err != nil {
		return err
	}
	if len(cp.Errors) > 0 {
		rows := make([][]any, len(cp.Errors))
		for i, e := range cp.Errors {
			rows[i] = []any{ident, safeText(e.MsgID), e.TimeUS, safeText(e.Err), safeText(e.Traceback), now}
		}
		if _, err := m.tx.CopyFrom(m.ctx, pgx.Identifier{"model_errors"}, []string{"ident", "msg_id", "time_us", "error", "traceback", "at"},
			pgx.CopyFromRows(rows)); err != nil {
			return diskFull(fmt.Errorf("record errors of %s: %w", ident, err))
		}
		// models.errors below is the exact total; the table keeps the newest.
		if _, err := m.tx.Exec(m.ctx, `DELETE FROM model_errors WHERE ident = $1 AND id <=
			(SELECT id FROM model_errors WHERE ident = $1 ORDER BY id DESC LIMIT 1 OFFSET $2)`, ident, m.db.keep); err != nil {
			return diskFull(fmt.Errorf("prune errors of %s: %w", ident, err))
		}
	}
	queued, err := m.commitWork(cp)
	if err != nil {
		return err
	}
	if _, err := m.tx.Exec(m.ctx, `UPDATE models SET cursor_time_us = $1, cursor_key = $2, cursor_id = $3,
		processed = processed + $4, errors = errors + $5, updated_at = $6, queue_seq = greatest(queue_seq, $7),
		queued = queued + $8, commits = commits + 1 WHERE ident = $9`,
		cp.Cursor.TimeUS, cp.Cursor.Key, cp.CursorID, cp.Processed, len(cp.Errors), now, cp.WorkSeq, queued, ident); err != nil {
		return diskFull(fmt.Errorf("cursor of %s: %w", ident, err))
	}
	m.done = true
	if err := m.tx.Commit(m.ctx); err != nil {
		if pgCode(err) == "" {
			m.db.mu.Lock()
			if m.db.unsure == nil {
				m.db.unsure = map[string]unsureCommit{}
			}
			m.db.unsure[ident] = unsureCommit{commits: m.commits + 1, cursor: cp.Cursor}
			m.db.mu.Unlock()
		}
		return diskFull(fmt.Errorf("commit %s: %w", ident, err))
	}
	return nil
}

func (m *modelTx) Rollback() error {
	if m.done {
		return nil
	}
	m.done = true
	return m.tx.Rollback(context.WithoutCancel(m.ctx))
}

// commitWork stores the items a batch pushed and deletes the ones whose
// outcome the batch delivered. It returns how the number of queued items
// changed, for models.queued.
func (m *modelTx) commitWork(cp engine.Checkpoint) (int64, error) {
	ident := m.mt.ident
	var delta int64
	if cp.WorkDone > 0 {
		tag, err := m.tx.Exec(m.ctx, `DELETE FROM model_queue WHERE ident = $1 AND seq <= $2`, ident, cp.WorkDone)
		if err != nil {
			return 0, diskFull(fmt.Errorf("work queue of %s: %w", ident, err))
		}
		delta -= tag.RowsAffected()
	}
	if len(cp.Work) == 0 {
		return delta, nil
	}
	seqs, items := make([]int64, len(cp.Work)), make([]string, len(cp.Work))
	for i, it := range cp.Work {
		seqs[i], items[i] = it.Seq, string(it.Item)
	}
	if _, err := m.tx.Exec(m.ctx, `INSERT INTO model_queue (ident, seq, item) SELECT $1, * FROM unnest($2::bigint[], $3::text[])`,
		ident, seqs, items); err != nil {
		return 0, rowError(ident, "work queue", err)
	}
	return delta + int64(len(cp.Work)), nil
}
