// Package storetest holds the conformance tests every store passes: the
// same cases run against engine/sqlstore (SQLite) and engine/pgstore
// (PostgreSQL), and where a case reads back (journal order, pages of a
// table), both stores must answer alike. It has no code of its own.
package storetest
