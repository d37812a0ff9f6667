package pgstore

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"statscache/schema"
)

// Advisory lock keys (pg_advisory_xact_lock), one per kind of change that
// several processes sharing the database must make one at a time. The
// high half spells "stat".
const (
	lockMigrate  int64 = 0x73746174_00000001 // running migrations
	lockRegister int64 = 0x73746174_00000002 // creating or changing model tables
	lockSpans    int64 = 0x73746174_00000003 // merging complete spans
	// lockJournal orders journal appends (exclusive) against fenced model
	// commits (shared) across processes, as Engine.commitMu does within
	// one: see insertJournal and checkFence.
	lockJournal int64 = 0x73746174_00000004
)

// migrate runs the PostgreSQL migrations not yet recorded, in one
// transaction under an advisory lock, so that several daemons starting at
// once on a new database apply each migration exactly once. A current
// schema is checked without writing anything, which is all a read-only
// store (a replica) may do.
func (db *DB) migrate(ctx context.Context) error {
	all := schema.PostgresMigrations()
	done, err := db.appliedMigrations(ctx, db.pool)
	if err != nil {
		return err
	}
	missing := 0
	for _, m := range all {
		if !done[m.Name] {
			missing++
		}
	}
	if missing == 0 {
		return nil
	}
	if db.readOnly {
		return fmt.Errorf("the database's schema is not current (%d of %d migrations missing): open it once for writing (statscache run or replay) first", missing, len(all))
	}
	return pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, lockMigrate); err != nil {
			return fmt.Errorf("migrations: lock: %w", err)
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY, at BIGINT NOT NULL)`); err != nil {
			return fmt.Errorf("migrations table: %w", err)
		}
		done, err := db.appliedMigrations(ctx, tx) // another process may have run them meanwhile
		if err != nil {
			return err
		}
		for _, m := range all {
			if done[m.Name] {
				continue
			}
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return fmt.Errorf("migration %s: %w", m.Name, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO migrations (name, at) VALUES ($1, $2)`, m.Name, time.Now().Unix()); err != nil {
				return fmt.Errorf("migration %s: %w", m.Name, err)
			}
		}
		return nil
	})
}

// queryer is a pool or a transaction.
type queryer interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// appliedMigrations returns the names of the recorded migrations; none
// when the database has no migrations table yet.
func (db *DB) appliedMigrations(ctx context.Context, q queryer) (map[string]bool, error) {
	var exists bool
	if err := q.QueryRow(ctx, `SELECT to_regclass('migrations') IS NOT NULL`).Scan(&exists); err != nil {
		return nil, fmt.Errorf("migrations: %w", err)
	}
	done := map[string]bool{}
	if !exists {
		return done, nil
	}
	rows, err := q.Query(ctx, `SELECT name FROM migrations`)
	if err != nil {
		return nil, fmt.Errorf("migrations: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("migrations: %w", err)
	}
	for _, n := range names {
		done[n] = true
	}
	return done, nil
}
