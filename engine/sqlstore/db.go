// Package sqlstore keeps the journal, the model tables, their state and
// their cursors in SQLite. It implements engine.Store for the engine and the
// read queries the web API needs.
package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mattn/go-sqlite3" // the SQLite driver

	"statscache/engine"
	"statscache/engine/sqlkit"
	"statscache/schema"
)

var _ engine.Store = (*DB)(nil)

// Options tune how the database file is opened.
type Options struct {
	// Synchronous is SQLite's synchronous setting: "NORMAL" (the default)
	// survives a crash of the process at any instant; "FULL" also survives
	// a power cut without losing the last commits.
	Synchronous string
	// BusyTimeout is how long a statement waits for a lock held by another
	// process (for example "serve" reading while "replay" writes).
	BusyTimeout time.Duration
	// KeepErrors is how many of the newest model errors each model keeps,
	// and how many of the newest rejected records each origin keeps
	// (default 1000). The running totals stay exact whatever is pruned.
	KeepErrors int
}

// driverName is go-sqlite3 with every connection's temporary files in
// memory (PRAGMA temp_store). A multi-row upsert, which is how model rows
// are written, keeps a statement journal so that it can be undone alone;
// on disk (the default) it wrote a third of all the pages a replay wrote,
// each as two system calls.
const driverName = "sqlite3_statscache"

func init() {
	sql.Register(driverName, &sqlite3.SQLiteDriver{ConnectHook: func(c *sqlite3.SQLiteConn) error {
		if _, err := c.Exec("PRAGMA temp_store = MEMORY", nil); err != nil {
			return fmt.Errorf("temp_store: %w", err)
		}
		return nil
	}})
}

// DefaultKeepErrors is Options.KeepErrors when it is not set.
const DefaultKeepErrors = 1000

// DB is an open statscache database. Writes go through one connection, so
// model commits and journal appends queue up instead of failing with
// SQLITE_BUSY; reads use a pool of their own and never wait for writers
// (WAL mode).
type DB struct {
	Path string
	w, r *sql.DB
	keep int // Options.KeepErrors
	// codec compresses journal records (see rawcodec.go).
	codec atomic.Pointer[codec]

	stalls sqlkit.Stalls // see NoteStall

	// recentKeys is about how many hashes journal_keys_recent holds: when
	// to merge it (mergeRecentKeys). Counted at Open, then kept by appends.
	recentKeys atomic.Int64

	mu     sync.Mutex
	tables map[string]*modelTable // ident -> table
	// anchors make deep pages by number cheap (see sqlkit.Anchors).
	anchors sqlkit.Anchors
}

// Open opens (creating if needed) the database at path and runs the
// daemon's migrations.
func Open(ctx context.Context, path string, opts Options) (*DB, error) {
	if opts.Synchronous == "" {
		opts.Synchronous = "NORMAL"
	}
	if opts.BusyTimeout <= 0 {
		opts.BusyTimeout = 30 * time.Second
	}
	if opts.KeepErrors <= 0 {
		opts.KeepErrors = DefaultKeepErrors
	}
	q := url.Values{}
	q.Set("_journal_mode", "WAL")
	q.Set("_synchronous", opts.Synchronous)
	q.Set("_busy_timeout", fmt.Sprint(opts.BusyTimeout.Milliseconds()))
	q.Set("_txlock", "immediate")
	// The writer's page cache holds the journal's key hashes (about 25
	// bytes a message; see migration 0010), which every append reads and
	// writes at random places: 64 MiB keeps those of a few million
	// messages in memory instead of re-reading their pages from the file.
	// The default (2 MB) made the journal's cost per message grow with it.
	q.Set("_cache_size", writerCache)
	// Prepared statements are kept per connection: a model commit runs
	// the same few statements every time (see modelTx.stmt), and so does
	// a journal append.
	q.Set("_stmt_cache_size", "64")
	w, err := sql.Open(driverName, "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetConnMaxIdleTime(0)
	db := &DB{Path: path, w: w, keep: opts.KeepErrors, tables: map[string]*modelTable{}}
	if err := db.migrate(ctx); err != nil {
		w.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	var recent int64
	if err := w.QueryRowContext(ctx, `SELECT count(*) FROM journal_keys_recent`).Scan(&recent); err != nil {
		w.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	db.recentKeys.Store(recent)
	dicts, err := loadDicts(ctx, w)
	if err == nil {
		var c *codec
		if c, err = newCodec(dicts); err == nil {
			db.codec.Store(c)
		}
	}
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	q.Del("_txlock")
	q.Del("_cache_size")
	q.Set("_query_only", "1")
	r, err := sql.Open(driverName, "file:"+path+"?"+q.Encode())
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open %s for reading: %w", path, err)
	}
	r.SetMaxOpenConns(4)
	db.r = r
	return db, nil
}

// writerCache is the writer's page cache (see Open), indexBuildCache the
// one it has while it builds a model's declared indexes (see BuildIndexes),
// both as cache_size values (negative: KiB).
const (
	writerCache     = "-65536"
	indexBuildCache = "-8192"
)

// Close closes both connection pools.
func (db *DB) Close() error {
	err1 := db.r.Close()
	err2 := db.w.Close()
	if err1 != nil {
		return err1
	}
	return err2
}

// fixups complete a migration with what SQL alone cannot do, in the
// migration's transaction.
var fixups = map[string]func(context.Context, *sql.Tx) error{
	"0005_kept_figures.sql":      keptFigures,
	"0010_journal_clustered.sql": clusterJournal,
}

func (db *DB) migrate(ctx context.Context) error {
	if _, err := db.w.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY, at INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("migrations table: %w", err)
	}
	for _, m := range schema.Migrations() {
		var n int
		if err := db.w.QueryRowContext(ctx, `SELECT count(*) FROM migrations WHERE name = ?`, m.Name).Scan(&n); err != nil {
			return fmt.Errorf("migration %s: %w", m.Name, err)
		}
		if n > 0 {
			continue
		}
		tx, err := db.w.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("migration %s: %w", m.Name, err)
		}
		if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
			tx.Rollback()
			return fmt.Errorf("migration %s: %w", m.Name, err)
		}
		if fix := fixups[m.Name]; fix != nil {
			if err := fix(ctx, tx); err != nil {
				tx.Rollback()
				return fmt.Errorf("migration %s: %w", m.Name, err)
			}
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO migrations (name, at) VALUES (?, ?)`, m.Name, time.Now().Unix()); err != nil {
			tx.Rollback()
			return fmt.Errorf("migration %s: %w", m.Name, err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("migration %s: %w", m.Name, err)
		}
	}
	return nil
}
