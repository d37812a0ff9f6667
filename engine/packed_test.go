package engine_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/valyala/fastjson"

	"statscache/engine"
)

// TestRecordUnpacksOnce: a message read from the journal in stored form is
// unpacked the first time its record is read, once, however many models
// read it at the same time.
func TestRecordUnpacksOnce(t *testing.T) {
	raw := []byte(`{"msg_id": "2024-a", "topic": "t", "timestamp": 1, "msg": {"x": 1}}`)
	var calls atomic.Int32
	m := &engine.Message{ID: "2024-a", Key: "a"}
	m.SetPacked([]byte("pk"), 0, func(b []byte) ([]byte, error) {
		calls.Add(1)
		if string(b) != "pk" {
			return nil, fmt.Errorf("unpacked %q", b)
		}
		return raw, nil
	})
	if m.Size() != 2 {
		t.Errorf("size before unpacking, with no size given, %d; want the stored 2", m.Size())
	}
	// With the unpacked size given (the stored form's header), the message
	// counts at that size from the start.
	sized := &engine.Message{ID: "2024-b", Key: "b"}
	sized.SetPacked([]byte("pk"), len(raw), func([]byte) ([]byte, error) { return raw, nil })
	if sized.Size() != len(raw) {
		t.Errorf("size before unpacking, with the size given, %d; want %d", sized.Size(), len(raw))
	}
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var p fastjson.Parser
			b, err := m.Body(&p)
			if err != nil || b.GetInt("x") != 1 {
				t.Errorf("body: %v, %v", b, err)
			}
			if got, err := m.Record(); err != nil || string(got) != string(raw) {
				t.Errorf("record %q, %v", got, err)
			}
		}()
	}
	wg.Wait()
	if n := calls.Load(); n != 1 {
		t.Errorf("unpacked %d times, want once", n)
	}
	if m.Size() != len(raw) {
		t.Errorf("size after unpacking %d, want %d", m.Size(), len(raw))
	}
}

// TestRecordDamaged: a stored record that does not unpack fails every read
// of the record with an error naming the message; its time, topic and key
// stay readable.
func TestRecordDamaged(t *testing.T) {
	m := &engine.Message{ID: "2024-bad", Key: "bad", Topic: "t", TimeUS: 5}
	m.SetPacked([]byte{0xff}, 0, func([]byte) ([]byte, error) { return nil, errors.New("corrupt frame") })
	for i := 0; i < 2; i++ {
		if _, err := m.Record(); err == nil || !strings.Contains(err.Error(), "2024-bad") || !strings.Contains(err.Error(), "corrupt frame") {
			t.Errorf("read %d: %v, want an error naming the message and the cause", i, err)
		}
	}
	var p fastjson.Parser
	if _, err := m.Body(&p); err == nil {
		t.Error("Body of a damaged record: no error")
	}
	if m.Topic != "t" || m.Pos() != (engine.Position{TimeUS: 5, Key: "bad"}) {
		t.Errorf("topic %q position %v", m.Topic, m.Pos())
	}
}

// bodyReader is a fake model that reads every message's body first.
type bodyReader struct {
	*fakeModel
	p fastjson.Parser
}

func (b *bodyReader) Process(ctx context.Context, m *engine.Message) error {
	if _, err := m.Body(&b.p); err != nil {
		return err
	}
	return b.fakeModel.Process(ctx, m)
}

// damagedJournal journals 20 messages k01 to k20 of one topic for a
// counting model and a body-reading model, then overwrites k05's stored
// record with raw, as damage to the database file would: it returns the
// engine, to be run, and the messages.
func damagedJournal(t *testing.T, db *testDB, raw []byte) (*engine.Engine, []*engine.Message) {
	t.Helper()
	counting := newFake("counting")
	reading := &bodyReader{fakeModel: newFake("reading")}
	e := newEngine(t, db, engine.Config{BatchSize: 7}, counting, reading)
	var msgs []*engine.Message
	for i := 1; i <= 20; i++ {
		msgs = append(msgs, message(t, fmt.Sprintf("2024-k%02d", i), "org.fedoraproject.prod.a", float64(i)))
	}
	ingest(t, e, msgs...)
	if _, err := db.sql.Exec(`UPDATE journal SET raw = ? WHERE key = 'k05'`, raw); err != nil {
		t.Fatal(err)
	}
	return e, msgs
}

// checkDamaged checks a run over damagedJournal: the counting model
// counted all 20, the body-reading model the 19 others and recorded one
// error, for k05, that contains want, and both went on to the end.
func checkDamaged(t *testing.T, db *testDB, msgs []*engine.Message, want string) {
	t.Helper()
	if got := db.counts(t, "counting")["org.fedoraproject.prod.a"]; got != 20 {
		t.Errorf("the counting model counted %d, want 20", got)
	}
	if got := db.counts(t, "reading")["org.fedoraproject.prod.a"]; got != 19 {
		t.Errorf("the body-reading model counted %d, want the 19 undamaged", got)
	}
	errs := db.modelErrors(t, "reading")
	if len(errs) != 1 || errs[0].MsgID != "2024-k05" || !strings.Contains(errs[0].Err, want) {
		t.Fatalf("errors of the body-reading model: %+v, want one for 2024-k05 that says %q", errs, want)
	}
	last := msgs[len(msgs)-1].Pos()
	for _, id := range []string{"counting", "reading"} {
		if m := db.model(t, id); m.Cursor != last || m.Status != "ok" {
			t.Errorf("%s: %+v, want ok at %v", id, m, last)
		}
	}
}

// TestDamagedJournalRecord: a record damaged in the journal file costs
// only the models that read its body: they record an error for that
// message and go on; a model that counts by topic counts it.
func TestDamagedJournalRecord(t *testing.T) {
	db := openTestDB(t, "")
	e, msgs := damagedJournal(t, db, []byte{0xff, 0x00, 0xff, 0x00})
	run(t, e)
	checkDamaged(t, db, msgs, "message 2024-k05")
}

// TestJournalRecordClaimingGigabytes: a journal row whose stored record
// says it unpacks to 3 GiB and holds 4 bytes (bit rot, or an edit of the
// database file) costs the models that read its body one error naming the
// message and the mismatch, not 3 GiB of memory each time it is read; the
// counting model counts it and both go on to the end.
func TestJournalRecordClaimingGigabytes(t *testing.T) {
	db := openTestDB(t, "")
	// Packed (0), no dictionary (0), an S2 block whose header claims
	// 3 GiB (uvarint 80 80 80 80 0c) and whose one operation is a literal
	// of 4 bytes.
	e, msgs := damagedJournal(t, db, []byte{0, 0, 0x80, 0x80, 0x80, 0x80, 0x0c, 0x0c, 'a', 'b', 'c', 'd'})
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	run(t, e)
	runtime.ReadMemStats(&after)
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("the run allocated %d bytes", alloc)
	if alloc > 64<<20 {
		t.Errorf("the run allocated %d bytes", alloc)
	}
	checkDamaged(t, db, msgs, "message 2024-k05: journal record: decompress record: the header claims 3221225472 bytes, its operations make 4")
}
