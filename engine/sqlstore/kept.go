package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"statscache/engine"
	"statscache/engine/sqlkit"
	"statscache/schema"
)

// This file keeps the figures that /status and the API read on every
// request (journal size and span, reject totals, rows per model table,
// queued work items) current, in the transactions that change what they
// count. Reading them is then a lookup of one row by its key, whatever the
// size of the journal or the tables; see migration 0005.

// journalDelta is what one Append adds to journal_stats.
type journalDelta = sqlkit.JournalDelta

// addJournalStats records an Append's new messages in journal_stats. In an
// UPDATE every expression reads the row as it was, so the CASEs compare the
// new bounds with the old ones.
func addJournalStats(ctx context.Context, tx *sql.Tx, d journalDelta) error {
	if d.Added == 0 {
		return nil
	}
	_, err := tx.ExecContext(ctx, `UPDATE journal_stats SET messages = messages + ?1, late = late + ?2,
		oldest_us  = CASE WHEN oldest_us IS NULL OR (?3, ?4) < (oldest_us, oldest_key) THEN ?3 ELSE oldest_us END,
		oldest_key = CASE WHEN oldest_us IS NULL OR (?3, ?4) < (oldest_us, oldest_key) THEN ?4 ELSE oldest_key END,
		newest_us  = CASE WHEN newest_us IS NULL OR (?5, ?6) > (newest_us, newest_key) THEN ?5 ELSE newest_us END,
		newest_key = CASE WHEN newest_us IS NULL OR (?5, ?6) > (newest_us, newest_key) THEN ?6 ELSE newest_key END
		WHERE id = 1`, d.Added, d.Late, d.Lo.TimeUS, d.Lo.Key, d.Hi.TimeUS, d.Hi.Key)
	if err != nil {
		return fmt.Errorf("journal stats: %w", err)
	}
	return nil
}

// qJournalStats reads the kept journal figures (one row by its key).
const qJournalStats = `SELECT messages, late, rejects, oldest_us, oldest_key, newest_us, newest_key FROM journal_stats WHERE id = 1`

// readJournalStats reads journal_stats with q (a pool or a transaction).
func readJournalStats(ctx context.Context, q querier) (JournalStats, error) {
	var s JournalStats
	var oUS, nUS sql.NullInt64
	var oKey, nKey sql.NullString
	if err := q.QueryRowContext(ctx, qJournalStats).Scan(&s.Messages, &s.Late, &s.Rejects, &oUS, &oKey, &nUS, &nKey); err != nil {
		return s, fmt.Errorf("journal stats: %w", err)
	}
	if oUS.Valid {
		s.Oldest = engine.Position{TimeUS: oUS.Int64, Key: oKey.String}
		s.Newest = engine.Position{TimeUS: nUS.Int64, Key: nKey.String}
	}
	return s, nil
}

// rowTriggers returns the statements that keep table_rows current for a
// model table. An upsert that updates an existing row fires no INSERT
// trigger, so the count is the number of distinct rows.
func rowTriggers(table string) []string {
	lit := "'" + strings.ReplaceAll(table, "'", "''") + "'"
	return []string{
		fmt.Sprintf(`CREATE TRIGGER IF NOT EXISTS %s AFTER INSERT ON %s BEGIN UPDATE table_rows SET n = n + 1 WHERE name = %s; END`,
			schema.Quote(table+"__rows_ins"), schema.Quote(table), lit),
		fmt.Sprintf(`CREATE TRIGGER IF NOT EXISTS %s AFTER DELETE ON %s BEGIN UPDATE table_rows SET n = n - 1 WHERE name = %s; END`,
			schema.Quote(table+"__rows_del"), schema.Quote(table), lit),
	}
}

// keepRowCount creates a table's row count triggers and, the first time,
// counts its rows once.
func keepRowCount(ctx context.Context, tx *sql.Tx, table string) error {
	for _, s := range rowTriggers(table) {
		if _, err := tx.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("row count of %s: %w", table, err)
		}
	}
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM table_rows WHERE name = ?`, table).Scan(&n); err != nil {
		return fmt.Errorf("row count of %s: %w", table, err)
	}
	if n > 0 {
		return nil
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO table_rows (name, n) SELECT ?, count(*) FROM `+schema.Quote(table), table); err != nil {
		return fmt.Errorf("row count of %s: %w", table, err)
	}
	return nil
}

