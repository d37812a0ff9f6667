package storetest

import (
	"errors"
	"fmt"
	"reflect"
	"testing"

	"statscache/engine"
	"statscache/schema"
)

func spec(ident string) *engine.ModelSpec {
	return &engine.ModelSpec{Ident: ident, Name: ident, Table: schema.Table{
		Name: schema.TableName(ident),
		Columns: []schema.Column{
			{Name: "timestamp", Type: schema.Real, NotNull: true, Index: true},
			{Name: "category", Type: schema.Text},
			{Name: "references", Type: schema.Integer}, // a reserved word
			{Name: "share", Type: schema.Real},
			{Name: "detail", Type: schema.JSON},
		},
		Key: []string{"timestamp", "category"},
	}}
}

func register(t *testing.T, db store, ident string) {
	t.Helper()
	if _, err := db.Register(t.Context(), spec(ident)); err != nil {
		t.Fatal(err)
	}
}

// commit writes one batch and commits it.
func commit(t *testing.T, db store, ident string, ops []engine.RowOp, state map[string]*string, cp engine.Checkpoint) {
	t.Helper()
	tx, err := db.Begin(t.Context(), ident)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Apply(ops); err != nil {
		tx.Rollback()
		t.Fatal(err)
	}
	for k, v := range state {
		if err := tx.PutState(k, v); err != nil {
			tx.Rollback()
			t.Fatal(err)
		}
	}
	if err := tx.Commit(cp); err != nil {
		t.Fatal(err)
	}
}

func row(ts float64, cat string, refs int64) engine.Row {
	return engine.Row{"timestamp": ts, "category": cat, "references": refs, "share": 0.5, "detail": map[string]any{"cat": cat, "n": float64(refs)}}
}

func str(s string) *string { return &s }

// TestModelCommit: rows (insert, upsert, add), state, errors, the work
// queue and the cursor of one batch commit together, and read back.
func TestModelCommit(t *testing.T) {
	each(t, func(t *testing.T, db store) {
		ctx := t.Context()
		register(t, db, "m")
		ops := []engine.RowOp{
			{Kind: engine.OpInsert, Row: row(60, "a", 1)},
			{Kind: engine.OpAdd, Row: row(60, "b", 2)},
			{Kind: engine.OpUpsert, Row: row(120, "a", 3)},
		}
		cp := engine.Checkpoint{Cursor: engine.Position{TimeUS: 10, Key: "k"}, CursorID: "2024-k", Processed: 3,
			Errors:  []engine.ModelError{{MsgID: "k", TimeUS: 10, Err: "boom", Traceback: "tb"}},
			Work:    []engine.WorkItem{{Seq: 1, Item: []byte(`{"a":1}`)}, {Seq: 2, Item: []byte(`{"a":2}`)}},
			WorkSeq: 2}
		commit(t, db, "m", ops, map[string]*string{"s": str("v1")}, cp)
		commit(t, db, "m", []engine.RowOp{{Kind: engine.OpAdd, Row: row(60, "b", 40)}, {Kind: engine.OpUpsert, Row: row(120, "a", 7)}},
			map[string]*string{"s": nil, "t": str("v2")},
			engine.Checkpoint{Cursor: engine.Position{TimeUS: 20, Key: "l"}, CursorID: "l", Processed: 2, WorkSeq: 2, WorkDone: 1})
		r, err := db.GetRow(ctx, "m", engine.Row{"timestamp": 60.0, "category": "b"})
		if err != nil {
			t.Fatal(err)
		}
		if r["references"] != int64(42) || r["share"] != 1.0 {
			t.Errorf("added row %v, want references 42, share 1", r)
		}
		if d, _ := r["detail"].(map[string]any); d["cat"] != "b" {
			t.Errorf("json column read back as %#v", r["detail"])
		}
		r, _ = db.GetRow(ctx, "m", engine.Row{"timestamp": 120.0, "category": "a"})
		if r["references"] != int64(7) {
			t.Errorf("upserted row %v, want references 7", r)
		}
		if r, _ := db.GetRow(ctx, "m", engine.Row{"timestamp": 1.0, "category": "none"}); r != nil {
			t.Errorf("missing row read as %v", r)
		}
		if _, ok, _ := db.LoadState(ctx, "m", "s"); ok {
			t.Error("deleted state still there")
		}
		if v, ok, _ := db.LoadState(ctx, "m", "t"); !ok || v != "v2" {
			t.Errorf("state t = %q %v", v, ok)
		}
		items, last, err := db.PendingWork(ctx, "m")
		if err != nil || last != 2 || len(items) != 1 || items[0].Seq != 2 || string(items[0].Item) != `{"a":2}` {
			t.Errorf("pending work %v last %d err %v", items, last, err)
		}
		info, err := db.ModelInfo(ctx, "m")
		if err != nil {
			t.Fatal(err)
		}
		st := info.Status
		if st.Cursor != (engine.Position{TimeUS: 20, Key: "l"}) || st.CursorID != "l" || st.Processed != 5 || st.Errors != 1 || info.Queued != 1 {
			t.Errorf("status %+v queued %d", st, info.Queued)
		}
		if info.LastError == nil || info.LastError.Err != "boom" {
			t.Errorf("last error %+v", info.LastError)
		}
		if n, _ := db.CountRows(ctx, "m"); n != 3 {
			t.Errorf("%d rows counted, want 3", n)
		}
	})
}

