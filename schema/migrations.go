package schema

import (
	"embed"
	"io/fs"
	"sort"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// The PostgreSQL store's migrations live in a folder of their own: the two
// dialects differ (types, identity columns, triggers), and each database
// records the names of its own dialect's migrations.
//
//go:embed migrations/postgres/*.sql
var postgresFiles embed.FS

// Migration is one embedded SQL file of the daemon's own tables. Migrations
// run once each, in name order, and are recorded by name.
type Migration struct {
	Name string
	SQL  string
}

// Migrations returns the daemon's SQLite migrations in the order they
// must run.
func Migrations() []Migration { return load(migrationFiles, "migrations") }

// PostgresMigrations returns the PostgreSQL store's migrations in the order
// they must run. Names are recorded without the folder, as SQLite's are.
func PostgresMigrations() []Migration { return load(postgresFiles, "migrations/postgres") }

func load(files embed.FS, dir string) []Migration {
	entries, err := fs.Glob(files, dir+"/*.sql")
	if err != nil {
		panic(err) // the pattern is a constant
	}
	sort.Strings(entries)
	out := make([]Migration, 0, len(entries))
	for _, e := range entries {
		b, err := files.ReadFile(e)
		if err != nil {
			panic(err) // embedded at build time
		}
		out = append(out, Migration{Name: e[len(dir)+1:], SQL: string(b)})
	}
	return out
}
