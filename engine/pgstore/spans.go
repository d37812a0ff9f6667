package pgstore

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"statscache/engine"
)

// addSpan records span as complete inside tx, merging it with every
// recorded span it overlaps or touches. The merge reads, deletes and
// inserts rows, which two processes filling at once must not interleave:
// it runs under an advisory lock held until tx ends.
func addSpan(ctx context.Context, tx pgx.Tx, span engine.Span) error {
	if span.Empty() {
		return nil
	}
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, lockSpans); err != nil {
		return fmt.Errorf("record complete span: %w", err)
	}
	var lo, hi int64
	err := tx.QueryRow(ctx, `WITH gone AS (DELETE FROM fill_spans WHERE start_us <= $2 AND end_us >= $1 RETURNING start_us, end_us)
		SELECT least($1, min(start_us)), greatest($2, max(end_us)) FROM gone`, span.FromUS, span.ToUS).Scan(&lo, &hi)
	if err != nil {
		return fmt.Errorf("record complete span: %w", err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO fill_spans (start_us, end_us) VALUES ($1, $2)`, lo, hi); err != nil {
		return fmt.Errorf("record complete span: %w", err)
	}
	return nil
}

// CompleteSpans returns the spans recorded as complete, in order.
func (db *DB) CompleteSpans(ctx context.Context) ([]engine.Span, error) {
	return again(ctx, func() ([]engine.Span, error) { return db.completeSpans(ctx) })
}

func (db *DB) completeSpans(ctx context.Context) ([]engine.Span, error) {
	rows, err := db.pool.Query(ctx, `SELECT start_us, end_us FROM fill_spans ORDER BY start_us`)
	if err != nil {
		return nil, fmt.Errorf("read complete spans: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (engine.Span, error) {
		var s engine.Span
		err := r.Scan(&s.FromUS, &s.ToUS)
		return s, err
	})
	if err != nil {
		return nil, fmt.Errorf("read complete spans: %w", err)
	}
	return out, nil
}