// TestModelRollback: a batch that fails (a duplicate insert: the script's
// mistake) or is rolled back leaves nothing of itself: rows, state, queue
// and cursor are those of the last commit.
func TestModelRollback(t *testing.T) {
	each(t, func(t *testing.T, db store) {
		ctx := t.Context()
		register(t, db, "m")
		commit(t, db, "m", []engine.RowOp{{Kind: engine.OpInsert, Row: row(60, "a", 1)}}, map[string]*string{"s": str("1")},
			engine.Checkpoint{Cursor: engine.Position{TimeUS: 1, Key: "a"}, Processed: 1})
		tx, err := db.Begin(ctx, "m")
		if err != nil {
			t.Fatal(err)
		}
		if err := tx.Apply([]engine.RowOp{{Kind: engine.OpUpsert, Row: row(60, "z", 9)}}); err != nil {
			t.Fatal(err)
		}
		if err := tx.PutState("s", str("2")); err != nil {
			t.Fatal(err)
		}
		err = tx.Apply([]engine.RowOp{{Kind: engine.OpInsert, Row: row(60, "a", 5)}})
		if !errors.Is(err, engine.ErrRowConflict) {
			t.Errorf("duplicate insert: %v, want ErrRowConflict", err)
		}
		if err := tx.Rollback(); err != nil {
			t.Fatal(err)
		}
		tx, err = db.Begin(ctx, "m")
		if err != nil {
			t.Fatal(err)
		}
		if err := tx.Apply([]engine.RowOp{{Kind: engine.OpUpsert, Row: row(60, "y", 9)}}); err != nil {
			t.Fatal(err)
		}
		tx.Rollback()
		if r, _ := db.GetRow(ctx, "m", engine.Row{"timestamp": 60.0, "category": "z"}); r != nil {
			t.Errorf("row of a failed batch committed: %v", r)
		}
		if v, _, _ := db.LoadState(ctx, "m", "s"); v != "1" {
			t.Errorf("state of a failed batch committed: %q", v)
		}
		info, _ := db.ModelInfo(ctx, "m")
		if info.Status.Processed != 1 || info.Status.Cursor.Key != "a" {
			t.Errorf("status after rollbacks %+v", info.Status)
		}
		if n, _ := db.CountRows(ctx, "m"); n != 1 {
			t.Errorf("%d rows counted, want 1", n)
		}
		// A changed table is refused, the same one accepted again.
		changed := spec("m")
		changed.Table.Columns = changed.Table.Columns[:3]
		if _, err := db.Register(ctx, changed); !errors.Is(err, engine.ErrTableChanged) {
			t.Errorf("changed table: %v, want ErrTableChanged", err)
		}
		register(t, db, "m")
	})
}

// TestPromote: a rebuilt table replaces the model's old one with its
// cursor, state and rows; the old table is gone.
func TestPromote(t *testing.T) {
	each(t, func(t *testing.T, db store) {
		ctx := t.Context()
		register(t, db, "m")
		commit(t, db, "m", []engine.RowOp{{Kind: engine.OpInsert, Row: row(60, "old", 1)}}, map[string]*string{"s": str("old")},
			engine.Checkpoint{Cursor: engine.Position{TimeUS: 1, Key: "a"}, Processed: 1})
		shadow := "m" + engine.ShadowSep + "2"
		sp := spec(shadow)
		sp.Table.Name = schema.TableName("m_2")
		if _, err := db.Register(ctx, sp); err != nil {
			t.Fatal(err)
		}
		commit(t, db, shadow, []engine.RowOp{{Kind: engine.OpInsert, Row: row(60, "new", 2)}, {Kind: engine.OpInsert, Row: row(120, "new", 3)}},
			map[string]*string{"s": str("new")}, engine.Checkpoint{Cursor: engine.Position{TimeUS: 9, Key: "z"}, Processed: 7})
		models, err := db.ListModels(ctx)
		if err != nil || len(models) != 1 {
			t.Fatalf("models before promote: %d, %v (the shadow must not be listed)", len(models), err)
		}
		if err := db.Promote(ctx, shadow, "m", nil); err != nil {
			t.Fatal(err)
		}
		info, err := db.ModelInfo(ctx, "m")
		if err != nil {
			t.Fatal(err)
		}
		if info.Status.Processed != 7 || info.Status.Cursor.Key != "z" || info.Spec.Table.Name != sp.Table.Name {
			t.Errorf("promoted model %+v table %s", info.Status, info.Spec.Table.Name)
		}
		if v, _, _ := db.LoadState(ctx, "m", "s"); v != "new" {
			t.Errorf("state %q, want the shadow's", v)
		}
		page, err := db.Rows(ctx, "m", engine.RowQuery{})
		if err != nil || page.Total != 2 {
			t.Errorf("promoted rows: total %d, %v", page.Total, err)
		}
		if _, err := db.ModelInfo(ctx, shadow); !errors.Is(err, engine.ErrNotFound) {
			t.Errorf("shadow still found: %v", err)
		}
	})
}

