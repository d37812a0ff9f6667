package storetest

import (
	"bytes"
	"fmt"
	"os"
	"reflect"
	"sync"
	"testing"

	"statscache/engine"
)

func msg(timeUS int64, key string) *engine.Message {
	return &engine.Message{ID: key, Key: key, Topic: "org.fedoraproject.prod.test", TimeUS: timeUS,
		Raw: []byte(fmt.Sprintf(`{"msg_id": %q, "n": %d}`, key, timeUS))}
}

// TestJournalDedupeAndOrder: duplicates within a batch and across batches
// change nothing (the first copy wins), and a scan returns every message
// once in (time, key) order, keys ordered by their bytes whatever the
// database's collation (upper case before lower case, "é" after "z").
func TestJournalDedupeAndOrder(t *testing.T) {
	got := both(t, func(t *testing.T, db store) []string {
		ctx := t.Context()
		first := msg(100, "b")
		copyOfFirst := msg(100, "b")
		copyOfFirst.Raw = []byte(`{"second": true}`)
		res, err := db.Append(ctx, []*engine.Message{first, msg(100, "a"), copyOfFirst, msg(50, "z"), msg(100, "B"), msg(100, "é")})
		if err != nil {
			t.Fatal(err)
		}
		if res.Added != 5 || res.Duplicates != 1 || res.Late != 0 {
			t.Errorf("first append: %+v, want 5 added and 1 duplicate", res)
		}
		res, err = db.Append(ctx, []*engine.Message{msg(100, "a"), msg(7, "b"), msg(1, "c")})
		if err != nil {
			t.Fatal(err)
		}
		if res.Added != 1 || res.Duplicates != 2 {
			t.Errorf("second append: %+v, want 1 added and 2 duplicates", res)
		}
		var out []string
		after := engine.Position{}
		for {
			ms, err := db.Scan(ctx, after, 2)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range ms {
				out = append(out, fmt.Sprintf("%d %s %s", m.TimeUS, m.Key, record(t, m)))
			}
			if len(ms) < 2 {
				break
			}
			after = ms[len(ms)-1].Pos()
		}
		st, err := db.JournalStats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Messages != 6 || st.Oldest != (engine.Position{TimeUS: 1, Key: "c"}) || st.Newest != (engine.Position{TimeUS: 100, Key: "é"}) {
			t.Errorf("journal stats %+v", st)
		}
		return out
	})
	want := []string{
		`1 c {"msg_id": "c", "n": 1}`,
		`50 z {"msg_id": "z", "n": 50}`,
		`100 B {"msg_id": "B", "n": 100}`,
		`100 a {"msg_id": "a", "n": 100}`,
		`100 b {"msg_id": "b", "n": 100}`,
		`100 é {"msg_id": "é", "n": 100}`,
	}
	for name, g := range got {
		if !reflect.DeepEqual(g, want) {
			t.Errorf("%s scans\n%q\nwant\n%q", name, g, want)
		}
	}
}

// TestJournalConcurrentAppends: processes appending the same messages at
// once (several daemons on one bus) journal each message once.
func TestJournalConcurrentAppends(t *testing.T) {
	each(t, func(t *testing.T, db store) {
		ctx := t.Context()
		var batch []*engine.Message
		for i := 0; i < 500; i++ {
			batch = append(batch, msg(int64(1000+i%37), fmt.Sprintf("k%04d", (i*7919)%500)))
		}
		var wg sync.WaitGroup
		added := make([]int, 4)
		errs := make([]error, 4)
		for w := range added {
			wg.Add(1)
			go func() {
				defer wg.Done()
				// Each writer in its own order, in slices of 50.
				for i := 0; i < len(batch); i += 50 {
					j := (i + w*150) % len(batch)
					res, err := db.Append(ctx, batch[j:min(j+50, len(batch))])
					if err != nil {
						errs[w] = err
						return
					}
					added[w] += res.Added
				}
			}()
		}
		wg.Wait()
		total := 0
		for w := range added {
			if errs[w] != nil {
				t.Fatalf("writer %d: %v", w, errs[w])
			}
			total += added[w]
		}
		st, err := db.JournalStats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if total != 500 || st.Messages != 500 {
			t.Errorf("%d added by the writers, %d journaled; want 500 each", total, st.Messages)
		}
	})
}

// TestLateFlag: a new message behind a model's cursor, and not before its
// start, is flagged late.
func TestLateFlag(t *testing.T) {
	each(t, func(t *testing.T, db store) {
		ctx := t.Context()
		register(t, db, "m")
		commit(t, db, "m", nil, nil, engine.Checkpoint{Cursor: engine.Position{TimeUS: 500, Key: "x"}})
		res, err := db.Append(ctx, []*engine.Message{msg(400, "old"), msg(600, "new")})
		if err != nil {
			t.Fatal(err)
		}
		if res.Added != 2 || res.Late != 1 {
			t.Errorf("append: %+v, want 2 added, 1 late", res)
		}
		st, _ := db.JournalStats(ctx)
		if st.Late != 1 {
			t.Errorf("journal stats count %d late, want 1", st.Late)
		}
	})
}

