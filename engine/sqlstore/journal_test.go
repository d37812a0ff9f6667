package sqlstore

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"statscache/engine"
)

func jmsg(t int64, key, raw string) *engine.Message {
	return &engine.Message{TimeUS: t, Key: key, ID: "2015-" + key, Topic: "org.fedoraproject.prod.t" + fmt.Sprint(t%5), Raw: []byte(raw)}
}

// scanAll reads the whole journal as "time key raw" lines.
func scanAll(t *testing.T, db *DB) string {
	t.Helper()
	var b strings.Builder
	var after engine.Position
	for {
		msgs, err := db.Scan(context.Background(), after, 7)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			fmt.Fprintf(&b, "%d %s %s\n", m.TimeUS, m.Key, record(t, m))
		}
		if len(msgs) < 7 {
			return b.String()
		}
		after = msgs[len(msgs)-1].Pos()
	}
}

// Keys whose hashes collide are told apart: each is journaled once,
// whether it collides with a key of an earlier append, of the same append,
// or with one that itself collided.
// It holds whether the hashes are merged into journal_keys after every
// append or stay in journal_keys_recent.
func TestJournalHashCollisions(t *testing.T) {
	for _, merge := range []int64{1, 1 << 40} {
		t.Run(fmt.Sprintf("merge=%d", merge), func(t *testing.T) {
			oldMerge := recentKeysMerge
			recentKeysMerge = merge
			t.Cleanup(func() { recentKeysMerge = oldMerge })
			testJournalHashCollisions(t)
		})
	}
}

func testJournalHashCollisions(t *testing.T) {
	ctx := context.Background()
	old := keyHash
	keyHash = func(key string) int64 { return int64(len(key)) } // "a", "b", "c" collide
	t.Cleanup(func() { keyHash = old })
	db := openTest(t, 0)
	if _, err := db.Register(ctx, testSpec("volume-1h")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		msgs       []*engine.Message
		added, dup int
	}{
		{[]*engine.Message{jmsg(2, "a", "{1}"), jmsg(1, "b", "{2}"), jmsg(1, "b", "{dup}")}, 2, 1},
		{[]*engine.Message{jmsg(1, "b", "{x}"), jmsg(3, "c", "{3}"), jmsg(2, "a", "{x}"), jmsg(3, "c", "{x}"), jmsg(9, "dd", "{4}")}, 2, 3},
		{[]*engine.Message{jmsg(5, "c", "{x}"), jmsg(0, "b", "{x}"), jmsg(9, "dd", "{x}"), jmsg(4, "e", "{5}")}, 1, 3},
	} {
		res, err := db.Append(ctx, tc.msgs)
		if err != nil {
			t.Fatal(err)
		}
		if res.Added != tc.added || res.Duplicates != tc.dup {
			t.Errorf("append %d messages: added %d, duplicates %d; want %d and %d", len(tc.msgs), res.Added, res.Duplicates, tc.added, tc.dup)
		}
	}
	want := "1 b {2}\n2 a {1}\n3 c {3}\n4 e {5}\n9 dd {4}\n"
	if got := scanAll(t, db); got != want {
		t.Errorf("journal:\n%s\nwant:\n%s", got, want)
	}
	if got := dumpQuery(t, db, `SELECT key FROM journal_collisions ORDER BY key`); got != "b\nc\ne" {
		t.Errorf("collisions: %q", got)
	}
	if k, r := kept(t, db), recount(t, db); k != r {
		t.Errorf("kept figures\n%s\nfull recount\n%s", k, r)
	}
}

