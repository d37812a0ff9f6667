package engine

import (
	"time"

	"statscache/schema"
)

// This file holds the plain types of the read side: what a store returns to
// the web API about models and their rows. They live in the engine package,
// next to ModelSpec and ModelStatus, so that the store (which produces them)
// and the web API (which consumes them) share one vocabulary without
// depending on each other.

// ModelInfo is everything the API tells about one model: its declaration,
// its durable status, how far it trails the journal and its latest error.
type ModelInfo struct {
	Spec   ModelSpec
	Status ModelStatus
	// LagSeconds is how far the model's cursor trails the newest journaled
	// message, in seconds: 0 when the journal is empty or the model is
	// caught up. A model that has processed nothing yet is measured from the
	// oldest journaled message, so its lag is the journal's whole span.
	LagSeconds float64
	// LastError is the most recent error recorded for the model, or nil.
	LastError *ModelError
	// LastErrorAt is when LastError was recorded (zero when LastError is nil).
	LastErrorAt time.Time
	// Queued is how many committed work items await their outcome.
	Queued int64
	// JournalMessages and JournalNewestUS describe the journal at the same
	// moment (its size, and the time of its newest message in Unix
	// microseconds, 0 when empty), so that a reader of any model can tell
	// how much the daemon holds without another endpoint.
	JournalMessages int64
	JournalNewestUS int64
}

// RowQuery selects and pages the rows of a model table. Rows are ordered by
// timestamp, then the other row key columns (RowPage.Order), so that ties
// on the timestamp page in a stable order: the row key is unique, so these
// values name one row.
type RowQuery struct {
	// Start and Stop bound the timestamp (Unix seconds), both inclusive;
	// nil leaves that side open. There is deliberately no default Stop: the
	// original defaulted it to "now", which hid in-progress buckets (they
	// are labelled with their end, in the future).
	Start, Stop *float64
	// Desc sorts newest first.
	Desc bool
	// Limit caps the rows the query can see before any paging; 0 means no
	// cap. Paging happens within the first Limit rows.
	Limit int
	// Offset is the first row of the page within the (limited) result.
	Offset int
	// Count is the page size; 0 or less returns every row from Offset up to
	// the limit.
	Count int
	// End, when above 0, fixes the range at a moment: rows with a larger
	// row id (RowPage.End), those committed since a listing began, are
	// left out, so that the pages of a growing table neither shift nor
	// grow under a client. Row ids only grow: a row keeps its id when
	// its values change.
	End int64
	// After, when set, starts the page right after this row (its Order
	// values) in the query's order, instead of at Offset: a deep page is
	// then found through the key index rather than by skipping rows.
	// Offset still says how many rows came before, for Limit.
	After []any
}

// KeyError reports an After that does not fit the table's order
// columns (wrong length or types): the client's fault, not the store's.
type KeyError struct {
	Field  string // "After"
	Reason string
}

func (e *KeyError) Error() string { return e.Field + ": " + e.Reason }

// RowPage is one page of a model table.
type RowPage struct {
	// Columns are the column names in table order (timestamp first).
	Columns []string
	// Types are the declared types of Columns, index for index, so that a
	// consumer can tell a json column holding a string from a text column.
	Types []schema.Type
	// Rows hold the values of Columns, typed: int64 for integer, float64
	// for real, string for text, the decoded JSON value for json, nil for
	// NULL.
	Rows [][]any
	// Total is how many rows match Start, Stop and End, capped by
	// Limit: the number of rows all pages hold together.
	Total int
	// Order names the columns that order the rows and identify one:
	// the timestamp, then the other row key columns.
	Order []string
	// End is the query's End when given, else the table's highest row
	// id (0 when it is empty): the End that keeps the next pages of this
	// listing at this moment.
	End int64
	// Last is the Order values of the page's last row, nil for an empty
	// page: the After of the next page. Values are as stored: int64,
	// float64 or string (json columns as their text).
	Last []any
}

// JournalStats summarizes the journal: its kept figures, which every store
// keeps current in the transactions that change them, so reading them
// costs the same whatever the journal's size.
type JournalStats struct {
	Messages int64
	Late     int64
	Rejects  int64 // distinct rejected records ever, from every source
	Newest   Position
	Oldest   Position
}
