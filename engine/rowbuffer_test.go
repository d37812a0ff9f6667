package engine

import (
	"context"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"

	"statscache/schema"
)

// fakeRows is a ModelStore holding committed rows in memory; only GetRow is
// used by the row buffer.
type fakeRows struct {
	rows map[string]Row // by category; the key is (timestamp, category)
	gets int
}

func (f *fakeRows) Register(context.Context, *ModelSpec) (ModelStatus, error) {
	return ModelStatus{}, errors.New("not used")
}
func (f *fakeRows) Begin(context.Context, string) (ModelTx, error) {
	return nil, errors.New("not used")
}
func (f *fakeRows) LoadState(context.Context, string, string) (string, bool, error) {
	return "", false, errors.New("not used")
}
func (f *fakeRows) SetStatus(context.Context, string, string, string, *Fence) error {
	return errors.New("not used")
}

func (f *fakeRows) GetRow(_ context.Context, ident string, key Row) (Row, error) {
	f.gets++
	if ident != "cat-1m" {
		return nil, fmt.Errorf("unknown model %s", ident)
	}
	ts, _ := number(key["timestamp"])
	r, ok := f.rows[fmt.Sprintf("%v/%v", ts, key["category"])]
	if !ok {
		return nil, nil
	}
	out := Row{}
	for k, v := range r {
		out[k] = v
	}
	return out, nil
}

func testTable() *schema.Table {
	t := &schema.Table{
		Name: "model_cat_1m",
		Columns: []schema.Column{
			{Name: "timestamp", Type: schema.Real, NotNull: true},
			{Name: "category", Type: schema.Text},
			{Name: "volume", Type: schema.Integer, NotNull: true},
			{Name: "ratio", Type: schema.Real},
			{Name: "note", Type: schema.Text},
			{Name: "info", Type: schema.JSON},
		},
		Key: []string{"timestamp", "category"},
	}
	if err := t.Validate(); err != nil {
		panic(err)
	}
	return t
}

func newTestBuffer(store *fakeRows) *rowBuffer {
	if store == nil {
		store = &fakeRows{}
	}
	b := newRowBuffer("cat-1m", testTable(), store)
	b.ctx = context.Background()
	return b
}

// norm makes rows comparable: every number becomes a float64.
func norm(r Row) Row {
	if r == nil {
		return nil
	}
	out := Row{}
	for k, v := range r {
		if f, ok := number(v); ok {
			v = f
		}
		out[k] = v
	}
	return out
}

type write struct {
	kind OpKind
	row  Row
}

func apply(b *rowBuffer, ws []write) error {
	for i, w := range ws {
		var err error
		switch w.kind {
		case OpInsert:
			err = b.Insert(w.row)
		case OpUpsert:
			err = b.Upsert(w.row)
		case OpAdd:
			err = b.Add(w.row)
		}
		if err != nil {
			return fmt.Errorf("write %d (%s): %w", i, w.kind, err)
		}
	}
	return nil
}

