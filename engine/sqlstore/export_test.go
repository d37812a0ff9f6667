package sqlstore

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"statscache/engine"
	"statscache/engine/storemove"
	"statscache/schema"
)

// TestExportKnowsEveryMigration fails when a SQLite migration is added
// without the copy (export.go, storemove.DaemonTables) being looked at:
// the copy would silently leave out what the migration adds.
func TestExportKnowsEveryMigration(t *testing.T) {
	var names []string
	for _, m := range schema.Migrations() {
		names = append(names, m.Name)
	}
	if !slices.Equal(names, exportedMigrations) {
		t.Fatalf("SQLite migrations %v, export.go knows %v: check what the new ones add and copy it (storemove.DaemonTables)", names, exportedMigrations)
	}
}

// TestSnapshotSeesWrites: the snapshot reads the journal in order, its
// records as stored (compressed, which the shared codec reads back),
// keeps reading what it saw when it began whatever is written after, and
// Unchanged tells that something was.
func TestSnapshotSeesWrites(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, 0)
	var want []string
	for i := 0; i < 200; i++ { // enough for a compression dictionary
		raw := fmt.Sprintf(`{"topic": "org.fedoraproject.prod.t", "n": %d, "pad": %q}`, i, strings.Repeat("x", 200))
		if _, err := db.Append(ctx, []*engine.Message{jmsg(int64(1000-i), fmt.Sprintf("k%03d", i), raw)}); err != nil {
			t.Fatal(err)
		}
		want = append(want, fmt.Sprintf("%d %s", 1000-i, raw))
	}
	slices.Reverse(want)
	s, err := OpenSnapshot(ctx, db.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Unchanged(ctx); err != nil {
		t.Fatalf("Unchanged before any write: %v", err)
	}
	if _, err := db.Append(ctx, []*engine.Message{jmsg(5, "late", "{}")}); err != nil {
		t.Fatal(err)
	}
	if err := s.Unchanged(ctx); err == nil || !strings.Contains(err.Error(), "written during the copy") {
		t.Fatalf("Unchanged after a write: %v", err)
	}
	tables, _ := s.Tables(ctx)
	i := slices.IndexFunc(tables, func(t storemove.Table) bool { return t.Name == storemove.Journal })
	rows, err := s.Rows(ctx, tables[i])
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		v, _ := rows.Values()
		raw, err := db.unpackRaw(ctx, v[4].([]byte))
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%d %s", v[0], raw))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("snapshot journal: %d rows, want %d (the one appended after it began left out)\nfirst %q", len(got), len(want), got[:min(2, len(got))])
	}
	var packed int
	if err := db.r.QueryRowContext(ctx, `SELECT count(*) FROM journal WHERE substr(raw, 1, 1) = x'00'`).Scan(&packed); err != nil || packed == 0 {
		t.Fatalf("%d records stored compressed (%v): the test did not read any", packed, err)
	}
}
