package engine_test

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3"

	"statscache/engine"
	"statscache/engine/sqlstore"
	"statscache/schema"
)

// fakeModel counts messages per topic and writes the counts with Add into a
// table keyed by (timestamp, topic). Options make it fail in the ways the
// engine must survive.
type fakeModel struct {
	spec     *engine.ModelSpec
	errOn    string                  // Process fails for topics containing it
	panicOn  string                  // Process panics on the message with this key
	useState bool                    // keep a running count in State
	flushErr func(call int) error    // Flush fails when it returns an error
	onFlush  func(f *fakeModel)      // called at the start of every Flush
	onProc   func(m *engine.Message) // called at the start of every Process
	// Flush reads from a database that does not answer: it waits for its
	// context to end and fails with it.
	flushHangs bool

	st     engine.State
	counts map[string]int64
	n      int // messages processed since the last successful Flush

	// Bookkeeping for the test; the engine calls the model from one
	// goroutine and Run waits for it.
	seen    []engine.Position
	batches []int // messages per successful Flush
	opens   int
	flushes int
}

func newFake(ident string) *fakeModel {
	return &fakeModel{spec: &engine.ModelSpec{
		Ident: ident, Name: ident, Summary: "test model " + ident, Description: "counts per topic",
		Table: schema.Table{
			Name: schema.TableName(ident),
			Columns: []schema.Column{
				{Name: "timestamp", Type: schema.Real, NotNull: true, Index: true},
				{Name: "topic", Type: schema.Text, NotNull: true}, // as Validate makes a key column
				{Name: "n", Type: schema.Integer, NotNull: true},
			},
			Key: []string{"timestamp", "topic"},
		},
	}}
}

func (f *fakeModel) Spec() *engine.ModelSpec { return f.spec }

func (f *fakeModel) Open(st engine.State) error {
	f.opens++
	f.st = st
	f.counts = map[string]int64{}
	f.n = 0
	return nil
}

func (f *fakeModel) Process(ctx context.Context, m *engine.Message) error {
	if f.onProc != nil {
		f.onProc(m)
	}
	if f.panicOn != "" && m.Key == f.panicOn {
		panic("fake model blew up on " + m.ID)
	}
	if f.errOn != "" && strings.Contains(m.Topic, f.errOn) {
		return fmt.Errorf("bad topic %s", m.Topic)
	}
	f.seen = append(f.seen, m.Pos())
	f.counts[m.Topic]++
	f.n++
	if f.useState {
		n, err := f.stateCount()
		if err != nil {
			return err
		}
		f.st.Set("count", strconv.Itoa(n+1))
		// Read your own writes.
		if got, err := f.stateCount(); err != nil || got != n+1 {
			return fmt.Errorf("state: read %d (%v) after writing %d", got, err, n+1)
		}
	}
	return nil
}

func (f *fakeModel) stateCount() (int, error) {
	v, ok, err := f.st.Get("count")
	if err != nil || !ok {
		return 0, err
	}
	return strconv.Atoi(v)
}

func (f *fakeModel) Flush(ctx context.Context, w engine.RowWriter) error {
	f.flushes++
	if f.onFlush != nil {
		f.onFlush(f)
	}
	if f.flushErr != nil {
		if err := f.flushErr(f.flushes); err != nil {
			return err
		}
	}
	if f.flushHangs {
		<-ctx.Done()
		return fmt.Errorf("read a row: %w", context.Cause(ctx))
	}
	topics := make([]string, 0, len(f.counts))
	for t := range f.counts {
		topics = append(topics, t)
	}
	sort.Strings(topics)
	for _, t := range topics {
		if err := w.Add(engine.Row{"timestamp": 0.0, "topic": t, "n": f.counts[t]}); err != nil {
			return err
		}
	}
	if f.useState {
		n, err := f.stateCount()
		if err != nil {
			return err
		}
		if err := w.Upsert(engine.Row{"timestamp": 0.0, "topic": "(state)", "n": int64(n)}); err != nil {
			return err
		}
	}
	f.counts = map[string]int64{}
	f.batches = append(f.batches, f.n)
	f.n = 0
	return nil
}

func (f *fakeModel) Close() error { return nil }

// testDB is a real SQLite store in a temporary directory, with a plain
// database/sql handle on the same file to inspect it.
type testDB struct {
	path  string
	store *sqlstore.DB
	sql   *sql.DB
}

