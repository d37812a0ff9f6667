package engine_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"statscache/engine"
	"statscache/engine/sqlstore"
	"statscache/schema"
)

// fullStore is the real store whose commits fail with engine.ErrDiskFull
// while full is set, as the SQLite store's do on a full disk.
type fullStore struct {
	*sqlstore.DB
	full    atomic.Bool
	commits atomic.Int32 // commit attempts that failed
}

func (s *fullStore) Begin(ctx context.Context, ident string) (engine.ModelTx, error) {
	tx, err := s.DB.Begin(ctx, ident)
	if err != nil {
		return nil, err
	}
	return &fullTx{ModelTx: tx, s: s}, nil
}

type fullTx struct {
	engine.ModelTx
	s *fullStore
}

func (t *fullTx) Commit(cp engine.Checkpoint) error {
	if t.s.full.Load() {
		t.s.commits.Add(1)
		t.ModelTx.Rollback()
		return fmt.Errorf("commit: %w", engine.ErrDiskFull)
	}
	return t.ModelTx.Commit(cp)
}

func diskFullConfig() engine.Config {
	return engine.Config{BatchInterval: 20 * time.Millisecond, DiskFullWait: 300 * time.Millisecond, StallRetry: 100 * time.Millisecond}
}

// TestEngineDiskFullStalls: commits failing on a full disk stop the model
// after DiskFullWait, with the reason shown in Stats and the API, and are
// then tried every StallRetry without running the model's code again; the
// model resumes by itself once a commit gets through, or at the next start,
// and a shutdown while it is stalled ends at once. Nothing is lost or
// counted twice.
func TestEngineDiskFullStalls(t *testing.T) {
	for _, name := range []string{"OKResumesWhenSpaceReturns", "OKShutdownWhileStalledThenRestart"} {
		t.Run(name, func(t *testing.T) {
			db := openTestDB(t, "")
			store := &fullStore{DB: db.store}
			f := newFake("filling")
			var flushes atomic.Int32
			f.onFlush = func(*fakeModel) { flushes.Add(1) }
			e := engine.New(store, quietConfig(diskFullConfig()))
			if err := e.Add(context.Background(), f); err != nil {
				t.Fatal(err)
			}
			stop := runFollow(t, e)
			m1 := message(t, "d1", tBuild, 1)
			ingest(t, e, m1)
			if !within(5*time.Second, func() bool { return db.model(t, "filling").Cursor == m1.Pos() }) {
				t.Fatal("first commit did not happen")
			}

			store.full.Store(true)
			m2, m3 := message(t, "d2", tBodhi, 2), message(t, "d3", tBuild, 3)
			ingest(t, e, m2, m3)
			t0 := time.Now()
			if !within(5*time.Second, func() bool { return stats(e, "filling").Stalled }) {
				t.Fatalf("the model was not stalled on a full disk: %+v after %d failed commits", stats(e, "filling"), store.commits.Load())
			}
			if took := time.Since(t0); took < 250*time.Millisecond {
				t.Errorf("stalled after %s, want about DiskFullWait (300ms)", took)
			}
			s := stats(e, "filling")
			if !strings.Contains(s.Failed, "disk full") || !strings.Contains(s.Failed, engine.ErrDiskFull.Error()) {
				t.Errorf("Stats reason %q, want it to say the disk is full", s.Failed)
			}
			info, err := db.store.ModelInfo(context.Background(), "filling")
			if err != nil {
				t.Fatal(err)
			}
			if info.Status.Status != "failed" || info.Status.Reason != s.Failed {
				t.Errorf("API status %q %q, want failed with the reason %q", info.Status.Status, info.Status.Reason, s.Failed)
			}
			if got := db.model(t, "filling").Status; got != "ok" {
				t.Errorf("stored status %q: a stall must not be written (the next start retries)", got)
			}
			// Stalled: tried every StallRetry, without running update again.
			n0, fl0 := store.commits.Load(), flushes.Load()
			time.Sleep(time.Second)
			if n := store.commits.Load() - n0; n < 2 || n > 13 { // fewer on a starved machine, never a busy loop
				t.Errorf("%d commit attempts in 1 s while stalled, want about 10 (every 100ms)", n)
			}
			if fl := flushes.Load() - fl0; fl != 0 {
				t.Errorf("update ran %d times while stalled, want 0 (the prepared batch is written again)", fl)
			}

			if name == "OKShutdownWhileStalledThenRestart" {
				t0 := time.Now()
				stop()
				if took := time.Since(t0); took > 2*time.Second {
					t.Errorf("shutdown took %s while stalled", took)
				}
				if got := db.model(t, "filling").Cursor; got != m1.Pos() {
					t.Fatalf("cursor %+v after the shutdown, want the last good commit %+v", got, m1.Pos())
				}
				if info, err := db.store.ModelInfo(context.Background(), "filling"); err != nil || info.Status.Status != "ok" {
					t.Errorf("API status once the stalled model stopped: %q %q (%v), want ok (not running, nothing stored)", info.Status.Status, info.Status.Reason, err)
				}
				store.full.Store(false)
				e = engine.New(store, quietConfig(diskFullConfig()))
				if err := e.Add(context.Background(), newFake("filling")); err != nil {
					t.Fatal(err)
				}
				run(t, e)
			} else {
				store.full.Store(false)
				if !within(3*time.Second, func() bool { return db.model(t, "filling").Cursor == m3.Pos() }) {
					t.Fatalf("the model did not resume once its commit could get through: %+v", stats(e, "filling"))
				}
				if s := stats(e, "filling"); s.Failed != "" || s.Stalled {
					t.Errorf("Stats after resuming %+v, want running", s)
				}
				info, err := db.store.ModelInfo(context.Background(), "filling")
				if err != nil || info.Status.Status != "ok" || info.Status.Reason != "" {
					t.Errorf("API status after resuming %q %q (%v), want ok", info.Status.Status, info.Status.Reason, err)
				}
				stop()
			}
			if got, want := db.counts(t, "filling"), map[string]int64{tBuild: 2, tBodhi: 1}; fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("rows %v, want %v", got, want)
			}
			if m := db.model(t, "filling"); m.Processed != 3 || m.Cursor != m3.Pos() || m.Status != "ok" {
				t.Errorf("model %+v, want ok with 3 processed up to d3", m)
			}
		})
	}
}

