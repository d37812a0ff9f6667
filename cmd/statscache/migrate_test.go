package main

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	_ "github.com/mattn/go-sqlite3"

	"statscache/cmd/statscache/kojitest"
	"statscache/engine/pgstore/pgtest"
	"statscache/web"
)

// TestMigrate is the done-when of issue 14 for statscache migrate: a corpus
// replayed through every shipped model into SQLite, migrated to a fresh
// PostgreSQL database by the real command (killed with SIGKILL mid-copy
// first, then run again), serves the same API answers from both databases:
// the model list, every model's meta and layout, and pages of every model
// as JSON and CSV (first, later and last pages, the Link and X-Link-*
// headers). The journal's and the rejects' kept figures are equal. Then the
// second part of the corpus, replayed on PostgreSQL from the migrated
// cursors, gives the same answers as one full replay on SQLite: nothing
// recomputed (the processed counters in each model's meta are equal),
// nothing counted twice.
func TestMigrate(t *testing.T) {
	corpus := genCorpus(t, 6000, 23, true)
	koji := httptest.NewServer(kojitest.New(kojitest.Options{}))
	defer koji.Close()
	svc := "koji=" + koji.URL + "/kojihub"
	dir := t.TempDir()
	part1, part2 := splitFile(t, corpus, dir, 2, 3)
	src := filepath.Join(dir, "src.db")
	replayCmd(t, "--db", src, "--scripts", "../../scripts", "--service", svc, part1)
	if n := countRows(t, src, `SELECT count(*) FROM models`); n < 20 {
		t.Fatalf("%v models replayed: want every shipped model", n)
	}
	t.Logf("source: %v messages, %v rejects, %v work items queued, %v state keys",
		countRows(t, src, `SELECT messages FROM journal_stats`), countRows(t, src, `SELECT rejects FROM journal_stats`),
		countRows(t, src, `SELECT sum(queued) FROM models`), countRows(t, src, `SELECT count(*) FROM model_state`))
	if countRows(t, src, `SELECT rejects FROM journal_stats`) == 0 {
		t.Fatal("the corpus has no rejects: the test would not see them copied")
	}

	pg := pgtest.URL(t)
	// Killed with SIGKILL in the middle of the copy, at the first model
	// table, then in the journal: PostgreSQL holds nothing of it.
	for _, at := range []string{"copying model_", "copying journal "} {
		out := killMigrateAt(t, at, "--from", src, "--to", pg)
		if got := pgDigest(t, pg); got != "journal=0 models=0 model tables=0 settings=0" {
			t.Fatalf("after a kill at %q the destination holds %s\n%s", at, got, out)
		}
	}
	out := migrateCmd(t, 0, "--from", src, "--to", pg)
	if !regexp.MustCompile(`migrated .* in [\d.]+ s: \d+ messages, \d+ models, \d+ rows in their tables`).MatchString(out) {
		t.Errorf("no summary:\n%s", out)
	}
	t.Log(lastLine(out))
	sameAPI(t, "after the migration", src, pg, exact)

	// Migrating again into the same database is refused, and changes
	// nothing; --replace copies anew.
	before := pgDigest(t, pg)
	out = migrateCmd(t, 1, "--from", src, "--to", pg)
	if !strings.Contains(out, "already holds data") || !strings.Contains(out, "--replace") {
		t.Errorf("a second migration: want a refusal naming --replace, got\n%s", out)
	}
	if got := pgDigest(t, pg); got != before {
		t.Errorf("a refused migration changed the destination: %s, was %s", got, before)
	}
	// What follows runs on the copy --replace made.
	migrateCmd(t, 0, "--from", src, "--to", pg, "--replace")
	if got := pgDigest(t, pg); got != before {
		t.Errorf("after --replace the destination holds %s, after the first migration %s", got, before)
	}

	// The rest of the corpus: the PostgreSQL database goes on from the
	// migrated cursors and ends as one full replay on SQLite.
	out = replayCmd(t, "--db", pg, "--scripts", "../../scripts", "--service", svc, "--final", part2)
	ref := filepath.Join(dir, "ref.db")
	replayCmd(t, "--db", ref, "--scripts", "../../scripts", "--service", svc, "--final", part1, part2)
	sameAPI(t, "PostgreSQL continued and one full replay on SQLite", ref, pg, sameRows)
	// Nothing recomputed: what each model processed on PostgreSQL (the
	// replay's summary) is what the full replay processed beyond the
	// migrated counter. A model rebuilt from the journal would end with
	// the same rows, but would have processed all of it again.
	was, full := processed(t, src), processed(t, ref)
	run := map[string]int64{}
	for _, m := range regexp.MustCompile(`(?m)^(\S+)\s+(\d+)\s+\d+\s+\d+\s+\S+$`).FindAllStringSubmatch(out, -1) {
		var n int64
		fmt.Sscan(m[2], &n)
		run[m[1]] = n
	}
	if len(run) != len(full) {
		t.Fatalf("the replay on PostgreSQL lists %d models, the full replay has %d:\n%s", len(run), len(full), out)
	}
	begun := 0
	for ident, n := range full {
		if was[ident]+run[ident] != n {
			t.Errorf("%s processed %d messages on SQLite, then %d on PostgreSQL; the full replay %d", ident, was[ident], run[ident], n)
		}
		if was[ident] > 0 {
			begun++
		}
	}
	if begun < 20 {
		t.Errorf("only %d models had processed anything before the migration: the check says little", begun)
	}
}

