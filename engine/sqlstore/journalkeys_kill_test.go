package sqlstore

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"statscache/engine"
)

// The kill test's child process: it appends messages [START, END) of
// killMsg in batches, each with a few messages sent again, and prints the
// last index of a batch once its Append has returned.
const killEnvDB = "STATSCACHE_KEYKILL_DB"

const (
	killMerge = 60 // recentKeysMerge in the kill test: a merge every few appends
	killBatch = 25 // fresh messages in an append
	killTotal = 3000
)

// killKeyHash is keyHash in the kill test, in the parent and in the child:
// one key in seven shares a hash with about forty others, so collisions are
// found across merges as well as plain duplicates.
func killKeyHash(key string) int64 {
	s := sha256.Sum256([]byte(key))
	h := int64(binary.BigEndian.Uint64(s[:8]))
	if s[8]%7 == 0 {
		return h & 0xF
	}
	return h
}

// killMsg is message i of the kill test. A copy sent again has the same
// key at a later time: only the dedupe, not the journal's primary key,
// can tell it is a duplicate.
func killMsg(i int, again bool) *engine.Message {
	t := int64(1_000_000 + i/3*1000)
	if again {
		t += 7
	}
	key := fmt.Sprintf("k%06d", i)
	return &engine.Message{TimeUS: t, Key: key, ID: "2015-" + key, Topic: "org.fedoraproject.prod.t" + fmt.Sprint(i%5),
		Raw: []byte(fmt.Sprintf(`{"i": %d, "again": %v, "body": "%0*d"}`, i, again, 40+i%200, i))}
}

// TestJournalKeysKill: appends interrupted by SIGKILL at random instants,
// with journal_keys_recent merged every few appends, lose no acknowledged
// message and journal none twice; no hash ends up in both tables, the
// merge counter is counted again at Open (the recent table stays bounded
// across restarts), and sending everything again adds nothing.
func TestJournalKeysKill(t *testing.T) {
	if path := os.Getenv(killEnvDB); path != "" {
		killChild(t, path)
		return
	}
	if testing.Short() {
		t.Skip("kills child processes")
	}
	oldMerge, oldHash := recentKeysMerge, keyHash
	recentKeysMerge, keyHash = killMerge, killKeyHash
	t.Cleanup(func() { recentKeysMerge, keyHash = oldMerge, oldHash })
	path := filepath.Join(t.TempDir(), "stats.db")
	rng := rand.New(rand.NewPCG(11, uint64(time.Now().UnixNano())))
	acked := -1 // every message up to this one was acknowledged (a run starts a little before)
	kills := 0
	for run := 0; ; run++ {
		start := max(0, acked+1-rng.IntN(40))
		killAfter := 0 // acknowledgements, then a random instant within the next append or two
		if run < 10 {
			killAfter = 1 + rng.IntN(14)
		}
		last, killed := runKillChild(t, path, start, killAfter, time.Duration(rng.IntN(4000))*time.Microsecond)
		acked = max(acked, last)
		if killed {
			kills++
		}
		checkKillDB(t, path, acked, false)
		if killAfter == 0 {
			break
		}
	}
	t.Logf("%d runs killed before they finished", kills)
	if kills < 5 {
		t.Errorf("only %d of the runs were killed before they finished", kills)
	}
	if acked != killTotal-1 {
		t.Fatalf("the last run acknowledged up to %d, want %d", acked, killTotal-1)
	}
	checkKillDB(t, path, acked, true)
}

// runKillChild runs the child from start, SIGKILLed delay after its
// killAfter-th acknowledgement (unless killAfter is 0), and returns the last index it acknowledged and
// whether it was killed before it finished.
func runKillChild(t *testing.T, path string, start, killAfter int, delay time.Duration) (int, bool) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestJournalKeysKill$", "-test.count=1")
	cmd.Env = append(os.Environ(), killEnvDB+"="+path, "STATSCACHE_KEYKILL_START="+strconv.Itoa(start))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	last, acks := -1, 0
	reached := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var n int
			if _, err := fmt.Sscanf(sc.Text(), "acked %d", &n); err != nil {
				continue // the test framework's own lines
			}
			last = n
			if acks++; acks == killAfter {
				close(reached)
			}
		}
	}()
	if killAfter > 0 {
		select {
		case <-reached:
			time.Sleep(delay)
		case <-done:
		}
		cmd.Process.Signal(syscall.SIGKILL)
	}
	<-done
	err = cmd.Wait()
	killed := false
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		killed = true
	} else if err != nil {
		t.Fatalf("child from %d: %v", start, err)
	}
	return last, killed
}