// pruneErrors keeps the newest keep errors of a model.
func pruneErrors(ctx context.Context, tx *sql.Tx, ident string, keep int) error {
	_, err := tx.ExecContext(ctx, `DELETE FROM model_errors WHERE ident = ?1 AND id <=
		(SELECT id FROM model_errors WHERE ident = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)`, ident, keep)
	if err != nil {
		return fmt.Errorf("prune errors of %s: %w", ident, err)
	}
	return nil
}

// pruneRejects keeps the newest keep rejected records of an origin.
func pruneRejects(ctx context.Context, tx *sql.Tx, origin string, keep int) error {
	_, err := tx.ExecContext(ctx, `DELETE FROM rejects WHERE origin = ?1 AND id <=
		(SELECT id FROM rejects WHERE origin = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)`, origin, keep)
	if err != nil {
		return fmt.Errorf("prune rejects of %s: %w", origin, err)
	}
	return nil
}

// keptFigures completes migration 0005: it counts the rows of the model
// tables that exist, and identifies the rejects kept before it.
func keptFigures(ctx context.Context, tx *sql.Tx) error {
	rows, err := tx.QueryContext(ctx, `SELECT m.table_name FROM models m JOIN sqlite_master s ON s.type = 'table' AND s.name = m.table_name`)
	if err != nil {
		return fmt.Errorf("count model tables: %w", err)
	}
	var tables []string
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			rows.Close()
			return fmt.Errorf("count model tables: %w", err)
		}
		tables = append(tables, t)
	}
	rows.Close()
	for _, t := range tables {
		if err := keepRowCount(ctx, tx, t); err != nil {
			return err
		}
	}
	return identifyOldRejects(ctx, tx)
}

// identifyOldRejects gives each reject kept before migration 0005 its
// origin and identity, drops a second copy of the same record (a file
// replayed twice), and counts the totals.
func identifyOldRejects(ctx context.Context, tx *sql.Tx) error {
	type old struct {
		id     int64
		source string
		record []byte
	}
	rows, err := tx.QueryContext(ctx, `SELECT id, source, record FROM rejects ORDER BY id`)
	if err != nil {
		return fmt.Errorf("identify rejects: %w", err)
	}
	var all []old
	for rows.Next() {
		var o old
		if err := rows.Scan(&o.id, &o.source, &o.record); err != nil {
			rows.Close()
			return fmt.Errorf("identify rejects: %w", err)
		}
		all = append(all, o)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("identify rejects: %w", err)
	}
	seen := map[string]bool{}
	totals := map[string]int64{}
	var total int64
	for _, o := range all {
		origin := rejectOrigin(o.source)
		key := rejectKey(o.source, origin, o.record)
		if seen[string(key)] {
			if _, err := tx.ExecContext(ctx, `DELETE FROM rejects WHERE id = ?`, o.id); err != nil {
				return fmt.Errorf("identify rejects: %w", err)
			}
			continue
		}
		seen[string(key)] = true
		totals[origin]++
		total++
		if _, err := tx.ExecContext(ctx, `UPDATE rejects SET origin = ? WHERE id = ?`, origin, o.id); err != nil {
			return fmt.Errorf("identify rejects: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO reject_seen (key) VALUES (?)`, key); err != nil {
			return fmt.Errorf("identify rejects: %w", err)
		}
	}
	for origin, n := range totals {
		if _, err := tx.ExecContext(ctx, `INSERT INTO reject_totals (origin, total) VALUES (?, ?)`, origin, n); err != nil {
			return fmt.Errorf("identify rejects: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, `UPDATE journal_stats SET rejects = ? WHERE id = 1`, total); err != nil {
		return fmt.Errorf("identify rejects: %w", err)
	}
	return nil
}
