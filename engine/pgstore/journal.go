package pgstore

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"statscache/engine"
	"statscache/engine/sqlkit"
)

// Append writes the new messages in one transaction. A message whose key
// is already journaled is a duplicate and changes nothing. A new message
// that sorts before the cursor of some model (and not before its start) is
// late: it is journaled and flagged, and that model will not see it.
func (db *DB) Append(ctx context.Context, msgs []*engine.Message) (engine.AppendResult, error) {
	if len(msgs) == 0 {
		return engine.AppendResult{}, nil
	}
	return db.appendSpan(ctx, msgs, nil)
}

// AppendSpan appends msgs and records span as complete in the same
// transaction (engine.SpanJournal).
func (db *DB) AppendSpan(ctx context.Context, msgs []*engine.Message, span engine.Span) (engine.AppendResult, error) {
	return db.appendSpan(ctx, msgs, &span)
}

// appendSpan runs the append transaction, again when it lost a deadlock to
// another process appending the same keys or its connection broke. A
// transaction whose COMMIT was lost with the connection may have
// committed: running it again is still right, the dedupe makes the second
// run add nothing (its messages then count as duplicates).
func (db *DB) appendSpan(ctx context.Context, msgs []*engine.Message, span *engine.Span) (res engine.AppendResult, err error) {
	// Candidates in key order: two processes appending the same messages
	// take their key locks in the same order and cannot deadlock on them.
	// The first of two messages with one key wins, as in sqlstore.
	cands := make([]*engine.Message, 0, len(msgs))
	seen := make(map[string]bool, len(msgs))
	for _, m := range msgs {
		if seen[m.Key] {
			res.Duplicates++
			continue
		}
		seen[m.Key] = true
		cands = append(cands, m)
	}
	slices.SortFunc(cands, func(a, b *engine.Message) int { return strings.Compare(a.Key, b.Key) })
	r, err := again(ctx, func() (engine.AppendResult, error) { return db.appendTx(ctx, cands, span) })
	if err != nil {
		return res, diskFull(err)
	}
	r.Duplicates += res.Duplicates
	return r, nil
}

func (db *DB) appendTx(ctx context.Context, msgs []*engine.Message, span *engine.Span) (res engine.AppendResult, err error) {
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		return res, fmt.Errorf("append: begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	var c *sqlkit.Codec
	if len(msgs) > 0 {
		if c, err = db.codecFor(ctx, tx, msgs); err != nil {
			return res, fmt.Errorf("append: %w", err)
		}
		if res, err = insertJournal(ctx, tx, msgs, c); err != nil {
			return res, err
		}
	}
	if span != nil {
		if err := addSpan(ctx, tx, *span); err != nil {
			return res, err
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return res, fmt.Errorf("append: commit: %w", err)
	}
	if c != nil && c != db.codec.Load() {
		db.codec.Store(c) // with the dictionary this append recorded
	}
	return res, nil
}

// insertJournal journals the messages that are new, flags the late ones
// and keeps journal_stats current, inside tx.
func insertJournal(ctx context.Context, tx pgx.Tx, msgs []*engine.Message, c *sqlkit.Codec) (res engine.AppendResult, err error) {
	// The cursors are read under a share lock: a model cannot commit
	// past a message while it is being journaled (the commit waits), so a
	// message is flagged late exactly when some model will not see it,
	// even with several processes writing. A model that has not committed
	// yet has no row lock to wait for, and a model registered meanwhile
	// none at all: the journal lock, taken first and held to the end,
	// makes a fenced commit (instances sharing the database) wait for the
	// whole append, which it then counts (checkFence). An append paused
	// mid-way (SIGSTOP, a frozen VM) holds every instance's commits until
	// its session idles out (Options.IdleInTransaction).
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, lockJournal); err != nil {
		return res, fmt.Errorf("append: lock the journal: %w", err)
	}
	type mark struct {
		cursor  engine.Position
		startUS int64
	}
	rows, err := tx.Query(ctx, `SELECT cursor_time_us, cursor_key, start_us FROM models
		WHERE status = 'ok' AND cursor_key != '' ORDER BY ident FOR SHARE`)
	if err != nil {
		return res, fmt.Errorf("append: read cursors: %w", err)
	}
	marks, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (mark, error) {
		var mk mark
		err := r.Scan(&mk.cursor.TimeUS, &mk.cursor.Key, &mk.startUS)
		return mk, err
	})
	if err != nil {
		return res, fmt.Errorf("append: read cursors: %w", err)
	}
	n := len(msgs)
	times, lates := make([]int64, n), make([]int16, n)
	keys, ids, topics := make([]string, n), make([]string, n), make([]string, n)
	raws := packAll(c, msgs)
	for i, m := range msgs {
		times[i], keys[i], ids[i], topics[i] = m.TimeUS, m.Key, m.ID, m.Topic
		p := m.Pos()
		for _, mk := range marks {
			if p.Less(mk.cursor) && p.TimeUS >= mk.startUS {
				lates[i] = 1
				break
			}
		}
	}
	// One statement for the whole batch: arrays, unnested in order.
	// DO NOTHING skips the keys already journaled (by this process or
	// another: a concurrent insert of the same key waits for the first).
	added, err := tx.Query(ctx, `INSERT INTO journal (time_us, key, id, topic, raw, late)
		SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::bytea[], $6::smallint[])
		ON CONFLICT DO NOTHING RETURNING time_us, key, late`, times, keys, ids, topics, raws, lates)
	if err != nil {
		return res, fmt.Errorf("append: journal: %w", err)
	}
	var d sqlkit.JournalDelta
	for added.Next() {
		var p engine.Position
		var late int16
		if err := added.Scan(&p.TimeUS, &p.Key, &late); err != nil {
			added.Close()
			return res, fmt.Errorf("append: journal: %w", err)
		}
		d.Add(p, int(late))
	}
	added.Close()
	if err := added.Err(); err != nil {
		return res, fmt.Errorf("append: journal: %w", err)
	}
	res.Added, res.Late, res.Duplicates = d.Added, d.Late, n-d.Added
	if err := addJournalStats(ctx, tx, d); err != nil {
		return res, err
	}
	return res, nil
}

