package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"statscache/engine"
	"statscache/schema"
)

func openTest(t testing.TB, keep int) *DB {
	t.Helper()
	db, err := Open(context.Background(), filepath.Join(t.TempDir(), "stats.db"), Options{KeepErrors: keep})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func testSpec(ident string) *engine.ModelSpec {
	return &engine.ModelSpec{
		Ident: ident, Name: ident, Interval: time.Hour,
		Table: schema.Table{
			Name: schema.TableName(ident),
			Columns: []schema.Column{
				{Name: "timestamp", Type: schema.Real, NotNull: true, Index: true},
				{Name: "category", Type: schema.Text},
				{Name: "volume", Type: schema.Integer},
			},
			Key: []string{"timestamp", "category"},
		},
	}
}

func msg(sec int64, key string) *engine.Message {
	return &engine.Message{TimeUS: sec * 1e6, Key: key, ID: "2015-" + key, Topic: "org.fedoraproject.prod.test", Raw: []byte(`{}`)}
}

func commitBatch(t testing.TB, db *DB, ident string, ops []engine.RowOp, cp engine.Checkpoint) {
	t.Helper()
	tx, err := db.Begin(context.Background(), ident)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Apply(ops); err != nil {
		tx.Rollback()
		t.Fatal(err)
	}
	if err := tx.Commit(cp); err != nil {
		t.Fatal(err)
	}
}

// recount computes from scratch, with full scans, every figure the store
// keeps: what the kept figures must equal.
func recount(t testing.TB, db *DB) string {
	t.Helper()
	var b strings.Builder
	for _, q := range []string{
		`SELECT count(*), coalesce(sum(late), 0) FROM journal`,
		`SELECT time_us, key FROM journal ORDER BY time_us, key LIMIT 1`,
		`SELECT time_us, key FROM journal ORDER BY time_us DESC, key DESC LIMIT 1`,
		`SELECT count(*) FROM reject_seen`,
		`SELECT ident, (SELECT count(*) FROM model_queue q WHERE q.ident = m.ident) FROM models m ORDER BY ident`,
		`SELECT m.table_name, (SELECT count(*) FROM model_volume_1h) FROM models m WHERE ident = 'volume-1h'`,
	} {
		fmt.Fprintf(&b, "%s\n", dumpQuery(t, db, q))
	}
	return b.String()
}

// kept reads the same figures from what the store keeps.
func kept(t testing.TB, db *DB) string {
	t.Helper()
	ctx := context.Background()
	st, err := db.JournalStats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d|%d\n", st.Messages, st.Late)
	if st.Messages > 0 {
		fmt.Fprintf(&b, "%d|%s\n%d|%s\n", st.Oldest.TimeUS, st.Oldest.Key, st.Newest.TimeUS, st.Newest.Key)
	} else {
		b.WriteString("\n\n")
	}
	fmt.Fprintf(&b, "%d\n", st.Rejects)
	b.WriteString(dumpQuery(t, db, `SELECT ident, queued FROM models ORDER BY ident`) + "\n")
	n, err := db.CountRows(ctx, "volume-1h")
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(&b, "%s|%d\n", schema.TableName("volume-1h"), n)
	return b.String()
}

func dumpQuery(t testing.TB, db *DB, q string) string {
	t.Helper()
	rows, err := db.w.Query(q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var lines []string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		var parts []string
		for _, v := range vals {
			if bs, ok := v.([]byte); ok {
				v = string(bs)
			}
			parts = append(parts, fmt.Sprint(v))
		}
		lines = append(lines, strings.Join(parts, "|"))
	}
	return strings.Join(lines, "\n")
}

// TestKeptFiguresEqualRecount drives every write that changes a kept
// figure (appends with duplicates and late messages, rows inserted and
// updated, work items pushed and delivered, rejects seen twice) and checks
// after each step that the kept figures equal a full recount.
func TestKeptFiguresEqualRecount(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, 0)
	if _, err := db.Register(ctx, testSpec("volume-1h")); err != nil {
		t.Fatal(err)
	}
	check := func(step string) {
		t.Helper()
		if k, r := kept(t, db), recount(t, db); k != r {
			t.Fatalf("%s: kept figures\n%s\nfull recount\n%s", step, k, r)
		}
	}
	check("empty")
	append1 := func(msgs ...*engine.Message) engine.AppendResult {
		t.Helper()
		res, err := db.Append(ctx, msgs)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	append1(msg(100, "b"), msg(100, "a"), msg(200, "c"))
	check("first append")
	if res := append1(msg(100, "a"), msg(50, "z"), msg(300, "d")); res.Added != 2 || res.Duplicates != 1 {
		t.Fatalf("append = %+v, want 2 added and 1 duplicate", res)
	}
	check("older and newer messages, a duplicate")
	row := func(ts float64, cat string, n int) engine.RowOp {
		return engine.RowOp{Kind: engine.OpAdd, Row: engine.Row{"timestamp": ts, "category": cat, "volume": n}}
	}
	commitBatch(t, db, "volume-1h", []engine.RowOp{row(3600, "x", 1), row(3600, "y", 1)},
		engine.Checkpoint{Cursor: engine.Position{TimeUS: 250e6, Key: "k"}, Processed: 4,
			Work: []engine.WorkItem{{Seq: 1, Item: []byte(`1`)}, {Seq: 2, Item: []byte(`2`)}, {Seq: 3, Item: []byte(`3`)}}, WorkSeq: 3})
	check("rows and work items")
	// Rows added to again are updated, not inserted: the count stays.
	commitBatch(t, db, "volume-1h", []engine.RowOp{row(3600, "x", 2), row(7200, "x", 1)},
		engine.Checkpoint{Cursor: engine.Position{TimeUS: 260e6, Key: "k"}, WorkDone: 2, WorkSeq: 3})
	check("rows updated, work delivered")
	if res := append1(msg(240, "late")); res.Late != 1 {
		t.Fatalf("append behind the cursor = %+v, want 1 late", res)
	}
	check("a late message")
	rejects := []engine.Reject{
		{Source: "a.jsonl:3", Reason: "bad", Record: []byte("x")},
		{Source: "a.jsonl:4", Reason: "bad", Record: []byte("x")},
		{Source: "bus tcp://h:1", Reason: "bad", Record: []byte("y")},
		{Source: "datagrepper /raw [1, 2) page 1", Reason: "bad", Record: []byte("z")},
	}
	if err := db.AddRejects(ctx, rejects); err != nil {
		t.Fatal(err)
	}
	check("rejects")
	// The same records again; the archive's record from another window.
	again := append(slices.Clone(rejects), engine.Reject{Source: "datagrepper /raw [1, 1.5) page 2", Reason: "bad", Record: []byte("z")})
	if err := db.AddRejects(ctx, again); err != nil {
		t.Fatal(err)
	}
	check("rejects seen again")
	if st, _ := db.JournalStats(ctx); st.Rejects != 4 {
		t.Errorf("rejects = %d, want 4 (two lines of a.jsonl, one bus record, one archive record)", st.Rejects)
	}
	// The kept figures survive a restart (they are in the database).
	path := db.Path
	db.Close()
	db2, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	if _, err := db2.Register(ctx, testSpec("volume-1h")); err != nil {
		t.Fatal(err)
	}
	db = db2
	check("reopened")
}

func TestRejectOrigin(t *testing.T) {
	for _, tc := range []struct{ source, want string }{
		{"data/a.jsonl:17", "data/a.jsonl"},
		{"data/a.jsonl:17 raw_messages[3]", "data/a.jsonl"},
		{"page.json raw_messages[3]", "page.json"},
		{"page.json[12]", "page.json"},
		{"page.json", "page.json"},
		{"-:2", "-"},
		{"c:/x.jsonl:5", "c:/x.jsonl"},
		{"bus tcp://hub.fedoraproject.org:9940", "bus tcp://hub.fedoraproject.org:9940"},
		{"amqp statscache org.fedoraproject.prod.bodhi.update.comment", "amqp statscache"},
		{"datagrepper /raw [2015-08-08T00:00:00Z, 2015-08-08T01:00:00Z) page 3", "datagrepper"},
	} {
		if got := rejectOrigin(tc.source); got != tc.want {
			t.Errorf("rejectOrigin(%q) = %q, want %q", tc.source, got, tc.want)
		}
	}
}

// TestStatusCostDoesNotGrowWithJournal: /status (JournalStats), /api/
// (ListModels), /api/<ident>/meta (ModelInfo) and a page of rows with its
// X-Link-Count (Rows without a time filter) answer in the same time over a
// journal of 10 messages and of 1,000,000 (and a model table of 10 and of
// 200,000 rows). The deterministic check: no statement those calls run
// scans a table that grows (EXPLAIN QUERY PLAN shows a SCAN of only the
// models table, one row per model); the timing ratio is a loose second
// check.
func TestStatusCostDoesNotGrowWithJournal(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a journal of 1,000,000 messages")
	}
	ctx := context.Background()
	build := func(messages, rows int) *DB {
		db := openTest(t, 0)
		if _, err := db.Register(ctx, testSpec("volume-1h")); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		// Bulk SQL, in both index orders at once, then the kept figures
		// recounted as migration 0005 does for an existing journal.
		for _, q := range []string{
			fmt.Sprintf(`WITH RECURSIVE c(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM c WHERE i < %d)
				INSERT INTO journal (time_us, key, id, topic, raw) SELECT 1439000000000000 + i * 1000000, printf('k%%08d', i),
				printf('2015-k%%08d', i), 'org.fedoraproject.prod.test', '{"i":' || i || '}' FROM c`, messages-1),
			`UPDATE journal_stats SET messages = (SELECT count(*) FROM journal), late = (SELECT coalesce(sum(late), 0) FROM journal),
				oldest_us = (SELECT time_us FROM journal ORDER BY time_us, key LIMIT 1), oldest_key = (SELECT key FROM journal ORDER BY time_us, key LIMIT 1),
				newest_us = (SELECT time_us FROM journal ORDER BY time_us DESC, key DESC LIMIT 1), newest_key = (SELECT key FROM journal ORDER BY time_us DESC, key DESC LIMIT 1)`,
			// Model rows through the real triggers.
			fmt.Sprintf(`WITH RECURSIVE c(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM c WHERE i < %d)
				INSERT INTO model_volume_1h (timestamp, category, volume) SELECT 3600 * (i / 10), 'c' || (i %% 10), i FROM c`, rows-1),
			fmt.Sprintf(`WITH RECURSIVE c(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM c WHERE i < %d)
				INSERT INTO model_errors (ident, msg_id, time_us, error, traceback, at) SELECT 'volume-1h', 'm' || i, i, 'e', '', 0 FROM c`, min(rows, 1000)-1),
		} {
			if _, err := db.w.Exec(q); err != nil {
				t.Fatal(err)
			}
		}
		commitBatch(t, db, "volume-1h", nil, engine.Checkpoint{Cursor: engine.Position{TimeUS: 1439000000000000 + int64(messages/2)*1e6, Key: "k"}})
		if k, r := kept(t, db), recount(t, db); k != r {
			t.Fatalf("kept figures\n%s\nfull recount\n%s", k, r)
		}
		t.Logf("built a journal of %d messages and a table of %d rows in %s", messages, rows, time.Since(start).Round(time.Millisecond))
		return db
	}
	small, big := build(10, 10), build(1_000_000, 200_000)

	// Every statement the four calls run, as they run it.
	info, err := big.ModelInfo(ctx, "volume-1h")
	if err != nil {
		t.Fatal(err)
	}
	statements := []string{
		qJournalStats,
		qTableRows,
		`SELECT ` + modelColumns + ` FROM models WHERE ident = 'x'`,
		`SELECT ` + modelColumns + ` FROM models WHERE ident NOT LIKE '%` + engine.ShadowSep + `%' ORDER BY ident`,
		qLastError,
	}
	for _, s := range statements {
		rows, err := big.r.Query(`EXPLAIN QUERY PLAN `+s, "volume-1h")
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		for rows.Next() {
			var id, parent, notused int
			var detail string
			if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
				t.Fatal(err)
			}
			if strings.HasPrefix(detail, "SCAN") && !strings.HasPrefix(detail, "SCAN models") {
				t.Errorf("%s\nscans: %s", s, detail)
			}
		}
		rows.Close()
	}

	calls := []struct {
		name string
		fn   func(db *DB) error
	}{
		{"JournalStats (/status)", func(db *DB) error { _, err := db.JournalStats(ctx); return err }},
		{"ListModels (/api/)", func(db *DB) error { _, err := db.ListModels(ctx); return err }},
		{"ModelInfo (/api/<ident>/meta)", func(db *DB) error { _, err := db.ModelInfo(ctx, "volume-1h"); return err }},
		{"Rows (/api/<ident>, X-Link-Count)", func(db *DB) error {
			p, err := db.Rows(ctx, "volume-1h", engine.RowQuery{Desc: true, Count: 100})
			if err == nil && len(p.Rows) != min(p.Total, 100) {
				err = fmt.Errorf("%d rows of %d", len(p.Rows), p.Total)
			}
			return err
		}},
	}
	fastest := func(db *DB, fn func(*DB) error) time.Duration {
		best := time.Hour
		for i := 0; i < 200; i++ {
			t0 := time.Now()
			if err := fn(db); err != nil {
				t.Fatal(err)
			}
			best = min(best, time.Since(t0))
		}
		return best
	}
	for _, c := range calls {
		s, b := fastest(small, c.fn), fastest(big, c.fn)
		t.Logf("%s: %s over 10 messages, %s over 1,000,000", c.name, s, b)
		// A count(*) or min()/max() scan of a million rows takes tens of
		// milliseconds; the bound leaves room for a loaded machine.
		if b > 4*s+time.Millisecond {
			t.Errorf("%s: %s over 1,000,000 messages, %s over 10: the cost grows with the journal", c.name, b, s)
		}
	}
	if info.LagSeconds <= 0 {
		t.Errorf("lag = %v: the kept journal span was not used", info.LagSeconds)
	}
}

