package main

import (
	"database/sql"
	"net"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"statscache/engine/archive/dgtest"
)

// TestDaemonStopsWhileArchiveHangs: SIGTERM while every archive request
// hangs for minutes and the bus never connects (nothing listens on its
// endpoint). The daemon must exit promptly and cleanly, not after the
// archive's request timeout.
func TestDaemonStopsWhileArchiveHangs(t *testing.T) {
	c := newCorpus(t, 11)
	now := time.Now()
	var history [][]byte
	for i := 0; i < 50; i++ {
		_, rec := c.record(now.Add(-30*time.Minute).Add(time.Duration(i)*time.Second), false)
		history = append(history, rec)
	}
	dg := dgtest.New(history, dgtest.Options{SlowEvery: 1, Slow: 5 * time.Minute})
	defer dg.Close()
	// A port nobody listens on: the subscription never connects.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadBus := "tcp://" + ln.Addr().String()
	ln.Close()
	db := filepath.Join(t.TempDir(), "hang.db")
	d := startDaemon(t, "--db", db, "--scripts", "../../scripts", "--bus", deadBus,
		"--datagrepper", dg.URL, "--epoch", now.Add(-time.Hour).Format(time.RFC3339), "--settle", "1s")
	deadline := time.Now().Add(20 * time.Second)
	for len(dg.Requests()) == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if len(dg.Requests()) == 0 {
		d.cmd.Process.Kill()
		t.Fatalf("the archive was never asked\n%s", d.out.String())
	}
	began := time.Now()
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-d.done:
		if err != nil {
			t.Errorf("daemon exited with %v\n%s", err, d.out.String())
		}
	case <-time.After(30 * time.Second):
		d.cmd.Process.Kill()
		t.Fatalf("daemon did not stop within 30 s of SIGTERM with a hanging archive\n%s", d.out.String())
	}
	if took := time.Since(began); took > 5*time.Second {
		t.Errorf("the stop took %s with a hanging archive", took)
	} else {
		t.Logf("stopped %s after SIGTERM", took.Round(time.Millisecond))
	}
}

// TestDaemonExitsWhenTheFollowerFails: the follower cannot start (its
// record of complete spans cannot be read: here the table is gone). The
// daemon must not go on serving with nothing journaled and every model
// held; it must exit with an error.
func TestDaemonExitsWhenTheFollowerFails(t *testing.T) {
	dg := dgtest.New(nil, dgtest.Options{})
	defer dg.Close()
	db := filepath.Join(t.TempDir(), "nofollow.db")
	args := []string{"--db", db, "--scripts", "../../scripts", "--bus", "none", "--datagrepper", dg.URL, "--settle", "1s"}
	d := startDaemon(t, args...)
	d.stop(t)
	sdb, err := sql.Open("sqlite3", db)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sdb.Exec(`DROP TABLE fill_spans`); err != nil {
		t.Fatal(err)
	}
	sdb.Close()

	cmd := command(append([]string{"run", "--listen", "127.0.0.1:0"}, args...)...)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err == nil {
			t.Errorf("the daemon exited with status 0 though its follower failed\n%s", out.String())
		}
	case <-time.After(15 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Errorf("the daemon kept running for 15 s with a follower that failed at start\n%s", grep(out.String(), "follow"))
	}
}

// TestDaemonExitsWhenItCannotListen: the HTTP address is taken. The
// daemon must say so and exit, not wait for ever on a follower and an
// engine that end only when told to.
func TestDaemonExitsWhenItCannotListen(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	db := filepath.Join(t.TempDir(), "nolisten.db")
	cmd := command("run", "--listen", ln.Addr().String(), "--db", db, "--scripts", "../../scripts", "--bus", "none")
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err == nil {
			t.Errorf("exit status 0 though it could not listen\n%s", out.String())
		}
	case <-time.After(15 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Errorf("the daemon hung for 15 s after it could not listen on %s\n%s", ln.Addr(), grep(out.String(), "listen"))
	}
}
