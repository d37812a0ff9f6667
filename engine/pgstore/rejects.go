package pgstore

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"statscache/engine"
	"statscache/engine/sqlkit"
)

// AddRejects keeps rejected records (their first 64 KiB) with the reason.
// A record already kept (the same file replayed, an archive window fetched
// again) changes nothing; see sqlkit.RejectKey. Each origin keeps its
// newest records (Options.KeepErrors) and an exact total.
func (db *DB) AddRejects(ctx context.Context, rs []engine.Reject) error {
	if len(rs) == 0 {
		return nil
	}
	// Idempotent (reject_seen), so safe to run again.
	err := again0(ctx, func() error {
		return pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error { return db.addRejects(ctx, tx, rs) })
	})
	if err != nil {
		return diskFull(fmt.Errorf("add rejects: %w", err))
	}
	return nil
}

func (db *DB) addRejects(ctx context.Context, tx pgx.Tx, rs []engine.Reject) error {
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
		origin := sqlkit.RejectOrigin(r.Source)
		tag, err := tx.Exec(ctx, `INSERT INTO reject_seen (key) VALUES ($1) ON CONFLICT DO NOTHING`, sqlkit.RejectKey(r.Source, origin, rec))
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			continue // kept before
		}
		// A source or reason is text: PostgreSQL refuses a NUL in it
		// (SQLite would keep it), so one is shown as \x00.
		if _, err := tx.Exec(ctx, `INSERT INTO rejects (source, reason, record, at, origin) VALUES ($1, $2, $3, $4, $5)`,
			safeText(r.Source), safeText(r.Reason), rec, now, safeText(origin)); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO reject_totals (origin, total) VALUES ($1, 1)
			ON CONFLICT (origin) DO UPDATE SET total = reject_totals.total + 1`, safeText(origin)); err != nil {
			return err
		}
		touched[origin] = true
		added++
	}
	if added > 0 {
		if _, err := tx.Exec(ctx, `UPDATE journal_stats SET rejects = rejects + $1 WHERE id = 1`, added); err != nil {
			return err
		}
	}
	for origin := range touched {
		if _, err := tx.Exec(ctx, `DELETE FROM rejects WHERE origin = $1 AND id <=
			(SELECT id FROM rejects WHERE origin = $1 ORDER BY id DESC LIMIT 1 OFFSET $2)`, safeText(origin), db.keep); err != nil {
			return fmt.Errorf("prune rejects of %s: %w", origin, err)
		}
	}
	return nil
}

// RejectTotals returns, per source (see sqlkit.RejectOrigin), how many
// distinct rejected records were ever kept, pruned or not.
func (db *DB) RejectTotals(ctx context.Context) (map[string]int64, error) {
	rows, err := db.pool.Query(ctx, `SELECT origin, total FROM reject_totals`)
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