// TestPaging: every way of paging a table (offsets shallow and deep, after
// a row, newest first, a time range, a limit, a fixed End) gives the same
// pages on both stores, and pages by After cover the table exactly once.
func TestPaging(t *testing.T) {
	cats := []string{"a", "B", "b", "é", "z"}
	queries := []engine.RowQuery{
		{Count: 50},
		{Count: 50, Offset: 100},
		{Count: 50, Offset: 700},
		{Count: 50, Offset: 1100, Desc: true},
		{Count: 20, Offset: 600, Limit: 900},
		{Count: 30, Desc: true, After: []any{float64(60 * 100), "b"}},
		{Count: 40, Start: ptr(6000), Stop: ptr(9000), Limit: 100},
		{Count: 40, Start: ptr(6000), Offset: 510},
		{End: 5, Count: 100},
	}
	got := both(t, func(t *testing.T, db store) []string {
		ctx := t.Context()
		register(t, db, "p")
		var ops []engine.RowOp
		for i := 0; i < 1250; i++ {
			ops = append(ops, engine.RowOp{Kind: engine.OpAdd, Row: row(float64(60*(i/5)), cats[i%5], int64(i))})
		}
		commit(t, db, "p", ops, nil, engine.Checkpoint{Cursor: engine.Position{TimeUS: 1, Key: "a"}})
		var out []string
		for _, q := range queries {
			page, err := db.Rows(ctx, "p", q)
			if err != nil {
				t.Fatalf("%+v: %v", q, err)
			}
			out = append(out, fmt.Sprintf("%+v -> total %d end>0 %v last %v rows %v", q, page.Total, page.End > 0, page.Last, page.Rows))
		}
		// Pages by After cover every row once, in order.
		seen := 0
		var after []any
		for {
			page, err := db.Rows(ctx, "p", engine.RowQuery{Count: 97, After: after})
			if err != nil {
				t.Fatal(err)
			}
			seen += len(page.Rows)
			if len(page.Rows) < 97 {
				break
			}
			after = page.Last
		}
		if seen != 1250 {
			t.Errorf("pages after a row gave %d rows, want 1250", seen)
		}
		return out
	})
	if a, b := got["sqlite"], got["postgres"]; a != nil && b != nil && !reflect.DeepEqual(a, b) {
		for i := range a {
			if a[i] != b[i] {
				t.Errorf("query %d differs:\nsqlite   %.600s\npostgres %.600s", i, a[i], b[i])
			}
		}
	}
}

func ptr(f float64) *float64 { return &f }

// TestListState: a model's whole committed state in one read, its own keys
// only (another model's and an uncommitted batch's are not in it), and
// false past the limit.
func TestListState(t *testing.T) {
	each(t, func(t *testing.T, db store) {
		ctx := t.Context()
		sl, ok := db.(engine.StateLister)
		if !ok {
			t.Fatal("the store does not read a model's whole state")
		}
		register(t, db, "m")
		register(t, db, "other")
		commit(t, db, "m", nil, map[string]*string{"a": str("1"), "b": str(`{"x":[2]}`), "c": str("3")},
			engine.Checkpoint{Cursor: engine.Position{TimeUS: 10, Key: "k"}})
		commit(t, db, "m", nil, map[string]*string{"c": nil, "d": str(`"4"`)},
			engine.Checkpoint{Cursor: engine.Position{TimeUS: 20, Key: "l"}, From: engine.Position{TimeUS: 10, Key: "k"}})
		commit(t, db, "other", nil, map[string]*string{"z": str("9")}, engine.Checkpoint{Cursor: engine.Position{TimeUS: 10, Key: "k"}})
		tx, err := db.Begin(ctx, "m")
		if err != nil {
			t.Fatal(err)
		}
		if err := tx.PutState("e", str("uncommitted")); err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback()
		want := map[string]string{"a": "1", "b": `{"x":[2]}`, "d": `"4"`}
		for _, limit := range []int{3, 100} {
			got, ok, err := sl.ListState(ctx, "m", limit)
			if err != nil || !ok || !reflect.DeepEqual(got, want) {
				t.Errorf("limit %d: %v %v %v, want %v", limit, got, ok, err, want)
			}
		}
		if got, ok, err := sl.ListState(ctx, "m", 2); err != nil || ok {
			t.Errorf("limit 2 of 3 keys: %v %v %v, want not ok", got, ok, err)
		}
		if got, ok, err := sl.ListState(ctx, "none", 5); err != nil || !ok || len(got) != 0 {
			t.Errorf("a model without state: %v %v %v", got, ok, err)
		}
	})
}