// TestSpansMerge: complete spans are kept merged, touching ones too.
func TestSpansMerge(t *testing.T) {
	got := both(t, func(t *testing.T, db store) []engine.Span {
		ctx := t.Context()
		for _, s := range []engine.Span{{FromUS: 0, ToUS: 10}, {FromUS: 20, ToUS: 30}, {FromUS: 40, ToUS: 50}, {FromUS: 10, ToUS: 20}, {FromUS: 45, ToUS: 60}, {FromUS: 70, ToUS: 70}, {FromUS: 100, ToUS: 110}, {FromUS: 95, ToUS: 120}} {
			if _, err := db.AppendSpan(ctx, []*engine.Message{msg(s.FromUS, fmt.Sprint("m", s.FromUS))}, s); err != nil {
				t.Fatal(err)
			}
		}
		spans, err := db.CompleteSpans(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return spans
	})
	want := []engine.Span{{FromUS: 0, ToUS: 30}, {FromUS: 40, ToUS: 60}, {FromUS: 95, ToUS: 120}}
	for name, g := range got {
		if !reflect.DeepEqual(g, want) {
			t.Errorf("%s: spans %v, want %v", name, g, want)
		}
	}
}

// TestSettingsRace: processes initialising one key at once end up with
// the same value.
func TestSettingsRace(t *testing.T) {
	each(t, func(t *testing.T, db store) {
		ctx := t.Context()
		if _, ok, err := db.Setting(ctx, "queue"); err != nil || ok {
			t.Fatalf("unset setting: ok=%v err=%v", ok, err)
		}
		vals := make([]string, 8)
		var wg sync.WaitGroup
		for i := range vals {
			wg.Add(1)
			go func() {
				defer wg.Done()
				v, err := db.InitSetting(ctx, "queue", fmt.Sprint("q", i))
				if err != nil {
					t.Error(err)
				}
				vals[i] = v
			}()
		}
		wg.Wait()
		for _, v := range vals {
			if v != vals[0] || v == "" {
				t.Fatalf("InitSetting gave %q", vals)
			}
		}
		if err := db.PutSetting(ctx, "queue", "other"); err != nil {
			t.Fatal(err)
		}
		if v, ok, err := db.Setting(ctx, "queue"); err != nil || !ok || v != "other" {
			t.Errorf("after PutSetting: %q %v %v", v, ok, err)
		}
		if v, _ := db.InitSetting(ctx, "queue", "again"); v != "other" {
			t.Errorf("InitSetting over a value gave %q", v)
		}
	})
}

// TestRejects: a record rejected twice is kept once; totals count each
// distinct record, whatever is pruned.
func TestRejects(t *testing.T) {
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			db := k.open(t, opts{keep: 2})
			ctx := t.Context()
			rs := []engine.Reject{
				{Source: "f.jsonl:1", Reason: "bad", Record: []byte("x")},
				{Source: "f.jsonl:2", Reason: "bad", Record: []byte("y")},
				{Source: "f.jsonl:3", Reason: "bad\x00nul", Record: []byte("z\x00")},
				{Source: "datagrepper window 1", Reason: "bad", Record: []byte("w")},
			}
			for i := 0; i < 2; i++ {
				if err := db.AddRejects(ctx, rs); err != nil {
					t.Fatal(err)
				}
			}
			tot, err := db.RejectTotals(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if tot["f.jsonl"] != 3 || tot["datagrepper"] != 1 {
				t.Errorf("totals %v", tot)
			}
			st, _ := db.JournalStats(ctx)
			if st.Rejects != 4 {
				t.Errorf("journal stats count %d rejects, want 4", st.Rejects)
			}
		})
	}
}

// TestJournalRecordsRoundTrip: records come back from the journal exactly
// as they went in, whether stored compressed (once the first batch has
// made the database's dictionary) or not, in the process that wrote them
// and in another (which reads the dictionary from the database).
func TestJournalRecordsRoundTrip(t *testing.T) {
	data, err := os.ReadFile("../../scripts/sample/messages.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.Split(bytes.TrimSpace(data), []byte("\n"))
	var msgs []*engine.Message
	for i, l := range lines {
		msgs = append(msgs, &engine.Message{ID: fmt.Sprint("id-", i), Key: fmt.Sprint("id-", i),
			Topic: fmt.Sprint("org.fedoraproject.prod.t", i%7), TimeUS: int64(i), Raw: l})
	}
	msgs = append(msgs, &engine.Message{ID: "zero", Key: "zero", Topic: "t", TimeUS: 99999, Raw: []byte("\x00 a record that starts with a zero byte")})
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			db, reopen := k.open(t, opts{}), k.reopen
			ctx := t.Context()
			for _, part := range [][]*engine.Message{msgs[:100], msgs[100:]} {
				if _, err := db.Append(ctx, part); err != nil {
					t.Fatal(err)
				}
			}
			for round, d := range []store{db, reopen(t, db)} {
				got, err := d.Scan(ctx, engine.Position{}, len(msgs)+1)
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != len(msgs) {
					t.Fatalf("round %d: %d records back, want %d", round, len(got), len(msgs))
				}
				for i, m := range got {
					if raw := record(t, m); !bytes.Equal(raw, msgs[i].Raw) {
						t.Fatalf("round %d: record %d came back as %.80q, want %.80q", round, i, raw, msgs[i].Raw)
					}
				}
			}
		})
	}
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
