package pgstore_test

import (
	"bufio"
	"fmt"
	"os"
	"testing"

	"statscache/engine"
	"statscache/engine/pgstore"
	"statscache/engine/pgstore/pgtest"
)

// benchMessages returns n messages with the records of the bundled sample
// (real bus messages, about 1 KB each) and fresh keys.
func benchMessages(b testing.TB, n, round int) []*engine.Message {
	f, err := os.Open("../../scripts/sample/messages.jsonl")
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	var raws [][]byte
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		raws = append(raws, append([]byte(nil), sc.Bytes()...))
	}
	out := make([]*engine.Message, n)
	for i := range out {
		k := fmt.Sprintf("%08d-%08d", round, i)
		out[i] = &engine.Message{ID: k, Key: k, Topic: "org.fedoraproject.prod.bench", TimeUS: int64(round*n+i) * 1000, Raw: raws[i%len(raws)]}
	}
	return out
}

// BenchmarkAppend journals batches of 1000 new messages (the daemon's
// batches are smaller, replay's 10,000).
func BenchmarkAppend(b *testing.B) {
	db, err := pgstore.Open(b.Context(), pgtest.URL(b), pgstore.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	batches := make([][]*engine.Message, b.N)
	for i := range batches {
		batches[i] = benchMessages(b, 1000, i)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		res, err := db.Append(b.Context(), batches[i])
		if err != nil {
			b.Fatal(err)
		}
		if res.Added != 1000 {
			b.Fatalf("added %d", res.Added)
		}
	}
	b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "msg/s")
}
