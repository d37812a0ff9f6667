package pgstore_test

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"statscache/engine"
	"statscache/engine/pgstore"
	"statscache/engine/pgstore/pgtest"
)

func behindMsg(us int64, key string) *engine.Message {
	return &engine.Message{TimeUS: us, Key: key, ID: key, Topic: "t", Raw: []byte(`{}`)}
}

// commitTo commits ident's batch (From, to] with fence f, saying it
// passed n journal messages, as the engine does.
func commitTo(ctx context.Context, db *pgstore.DB, ident string, f engine.Fence, from, to engine.Position, n int64) error {
	tx, err := db.Begin(ctx, ident)
	if err != nil {
		return err
	}
	err = tx.Commit(engine.Checkpoint{From: from, Cursor: to, Processed: n, Fence: &f})
	if err != nil {
		tx.Rollback()
	}
	return err
}

// lateFlag reads the journal's late flag of key.
func lateFlag(t *testing.T, conn *pgx.Conn, key string) int {
	t.Helper()
	var late int
	if err := conn.QueryRow(t.Context(), `SELECT late FROM journal WHERE key = $1`, key).Scan(&late); err != nil {
		t.Fatal(err)
	}
	return late
}

// TestAppendBehindAFencedBatch: two instances share the database. B runs
// model x and has read the journal up to m30; A journals m20 (a bus
// delivery past the lateness window, an archive check of the live region,
// an AMQP redelivery after an instance died) before B commits the batch.
// Nothing in A's process knows B's batch, and A saw x's cursor below m20,
// so m20 is not flagged late: B's commit must not pass it silently. It is
// refused with engine.ErrJournaledBehind (the engine processes the batch
// again, with m20). Also when A's append is in flight while B commits,
// for a model that has never committed (its row not locked by appends).
func TestAppendBehindAFencedBatch(t *testing.T) {
	ctx := t.Context()
	url := pgtest.URL(t)
	a, err := pgstore.Open(ctx, url, pgstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := pgstore.Open(ctx, url, pgstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	for _, id := range []string{"x", "y"} {
		if _, err := b.Register(ctx, leaseSpec(id)); err != nil {
			t.Fatal(err)
		}
	}
	fx, ok, err := b.Acquire(ctx, "x", "b", time.Minute)
	if err != nil || !ok {
		t.Fatalf("acquire: %v %v", ok, err)
	}
	fy, ok, err := b.Acquire(ctx, "y", "b", time.Minute)
	if err != nil || !ok {
		t.Fatalf("acquire: %v %v", ok, err)
	}
	m10, m20, m30, m35, m40 := behindMsg(10, "a"), behindMsg(20, "b"), behindMsg(30, "c"), behindMsg(35, "d"), behindMsg(40, "e")
	if _, err := a.Append(ctx, []*engine.Message{m10, m30, m40}); err != nil {
		t.Fatal(err)
	}

	t.Run("committed", func(t *testing.T) {
		if err := commitTo(ctx, b, "x", fx, engine.Position{}, m10.Pos(), 1); err != nil {
			t.Fatal(err)
		}
		// B has read m30 after its cursor; A journals m20 meanwhile.
		if _, err := a.Append(ctx, []*engine.Message{m20}); err != nil {
			t.Fatal(err)
		}
		err := commitTo(ctx, b, "x", fx, m10.Pos(), m30.Pos(), 1)
		if !errors.Is(err, engine.ErrJournaledBehind) {
			t.Errorf("commit of a batch that lacks m20: %v (late flag %d), want ErrJournaledBehind", err, lateFlag(t, conn, "b"))
		}
		if err := commitTo(ctx, b, "x", fx, m10.Pos(), m30.Pos(), 2); err != nil {
			t.Errorf("the batch processed again, with m20: %v", err)
		}
	})

	t.Run("in flight", func(t *testing.T) {
		// y has never committed; B read m10 to m40; A's append of m35
		// is under way (x's cursor, at m30, does not make it late).
		tx, err := a.AppendHeld(ctx, []*engine.Message{m35})
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- commitTo(ctx, b, "y", fy, engine.Position{}, m40.Pos(), 4) }()
		var res error
		waiting := false
		for !waiting {
			select {
			case res = <-done:
				waiting = true
				done = nil
			default:
				if err := conn.QueryRow(ctx, `SELECT count(*) > 0 FROM pg_stat_activity
					WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&waiting); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		if done != nil {
			res = <-done
		}
		if late := lateFlag(t, conn, "d"); !errors.Is(res, engine.ErrJournaledBehind) && late == 0 {
			t.Errorf("y committed past m35 (%v) and m35 is not flagged late: lost for y", res)
		}
	})
}

// countModel counts the messages it is given into one row.
type countModel struct {
	spec *engine.ModelSpec
	n    int64
}

func (c *countModel) Spec() *engine.ModelSpec                        { return c.spec }
func (c *countModel) Open(engine.State) error                        { c.n = 0; return nil }
func (c *countModel) Process(context.Context, *engine.Message) error { c.n++; return nil }
func (c *countModel) Close() error                                   { return nil }
func (c *countModel) Flush(ctx context.Context, w engine.RowWriter) error {
	n := c.n
	c.n = 0
	return w.Add(engine.Row{"timestamp": 0.0, "n": n})
}

// beforeBegin runs fn before the first model transaction begins: the
// runner has read the journal and processed its batch.
type beforeBegin struct {
	*pgstore.DB
	once sync.Once
	fn   func()
}

func (s *beforeBegin) Begin(ctx context.Context, ident string) (engine.ModelTx, error) {
	s.once.Do(s.fn)
	return s.DB.Begin(ctx, ident)
}

// TestEngineRedoesABatchJournaledBehind: the engine of instance B runs
// model cnt under its lease and has processed m10 and m30 when instance A
// journals m20. B's commit is refused, B processes the batch again from
// the journal, and cnt counts all three messages once.
func TestEngineRedoesABatchJournaledBehind(t *testing.T) {
	ctx := t.Context()
	url := pgtest.URL(t)
	a, err := pgstore.Open(ctx, url, pgstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := pgstore.Open(ctx, url, pgstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := a.Append(ctx, []*engine.Message{behindMsg(10, "a"), behindMsg(30, "c")}); err != nil {
		t.Fatal(err)
	}
	s := &beforeBegin{DB: b, fn: func() {
		if _, err := a.Append(ctx, []*engine.Message{behindMsg(20, "b")}); err != nil {
			t.Error(err)
		}
	}}
	e := engine.New(s, engine.Config{Leased: true, Logger: slog.New(slog.DiscardHandler)})
	if err := e.Add(ctx, &countModel{spec: leaseSpec("cnt")}); err != nil {
		t.Fatal(err)
	}
	f, ok, err := b.Acquire(ctx, "cnt", "b", time.Minute)
	if err != nil || !ok {
		t.Fatalf("acquire: %v %v", ok, err)
	}
	if err := e.Grant(ctx, "cnt", f); err != nil {
		t.Fatal(err)
	}
	if err := e.Run(ctx, false); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n, processed int64
	if err := conn.QueryRow(ctx, `SELECT (SELECT n FROM model_cnt), processed FROM models WHERE ident = 'cnt'`).Scan(&n, &processed); err != nil {
		t.Fatal(err)
	}
	if n != 3 || processed != 3 || lateFlag(t, conn, "b") != 0 {
		t.Errorf("cnt counted %d, processed %d (m20 late %d); want 3 and 3: m20 was journaled inside the batch", n, processed, lateFlag(t, conn, "b"))
	}
}

// TestFirstCommitRecordsItsStart: instances A and B both add a new model
// with a Backlog, B a moment later, so each sets a start (B's last). A
// runs it and commits first, from its own start. A message journaled
// afterwards between the two starts and behind A's cursor is late for
// the model (A's run passed its time), and must be flagged so.
func TestFirstCommitRecordsItsStart(t *testing.T) {
	ctx := t.Context()
	url := pgtest.URL(t)
	a, err := pgstore.Open(ctx, url, pgstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := pgstore.Open(ctx, url, pgstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for _, db := range []*pgstore.DB{a, b} {
		if _, err := db.Register(ctx, leaseSpec("x")); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.SetStart(ctx, "x", 100); err != nil {
		t.Fatal(err)
	}
	if err := b.SetStart(ctx, "x", 200); err != nil {
		t.Fatal(err)
	}
	f, ok, err := a.Acquire(ctx, "x", "a", time.Minute)
	if err != nil || !ok {
		t.Fatalf("acquire: %v %v", ok, err)
	}
	tx, err := a.Begin(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(engine.Checkpoint{Cursor: engine.Position{TimeUS: 300, Key: "z"}, StartUS: 100, Fence: &f}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Append(ctx, []*engine.Message{behindMsg(150, "m150")}); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if late := lateFlag(t, conn, "m150"); late != 1 {
		t.Errorf("m150, behind the cursor and after the start of the run that committed, has late %d, want 1", late)
	}
}