// TestErrorsAndRejectsKeepNewest: with KeepErrors 3, each model keeps its
// 3 newest errors and each origin its 3 newest rejects, while the totals
// count every one, exactly.
func TestErrorsAndRejectsKeepNewest(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, 3)
	for _, id := range []string{"volume-1h", "other-1h"} {
		if _, err := db.Register(ctx, testSpec(id)); err != nil {
			t.Fatal(err)
		}
	}
	for batch := 0; batch < 4; batch++ {
		for _, id := range []string{"volume-1h", "other-1h"} {
			var errs []engine.ModelError
			for i := 0; i < 2; i++ {
				errs = append(errs, engine.ModelError{Ident: id, MsgID: fmt.Sprintf("m%d", batch*2+i), Err: "boom"})
			}
			commitBatch(t, db, id, nil, engine.Checkpoint{Cursor: engine.Position{TimeUS: int64(batch + 1), Key: "k"}, Errors: errs})
		}
		var rs []engine.Reject
		for i := 0; i < 2; i++ {
			n := batch*2 + i
			rs = append(rs, engine.Reject{Source: fmt.Sprintf("a.jsonl:%d", n+1), Reason: "bad", Record: []byte(fmt.Sprint(n))},
				engine.Reject{Source: "bus tcp://h:1", Reason: "bad", Record: []byte(fmt.Sprint(n))})
		}
		if err := db.AddRejects(ctx, rs); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct{ q, want string }{
		{`SELECT ident, group_concat(msg_id, ' ') FROM (SELECT * FROM model_errors ORDER BY id) GROUP BY ident ORDER BY ident`,
			"other-1h|m5 m6 m7\nvolume-1h|m5 m6 m7"},
		{`SELECT ident, errors FROM models ORDER BY ident`, "other-1h|8\nvolume-1h|8"},
		{`SELECT origin, group_concat(record, ' ') FROM (SELECT * FROM rejects ORDER BY id) GROUP BY origin ORDER BY origin`,
			"a.jsonl|5 6 7\nbus tcp://h:1|5 6 7"},
		{`SELECT origin, total FROM reject_totals ORDER BY origin`, "a.jsonl|8\nbus tcp://h:1|8"},
		{`SELECT rejects FROM journal_stats`, "16"},
	} {
		if got := dumpQuery(t, db, tc.q); got != tc.want {
			t.Errorf("%s:\n got %q\nwant %q", tc.q, got, tc.want)
		}
	}
	totals, err := db.RejectTotals(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]int64{"a.jsonl": 8, "bus tcp://h:1": 8}; fmt.Sprint(totals) != fmt.Sprint(want) {
		t.Errorf("RejectTotals = %v, want %v", totals, want)
	}
	info, err := db.ModelInfo(ctx, "volume-1h")
	if err != nil {
		t.Fatal(err)
	}
	if info.Status.Errors != 8 || info.LastError == nil || info.LastError.MsgID != "m7" {
		t.Errorf("meta: errors %d, last %+v; want 8 and m7", info.Status.Errors, info.LastError)
	}
	// A pruned reject seen again is not counted again.
	if err := db.AddRejects(ctx, []engine.Reject{{Source: "a.jsonl:1", Reason: "bad", Record: []byte("0")}}); err != nil {
		t.Fatal(err)
	}
	if got := dumpQuery(t, db, `SELECT total FROM reject_totals WHERE origin = 'a.jsonl'`); got != "8" {
		t.Errorf("total after a pruned reject came again = %s, want 8", got)
	}
}