// bigRows writes one row of 8 KiB per message, to fill a small disk.
type bigRows struct {
	spec *engine.ModelSpec
	keys []string
}

func newBigRows(ident string) *bigRows {
	return &bigRows{spec: &engine.ModelSpec{
		Ident: ident, Name: ident, Summary: "big rows", Description: "8 KiB per message",
		Table: schema.Table{
			Name: schema.TableName(ident),
			Columns: []schema.Column{
				{Name: "timestamp", Type: schema.Real, NotNull: true, Index: true},
				{Name: "key", Type: schema.Text},
				{Name: "blob", Type: schema.Text},
			},
			Key: []string{"timestamp", "key"},
		},
	}}
}

func (b *bigRows) Spec() *engine.ModelSpec { return b.spec }
func (b *bigRows) Open(engine.State) error { b.keys = nil; return nil }
func (b *bigRows) Close() error            { return nil }
func (b *bigRows) Process(_ context.Context, m *engine.Message) error {
	b.keys = append(b.keys, m.Key)
	return nil
}

func (b *bigRows) Flush(_ context.Context, w engine.RowWriter) error {
	blob := strings.Repeat("x", 8192)
	for _, k := range b.keys {
		if err := w.Upsert(engine.Row{"timestamp": 0.0, "key": k, "blob": blob}); err != nil {
			return err
		}
	}
	b.keys = nil
	return nil
}

