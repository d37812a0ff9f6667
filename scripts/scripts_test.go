package scripts_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3"

	"statscache/engine"
	"statscache/engine/filesource"
	"statscache/engine/sqlstore"
	"statscache/luaapi"
	"statscache/schema"
	"statscache/scripts"
)

// Each case replays testdata/<name>.input.jsonl through the named reference
// models and compares every row of every one of their tables with
// testdata/<name>.want.json, which was worked out by hand from the rules
// (bucket [B, B+I) is labelled B+I; see the comments in the scripts).
var cases = []struct {
	name    string
	scripts []string
}{
	{"volume_golden", []string{"volume.lua"}},
	{"volume", []string{"volume.lua"}},
	{"by_category_golden", []string{"volume-by-category.lua"}},
	{"by_category", []string{"volume-by-category.lua"}},
	{"by_topic", []string{"volume-by-topic.lua"}},
	{"pagure_golden", []string{"pagure-contribution.lua", "pagure-project-contribution.lua"}},
	{"pagure", []string{"pagure-contribution.lua", "pagure-project-contribution.lua"}},
	{"popularity", []string{"popularity.lua"}},
	{"by_user", []string{"volume-by-user.lua"}},
	{"releng", []string{"release-engineering.lua"}},
}

// Every mode must give the same rows: one commit, one commit per message,
// and a restart half way (two engines over one database file, so that
// buckets are merged across commits).
var modes = []struct {
	name    string
	cfg     engine.Config
	restart bool
}{
	{"OKOneBatch", engine.Config{}, false},
	{"OKBatchSize1", engine.Config{BatchSize: 1, ScanSize: 1}, false},
	{"OKRestart", engine.Config{BatchSize: 2}, true},
}

var logger = slog.New(slog.DiscardHandler)

// unreachableKoji configures the service build-durations needs so that
// every script loads; the cases here do not run that model (the examples
// in scripts/examples do, against recorded answers).
var unreachableKoji = &luaapi.HTTPServices{URLs: map[string]string{"koji": "http://127.0.0.1:1/kojihub"}}

func TestReferenceModels(t *testing.T) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			msgs := readInput(t, filepath.Join("testdata", c.name+".input.jsonl"))
			want := readWant(t, filepath.Join("testdata", c.name+".want.json"))
			for _, mode := range modes {
				t.Run(mode.name, func(t *testing.T) {
					path := filepath.Join(t.TempDir(), "t.db")
					var models []*luaapi.Model
					if mode.restart {
						half := len(msgs) / 2
						replay(t, path, c.scripts, mode.cfg, msgs[:half])
						models = replay(t, path, c.scripts, mode.cfg, msgs[half:])
					} else {
						models = replay(t, path, c.scripts, mode.cfg, msgs)
					}
					compare(t, path, models, want)
				})
			}
		})
	}
}

// TestAllScriptsLoad checks that every shipped script loads, with the idents
// the cases above expect; build-durations loads only with its service.
func TestAllScriptsLoad(t *testing.T) {
	_, errs := luaapi.LoadFS(scripts.FS, ".", luaapi.Options{Logger: logger})
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), `build-durations.lua:`) || !strings.Contains(errs[0].Error(), `service "koji" is not configured`) {
		t.Errorf("without services: %v, want build-durations.lua refused for its service", errs)
	}
	models, errs := luaapi.LoadFS(scripts.FS, ".", luaapi.Options{Logger: logger, Services: unreachableKoji})
	for _, err := range errs {
		t.Errorf("load: %v", err)
	}
	got := map[string]string{}
	for _, m := range models {
		got[m.Spec().Ident] = m.Spec().Script
	}
	for ident, script := range map[string]string{
		"volume-1s": "volume.lua", "volume-5s": "volume.lua", "volume-1m": "volume.lua",
		"volume-by-category-1s": "volume-by-category.lua", "volume-by-category-15s": "volume-by-category.lua",
		"volume-by-category-1m": "volume-by-category.lua", "volume-by-category-1h": "volume-by-category.lua",
		"volume-by-category-1d":                              "volume-by-category.lua",
		"volume-by-topic-1s":                                 "volume-by-topic.lua",
		"volume-by-topic-5s":                                 "volume-by-topic.lua",
		"volume-by-topic-1m":                                 "volume-by-topic.lua",
		"number-of-contribution-to-pagure.io-1d":             "pagure-contribution.lua",
		"number-of-contribution-per-project-to-pagure.io-1d": "pagure-project-contribution.lua",
		"popularity":                                         "popularity.lua",
		"volume-by-user-1s":                                  "volume-by-user.lua",
		"volume-by-package-1m":                               "volume-by-package.lua",
		"number-of-contribution-per-user-to-pagure.io-1d":    "pagure-user-contribution.lua",
		"build-durations-1h":                                 "build-durations.lua",
	} {
		if got[ident] != script {
			t.Errorf("model %s comes from %q, want %q", ident, got[ident], script)
		}
	}
}

