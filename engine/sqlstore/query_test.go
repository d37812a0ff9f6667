package sqlstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"reflect"
	"sort"
	"testing"
	"time"

	"statscache/engine"
	"statscache/engine/sqlstore"
	"statscache/schema"
)

// qrow is one row the tests write, in the shape Rows returns.
type qrow struct {
	ts    float64
	cat   string
	vol   int64
	ratio any // float64 or nil
	info  any // decoded JSON or nil
}

func (r qrow) values() []any { return []any{r.ts, r.cat, r.vol, r.ratio, r.info} }

func openDB(t *testing.T) *sqlstore.DB {
	t.Helper()
	ctx := context.Background()
	db, err := sqlstore.Open(ctx, filepath.Join(t.TempDir(), "stats.db"), sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func spec(ident string) *engine.ModelSpec {
	return &engine.ModelSpec{
		Ident:    ident,
		Name:     "Volume by category",
		Summary:  "messages per category",
		Interval: time.Hour,
		Table: schema.Table{
			Name: schema.TableName(ident),
			Columns: []schema.Column{
				{Name: "timestamp", Type: schema.Real, NotNull: true, Index: true},
				{Name: "category", Type: schema.Text},
				{Name: "volume", Type: schema.Integer},
				{Name: "ratio", Type: schema.Real},
				{Name: "info", Type: schema.JSON},
			},
			Key: []string{"timestamp", "category"},
		},
	}
}

// fixture registers a model and writes rows with ties on the timestamp, in
// an insertion order that differs from the expected sort order, so that an
// ORDER BY without the key tiebreaker would show.
func fixture(t *testing.T, db *sqlstore.DB, ident string) []qrow {
	t.Helper()
	ctx := context.Background()
	if _, err := db.Register(ctx, spec(ident)); err != nil {
		t.Fatal(err)
	}
	var rows []qrow
	for i := 0; i < 10; i++ {
		r := qrow{
			ts:  1439121600 + float64(i/3)*3600,
			cat: fmt.Sprintf("cat%d", 9-i%3),
			vol: int64(i),
		}
		if i%2 == 0 {
			r.ratio = float64(i) / 4
		}
		if i%3 == 0 {
			r.info = map[string]any{"n": float64(i), "tags": []any{"a", "b"}}
		}
		rows = append(rows, r)
	}
	var ops []engine.RowOp
	// Within a timestamp, categories are written in descending order, so
	// row ids run against the expected (key) order.
	for _, r := range rows {
		row := engine.Row{"timestamp": r.ts, "category": r.cat, "volume": r.vol}
		if r.ratio != nil {
			row["ratio"] = r.ratio
		}
		if r.info != nil {
			row["info"] = r.info
		}
		ops = append(ops, engine.RowOp{Kind: engine.OpAdd, Row: row})
	}
	commit(t, db, ident, ops, engine.Checkpoint{})
	sort.Slice(rows, func(i, j int) bool {
		if rows[i].ts != rows[j].ts {
			return rows[i].ts < rows[j].ts
		}
		return rows[i].cat < rows[j].cat
	})
	return rows
}

// commit writes one batch of a model, as the engine does.
func commit(t *testing.T, db *sqlstore.DB, ident string, ops []engine.RowOp, cp engine.Checkpoint) {
	t.Helper()
	ctx := context.Background()
	tx, err := db.Begin(ctx, ident)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Apply(ops); err != nil {
		tx.Rollback()
		t.Fatal(err)
	}
	if err := tx.Commit(cp); err != nil {
		t.Fatal(err)
	}
}

func f(v float64) *float64 { return &v }

func TestRows(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	all := fixture(t, db, "volume-by-category-1h")
	rev := make([]qrow, len(all))
	for i, r := range all {
		rev[len(all)-1-i] = r
	}
	between := func(rows []qrow, lo, hi float64) []qrow {
		var out []qrow
		for _, r := range rows {
			if r.ts >= lo && r.ts <= hi {
				out = append(out, r)
			}
		}
		return out
	}
	t1, t2 := 1439121600+3600.0, 1439121600+2*3600.0
	tests := []struct {
		name  string
		q     engine.RowQuery
		want  []qrow
		total int
	}{
		{"all asc", engine.RowQuery{}, all, 10},
		{"all desc", engine.RowQuery{Desc: true}, rev, 10},
		{"start", engine.RowQuery{Start: f(t1)}, between(all, t1, math.Inf(1)), 7},
		{"stop", engine.RowQuery{Stop: f(t1)}, between(all, 0, t1), 6},
		{"start and stop", engine.RowQuery{Start: f(t1), Stop: f(t2)}, between(all, t1, t2), 6},
		{"start equals stop", engine.RowQuery{Start: f(t2), Stop: f(t2)}, between(all, t2, t2), 3},
		{"empty range", engine.RowQuery{Start: f(t1 + 1), Stop: f(t2 - 1)}, nil, 0},
		{"page", engine.RowQuery{Offset: 2, Count: 3}, all[2:5], 10},
		{"page desc", engine.RowQuery{Desc: true, Offset: 2, Count: 3}, rev[2:5], 10},
		{"limit", engine.RowQuery{Limit: 4}, all[:4], 4},
		{"limit then page", engine.RowQuery{Limit: 4, Offset: 3, Count: 3}, all[3:4], 4},
		{"limit desc", engine.RowQuery{Desc: true, Limit: 4, Count: 2, Offset: 2}, rev[2:4], 4},
		{"limit above count", engine.RowQuery{Limit: 50}, all, 10},
		{"offset past the end", engine.RowQuery{Offset: 10, Count: 5}, nil, 10},
		{"offset past the limit", engine.RowQuery{Limit: 3, Offset: 3}, nil, 3},
		{"huge offset", engine.RowQuery{Offset: math.MaxInt, Count: 100}, nil, 10},
		{"filter limit page", engine.RowQuery{Start: f(t1), Desc: true, Limit: 5, Offset: 4, Count: 2}, reverse(between(all, t1, math.Inf(1)))[4:5], 5},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			page, err := db.Rows(ctx, "volume-by-category-1h", tc.q)
			if err != nil {
				t.Fatal(err)
			}
			if want := []string{"timestamp", "category", "volume", "ratio", "info"}; !reflect.DeepEqual(page.Columns, want) {
				t.Errorf("columns = %v, want %v", page.Columns, want)
			}
			if want := []schema.Type{schema.Real, schema.Text, schema.Integer, schema.Real, schema.JSON}; !reflect.DeepEqual(page.Types, want) {
				t.Errorf("types = %v, want %v", page.Types, want)
			}
			if page.Total != tc.total {
				t.Errorf("total = %d, want %d", page.Total, tc.total)
			}
			want := [][]any{}
			for _, r := range tc.want {
				want = append(want, r.values())
			}
			if !reflect.DeepEqual(page.Rows, want) {
				t.Errorf("rows:\n got %v\nwant %v", page.Rows, want)
			}
		})
	}
}

