package pgstore

import "context"

// DiskFull exposes diskFull to the tests.
var DiskFull = diskFull

// TerminateOthers ends every other connection to the database, as a
// server restart or an administrator would.
func (db *DB) TerminateOthers(ctx context.Context) error {
	_, err := db.pool.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE datname = current_database() AND pid <> pg_backend_pid()`)
	return err
}
