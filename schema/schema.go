// Package schema describes the tables that models declare and turns them
// into SQL. It is the leaf of the dependency graph: the engine, the Lua
// loader, the SQL store and the web API all speak these types, and this
// package imports none of them.
package schema

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// Type is the SQL-independent type of a column. The set is kept small on
// purpose: every type must round-trip through SQLite, PostgreSQL, JSON and
// CSV without surprises.
type Type string

// The column types a model may declare.
const (
	Integer Type = "integer" // 64-bit signed integer; "add" sums it.
	Real    Type = "real"    // 64-bit float; "add" sums it.
	Text    Type = "text"    // UTF-8 string.
	JSON    Type = "json"    // any JSON value, stored as text and served as JSON.
)

// Numeric reports whether values of t can be summed by an "add" write.
func (t Type) Numeric() bool { return t == Integer || t == Real }

func (t Type) valid() bool {
	switch t {
	case Integer, Real, Text, JSON:
		return true
	}
	return false
}

// TimestampColumn is the column every model table has: the row's time in
// Unix seconds. For bucketed models it is the END of the bucket.
const TimestampColumn = "timestamp"

// Column is one declared column of a model table.
type Column struct {
	Name    string `json:"name"`
	Type    Type   `json:"type"`
	NotNull bool   `json:"not_null"`
	Index   bool   `json:"index"`
	// Doc is an optional one-line description shown in the portal.
	Doc string `json:"doc,omitempty"`
	// Aggregate says how values of the column combine over rows and
	// buckets (one of the Agg constants); empty means the default, see
	// EffectiveAggregate. It does not change the table, so it is not part
	// of the fingerprint.
	Aggregate string `json:"aggregate,omitempty"`
}

// How a column's values combine when a reader (the portal's charts and
// cards) adds up rows or buckets. The store never combines values itself:
// this is what the model says its numbers mean.
const (
	// AggSum: counts per bucket; a range's value is the sum, a missing
	// bucket counts 0.
	AggSum = "sum"
	// AggLast: running totals and gauges; a range's value is its newest.
	AggLast = "last"
	// AggMax: peaks; a range's value is the largest.
	AggMax = "max"
	// AggNone: values that must not be combined (identifiers, text).
	AggNone = "none"
)

// CheckAggregate validates a declared aggregate for a column of type t:
// sum and max need numbers.
func CheckAggregate(agg string, t Type) error {
	switch agg {
	case "", AggLast, AggNone:
		return nil
	case AggSum, AggMax:
		if !t.Numeric() {
			return fmt.Errorf("aggregate %q needs an integer or real column, not %s", agg, t)
		}
		return nil
	}
	return fmt.Errorf("unknown aggregate %q (want sum, last, max or none)", agg)
}

// EffectiveAggregate is how the column combines: its declaration, or by
// default "sum" for the integer and real columns of a bucketed model
// (counts per bucket) and "none" for everything else, key columns
// included (a key identifies a row, it is not a measure).
func (t *Table) EffectiveAggregate(c Column, bucketed bool) string {
	if c.Aggregate != "" {
		return c.Aggregate
	}
	if bucketed && c.Type.Numeric() && !t.IsKey(c.Name) {
		return AggSum
	}
	return AggNone
}

// Table is a model's table: its columns (the timestamp column first) and the
// columns that form the row key, on which "upsert" and "add" writes merge.
type Table struct {
	Name    string   `json:"name"`
	Columns []Column `json:"columns"`
	Key     []string `json:"key"`
}

var (
	identRe  = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)
	tableRe  = regexp.MustCompile(`[^a-z0-9]+`)
	reserved = map[string]bool{"id": true}
)

// TableName derives the SQL table name of a model from its ident: every run
// of characters other than [a-z0-9] becomes one underscore, and "model_" is
// prepended so that model tables never collide with the daemon's own.
func TableName(ident string) string {
	s := tableRe.ReplaceAllString(strings.ToLower(ident), "_")
	return "model_" + strings.Trim(s, "_")
}

// Column returns the column named name.
func (t *Table) Column(name string) (Column, bool) {
	for _, c := range t.Columns {
		if c.Name == name {
			return c, true
		}
	}
	return Column{}, false
}

// IsKey reports whether the column named name is part of the row key.
func (t *Table) IsKey(name string) bool {
	for _, k := range t.Key {
		if k == name {
			return true
		}
	}
	return false
}