// TestMigrationCountsExistingData opens a database written before
// migration 0005 (journal, a model table, a file's rejects kept twice) and
// checks that the migration seeds every kept figure and drops the second
// copy of each reject.
func TestMigrationCountsExistingData(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "old.db")
	raw, err := sql.Open("sqlite3", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := raw.Exec(q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	exec(`CREATE TABLE migrations (name TEXT PRIMARY KEY, at INTEGER NOT NULL)`)
	for _, m := range schema.Migrations() {
		if m.Name >= "0005" {
			break
		}
		exec(m.SQL)
		exec(`INSERT INTO migrations (name, at) VALUES (?, 0)`, m.Name)
	}
	sp := testSpec("volume-1h")
	if err := sp.Table.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, s := range sp.Table.DDL() {
		exec(s)
	}
	exec(`INSERT INTO models (ident, spec, table_name, fingerprint) VALUES ('volume-1h', '{}', ?, ?)`, sp.Table.Name, sp.Table.Fingerprint())
	exec(`INSERT INTO model_volume_1h (timestamp, category, volume) VALUES (3600, 'a', 1), (3600, 'b', 2)`)
	exec(`INSERT INTO model_queue (ident, seq, item) VALUES ('volume-1h', 1, '1'), ('volume-1h', 2, '2')`)
	exec(`INSERT INTO journal (time_us, key, id, topic, raw, late) VALUES (5, 'b', 'b', 't', '{}', 0), (3, 'a', 'a', 't', '{}', 1), (9, 'c', 'c', 't', '{}', 0)`)
	for i := 0; i < 2; i++ { // the same file replayed twice
		exec(`INSERT INTO rejects (source, reason, record, at) VALUES ('f.jsonl:1', 'bad', 'x', 0), ('f.jsonl:2', 'bad', 'y', 0)`)
	}
	raw.Close()

	db, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Register(ctx, sp); err != nil {
		t.Fatal(err)
	}
	if k, r := kept(t, db), recount(t, db); k != r {
		t.Fatalf("kept figures\n%s\nfull recount\n%s", k, r)
	}
	for _, tc := range []struct{ q, want string }{
		{`SELECT source, origin FROM rejects ORDER BY id`, "f.jsonl:1|f.jsonl\nf.jsonl:2|f.jsonl"},
		{`SELECT origin, total FROM reject_totals`, "f.jsonl|2"},
		{`SELECT messages, late, rejects, oldest_key, newest_key FROM journal_stats`, "3|1|2|a|c"},
		{`SELECT n FROM table_rows`, "2"},
	} {
		if got := dumpQuery(t, db, tc.q); got != tc.want {
			t.Errorf("%s:\n got %q\nwant %q", tc.q, got, tc.want)
		}
	}
	// Replaying the file a third time adds nothing.
	if err := db.AddRejects(ctx, []engine.Reject{{Source: "f.jsonl:1", Reason: "bad", Record: []byte("x")}}); err != nil {
		t.Fatal(err)
	}
	if got := dumpQuery(t, db, `SELECT count(*) FROM rejects`); got != "2" {
		t.Errorf("rejects after the same record again: %s, want 2", got)
	}
}

// TestPromoteKeepsRowCounts: a table rebuilt beside the old one and swapped
// in brings its kept row count; the old table's count goes with it.
func TestPromoteKeepsRowCounts(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, 0)
	if _, err := db.Register(ctx, testSpec("volume-1h")); err != nil {
		t.Fatal(err)
	}
	row := func(ts float64, cat string) engine.RowOp {
		return engine.RowOp{Kind: engine.OpAdd, Row: engine.Row{"timestamp": ts, "category": cat, "volume": 1}}
	}
	commitBatch(t, db, "volume-1h", []engine.RowOp{row(3600, "a")}, engine.Checkpoint{Cursor: engine.Position{TimeUS: 1, Key: "k"}})
	shadow := testSpec("volume-1h" + engine.ShadowSep + "2")
	shadow.Table.Columns = append(shadow.Table.Columns, schema.Column{Name: "extra", Type: schema.Text})
	if _, err := db.Register(ctx, shadow); err != nil {
		t.Fatal(err)
	}
	commitBatch(t, db, shadow.Ident, []engine.RowOp{row(3600, "a"), row(3600, "b"), row(7200, "a")}, engine.Checkpoint{Cursor: engine.Position{TimeUS: 1, Key: "k"}})
	if err := db.Promote(ctx, shadow.Ident, "volume-1h", nil); err != nil {
		t.Fatal(err)
	}
	if n, err := db.CountRows(ctx, "volume-1h"); err != nil || n != 3 {
		t.Errorf("CountRows after promote = %d, %v; want 3", n, err)
	}
	if got := dumpQuery(t, db, `SELECT name, n FROM table_rows ORDER BY name`); got != shadow.Table.Name+"|3" {
		t.Errorf("table_rows after promote:\n%s\nwant only %s|3", got, shadow.Table.Name)
	}
	page, err := db.Rows(ctx, "volume-1h", engine.RowQuery{})
	if err != nil || page.Total != 3 || len(page.Rows) != 3 {
		t.Errorf("Rows after promote: total %d, %d rows, %v; want 3", page.Total, len(page.Rows), err)
	}
}
