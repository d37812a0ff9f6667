// Package storemove copies a whole statscache database from one store to
// another (statscache migrate: the embedded SQLite file to PostgreSQL), so
// that a deployment moves without recomputing anything: the journal in
// order with its dedupe keys, times, raw records and late flags, the
// record of complete spans, the settings, every model's declaration,
// table, state, cursor, counters and work queue, the kept model errors and
// rejects with their exact totals, and the kept figures that /status and
// the API read.
//
// The stores do the reading and writing (sqlstore.Snapshot, pgstore's
// importer); this package holds what they agree on (the daemon's tables
// and their columns, the interfaces) and the one procedure that drives
// them, with progress and a summary. It knows no SQL driver.
package storemove

import (
	"context"
	"fmt"
	"io"
	"time"

	"statscache/engine"
)

// Table is one table to copy: its name, the columns both stores give it,
// in the order Rows returns their values, and, for a model's table, the
// model's declaration (the destination creates the table from it).
type Table struct {
	Name    string
	Columns []string
	// Model is set for a model's table; its first column is "id", the
	// number of the row in insertion order, then the declared columns.
	Model *engine.ModelSpec
	// Rows is how many rows the source holds, for progress (the copy
	// counts what it actually moves).
	Rows int64
}

// Journal is the name of the journal table: it is copied last, being by
// far the largest, and counted as messages in the summary.
const Journal = "journal"

// DaemonTables are the daemon's own tables that a move copies, with the
// columns both stores have (the SQLite store's after its migrations, the
// PostgreSQL store's 0001). What one store has and the other has not is
// not copied: SQLite's journal_keys, journal_keys_recent and journal_collisions (its dedupe
// through a hash of the key; PostgreSQL has a unique index on the key
// itself), migrations (each store records its own dialect's), and
// PostgreSQL's models.commits (a count of commits in that database,
// starting at 0). Journal records are copied as stored, compressed in
// the format both stores share (engine/sqlkit's codec) with the
// dictionaries of journal_dicts. The journal comes last.
var DaemonTables = []Table{
	{Name: "settings", Columns: []string{"key", "value", "updated_at"}},
	{Name: "fill_spans", Columns: []string{"start_us", "end_us"}},
	{Name: "models", Columns: []string{"ident", "spec", "table_name", "fingerprint", "cursor_time_us", "cursor_key", "cursor_id",
		"processed", "errors", "status", "status_reason", "updated_at", "start_us", "queue_seq", "queued"}},
	{Name: "model_state", Columns: []string{"ident", "key", "value"}},
	{Name: "model_queue", Columns: []string{"ident", "seq", "item"}},
	{Name: "model_errors", Columns: []string{"id", "ident", "msg_id", "time_us", "error", "traceback", "at"}},
	{Name: "rejects", Columns: []string{"id", "source", "reason", "record", "at", "origin"}},
	{Name: "reject_seen", Columns: []string{"key"}},
	{Name: "reject_totals", Columns: []string{"origin", "total"}},
	{Name: "journal_stats", Columns: []string{"id", "messages", "late", "rejects", "oldest_us", "oldest_key", "newest_us", "newest_key"}},
	{Name: "table_rows", Columns: []string{"name", "n"}},
	{Name: "journal_dicts", Columns: []string{"id", "dict"}},
	{Name: Journal, Columns: []string{"time_us", "key", "id", "topic", "raw", "late"}},
}

// Rows iterates over the rows of one table. Its first three methods are
// those of pgx.CopyFromSource, so a destination can stream it into COPY.
type Rows interface {
	Next() bool
	// Values returns the current row's values, in Table.Columns order:
	// int64, float64, string, []byte or nil; a model table's values
	// already in their declared column types (json as its text).
	Values() ([]any, error)
	Err() error
	Close() error
}

// Source is a consistent snapshot of a statscache database, read only.
type Source interface {
	// Tables lists the model tables, then DaemonTables, with their sizes.
	Tables(ctx context.Context) ([]Table, error)
	// Rows reads one table of the snapshot.
	Rows(ctx context.Context, t Table) (Rows, error)
	// Unchanged reports an error when the database was written since
	// the snapshot was taken: what was written would not be copied.
	Unchanged(ctx context.Context) error
	// String names the source in messages.
	String() string
}

