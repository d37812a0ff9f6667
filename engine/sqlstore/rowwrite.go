package sqlstore

import (
	"database/sql"
	"fmt"
	"strings"
	"sync"

	"statscache/engine"
	"statscache/engine/sqlkit"
	"statscache/schema"
)

// maxVars bounds the bound parameters of one multi-row statement.
const maxVars = 30000

// rowStmtKey names one multi-row statement of a model's table by what its
// text is made of. Writing the text again on every call just to find the
// statement prepared for it allocated more than the rows themselves.
type rowStmtKey struct {
	kind engine.OpKind
	cols int // number of the column set in rowWriter.colSets
	rows int
}

// rowWriter is what a model's transaction keeps between its multi-row
// statements: the statements, the column sets they were written for, and
// the argument slice, reused by every statement.
type rowWriter struct {
	rowStmts map[rowStmtKey]*sql.Stmt
	colSets  sqlkit.ColSets
	args     *[]any // from argsPool; nil until the first statement
}

// argsPool holds the argument slices of finished transactions: a replay
// commits hundreds of batches, of up to 500 rows a statement.
var argsPool = sync.Pool{New: func() any { return new([]any) }}

// release gives back the argument slice, without the values it held.
func (w *rowWriter) release() {
	if w.args != nil {
		// Up to its capacity: a longer statement before the last one
		// left values past the last one's length.
		*w.args = (*w.args)[:0]
		clear((*w.args)[:cap(*w.args)])
		argsPool.Put(w.args)
		w.args = nil
	}
}

// rowsPerStmt is how many rows of cols columns one statement writes.
func rowsPerStmt(cols int) int { return max(1, min(500, maxVars/max(1, cols))) }

// Apply writes the batch's folded row operations. Consecutive operations of
// the same kind on the same columns go into one multi-row statement, which
// is what makes a commit of thousands of rows cheap.
func (m *modelTx) Apply(ops []engine.RowOp) error {
	for len(ops) > 0 {
		set, n := m.colSets.Group(ops, rowsPerStmt)
		if err := m.apply(ops[0].Kind, set, ops[:n]); err != nil {
			return err
		}
		ops = ops[n:]
	}
	return nil
}

func (m *modelTx) apply(kind engine.OpKind, set int, ops []engine.RowOp) error {
	cols := m.colSets.Cols(set)
	if m.args == nil {
		m.args = argsPool.Get().(*[]any)
	}
	args := (*m.args)[:0]
	if m.mt.clustered && m.nextID == 0 {
		if err := m.tx.QueryRowContext(m.ctx, `SELECT coalesce(max("id"), 0) + 1 FROM `+schema.Quote(m.mt.t.Name)).Scan(&m.nextID); err != nil {
			return fmt.Errorf("write %s: %w", m.mt.ident, err)
		}
	}
	for _, op := range ops {
		if m.mt.clustered {
			// Every row is numbered; an upsert that updates a row keeps
			// its number (the SET below leaves "id" alone).
			args = append(args, m.nextID)
			m.nextID++
		}
		for _, c := range cols {
			col, ok := m.mt.cols[c]
			if !ok {
				return fmt.Errorf("no column %q in %s", c, m.mt.ident)
			}
			v, err := schema.StoreValue(col, op.Row[c])
			if err != nil {
				return err
			}
			args = append(args, v)
		}
	}
	*m.args = args
	key := rowStmtKey{kind: kind, cols: set, rows: len(ops)}
	s := m.rowStmts[key]
	if s == nil {
		var err error
		if s, err = m.tx.PrepareContext(m.ctx, m.mt.rowSQL(kind, cols, len(ops))); err != nil {
			return fmt.Errorf("write %s: %w", m.mt.ident, err)
		}
		m.rowStmts[key] = s
	}
	if _, err := s.Exec(args...); err != nil { // see Append on contexts
		if strings.Contains(err.Error(), "UNIQUE constraint failed") || strings.Contains(err.Error(), "NOT NULL constraint failed") {
			return fmt.Errorf("%s into %s: %w (%v)", kind, m.mt.ident, engine.ErrRowConflict, err)
		}
		return fmt.Errorf("write %s: %w", m.mt.ident, err)
	}
	return nil
}

// rowSQL is the statement that writes rows rows of the columns cols
// (sorted) with one kind of operation.
func (mt *modelTable) rowSQL(kind engine.OpKind, cols []string, rows int) string {
	t := &mt.t
	var b strings.Builder
	fmt.Fprintf(&b, "INSERT INTO %s (", schema.Quote(t.Name))
	n := len(cols)
	if mt.clustered {
		b.WriteString(`"id", `)
		n++
	}
	for i, n := range cols {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(schema.Quote(n))
	}
	b.WriteString(") VALUES ")
	tuple := "(" + strings.TrimSuffix(strings.Repeat("?, ", n), ", ") + ")"
	for i := range rows {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(tuple)
	}
	b.WriteString(sqlkit.OnConflict(t, cols, kind, schema.Quote))
	return b.String()
}