// addJournalStats records an append's new messages in journal_stats. Every
// expression of an UPDATE reads the row as it was.
func addJournalStats(ctx context.Context, tx pgx.Tx, d sqlkit.JournalDelta) error {
	if d.Added == 0 {
		return nil
	}
	_, err := tx.Exec(ctx, `UPDATE journal_stats SET messages = messages + $1, late = late + $2,
		oldest_us  = CASE WHEN oldest_us IS NULL OR ($3::bigint, $4::text COLLATE "C") < (oldest_us, oldest_key) THEN $3 ELSE oldest_us END,
		oldest_key = CASE WHEN oldest_us IS NULL OR ($3::bigint, $4::text COLLATE "C") < (oldest_us, oldest_key) THEN $4 ELSE oldest_key END,
		newest_us  = CASE WHEN newest_us IS NULL OR ($5::bigint, $6::text COLLATE "C") > (newest_us, newest_key) THEN $5 ELSE newest_us END,
		newest_key = CASE WHEN newest_us IS NULL OR ($5::bigint, $6::text COLLATE "C") > (newest_us, newest_key) THEN $6 ELSE newest_key END
		WHERE id = 1`, d.Added, d.Late, d.Lo.TimeUS, d.Lo.Key, d.Hi.TimeUS, d.Hi.Key)
	if err != nil {
		return fmt.Errorf("journal stats: %w", err)
	}
	return nil
}

// Scan reads up to limit journal messages after the position, in order.
func (db *DB) Scan(ctx context.Context, after engine.Position, limit int) ([]*engine.Message, error) {
	return again(ctx, func() ([]*engine.Message, error) { return db.scan(ctx, after, limit) })
}

func (db *DB) scan(ctx context.Context, after engine.Position, limit int) ([]*engine.Message, error) {
	t, k := after.TimeUS, after.Key
	if after.IsZero() {
		t, k = math.MinInt64, ""
	}
	rows, err := db.pool.Query(ctx, `SELECT time_us, key, id, topic, raw FROM journal
		WHERE (time_us, key) > ($1, $2) ORDER BY time_us, key LIMIT $3`, t, k, limit)
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

// JournalStats reads the journal's kept figures (one row).
func (db *DB) JournalStats(ctx context.Context) (engine.JournalStats, error) {
	return again(ctx, func() (engine.JournalStats, error) { return readJournalStats(ctx, db.pool) })
}

func readJournalStats(ctx context.Context, q queryer) (engine.JournalStats, error) {
	var s engine.JournalStats
	var oUS, nUS *int64
	var oKey, nKey *string
	err := q.QueryRow(ctx, `SELECT messages, late, rejects, oldest_us, oldest_key, newest_us, newest_key FROM journal_stats WHERE id = 1`).
		Scan(&s.Messages, &s.Late, &s.Rejects, &oUS, &oKey, &nUS, &nKey)
	if err != nil {
		return s, fmt.Errorf("journal stats: %w", err)
	}
	if oUS != nil && oKey != nil && nUS != nil && nKey != nil {
		s.Oldest = engine.Position{TimeUS: *oUS, Key: *oKey}
		s.Newest = engine.Position{TimeUS: *nUS, Key: *nKey}
	}
	return s, nil
}

// errNoRows reports whether err is pgx's "no rows".
func errNoRows(err error) bool { return errors.Is(err, pgx.ErrNoRows) }