// processed reads each model's processed counter of a SQLite database.
func processed(t *testing.T, path string) map[string]int64 {
	t.Helper()
	rows, err := openRO(t, path).Query(`SELECT ident, processed FROM models`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var ident string
		var n int64
		if err := rows.Scan(&ident, &n); err != nil {
			t.Fatal(err)
		}
		out[ident] = n
	}
	return out
}

// TestMigrateRefuses: a missing file, a file that is not SQLite, a SQLite
// file that is not statscache's, and a statscache database of an older or
// a newer schema are refused with an error naming what is wrong, and the
// destination is not touched (not even given the schema).
func TestMigrateRefuses(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.db")
	replayCmd(t, "--db", good, "--scripts", "../../scripts", "--final", "../../scripts/sample/messages.jsonl")
	notSQLite := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(notSQLite, []byte(strings.Repeat("not a database\n", 100)), 0o644); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(dir, "other.db")
	sqliteExec(t, other, `CREATE TABLE things (a INTEGER)`)
	older := filepath.Join(dir, "older.db")
	copyFile(t, good, older)
	sqliteExec(t, older, `DELETE FROM migrations WHERE name = '0010_journal_clustered.sql'`)
	newer := filepath.Join(dir, "newer.db")
	copyFile(t, good, newer)
	sqliteExec(t, newer, `INSERT INTO migrations (name, at) VALUES ('0099_future.sql', 0)`)

	pg := pgtest.URL(t)
	for _, tc := range []struct{ from, want string }{
		{filepath.Join(dir, "missing.db"), "missing.db: no such file"},
		{dir, "is a directory"},
		{notSQLite, "notes.txt is not a SQLite database"},
		{other, `other.db is not a statscache database: it has no "migrations" table`},
		{older, "older.db has an older schema (migrations 0010_journal_clustered.sql not applied): open it once with this version"},
		{newer, "newer.db was written by a newer statscache (migrations 0099_future.sql are unknown to this one)"},
	} {
		out := migrateCmd(t, 1, "--from", tc.from, "--to", pg)
		if !strings.Contains(out, tc.want) {
			t.Errorf("--from %s: want %q in\n%s", filepath.Base(tc.from), tc.want, out)
		}
		if schema := pgSchema(t, pg); schema != "" {
			t.Fatalf("--from %s touched the destination: it has tables %s", filepath.Base(tc.from), schema)
		}
	}
	if out := migrateCmd(t, 2, "--from", good, "--to", filepath.Join(dir, "x.db")); !strings.Contains(out, "postgres://") {
		t.Errorf("--to a file: want usage naming postgres://, got\n%s", out)
	}
	// A source written during the copy is refused at the end: stop the
	// daemon first. (Checked in engine/sqlstore: TestSnapshotSeesWrites.)
}

