package main

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"statscache/engine/archive/dgtest"
	"statscache/engine/follow"
	"statscache/engine/pgstore/pgtest"
)

// stuckStore is a database a daemon runs on, and a way to make every
// write the daemon sends it hang.
type stuckStore struct {
	db     string // the daemon's --db
	direct string // the same database, for the checks
	// stick makes the daemon's writes hang; stuck waits until at least
	// one of them does.
	stick, stuck func(t *testing.T)
	// cut is what the daemon's log says of the stop: that the drain cut
	// a commit short, or that the daemon exited without waiting for a
	// part the drain could not end. abandons says the exit status is 1.
	cut      string
	abandons bool
	// free lets them go on, and returns once the database holds nothing
	// of the process that was stuck (its sessions ended).
	free func(t *testing.T)
}

// TestDaemonSIGTERMWithStuckDatabase: the daemon follows a live bus and
// commits every 100 ms when its database stops answering: on PostgreSQL,
// every connection frozen in a proxy (a paused server or a dead network
// path: nothing is closed, no byte passes); on SQLite, the write lock held
// by another process. SIGTERM must still end the process within its drain
// time. After the database answers again, a restart loses nothing and
// counts nothing twice: the tables equal an independent recount of every
// message published.
func TestDaemonSIGTERMWithStuckDatabase(t *testing.T) {
	t.Run("postgres-frozen", func(t *testing.T) {
		// Every connection at once, wherever it stands. A journal
		// append, at least, waits in the proxy: it holds the engine's
		// commit lock, so the models' commits wait behind it.
		frozenPostgres(t, (*pgtest.Proxy).Freeze, 2, "journal live messages")
	})
	t.Run("postgres-frozen-at-commit", func(t *testing.T) {
		// At a model's COMMIT (its transaction logs the commit in
		// cluster_commits): the server holds the transaction open, and
		// gets its COMMIT only at Thaw, after the daemon gave up on it,
		// so that it commits behind the daemon's back. The drain ends
		// every wait: nothing is left to abandon.
		frozenPostgres(t, func(px *pgtest.Proxy) { px.FreezeAtCommit("INSERT INTO cluster_commits") }, 1, "commit at shutdown failed")
	})
	t.Run("sqlite-locked", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "locked.db")
		var lock *sql.DB
		var conn *sql.Conn
		sigtermStuck(t, stuckStore{
			db: path, direct: path,
			stick: func(t *testing.T) {
				var err error
				if lock, err = sql.Open("sqlite3", "file:"+path+"?_busy_timeout=30000"); err != nil {
					t.Fatal(err)
				}
				if conn, err = lock.Conn(context.Background()); err != nil {
					t.Fatal(err)
				}
				if _, err := conn.ExecContext(context.Background(), "BEGIN IMMEDIATE"); err != nil {
					t.Fatalf("take the write lock: %v", err)
				}
			},
			// Commits come every 100 ms and appends as messages arrive:
			// within a second, both wait for the lock.
			stuck: func(*testing.T) { time.Sleep(time.Second) },
			// SQLite waits out its busy timeout (30 s) inside cgo, where
			// no context reaches: the daemon exits without it.
			cut: "the drain time is over: exiting without waiting for", abandons: true,
			free: func(t *testing.T) {
				if _, err := conn.ExecContext(context.Background(), "ROLLBACK"); err != nil {
					t.Fatal(err)
				}
				conn.Close()
				lock.Close()
			},
		})
	})
}

func sigtermStuck(t *testing.T, st stuckStore) {
	c := newCorpus(t, testSeed(t))
	dg := dgtest.New(nil, dgtest.Options{})
	defer dg.Close()
	pyEP, pyIn, pyWait := libzmqPublisher(t)
	scripts := shippedScripts(t, "volume.lua", "volume-by-category.lua")
	epoch := time.Now().Add(-time.Minute).Truncate(time.Second)
	dir := t.TempDir()
	start := func() *daemonProc {
		return startDaemon(t, "--db", st.db, "--scripts", scripts, "--bus", pyEP, "--datagrepper", dg.URL,
			"--epoch", epoch.Format(time.RFC3339), "--settle", "1s", "--lateness", "1s", "--batch-interval", "100ms",
			"--verify", "2s", "--lease", "3s", "--pidfile", filepath.Join(dir, "statscache.pid"))
	}
	d := start()
	d.waitConnected(t, 1)
	fd := startFeed(c, dg, pyIn, 10*time.Millisecond)
	// The models count through the API, before the database sticks
	// (afterwards the API would wait for it too).
	waitFor(t, "the models counting", func() bool { return d.total(t) >= 50 })

	st.stick(t)
	st.stuck(t)
	began := time.Now()
	d.cmd.Process.Signal(syscall.SIGTERM)
	// The drain bounds the stop; the slack covers a loaded machine.
	limit := follow.DefaultDrain + 5*time.Second
	select {
	case err := <-d.done:
		took := time.Since(began)
		t.Logf("SIGTERM ended the daemon in %s (%v) with its database stuck", took.Round(time.Millisecond), err)
		if took > limit {
			t.Errorf("SIGTERM took %s to end the daemon, more than its drain time (%s) and slack\n%s",
				took.Round(time.Millisecond), follow.DefaultDrain, tail(d.out.String(), 30))
		}
		if (err != nil) != st.abandons {
			t.Errorf("exit status %v; want an error: %v\n%s", err, st.abandons, tail(d.out.String(), 30))
		}
		if !strings.Contains(d.out.String(), st.cut) {
			t.Errorf("the log does not say %q\n%s", st.cut, tail(d.out.String(), 30))
		}
	case <-time.After(60 * time.Second):
		d.cmd.Process.Kill()
		<-d.done
		t.Errorf("the daemon did not end within 60 s of SIGTERM with its database stuck\n%s", tail(d.out.String(), 30))
	}

	// Published while the daemon is down: the archive has it.
	st.free(t)
	d = start()
	d.waitConnected(t, 1)
	want, _ := recountAfterFeed(t, d, time.Second, fd, pyIn, pyWait, st.direct)
	if strings.HasPrefix(st.direct, "postgres") {
		commitChains(t, st.direct)
	}
	t.Logf("%d messages (%d published live)", want, fd.published.Load())
}

// frozenPostgres runs sigtermStuck on a fresh PostgreSQL database behind a
// proxy that freeze freezes; held transfers waiting in the proxy show that
// the daemon's calls are stuck.
func frozenPostgres(t *testing.T, freeze func(*pgtest.Proxy), held int, cut string) {
	url := pgtest.URL(t)
	px := pgtest.NewProxy(t, url)
	sigtermStuck(t, stuckStore{
		db: px.URL(), direct: url,
		stick: func(*testing.T) { freeze(px) },
		stuck: func(t *testing.T) {
			waitFor(t, "the daemon's database calls held in the proxy", func() bool { return px.Held() >= held })
		},
		cut: cut,
		free: func(t *testing.T) {
			px.Thaw()
			waitFor(t, "the stopped daemon's sessions ended", func() bool {
				return pgQuery(t, url, `SELECT count(*)::text FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`) == "0"
			})
		},
	})
}
