package engine

import (
	"context"
	"encoding/binary"
	"fmt"
	"maps"
	"math"

	"statscache/schema"
)

// OpKind is the kind of a buffered row write.
type OpKind int

// The row writes a model can make; see RowWriter.
const (
	OpInsert OpKind = iota
	OpUpsert
	OpAdd
)

func (k OpKind) String() string {
	return [...]string{"insert", "upsert", "add"}[k]
}

// RowOp is one buffered write, ready to be applied in the commit
// transaction. Writes to the same key within a batch are folded into one.
type RowOp struct {
	Kind OpKind
	Row  Row
}

// rowBuffer collects a model's writes during its update, outside the
// database's write lock: the Lua code runs in parallel with other models'
// commits, and the commit transaction only replays the folded writes as
// multi-row statements.
type rowBuffer struct {
	ctx   context.Context
	ident string
	table *schema.Table
	store rowGetter
	ops   []RowOp
	byKey map[string][]int // op indices per row key, in order
	kbuf  []byte           // the key of the row being written
}

// rowGetter is the one thing the buffer needs from the store: committed
// rows, for read-back.
type rowGetter interface {
	GetRow(ctx context.Context, ident string, key Row) (Row, error)
}

func newRowBuffer(ident string, t *schema.Table, store rowGetter) *rowBuffer {
	return &rowBuffer{ident: ident, table: t, store: store, byKey: map[string][]int{}}
}

func (b *rowBuffer) reset() {
	b.ops = b.ops[:0]
	clear(b.byKey)
}

// keyString encodes the row key of r, checking that every key column is
// present.
func (b *rowBuffer) keyString(r Row) (string, error) {
	k, err := b.appendKey(nil, r)
	return string(k), err
}

// appendKey appends the row key of r to buf in a compact binary form (a
// type byte, then the string's length and bytes, or the number's float64
// bits): it is built for every row a model writes, and formatting it as
// text cost more than the rest of the write.
func (b *rowBuffer) appendKey(buf []byte, r Row) ([]byte, error) {
	for _, k := range b.table.Key {
		v, ok := r[k]
		if !ok || v == nil {
			return buf, fmt.Errorf("row key column %q is missing", k)
		}
		switch x := v.(type) {
		case string:
			buf = append(buf, 's')
			buf = binary.AppendUvarint(buf, uint64(len(x)))
			buf = append(buf, x...)
		case float64:
			buf = append(buf, 'n')
			buf = binary.LittleEndian.AppendUint64(buf, math.Float64bits(x))
		case int64:
			buf = append(buf, 'n')
			buf = binary.LittleEndian.AppendUint64(buf, math.Float64bits(float64(x)))
		case bool:
			buf = append(buf, 'b')
			if x {
				buf = append(buf, 1)
			} else {
				buf = append(buf, 0)
			}
		default:
			return buf, fmt.Errorf("row key column %q: a %T cannot be a key", k, v)
		}
	}
	return buf, nil
}

func (b *rowBuffer) check(r Row) error {
	for name, v := range r {
		c, ok := b.table.Column(name)
		if !ok {
			return fmt.Errorf("no column %q in %s", name, b.ident)
		}
		if v == nil {
			if c.NotNull {
				return fmt.Errorf("column %q is NOT NULL", name)
			}
			continue
		}
		switch c.Type {
		case schema.Integer:
			f, ok := number(v)
			if !ok || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
				return fmt.Errorf("column %q (integer): %v is not an integer", name, v)
			}
		case schema.Real:
			f, ok := number(v)
			if !ok || math.IsNaN(f) || math.IsInf(f, 0) {
				return fmt.Errorf("column %q (real): %v is not a finite number", name, v)
			}
		case schema.Text:
			if _, ok := v.(string); !ok {
				return fmt.Errorf("column %q (text): %v is a %T, not a string", name, v, v)
			}
		}
	}
	return nil
}

func number(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case int64:
		return float64(x), true
	case int:
		return float64(x), true
	}
	return 0, false
}

func (b *rowBuffer) write(kind OpKind, r Row) error {
	if err := b.check(r); err != nil {
		return err
	}
	var err error
	b.kbuf, err = b.appendKey(b.kbuf[:0], r)
	if err != nil {
		return err
	}
	if kind == OpInsert {
		for _, c := range b.table.Columns {
			if _, ok := r[c.Name]; !ok && c.NotNull {
				return fmt.Errorf("column %q is NOT NULL but missing", c.Name)
			}
		}
	}
	idx := b.byKey[string(b.kbuf)]
	// fold copies what it keeps of r; a new op keeps a copy of its own,
	// since the caller may reuse r.
	if len(idx) > 0 && b.fold(&b.ops[idx[len(idx)-1]], kind, r) {
		return nil
	}
	if len(idx) > 0 && kind == OpInsert {
		return fmt.Errorf("insert: a row with this key was already written in this update (use upsert or add)")
	}
	b.byKey[string(b.kbuf)] = append(idx, len(b.ops))
	b.ops = append(b.ops, RowOp{Kind: kind, Row: maps.Clone(r)})
	return nil
}

// fold merges a write into the previous write of the same key when the
// single merged write has the same effect as the two in sequence.
func (b *rowBuffer) fold(prev *RowOp, kind OpKind, row Row) bool {
	switch kind {
	case OpUpsert:
		if prev.Kind == OpAdd {
			return false // the add's deltas are relative to the stored row
		}
		for c, v := range row {
			prev.Row[c] = v
		}
		return true
	case OpAdd:
		for c := range row {
			if _, ok := prev.Row[c]; !ok && prev.Kind == OpUpsert && b.addable(c) {
				return false // the delta applies to a stored value the upsert keeps
			}
		}
		for c, v := range row {
			if b.addable(c) {
				pf, _ := number(prev.Row[c])
				nf, _ := number(v)
				prev.Row[c] = pf + nf
			} else {
				prev.Row[c] = v
			}
		}
		return true
	}
	return false
}

// addable reports whether an add sums column c (numeric and not in the key).
func (b *rowBuffer) addable(c string) bool {
	col, _ := b.table.Column(c)
	return col.Type.Numeric() && !b.table.IsKey(c)
}

func (b *rowBuffer) Insert(r Row) error { return b.write(OpInsert, r) }
func (b *rowBuffer) Upsert(r Row) error { return b.write(OpUpsert, r) }
func (b *rowBuffer) Add(r Row) error    { return b.write(OpAdd, r) }

// Get reads the committed row and applies this batch's writes to it.
func (b *rowBuffer) Get(key Row) (Row, error) {
	for c := range key {
		if !b.table.IsKey(c) {
			return nil, fmt.Errorf("get: %q is not a row key column", c)
		}
	}
	if err := b.check(key); err != nil {
		return nil, fmt.Errorf("get: %w", err)
	}
	k, err := b.keyString(key)
	if err != nil {
		return nil, fmt.Errorf("get: %w", err)
	}
	row, err := b.store.GetRow(b.ctx, b.ident, key)
	if err != nil {
		return nil, fmt.Errorf("get: %w", err)
	}
	for _, i := range b.byKey[k] {
		op := b.ops[i]
		if row == nil {
			row = Row{}
		}
		for c, v := range op.Row {
			if op.Kind == OpAdd && b.addable(c) {
				pf, _ := number(row[c])
				nf, _ := number(v)
				row[c] = pf + nf
			} else {
				row[c] = v
			}
		}
	}
	return row, nil
}
