package sqlstore

import (
	"context"
	"fmt"
	"math"
	"time"

	"statscache/engine"
	"statscache/engine/sqlkit"
)

// Append writes the new messages in one transaction. A message whose key
// is already journaled is a duplicate and changes nothing. A new message
// that sorts before the cursor of some model is late: it is journaled and
// flagged, and that model will not see it (see README, "Late messages").
func (db *DB) Append(ctx context.Context, msgs []*engine.Message) (res engine.AppendResult, err error) {
	if len(msgs) == 0 {
		return res, nil
	}
	return db.appendSpan(ctx, msgs, nil)
}

// AppendSpan appends msgs and records span as complete in the same
// transaction (engine.SpanJournal).
func (db *DB) AppendSpan(ctx context.Context, msgs []*engine.Message, span engine.Span) (engine.AppendResult, error) {
	return db.appendSpan(ctx, msgs, &span)
}

func (db *DB) appendSpan(ctx context.Context, msgs []*engine.Message, span *engine.Span) (res engine.AppendResult, err error) {
	defer func() { err = diskFull(err) }()
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return res, fmt.Errorf("append: begin: %w", err)
	}
	defer func() {
		if err != nil {
			tx.Rollback()
		}
	}()
	// A new message is late when some model has committed past it and it
	// is not before that model's start.
	type mark struct {
		cursor  engine.Position
		startUS int64
	}
	var marks []mark
	rows, err := tx.QueryContext(ctx, `SELECT cursor_time_us, cursor_key, start_us FROM models WHERE status = 'ok' AND cursor_key != ''`)
	if err != nil {
		return res, fmt.Errorf("append: read cursors: %w", err)
	}
	for rows.Next() {
		var mk mark
		if err := rows.Scan(&mk.cursor.TimeUS, &mk.cursor.Key, &mk.startUS); err != nil {
			rows.Close()
			return res, fmt.Errorf("append: read cursors: %w", err)
		}
		marks = append(marks, mk)
	}
	rows.Close()
	isLate := func(p engine.Position) bool {
		for _, mk := range marks {
			if p.Less(mk.cursor) && p.TimeUS >= mk.startUS {
				return true
			}
		}
		return false
	}
	// The rows are written without ctx: with a cancellable context the
	// driver starts a watcher goroutine per statement, which costs more
	// than the insert itself. Cancellation is checked between statements.
	fresh, dups, err := newKeys(ctx, tx, msgs)
	if err != nil {
		return res, fmt.Errorf("append: %w", err)
	}
	res.Duplicates = dups
	var delta journalDelta
	jrows := make([]journalRow, 0, len(fresh))
	for _, m := range fresh {
		late := 0
		if isLate(m.Pos()) {
			late = 1
		}
		jrows = append(jrows, journalRow{m: m, late: late})
		res.Added++
		res.Late += late
		delta.Add(m.Pos(), late)
	}
	c, newDict, err := db.dictFor(ctx, tx, jrows)
	if err != nil {
		return res, fmt.Errorf("append: %w", err)
	}
	c.packAll(jrows)
	if err := insertJournal(ctx, tx, jrows); err != nil {
		return res, fmt.Errorf("append: %w", err)
	}
	if err := addJournalStats(ctx, tx, delta); err != nil {
		return res, fmt.Errorf("append: %w", err)
	}
	merged, err := mergeRecentKeys(ctx, tx, db.recentKeys.Load())
	if err != nil {
		return res, fmt.Errorf("append: %w", err)
	}
	if span != nil {
		if err := addSpan(ctx, tx, *span); err != nil {
			return res, err
		}
	}
	if err := tx.Commit(); err != nil {
		return res, fmt.Errorf("append: commit: %w", err)
	}
	if newDict {
		db.codec.Store(c)
	}
	if merged {
		db.recentKeys.Store(0)
	} else {
		db.recentKeys.Add(int64(res.Added))
	}
	return res, nil
}

