package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"statscache/engine/bus"
)

// TestReloadUnderTraffic reloads the scripts of a running daemon while
// messages flow: a script is added, one changed with the same table, one
// changed with a new table, one broken and one removed. The API always
// serves complete tables (a sum over the rebuilt table never goes down),
// and every model ends exact.
func TestReloadUnderTraffic(t *testing.T) {
	scripts := copyScripts(t, "../../scripts")
	c := newCorpus(t, 99)
	ctx := context.Background()
	pub, err := bus.NewPublisher(ctx, "tcp://127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	db := filepath.Join(t.TempDir(), "reload.db")
	pidfile := filepath.Join(t.TempDir(), "statscache.pid")
	d := startDaemon(t, "--db", db, "--scripts", scripts, "--bus", pub.Endpoint(), "--pidfile", pidfile,
		"--epoch", time.Now().Add(-time.Minute).Format(time.RFC3339), "--lateness", "2s", "--batch-interval", "100ms")
	d.waitConnected(t, 1)

	var mu sync.Mutex
	stop := make(chan struct{})
	var published atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			mu.Lock()
			topic, env := c.record(time.Now(), true)
			mu.Unlock()
			pub.Publish(topic, env)
			published.Add(1)
			time.Sleep(3 * time.Millisecond)
		}
	}()
	reload := func(how string) {
		t.Helper()
		if how == "command" {
			if out, err := command("reload", "--pidfile", pidfile).CombinedOutput(); err != nil {
				t.Fatalf("statscache reload: %v\n%s", err, out)
			}
		} else {
			d.cmd.Process.Signal(syscall.SIGHUP)
		}
		time.Sleep(700 * time.Millisecond)
	}
	write := func(name, src string) {
		if err := os.WriteFile(filepath.Join(scripts, name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(scripts, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	time.Sleep(500 * time.Millisecond)

	// Add a script.
	write("reload-new.lua", strings.Replace(read("volume.lua"), `name = "volume"`, `name = "reload-new"`, 1))
	reload("signal")
	// Change one, same table.
	write("volume.lua", read("volume.lua")+"\n-- changed, same table\n")
	// Break one: its running version must be kept.
	write("pagure-contribution.lua", read("pagure-contribution.lua")+"\nfunction broken(\n")
	// Remove one.
	os.Remove(filepath.Join(scripts, "volume-by-package.lua"))
	reload("command")

	// Change a table: volume-by-topic gets a new column. While its new
	// table is built, the API must keep serving complete tables.
	src := read("volume-by-topic.lua")
	// Edits that no longer match the shipped script would leave the table
	// unchanged and the test testing nothing: each must change the source.
	edit := func(old, new string) {
		t.Helper()
		if !strings.Contains(src, old) {
			t.Fatalf("volume-by-topic.lua no longer holds %q: update the test", old)
		}
		src = strings.Replace(src, old, new, 1)
	}
	edit(`{name = "volume", type = "integer", not_null = true, aggregate = "sum", doc = "messages in the bucket"},`,
		`{name = "volume", type = "integer", not_null = true, aggregate = "sum", doc = "messages in the bucket"},
    {name = "words", type = "integer", aggregate = "none", doc = "words in the topic"},`)
	edit(`db:add_counts(counts, {"timestamp", "topic"}, "volume")`,
		`for ts, topic, n in counts:drain() do db:add{timestamp = ts, topic = topic, volume = n, words = select(2, topic:gsub("%.", "")) + 1} end`)
	write("volume-by-topic.lua", src)
	var prev int64
	watchDone := make(chan struct{})
	var regress atomic.Int64
	go func() {
		defer close(watchDone)
		for i := 0; i < 40; i++ {
			n := sumVolume(t, d.addr, "volume-by-topic-1m")
			if n < prev {
				regress.Add(1)
				t.Errorf("volume-by-topic-1m served %d messages after %d: a half-built table", n, prev)
			}
			prev = n
			time.Sleep(50 * time.Millisecond)
		}
	}()
	reload("signal")
	<-watchDone
	time.Sleep(500 * time.Millisecond)
	close(stop)
	wg.Wait()

	mu.Lock()
	want := int64(len(c.all))
	mu.Unlock()
	d.waitTotal(t, want)
	for _, ident := range []string{"reload-new-1m", "volume-by-topic-1m", "volume-by-category-1h"} {
		deadline := time.Now().Add(30 * time.Second)
		for sumVolume(t, d.addr, ident) != want && time.Now().Before(deadline) {
			time.Sleep(200 * time.Millisecond)
		}
		if got := sumVolume(t, d.addr, ident); got != want {
			t.Errorf("%s counted %d messages, want %d", ident, got, want)
		}
	}
	// The rebuilt table has the new column.
	if body := get(t, "http://"+d.addr+"/api/volume-by-topic-1m?rows_per_page=1"); !strings.Contains(body, `"words"`) {
		t.Errorf("volume-by-topic-1m was not rebuilt with its new column: %s", body)
	}
	// The broken script's model kept running; the removed one stopped.
	st := d.status(t)
	models := map[string]bool{}
	for _, m := range st["models"].([]any) {
		models[m.(map[string]any)["ident"].(string)] = true
	}
	if !models["number-of-contribution-to-pagure.io-1d"] {
		t.Error("the broken script's model was stopped; its old version should keep running")
	}
	if models["volume-by-package-1m"] {
		t.Error("the removed script's model still runs")
	}
	reloads, _ := json.Marshal(st["reloads"])
	if !strings.Contains(string(reloads), "pagure-contribution.lua") {
		t.Errorf("the reload status does not report the broken script: %s", reloads)
	}
	d.stop(t)
	wantCat, wantMin := c.recount()
	gotCat, gotMin := tables(t, db)
	sameCounts(t, "volume-by-category-1h", gotCat, wantCat)
	sameCounts(t, "volume-1m", gotMin, wantMin)
	if published.Load() == 0 || math.Abs(float64(published.Load()-want)) > 1 {
		t.Logf("published %d, recounted %d", published.Load(), want)
	}
}

// sumVolume sums the volume column of every row of a model via the API.
func sumVolume(t *testing.T, addr, ident string) int64 {
	var sum int64
	for page := 1; ; page++ {
		resp, err := http.Get(fmt.Sprintf("http://%s/api/%s?order=asc&page=%d", addr, ident, page))
		if err != nil {
			t.Error(err)
			return -1
		}
		var rows []struct{ Volume int64 }
		json.NewDecoder(resp.Body).Decode(&rows)
		resp.Body.Close()
		if len(rows) == 0 {
			return sum
		}
		for _, r := range rows {
			sum += r.Volume
		}
	}
}