// killChild is the child's side of TestJournalKeysKill.
func killChild(t *testing.T, path string) {
	recentKeysMerge, keyHash = killMerge, killKeyHash
	start, err := strconv.Atoi(os.Getenv("STATSCACHE_KEYKILL_START"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	db, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rng := rand.New(rand.NewPCG(uint64(start), 5))
	for i := start; i < killTotal; i += killBatch {
		end := min(i+killBatch, killTotal)
		var batch []*engine.Message
		for j := i; j < end; j++ {
			batch = append(batch, killMsg(j, false))
			if rng.IntN(5) == 0 { // again, in the same append
				batch = append(batch, killMsg(j, true))
			}
		}
		for k := 0; k < 5 && i > 0; k++ {
			batch = append(batch, killMsg(rng.IntN(i), true))
		}
		rng.Shuffle(len(batch), func(a, b int) { batch[a], batch[b] = batch[b], batch[a] })
		if _, err := db.Append(ctx, batch); err != nil {
			t.Fatal(err)
		}
		fmt.Printf("acked %d\n", end-1)
	}
}

// checkKillDB opens the database and checks its journal and dedupe tables:
// messages 0..acked journaled once, nothing else, hashes in one table,
// the merge counter counted. When all is set, every message up to acked is
// sent again and must all be duplicates.
func checkKillDB(t *testing.T, path string, acked int, all bool) {
	t.Helper()
	ctx := context.Background()
	db, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if got := dumpQuery(t, db, `SELECT key FROM journal GROUP BY key HAVING count(*) > 1 LIMIT 3`); got != "" {
		t.Fatalf("keys journaled twice: %s", got)
	}
	var missing []string
	have := map[string]bool{}
	rows, err := db.w.Query(`SELECT key FROM journal`)
	if err != nil {
		t.Fatal(err)
	}
	hashes := map[int64]bool{}
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			t.Fatal(err)
		}
		have[k] = true
		hashes[killKeyHash(k)] = true
	}
	rows.Close()
	for i := 0; i <= acked; i++ {
		if k := killMsg(i, false).Key; !have[k] {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		t.Fatalf("%d acknowledged messages missing, first %s", len(missing), missing[0])
	}
	both := dumpQuery(t, db, `SELECT count(*) FROM journal_keys JOIN journal_keys_recent USING (h)`)
	total := dumpQuery(t, db, `SELECT (SELECT count(*) FROM journal_keys) + (SELECT count(*) FROM journal_keys_recent)`)
	if both != "0" || total != fmt.Sprint(len(hashes)) {
		t.Fatalf("%s hashes in both tables, %s in all; want 0 and %d (the journal's)", both, total, len(hashes))
	}
	colls := dumpQuery(t, db, `SELECT count(*) FROM journal_collisions`)
	if colls != fmt.Sprint(len(have)-len(hashes)) {
		t.Fatalf("%s collisions recorded, want %d", colls, len(have)-len(hashes))
	}
	recent := dumpQuery(t, db, `SELECT count(*) FROM journal_keys_recent`)
	if fmt.Sprint(db.recentKeys.Load()) != recent {
		t.Fatalf("merge counter %d after Open, table holds %s", db.recentKeys.Load(), recent)
	}
	if n, _ := strconv.Atoi(recent); n >= killMerge+2*killBatch+5 {
		t.Fatalf("journal_keys_recent holds %d hashes, merged at %d", n, killMerge)
	}
	if !all {
		return
	}
	if len(have) != acked+1 {
		t.Fatalf("journal holds %d messages, want %d", len(have), acked+1)
	}
	var again []*engine.Message
	for i := 0; i <= acked; i++ {
		again = append(again, killMsg(i, i%2 == 0))
	}
	res, err := db.Append(ctx, again)
	if err != nil {
		t.Fatal(err)
	}
	if res.Added != 0 || res.Duplicates != len(again) {
		t.Fatalf("sending everything again added %d, %d duplicates; want 0 and %d", res.Added, res.Duplicates, len(again))
	}
}