func TestRowBufferFold(t *testing.T) {
	a60 := func(extra Row) Row {
		r := Row{"timestamp": 60.0, "category": "a"}
		for k, v := range extra {
			r[k] = v
		}
		return r
	}
	tests := []struct {
		name   string
		writes []write
		want   []RowOp
	}{
		{
			name:   "OKAddAddSums",
			writes: []write{{OpAdd, a60(Row{"volume": int64(1)})}, {OpAdd, a60(Row{"volume": int64(2), "ratio": 0.5})}},
			want:   []RowOp{{OpAdd, a60(Row{"volume": 3, "ratio": 0.5})}},
		},
		{
			name: "OKAddAddTextReplaced",
			writes: []write{
				{OpAdd, a60(Row{"volume": 1.0, "note": "first"})},
				{OpAdd, a60(Row{"volume": 1.0, "note": "second"})},
			},
			want: []RowOp{{OpAdd, a60(Row{"volume": 2, "note": "second"})}},
		},
		{
			name:   "OKKeyNumbersOfEitherType",
			writes: []write{{OpAdd, Row{"timestamp": int64(60), "category": "a", "volume": 1.0}}, {OpAdd, a60(Row{"volume": 1.0})}},
			want:   []RowOp{{OpAdd, a60(Row{"volume": 2})}},
		},
		{
			name:   "OKOtherKeysApart",
			writes: []write{{OpAdd, a60(Row{"volume": 1.0})}, {OpAdd, Row{"timestamp": 60.0, "category": "b", "volume": 1.0}}, {OpAdd, a60(Row{"volume": 1.0})}},
			want:   []RowOp{{OpAdd, a60(Row{"volume": 2})}, {OpAdd, Row{"timestamp": 60, "category": "b", "volume": 1}}},
		},
		{
			name:   "OKInsertAdd",
			writes: []write{{OpInsert, a60(Row{"volume": 1.0, "note": "n"})}, {OpAdd, a60(Row{"volume": 2.0, "ratio": 0.25})}},
			want:   []RowOp{{OpInsert, a60(Row{"volume": 3, "note": "n", "ratio": 0.25})}},
		},
		{
			name:   "OKUpsertAddFolds",
			writes: []write{{OpUpsert, a60(Row{"volume": 5.0})}, {OpAdd, a60(Row{"volume": 2.0})}},
			want:   []RowOp{{OpUpsert, a60(Row{"volume": 7})}},
		},
		{
			// The upsert keeps the stored volume, so the add's delta applies
			// to a value the buffer does not know: two operations.
			name:   "OKUpsertAddMissingColumnNotFolded",
			writes: []write{{OpUpsert, a60(Row{"note": "n"})}, {OpAdd, a60(Row{"volume": 2.0})}},
			want:   []RowOp{{OpUpsert, a60(Row{"note": "n"})}, {OpAdd, a60(Row{"volume": 2})}},
		},
		{
			name:   "OKUpsertAddTextOnlyFolds",
			writes: []write{{OpUpsert, a60(Row{"volume": 1.0})}, {OpAdd, a60(Row{"note": "x"})}},
			want:   []RowOp{{OpUpsert, a60(Row{"volume": 1, "note": "x"})}},
		},
		{
			// The add's delta is relative to the stored row: the upsert must
			// come after it.
			name:   "OKAddUpsertKeepsOrder",
			writes: []write{{OpAdd, a60(Row{"volume": 1.0})}, {OpUpsert, a60(Row{"volume": 5.0})}},
			want:   []RowOp{{OpAdd, a60(Row{"volume": 1})}, {OpUpsert, a60(Row{"volume": 5})}},
		},
		{
			name:   "OKAddUpsertAddFoldsIntoUpsert",
			writes: []write{{OpAdd, a60(Row{"volume": 1.0})}, {OpUpsert, a60(Row{"volume": 5.0})}, {OpAdd, a60(Row{"volume": 2.0})}},
			want:   []RowOp{{OpAdd, a60(Row{"volume": 1})}, {OpUpsert, a60(Row{"volume": 7})}},
		},
		{
			name:   "OKUpsertUpsertMerges",
			writes: []write{{OpUpsert, a60(Row{"volume": 1.0, "note": "x"})}, {OpUpsert, a60(Row{"note": "y"})}},
			want:   []RowOp{{OpUpsert, a60(Row{"volume": 1, "note": "y"})}},
		},
		{
			name:   "OKInsertUpsertMerges",
			writes: []write{{OpInsert, a60(Row{"volume": 1.0, "note": "x"})}, {OpUpsert, a60(Row{"note": "y"})}},
			want:   []RowOp{{OpInsert, a60(Row{"volume": 1, "note": "y"})}},
		},
		{
			name:   "OKNullForNullableColumn",
			writes: []write{{OpUpsert, a60(Row{"volume": 1.0, "note": nil, "info": map[string]any{"a": []any{1.0}}})}},
			want:   []RowOp{{OpUpsert, a60(Row{"volume": 1, "note": nil, "info": map[string]any{"a": []any{1.0}}})}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newTestBuffer(nil)
			if err := apply(b, tt.writes); err != nil {
				t.Fatal(err)
			}
			if got, want := len(b.ops), len(tt.want); got != want {
				t.Fatalf("%d ops %v, want %d %v", got, b.ops, want, tt.want)
			}
			for i := range tt.want {
				got, want := b.ops[i], tt.want[i]
				if got.Kind != want.Kind || !reflect.DeepEqual(norm(got.Row), norm(want.Row)) {
					t.Errorf("op %d = %s %v, want %s %v", i, got.Kind, got.Row, want.Kind, want.Row)
				}
			}
		})
	}
}

func TestRowBufferCopiesRows(t *testing.T) {
	b := newTestBuffer(nil)
	r := Row{"timestamp": 60.0, "category": "a", "volume": 1.0}
	if err := b.Add(r); err != nil {
		t.Fatal(err)
	}
	r["volume"] = 100.0
	r["category"] = "b"
	if err := b.Add(Row{"timestamp": 60.0, "category": "a", "volume": 1.0}); err != nil {
		t.Fatal(err)
	}
	got, want := norm(b.ops[0].Row), norm(Row{"timestamp": 60.0, "category": "a", "volume": 2.0})
	if len(b.ops) != 1 || !reflect.DeepEqual(got, want) {
		t.Errorf("ops %v, want one add of %v", b.ops, want)
	}
}