// Records come back byte for byte: compressed with the dictionary made
// from the first append, small ones stored as received, one that starts
// with the compressed mark, and after the database is opened again. A
// second handle opened before the dictionary existed reads it when a
// record names it.
func TestJournalRecordsRoundTrip(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "stats.db")
	db, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	other, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	var msgs []*engine.Message
	want := map[string][]byte{}
	for i := 0; i < 300; i++ {
		raw := fmt.Sprintf(`{"msg_id": "2015-k%04d", "topic": "org.fedoraproject.prod.buildsys.build.state.change", "msg": {"owner": "user%d", "name": "package-%d", "build_id": %d}}`, i, i%17, i%31, i*7919)
		switch i {
		case 5:
			raw = "{}"
		case 6:
			raw = "\x00\x01 starts like a compressed record"
		}
		m := jmsg(int64(1000+i), fmt.Sprintf("k%04d", i), raw)
		msgs = append(msgs, m)
		want[m.Key] = m.Raw
	}
	if _, err := db.Append(ctx, msgs[:200]); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Append(ctx, msgs[200:]); err != nil {
		t.Fatal(err)
	}
	if got := dumpQuery(t, db, `SELECT count(*) FROM journal_dicts`); got != "1" {
		t.Fatalf("dictionaries: %s", got)
	}
	var stored, input int
	if err := db.w.QueryRow(`SELECT sum(length(raw)) FROM journal`).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		input += len(m.Raw)
	}
	if stored*3 > input {
		t.Errorf("records take %d bytes stored for %d received: want at most a third", stored, input)
	}
	check := func(name string, db *DB) {
		got, err := db.Scan(ctx, engine.Position{}, 1000)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(got) != len(msgs) {
			t.Fatalf("%s: %d messages, want %d", name, len(got), len(msgs))
		}
		for _, m := range got {
			if raw := record(t, m); !bytes.Equal(raw, want[m.Key]) {
				t.Errorf("%s: %s: got %q, want %q", name, m.Key, raw, want[m.Key])
			}
		}
	}
	check("writer", db)
	check("handle opened before the dictionary", other)
	db.Close()
	db, err = Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	check("reopened", db)
}

// record reads a journaled message's record (stored packed until read).
func record(t testing.TB, m *engine.Message) []byte {
	t.Helper()
	raw, err := m.Record()
	if err != nil {
		t.Fatalf("record of %s: %v", m.ID, err)
	}
	return raw
}

// TestJournalKeysMerge: the hashes of new keys go to journal_keys_recent
// and are merged into journal_keys once there are enough; duplicates are
// found in either table, before and after a merge and after the database
// is opened again, and every hash is in exactly one of the two.
func TestJournalKeysMerge(t *testing.T) {
	ctx := context.Background()
	oldMerge := recentKeysMerge
	recentKeysMerge = 40
	t.Cleanup(func() { recentKeysMerge = oldMerge })
	path := filepath.Join(t.TempDir(), "stats.db")
	db, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	seen := map[string]bool{}
	sent := []*engine.Message{}
	merges := 0
	for round := 0; round < 30; round++ {
		if round == 15 {
			db.Close()
			if db, err = Open(ctx, path, Options{}); err != nil {
				t.Fatal(err)
			}
		}
		var batch []*engine.Message
		wantAdded := 0
		for i := 0; i < 12; i++ {
			if len(sent) > 0 && rng.IntN(3) == 0 {
				old := sent[rng.IntN(len(sent))]
				batch = append(batch, jmsg(old.TimeUS, old.Key, "{again}"))
				continue
			}
			m := jmsg(int64(len(sent)+1), fmt.Sprintf("k%05d", len(sent)), "{}")
			sent = append(sent, m)
			batch = append(batch, m)
		}
		for _, m := range batch {
			if !seen[m.Key] {
				seen[m.Key] = true
				wantAdded++
			}
		}
		before := dumpQuery(t, db, `SELECT count(*) FROM journal_keys`)
		res, err := db.Append(ctx, batch)
		if err != nil {
			t.Fatal(err)
		}
		if res.Added != wantAdded || res.Duplicates != len(batch)-wantAdded {
			t.Fatalf("round %d: added %d, duplicates %d; want %d and %d", round, res.Added, res.Duplicates, wantAdded, len(batch)-wantAdded)
		}
		if dumpQuery(t, db, `SELECT count(*) FROM journal_keys`) != before {
			merges++
		}
		both := dumpQuery(t, db, `SELECT count(*) FROM journal_keys JOIN journal_keys_recent USING (h)`)
		total := dumpQuery(t, db, `SELECT (SELECT count(*) FROM journal_keys) + (SELECT count(*) FROM journal_keys_recent)`)
		if both != "0" || total != fmt.Sprint(len(seen)) {
			t.Fatalf("round %d: %s hashes in both tables, %s in all; want 0 and %d", round, both, total, len(seen))
		}
	}
	defer db.Close()
	if merges < 3 {
		t.Errorf("%d merges: the test did not reach the merge", merges)
	}
	if got := dumpQuery(t, db, `SELECT count(*) FROM journal`); got != fmt.Sprint(len(seen)) {
		t.Errorf("journal holds %s messages, want %d", got, len(seen))
	}
}

