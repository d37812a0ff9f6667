package pgstore_test

import (
	"errors"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"statscache/engine"
	"statscache/engine/pgstore"
	"statscache/engine/pgstore/pgtest"
	"statscache/schema"
)

func counterSpec() *engine.ModelSpec {
	return &engine.ModelSpec{Ident: "counter", Table: schema.Table{
		Name: "model_counter",
		Columns: []schema.Column{
			{Name: "timestamp", Type: schema.Real, NotNull: true},
			{Name: "n", Type: schema.Integer},
		},
		Key: []string{"timestamp"},
	}}
}

// addBatch writes one batch of the counter model as the engine does: an
// add of n to the row at timestamp 60, and the cursor.
func addBatch(t *testing.T, db *pgstore.DB, n int64, cursor string) error {
	t.Helper()
	tx, err := db.Begin(t.Context(), "counter")
	if err != nil {
		return err
	}
	if err := tx.Apply([]engine.RowOp{{Kind: engine.OpAdd, Row: engine.Row{"timestamp": 60.0, "n": n}}}); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(engine.Checkpoint{Cursor: engine.Position{TimeUS: 1, Key: cursor}, Processed: 1}); err != nil {
		tx.Rollback()
		return err
	}
	return nil
}

// TestCommitLostWithConnection cuts the connection when the client sends
// COMMIT, before the server gets it (the transaction rolls back) and after
// (it commits, the client never hears so). Either way Commit fails, the
// engine writes the same batch again, and the batch counts once: the
// store tells the two cases apart by the model's commit count.
func TestCommitLostWithConnection(t *testing.T) {
	for _, when := range []string{"before", "after"} {
		t.Run(when, func(t *testing.T) {
			proxy := pgtest.NewProxy(t, pgtest.URL(t))
			db, err := pgstore.Open(t.Context(), proxy.URL(), pgstore.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if _, err := db.Register(t.Context(), counterSpec()); err != nil {
				t.Fatal(err)
			}
			if err := addBatch(t, db, 1, "a"); err != nil {
				t.Fatal(err)
			}
			proxy.CutAtCommit(when)
			if err := addBatch(t, db, 10, "b"); err == nil {
				t.Fatal("the commit whose connection was cut succeeded")
			}
			if proxy.Cuts() != 1 {
				t.Fatalf("%d connections cut, want 1", proxy.Cuts())
			}
			// The engine's retry: the same batch again.
			if err := addBatch(t, db, 10, "b"); err != nil {
				t.Fatalf("retry: %v", err)
			}
			row, err := db.GetRow(t.Context(), "counter", engine.Row{"timestamp": 60.0})
			if err != nil {
				t.Fatal(err)
			}
			if row["n"] != int64(11) {
				t.Errorf("n = %v after a batch of 1 and a batch of 10 whose commit was cut %s COMMIT, want 11", row["n"], when)
			}
			info, err := db.ModelInfo(t.Context(), "counter")
			if err != nil {
				t.Fatal(err)
			}
			if info.Status.Processed != 2 || info.Status.Cursor.Key != "b" {
				t.Errorf("status %+v, want 2 processed, cursor b", info.Status)
			}
			// And the next batch is written as usual.
			if err := addBatch(t, db, 100, "c"); err != nil {
				t.Fatal(err)
			}
			row, _ = db.GetRow(t.Context(), "counter", engine.Row{"timestamp": 60.0})
			if row["n"] != int64(111) {
				t.Errorf("n = %v after the next batch, want 111", row["n"])
			}
		})
	}
}

// TestCommitLostThenAnotherBatch: after a COMMIT lost with its connection
// that went through, a batch other than the one cut (a model restarted
// from its committed cursor writes the next one) is written, not taken for
// the cut one.
func TestCommitLostThenAnotherBatch(t *testing.T) {
	proxy := pgtest.NewProxy(t, pgtest.URL(t))
	db, err := pgstore.Open(t.Context(), proxy.URL(), pgstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Register(t.Context(), counterSpec()); err != nil {
		t.Fatal(err)
	}
	proxy.CutAtCommit("after")
	if err := addBatch(t, db, 10, "b"); err == nil {
		t.Fatal("the commit whose connection was cut succeeded")
	}
	if err := addBatch(t, db, 100, "c"); err != nil {
		t.Fatal(err)
	}
	row, err := db.GetRow(t.Context(), "counter", engine.Row{"timestamp": 60.0})
	if err != nil {
		t.Fatal(err)
	}
	if row["n"] != int64(110) {
		t.Errorf("n = %v, want 110: the batch after the cut one was dropped or the cut one doubled", row["n"])
	}
}

// TestBackendsTerminated: when the server ends every connection (a
// restart, an administrator), the store reconnects; no append is lost or
// doubled.
func TestBackendsTerminated(t *testing.T) {
	url := pgtest.URL(t)
	db, err := pgstore.Open(t.Context(), url, pgstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	admin, err := pgstore.Open(t.Context(), url, pgstore.Options{MaxConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	msgs := benchMessages(t, 300, 0)
	for i := 0; i < 3; i++ {
		part := msgs[i*100 : (i+1)*100]
		if _, err := db.Append(t.Context(), part); err != nil {
			t.Logf("append %d after the backends were ended: %v (the caller retries)", i, err)
			if _, err := db.Append(t.Context(), part); err != nil {
				t.Fatalf("append %d again: %v", i, err)
			}
		}
		if err := admin.TerminateOthers(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	st, err := db.JournalStats(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if st.Messages != 300 {
		t.Errorf("%d messages journaled, want 300", st.Messages)
	}
}

// TestDiskFull: PostgreSQL's disk_full (SQLSTATE 53100) reaches the engine
// as engine.ErrDiskFull, so it stalls the model rather than retrying
// without end.
func TestDiskFull(t *testing.T) {
	err := pgstore.DiskFull(&pgconn.PgError{Code: "53100", Message: "could not extend file: No space left on device"})
	if !errors.Is(err, engine.ErrDiskFull) {
		t.Errorf("%v is not ErrDiskFull", err)
	}
	if err := pgstore.DiskFull(&pgconn.PgError{Code: "23505"}); errors.Is(err, engine.ErrDiskFull) {
		t.Errorf("a unique violation is ErrDiskFull")
	}
}
