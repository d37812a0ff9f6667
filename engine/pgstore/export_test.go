package pgstore

import (
	"context"

	"github.com/jackc/pgx/v5"

	"statscache/engine"
)

// DiskFull exposes diskFull to the tests.
var DiskFull = diskFull

// TerminateOthers ends every other connection to the database, as a
// server restart or an administrator would.
func (db *DB) TerminateOthers(ctx context.Context) error {
	_, err := db.pool.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE datname = current_database() AND pid <> pg_backend_pid()`)
	return err
}

// AppendHeld runs an append's transaction up to its COMMIT and returns
// the open transaction: an instance whose append is in flight (or paused
// mid-append) while other instances commit models.
func (db *DB) AppendHeld(ctx context.Context, msgs []*engine.Message) (pgx.Tx, error) {
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		return nil, err
	}
	c, err := db.codecFor(ctx, tx, msgs)
	if err == nil {
		_, err = insertJournal(ctx, tx, msgs, c)
	}
	if err != nil {
		tx.Rollback(context.WithoutCancel(ctx))
		return nil, err
	}
	return tx, nil
}

// RowSets is how many column sets the multi-row writes of a model's table
// remember.
func (db *DB) RowSets(ident string) int {
	rt := &db.table(ident).rows
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return rt.sets.Len()
}