// Validate checks the declaration: names are plain SQL identifiers and
// unique, types are known, the timestamp column exists and is first, and the
// row key names existing columns, which are then forced NOT NULL (SQL treats
// NULLs as distinct in unique keys, which would defeat merging).
func (t *Table) Validate() error {
	if !identRe.MatchString(t.Name) {
		return fmt.Errorf("table name %q: must match %s", t.Name, identRe)
	}
	if len(t.Columns) == 0 || t.Columns[0].Name != TimestampColumn {
		return fmt.Errorf("table %s: the first column must be %q", t.Name, TimestampColumn)
	}
	seen := map[string]bool{}
	for i := range t.Columns {
		c := &t.Columns[i]
		if !identRe.MatchString(c.Name) {
			return fmt.Errorf("column %q: name must be lower case letters, digits and _ (starting with a letter or _)", c.Name)
		}
		if reserved[c.Name] {
			return fmt.Errorf("column %q: the name is reserved", c.Name)
		}
		if seen[c.Name] {
			return fmt.Errorf("column %q: declared twice", c.Name)
		}
		seen[c.Name] = true
		if !c.Type.valid() {
			return fmt.Errorf("column %q: unknown type %q (want integer, real, text or json)", c.Name, c.Type)
		}
	}
	if len(t.Key) == 0 {
		return fmt.Errorf("table %s: the row key is empty", t.Name)
	}
	keySeen := map[string]bool{}
	for _, k := range t.Key {
		if !seen[k] {
			return fmt.Errorf("row key column %q: no such column", k)
		}
		if keySeen[k] {
			return fmt.Errorf("row key column %q: listed twice", k)
		}
		keySeen[k] = true
	}
	for i := range t.Columns {
		// Written only when it changes: a store validates a model's
		// table again at every lease grant, while the runners of an
		// earlier grant may still read the same columns (a data race,
		// though the value is the same).
		if keySeen[t.Columns[i].Name] && !t.Columns[i].NotNull {
			t.Columns[i].NotNull = true
		}
	}
	return nil
}

// Fingerprint is a stable hash of the table's shape (columns, types,
// constraints and key). Two declarations with the same fingerprint can share
// a table; a changed fingerprint means the table must be rebuilt.
func (t *Table) Fingerprint() string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n", t.Name)
	for _, c := range t.Columns {
		fmt.Fprintf(h, "%s %s %v %v\n", c.Name, c.Type, c.NotNull, c.Index)
	}
	fmt.Fprintf(h, "key %s\n", strings.Join(t.Key, ","))
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// Quote quotes an SQL identifier. Column names such as "references" are
// reserved words in SQL, so every generated statement quotes every name.
func Quote(name string) string {
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
}

// SQLiteType maps a column type to its SQLite storage type.
func SQLiteType(t Type) string {
	switch t {
	case Integer:
		return "INTEGER"
	case Real:
		return "REAL"
	default:
		return "TEXT"
	}
}

// DDL returns the statements that create the table and the indexes its
// readers need in SQLite, each idempotent. The table is stored in the order
// of its row key (WITHOUT ROWID, the key as primary key), so an upsert
// finds and changes its row in one B-tree, where a rowid table with a
// unique index on the key kept the key twice and walked two. The "id"
// column numbers rows in the order they were first inserted, as a rowid did
// (the store assigns it; readers page by it), with an index of its own,
// which new rows extend at its end. The timestamp gets an index unless the
// key starts with it. The indexes of the columns declared with index = true
// are not among them: see DeclaredIndexDDL.
func (t *Table) DDL() []string {
	var cols []string
	cols = append(cols, `"id" INTEGER`)
	for _, c := range t.Columns {
		s := Quote(c.Name) + " " + SQLiteType(c.Type)
		if c.NotNull {
			s += " NOT NULL"
		}
		cols = append(cols, s)
	}
	keys := make([]string, len(t.Key))
	for i, k := range t.Key {
		keys[i] = Quote(k)
	}
	cols = append(cols, "PRIMARY KEY ("+strings.Join(keys, ", ")+")")
	q := Quote(t.Name)
	stmts := []string{
		fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s (\n  %s\n) WITHOUT ROWID", q, strings.Join(cols, ",\n  ")),
		fmt.Sprintf("CREATE INDEX IF NOT EXISTS %s ON %s (%s)", Quote(t.Name+"_id"), q, Quote("id")),
	}
	if t.Key[0] != TimestampColumn {
		stmts = append(stmts, t.indexDDL(TimestampColumn))
	}
	return stmts
}

// DeclaredIndexes lists the columns a model declares with index = true (the
// timestamp aside: DDL indexes it when needed).
func (t *Table) DeclaredIndexes() []string {
	var out []string
	for _, c := range t.Columns {
		if c.Index && c.Name != TimestampColumn {
			out = append(out, c.Name)
		}
	}
	return out
}

// DeclaredIndexDDL returns the statements that create, in SQLite, the
// indexes of the columns declared with index = true, each idempotent. They
// serve an analyst's own queries (the API pages by the row key and the
// timestamp only), and each costs every new row a write at a random place
// in its B-tree: while a model computes its history, its store builds them
// once the model has caught up (engine.IndexBuilder), from the finished
// rows, which is several times cheaper.
func (t *Table) DeclaredIndexDDL() []string {
	var stmts []string
	for _, c := range t.DeclaredIndexes() {
		stmts = append(stmts, t.indexDDL(c))
	}
	return stmts
}

func (t *Table) indexDDL(col string) string {
	return fmt.Sprintf("CREATE INDEX IF NOT EXISTS %s ON %s (%s)", Quote(t.Name+"_"+col), Quote(t.Name), Quote(col))
}

// SortedNonTimestamp returns the names of the columns other than the
// timestamp, sorted alphabetically: the CSV column order of the original.
func (t *Table) SortedNonTimestamp() []string {
	var names []string
	for _, c := range t.Columns {
		if c.Name != TimestampColumn {
			names = append(names, c.Name)
		}
	}
	sort.Strings(names)
	return names
}
