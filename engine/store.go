package engine

import (
	"context"
	"errors"
	"time"
)

// ErrNotFound is returned when a model or row does not exist.
var ErrNotFound = errors.New("not found")

// ErrTableChanged is returned by Register when a model's declared table
// differs from the table it already has: the engine then rebuilds a new
// version of the table from the journal while the old one keeps serving.
var ErrTableChanged = errors.New("the declared table differs from the existing table")

// ErrModelLimit is wrapped by the errors of a model that exceeded one of
// its limits (time, memory, string size). The engine stops such a model at
// once: its state can no longer be trusted.
var ErrModelLimit = errors.New("model exceeded a limit")

// ErrDiskFull is wrapped by a store's errors when the disk (or the
// database's size limit) is full. The engine does not retry such a commit
// without end: it stalls the model and tries again at intervals (see
// Config.DiskFullWait).
var ErrDiskFull = errors.New("database or disk is full")

// StallNoter is implemented by a store that serves readers (the API) and
// can show them that a model is stopped for a passing reason, such as a
// full disk, without writing it: the write would fail for that very
// reason, and a durable mark would outlive the cause. An empty reason
// clears the mark.
type StallNoter interface {
	NoteStall(ident, reason string)
}

// ErrRowConflict is returned when a model inserts a row whose key already
// exists: a mistake in the script, which should upsert or add.
var ErrRowConflict = errors.New("a row with this key already exists")

// AppendResult counts what Append did with a batch of messages.
type AppendResult struct {
	Added      int // new messages written to the journal
	Duplicates int // messages whose key was already there (or twice in the batch)
	Late       int // new messages behind the cursor of some model
}

// Journal is the durable, totally ordered log of accepted messages. All its
// methods are safe for concurrent use.
type Journal interface {
	// Append writes the messages that are not in the journal yet, in one
	// transaction, deduplicated on Message.Key.
	Append(ctx context.Context, msgs []*Message) (AppendResult, error)
	// Scan returns up to limit messages after the position, in order.
	Scan(ctx context.Context, after Position, limit int) ([]*Message, error)
}

// Reject is a record that could not be accepted, kept for inspection.
type Reject struct {
	Source string // where it came from, e.g. "file.jsonl:17"
	Reason string
	Record []byte
}

// ModelError is a failure of a model's process function on one message.
type ModelError struct {
	Ident     string
	MsgID     string
	TimeUS    int64
	Err       string
	Traceback string
}

// Checkpoint is what a model's commit records besides its rows and state:
// the last message it has fully processed, and counters.
type Checkpoint struct {
	Cursor    Position
	CursorID  string
	Processed int64 // messages processed in this batch (added to the total)
	Errors    []ModelError
	// The work queue of a QueueModel: the items the batch pushed, the last
	// seq pushed so far, and the last item delivered (the store deletes it
	// and every item before it).
	Work     []WorkItem
	WorkSeq  int64
	WorkDone int64
	// Fence, when set (several instances share the database, see
	// lease.go), must be checked by the store in the commit transaction:
	// the model's lease (LeaseKey of its ident) must still be held by
	// Fence.Holder with Fence.Token, else the commit fails with an error
	// wrapping ErrFenced and writes nothing. From is the cursor of the
	// model's previous commit (where this batch starts), for a store that
	// logs which instance committed which part of the journal. With a
	// Fence the store also checks, after any journal append in flight has
	// ended, that the journal holds no more than Processed messages in
	// (From, Cursor] (Processed counts every message the batch passed),
	// else the commit fails with an error wrapping ErrJournaledBehind.
	Fence *Fence
	From  Position
	// StartUS is where the model's history starts in the run that
	// commits (math.MinInt64: all of it). Instances sharing the database
	// may each have set a start when they added a new model: the store
	// records, with a fenced first commit, the start of the run that made
	// it, which decides which messages journaled later are late for it.
	StartUS int64
}

