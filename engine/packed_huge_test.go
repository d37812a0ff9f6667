package engine_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"statscache/engine"
)

// hugeRecord decodes a /raw record whose body holds one field of about
// size bytes: repeated log lines (compressible) or random base64 (not).
func hugeRecord(t *testing.T, id string, seconds float64, size int, compressible bool) *engine.Message {
	t.Helper()
	var field string
	if compressible {
		var b strings.Builder
		for i := 0; b.Len() < size; i++ {
			fmt.Fprintf(&b, "line %d: kojid building noarch package, step ok\\n", i%1000)
		}
		field = b.String()
	} else {
		rng := rand.New(rand.NewPCG(uint64(size), 9))
		buf := make([]byte, size*3/4)
		for i := range buf {
			buf[i] = byte(rng.Uint32())
		}
		field = base64.StdEncoding.EncodeToString(buf)
	}
	rec := fmt.Sprintf(`{"msg_id": %q, "topic": "org.fedoraproject.prod.a", "timestamp": %v, "msg": {"log": "%s"}}`, id, seconds, field)
	var d engine.Decoder
	m, err := d.Decode([]byte(rec))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestHugeJournalRecords: records just under the 8 MiB limit (compressible) and of 6 MiB (not)
// go through the journal among small ones and come back byte for byte;
// a model reading their bodies counts them, once. Damaged in the file, each
// fails only the model that reads its body, with one error for that
// message, while the counting model counts it.
func TestHugeJournalRecords(t *testing.T) {
	db := openTestDB(t, "")
	counting := newFake("counting")
	reading := &bodyReader{fakeModel: newFake("reading")}
	e := newEngine(t, db, engine.Config{BatchSize: 7, ScanSize: 5}, counting, reading)
	var msgs []*engine.Message
	for i := 1; i <= 20; i++ {
		msgs = append(msgs, message(t, fmt.Sprintf("2024-k%02d", i), "org.fedoraproject.prod.a", float64(i)))
		switch i {
		case 7:
			msgs = append(msgs, hugeRecord(t, "2024-zip", 7.5, 8<<20-4096, true))
		case 13:
			msgs = append(msgs, hugeRecord(t, "2024-rnd", 13.5, 6<<20, false))
		}
	}
	ingest(t, e, msgs...)
	run(t, e)
	if got := db.counts(t, "counting")["org.fedoraproject.prod.a"]; got != 22 {
		t.Errorf("the counting model counted %d, want 22", got)
	}
	if got := db.counts(t, "reading")["org.fedoraproject.prod.a"]; got != 22 {
		t.Errorf("the body-reading model counted %d, want 22", got)
	}
	if errs := db.modelErrors(t, "reading"); len(errs) != 0 {
		t.Errorf("errors reading the bodies: %+v", errs)
	}
	// Every record back as received.
	got, err := db.store.Scan(context.Background(), engine.Position{}, 100)
	if err != nil || len(got) != len(msgs) {
		t.Fatalf("scan: %d messages, %v", len(got), err)
	}
	for i, m := range got {
		raw, err := m.Record()
		if err != nil || !bytes.Equal(raw, msgs[i].Raw) {
			t.Errorf("%s: record of %d bytes (%v), sent %d", m.ID, len(raw), err, len(msgs[i].Raw))
		}
	}
	var zip, rnd int
	if err := db.sql.QueryRow(`SELECT (SELECT length(raw) FROM journal WHERE key = 'zip'), (SELECT length(raw) FROM journal WHERE key = 'rnd')`).Scan(&zip, &rnd); err != nil {
		t.Fatal(err)
	}
	t.Logf("stored: 8 MiB repetitive record in %d KiB, 6 MiB random one in %d KiB", zip>>10, rnd>>10)

	// Damaged: each cut short in the file.
	if _, err := db.sql.Exec(`UPDATE journal SET raw = substr(raw, 1, length(raw) / 2) WHERE key IN ('zip', 'rnd')`); err != nil {
		t.Fatal(err)
	}
	counting2, reading2 := newFake("counting2"), &bodyReader{fakeModel: newFake("reading2")}
	e = newEngine(t, db, engine.Config{BatchSize: 7, ScanSize: 5}, counting2, reading2)
	run(t, e)
	if got := db.counts(t, "counting2")["org.fedoraproject.prod.a"]; got != 22 {
		t.Errorf("after the damage the counting model counted %d, want 22", got)
	}
	if got := db.counts(t, "reading2")["org.fedoraproject.prod.a"]; got != 20 {
		t.Errorf("after the damage the body-reading model counted %d, want the 20 undamaged", got)
	}
	errs := db.modelErrors(t, "reading2")
	if len(errs) != 2 || errs[0].MsgID != "2024-zip" || errs[1].MsgID != "2024-rnd" {
		t.Errorf("errors of the body-reading model: %+v, want one for 2024-zip, one for 2024-rnd", errs)
	}
	last := msgs[len(msgs)-1].Pos()
	for _, id := range []string{"counting2", "reading2"} {
		if m := db.model(t, id); m.Cursor != last || m.Status != "ok" {
			t.Errorf("%s: %+v, want ok at %v", id, m, last)
		}
	}
}