func reverse(rows []qrow) []qrow {
	out := make([]qrow, len(rows))
	for i, r := range rows {
		out[len(rows)-1-i] = r
	}
	return out
}

func TestRowsTypes(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	fixture(t, db, "m")
	page, err := db.Rows(ctx, "m", engine.RowQuery{Offset: 2, Count: 1})
	if err != nil {
		t.Fatal(err)
	}
	row := page.Rows[0]
	for i, want := range []string{"float64", "string", "int64", "float64", "map[string]interface {}"} {
		if got := fmt.Sprintf("%T", row[i]); got != want {
			t.Errorf("%s: type %s, want %s", page.Columns[i], got, want)
		}
	}
	page, err = db.Rows(ctx, "m", engine.RowQuery{Offset: 1, Count: 1})
	if err != nil {
		t.Fatal(err)
	}
	if row := page.Rows[0]; row[3] != nil || row[4] != nil {
		t.Errorf("NULL columns came back as %v, %v; want nil", row[3], row[4])
	}
}

func TestRowsErrors(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	fixture(t, db, "m")
	if _, err := db.Rows(ctx, "nope", engine.RowQuery{}); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("unknown model: err = %v, want ErrNotFound", err)
	}
	for _, q := range []engine.RowQuery{
		{Start: f(math.NaN())},
		{Stop: f(math.Inf(1))},
		{Limit: -1},
		{Offset: -1},
	} {
		if _, err := db.Rows(ctx, "m", q); err == nil || errors.Is(err, engine.ErrNotFound) {
			t.Errorf("query %+v: err = %v, want a validation error", q, err)
		}
	}
}

