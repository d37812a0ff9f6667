package engine

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	"statscache/schema"
)

// ModelSpec is what a model declares about itself. The engine stores it with
// the model's cursor, so the web API can describe a model without loading its
// script.
type ModelSpec struct {
	Ident       string        `json:"ident"`
	Name        string        `json:"name"`
	Summary     string        `json:"summary"`
	Description string        `json:"description"`
	Interval    time.Duration `json:"interval_ns,omitempty"`
	// Backlog bounds how far back a new model's history starts (0: all of it).
	Backlog time.Duration `json:"backlog_ns,omitempty"`
	// Topics are topic prefixes; a model sees only messages whose topic
	// starts with one of them. Empty means every message.
	Topics []string `json:"topics,omitempty"`
	// Script is the file the model came from, and Line where it declares
	// the model (0 when unknown), for error reports.
	Script string `json:"script"`
	Line   int    `json:"line,omitempty"`
	// Version identifies the model's code (a hash of its script): a reload
	// leaves a model whose version and table are unchanged untouched.
	Version string          `json:"version,omitempty"`
	Table   schema.Table    `json:"table"`
	Layout  json.RawMessage `json:"layout,omitempty"`
}

// Wants reports whether the model's topic filter lets the topic through.
func (s *ModelSpec) Wants(topic string) bool {
	if len(s.Topics) == 0 {
		return true
	}
	for _, p := range s.Topics {
		if strings.HasPrefix(topic, p) {
			return true
		}
	}
	return false
}

// Model is a running statistic. The engine calls it from one goroutine only:
// Open once, then Process for each message in journal order, then Flush to
// write what it aggregated, then Close. A Model never sees a message twice
// and never out of order.
type Model interface {
	Spec() *ModelSpec
	// Open binds the model to its durable state. It is called before the
	// first Process and again after a failed batch, when the model must drop
	// anything it held in memory and start over from its last commit.
	Open(st State) error
	// Process handles one message. An error concerns that message only: it
	// is recorded with the message id and the model goes on.
	Process(ctx context.Context, m *Message) error
	// Flush writes the rows aggregated since the last Flush through w. It
	// runs inside the transaction that also stores the model's state and
	// cursor; an error aborts that transaction.
	Flush(ctx context.Context, w RowWriter) error
	Close() error
}

// Row is one row of a model table: column name to value. Values are int64,
// float64, string, nil or, for json columns, any JSON-encodable value.
type Row map[string]any

// RowWriter is what a model's Flush writes through. Every method acts on the
// model's own table, inside the commit transaction, and sees its own writes.
// A writer copies what it keeps of a row: the caller may reuse the map
// for its next write (the Lua db:add_counts does, one map for every row).
type RowWriter interface {
	// Insert adds a row; it fails if a row with the same key exists.
	Insert(r Row) error
	// Upsert inserts the row or replaces the non-key columns of the existing
	// row with the same key.
	Upsert(r Row) error
	// Add inserts the row or, when a row with the same key exists, adds its
	// numeric non-key columns to the stored ones (other columns are replaced).
	Add(r Row) error
	// Get returns the row whose key columns equal those in key, or nil.
	Get(key Row) (Row, error)
}

// State is a model's durable key-value store for running values. Reads see
// the model's own uncommitted writes; writes commit with the model's rows and
// cursor, so a crash rolls both back together. Values are JSON text.
type State interface {
	Get(key string) (value string, ok bool, err error)
	Set(key, value string)
	Delete(key string)
}
