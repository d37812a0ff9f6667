package sqlstore

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"statscache/engine"
)

// A new model table is stored in key order: one B-tree for the rows (no
// unique index beside a rowid), rows numbered in "id" in the order they
// were first inserted, an update keeping its row's number. A table created
// in the old form (rowid and unique key index) keeps working as it was.
func TestModelTableForms(t *testing.T) {
	ctx := context.Background()
	add := func(ts float64, cat string, n int64) engine.RowOp {
		return engine.RowOp{Kind: engine.OpAdd, Row: engine.Row{"timestamp": ts, "category": cat, "volume": n}}
	}
	for _, old := range []bool{false, true} {
		t.Run(fmt.Sprintf("old=%v", old), func(t *testing.T) {
			db := openTest(t, 0)
			sp := testSpec("volume-1h")
			if old {
				for _, q := range []string{
					`CREATE TABLE model_volume_1h ("id" INTEGER PRIMARY KEY, "timestamp" REAL NOT NULL, "category" TEXT NOT NULL, "volume" INTEGER)`,
					`CREATE UNIQUE INDEX model_volume_1h_key ON model_volume_1h ("timestamp", "category")`,
					`CREATE INDEX model_volume_1h_timestamp ON model_volume_1h ("timestamp")`,
				} {
					if _, err := db.w.Exec(q); err != nil {
						t.Fatal(err)
					}
				}
			}
			if _, err := db.Register(ctx, sp); err != nil {
				t.Fatal(err)
			}
			commitBatch(t, db, "volume-1h", []engine.RowOp{add(3600, "b", 1), add(3600, "a", 2)}, engine.Checkpoint{Cursor: engine.Position{TimeUS: 1, Key: "a"}})
			commitBatch(t, db, "volume-1h", []engine.RowOp{add(7200, "a", 5), add(3600, "b", 10)}, engine.Checkpoint{Cursor: engine.Position{TimeUS: 2, Key: "a"}})
			got := dumpQuery(t, db, `SELECT "id", "timestamp", category, volume FROM model_volume_1h ORDER BY "id"`)
			// In a new table the update of (3600, b) is given number 4,
			// which it does not keep.
			want := "1|3600|b|11\n2|3600|a|2\n3|7200|a|5"
			if got != want {
				t.Errorf("rows:\n%s\nwant:\n%s", got, want)
			}
			schemaSQL := dumpQuery(t, db, `SELECT group_concat(sql, ';') FROM sqlite_schema WHERE tbl_name = 'model_volume_1h'`)
			if clustered := strings.Contains(schemaSQL, "WITHOUT ROWID"); clustered == old {
				t.Errorf("schema: %s", schemaSQL)
			}
			if !old && strings.Contains(schemaSQL, "UNIQUE") {
				t.Errorf("a new table has a unique index: %s", schemaSQL)
			}
			if k, r := kept(t, db), recount(t, db); k != r {
				t.Errorf("kept figures\n%s\nfull recount\n%s", k, r)
			}
			row, err := db.GetRow(ctx, "volume-1h", engine.Row{"timestamp": 3600.0, "category": "b"})
			if err != nil || fmt.Sprint(row["volume"]) != "11" {
				t.Errorf("GetRow: %v, %v", row, err)
			}
		})
	}
}

// TestDeclaredIndexes: Register leaves out the indexes of the columns
// declared with index = true, BuildIndexes makes them (once: a second call
// or a second process finds them made), and registering the model again
// keeps them. A model without such columns gets none.
func TestDeclaredIndexes(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "stats.db")
	db, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	sp := testSpec("volume-1h")
	sp.Table.Columns[1].Index = true // category
	plain := testSpec("plain-1h")
	indexes := func(db *DB, table string) string {
		return dumpQuery(t, db, `SELECT group_concat(name, ',') FROM (SELECT name FROM sqlite_schema WHERE type = 'index' AND tbl_name = '`+table+`' AND sql IS NOT NULL ORDER BY name)`)
	}
	for _, s := range []*engine.ModelSpec{sp, plain} {
		if _, err := db.Register(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	if got := indexes(db, "model_volume_1h"); got != "model_volume_1h_id" {
		t.Errorf("indexes after Register: %q, want only the row numbers'", got)
	}
	commitBatch(t, db, "volume-1h", []engine.RowOp{{Kind: engine.OpAdd, Row: engine.Row{"timestamp": 3600.0, "category": "a", "volume": int64(1)}}},
		engine.Checkpoint{Cursor: engine.Position{TimeUS: 1, Key: "a"}})
	for i := 0; i < 2; i++ {
		for _, id := range []string{"volume-1h", "plain-1h"} {
			if err := db.BuildIndexes(ctx, id); err != nil {
				t.Fatal(err)
			}
		}
	}
	want := "model_volume_1h_category,model_volume_1h_id"
	if got := indexes(db, "model_volume_1h"); got != want {
		t.Errorf("indexes after BuildIndexes: %q, want %q", got, want)
	}
	if got := indexes(db, "model_plain_1h"); got != "model_plain_1h_id" {
		t.Errorf("a model without declared indexes got %q", got)
	}
	if err := db.BuildIndexes(ctx, "nope"); err == nil {
		t.Error("BuildIndexes of an unknown model: no error")
	}
	// The writer builds with a small page cache and its sort on disk, and
	// gets its own settings back, also when the build fails.
	wantSettings := writerCache + " 2" // temp_store 2: MEMORY
	settings := func() string {
		return dumpQuery(t, db, `PRAGMA cache_size`) + " " + dumpQuery(t, db, `PRAGMA temp_store`)
	}
	if got := settings(); got != wantSettings {
		t.Errorf("writer's cache_size and temp_store after a build: %s, want %s", got, wantSettings)
	}
	failing := testSpec("failing-1h")
	failing.Table.Columns[1].Index = true
	if _, err := db.Register(ctx, failing); err != nil {
		t.Fatal(err)
	}
	if _, err := db.w.Exec(`DROP TABLE model_failing_1h`); err != nil {
		t.Fatal(err)
	}
	if err := db.BuildIndexes(ctx, "failing-1h"); err == nil {
		t.Error("BuildIndexes over a dropped table: no error")
	}
	if got := settings(); got != wantSettings {
		t.Errorf("writer's cache_size and temp_store after a failed build: %s, want %s", got, wantSettings)
	}
	db.Close()
	db, err = Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Register(ctx, sp); err != nil {
		t.Fatal(err)
	}
	if err := db.BuildIndexes(ctx, "volume-1h"); err != nil {
		t.Fatal(err)
	}
	if got := indexes(db, "model_volume_1h"); got != want {
		t.Errorf("indexes after a restart: %q, want %q", got, want)
	}
}
