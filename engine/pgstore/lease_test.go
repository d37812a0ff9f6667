package pgstore_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"statscache/engine"
	"statscache/engine/cluster"
	"statscache/engine/pgstore"
	"statscache/engine/pgstore/pgtest"
	"statscache/schema"
)

func leaseSpec(ident string) *engine.ModelSpec {
	return &engine.ModelSpec{Ident: ident, Name: ident, Table: schema.Table{
		Name: schema.TableName(ident),
		Columns: []schema.Column{
			{Name: "timestamp", Type: schema.Real, NotNull: true, Index: true},
			{Name: "n", Type: schema.Integer},
		},
		Key: []string{"timestamp"},
	}}
}

// leaseDB opens a fresh database with specs registered, and a plain
// connection to it; both are closed at the test's end.
func leaseDB(t *testing.T, specs ...*engine.ModelSpec) (*pgstore.DB, *pgx.Conn) {
	t.Helper()
	ctx := t.Context()
	url := pgtest.URL(t)
	db, err := pgstore.Open(ctx, url, pgstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	for _, spec := range specs {
		if _, err := db.Register(ctx, spec); err != nil {
			t.Fatal(err)
		}
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return db, conn
}

// expire ends the lease of key now (its holder paused past it): moved
// rather than waited for, which a loaded machine makes unreliable.
func expire(t *testing.T, conn *pgx.Conn, key string) {
	t.Helper()
	if _, err := conn.Exec(t.Context(), `UPDATE cluster_leases SET expires_at = now() WHERE key = $1`, key); err != nil {
		t.Fatal(err)
	}
}

// takenOver has instance a acquire the lease of m, which expires, and b
// take it over: a1 is a's stale fence, b2 the holder's.
func takenOver(t *testing.T, db *pgstore.DB, conn *pgx.Conn) (a1, b2 engine.Fence) {
	t.Helper()
	a1, ok, err := db.Acquire(t.Context(), "m", "a", time.Minute)
	if err != nil || !ok {
		t.Fatalf("acquire: %v %v %v", a1, ok, err)
	}
	expire(t, conn, "m")
	b2, ok, err = db.Acquire(t.Context(), "m", "b", time.Minute)
	if err != nil || !ok {
		t.Fatalf("takeover: %v %v %v", b2, ok, err)
	}
	return a1, b2
}

// fencedCommit writes one row (n added) and commits at cursor to with f.
func fencedCommit(t *testing.T, db *pgstore.DB, ident string, f engine.Fence, from, to int64) error {
	t.Helper()
	tx, err := db.Begin(t.Context(), ident)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Apply([]engine.RowOp{{Kind: engine.OpAdd, Row: engine.Row{"timestamp": 0.0, "n": int64(1)}}}); err != nil {
		tx.Rollback()
		t.Fatal(err)
	}
	err = tx.Commit(engine.Checkpoint{Cursor: engine.Position{TimeUS: to, Key: "k"}, From: engine.Position{TimeUS: from, Key: "k"}, Processed: 1, Fence: &f})
	if err != nil {
		tx.Rollback()
	}
	return err
}

// TestFencedCommitOnPostgres: on the real server, a commit made with the
// token of a lease that another instance has taken since is refused
// (engine.ErrFenced) and writes nothing; the new holder's commits go
// through; renewing a taken lease fails; a released lease is taken at
// once with a higher token; the commit log names who committed what.
func TestFencedCommitOnPostgres(t *testing.T) {
	ctx := t.Context()
	db, conn := leaseDB(t, leaseSpec("m"))
	a1, ok, err := db.Acquire(ctx, "m", "a", time.Minute)
	if err != nil || !ok || a1.Token != 1 {
		t.Fatalf("acquire: %v %v %v", a1, ok, err)
	}
	if _, ok, _ := db.Acquire(ctx, "m", "b", time.Minute); ok {
		t.Fatal("b took a lease a holds")
	}
	if err := fencedCommit(t, db, "m", a1, 0, 10); err != nil {
		t.Fatalf("commit with the current token: %v", err)
	}
	expire(t, conn, "m") // a paused past its lease
	b2, ok, err := db.Acquire(ctx, "m", "b", time.Minute)
	if err != nil || !ok || b2.Token != 2 {
		t.Fatalf("takeover: %v %v %v", b2, ok, err)
	}
	err = fencedCommit(t, db, "m", a1, 10, 20)
	if !errors.Is(err, engine.ErrFenced) {
		t.Fatalf("commit with the stale token: %v, want ErrFenced", err)
	}
	if err := fencedCommit(t, db, "m", b2, 10, 30); err != nil {
		t.Fatalf("commit of the new holder: %v", err)
	}
	if kept, err := db.Renew(ctx, "a", map[string]int64{"m": 1}, time.Minute); err != nil || kept["m"] {
		t.Errorf("a renewed a lease b took: %v %v", kept, err)
	}
	if kept, err := db.Renew(ctx, "b", map[string]int64{"m": 2}, time.Minute); err != nil || !kept["m"] {
		t.Errorf("b could not renew its lease: %v %v", kept, err)
	}
	if err := db.Release(ctx, "m", b2); err != nil {
		t.Fatal(err)
	}
	a3, ok, err := db.Acquire(ctx, "m", "a", time.Minute)
	if err != nil || !ok || a3.Token != 3 {
		t.Fatalf("acquire after release: %v %v %v", a3, ok, err)
	}
	// a restarted under the same name takes its lease back at once, with
	// a new token: what the dead run had not committed is refused.
	a4, ok, err := db.Acquire(ctx, "m", "a", time.Minute)
	if err != nil || !ok || a4.Token != 4 {
		t.Fatalf("acquire by a restarted instance of the same name: %v %v %v", a4, ok, err)
	}
	if err := fencedCommit(t, db, "m", a3, 30, 40); !errors.Is(err, engine.ErrFenced) {
		t.Fatalf("commit of the dead run: %v, want ErrFenced", err)
	}

	var n, cursor int64
	if err := conn.QueryRow(ctx, `SELECT (SELECT n FROM model_m), cursor_time_us FROM models WHERE ident = 'm'`).Scan(&n, &cursor); err != nil {
		t.Fatal(err)
	}
	if n != 2 || cursor != 30 {
		t.Errorf("table says %d, cursor %d; want 2 (the refused commit wrote nothing) and 30", n, cursor)
	}
	rows, _ := conn.Query(ctx, `SELECT holder, token, from_us, to_us FROM cluster_commits ORDER BY id`)
	type logged struct {
		Holder   string
		Token    int64
		From, To int64
	}
	got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[logged])
	if err != nil {
		t.Fatal(err)
	}
	want := []logged{{"a", 1, 0, 10}, {"b", 2, 10, 30}}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("commit log %v, want %v", got, want)
	}
}

