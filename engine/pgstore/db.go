// Package pgstore keeps the journal, the model tables, their state and
// their cursors in PostgreSQL, through pgx. It implements the same engine
// interfaces as engine/sqlstore (engine.Store, engine.SpanJournal,
// engine.Settings, engine.StallNoter) and the read queries of the web API,
// with the same guarantees: the journal deduplicated on the message key and
// ordered by (time, key), each model's rows, state, cursor and work queue
// committed in one transaction.
//
// Several processes may share one database: registration takes an advisory
// lock around its DDL, journal appends read the models' cursors under a
// share lock, and a commit whose COMMIT was lost with the connection is
// told apart from one that never happened (models.commits), so a batch is
// never written twice.
package pgstore

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"statscache/engine"
	"statscache/engine/sqlkit"
)

var (
	_ engine.Store       = (*DB)(nil)
	_ engine.SpanJournal = (*DB)(nil)
	_ engine.Settings    = (*DB)(nil)
	_ engine.StallNoter  = (*DB)(nil)
)

// Options tune the store.
type Options struct {
	// KeepErrors is how many of the newest model errors each model keeps,
	// and how many of the newest rejected records each origin keeps
	// (default 1000). The running totals stay exact whatever is pruned.
	KeepErrors int
	// ReadOnly opens the database for reading only (statscache serve, a
	// read replica): nothing is written, migrations are not run (a schema
	// that is not current is an error), and every transaction is read-only.
	ReadOnly bool
	// MaxConns bounds the pool (default: pgxpool's, at least 4).
	MaxConns int32
	// IdleInTransaction, when set, makes the server end a session that
	// sits idle inside a transaction that long
	// (idle_in_transaction_session_timeout). Several instances share the
	// database (engine/cluster): one paused mid-transaction (SIGSTOP, a
	// long GC) must not hold row locks that stop the others' journal
	// appends and commits; its transaction fails and is retried.
	IdleInTransaction time.Duration
}

// DefaultKeepErrors is Options.KeepErrors when it is not set.
const DefaultKeepErrors = 1000

// DB is an open statscache database on PostgreSQL.
type DB struct {
	pool     *pgxpool.Pool
	keep     int
	readOnly bool
	// codec compresses journal records (codec.go).
	codec atomic.Pointer[sqlkit.Codec]
	name  string // the URL without its password, for messages
	url   string

	stalls sqlkit.Stalls // see NoteStall
	// leased is set once this process takes a lease (Acquire): its
	// model commits are fenced, and take the journal lock (Begin).
	leased atomic.Bool

	mu     sync.Mutex
	tables map[string]*modelTable // ident -> table
	// anchors make deep pages by number cheap (see sqlkit.Anchors).
	anchors sqlkit.Anchors
	// unsure holds, per model, the commit whose COMMIT was lost with its
	// connection (see modelTx.Commit).
	unsure map[string]unsureCommit
}

// IsURL reports whether db names a PostgreSQL database (a postgres:// or
// postgresql:// URL) rather than a SQLite file.
func IsURL(db string) bool {
	return strings.HasPrefix(db, "postgres://") || strings.HasPrefix(db, "postgresql://")
}

// Open connects to the database at url (any URL pgx accepts) and, unless
// opts.ReadOnly, brings its schema up to date.
func Open(ctx context.Context, dbURL string, opts Options) (*DB, error) {
	if opts.KeepErrors <= 0 {
		opts.KeepErrors = DefaultKeepErrors
	}
	name := Redact(dbURL)
	cfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", name, err)
	}
	if opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	} else if cfg.MaxConns < 4 {
		cfg.MaxConns = 4
	}
	if opts.IdleInTransaction > 0 {
		cfg.ConnConfig.RuntimeParams["idle_in_transaction_session_timeout"] = strconv.FormatInt(opts.IdleInTransaction.Milliseconds(), 10)
	}
	if opts.ReadOnly {
		cfg.ConnConfig.RuntimeParams["default_transaction_read_only"] = "on"
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		// A server that does not answer fails a connection attempt in
		// bounded time (the URL's connect_timeout overrides it), so that
		// retries and a shutdown's last commit do not wait without end.
		cfg.ConnConfig.ConnectTimeout = 10 * time.Second
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", name, err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open %s: %w", name, explain(err))
	}
	db := &DB{pool: pool, keep: opts.KeepErrors, readOnly: opts.ReadOnly, name: name, url: dbURL, tables: map[string]*modelTable{}}
	if err := db.migrate(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open %s: %w", name, err)
	}
	if _, err := db.loadCodec(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open %s: %w", name, err)
	}
	return db, nil
}

// Close closes the pool.
func (db *DB) Close() error {
	db.pool.Close()
	return nil
}

// URL is the URL the database was opened with (its password included).
func (db *DB) URL() string { return db.url }

// String names the database (its URL without a password).
func (db *DB) String() string { return db.name }

// Redact drops the password from a URL, for messages and logs.
func Redact(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}

// explain adds what to do to the errors an operator meets first.
func explain(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "3D000" { // invalid_catalog_name
		return fmt.Errorf("%w (create it first, e.g. createdb, or CREATE DATABASE)", err)
	}
	return err
}