func openTestDB(t testing.TB, path string) *testDB {
	t.Helper()
	if path == "" {
		path = filepath.Join(t.TempDir(), "t.db")
	}
	store, err := sqlstore.Open(context.Background(), path, sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sdb, err := sql.Open("sqlite3", "file:"+path+"?_busy_timeout=30000")
	if err != nil {
		t.Fatal(err)
	}
	db := &testDB{path: path, store: store, sql: sdb}
	t.Cleanup(db.close)
	return db
}

func (db *testDB) close() {
	db.sql.Close()
	db.store.Close()
}

func quietConfig(c engine.Config) engine.Config {
	c.Logger = slog.New(slog.DiscardHandler)
	if c.BatchInterval == 0 {
		c.BatchInterval = time.Hour // commits by count only: no timing in tests
	}
	return c
}

func newEngine(t *testing.T, db *testDB, cfg engine.Config, models ...engine.Model) *engine.Engine {
	t.Helper()
	e := engine.New(db.store, quietConfig(cfg))
	for _, m := range models {
		if err := e.Add(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

func run(t *testing.T, e *engine.Engine) {
	t.Helper()
	if err := e.Run(context.Background(), false); err != nil {
		t.Fatalf("Run: %v", err)
	}
}

// message decodes a /raw record.
func message(t *testing.T, id, topic string, seconds float64) *engine.Message {
	t.Helper()
	rec := fmt.Sprintf(`{"msg_id": %q, "topic": %q, "timestamp": %s, "msg": {"seconds": %[3]s}}`,
		id, topic, strconv.FormatFloat(seconds, 'f', -1, 64))
	var d engine.Decoder
	m, err := d.Decode([]byte(rec))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func ingest(t *testing.T, e *engine.Engine, msgs ...*engine.Message) engine.AppendResult {
	t.Helper()
	res, err := e.Ingest(context.Background(), msgs)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// counts reads a fake model's table: topic -> n.
func (db *testDB) counts(t *testing.T, ident string) map[string]int64 {
	t.Helper()
	rows, err := db.sql.Query(`SELECT "timestamp", "topic", "n" FROM "` + schema.TableName(ident) + `" ORDER BY "topic"`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var ts float64
		var topic string
		var n int64
		if err := rows.Scan(&ts, &topic, &n); err != nil {
			t.Fatal(err)
		}
		if ts != 0 {
			t.Errorf("row %s has timestamp %v, want 0", topic, ts)
		}
		out[topic] = n
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

type modelRow struct {
	Cursor    engine.Position
	CursorID  string
	Processed int64
	Errors    int64
	Status    string
	Reason    string
}

func (db *testDB) model(t *testing.T, ident string) modelRow {
	t.Helper()
	var r modelRow
	err := db.sql.QueryRow(`SELECT cursor_time_us, cursor_key, cursor_id, processed, errors, status, status_reason FROM models WHERE ident = ?`, ident).
		Scan(&r.Cursor.TimeUS, &r.Cursor.Key, &r.CursorID, &r.Processed, &r.Errors, &r.Status, &r.Reason)
	if err != nil {
		t.Fatalf("model %s: %v", ident, err)
	}
	return r
}

type errorRow struct {
	MsgID     string
	TimeUS    int64
	Err       string
	Traceback string
}

func (db *testDB) modelErrors(t *testing.T, ident string) []errorRow {
	t.Helper()
	rows, err := db.sql.Query(`SELECT msg_id, time_us, error, traceback FROM model_errors WHERE ident = ? ORDER BY id`, ident)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []errorRow
	for rows.Next() {
		var r errorRow
		if err := rows.Scan(&r.MsgID, &r.TimeUS, &r.Err, &r.Traceback); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

func (db *testDB) state(t *testing.T, ident, key string) string {
	t.Helper()
	var v string
	err := db.sql.QueryRow(`SELECT value FROM model_state WHERE ident = ? AND key = ?`, ident, key).Scan(&v)
	if err == sql.ErrNoRows {
		return "<none>"
	}
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func stats(e *engine.Engine, ident string) engine.RunnerStats {
	for _, s := range e.Stats() {
		if s.Ident == ident {
			return s
		}
	}
	return engine.RunnerStats{}
}

const (
	tBuild  = "org.fedoraproject.prod.buildsys.build.state.change"
	tBodhi  = "org.fedoraproject.prod.bodhi.update.comment"
	tBad    = "org.fedoraproject.prod.bad.thing"
	tPagure = "io.pagure.prod.pagure.git.receive"
)

func TestEngineOrder(t *testing.T) {
	tests := []struct {
		name string
		cfg  engine.Config
	}{
		{"OKOneScan", engine.Config{}},
		{"OKSmallScansAndBatches", engine.Config{ScanSize: 2, BatchSize: 2}},
		{"OKOneAtATime", engine.Config{ScanSize: 1, BatchSize: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := openTestDB(t, "")
			f := newFake("order")
			e := newEngine(t, db, tt.cfg, f)
			// Appended out of order, in two batches; three messages tie at 20s.
			ingest(t, e,
				message(t, "2015-m30", tBuild, 30),
				message(t, "2015-c", tBuild, 20),
				message(t, "m10", tBodhi, 10),
			)
			ingest(t, e,
				message(t, "2015-a", tBodhi, 20),
				message(t, "neg", tBuild, -5.5),
				message(t, "b", tBuild, 20),
				message(t, "zero", tBodhi, 0),
			)
			run(t, e)
			got := f.seen
			want := []engine.Position{
				{TimeUS: -5500000, Key: "neg"},
				{TimeUS: 0, Key: "zero"},
				{TimeUS: 10e6, Key: "m10"},
				{TimeUS: 20e6, Key: "a"},
				{TimeUS: 20e6, Key: "b"},
				{TimeUS: 20e6, Key: "c"},
				{TimeUS: 30e6, Key: "m30"},
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("processed in order %v, want %v", got, want)
			}
			m := db.model(t, "order")
			if got, want := m.Cursor, (engine.Position{TimeUS: 30e6, Key: "m30"}); got != want {
				t.Errorf("cursor %+v, want %+v", got, want)
			}
			if got, want := m.CursorID, "2015-m30"; got != want {
				t.Errorf("cursor id %q, want %q", got, want)
			}
			if got, want := m.Processed, int64(7); got != want {
				t.Errorf("processed %d, want %d", got, want)
			}
			if got, want := db.counts(t, "order"), map[string]int64{tBuild: 4, tBodhi: 3}; !reflect.DeepEqual(got, want) {
				t.Errorf("rows %v, want %v", got, want)
			}
		})
	}
}

func TestEngineDedupe(t *testing.T) {
	db := openTestDB(t, "")
	f := newFake("dedupe")
	e := newEngine(t, db, engine.Config{}, f)
	tests := []struct {
		name string
		msgs []*engine.Message
		want engine.AppendResult
	}{
		{"OKWithAndWithoutYearInOneBatch", []*engine.Message{message(t, "2015-"+uuid1, tBuild, 10), message(t, uuid1, tBuild, 10)}, engine.AppendResult{Added: 1, Duplicates: 1}},
		{"OKBareAgainLater", []*engine.Message{message(t, uuid1, tBuild, 11)}, engine.AppendResult{Duplicates: 1}},
		{"OKOtherYear", []*engine.Message{message(t, "2016-"+uuid1, tBodhi, 10)}, engine.AppendResult{Duplicates: 1}},
		{"OKNewAndDuplicate", []*engine.Message{message(t, uuid2, tBuild, 12), message(t, "2015-"+uuid1, tBuild, 10)}, engine.AppendResult{Added: 1, Duplicates: 1}},
		{"OKLettersAreNotAYear", []*engine.Message{message(t, "abcd-"+uuid2, tBuild, 13)}, engine.AppendResult{Added: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, want := ingest(t, e, tt.msgs...), tt.want
			if got != want {
				t.Errorf("Append = %+v, want %+v", got, want)
			}
		})
	}
	run(t, e)
	if got, want := db.counts(t, "dedupe"), map[string]int64{tBuild: 3}; !reflect.DeepEqual(got, want) {
		t.Errorf("rows %v, want %v", got, want)
	}
	var n int
	var id string
	if err := db.sql.QueryRow(`SELECT count(*), min(id) FROM journal WHERE key = ?`, uuid1).Scan(&n, &id); err != nil {
		t.Fatal(err)
	}
	if n != 1 || id != "2015-"+uuid1 {
		t.Errorf("journal holds %d rows for the key, id %q; want 1 with the first id seen", n, id)
	}
}

func TestEngineLate(t *testing.T) {
	db := openTestDB(t, "")
	early := newFake("early")
	e := newEngine(t, db, engine.Config{}, early)
	ingest(t, e, message(t, "m10", tBuild, 10), message(t, "m20", tBuild, 20))
	run(t, e)

	t.Run("OKLateCounted", func(t *testing.T) {
		got := ingest(t, e,
			message(t, "m15", tBodhi, 15), // behind the cursor (20s)
			message(t, "m20a", tBodhi, 20),
			message(t, "m25", tBodhi, 25),
			message(t, "m10", tBodhi, 10), // a duplicate is not late
		)
		want := engine.AppendResult{Added: 3, Duplicates: 1, Late: 1}
		if got != want {
			t.Errorf("Append = %+v, want %+v", got, want)
		}
	})
	t.Run("OKTieBeforeCursorKeyIsLate", func(t *testing.T) {
		// Same time as the cursor, smaller key: behind it in the order.
		got, want := ingest(t, e, message(t, "m1", tBodhi, 20)), engine.AppendResult{Added: 1, Late: 1}
		if got != want {
			t.Errorf("Append = %+v, want %+v", got, want)
		}
	})
	run(t, e)
	t.Run("OKModelSkipsLate", func(t *testing.T) {
		got, want := db.counts(t, "early"), map[string]int64{tBuild: 2, tBodhi: 2}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("rows %v, want %v (m20a and m25 only)", got, want)
		}
		for _, p := range early.seen {
			if p.Key == "m15" || p.Key == "m1" {
				t.Errorf("model saw the late message %s", p.Key)
			}
		}
	})
	t.Run("OKJournalFlagsLate", func(t *testing.T) {
		rows, err := db.sql.Query(`SELECT key FROM journal WHERE late = 1 ORDER BY key`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var got []string
		for rows.Next() {
			var k string
			rows.Scan(&k)
			got = append(got, k)
		}
		if want := []string{"m1", "m15"}; !reflect.DeepEqual(got, want) {
			t.Errorf("late keys %v, want %v", got, want)
		}
	})
	t.Run("OKNewModelSeesLate", func(t *testing.T) {
		fresh := newFake("fresh")
		e2 := newEngine(t, db, engine.Config{}, newFake("early"), fresh)
		run(t, e2)
		got, want := db.counts(t, "fresh"), map[string]int64{tBuild: 2, tBodhi: 4}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("rows of a new model %v, want %v", got, want)
		}
		if got, want := db.counts(t, "early"), map[string]int64{tBuild: 2, tBodhi: 2}; !reflect.DeepEqual(got, want) {
			t.Errorf("rows of the old model changed to %v, want %v", got, want)
		}
	})
}

// TestEngineLateBehindUncommittedCursor appends a message behind where a
// model has processed to, but after its last commit. The README ("Late
// messages") promises that the model processes its batch again and sees
// the message in order: it must be seen, and neither reported nor flagged
// late.
func TestEngineLateBehindUncommittedCursor(t *testing.T) {
	tests := []struct {
		name      string
		committed []*engine.Message // committed before the batch
		want      []string          // keys processed, in order
	}{
		{"OKNothingCommittedYet", nil, []string{"m10", "m100", "m10", "m50", "m100"}},
		{"OKAfterACommit", []*engine.Message{message(t, "m5", tBuild, 5)}, []string{"m5", "m10", "m100", "m10", "m50", "m100"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := openTestDB(t, "")
			f := newFake("uncommitted")
			var e *engine.Engine
			var res engine.AppendResult
			once := false
			f.onProc = func(m *engine.Message) {
				// Only the first time: the model processes m100 again after
				// the insert, and a real model never ingests.
				if m.Key == "m100" && !once {
					once = true
					res = ingest(t, e, message(t, "m50", tBodhi, 50))
				}
			}
			e = newEngine(t, db, engine.Config{}, f)
			if len(tt.committed) > 0 {
				ingest(t, e, tt.committed...)
				run(t, e)
			}
			ingest(t, e, message(t, "m10", tBuild, 10), message(t, "m100", tBuild, 100))
			run(t, e)
			var seen []string
			for _, p := range f.seen {
				seen = append(seen, p.Key)
			}
			if !reflect.DeepEqual(seen, tt.want) {
				t.Errorf("model processed %v, want %v (the batch again, with m50 in order)", seen, tt.want)
			}
			var late int
			if err := db.sql.QueryRow(`SELECT late FROM journal WHERE key = 'm50'`).Scan(&late); err != nil {
				t.Fatal(err)
			}
			if res.Late != 0 || late != 0 {
				t.Errorf("Append reported %d late, journal flag %d; want 0 and 0 (the model saw it)", res.Late, late)
			}
			n := int64(len(tt.committed))
			if got, want := db.counts(t, "uncommitted"), map[string]int64{tBuild: 2 + n, tBodhi: 1}; !reflect.DeepEqual(got, want) {
				t.Errorf("rows %v, want %v", got, want)
			}
			if m := db.model(t, "uncommitted"); m.Processed != 3+n || m.Cursor.Key != "m100" {
				t.Errorf("model %+v, want %d processed up to m100", m, 3+n)
			}
		})
	}
}

// restartMessages are 12 messages in time order.
func restartMessages(t *testing.T) []*engine.Message {
	var msgs []*engine.Message
	topics := []string{tBuild, tBodhi, tPagure}
	for i := 0; i < 12; i++ {
		msgs = append(msgs, message(t, fmt.Sprintf("2015-r%02d", i), topics[i%3], 1439121600+float64(i)*7.5))
	}
	return msgs
}

func TestEngineRestartExactlyOnce(t *testing.T) {
	msgs := restartMessages(t)
	tests := []struct {
		name  string
		cfg   engine.Config
		split int
	}{
		{"OKSplitMidBatch", engine.Config{BatchSize: 5}, 7},
		{"OKSplitOnBatch", engine.Config{BatchSize: 3}, 6},
		{"OKOneByOne", engine.Config{BatchSize: 1, ScanSize: 1}, 1},
		{"OKNothingFirst", engine.Config{BatchSize: 4}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// One uninterrupted run.
			ref := openTestDB(t, "")
			e := newEngine(t, ref, tt.cfg, newFake("count"), withState(newFake("stateful")))
			ingest(t, e, msgs...)
			run(t, e)
			wantCount, wantState := ref.counts(t, "count"), ref.counts(t, "stateful")
			if want := map[string]int64{tBuild: 4, tBodhi: 4, tPagure: 4}; !reflect.DeepEqual(wantCount, want) {
				t.Fatalf("uninterrupted rows %v, want %v", wantCount, want)
			}

			// The same messages over two engines on one database file.
			db := openTestDB(t, "")
			e1 := newEngine(t, db, tt.cfg, newFake("count"), withState(newFake("stateful")))
			ingest(t, e1, msgs[:tt.split]...)
			run(t, e1)
			db.close()

			db2 := openTestDB(t, db.path)
			e2 := newEngine(t, db2, tt.cfg, newFake("count"), withState(newFake("stateful")))
			res := ingest(t, e2, msgs...)
			if want := (engine.AppendResult{Added: len(msgs) - tt.split, Duplicates: tt.split}); res != want {
				t.Errorf("second Append = %+v, want %+v", res, want)
			}
			run(t, e2)
			if got := db2.counts(t, "count"); !reflect.DeepEqual(got, wantCount) {
				t.Errorf("rows after a restart %v, want %v", got, wantCount)
			}
			if got := db2.counts(t, "stateful"); !reflect.DeepEqual(got, wantState) {
				t.Errorf("stateful rows after a restart %v, want %v", got, wantState)
			}
			if got, want := db2.state(t, "stateful", "count"), "12"; got != want {
				t.Errorf("state count %s, want %s", got, want)
			}
			for _, ident := range []string{"count", "stateful"} {
				m := db2.model(t, ident)
				if got, want := m.Processed, int64(len(msgs)); got != want {
					t.Errorf("%s processed %d, want %d", ident, got, want)
				}
				if got, want := m.Cursor, msgs[len(msgs)-1].Pos(); got != want {
					t.Errorf("%s cursor %+v, want %+v", ident, got, want)
				}
			}
		})
	}
}

func withState(f *fakeModel) *fakeModel {
	f.useState = true
	return f
}

func TestEngineBatchCommit(t *testing.T) {
	db := openTestDB(t, "")
	f := newFake("batched")
	type seen struct {
		key       string
		processed int64
	}
	var atFlush []seen
	f.onFlush = func(*fakeModel) {
		m := db.model(t, "batched")
		atFlush = append(atFlush, seen{m.Cursor.Key, m.Processed})
	}
	e := newEngine(t, db, engine.Config{BatchSize: 3}, f)
	var msgs []*engine.Message
	for i := 1; i <= 7; i++ {
		msgs = append(msgs, message(t, fmt.Sprintf("k%d", i), tBuild, float64(i)))
	}
	ingest(t, e, msgs...)
	run(t, e)
	// Each flush sees the cursor the previous batch committed.
	if got, want := atFlush, []seen{{"", 0}, {"k3", 3}, {"k6", 6}}; !reflect.DeepEqual(got, want) {
		t.Errorf("cursor at each flush %v, want %v", got, want)
	}
	if got, want := f.batches, []int{3, 3, 1}; !reflect.DeepEqual(got, want) {
		t.Errorf("messages per batch %v, want %v", got, want)
	}
	m := db.model(t, "batched")
	if got, want := (seen{m.Cursor.Key, m.Processed}), (seen{"k7", 7}); got != want {
		t.Errorf("final cursor %v, want %v", got, want)
	}
	if got, want := stats(e, "batched"), (engine.RunnerStats{Ident: "batched", Processed: 7, Cursor: msgs[6].Pos()}); got != want {
		t.Errorf("Stats = %+v, want %+v", got, want)
	}
}

func TestEngineModelErrors(t *testing.T) {
	db := openTestDB(t, "")
	count, picky := newFake("count"), newFake("picky")
	picky.errOn = ".bad."
	e := newEngine(t, db, engine.Config{BatchSize: 2}, count, picky)
	ingest(t, e,
		message(t, "2015-g1", tBuild, 1),
		message(t, "2015-b1", tBad, 2),
		message(t, "2015-g2", tBodhi, 3),
		message(t, "2015-b2", tBad, 4.5),
		message(t, "2015-g3", tBuild, 5),
	)
	run(t, e)
	t.Run("OKErrorsRecorded", func(t *testing.T) {
		got := picky.modelErrorsIn(t, db)
		want := []errorRow{
			{MsgID: "2015-b1", TimeUS: 2e6, Err: "bad topic " + tBad},
			{MsgID: "2015-b2", TimeUS: 4.5e6, Err: "bad topic " + tBad},
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("model_errors %+v, want %+v", got, want)
		}
		m := db.model(t, "picky")
		if m.Errors != 2 || m.Processed != 5 || m.Status != "ok" {
			t.Errorf("picky: errors %d, processed %d, status %s; want 2, 5, ok", m.Errors, m.Processed, m.Status)
		}
		want5 := engine.Position{TimeUS: 5e6, Key: "g3"}
		if got, want := stats(e, "picky"), (engine.RunnerStats{Ident: "picky", Processed: 5, Errors: 2, Cursor: want5}); got != want {
			t.Errorf("Stats = %+v, want %+v", got, want)
		}
		if got, want := db.counts(t, "picky"), map[string]int64{tBuild: 2, tBodhi: 1}; !reflect.DeepEqual(got, want) {
			t.Errorf("picky rows %v, want %v", got, want)
		}
	})
	t.Run("OKOtherModelUnaffected", func(t *testing.T) {
		if got := db.modelErrors(t, "count"); len(got) != 0 {
			t.Errorf("count has errors %+v", got)
		}
		m := db.model(t, "count")
		if m.Errors != 0 || m.Processed != 5 {
			t.Errorf("count: errors %d, processed %d; want 0, 5", m.Errors, m.Processed)
		}
		if got, want := db.counts(t, "count"), map[string]int64{tBuild: 2, tBodhi: 1, tBad: 2}; !reflect.DeepEqual(got, want) {
			t.Errorf("count rows %v, want %v", got, want)
		}
	})
}

// modelErrorsIn reads the model's errors without their tracebacks, which a
// returned error does not have.
func (f *fakeModel) modelErrorsIn(t *testing.T, db *testDB) []errorRow {
	rows := db.modelErrors(t, f.spec.Ident)
	for i := range rows {
		if rows[i].Traceback != "" {
			t.Errorf("error %d has a traceback %q; a plain error has none", i, rows[i].Traceback)
		}
	}
	return rows
}

func TestEnginePanickingModel(t *testing.T) {
	db := openTestDB(t, "")
	count, boom := newFake("count"), newFake("boom")
	boom.panicOn = "p2"
	e := newEngine(t, db, engine.Config{BatchSize: 2}, count, boom)
	ingest(t, e,
		message(t, "2015-p1", tBuild, 1),
		message(t, "2015-p2", tBuild, 2),
		message(t, "2015-p3", tBodhi, 3),
	)
	run(t, e)
	errs := db.modelErrors(t, "boom")
	if len(errs) != 1 {
		t.Fatalf("model_errors %+v, want one", errs)
	}
	if got, want := errs[0].MsgID, "2015-p2"; got != want {
		t.Errorf("error for %s, want %s", got, want)
	}
	if got, want := errs[0].Err, "panic: fake model blew up on 2015-p2"; got != want {
		t.Errorf("error %q, want %q", got, want)
	}
	if !strings.Contains(errs[0].Traceback, "engine_test.go") {
		t.Errorf("traceback does not show where it panicked:\n%s", errs[0].Traceback)
	}
	if got, want := db.counts(t, "boom"), map[string]int64{tBuild: 1, tBodhi: 1}; !reflect.DeepEqual(got, want) {
		t.Errorf("boom rows %v, want %v", got, want)
	}
	if got, want := db.counts(t, "count"), map[string]int64{tBuild: 2, tBodhi: 1}; !reflect.DeepEqual(got, want) {
		t.Errorf("count rows %v, want %v", got, want)
	}
	if m := db.model(t, "boom"); m.Status != "ok" || m.Processed != 3 || m.Errors != 1 {
		t.Errorf("boom status %+v, want ok with 3 processed and 1 error", m)
	}
}

func TestEngineFlushAlwaysFails(t *testing.T) {
	db := openTestDB(t, "")
	count, broken := newFake("count"), newFake("broken")
	broken.flushErr = func(call int) error { return fmt.Errorf("disk of the mind is full (call %d)", call) }
	e := newEngine(t, db, engine.Config{BatchSize: 2, FlushRetries: 2}, count, broken)
	var msgs []*engine.Message
	for i := 1; i <= 5; i++ {
		msgs = append(msgs, message(t, fmt.Sprintf("f%d", i), tBuild, float64(i)))
	}
	ingest(t, e, msgs...)
	run(t, e)

	t.Run("OKMarkedFailed", func(t *testing.T) {
		m := db.model(t, "broken")
		if m.Status != "failed" || !strings.Contains(m.Reason, "update failed 2 times") || !strings.Contains(m.Reason, "disk of the mind is full") {
			t.Errorf("status %q, reason %q; want failed after 2 attempts, naming the error", m.Status, m.Reason)
		}
		if m.Cursor != (engine.Position{}) || m.CursorID != "" || m.Processed != 0 {
			t.Errorf("cursor moved to %+v (%q), processed %d; want it unchanged", m.Cursor, m.CursorID, m.Processed)
		}
		if got := db.counts(t, "broken"); len(got) != 0 {
			t.Errorf("failed model wrote rows %v", got)
		}
		if got, want := broken.flushes, 2; got != want {
			t.Errorf("flush called %d times, want FlushRetries = %d", got, want)
		}
		if s := stats(e, "broken"); s.Failed == "" || s.Processed != 0 || s.Cursor != (engine.Position{}) {
			t.Errorf("Stats = %+v, want failed with nothing processed", s)
		}
	})
	t.Run("OKOtherModelCompletes", func(t *testing.T) {
		m := db.model(t, "count")
		if m.Status != "ok" || m.Cursor != msgs[4].Pos() || m.Processed != 5 {
			t.Errorf("count: %+v, want ok at %+v with 5 processed", m, msgs[4].Pos())
		}
		if got, want := db.counts(t, "count"), map[string]int64{tBuild: 5}; !reflect.DeepEqual(got, want) {
			t.Errorf("count rows %v, want %v", got, want)
		}
	})
	t.Run("OKRetriedAfterRestartFromItsCursor", func(t *testing.T) {
		// Registering the model again (a restart with a fixed model) gives
		// it another chance from its unchanged cursor: it counts every
		// message once.
		fixed := newFake("broken")
		e2 := newEngine(t, db, engine.Config{}, newFake("count"), fixed)
		ingest(t, e2, message(t, "f6", tBuild, 6))
		run(t, e2)
		if got, want := db.counts(t, "broken"), map[string]int64{tBuild: 6}; !reflect.DeepEqual(got, want) {
			t.Errorf("broken rows after the restart %v, want %v", got, want)
		}
		if m := db.model(t, "broken"); m.Status != "ok" || m.Processed != 6 {
			t.Errorf("broken after the restart: %+v, want ok with 6 processed", m)
		}
		if got, want := db.counts(t, "count"), map[string]int64{tBuild: 6}; !reflect.DeepEqual(got, want) {
			t.Errorf("count rows %v, want %v", got, want)
		}
	})
}

func TestEngineStateRollback(t *testing.T) {
	tests := []struct {
		name      string
		failCalls map[int]bool
		wantOpens int
	}{
		{"OKNoFailure", nil, 1},
		{"OKFirstFlushFails", map[int]bool{1: true}, 2},
		{"OKMiddleFlushFails", map[int]bool{2: true}, 2},
		{"OKTwoFailuresInARow", map[int]bool{2: true, 3: true}, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := openTestDB(t, "")
			f := withState(newFake("stateful"))
			f.flushErr = func(call int) error {
				if tt.failCalls[call] {
					return fmt.Errorf("flush %d fails", call)
				}
				return nil
			}
			e := newEngine(t, db, engine.Config{BatchSize: 3, FlushRetries: 3}, f)
			var msgs []*engine.Message
			for i := 1; i <= 7; i++ {
				topic := tBuild
				if i%2 == 0 {
					topic = tBodhi
				}
				msgs = append(msgs, message(t, fmt.Sprintf("s%d", i), topic, float64(i)))
			}
			ingest(t, e, msgs...)
			run(t, e)
			if got := db.modelErrors(t, "stateful"); len(got) != 0 {
				t.Fatalf("process errors (state read-your-writes?): %+v", got)
			}
			if got, want := db.state(t, "stateful", "count"), "7"; got != want {
				t.Errorf("state count %s, want %s (no message counted twice)", got, want)
			}
			want := map[string]int64{tBuild: 4, tBodhi: 3, "(state)": 7}
			if got := db.counts(t, "stateful"); !reflect.DeepEqual(got, want) {
				t.Errorf("rows %v, want %v", got, want)
			}
			if got, want := f.opens, tt.wantOpens; got != want {
				t.Errorf("opened %d times, want %d (once, plus once per failed flush)", got, want)
			}
			if m := db.model(t, "stateful"); m.Status != "ok" || m.Processed != 7 || m.Cursor != msgs[6].Pos() {
				t.Errorf("model %+v, want ok with 7 processed", m)
			}
		})
	}
}

func TestEngineAddDuplicateIdent(t *testing.T) {
	db := openTestDB(t, "")
	e := engine.New(db.store, quietConfig(engine.Config{}))
	ctx := context.Background()
	if err := e.Add(ctx, newFake("twice")); err != nil {
		t.Fatal(err)
	}
	err := e.Add(ctx, newFake("twice"))
	if err == nil || !strings.Contains(err.Error(), "ident already used") {
		t.Errorf("second Add: %v, want an ident clash", err)
	}
	if got := len(e.Stats()); got != 1 {
		t.Errorf("%d models after the clash, want 1", got)
	}
}

// TestEngineFlushCutByDrainIsNotAModelFailure: a last commit whose flush
// is cut by the drain (its reads wait on a database that does not answer)
// leaves the batch to the next start; it is not the model's failure, so it
// is neither retried FlushRetries times nor marks the model failed. The
// next start counts every message once.
func TestEngineFlushCutByDrainIsNotAModelFailure(t *testing.T) {
	db := openTestDB(t, "")
	hung := newFake("hung")
	hung.flushHangs = true
	processed := make(chan struct{}, 3)
	hung.onProc = func(*engine.Message) {
		select {
		case processed <- struct{}{}:
		default: // processed again
		}
	}
	e := newEngine(t, db, engine.Config{Drain: 500 * time.Millisecond, FlushRetries: 3}, hung)
	var msgs []*engine.Message
	for i := 1; i <= 3; i++ {
		msgs = append(msgs, message(t, fmt.Sprintf("d%d", i), tBuild, float64(i)))
	}
	ingest(t, e, msgs...)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx, true) }()
	for range msgs {
		<-processed
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if hung.flushes != 1 {
		t.Errorf("flush called %d times, want once: a flush cut by the drain is not retried", hung.flushes)
	}
	if s := stats(e, "hung"); s.Failed != "" {
		t.Errorf("model failed at shutdown: %q", s.Failed)
	}
	if m := db.model(t, "hung"); m.Status != "ok" || m.Cursor != (engine.Position{}) || m.Processed != 0 {
		t.Errorf("stored %+v, want ok with nothing committed", m)
	}
	e2 := newEngine(t, db, engine.Config{}, newFake("hung"))
	run(t, e2)
	if got, want := db.counts(t, "hung"), map[string]int64{tBuild: 3}; !reflect.DeepEqual(got, want) {
		t.Errorf("rows after the restart %v, want %v", got, want)
	}
}
