package main

import (
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/jackc/pgx/v5/stdlib" // the "pgx" driver, to read PostgreSQL databases in tests
	_ "github.com/mattn/go-sqlite3"

	"statscache/engine/pgstore"
	"statscache/engine/pgstore/pgtest"
)

// storeKind is a kind of database the end-to-end tests run on: the
// commands get its --db, the checks read it with openRO.
type storeKind struct {
	name string
	// newDB returns a --db for a fresh, empty database: a file in a
	// temporary directory, or a PostgreSQL database created for the test
	// and dropped after it.
	newDB func(t testing.TB, name string) string
}

var storeKinds = []storeKind{
	{"sqlite", func(t testing.TB, name string) string { return filepath.Join(t.TempDir(), name+".db") }},
	{"postgres", func(t testing.TB, _ string) string { return pgtest.URL(t) }},
}

// eachStore runs fn as a subtest on every kind of database.
func eachStore(t *testing.T, fn func(t *testing.T, k storeKind)) {
	for _, k := range storeKinds {
		t.Run(k.name, func(t *testing.T) { fn(t, k) })
	}
}

// openDB opens a --db value for reading with database/sql.
func openDB(t testing.TB, db string) *sql.DB {
	t.Helper()
	var (
		d   *sql.DB
		err error
	)
	if pgstore.IsURL(db) {
		d, err = sql.Open("pgx", db)
	} else {
		d, err = sql.Open("sqlite3", "file:"+db+"?mode=ro")
	}
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// isPostgres reports whether db was opened on a PostgreSQL database.
func isPostgres(db *sql.DB) bool {
	_, ok := db.Driver().(*stdlib.Driver)
	return ok
}
