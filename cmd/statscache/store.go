package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"time"

	"statscache/engine"
	"statscache/engine/pgstore"
	"statscache/engine/sqlstore"
	"statscache/web"
)

// store is what the commands use of a database, whichever it is: SQLite
// (a path, the embedded default) or PostgreSQL (a postgres:// or
// postgresql:// URL). Both stores implement it; this file is the one place
// that chooses.
type store interface {
	engine.Store
	engine.SpanJournal
	engine.Settings
	web.Reader
	JournalStats(ctx context.Context) (engine.JournalStats, error)
	CountRows(ctx context.Context, ident string) (int64, error)
	Close() error
}

var (
	_ store = (*sqlstore.DB)(nil)
	_ store = (*pgstore.DB)(nil)
)

// storeOptions are the settings the commands give a store.
type storeOptions struct {
	sync       string // SQLite's synchronous mode
	keepErrors int
	readOnly   bool // serve: PostgreSQL opens read-only (a replica will do)
	// idleTx: PostgreSQL ends a session idle in a transaction that long
	// (several daemons share the database, see cluster.go).
	idleTx time.Duration
}

// openStore opens the database that --db names.
func openStore(ctx context.Context, db string, o storeOptions) (store, error) {
	if pgstore.IsURL(db) {
		return pgstore.Open(ctx, db, pgstore.Options{KeepErrors: o.keepErrors, ReadOnly: o.readOnly, IdleInTransaction: o.idleTx})
	}
	return sqlstore.Open(ctx, db, sqlstore.Options{Synchronous: o.sync, KeepErrors: o.keepErrors})
}

// defaultPidfile is where the daemon writes its process id unless told:
// beside a SQLite file, or, for a PostgreSQL URL, in the temporary
// directory under a name derived from the URL (several daemons of one
// machine on one database each need a --pidfile of their own).
func defaultPidfile(db string) string {
	if !pgstore.IsURL(db) {
		return db + ".pid"
	}
	h := sha256.Sum256([]byte(db))
	return filepath.Join(os.TempDir(), "statscache-"+hex.EncodeToString(h[:4])+".pid")
}

// dbName names the database in messages: a path as given, a URL without
// its password.
func dbName(db string) string {
	if pgstore.IsURL(db) {
		return pgstore.Redact(db)
	}
	return db
}
