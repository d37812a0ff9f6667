package main

import (
	"context"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"statscache/engine/archive/dgtest"
	"statscache/engine/pgstore/pgtest"
)

// TestClusterThreeDaemons is the promise of several instances sharing one
// PostgreSQL database: three daemons follow a live libzmq publisher and
// fill 2 hours of history from the archive; one is killed with SIGKILL
// mid-stream, another stopped with SIGSTOP for longer than its leases and
// then continued. The tables equal an independent recount of everything
// published and archived, the commit log shows no model committed by two
// instances over the same span of the journal (each model's commits form
// one chain), and the stopped instance's late commits were refused by
// the database, as its /metrics count.
func TestClusterThreeDaemons(t *testing.T) {
	url := pgtest.URL(t)
	seed := testSeed(t)
	rng := rand.New(rand.NewSource(seed))
	c := newCorpus(t, seed)
	now := time.Now()
	epoch := now.Add(-2 * time.Hour).Truncate(time.Second)
	var history [][]byte
	for i := 0; i < 3000; i++ {
		ts := epoch.Add(time.Duration(rng.Int63n(int64(2*time.Hour-time.Minute)) / int64(time.Second) * int64(time.Second)))
		_, rec := c.record(ts, false)
		history = append(history, rec)
	}
	dg := dgtest.New(history, dgtest.Options{})
	defer dg.Close()
	pyEP, pyIn, pyWait := libzmqPublisher(t)

	scripts := shippedScripts(t, "volume.lua", "volume-by-category.lua")
	const lease = 3 * time.Second
	dir := t.TempDir()
	start := func(name string) *daemonProc {
		return startDaemon(t, "--db", url, "--scripts", scripts, "--bus", pyEP, "--datagrepper", dg.URL,
			"--epoch", epoch.Format(time.RFC3339), "--settle", "1s", "--lateness", "2s", "--batch-interval", "100ms",
			"--verify", "2s", "--lease", lease.String(), "--instance", name, "--pidfile", filepath.Join(dir, name+".pid"))
	}
	d1, d2, d3 := start("one"), start("two"), start("three")
	for _, d := range []*daemonProc{d1, d2, d3} {
		d.waitConnected(t, 1)
	}

	fd := startFeed(c, dg, pyIn, 25*time.Millisecond)

	// Every instance runs some models, which have caught up with the
	// history and follow the bus, before anything happens to them.
	waitSpread(t, d1, 3)
	deadline := time.Now().Add(90 * time.Second)
	for d1.total(t) < int64(len(history)) || !following(t, d2) || !following(t, d3) {
		if time.Now().After(deadline) {
			t.Fatalf("the models did not catch up with the history: %d of %d\n%v", d1.total(t), len(history), d1.status(t)["cluster"])
		}
		time.Sleep(200 * time.Millisecond)
	}
	d2.cmd.Process.Signal(syscall.SIGKILL)
	<-d2.done
	t.Log("killed two")
	time.Sleep(time.Second)
	d3.cmd.Process.Signal(syscall.SIGSTOP)
	t.Log("stopped three")
	time.Sleep(3 * lease)
	d3.cmd.Process.Signal(syscall.SIGCONT)
	t.Log("continued three")
	time.Sleep(3 * time.Second)
	want := fd.Stop()
	d1.waitTotal(t, want)
	refused := metric(t, d3, "statscache_lease_refused_commits_total")
	st1, st3 := d1.status(t), d3.status(t)
	d1.stop(t)
	d3.stop(t)
	pyIn.Close()
	pyWait()

	if refused < 1 {
		t.Errorf("the stopped instance's refused commits: %v, want at least one\n%s", refused, tail(d3.out.String(), 30))
	}
	wantCat, wantMin := c.recount()
	gotCat, gotMin := pgTables(t, url)
	sameCounts(t, "volume-by-category-1h", gotCat, wantCat)
	sameCounts(t, "volume-1m", gotMin, wantMin)
	for _, st := range []map[string]any{st1, st3} {
		if late := st["journal"].(map[string]any)["late"].(float64); late != 0 {
			t.Errorf("%v messages flagged late", late)
		}
	}
	holders := commitChains(t, url)
	if len(holders) < 3 {
		t.Errorf("commits came from %v: want all three instances to have committed", holders)
	}
	t.Logf("%d messages (%d published live), %v refused commits in the stopped instance, commits by %v", want, fd.published.Load(), refused, holders)
}

