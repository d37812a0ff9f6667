package sqlstore

import (
	"errors"
	"syscall"

	"github.com/mattn/go-sqlite3"

	"statscache/engine"
)

// fullError marks an error caused by a full disk (SQLITE_FULL, or ENOSPC
// from the file system) as engine.ErrDiskFull, keeping SQLite's message.
type fullError struct{ err error }

func (e fullError) Error() string   { return e.err.Error() }
func (e fullError) Unwrap() []error { return []error{e.err, engine.ErrDiskFull} }

// diskFull wraps err as engine.ErrDiskFull when the disk is full: the
// engine then stalls the model instead of retrying without end.
func diskFull(err error) error {
	if err == nil || errors.Is(err, engine.ErrDiskFull) {
		return err
	}
	var se sqlite3.Error
	if errors.As(err, &se) && (se.Code == sqlite3.ErrFull || se.SystemErrno == syscall.ENOSPC) {
		return fullError{err}
	}
	return err
}

// fullTx is a model's commit transaction whose errors say when the disk is
// full.
type fullTx struct{ *modelTx }

func (t fullTx) Apply(ops []engine.RowOp) error { return diskFull(t.modelTx.Apply(ops)) }

func (t fullTx) PutState(key string, value *string) error {
	return diskFull(t.modelTx.PutState(key, value))
}

func (t fullTx) Commit(cp engine.Checkpoint) error { return diskFull(t.modelTx.Commit(cp)) }

// NoteStall implements engine.StallNoter: until cleared, the API of this
// process shows the model as failed with the reason. Nothing is written:
// the disk is full, and the mark must not outlive the cause (a restart
// tries the model again).
func (db *DB) NoteStall(ident, reason string) { db.stalls.Note(ident, reason) }

// withStall applies a mark of NoteStall to what the API reads of a model.
func (db *DB) withStall(info *engine.ModelInfo) { db.stalls.Apply(info) }