// ModelStatus is the durable status of a model.
type ModelStatus struct {
	Cursor    Position
	CursorID  string
	Processed int64
	Errors    int64
	Status    string // "ok" or "failed"
	Reason    string
	UpdatedAt time.Time
}

// ModelStore keeps model tables, state and cursors. All its methods are safe
// for concurrent use; each model's transactions are its own.
type ModelStore interface {
	// Register creates or checks the model's table and returns its status.
	Register(ctx context.Context, spec *ModelSpec) (ModelStatus, error)
	// Begin starts the commit transaction of one batch of a model.
	Begin(ctx context.Context, ident string) (ModelTx, error)
	// GetRow reads one committed row of a model's table by its key, or nil.
	GetRow(ctx context.Context, ident string, key Row) (Row, error)
	// LoadState reads one committed state value of a model.
	LoadState(ctx context.Context, ident, key string) (string, bool, error)
	// PendingWork reads a model's committed work items that are not
	// delivered yet, in order, and the last seq it ever pushed.
	PendingWork(ctx context.Context, ident string) (items []WorkItem, lastSeq int64, err error)
	// SetStatus marks a model ok or failed, outside any batch. f, when
	// not nil, is the lease the model runs under, checked as Promote
	// checks it: an instance that lost the lease must not mark the model
	// failed under the instance that runs it now.
	SetStatus(ctx context.Context, ident, status, reason string, f *Fence) error
	// Promote replaces model target by model shadow in one transaction:
	// target's table, state and errors are dropped, and shadow (its table,
	// cursor, state and errors) takes target's ident. f, when not nil, is
	// the lease the rebuild runs under: a store shared by several
	// instances checks it in the transaction as it checks a commit's, and
	// refuses the promotion with an error wrapping ErrFenced, writing
	// nothing, when another instance holds the lease now.
	Promote(ctx context.Context, shadow, target string, f *Fence) error
}

// IndexBuilder is a ModelStore that builds the secondary indexes of a
// model's table (the columns its script declares with index = true) only
// once the model has caught up: while it computes its history every new
// row would cost a write at a random place in each index, and an index
// built once from the finished rows costs several times less. No read of
// the API uses them, so a table without them yet only answers an
// analyst's own queries more slowly. The engine calls BuildIndexes when a
// model reaches the head of the journal (or the watermark); it must be
// idempotent and cheap once done.
type IndexBuilder interface {
	BuildIndexes(ctx context.Context, ident string) error
}

// ModelTx is one batch commit: rows written through RowWriter, state
// changes, errors and the cursor, all committed together or not at all.
type ModelTx interface {
	// Apply writes the batch's row operations, in order.
	Apply(ops []RowOp) error
	PutState(key string, value *string) error // nil deletes
	Commit(cp Checkpoint) error
	Rollback() error
}

// Store is everything the engine needs from persistence.
type Store interface {
	Journal
	ModelStore
	AddRejects(ctx context.Context, rs []Reject) error
}

// Span is a half-open span of time [FromUS, ToUS), in unix microseconds.
type Span struct {
	FromUS, ToUS int64
}

// Empty reports whether the span holds no instant.
func (s Span) Empty() bool { return s.ToUS <= s.FromUS }

// SpanJournal is a journal that also records which spans of time it holds
// completely: every message the archive has for the span is journaled.
// The daemon's follower (engine/follow) keeps this record so that a crash
// at any instant of an archive fill leaves exactly the unfilled spans to
// fill again at the next start.
type SpanJournal interface {
	// AppendSpan appends msgs like Append and, in the same transaction,
	// records span as complete (merged with the spans recorded before).
	AppendSpan(ctx context.Context, msgs []*Message, span Span) (AppendResult, error)
	// CompleteSpans returns the recorded spans, sorted, disjoint and not
	// adjacent (touching spans are merged).
	CompleteSpans(ctx context.Context) ([]Span, error)
}
