package scripttest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"

	"statscache/engine"
	"statscache/schema"
)

var _ engine.Store = (*Store)(nil)

// Store is an in-memory engine.Store: a journal, model tables, state,
// cursors and errors in Go maps. It lets the real engine.Engine run models
// with no database. Its row writes follow the SQLite store's statements
// exactly (see sqlstore's modelTx.apply): insert fails on an existing key,
// upsert replaces the non-key columns it names, add sums the numeric
// non-key columns it names (coalescing NULL to 0) and replaces the others,
// and NOT NULL columns are checked on the row as inserted, before the key
// conflict, as SQLite does. Values are stored as SQLite would store them
// (integer columns as int64, real as float64, json as encoded text) and read
// back as the SQL store returns them. TestStoreMatchesSQLStore checks the
// two stores agree.
type Store struct {
	mu      sync.Mutex
	journal []*engine.Message // in (time, key) order
	keys    map[string]bool
	models  map[string]*memModel
	rejects []engine.Reject
}

type memModel struct {
	spec   engine.ModelSpec
	cols   map[string]schema.Column
	rows   map[string]engine.Row // row key -> stored row (SQL values)
	state  map[string]string
	status engine.ModelStatus
	errors []engine.ModelError
	// queue holds the committed, undelivered work items; queueSeq is the
	// last seq pushed.
	queue    []engine.WorkItem
	queueSeq int64
}

// NewStore returns an empty store.
func NewStore() *Store {
	return &Store{keys: map[string]bool{}, models: map[string]*memModel{}}
}

// Append adds the messages whose key is not in the journal yet.
func (s *Store) Append(ctx context.Context, msgs []*engine.Message) (engine.AppendResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var res engine.AppendResult
	for _, m := range msgs {
		if s.keys[m.Key] {
			res.Duplicates++
			continue
		}
		s.keys[m.Key] = true
		p := m.Pos()
		i := sort.Search(len(s.journal), func(i int) bool { return p.Less(s.journal[i].Pos()) })
		s.journal = append(s.journal, nil)
		copy(s.journal[i+1:], s.journal[i:])
		s.journal[i] = m
		res.Added++
	}
	return res, nil
}

// Scan returns up to limit messages after the position, in order.
func (s *Store) Scan(ctx context.Context, after engine.Position, limit int) ([]*engine.Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := sort.Search(len(s.journal), func(i int) bool { return after.Less(s.journal[i].Pos()) })
	j := min(len(s.journal), i+limit)
	return append([]*engine.Message(nil), s.journal[i:j]...), nil
}

// AddRejects keeps rejected records.
func (s *Store) AddRejects(ctx context.Context, rs []engine.Reject) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rejects = append(s.rejects, rs...)
	return nil
}