func TestEmptyTable(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	if _, err := db.Register(ctx, spec("empty")); err != nil {
		t.Fatal(err)
	}
	page, err := db.Rows(ctx, "empty", engine.RowQuery{Desc: true, Count: 10})
	if err != nil {
		t.Fatal(err)
	}
	if page.Total != 0 || page.Rows == nil || len(page.Rows) != 0 {
		t.Errorf("empty table: total %d, rows %#v; want 0 and an empty non-nil slice", page.Total, page.Rows)
	}
}

func msg(id string, timeUS int64) *engine.Message {
	return &engine.Message{ID: id, Key: engine.DedupeKey(id), Topic: "org.fedoraproject.prod.buildsys.tag", TimeUS: timeUS, Raw: []byte(`{}`)}
}

func TestModelInfo(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	for _, id := range []string{"zeta", "alpha", "mid"} {
		if _, err := db.Register(ctx, spec(id)); err != nil {
			t.Fatal(err)
		}
	}

	// Empty journal: no lag, whatever the cursor.
	info, err := db.ModelInfo(ctx, "alpha")
	if err != nil {
		t.Fatal(err)
	}
	if info.LagSeconds != 0 || info.LastError != nil || info.Status.Status != "ok" || info.Spec.Interval != time.Hour {
		t.Errorf("fresh model: %+v", info)
	}

	base := int64(1439121600) * 1e6
	if _, err := db.Append(ctx, []*engine.Message{msg("2015-a", base), msg("2015-b", base+10e6), msg("2015-c", base+25_500_000)}); err != nil {
		t.Fatal(err)
	}
	commit(t, db, "alpha", nil, engine.Checkpoint{
		Cursor: engine.Position{TimeUS: base + 10e6, Key: "b"}, CursorID: "2015-b", Processed: 2,
		Errors: []engine.ModelError{
			{MsgID: "2015-a", TimeUS: base, Err: "first", Traceback: "tb1"},
			{MsgID: "2015-b", TimeUS: base + 10e6, Err: "second", Traceback: "tb2"},
		},
	})

	info, err = db.ModelInfo(ctx, "alpha")
	if err != nil {
		t.Fatal(err)
	}
	if info.LagSeconds != 15.5 {
		t.Errorf("lag = %v, want 15.5", info.LagSeconds)
	}
	if info.Status.CursorID != "2015-b" || info.Status.Processed != 2 || info.Status.Errors != 2 {
		t.Errorf("status = %+v", info.Status)
	}
	if e := info.LastError; e == nil || e.MsgID != "2015-b" || e.Err != "second" || e.TimeUS != base+10e6 || info.LastErrorAt.IsZero() {
		t.Errorf("last error = %+v at %v, want the second error", e, info.LastErrorAt)
	}

	// A model that processed nothing trails the whole journal.
	info, err = db.ModelInfo(ctx, "zeta")
	if err != nil {
		t.Fatal(err)
	}
	if info.LagSeconds != 25.5 || info.LastError != nil {
		t.Errorf("zeta: lag %v, last error %+v; want 25.5 and nil", info.LagSeconds, info.LastError)
	}

	if _, err := db.ModelInfo(ctx, "nope"); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("unknown model: err = %v, want ErrNotFound", err)
	}

	list, err := db.ListModels(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var idents []string
	for _, m := range list {
		idents = append(idents, m.Spec.Ident)
		if m.Spec.Ident == "alpha" && (m.LagSeconds != 15.5 || m.LastError == nil || m.LastError.Err != "second") {
			t.Errorf("alpha in list: %+v", m)
		}
		if m.Spec.Ident == "mid" && (m.LagSeconds != 25.5 || m.LastError != nil) {
			t.Errorf("mid in list: %+v", m)
		}
	}
	if want := []string{"alpha", "mid", "zeta"}; !reflect.DeepEqual(idents, want) {
		t.Errorf("idents = %v, want %v", idents, want)
	}
	if b, _ := json.Marshal(list[0].Spec.Table); len(b) == 0 || list[0].Spec.Table.Name != "model_alpha" {
		t.Errorf("spec table = %s", b)
	}
}

