package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// benchCount is the corpus size of the replay benchmarks; the README
// figures use STATSCACHE_BENCH_COUNT=100000.
func benchCount() int {
	if n, err := strconv.Atoi(os.Getenv("STATSCACHE_BENCH_COUNT")); err == nil && n > 0 {
		return n
	}
	return 20000
}

// benchCorpus is the corpus of the replay benchmarks: the file named by
// STATSCACHE_BENCH_CORPUS when set (so that statscache and the PostgreSQL
// anchor run on the same records, see .ci/bench), else n generated messages.
func benchCorpus(b *testing.B, n int) string {
	if f := os.Getenv("STATSCACHE_BENCH_CORPUS"); f != "" {
		return f
	}
	return genCorpus(b, n, 1, false)
}

// volumeScripts copies the three volume scripts (11 model instances) to a
// directory of their own.
func volumeScripts(b *testing.B) string {
	dir := b.TempDir()
	for _, f := range []string{"volume.lua", "volume-by-category.lua", "volume-by-topic.lua"} {
		data, err := os.ReadFile(filepath.Join("../../scripts", f))
		if err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), data, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	return dir
}

func benchReplay(b *testing.B, c *common, files []string) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if err := replay(context.Background(), c, files, false, log, io.Discard, io.Discard); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkReplay measures replay throughput through the 11 volume model
// instances, on SQLite and on PostgreSQL (a fresh database per run):
// "end-to-end" journals a fresh corpus and runs the models;
// "journal" only journals it; "models" runs the models over a journal that
// is already filled (the catch-up of a new or restarted model).
func BenchmarkReplay(b *testing.B) {
	n := benchCount()
	corpus := benchCorpus(b, n)
	scriptsDir := volumeScripts(b)
	empty := b.TempDir()
	report := func(b *testing.B, elapsed time.Duration) {
		b.ReportMetric(float64(n)*float64(b.N)/elapsed.Seconds(), "msg/s")
	}
	newCommon := func(db, scripts string) *common {
		return &common{db: db, scripts: scripts, sync: "NORMAL", batch: 5000, batchInterval: time.Second,
			maxBytes: 8 << 20, maxDepth: 64}
	}
	for _, k := range storeKinds {
		b.Run(k.name, func(b *testing.B) {
			b.Run("end-to-end", func(b *testing.B) {
				var total time.Duration
				for i := 0; i < b.N; i++ {
					db := k.newDB(b, "e2e")
					start := time.Now()
					benchReplay(b, newCommon(db, scriptsDir), []string{corpus})
					total += time.Since(start)
				}
				report(b, total)
			})
			b.Run("journal", func(b *testing.B) {
				var total time.Duration
				for i := 0; i < b.N; i++ {
					db := k.newDB(b, "journal")
					start := time.Now()
					benchReplay(b, newCommon(db, empty), []string{corpus})
					total += time.Since(start)
				}
				report(b, total)
			})
			b.Run("models", func(b *testing.B) {
				var total time.Duration
				for i := 0; i < b.N; i++ {
					db := k.newDB(b, "models")
					benchReplay(b, newCommon(db, empty), []string{corpus})
					start := time.Now()
					benchReplay(b, newCommon(db, scriptsDir), nil)
					total += time.Since(start)
				}
				report(b, total)
			})
		})
	}
}