// Register creates the model's table, or returns the status of a model
// registered before with the same table.
func (s *Store) Register(ctx context.Context, spec *engine.ModelSpec) (engine.ModelStatus, error) {
	t := spec.Table
	if err := t.Validate(); err != nil {
		return engine.ModelStatus{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if m, ok := s.models[spec.Ident]; ok {
		if m.spec.Table.Fingerprint() != t.Fingerprint() {
			return engine.ModelStatus{}, fmt.Errorf("%w %s (columns, types or key changed)", engine.ErrTableChanged, t.Name)
		}
		m.status.Status, m.status.Reason = "ok", ""
		return m.status, nil
	}
	m := &memModel{spec: *spec, cols: map[string]schema.Column{}, rows: map[string]engine.Row{},
		state: map[string]string{}, status: engine.ModelStatus{Status: "ok"}}
	m.spec.Table = t
	for _, c := range t.Columns {
		m.cols[c.Name] = c
	}
	s.models[spec.Ident] = m
	return m.status, nil
}

func (s *Store) model(ident string) (*memModel, error) {
	m := s.models[ident]
	if m == nil {
		return nil, fmt.Errorf("model %s: not registered", ident)
	}
	return m, nil
}

// GetRow returns the committed row with the key, or nil.
func (s *Store) GetRow(ctx context.Context, ident string, key engine.Row) (engine.Row, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := s.model(ident)
	if err != nil {
		return nil, err
	}
	k, err := m.sqlKey(key)
	if err != nil {
		return nil, err
	}
	r := m.rows[k]
	if r == nil {
		return nil, nil
	}
	return m.fromSQL(r), nil
}

// LoadState reads one committed state value.
func (s *Store) LoadState(ctx context.Context, ident, key string) (string, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := s.model(ident)
	if err != nil {
		return "", false, err
	}
	v, ok := m.state[key]
	return v, ok, nil
}

// SetStatus marks a model ok or failed.
func (s *Store) SetStatus(ctx context.Context, ident, status, reason string, _ *engine.Fence) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := s.model(ident)
	if err != nil {
		return err
	}
	m.status.Status, m.status.Reason = status, reason
	return nil
}

// PendingWork returns the model's committed, undelivered work items.
func (s *Store) PendingWork(ctx context.Context, ident string) ([]engine.WorkItem, int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := s.model(ident)
	if err != nil {
		return nil, 0, err
	}
	return append([]engine.WorkItem(nil), m.queue...), m.queueSeq, nil
}

// Promote is not needed offline: a model's table never changes within one
// test run.
func (s *Store) Promote(ctx context.Context, shadow, target string, _ *engine.Fence) error {
	return fmt.Errorf("promote %s: not supported by the in-memory store", shadow)
}

// Begin starts a batch: writes go to an overlay that Commit applies.
func (s *Store) Begin(ctx context.Context, ident string) (engine.ModelTx, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := s.model(ident)
	if err != nil {
		return nil, err
	}
	return &memTx{s: s, m: m, rows: map[string]engine.Row{}, state: map[string]*string{}}, nil
}

// Rows returns every committed row of a model's table, as the SQL store
// reads them back, ordered by the row key.
func (s *Store) Rows(ident string) ([]engine.Row, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := s.model(ident)
	if err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(m.rows))
	for k := range m.rows {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]engine.Row, len(keys))
	for i, k := range keys {
		out[i] = m.fromSQL(m.rows[k])
	}
	return out, nil
}

// Errors returns the process errors committed for a model.
func (s *Store) Errors(ident string) []engine.ModelError {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m := s.models[ident]; m != nil {
		return append([]engine.ModelError(nil), m.errors...)
	}
	return nil
}

// Status returns a model's committed status.
func (s *Store) Status(ident string) (engine.ModelStatus, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m := s.models[ident]; m != nil {
		return m.status, true
	}
	return engine.ModelStatus{}, false
}

// Rejects returns the records the engine rejected.
func (s *Store) Rejects() []engine.Reject {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]engine.Reject(nil), s.rejects...)
}

// memTx is one batch: rows written so far (an overlay over the committed
// rows; nil never appears, rows are never deleted) and state changes.
type memTx struct {
	s     *Store
	m     *memModel
	rows  map[string]engine.Row
	state map[string]*string
	done  bool
}

func (tx *memTx) current(k string) engine.Row {
	if r, ok := tx.rows[k]; ok {
		return r
	}
	return tx.m.rows[k]
}

// Apply writes the operations in order, as the SQL statements do.
func (tx *memTx) Apply(ops []engine.RowOp) error {
	tx.s.mu.Lock()
	defer tx.s.mu.Unlock()
	m := tx.m
	t := &m.spec.Table
	for _, op := range ops {
		vals := engine.Row{}
		for c, v := range op.Row {
			col, ok := m.cols[c]
			if !ok {
				return fmt.Errorf("no column %q in %s", c, m.spec.Ident)
			}
			sv, err := schema.StoreValue(col, v)
			if err != nil {
				// The SQL store reports this as a store error and retries;
				// offline it is the script's mistake, so stop the model.
				return fmt.Errorf("%s into %s: %w (%v)", op.Kind, m.spec.Ident, engine.ErrRowConflict, err)
			}
			vals[c] = sv
		}
		// The row as inserted: named columns, NULL for the others.
		for _, c := range t.Columns {
			if c.NotNull && vals[c.Name] == nil {
				return fmt.Errorf("%s into %s: %w (NOT NULL constraint failed: %s.%s)", op.Kind, m.spec.Ident, engine.ErrRowConflict, t.Name, c.Name)
			}
		}
		k, err := m.sqlKey(vals)
		if err != nil {
			return err
		}
		old := tx.current(k)
		if old == nil {
			row := engine.Row{}
			for _, c := range t.Columns {
				row[c.Name] = vals[c.Name]
			}
			tx.rows[k] = row
			continue
		}
		if op.Kind == engine.OpInsert {
			cols := make([]string, len(t.Key))
			for i, k := range t.Key {
				cols[i] = t.Name + "." + k
			}
			return fmt.Errorf("%s into %s: %w (UNIQUE constraint failed: %s)", op.Kind, m.spec.Ident, engine.ErrRowConflict, strings.Join(cols, ", "))
		}
		row := make(engine.Row, len(old))
		for c, v := range old {
			row[c] = v
		}
		for c, v := range vals {
			if t.IsKey(c) {
				continue
			}
			col := m.cols[c]
			if op.Kind == engine.OpAdd && col.Type.Numeric() {
				row[c] = sqlAdd(col, row[c], v)
			} else {
				row[c] = v
			}
		}
		tx.rows[k] = row
	}
	return nil
}