func TestListModelsEmpty(t *testing.T) {
	list, err := openDB(t).ListModels(context.Background())
	if err != nil || len(list) != 0 {
		t.Errorf("ListModels on an empty database = %v, %v", list, err)
	}
}

// TestDeepPages compares pages found the cheap ways (a deep offset from
// the nearer end of the range, a page after a known row, a range fixed by
// End) with the same rows sliced from one full read.
func TestDeepPages(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	const id = "deep"
	if _, err := db.Register(ctx, spec(id)); err != nil {
		t.Fatal(err)
	}
	var ops []engine.RowOp
	for i := 0; i < 1500; i++ {
		ops = append(ops, engine.RowOp{Kind: engine.OpUpsert, Row: engine.Row{
			"timestamp": 1439121600 + float64(i/3), "category": fmt.Sprintf("c%d", 2-i%3), "volume": int64(i)}})
	}
	commit(t, db, id, ops, engine.Checkpoint{})
	first, err := db.Rows(ctx, id, engine.RowQuery{Desc: true, Count: 1})
	if err != nil {
		t.Fatal(err)
	}
	end := first.End
	if end != 1500 {
		t.Fatalf("End = %d, want the newest row id 1500", end)
	}
	// Rows committed after the listing began are outside End.
	commit(t, db, id, []engine.RowOp{{Kind: engine.OpUpsert, Row: engine.Row{"timestamp": 1439121600.0, "category": "c9", "volume": int64(1)}},
		{Kind: engine.OpUpsert, Row: engine.Row{"timestamp": 1e10, "category": "c0", "volume": int64(1)}}}, engine.Checkpoint{})

	for _, desc := range []bool{true, false} {
		for _, limit := range []int{0, 1200} {
			for _, start := range []*float64{nil, f(1439121700)} {
				base := engine.RowQuery{Desc: desc, Limit: limit, Start: start, End: end}
				all, err := db.Rows(ctx, id, base)
				if err != nil {
					t.Fatal(err)
				}
				if len(all.Rows) != all.Total {
					t.Fatalf("full read: %d rows, Total %d", len(all.Rows), all.Total)
				}
				for _, off := range []int{0, 499, 500, 501, 750, 1000, all.Total - 7, all.Total - 1} {
					q := base
					q.Offset, q.Count = off, 7
					got, err := db.Rows(ctx, id, q)
					if err != nil {
						t.Fatal(err)
					}
					want := all.Rows[off:min(off+7, len(all.Rows))]
					name := fmt.Sprintf("desc=%v limit=%d start=%v offset=%d", desc, limit, start != nil, off)
					if got.Total != all.Total || !reflect.DeepEqual(got.Rows, want) {
						t.Errorf("%s: Total %d (want %d), rows %v, want %v", name, got.Total, all.Total, got.Rows, want)
					}
					if off+7 >= len(all.Rows) {
						continue
					}
					// The next page after this one's last row.
					q.Offset, q.After = off+7, got.Last
					next, err := db.Rows(ctx, id, q)
					if err != nil {
						t.Fatal(err)
					}
					if want := all.Rows[off+7 : min(off+14, len(all.Rows))]; !reflect.DeepEqual(next.Rows, want) {
						t.Errorf("%s: page after %v: %v, want %v", name, got.Last, next.Rows, want)
					}
				}
			}
		}
	}
	var ke *engine.KeyError
	if _, err := db.Rows(ctx, id, engine.RowQuery{After: []any{"x", "c1"}}); !errors.As(err, &ke) || ke.Field != "After" {
		t.Errorf("After of the wrong type: %v, want a KeyError", err)
	}
}