// Destination receives a move in one transaction.
type Destination interface {
	// BeginMove starts the transaction. It refuses a destination that
	// holds data unless replace, which removes all of it in the same
	// transaction (so it is gone only if the copy commits).
	BeginMove(ctx context.Context, replace bool) (Tx, error)
	String() string
}

// Tx is a destination's move transaction.
type Tx interface {
	// Copy writes every row of t (creating a model's table first) and
	// returns how many it wrote.
	Copy(ctx context.Context, t Table, rows Rows) (int64, error)
	// Commit checks what was copied against the kept figures and commits.
	Commit(ctx context.Context) error
	Rollback(ctx context.Context) error
}

// Options tune Move.
type Options struct {
	// Replace lets the move write into a destination that holds data:
	// all of it is removed first, in the move's transaction.
	Replace bool
	// Progress receives a line as each table starts and every
	// ProgressEvery while a large one is copied; nil prints nothing.
	Progress      io.Writer
	ProgressEvery time.Duration
}

// Summary is what a move copied.
type Summary struct {
	Messages  int64 // journal rows
	Models    int   // model tables (models being rebuilt included)
	ModelRows int64 // rows of every model table
	Rows      int64 // rows of every table, the journal included
	Elapsed   time.Duration
}

// Move copies every table of src into dst in one transaction of dst. Either
// all of it is committed or none of it: a move that fails, is cancelled or
// is killed leaves the destination as it was, and running it again is
// safe. It fails without committing when src was written during the copy.
func Move(ctx context.Context, src Source, dst Destination, o Options) (sum Summary, err error) {
	uncommitted := true
	defer func() {
		if err != nil && uncommitted {
			err = fmt.Errorf("%w (nothing was committed to %s)", err, dst)
		}
	}()
	start := time.Now()
	if o.ProgressEvery <= 0 {
		o.ProgressEvery = 2 * time.Second
	}
	say := func(format string, args ...any) {
		if o.Progress != nil {
			fmt.Fprintf(o.Progress, format+"\n", args...)
		}
	}
	tables, err := src.Tables(ctx)
	if err != nil {
		return sum, err
	}
	tx, err := dst.BeginMove(ctx, o.Replace)
	if err != nil {
		return sum, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	for _, t := range tables {
		say("copying %s (%d rows)", t.Name, t.Rows)
		rows, err := src.Rows(ctx, t)
		if err != nil {
			return sum, err
		}
		began := time.Now()
		pr := &progress{Rows: rows, t: t, say: say, every: o.ProgressEvery, last: began}
		n, err := tx.Copy(ctx, t, pr)
		rows.Close()
		if err != nil {
			return sum, fmt.Errorf("copy %s: %w", t.Name, err)
		}
		if d := time.Since(began); d >= o.ProgressEvery {
			say("  %s: %d rows in %.1f s", t.Name, n, d.Seconds())
		}
		sum.Rows += n
		switch {
		case t.Model != nil:
			sum.Models++
			sum.ModelRows += n
		case t.Name == Journal:
			sum.Messages = n
		}
	}
	if err := src.Unchanged(ctx); err != nil {
		return sum, err
	}
	say("committing")
	if err := tx.Commit(ctx); err != nil {
		// A COMMIT whose answer was lost with the connection may have
		// gone through: running the move again tells (it refuses then).
		uncommitted = false
		return sum, fmt.Errorf("%w: if the connection was lost, the copy may be committed; migrate again to know (it refuses a destination that holds it)", err)
	}
	sum.Elapsed = time.Since(start)
	return sum, nil
}

// progress counts the rows that pass and reports now and then.
type progress struct {
	Rows
	t     Table
	n     int64
	say   func(string, ...any)
	every time.Duration
	last  time.Time
}

func (p *progress) Next() bool {
	if !p.Rows.Next() {
		return false
	}
	p.n++
	if p.n%4096 == 0 && time.Since(p.last) >= p.every {
		p.last = time.Now()
		if p.t.Rows > 0 {
			p.say("  %s: %d of %d rows (%d%%)", p.t.Name, p.n, p.t.Rows, p.n*100/p.t.Rows)
		} else {
			p.say("  %s: %d rows", p.t.Name, p.n)
		}
	}
	return true
}
