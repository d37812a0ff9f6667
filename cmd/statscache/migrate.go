package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"statscache/engine/pgstore"
	"statscache/engine/sqlstore"
	"statscache/engine/storemove"
)

// cmdMigrate copies a SQLite database to PostgreSQL (engine/storemove):
// flags and wiring only.
func cmdMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fset := flag.NewFlagSet("migrate", flag.ContinueOnError)
	fset.SetOutput(stderr)
	from := fset.String("from", defaultDB, "the SQLite database `path` to copy (read only; stop the daemon that writes it first)")
	to := fset.String("to", "", "the PostgreSQL `URL` to copy into (postgres://user@host:port/dbname); it must hold no data")
	replace := fset.Bool("replace", false, "remove everything the destination holds first, in the copy's transaction")
	if err := fset.Parse(args); err != nil {
		return 2
	}
	if fset.NArg() > 0 || *to == "" || !pgstore.IsURL(*to) {
		fmt.Fprintln(stderr, "statscache migrate: want --from FILE --to postgres://... (and no other arguments)")
		return 2
	}
	if err := migrate(ctx, *from, *to, *replace, stdout); err != nil {
		fmt.Fprintln(stderr, "statscache migrate:", err)
		return 1
	}
	return 0
}

func migrate(ctx context.Context, from, to string, replace bool, stdout io.Writer) error {
	// The source is checked before the destination is touched.
	src, err := sqlstore.OpenSnapshot(ctx, from)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := pgstore.Open(ctx, to, pgstore.Options{})
	if err != nil {
		return err
	}
	defer dst.Close()
	fmt.Fprintf(stdout, "migrating %s to %s\n", from, dbName(to))
	sum, err := storemove.Move(ctx, src, dst, storemove.Options{Replace: replace, Progress: stdout})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "migrated %s to %s in %.1f s: %d messages, %d models, %d rows in their tables, %d rows in all\n",
		from, dbName(to), sum.Elapsed.Seconds(), sum.Messages, sum.Models, sum.ModelRows, sum.Rows)
	return nil
}