// TestFencedPromoteOnPostgres: swapping a rebuilt table in is refused
// (engine.ErrFenced) with the token of a lease another instance has taken
// since, as a commit is, and changes nothing: the model keeps its table
// and the rebuild waits. The new holder's promotion goes through.
func TestFencedPromoteOnPostgres(t *testing.T) {
	ctx := t.Context()
	shadow := "m" + engine.ShadowSep + "2"
	sp := leaseSpec(shadow)
	sp.Table.Name = schema.TableName("m_2")
	db, conn := leaseDB(t, leaseSpec("m"), sp)
	a1, b2 := takenOver(t, db, conn)
	table := func() (name string, shadows int) {
		t.Helper()
		if err := conn.QueryRow(ctx, `SELECT table_name, (SELECT count(*) FROM models WHERE ident = $2) FROM models WHERE ident = $1`,
			"m", shadow).Scan(&name, &shadows); err != nil {
			t.Fatal(err)
		}
		return name, shadows
	}
	if err := db.Promote(ctx, shadow, "m", &a1); !errors.Is(err, engine.ErrFenced) {
		t.Fatalf("promotion with the stale token: %v, want ErrFenced", err)
	}
	if name, shadows := table(); name != leaseSpec("m").Table.Name || shadows != 1 {
		t.Errorf("after the refused promotion m is served by %s with %d rebuilds, want its own table and the rebuild kept", name, shadows)
	}
	if err := db.Promote(ctx, shadow, "m", &b2); err != nil {
		t.Fatalf("promotion of the new holder: %v", err)
	}
	if name, shadows := table(); name != sp.Table.Name || shadows != 0 {
		t.Errorf("after the promotion m is served by %s with %d rebuilds, want %s and none", name, shadows, sp.Table.Name)
	}
}

// TestFencedStatusOnPostgres: marking a model failed with the token of a
// lease another instance has taken since is refused (engine.ErrFenced)
// and leaves its status alone; the holder's mark goes through.
func TestFencedStatusOnPostgres(t *testing.T) {
	ctx := t.Context()
	db, conn := leaseDB(t, leaseSpec("m"))
	a1, b2 := takenOver(t, db, conn)
	status := func() (s string) {
		t.Helper()
		if err := conn.QueryRow(ctx, `SELECT status FROM models WHERE ident = 'm'`).Scan(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	if err := db.SetStatus(ctx, "m", "failed", "a call ran longer than its limit", &a1); !errors.Is(err, engine.ErrFenced) {
		t.Fatalf("status with the stale token: %v, want ErrFenced", err)
	}
	if s := status(); s != "ok" {
		t.Errorf("after the refused mark the model is %q, want ok", s)
	}
	if err := db.SetStatus(ctx, "m", "failed", "broken", &b2); err != nil {
		t.Fatalf("status of the holder: %v", err)
	}
	if s := status(); s != "failed" {
		t.Errorf("after the holder's mark the model is %q, want failed", s)
	}
}

// TestHeartbeatOnPostgres: instances whose heartbeat expired drop out of
// the live ones; the reload generation rises once per request.
func TestHeartbeatOnPostgres(t *testing.T) {
	ctx := t.Context()
	url := pgtest.URL(t)
	db, err := pgstore.Open(ctx, url, pgstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	wm := int64(42)
	if _, err := db.Heartbeat(ctx, cluster.Instance{ID: "short", Models: map[string]string{"m": "v"}}, time.Minute); err != nil {
		t.Fatal(err)
	}
	b, err := db.Heartbeat(ctx, cluster.Instance{ID: "long", Addr: "127.0.0.1:1", WatermarkUS: &wm, Models: map[string]string{"m": "v"}}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Instances) != 2 {
		t.Fatalf("live %v, want both", b.Instances)
	}
	// The short heartbeat expires by the database's clock, as a dead
	// instance's does; expired here rather than by a sleep that a loaded
	// machine can outlast between the two heartbeats above.
	if _, err := conn.Exec(ctx, `UPDATE cluster_instances SET expires_at = now() WHERE id = 'short'`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.RequestReload(ctx); err != nil {
		t.Fatal(err)
	}
	b, err = db.Heartbeat(ctx, cluster.Instance{ID: "long", Addr: "127.0.0.1:1", WatermarkUS: &wm, Models: map[string]string{"m": "v"}}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Instances) != 1 || b.Instances[0].ID != "long" || *b.Instances[0].WatermarkUS != 42 || b.Instances[0].Models["m"] != "v" {
		t.Errorf("live %+v, want only long with its watermark and models", b.Instances)
	}
	if b.Reload != 1 {
		t.Errorf("reload generation %d, want 1", b.Reload)
	}
}
