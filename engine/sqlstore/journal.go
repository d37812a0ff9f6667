package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"time"

	"statscache/engine"
)

// Append writes the new messages in one transaction. A message whose key
// is already journaled is a duplicate and changes nothing. A new message
// that sorts before the cursor of some model is late: it is journaled and
// flagged, and that model will not see it (see README, "Late messages").
func (db *DB) Append(ctx context.Context, msgs []*engine.Message) (res engine.AppendResult, err error) {
	if len(msgs) == 0 {
		return res, nil
	}
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
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO journal (time_us, key, id, topic, raw, late) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`)
	if err != nil {
		return res, fmt.Errorf("append: %w", err)
	}
	defer stmt.Close()
	// The rows are written without ctx: with a cancellable context the
	// driver starts a watcher goroutine per statement, which costs more
	// than the insert itself. Cancellation is checked between rows.
	for i, m := range msgs {
		if i%256 == 0 && ctx.Err() != nil {
			return res, ctx.Err()
		}
		late := 0
		if isLate(m.Pos()) {
			late = 1
		}
		r, err := stmt.Exec(m.TimeUS, m.Key, m.ID, m.Topic, m.Raw, late)
		if err != nil {
			return res, fmt.Errorf("append %s: %w", m.ID, err)
		}
		if n, _ := r.RowsAffected(); n == 0 {
			res.Duplicates++
			continue
		}
		res.Added++
		res.Late += late
	}
	if err := tx.Commit(); err != nil {
		return res, fmt.Errorf("append: commit: %w", err)
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
		if err := rows.Scan(&m.TimeUS, &m.Key, &m.ID, &m.Topic, &m.Raw); err != nil {
			return nil, fmt.Errorf("scan journal: %w", err)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("scan journal: %w", err)
	}
	return out, nil
}

// JournalStats summarizes the journal.
type JournalStats struct {
	Messages int64
	Late     int64
	Rejects  int64
	Newest   engine.Position
	Oldest   engine.Position
}

// JournalStats counts the journal's messages.
func (db *DB) JournalStats(ctx context.Context) (JournalStats, error) {
	var s JournalStats
	err := db.r.QueryRowContext(ctx, `SELECT count(*), coalesce(sum(late), 0) FROM journal`).Scan(&s.Messages, &s.Late)
	if err != nil {
		return s, fmt.Errorf("journal stats: %w", err)
	}
	if err := db.r.QueryRowContext(ctx, `SELECT count(*) FROM rejects`).Scan(&s.Rejects); err != nil {
		return s, fmt.Errorf("journal stats: %w", err)
	}
	s.Newest, err = db.newest(ctx)
	if err != nil {
		return s, err
	}
	err = db.r.QueryRowContext(ctx, `SELECT time_us, key FROM journal ORDER BY time_us, key LIMIT 1`).Scan(&s.Oldest.TimeUS, &s.Oldest.Key)
	if errors.Is(err, sql.ErrNoRows) {
		err = nil
	}
	if err != nil {
		return s, fmt.Errorf("oldest message: %w", err)
	}
	return s, nil
}

func (db *DB) newest(ctx context.Context) (engine.Position, error) {
	var p engine.Position
	err := db.r.QueryRowContext(ctx, `SELECT time_us, key FROM journal ORDER BY time_us DESC, key DESC LIMIT 1`).Scan(&p.TimeUS, &p.Key)
	if errors.Is(err, sql.ErrNoRows) {
		return engine.Position{}, nil
	}
	if err != nil {
		return p, fmt.Errorf("newest message: %w", err)
	}
	return p, nil
}

// AddRejects keeps rejected records (their first 64 KiB) with the reason.
func (db *DB) AddRejects(ctx context.Context, rs []engine.Reject) error {
	if len(rs) == 0 {
		return nil
	}
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("add rejects: %w", err)
	}
	now := time.Now().Unix()
	for _, r := range rs {
		rec := r.Record
		if len(rec) > 64<<10 {
			rec = rec[:64<<10]
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO rejects (source, reason, record, at) VALUES (?, ?, ?, ?)`, r.Source, r.Reason, rec, now); err != nil {
			tx.Rollback()
			return fmt.Errorf("add rejects: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("add rejects: %w", err)
	}
	return nil
}
