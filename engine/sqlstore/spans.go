package sqlstore

import (
	"context"
	"database/sql"
	"fmt"

	"statscache/engine"
)

var _ engine.SpanJournal = (*DB)(nil)

// addSpan records span as complete inside tx, merging it with every
// recorded span it overlaps or touches, so the table stays a handful of
// rows however many windows a fill delivers.
func addSpan(ctx context.Context, tx *sql.Tx, span engine.Span) error {
	if span.Empty() {
		return nil
	}
	lo, hi := span.FromUS, span.ToUS
	rows, err := tx.QueryContext(ctx, `SELECT start_us, end_us FROM fill_spans WHERE start_us <= ? AND end_us >= ?`, hi, lo)
	if err != nil {
		return fmt.Errorf("record complete span: %w", err)
	}
	var starts []int64
	for rows.Next() {
		var a, b int64
		if err := rows.Scan(&a, &b); err != nil {
			rows.Close()
			return fmt.Errorf("record complete span: %w", err)
		}
		lo, hi = min(lo, a), max(hi, b)
		starts = append(starts, a)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("record complete span: %w", err)
	}
	for _, a := range starts {
		if _, err := tx.ExecContext(ctx, `DELETE FROM fill_spans WHERE start_us = ?`, a); err != nil {
			return fmt.Errorf("record complete span: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO fill_spans (start_us, end_us) VALUES (?, ?)`, lo, hi); err != nil {
		return fmt.Errorf("record complete span: %w", err)
	}
	return nil
}

// CompleteSpans returns the spans recorded as complete, in order.
func (db *DB) CompleteSpans(ctx context.Context) ([]engine.Span, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT start_us, end_us FROM fill_spans ORDER BY start_us`)
	if err != nil {
		return nil, fmt.Errorf("read complete spans: %w", err)
	}
	defer rows.Close()
	var out []engine.Span
	for rows.Next() {
		var s engine.Span
		if err := rows.Scan(&s.FromUS, &s.ToUS); err != nil {
			return nil, fmt.Errorf("read complete spans: %w", err)
		}
		out = append(out, s)
	}
	return out, rows.Err()
}
