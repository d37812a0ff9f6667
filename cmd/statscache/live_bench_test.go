package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"statscache/cmd/statscache/kojitest"
)

// liveBenchEnv reads a setting of BenchmarkLiveLatency from the
// environment, with its default.
func liveBenchEnv(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// BenchmarkLiveLatency is issue 13's live target: the real daemon with
// every shipped model follows a libzmq publisher sending at a steady rate,
// and every message's latency is measured from its publication to the
// moment /api/volume-1s counts it. It runs for a minute and a half, so it
// is skipped unless STATSCACHE_BENCH_LIVE=1:
//
//	STATSCACHE_BENCH_LIVE=1 go test -run '^$' -bench LiveLatency -benchtime 1x ./cmd/statscache/
//
// STATSCACHE_BENCH_LIVE_RATE (msg/s, 2000), _SECONDS (60) and _ARGS
// (extra daemon flags, e.g. "--lateness 2s") change the run.
//
// How a message's latency is known without marking it: models count in
// the order of message time, and a message's time is the instant it was
// handed to the publisher. So the k-th message published within one
// second is counted once that second's volume-1s row reaches k; the API is
// polled continuously and the first poll that shows it is the moment it
// was seen (the figures include up to one poll's time, a few ms).
func BenchmarkLiveLatency(b *testing.B) {
	if os.Getenv("STATSCACHE_BENCH_LIVE") != "1" {
		b.Skip("set STATSCACHE_BENCH_LIVE=1 to run the live latency benchmark (90 s)")
	}
	rate, err := strconv.Atoi(liveBenchEnv("STATSCACHE_BENCH_LIVE_RATE", "2000"))
	if err != nil || rate <= 0 {
		b.Fatalf("STATSCACHE_BENCH_LIVE_RATE: %v", err)
	}
	secs, err := strconv.Atoi(liveBenchEnv("STATSCACHE_BENCH_LIVE_SECONDS", "60"))
	if err != nil || secs <= 0 {
		b.Fatalf("STATSCACHE_BENCH_LIVE_SECONDS: %v", err)
	}
	extra := strings.Fields(os.Getenv("STATSCACHE_BENCH_LIVE_ARGS"))
	for i := 0; i < b.N; i++ {
		runLiveBench(b, rate, time.Duration(secs)*time.Second, extra)
	}
}

func runLiveBench(b *testing.B, rate int, dur time.Duration, extra []string) {
	tpl, err := sampleRecords()
	if err != nil {
		b.Fatal(err)
	}
	ep, pubIn, pubWait := startLibzmqPublisher(b, 0)
	koji := httptest.NewServer(kojitest.New(kojitest.Options{}))
	defer koji.Close()
	db := filepath.Join(b.TempDir(), "live.db")
	args := append([]string{"--db", db, "--scripts", "../../scripts", "--bus", ep, "--lateness", "1s",
		"--log-level", "info", "--service", "koji=" + koji.URL + "/kojihub"}, extra...)
	d := startDaemon(b, args...)
	defer func() {
		if d.cmd.ProcessState == nil {
			d.cmd.Process.Kill()
		}
	}()
	d.waitConnected(b, 1)

	// The poller: the newest volume-1s rows, as fast as the API answers.
	type seen struct {
		at     time.Time
		volume int64
	}
	var (
		mu      sync.Mutex
		counted = map[int64][]seen{} // bucket start (Unix s) → growth of its row
		polls   int
		peakRSS int64
	)
	stopPoll := make(chan struct{})
	pollDone := make(chan struct{})
	go func() {
		defer close(pollDone)
		url := "http://" + d.addr + "/api/volume-1s?rows_per_page=10"
		for {
			select {
			case <-stopPoll:
				return
			default:
			}
			resp, err := http.Get(url)
			if err != nil {
				continue
			}
			var rows []struct {
				Timestamp int64
				Volume    int64
			}
			err = json.NewDecoder(resp.Body).Decode(&rows)
			resp.Body.Close()
			at := time.Now()
			if rss := rssKB(d.cmd.Process.Pid, "VmRSS"); rss > 0 {
				mu.Lock()
				peakRSS = max(peakRSS, rss)
				mu.Unlock()
			}
			if err != nil {
				continue
			}
			mu.Lock()
			polls++
			for _, r := range rows {
				s := r.Timestamp - 1 // a row is labelled with its bucket's end
				h := counted[s]
				if len(h) == 0 || h[len(h)-1].volume < r.Volume {
					counted[s] = append(h, seen{at, r.Volume})
				}
			}
			mu.Unlock()
			time.Sleep(5 * time.Millisecond)
		}
	}()

	// Publish at rate msg/s in small paced batches; each message's time is
	// the instant it is written to the publisher.
	rng := rand.New(rand.NewSource(1))
	published := map[int64][]time.Time{}
	w := bufio.NewWriterSize(pubIn, 1<<20)
	var topic struct{ Topic string }
	start := time.Now()
	sent := 0
	load0, _ := os.ReadFile("/proc/loadavg")
	for time.Since(start) < dur {
		due := int(time.Since(start).Seconds() * float64(rate))
		for ; sent < due; sent++ {
			var m map[string]any
			raw := tpl[rng.Intn(len(tpl))]
			json.Unmarshal(raw, &m)
			json.Unmarshal(raw, &topic)
			now := time.Now()
			m["msg_id"] = fmt.Sprintf("%d-%08x-%04x-4%03x-a%03x-%012x", now.Year(), rng.Uint32(), rng.Intn(1<<16), rng.Intn(1<<12), rng.Intn(1<<12), rng.Int63n(1<<48))
			m["timestamp"] = float64(now.UnixMicro()) / 1e6
			env, _ := json.Marshal(m)
			fmt.Fprintf(w, "%s\t%s\n", topic.Topic, env)
			published[now.Unix()] = append(published[now.Unix()], now)
		}
		if err := w.Flush(); err != nil {
			b.Fatalf("publisher: %v", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	elapsed := time.Since(start)
	load1, _ := os.ReadFile("/proc/loadavg")

	// Wait until the last second is counted (or clearly never will be).
	last := time.Now().Add(30 * time.Second)
	var lastSec int64
	for s := range published {
		lastSec = max(lastSec, s)
	}
	for time.Now().Before(last) {
		mu.Lock()
		h := counted[lastSec]
		done := len(h) > 0 && h[len(h)-1].volume >= int64(len(published[lastSec]))
		mu.Unlock()
		if done || len(published[lastSec]) == 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(time.Second)
	close(stopPoll)
	<-pollDone
	metrics := get(b, "http://"+d.addr+"/metrics")
	rss, hwm := rssKB(d.cmd.Process.Pid, "VmRSS"), rssKB(d.cmd.Process.Pid, "VmHWM")
	cpu := cpuTime(d.cmd.Process.Pid)
	d.stop(b)
	pubIn.Close()
	pubWait()

	// Each message's latency: the first poll whose row for its second had
	// reached its rank within that second.
	var lat []time.Duration
	missing, total := 0, 0
	for sec, times := range published {
		h := counted[sec]
		j := 0
		for k, p := range times {
			total++
			for j < len(h) && h[j].volume < int64(k+1) {
				j++
			}
			if j == len(h) {
				missing += len(times) - k
				break
			}
			lat = append(lat, h[j].at.Sub(p))
		}
	}
	slices.Sort(lat)
	pct := func(q float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(q*float64(len(lat))))]
	}
	journaled := metricValue(metrics, `statscache_messages_journaled_total{source="bus"}`)
	late := metricValue(metrics, `statscache_messages_late_total`)
	nJournaled, _ := strconv.ParseFloat(journaled, 64)
	b.ReportMetric(float64(total)/elapsed.Seconds(), "msg/s")
	b.ReportMetric(float64(pct(0.5).Milliseconds()), "p50-ms")
	b.ReportMetric(float64(pct(0.99).Milliseconds()), "p99-ms")
	if len(lat) > 0 {
		b.ReportMetric(float64(lat[len(lat)-1].Milliseconds()), "max-ms")
	}
	b.ReportMetric(float64(max(peakRSS, hwm))/1024, "peak-RSS-MB")
	b.Logf("published %d in %s (%.0f msg/s); journaled %s, late %s; never counted %d; latency p50 %s p90 %s p99 %s max %s over %d polls; RSS at end %d MB, peak %d MB; daemon CPU %s; load before %s after %s",
		total, elapsed.Round(time.Millisecond), float64(total)/elapsed.Seconds(), journaled, late, missing,
		pct(0.5).Round(time.Millisecond), pct(0.9).Round(time.Millisecond), pct(0.99).Round(time.Millisecond),
		lat[len(lat)-1].Round(time.Millisecond), polls, rss/1024, max(peakRSS, hwm)/1024, cpu,
		strings.Join(strings.Fields(string(load0))[:3], " "), strings.Join(strings.Fields(string(load1))[:3], " "))
	if missing > 0 || int(nJournaled) != total {
		b.Errorf("lost messages: published %d, journaled %s, %d never counted in volume-1s", total, journaled, missing)
	}
}

// rssKB reads a memory figure (VmRSS, VmHWM) of a process, in KiB.
func rssKB(pid int, field string) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	m := regexp.MustCompile(`(?m)^` + field + `:\s+(\d+) kB`).FindSubmatch(data)
	if m == nil {
		return 0
	}
	n, _ := strconv.ParseInt(string(m[1]), 10, 64)
	return n
}

// metricValue is the value of one series in a /metrics text.
func metricValue(metrics, series string) string {
	for _, l := range strings.Split(metrics, "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			return v
		}
	}
	return "absent"
}

// cpuTime is the user and system CPU time a process has used so far.
func cpuTime(pid int) time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The fields after the command name, which is in parentheses.
	f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ is 100 on Linux
}