// migrateCmd runs "statscache migrate" as a real process and returns its
// output; its exit status must be want.
func migrateCmd(t *testing.T, want int, args ...string) string {
	t.Helper()
	cmd := command(append([]string{"migrate"}, args...)...)
	out, err := cmd.CombinedOutput()
	code := 0
	if err != nil {
		code = -1
		if ee, ok := err.(interface{ ExitCode() int }); ok {
			code = ee.ExitCode()
		}
	}
	if code != want {
		t.Fatalf("migrate %s: exit %d, want %d\n%s", strings.Join(args, " "), code, want, out)
	}
	return string(out)
}

// killMigrateAt starts "statscache migrate", kills it with SIGKILL as soon
// as it prints a line starting with at, and returns its output. The copy
// must not have finished by then.
func killMigrateAt(t *testing.T, at string, args ...string) string {
	t.Helper()
	cmd := command(append([]string{"migrate"}, args...)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	sc := bufio.NewScanner(stdout)
	killed := false
	for sc.Scan() {
		out.WriteString(sc.Text() + "\n")
		if !killed && strings.HasPrefix(sc.Text(), at) {
			cmd.Process.Kill()
			killed = true
		}
	}
	cmd.Wait()
	if !killed || strings.Contains(out.String(), "migrated ") {
		t.Fatalf("migrate was not killed at %q:\n%s", at, out.String())
	}
	return out.String()
}

// splitFile writes the first num/den of a file's lines to one file and the
// rest to another.
func splitFile(t *testing.T, path, dir string, num, den int) (string, string) {
	t.Helper()
	lines := readLines(t, path)
	cut := len(lines) * num / den
	a, b := filepath.Join(dir, "part1.jsonl"), filepath.Join(dir, "part2.jsonl")
	for _, f := range []struct {
		path  string
		lines []string
	}{{a, lines[:cut]}, {b, lines[cut:]}} {
		if err := os.WriteFile(f.path, []byte(strings.Join(f.lines, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return a, b
}

// sqliteExec runs one statement on a SQLite file.
func sqliteExec(t *testing.T, path, stmt string) {
	t.Helper()
	db, err := sql.Open("sqlite3", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(stmt); err != nil {
		t.Fatal(err)
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// pgSchema lists the tables of a PostgreSQL database's public schema.
func pgSchema(t *testing.T, db string) string {
	t.Helper()
	return pgQuery(t, db, `SELECT coalesce(string_agg(tablename, ' ' ORDER BY tablename), '') FROM pg_tables WHERE schemaname = 'public'`)
}

// pgDigest summarizes what a statscache PostgreSQL database holds.
func pgDigest(t *testing.T, db string) string {
	t.Helper()
	return pgQuery(t, db, `SELECT format('journal=%s models=%s model tables=%s settings=%s',
		(SELECT count(*) FROM journal), (SELECT count(*) FROM models),
		(SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename LIKE 'model\_%' AND tablename NOT IN ('model_state', 'model_errors', 'model_queue')),
		(SELECT count(*) FROM settings))`)
}

func pgQuery(t *testing.T, db, q string) string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var s string
	if err := conn.QueryRow(ctx, q).Scan(&s); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return s
}

// apiOf serves the API over a database, as statscache serve does.
func apiOf(t *testing.T, db string) (*httptest.Server, store) {
	t.Helper()
	st, err := openStore(context.Background(), db, storeOptions{readOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(web.New(st, nil).Handler())
	t.Cleanup(func() { srv.Close(); st.Close() })
	return srv, st
}

// How alike two databases' answers must be: exact (a copy), or the same
// but for the wall-clock times of commits and the numbers rows got in
// insertion order, which bound a paged read (the Link headers' end=):
// they depend on where the commits of a replay fell (sameRows).
type likeness int

const (
	exact likeness = iota
	sameRows
)

var endRe = regexp.MustCompile(`([?&])end=\d+`)

// answer is one API response as compared: status, the headers that carry
// meaning, the body (with the commit times dropped when volatile).
type answer struct {
	status int
	header string
	body   string
	links  map[string]string // rel -> URL, as served (not compared)
}

var linkRe = regexp.MustCompile(`<([^>]+)>;\s*rel="([^"]+)"`)

func fetch(t *testing.T, base, path string, like likeness) answer {
	t.Helper()
	resp, err := http.Get(base + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var h []string
	for _, k := range []string{"Content-Type", "Link", "X-Link-Number", "X-Link-Count"} {
		h = append(h, k+": "+resp.Header.Get(k))
	}
	body := string(b)
	header := strings.Join(h, "\n")
	if like == sameRows {
		header = endRe.ReplaceAllString(header, "${1}end=N")
	}
	if like != exact && strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		var v any
		if err := json.Unmarshal(b, &v); err == nil {
			dropTimes(v)
			nb, _ := json.Marshal(v)
			body = string(nb)
		}
	}
	links := map[string]string{}
	for _, l := range linkRe.FindAllStringSubmatch(resp.Header.Get("Link"), -1) {
		links[l[2]] = l[1]
	}
	return answer{resp.StatusCode, header, body, links}
}

// dropTimes removes the wall-clock times of commits (updated_at, and a
// last error's at), which two runs cannot share.
func dropTimes(v any) {
	switch x := v.(type) {
	case map[string]any:
		delete(x, "updated_at")
		if e, ok := x["last_error"].(map[string]any); ok {
			delete(e, "at")
		}
		for _, y := range x {
			dropTimes(y)
		}
	case []any:
		for _, y := range x {
			dropTimes(y)
		}
	}
}

// sameAPI compares the API of two databases: the list, and for every model
// its meta, layout and pages as JSON and CSV (first pages, pages by
// number, and, unless the row numbers differ, the pages the Link headers
// point to).
func sameAPI(t *testing.T, when, a, b string, like likeness) {
	t.Helper()
	sa, sta := apiOf(t, a)
	sb, stb := apiOf(t, b)
	compared := 0
	// same compares the answers to path, or to the paths each server's
	// own links gave.
	same := func(path string, own ...string) answer {
		t.Helper()
		pa, pb := path, path
		if len(own) == 2 {
			pa, pb = own[0], own[1]
		}
		x, y := fetch(t, sa.URL, pa, like), fetch(t, sb.URL, pb, like)
		compared++
		if x.status != y.status || x.header != y.header || x.body != y.body {
			t.Errorf("%s: GET %s differs:\n--- %s\n%d %s\n%s\n--- %s\n%d %s\n%s", when, path, a, x.status, x.header, clip(x.body), b, y.status, y.header, clip(y.body))
		}
		return x
	}
	list := same("/api/")
	var models []string
	if err := json.Unmarshal([]byte(list.body), &models); err != nil || len(models) < 20 {
		t.Fatalf("%s: /api/ lists %d models (%v):\n%s", when, len(models), err, clip(list.body))
	}
	rowsSeen := 0
	for _, m := range models {
		p := "/api/" + url.PathEscape(m)
		same(p + "/meta")
		same(p + "/layout")
		for _, f := range []string{"json", "csv"} {
			first := same(p + "?format=" + f)
			rowsSeen += strings.Count(first.body, "\n")
			pa := fetch(t, sa.URL, p+"?format="+f+"&rows_per_page=7", like)
			pb := fetch(t, sb.URL, p+"?format="+f+"&rows_per_page=7", like)
			same(p + "?format=" + f + "&rows_per_page=7")
			for _, rel := range []string{"next", "last"} {
				if pa.links[rel] != "" || pb.links[rel] != "" {
					same(rel, pa.links[rel], pb.links[rel])
				}
			}
			same(p + "?format=" + f + "&rows_per_page=5&page=3&order=asc")
		}
	}
	if rowsSeen < 100 {
		t.Errorf("%s: the first pages hold %d lines in all: too few to compare", when, rowsSeen)
	}
	ctx := context.Background()
	ja, err := sta.JournalStats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	jb, err := stb.JournalStats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ja != jb {
		t.Errorf("%s: journal figures differ: %+v and %+v", when, ja, jb)
	}
	ra, err := sta.(interface {
		RejectTotals(context.Context) (map[string]int64, error)
	}).RejectTotals(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rb, err := stb.(interface {
		RejectTotals(context.Context) (map[string]int64, error)
	}).RejectTotals(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(ra, rb) {
		t.Errorf("%s: reject totals differ: %v and %v", when, ra, rb)
	}
	keys := slices.Sorted(maps.Keys(ra))
	t.Logf("%s: %d answers compared over %d models; journal %d messages (%d late), rejects %v", when, compared, len(models), ja.Messages, ja.Late, keys)
}

func clip(s string) string {
	if len(s) > 1500 {
		return s[:1500] + fmt.Sprintf("... (%d bytes)", len(s))
	}
	return s
}