// Scan reads up to limit journal messages after the position, in order.
func (db *DB) Scan(ctx context.Context, after engine.Position, limit int) ([]*engine.Message, error) {
	t, k := after.TimeUS, after.Key
	if after.IsZero() {
		t, k = math.MinInt64, ""
	}
	rows, err := db.r.QueryContext(ctx, `SELECT time_us, key, id, topic, raw FROM journal
		WHERE (time_us, key) > (?, ?) ORDER BY time_us, key LIMIT ?`, t, k, limit)
	if err != nil {
		return nil, fmt.Errorf("scan journal: %w", err)
	}
	defer rows.Close()
	out := make([]*engine.Message, 0, limit)
	for rows.Next() {
		m := &engine.Message{}
		var stored []byte
		if err := rows.Scan(&m.TimeUS, &m.Key, &m.ID, &m.Topic, &stored); err != nil {
			return nil, fmt.Errorf("scan journal: %w", err)
		}
		m.SetPacked(stored, sqlkit.UnpackedLen(stored), db.unpacker)
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("scan journal: %w", err)
	}
	return out, nil
}

// JournalStats summarizes the journal (engine.JournalStats).
type JournalStats = engine.JournalStats

// JournalStats reads the journal's kept figures: one row, kept current by
// every Append and AddRejects, so its cost does not grow with the journal.
func (db *DB) JournalStats(ctx context.Context) (JournalStats, error) {
	return readJournalStats(ctx, db.r)
}

// AddRejects keeps rejected records (their first 64 KiB) with the reason.
// A record already kept (the same file replayed, an archive window fetched
// again) changes nothing; see rejectKey. Each origin keeps its newest
// records (Options.KeepErrors) and an exact total.
func (db *DB) AddRejects(ctx context.Context, rs []engine.Reject) (err error) {
	if len(rs) == 0 {
		return nil
	}
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("add rejects: %w", err)
	}
	defer func() {
		if err != nil {
			tx.Rollback()
		}
	}()
	now := time.Now().Unix()
	touched := map[string]bool{}
	added := 0
	for _, r := range rs {
		rec := r.Record
		if len(rec) > 64<<10 {
			rec = rec[:64<<10]
		}
		if rec == nil {
			rec = []byte{}
		}
		origin := rejectOrigin(r.Source)
		res, err := tx.ExecContext(ctx, `INSERT INTO reject_seen (key) VALUES (?) ON CONFLICT DO NOTHING`, rejectKey(r.Source, origin, rec))
		if err != nil {
			return fmt.Errorf("add rejects: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			continue // kept before
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO rejects (source, reason, record, at, origin) VALUES (?, ?, ?, ?, ?)`, r.Source, r.Reason, rec, now, origin); err != nil {
			return fmt.Errorf("add rejects: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO reject_totals (origin, total) VALUES (?, 1)
			ON CONFLICT (origin) DO UPDATE SET total = total + 1`, origin); err != nil {
			return fmt.Errorf("add rejects: %w", err)
		}
		touched[origin] = true
		added++
	}
	if added > 0 {
		if _, err := tx.ExecContext(ctx, `UPDATE journal_stats SET rejects = rejects + ? WHERE id = 1`, added); err != nil {
			return fmt.Errorf("add rejects: %w", err)
		}
	}
	for origin := range touched {
		if err := pruneRejects(ctx, tx, origin, db.keep); err != nil {
			return fmt.Errorf("add rejects: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("add rejects: %w", err)
	}
	return nil
}

// RejectTotals returns, per source (see rejectOrigin: a file, a bus
// endpoint, an AMQP queue, "datagrepper"), how many distinct rejected
// records were ever kept, pruned or not. One row per source, whatever the
// number of rejects.
func (db *DB) RejectTotals(ctx context.Context) (map[string]int64, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT origin, total FROM reject_totals`)
	if err != nil {
		return nil, fmt.Errorf("reject totals: %w", err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var origin string
		var n int64
		if err := rows.Scan(&origin, &n); err != nil {
			return nil, fmt.Errorf("reject totals: %w", err)
		}
		out[origin] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reject totals: %w", err)
	}
	return out, nil
}