// newKeys claims hashes in hash order, in statements of rowsPerInsert rows,
// and returns the messages that claimed one in the order given, then the
// ones whose hash an earlier key had (of the journal or of the call):
// the first message of a key wins, and a colliding key is journaled once.
func TestJournalKeysOrderAcrossStatements(t *testing.T) {
	ctx := context.Background()
	old := keyHash
	// k<i> and k<i+1000> collide; the hashes run in another order than i.
	keyHash = func(key string) int64 {
		var i int64
		fmt.Sscanf(key, "k%d", &i)
		return i * 7919 % 1000
	}
	t.Cleanup(func() { keyHash = old })
	db := openTest(t, 0)
	var journaled []*engine.Message
	for i := 1000; i < 1100; i++ {
		journaled = append(journaled, jmsg(int64(i), fmt.Sprint("k", i), "{}"))
	}
	if _, err := db.Append(ctx, journaled); err != nil {
		t.Fatal(err)
	}
	seen, hashes := map[string]bool{}, map[int64]bool{}
	for _, m := range journaled {
		seen[m.Key], hashes[keyHash(m.Key)] = true, true
	}
	var msgs, claimed []*engine.Message
	colliding := map[*engine.Message]bool{}
	for i := range 1300 {
		key := fmt.Sprint("k", i)
		switch {
		case i%211 == 210:
			key = "k1050" // a duplicate of the journal
		case i%97 == 96:
			key = fmt.Sprint("k", i/2) // a duplicate of the call, most often
		}
		m := jmsg(int64(i), key, "{}")
		msgs = append(msgs, m)
		switch h := keyHash(key); {
		case seen[key]:
		case !hashes[h]:
			claimed = append(claimed, m)
		default:
			colliding[m] = true
		}
		seen[key], hashes[keyHash(key)] = true, true
	}
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	fresh, dups, err := newKeys(ctx, tx, msgs)
	if err != nil {
		t.Fatal(err)
	}
	if want := len(msgs) - len(claimed) - len(colliding); dups != want || len(fresh) != len(claimed)+len(colliding) {
		t.Fatalf("%d new, %d duplicates; want %d and %d", len(fresh), dups, len(claimed)+len(colliding), want)
	}
	for i, m := range claimed {
		if fresh[i] != m {
			t.Fatalf("new message %d is %s (time %d), want %s (time %d): not in the order given", i, fresh[i].Key, fresh[i].TimeUS, m.Key, m.TimeUS)
		}
	}
	for _, m := range fresh[len(claimed):] {
		if !colliding[m] {
			t.Errorf("%s (time %d) returned as a colliding key", m.Key, m.TimeUS)
		}
	}
	var recorded int
	if err := tx.QueryRow(`SELECT count(*) FROM journal_collisions`).Scan(&recorded); err != nil {
		t.Fatal(err)
	}
	if recorded != len(colliding) {
		t.Errorf("%d collisions recorded, want %d", recorded, len(colliding))
	}
	t.Logf("%d messages: %d claimed a hash, %d collided, %d duplicates", len(msgs), len(claimed), len(colliding), dups)
}