// waitSpread waits until n instances hold model leases, as d's /status
// shows the cluster.
func waitSpread(t *testing.T, d *daemonProc, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var last any
	for time.Now().Before(deadline) {
		cl, _ := d.status(t)["cluster"].(map[string]any)
		last = cl
		ins, _ := cl["instances"].([]any)
		busy := 0
		for _, in := range ins {
			if ms, _ := in.(map[string]any)["models"].([]any); len(ms) > 0 {
				busy++
			}
		}
		if busy >= n {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("the models did not spread over %d instances: %v", n, last)
}

// following reports whether d runs at least one model and every model it
// runs has processed messages.
func following(t *testing.T, d *daemonProc) bool {
	running := 0
	for _, m := range d.status(t)["models"].([]any) {
		m := m.(map[string]any)
		if m["running"] == true {
			running++
			if m["processed"].(float64) == 0 {
				return false
			}
		}
	}
	return running > 0
}

// metric reads one unlabelled metric from a daemon's /metrics.
func metric(t *testing.T, d *daemonProc, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + d.addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(`(?m)^` + name + ` (\S+)$`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("no %s in /metrics", name)
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}

// pgTables reads the counts tables() reads from SQLite.
func pgTables(t *testing.T, url string) (byCat, byMin map[string]int64) {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	byCat, byMin = map[string]int64{}, map[string]int64{}
	read := func(q string, into map[string]int64) {
		rows, err := conn.Query(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var k string
			var n int64
			if err := rows.Scan(&k, &n); err != nil {
				t.Fatal(err)
			}
			into[k] = n
		}
	}
	read(`SELECT round("timestamp")::bigint::text || '|' || category, volume FROM model_volume_by_category_1h`, byCat)
	read(`SELECT round("timestamp")::bigint::text, volume FROM model_volume_1m`, byMin)
	return byCat, byMin
}

// commitChains checks the commit log: every model's commits, in the
// order they committed, form one chain (each starts where the one before
// ended), so no part of the journal was committed twice, by two instances
// or one; a token belongs to one instance. It returns the instances that
// committed.
func commitChains(t *testing.T, url string) map[string]int {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT ident, holder, token, from_us, from_key, to_us, to_key FROM cluster_commits ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	type end struct {
		us  int64
		key string
	}
	last := map[string]end{}
	tokenHolder := map[string]string{}
	holders := map[string]int{}
	n := 0
	for rows.Next() {
		var ident, holder, fk, tk string
		var token, fu, tu int64
		if err := rows.Scan(&ident, &holder, &token, &fu, &fk, &tu, &tk); err != nil {
			t.Fatal(err)
		}
		n++
		holders[holder]++
		tok := fmt.Sprintf("%s/%d", ident, token)
		if h, ok := tokenHolder[tok]; ok && h != holder {
			t.Errorf("%s: token %d used by %s and %s", ident, token, h, holder)
		}
		tokenHolder[tok] = holder
		if prev, ok := last[ident]; ok && (prev.us != fu || prev.key != fk) {
			t.Errorf("%s: a commit by %s (token %d) starts at %d/%s, the one before ended at %d/%s: a span committed twice or skipped",
				ident, holder, token, fu, fk, prev.us, prev.key)
		}
		last[ident] = end{tu, tk}
	}
	if n == 0 {
		t.Error("no commit logged")
	}
	return holders
}

// TestClusterReloadAndDisagreement: two daemons on one database spread
// the models between them; SIGHUP to one reloads both, each from its own
// scripts directory; when their copies of a script differ, no instance
// runs its models and /status says which instance has which version;
// once they agree again the models run again.
func TestClusterReloadAndDisagreement(t *testing.T) {
	url := pgtest.URL(t)
	dir := t.TempDir()
	src, err := os.ReadFile("../../scripts/volume.lua")
	if err != nil {
		t.Fatal(err)
	}
	scripts := map[string]string{}
	start := func(name string) *daemonProc {
		s := filepath.Join(dir, name)
		os.MkdirAll(s, 0o755)
		if err := os.WriteFile(filepath.Join(s, "volume.lua"), src, 0o644); err != nil {
			t.Fatal(err)
		}
		scripts[name] = s
		return startDaemon(t, "--db", url, "--scripts", s, "--bus", "none", "--lease", "3s",
			"--instance", name, "--pidfile", filepath.Join(dir, name+".pid"))
	}
	a, b := start("a"), start("b")
	defer a.stop(t)
	defer b.stop(t)
	waitSpread(t, a, 2)

	reloads := func(d *daemonProc) int {
		r, _ := d.status(t)["reloads"].([]any)
		return len(r)
	}
	// A changed copy of volume.lua in b only: a reload asked of a reaches
	// both, and the volume models then run nowhere.
	changed := []byte(string(src) + "\n-- b's copy differs\n")
	if err := os.WriteFile(filepath.Join(scripts["b"], "volume.lua"), changed, 0o644); err != nil {
		t.Fatal(err)
	}
	a.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, "both instances reloaded", func() bool { return reloads(a) == 1 && reloads(b) == 1 })
	var conflicts map[string]any
	waitFor(t, "the disagreement shown and the volume models stopped", func() bool {
		cl, _ := b.status(t)["cluster"].(map[string]any)
		conflicts, _ = cl["conflicts"].(map[string]any)
		return len(conflicts) == 3 && runningAnywhere(t, "volume-1m", a, b) == 0
	})
	c, _ := conflicts["volume-1m"].(string)
	if !regexp.MustCompile(`a has version .* b has version `).MatchString(c) {
		t.Errorf("conflict reason %q does not say which instance has which version", c)
	}
	// The same script again, reloaded through b: the models run again,
	// each in one instance.
	if err := os.WriteFile(filepath.Join(scripts["b"], "volume.lua"), src, 0o644); err != nil {
		t.Fatal(err)
	}
	b.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, "the volume models running again", func() bool {
		return reloads(a) == 2 && reloads(b) == 2 && runningAnywhere(t, "volume-1m", a, b) == 1
	})
}

// runningAnywhere counts the instances that run model ident.
func runningAnywhere(t *testing.T, ident string, ds ...*daemonProc) int {
	n := 0
	for _, d := range ds {
		for _, m := range d.status(t)["models"].([]any) {
			m := m.(map[string]any)
			if m["ident"] == ident && m["running"] == true {
				n++
			}
		}
	}
	return n
}

// waitFor polls cond until it holds, for 30 seconds at most.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