// readInput reads a JSON Lines file through the file source, as "replay"
// does, and returns its messages in journal order (stable for duplicates).
func readInput(t *testing.T, path string) []*engine.Message {
	t.Helper()
	var msgs []*engine.Message
	r := filesource.Reader{}
	err := r.ReadFile(context.Background(), path, func(b filesource.Batch) error {
		for _, rj := range b.Rejects {
			t.Errorf("%s: rejected: %s", rj.Source, rj.Reason)
		}
		msgs = append(msgs, b.Messages...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) == 0 {
		t.Fatalf("%s: no messages", path)
	}
	sort.SliceStable(msgs, func(i, j int) bool { return msgs[i].Pos().Less(msgs[j].Pos()) })
	return msgs
}

// readWant reads ident -> rows, keeping numbers as json.Number so that each
// is compared as its column's type.
func readWant(t *testing.T, path string) map[string][]map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	d.DisallowUnknownFields()
	var want map[string][]map[string]any
	if err := d.Decode(&want); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return want
}

// loadModels loads the shipped scripts and keeps those of the named files.
func loadModels(t *testing.T, names []string) []*luaapi.Model {
	t.Helper()
	all, errs := luaapi.LoadFS(scripts.FS, ".", luaapi.Options{Logger: logger, Services: unreachableKoji})
	if len(errs) > 0 {
		t.Fatalf("load scripts: %v", errs)
	}
	var out []*luaapi.Model
	for _, m := range all {
		for _, n := range names {
			if filepath.Base(m.Spec().Script) == n {
				out = append(out, m)
			}
		}
	}
	if len(out) == 0 {
		t.Fatalf("no models from %v", names)
	}
	return out
}

// replay runs the messages through fresh instances of the models over the
// database at path, as one engine run from start to end.
func replay(t *testing.T, path string, names []string, cfg engine.Config, msgs []*engine.Message) []*luaapi.Model {
	t.Helper()
	ctx := context.Background()
	db, err := sqlstore.Open(ctx, path, sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	cfg.Logger = logger
	cfg.BatchInterval = time.Hour // commit by count only
	e := engine.New(db, cfg)
	models := loadModels(t, names)
	for _, m := range models {
		if err := e.Add(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.Ingest(ctx, msgs); err != nil {
		t.Fatal(err)
	}
	if err := e.Run(ctx, false); err != nil {
		t.Fatal(err)
	}
	for _, s := range e.Stats() {
		if s.Errors != 0 || s.Failed != "" {
			t.Errorf("model %s: %d errors, failed %q", s.Ident, s.Errors, s.Failed)
		}
	}
	return models
}

// compare reads every row of every model's table with plain SQL and checks
// it against want, which must list every model.
func compare(t *testing.T, path string, models []*luaapi.Model, want map[string][]map[string]any) {
	t.Helper()
	sdb, err := sql.Open("sqlite3", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer sdb.Close()
	seen := map[string]bool{}
	for _, m := range models {
		spec := m.Spec()
		seen[spec.Ident] = true
		w, ok := want[spec.Ident]
		if !ok {
			t.Errorf("want file has no rows for %s (write [] for none)", spec.Ident)
			continue
		}
		got := readTable(t, sdb, &spec.Table)
		wantRows := make([]map[string]any, len(w))
		for i, r := range w {
			wantRows[i] = typed(t, &spec.Table, r)
		}
		if !reflect.DeepEqual(got, wantRows) {
			t.Errorf("%s: rows\n%s\nwant\n%s", spec.Ident, show(got), show(wantRows))
		}
	}
	for ident := range want {
		if !seen[ident] {
			t.Errorf("want file lists %s, which none of the models is", ident)
		}
	}
	var n int
	if err := sdb.QueryRow(`SELECT count(*) FROM model_errors`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("%d model errors recorded", n)
	}
}

func readTable(t *testing.T, sdb *sql.DB, table *schema.Table) []map[string]any {
	t.Helper()
	var order []string
	for _, k := range table.Key {
		order = append(order, schema.Quote(k))
	}
	rows, err := sdb.Query(fmt.Sprintf(`SELECT * FROM %s ORDER BY %s`, schema.Quote(table.Name), strings.Join(order, ", ")))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	out := []map[string]any{}
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		row := map[string]any{}
		for i, c := range cols {
			if c == "id" {
				continue
			}
			v := vals[i]
			if b, ok := v.([]byte); ok {
				v = string(b)
			}
			row[c] = v
		}
		out = append(out, row)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// typed converts a want row to the Go types the SQLite driver returns for
// each column's type: int64 for integer, float64 for real, string for text.
func typed(t *testing.T, table *schema.Table, r map[string]any) map[string]any {
	t.Helper()
	out := map[string]any{}
	for _, c := range table.Columns {
		v, ok := r[c.Name]
		if !ok {
			t.Fatalf("%s: want row %v has no column %s", table.Name, r, c.Name)
		}
		switch c.Type {
		case schema.Integer:
			n, err := v.(json.Number).Int64()
			if err != nil {
				t.Fatalf("%s.%s: %v", table.Name, c.Name, err)
			}
			v = n
		case schema.Real:
			f, err := v.(json.Number).Float64()
			if err != nil {
				t.Fatalf("%s.%s: %v", table.Name, c.Name, err)
			}
			v = f
		}
		out[c.Name] = v
	}
	if len(r) != len(table.Columns) {
		t.Fatalf("%s: want row %v has columns the table does not", table.Name, r)
	}
	return out
}

func show(rows []map[string]any) string {
	var b strings.Builder
	for _, r := range rows {
		keys := make([]string, 0, len(r))
		for k := range r {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for i, k := range keys {
			if i > 0 {
				b.WriteString(" ")
			}
			v := r[k]
			if f, ok := v.(float64); ok {
				v = strconv.FormatFloat(f, 'f', -1, 64)
			}
			fmt.Fprintf(&b, "%s=%v(%T)", k, v, r[k])
		}
		b.WriteString("\n")
	}
	return b.String()
}
