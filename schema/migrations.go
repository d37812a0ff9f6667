package schema

import (
	"embed"
	"io/fs"
	"sort"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migration is one embedded SQL file of the daemon's own tables. Migrations
// run once each, in name order, and are recorded by name.
type Migration struct {
	Name string
	SQL  string
}

// Migrations returns the daemon's migrations in the order they must run.
func Migrations() []Migration {
	entries, err := fs.Glob(migrationFiles, "migrations/*.sql")
	if err != nil {
		panic(err) // the pattern is a constant
	}
	sort.Strings(entries)
	out := make([]Migration, 0, len(entries))
	for _, e := range entries {
		b, err := migrationFiles.ReadFile(e)
		if err != nil {
			panic(err) // embedded at build time
		}
		out = append(out, Migration{Name: e[len("migrations/"):], SQL: string(b)})
	}
	return out
}