// smallDisk mounts a tmpfs of the given size for the test, or skips it.
func smallDisk(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("a small file system for the full-disk test needs root to mount a tmpfs (the store-level test covers the engine side)")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("mount -t tmpfs is not permitted here (%v: %s); the store-level test covers the engine side", err, strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// fill writes a file until the file system is full.
func fill(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("fill: %v", err)
			}
			return
		}
	}
}

// TestEngineDiskFullReal runs the engine over SQLite on a real 2 MiB file
// system that fills up: SQLite's "database or disk is full" stalls the
// model with that reason, a shutdown ends promptly, and the model resumes
// by itself once space is freed, with every row written once.
func TestEngineDiskFullReal(t *testing.T) {
	dir := smallDisk(t, "2m")
	db := openTestDB(t, filepath.Join(dir, "t.db"))
	big, small := newBigRows("big"), newFake("small")
	e := engine.New(db.store, quietConfig(diskFullConfig()))
	for _, m := range []engine.Model{big, small} {
		if err := e.Add(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	e.SetWatermark(time.Unix(0, 0)) // hold the models while the journal fills
	var msgs []*engine.Message
	for i := 1; i <= 150; i++ {
		msgs = append(msgs, message(t, fmt.Sprintf("f%03d", i), tBuild, float64(i)))
	}
	ingest(t, e, msgs...)
	stop := runFollow(t, e)
	filler := filepath.Join(dir, "filler")
	fill(t, filler)
	e.SetWatermark(time.Unix(1000, 0))

	if !within(15*time.Second, func() bool { return stats(e, "big").Stalled }) {
		t.Fatalf("the model was not stalled on a full disk: %+v", stats(e, "big"))
	}
	s := stats(e, "big")
	if !strings.Contains(s.Failed, "database or disk is full") {
		t.Errorf("reason %q, want SQLite's \"database or disk is full\"", s.Failed)
	}
	info, err := db.store.ModelInfo(context.Background(), "big")
	if err != nil {
		t.Fatal(err)
	}
	if info.Status.Status != "failed" || !strings.Contains(info.Status.Reason, "disk full") {
		t.Errorf("API status %q %q, want failed: disk full", info.Status.Status, info.Status.Reason)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	last := msgs[len(msgs)-1].Pos()
	// The stall clears just after the commit lands in the file, so wait
	// for both rather than read the status the instant the cursor moves.
	if !within(10*time.Second, func() bool {
		return db.model(t, "big").Cursor == last && db.model(t, "small").Cursor == last && stats(e, "big").Failed == ""
	}) {
		t.Fatalf("the models did not resume once space was freed, or big stayed stalled: big %+v, small %+v", stats(e, "big"), stats(e, "small"))
	}
	var rows, bytes int64
	if err := db.sql.QueryRow(`SELECT count(*), sum(length(blob)) FROM `+schema.TableName("big")).Scan(&rows, &bytes); err != nil {
		t.Fatal(err)
	}
	if rows != 150 || bytes != 150*8192 {
		t.Errorf("big has %d rows (%d bytes), want 150 of 8 KiB", rows, bytes)
	}

	// Full again, then a shutdown while stalled ends within the drain.
	e.SetWatermark(time.Unix(151, 0))
	var more []*engine.Message
	for i := 151; i <= 160; i++ {
		more = append(more, message(t, fmt.Sprintf("f%03d", i), tBuild, float64(i)))
	}
	ingest(t, e, more...)
	fill(t, filler)
	if _, err := e.Ingest(context.Background(), []*engine.Message{message(t, "f999", tBuild, 999)}); !errors.Is(err, engine.ErrDiskFull) {
		t.Errorf("Ingest on a full disk: %v, want an error wrapping engine.ErrDiskFull", err)
	}
	e.SetWatermark(time.Unix(1000, 0))
	if !within(10*time.Second, func() bool { return stats(e, "big").Stalled }) {
		t.Errorf("not stalled on the second fill: %+v", stats(e, "big"))
	}
	t0 := time.Now()
	stop()
	if took := time.Since(t0); took > 3*time.Second {
		t.Errorf("shutdown on a full disk took %s", took)
	}
}
