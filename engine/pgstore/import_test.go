package pgstore_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"statscache/engine"
	"statscache/engine/pgstore"
	"statscache/engine/pgstore/pgtest"
	"statscache/engine/sqlstore"
	"statscache/engine/storemove"
	"statscache/schema"
)

// moveSpec declares a table with every column type.
func moveSpec(ident string) *engine.ModelSpec {
	return &engine.ModelSpec{Ident: ident, Name: ident, Table: schema.Table{
		Name: schema.TableName(ident),
		Columns: []schema.Column{
			{Name: "timestamp", Type: schema.Real, NotNull: true, Index: true},
			{Name: "who", Type: schema.Text},
			{Name: "n", Type: schema.Integer},
			{Name: "share", Type: schema.Real},
			{Name: "extra", Type: schema.JSON},
		},
		Key: []string{"timestamp", "who"},
	}}
}

func commit(t *testing.T, db engine.ModelStore, ident string, ops []engine.RowOp, state map[string]string, cp engine.Checkpoint) {
	t.Helper()
	tx, err := db.Begin(t.Context(), ident)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Apply(ops); err != nil {
		t.Fatal(err)
	}
	for k, v := range state {
		if err := tx.PutState(k, &v); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(cp); err != nil {
		t.Fatal(err)
	}
}

// sourceDB builds a SQLite database holding one of everything a move
// copies: compressed and late journal records, spans, settings, two models
// (rows of every type, state, errors, a work queue with items delivered
// and pending, a failed status), rejects of two origins (one reason with a
// NUL, which PostgreSQL cannot keep as text).
func sourceDB(t *testing.T) *sqlstore.DB {
	ctx := t.Context()
	db, err := sqlstore.Open(ctx, filepath.Join(t.TempDir(), "src.db"), sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	var msgs []*engine.Message
	for i := 0; i < 150; i++ {
		key := fmt.Sprintf("%08d-0000-4000-8000-000000000000", i)
		msgs = append(msgs, &engine.Message{TimeUS: int64(1_000_000 + i*500_000), Key: key, ID: "2015-" + key,
			Topic: fmt.Sprintf("org.fedoraproject.prod.t%d", i%3), Raw: []byte(fmt.Sprintf(`{"i": %d, "body": %q}`, i, strings.Repeat("abc", i)))})
	}
	if _, err := db.AppendSpan(ctx, msgs[:100], engine.Span{FromUS: 0, ToUS: msgs[99].TimeUS + 1}); err != nil {
		t.Fatal(err)
	}
	for _, ident := range []string{"people-1h", "queue-1h"} {
		if _, err := db.Register(ctx, moveSpec(ident)); err != nil {
			t.Fatal(err)
		}
	}
	row := func(ts float64, who string, n int64) engine.RowOp {
		return engine.RowOp{Kind: engine.OpAdd, Row: engine.Row{"timestamp": ts, "who": who, "n": n, "share": float64(n) / 3,
			"extra": map[string]any{"z": []any{1.0, "two", nil}, "a": who}}}
	}
	at := func(i int) engine.Position { return msgs[i].Pos() }
	commit(t, db, "people-1h", []engine.RowOp{row(3600, "ann", 2), row(3600, "bob", 1), row(7200, "ann", 5)},
		map[string]string{"ann": `{"first": 3600}`, "bob": `1`},
		engine.Checkpoint{Cursor: at(79), CursorID: msgs[79].ID, Processed: 80, Errors: []engine.ModelError{
			{MsgID: msgs[3].ID, TimeUS: msgs[3].TimeUS, Err: "boom", Traceback: "at line 1"},
			{MsgID: msgs[7].ID, TimeUS: msgs[7].TimeUS, Err: "boom again", Traceback: "at line 2"}}})
	commit(t, db, "people-1h", []engine.RowOp{row(7200, "ann", 1), row(7200, "cyd", 1)}, nil,
		engine.Checkpoint{Cursor: at(89), CursorID: msgs[89].ID, Processed: 10})
	commit(t, db, "queue-1h", []engine.RowOp{row(3600, "q", 1)}, nil, engine.Checkpoint{Cursor: at(49), CursorID: msgs[49].ID, Processed: 50,
		Work: []engine.WorkItem{{Seq: 1, Item: []byte(`{"build": 1}`)}, {Seq: 2, Item: []byte(`{"build": 2}`)}, {Seq: 3, Item: []byte(`{"build": 3}`)}}, WorkSeq: 3})
	commit(t, db, "queue-1h", nil, nil, engine.Checkpoint{Cursor: at(59), CursorID: msgs[59].ID, Processed: 10, WorkDone: 1, WorkSeq: 3})
	if err := db.SetStatus(ctx, "queue-1h", "failed", "update failed three times", nil); err != nil {
		t.Fatal(err)
	}
	// The rest of the journal: some behind the cursors (late).
	late := &engine.Message{TimeUS: msgs[10].TimeUS + 1, Key: "late-one", ID: "late-one", Topic: "org.fedoraproject.prod.t0", Raw: []byte(`{"late": true}`)}
	if r, err := db.Append(ctx, append(msgs[100:], late)); err != nil || r.Late != 1 {
		t.Fatalf("append: %+v %v; want one late", r, err)
	}
	if err := db.AddRejects(ctx, []engine.Reject{{Source: "a.jsonl:3", Reason: "not JSON", Record: []byte("{x")},
		{Source: "a.jsonl:9", Reason: "bad\x00byte", Record: []byte{0xff, 0}}, {Source: "datagrepper", Reason: "no id", Record: []byte(`{}`)}}); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{"default_epoch": "1000", "amqp.queue": "q-123"} {
		if err := db.PutSetting(ctx, k, v); err != nil {
			t.Fatal(err)
		}
	}
	return db
}

// reader is what the test compares of both stores.
type reader interface {
	engine.Journal
	engine.ModelStore
	engine.SpanJournal
	engine.Settings
	ListModels(ctx context.Context) ([]engine.ModelInfo, error)
	Rows(ctx context.Context, ident string, q engine.RowQuery) (engine.RowPage, error)
	JournalStats(ctx context.Context) (engine.JournalStats, error)
	RejectTotals(ctx context.Context) (map[string]int64, error)
}

// contents reads everything a move must carry over, as the engine and the
// API see it.
// volatile zeroes the wall-clock times of commits.
func contents(t *testing.T, db reader, volatile bool) string {
	ctx := t.Context()
	var b strings.Builder
	msgs, err := db.Scan(ctx, engine.Position{}, 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		raw, err := m.Record()
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "journal %d %s %s %s %s\n", m.TimeUS, m.Key, m.ID, m.Topic, raw)
	}
	st, err := db.JournalStats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	spans, err := db.CompleteSpans(ctx)
	if err != nil {
		t.Fatal(err)
	}
	totals, err := db.RejectTotals(ctx)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(&b, "stats %+v\nspans %v\nreject totals %v\n", st, spans, totals)
	for _, k := range []string{"default_epoch", "amqp.queue"} {
		v, ok, err := db.Setting(ctx, k)
		fmt.Fprintf(&b, "setting %s %q %v %v\n", k, v, ok, err)
	}
	infos, err := db.ListModels(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, info := range infos {
		if volatile {
			info.Status.UpdatedAt, info.LastErrorAt = time.Time{}, time.Time{}
		}
		if e := info.LastError; e != nil {
			fmt.Fprintf(&b, "last error %+v\n", *e)
			info.LastError = nil
		}
		fmt.Fprintf(&b, "model %+v\n", info)
		page, err := db.Rows(ctx, info.Spec.Ident, engine.RowQuery{})
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "rows %+v\n", page)
		items, last, err := db.PendingWork(ctx, info.Spec.Ident)
		fmt.Fprintf(&b, "work %d %v\n", last, err)
		for _, it := range items {
			fmt.Fprintf(&b, "  item %d %s\n", it.Seq, it.Item)
		}
		for _, k := range []string{"ann", "bob", "cyd"} {
			v, ok, err := db.LoadState(ctx, info.Spec.Ident, k)
			fmt.Fprintf(&b, "state %s %q %v %v\n", k, v, ok, err)
		}
	}
	return b.String()
}

// TestMoveCopiesEverything moves a database holding one of everything
// into PostgreSQL and reads both the same way; the moved database then
// takes commits, rejects and appends as one that was written directly.
func TestMoveCopiesEverything(t *testing.T) {
	ctx := t.Context()
	src, snap, dst := moveFixture(t)
	sum, err := storemove.Move(ctx, snap, dst, storemove.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Messages != 151 || sum.Models != 2 || sum.ModelRows != 5 {
		t.Errorf("summary %+v: want 151 messages, 2 models, 5 rows", sum)
	}
	want, got := contents(t, src, false), contents(t, dst, false)
	if got != want {
		t.Fatalf("moved database differs:\n%s", lineDiff(want, got))
	}
	for _, s := range []string{"late-one", "Late:1", `item 3 {"build": 3}`, "boom again", "update failed three times",
		`default_epoch "1000"`, "datagrepper:1", "a.jsonl:2", "[7200 ann 6 2 map[a:ann z:[1 two <nil>]]]"} {
		if !strings.Contains(want, s) {
			t.Errorf("the compared contents lack %q: the test does not see it", s)
		}
	}

	// Both go on alike once the models are registered again (as a daemon
	// starting does): a commit with an error, rejects, an append.
	for _, db := range []reader{src, dst} {
		for _, ident := range []string{"people-1h", "queue-1h"} {
			if _, err := db.Register(ctx, moveSpec(ident)); err != nil {
				t.Fatal(err)
			}
		}
		commit(t, db, "people-1h", []engine.RowOp{{Kind: engine.OpAdd, Row: engine.Row{"timestamp": 7200.0, "who": "dan", "n": int64(1)}}}, nil,
			engine.Checkpoint{Cursor: engine.Position{TimeUS: 200_000_000, Key: "z"}, CursorID: "z", Processed: 1,
				Errors: []engine.ModelError{{MsgID: "z", TimeUS: 200_000_000, Err: "third", Traceback: "tb"}}})
		if err := db.(interface {
			AddRejects(context.Context, []engine.Reject) error
		}).AddRejects(ctx, []engine.Reject{{Source: "b.jsonl:1", Reason: "x", Record: []byte("y")}}); err != nil {
			t.Fatal(err)
		}
		if r, err := db.Append(ctx, []*engine.Message{{TimeUS: 300_000_000, Key: "new", ID: "new", Topic: "t", Raw: []byte(`{}`)},
			{TimeUS: 1_000_000, Key: "00000000-0000-4000-8000-000000000000", ID: "dup", Topic: "t", Raw: []byte(`{}`)}}); err != nil || r.Added != 1 || r.Duplicates != 1 {
			t.Fatalf("append after the move: %+v %v; want 1 added, 1 duplicate", r, err)
		}
	}
	if want, got := contents(t, src, true), contents(t, dst, true); got != want {
		t.Fatalf("after more writes on both:\n%s", lineDiff(want, got))
	}
}

// TestMoveRefusesAWrittenSource: a source written during the copy makes
// the move fail before it commits; the destination stays empty.
func TestMoveRefusesAWrittenSource(t *testing.T) {
	ctx := t.Context()
	src, snap, dst := moveFixture(t)
	if err := src.PutSetting(ctx, "amqp.queue", "changed"); err != nil {
		t.Fatal(err)
	}
	if _, err := storemove.Move(ctx, snap, dst, storemove.Options{}); err == nil || !strings.Contains(err.Error(), "written during the copy") {
		t.Fatalf("move of a source written meanwhile: %v", err)
	}
	if st, err := dst.JournalStats(ctx); err != nil || st.Messages != 0 {
		t.Fatalf("destination after a refused move: %+v %v", st, err)
	}
	if infos, err := dst.ListModels(ctx); err != nil || len(infos) != 0 {
		t.Fatalf("destination after a refused move: %d models, %v", len(infos), err)
	}
}

// moveFixture gives the source database (sourceDB), a snapshot of it and
// an empty PostgreSQL database, closed at the end of the test.
func moveFixture(t *testing.T) (*sqlstore.DB, *sqlstore.Snapshot, *pgstore.DB) {
	src := sourceDB(t)
	snap, err := sqlstore.OpenSnapshot(t.Context(), src.Path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { snap.Close() })
	dst, err := pgstore.Open(t.Context(), pgtest.URL(t), pgstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dst.Close() })
	return src, snap, dst
}

// lineDiff shows the lines of want and got that differ.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for i := 0; i < max(len(w), len(g)); i++ {
		var x, y string
		if i < len(w) {
			x = w[i]
		}
		if i < len(g) {
			y = g[i]
		}
		if x != y {
			fmt.Fprintf(&b, "- %s\n+ %s\n", x, y)
		}
	}
	return b.String()
}