func TestRowBufferReset(t *testing.T) {
	b := newTestBuffer(nil)
	if err := b.Insert(Row{"timestamp": 60.0, "category": "a", "volume": 1.0}); err != nil {
		t.Fatal(err)
	}
	b.reset()
	if got := len(b.ops); got != 0 {
		t.Fatalf("%d ops after reset", got)
	}
	// The key is free again: a second insert is a new batch's first.
	if err := b.Insert(Row{"timestamp": 60.0, "category": "a", "volume": 2.0}); err != nil {
		t.Fatalf("insert after reset: %v", err)
	}
	got, want := norm(b.ops[0].Row)["volume"], 2.0
	if len(b.ops) != 1 || got != want {
		t.Errorf("ops %v, want one insert with volume %v", b.ops, want)
	}
}

func TestRowBufferErrors(t *testing.T) {
	a60 := func(extra Row) Row {
		r := Row{"timestamp": 60.0, "category": "a", "volume": 1.0}
		for k, v := range extra {
			r[k] = v
		}
		return r
	}
	tests := []struct {
		name    string
		writes  []write
		wantErr []string // each must appear in the error
	}{
		{"ErrInsertTwice", []write{{OpInsert, a60(nil)}, {OpInsert, a60(nil)}}, []string{"already written", "upsert or add"}},
		{"ErrAddThenInsert", []write{{OpAdd, a60(nil)}, {OpInsert, a60(nil)}}, []string{"already written"}},
		{"ErrUpsertThenInsert", []write{{OpUpsert, a60(nil)}, {OpInsert, a60(nil)}}, []string{"already written"}},
		{"ErrIntegerGetsFraction", []write{{OpAdd, a60(Row{"volume": 1.5})}}, []string{`"volume"`, "integer", "1.5"}},
		{"ErrIntegerGetsString", []write{{OpAdd, a60(Row{"volume": "1"})}}, []string{`"volume"`, "not an integer"}},
		{"ErrIntegerTooLarge", []write{{OpAdd, a60(Row{"volume": math.Pow(2, 60)})}}, []string{`"volume"`, "not an integer"}},
		{"ErrIntegerInf", []write{{OpAdd, a60(Row{"volume": math.Inf(1)})}}, []string{`"volume"`}},
		{"ErrRealNaN", []write{{OpAdd, a60(Row{"ratio": math.NaN()})}}, []string{`"ratio"`, "finite"}},
		{"ErrRealGetsString", []write{{OpAdd, a60(Row{"ratio": "0.5"})}}, []string{`"ratio"`, "finite"}},
		{"ErrTextGetsNumber", []write{{OpUpsert, a60(Row{"note": 42.0})}}, []string{`"note"`, "text", "float64"}},
		{"ErrTextKeyGetsNumber", []write{{OpUpsert, Row{"timestamp": 60.0, "category": 7.0, "volume": 1.0}}}, []string{`"category"`, "text"}},
		{"ErrRealKeyGetsString", []write{{OpUpsert, Row{"timestamp": "60", "category": "a", "volume": 1.0}}}, []string{`"timestamp"`, "real"}},
		{"ErrUnknownColumn", []write{{OpAdd, a60(Row{"volumne": 1.0})}}, []string{`no column "volumne"`, "cat-1m"}},
		{"ErrMissingKeyColumn", []write{{OpAdd, Row{"timestamp": 60.0, "volume": 1.0}}}, []string{`key column "category" is missing`}},
		{"ErrNilKeyColumn", []write{{OpAdd, Row{"timestamp": nil, "category": "a", "volume": 1.0}}}, []string{`"timestamp"`, "NOT NULL"}},
		{"ErrNilNotNull", []write{{OpUpsert, a60(Row{"volume": nil})}}, []string{`"volume" is NOT NULL`}},
		{"ErrInsertMissingNotNull", []write{{OpInsert, Row{"timestamp": 60.0, "category": "a"}}}, []string{`"volume" is NOT NULL but missing`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newTestBuffer(nil)
			err := apply(b, tt.writes)
			if err == nil {
				t.Fatalf("no error; ops %v", b.ops)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q, want it to contain %q", err, w)
				}
			}
			// A refused write leaves nothing behind.
			if got, want := len(b.ops), len(tt.writes)-1; got != want {
				t.Errorf("%d ops buffered after the error, want %d", got, want)
			}
		})
	}
}

