package pgstore

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"statscache/engine"
)

// fullError marks an error caused by a full disk as engine.ErrDiskFull,
// keeping PostgreSQL's message.
type fullError struct{ err error }

func (e fullError) Error() string   { return e.err.Error() }
func (e fullError) Unwrap() []error { return []error{e.err, engine.ErrDiskFull} }

// pgCode is the SQLSTATE of a server error, "" for any other error (a
// lost connection, a cancelled context).
func pgCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// diskFull wraps err as engine.ErrDiskFull when PostgreSQL reports
// disk_full (53100): the engine then stalls the model instead of retrying
// without end.
func diskFull(err error) error {
	if err == nil || errors.Is(err, engine.ErrDiskFull) {
		return err
	}
	if pgCode(err) == "53100" {
		return fullError{err}
	}
	return err
}

// retryable reports whether a transaction failed only because another one
// ran at the same time (a deadlock, a serialization failure): running it
// again is safe and will succeed.
func retryable(err error) bool {
	switch pgCode(err) {
	case "40P01", "40001":
		return true
	}
	return false
}

// rowError maps the errors of a model's row writes that its script caused
// (a duplicate key on insert, a NULL in a NOT NULL column, a value the
// column cannot hold) to engine.ErrRowConflict: the engine then processes
// the batch again and stops the model if it keeps failing, instead of
// retrying a write that can never succeed.
func rowError(ident, kind string, err error) error {
	code := pgCode(err)
	switch {
	case code == "23505" || code == "23502":
		return fmt.Errorf("%s into %s: %w (%v)", kind, ident, engine.ErrRowConflict, err)
	case len(code) == 5 && code[:2] == "22":
		// data_exception: a NUL or invalid UTF-8 in a text, a number out
		// of range, a JSON text PostgreSQL refuses (\u0000).
		return fmt.Errorf("%s into %s: a value PostgreSQL cannot store: %w (%v)", kind, ident, engine.ErrRowConflict, err)
	}
	return diskFull(fmt.Errorf("write %s: %w", ident, err))
}

// connLost reports whether err says the connection broke (the server
// restarted or ended it, the network failed) rather than that the
// statement was refused: a server error of class 08 (connection
// exception) or 57P (the server shut down or ended the session), or any
// error that did not come from the server. A cancelled context is not.
func connLost(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return strings.HasPrefix(pe.Code, "08") || strings.HasPrefix(pe.Code, "57P")
	}
	return true
}

// connAttempts bounds how often an operation that is safe to repeat runs
// when its connection broke: the pool drops the broken connection, and
// after a server restart every pooled one is broken.
const connAttempts = 4

// again runs fn, again when it failed because its connection broke. Only
// operations that may run twice go through it: reads, and writes that are
// idempotent (a journal append is deduplicated, a setting initialised
// once, a status set).
func again[T any](ctx context.Context, fn func() (T, error)) (T, error) {
	for attempt := 1; ; attempt++ {
		v, err := fn()
		if err == nil || attempt == connAttempts || !(connLost(err) || retryable(err)) || ctx.Err() != nil {
			return v, err
		}
	}
}

// again0 is again for operations that return only an error.
func again0(ctx context.Context, fn func() error) error {
	_, err := again(ctx, func() (struct{}, error) { return struct{}{}, fn() })
	return err
}

// exec runs one statement that may run twice, again when its connection
// broke.
func (db *DB) exec(ctx context.Context, sql string, args ...any) error {
	return again0(ctx, func() error {
		_, err := db.pool.Exec(ctx, sql, args...)
		return err
	})
}