// sqlAdd is coalesce(a, 0) + coalesce(b, 0) in SQLite: integer when both
// are integers, real otherwise, stored with the column's affinity.
func sqlAdd(col schema.Column, a, b any) any {
	ai, aInt := a.(int64)
	bi, bInt := b.(int64)
	if a == nil {
		ai, aInt = 0, true
	}
	if b == nil {
		bi, bInt = 0, true
	}
	if aInt && bInt {
		if col.Type == schema.Real {
			return float64(ai + bi)
		}
		return ai + bi
	}
	f := asFloat(a) + asFloat(b)
	if col.Type == schema.Integer && f == math.Trunc(f) && math.Abs(f) <= 1<<53 {
		return int64(f)
	}
	return f
}

func asFloat(v any) float64 {
	switch x := v.(type) {
	case int64:
		return float64(x)
	case float64:
		return x
	}
	return 0
}

func (tx *memTx) PutState(key string, value *string) error {
	tx.state[key] = value
	return nil
}

func (tx *memTx) Commit(cp engine.Checkpoint) error {
	if tx.done {
		return errors.New("transaction already finished")
	}
	tx.done = true
	tx.s.mu.Lock()
	defer tx.s.mu.Unlock()
	m := tx.m
	for k, r := range tx.rows {
		m.rows[k] = r
	}
	for k, v := range tx.state {
		if v == nil {
			delete(m.state, k)
		} else {
			m.state[k] = *v
		}
	}
	m.errors = append(m.errors, cp.Errors...)
	for len(m.queue) > 0 && m.queue[0].Seq <= cp.WorkDone {
		m.queue = m.queue[1:]
	}
	m.queue = append(m.queue, cp.Work...)
	m.queueSeq = max(m.queueSeq, cp.WorkSeq)
	m.status.Cursor, m.status.CursorID = cp.Cursor, cp.CursorID
	m.status.Processed += cp.Processed
	m.status.Errors += int64(len(cp.Errors))
	return nil
}

func (tx *memTx) Rollback() error {
	tx.done = true
	return nil
}

// sqlKey encodes the row key of r (SQL values or model values) so that
// equal keys in SQL compare equal here: numbers by value, text by content.
func (m *memModel) sqlKey(r engine.Row) (string, error) {
	var sb strings.Builder
	for _, k := range m.spec.Table.Key {
		v, ok := r[k]
		if !ok || v == nil {
			return "", fmt.Errorf("row key column %q is missing", k)
		}
		sv, err := schema.StoreValue(m.cols[k], v)
		if err != nil {
			return "", err
		}
		switch x := sv.(type) {
		case int64:
			sb.WriteString("n" + strconv.FormatFloat(float64(x), 'g', -1, 64))
		case float64:
			sb.WriteString("n" + strconv.FormatFloat(x, 'g', -1, 64))
		case string:
			sb.WriteString("s" + strconv.Quote(x))
		}
		sb.WriteByte(0)
	}
	return sb.String(), nil
}

// fromSQL returns a copy of a stored row as the SQL store reads it back.
func (m *memModel) fromSQL(r engine.Row) engine.Row {
	out := make(engine.Row, len(r))
	for c, v := range r {
		if s, ok := v.(string); ok && m.cols[c].Type == schema.JSON {
			var g any
			if err := json.Unmarshal([]byte(s), &g); err == nil {
				out[c] = g
				continue
			}
		}
		out[c] = v
	}
	return out
}