func TestRowBufferGet(t *testing.T) {
	committed := map[string]Row{
		"60/a": {"timestamp": 60.0, "category": "a", "volume": int64(10), "ratio": 1.5, "note": "old", "info": nil},
	}
	key := Row{"timestamp": 60.0, "category": "a"}
	tests := []struct {
		name   string
		key    Row
		writes []write
		want   Row
	}{
		{"OKCommittedOnly", key, nil, Row{"timestamp": 60, "category": "a", "volume": 10, "ratio": 1.5, "note": "old", "info": nil}},
		{"OKMissing", Row{"timestamp": 120.0, "category": "a"}, nil, nil},
		{
			"OKAddOverlaysCommitted", key,
			[]write{{OpAdd, Row{"timestamp": 60.0, "category": "a", "volume": 2.0, "ratio": 0.5}}},
			Row{"timestamp": 60, "category": "a", "volume": 12, "ratio": 2.0, "note": "old", "info": nil},
		},
		{
			"OKAddThenUpsert", key,
			[]write{
				{OpAdd, Row{"timestamp": 60.0, "category": "a", "volume": 2.0, "ratio": 0.5}},
				{OpUpsert, Row{"timestamp": 60.0, "category": "a", "volume": 1.0, "note": "new"}},
			},
			Row{"timestamp": 60, "category": "a", "volume": 1, "ratio": 2.0, "note": "new", "info": nil},
		},
		{
			"OKUpsertThenAdd", key,
			[]write{
				{OpUpsert, Row{"timestamp": 60.0, "category": "a", "note": "new"}},
				{OpAdd, Row{"timestamp": 60.0, "category": "a", "volume": 3.0}},
			},
			Row{"timestamp": 60, "category": "a", "volume": 13, "ratio": 1.5, "note": "new", "info": nil},
		},
		{
			"OKNewRowFromBufferOnly", Row{"timestamp": 120.0, "category": "a"},
			[]write{
				{OpAdd, Row{"timestamp": 120.0, "category": "a", "volume": 2.0}},
				{OpAdd, Row{"timestamp": 120.0, "category": "a", "volume": 2.0}},
			},
			Row{"timestamp": 120, "category": "a", "volume": 4},
		},
		{
			"OKOtherKeyUntouched", key,
			[]write{{OpAdd, Row{"timestamp": 60.0, "category": "b", "volume": 2.0}}},
			Row{"timestamp": 60, "category": "a", "volume": 10, "ratio": 1.5, "note": "old", "info": nil},
		},
		{
			"OKIntegerKey", Row{"timestamp": int64(60), "category": "a"},
			[]write{{OpAdd, Row{"timestamp": 60.0, "category": "a", "volume": 1.0}}},
			Row{"timestamp": 60, "category": "a", "volume": 11, "ratio": 1.5, "note": "old", "info": nil},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := &fakeRows{rows: committed}
			b := newTestBuffer(store)
			if err := apply(b, tt.writes); err != nil {
				t.Fatal(err)
			}
			row, err := b.Get(tt.key)
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			got, want := norm(row), norm(tt.want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Get(%v) = %v, want %v", tt.key, got, want)
			}
			// Reading twice gives the same row: Get applies the buffer to a
			// copy, not to what it read before.
			row2, err := b.Get(tt.key)
			if err != nil {
				t.Fatalf("second Get: %v", err)
			}
			if got2 := norm(row2); !reflect.DeepEqual(got2, want) {
				t.Errorf("second Get(%v) = %v, want %v", tt.key, got2, want)
			}
			if store.gets != 2 {
				t.Errorf("store read %d times, want 2", store.gets)
			}
		})
	}
}

func TestRowBufferGetErrors(t *testing.T) {
	tests := []struct {
		name    string
		key     Row
		wantErr string
	}{
		{"ErrNotKeyColumn", Row{"timestamp": 60.0, "category": "a", "volume": 1.0}, `"volume" is not a row key column`},
		{"ErrMissingKeyColumn", Row{"timestamp": 60.0}, `key column "category" is missing`},
		{"ErrWrongType", Row{"timestamp": 60.0, "category": 1.0}, `"category" (text)`},
		{"ErrUnknownColumn", Row{"timestamp": 60.0, "category": "a", "bogus": 1.0}, `"bogus" is not a row key column`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := &fakeRows{}
			b := newTestBuffer(store)
			row, err := b.Get(tt.key)
			if err == nil {
				t.Fatalf("Get(%v) = %v, want an error", tt.key, row)
			}
			if !strings.Contains(err.Error(), tt.wantErr) || !strings.HasPrefix(err.Error(), "get: ") {
				t.Errorf("error %q, want \"get: ...%s...\"", err, tt.wantErr)
			}
			if store.gets != 0 {
				t.Errorf("the store was read for an invalid key")
			}
		})
	}
}
