package web_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"statscache/engine"
	"statscache/engine/sqlstore"
	"statscache/schema"
	"statscache/web"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// The SQLite store is the Reader the daemon serves.
var _ web.Reader = (*sqlstore.DB)(nil)

const (
	ident  = "volume-by-category-1h"
	feed   = "/api/" + ident
	base   = 1439121600.0 // 2015-08-09 12:00:00 UTC
	future = 4102444800.0 // 2100-01-01: an in-progress bucket, labelled with its end
	tricky = "a,b \"q\"\nc"
	layout = `{"title": "Volume by category", "series": [{"column": "volume", "by": "category"}]}`
)

// wrow is a row the fixture writes, kept to compare responses against.
type wrow struct {
	ts    float64
	cat   string
	vol   int64
	share any // float64 or nil
	info  any // decoded JSON or nil
	note  any // string or nil
}

// json is the row as a client decodes it from the JSON feed.
func (r wrow) json() map[string]any {
	return map[string]any{"timestamp": r.ts, "category": r.cat, "volume": float64(r.vol),
		"share": r.share, "info": r.info, "note": r.note}
}

// csv is the row as a CSV record, columns in the header's order.
func (r wrow) csv() []string {
	rec := []string{strconv.FormatFloat(r.ts, 'f', -1, 64), r.cat, "", "", "", strconv.FormatInt(r.vol, 10)}
	if r.info != nil {
		b, _ := json.Marshal(r.info)
		rec[2] = string(b)
	}
	if r.note != nil {
		rec[3] = r.note.(string)
	}
	if r.share != nil {
		rec[4] = strconv.FormatFloat(r.share.(float64), 'f', -1, 64)
	}
	return rec
}

var csvHeader = []string{"timestamp", "category", "info", "note", "share", "volume"}

// fixture is a real database behind a real loopback HTTP server.
type fixture struct {
	db   *sqlstore.DB
	srv  *httptest.Server
	rows []wrow // every row of the main model, in ascending order
	logs *bytes.Buffer
	// lag and cursor of the main model, for /meta.
	cursorTime float64
	lag        float64
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	db, err := sqlstore.Open(ctx, filepath.Join(t.TempDir(), "stats.db"), sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })

	spec := &engine.ModelSpec{
		Ident:       ident,
		Name:        "Volume by category",
		Summary:     "Messages per category",
		Description: "How many messages each category sent, per hour.",
		Interval:    time.Hour,
		Backlog:     24 * time.Hour,
		Topics:      []string{"org.fedoraproject.prod."},
		Script:      "models/volume.lua",
		Layout:      json.RawMessage(layout),
		Table: schema.Table{
			Name: schema.TableName(ident),
			Columns: []schema.Column{
				{Name: "timestamp", Type: schema.Real, NotNull: true, Index: true, Doc: "end of the bucket"},
				{Name: "category", Type: schema.Text},
				{Name: "volume", Type: schema.Integer, NotNull: true},
				{Name: "share", Type: schema.Real, Aggregate: schema.AggMax},
				{Name: "info", Type: schema.JSON},
				{Name: "note", Type: schema.Text},
			},
			Key: []string{"timestamp", "category"},
		},
	}
	if _, err := db.Register(ctx, spec); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*engine.ModelSpec{
		{Ident: "no-layout", Name: "No layout", Table: schema.Table{Name: schema.TableName("no-layout"),
			Columns: []schema.Column{{Name: "timestamp", Type: schema.Real}, {Name: "n", Type: schema.Integer}}, Key: []string{"timestamp"}}},
		{Ident: "odd/ident", Name: "Odd", Table: schema.Table{Name: schema.TableName("odd/ident"),
			Columns: []schema.Column{{Name: "timestamp", Type: schema.Real}}, Key: []string{"timestamp"}}},
	} {
		if _, err := db.Register(ctx, s); err != nil {
			t.Fatal(err)
		}
	}

	// 8 buckets of 3 categories, written in descending category order so
	// that row ids run against the sort order, then a future bucket.
	var rows []wrow
	for b := 0; b < 8; b++ {
		for c := 2; c >= 0; c-- {
			i := b*3 + (2 - c)
			r := wrow{ts: base + float64(b)*3600, cat: string(rune('a' + c)), vol: int64(i * 7)}
			switch i % 4 {
			case 0:
				r.share = float64(i) / 8
			case 1:
				r.info = map[string]any{"users": []any{"ralph", "kevin"}, "n": float64(i)}
			case 2:
				r.note = fmt.Sprintf("note %d", i)
			}
			rows = append(rows, r)
		}
	}
	rows[1].note = tricky
	rows[4].note = "naïve ☃ <b>&"
	rows[5].share = 1e21
	rows[6].share = 1e-7
	rows[7].info = "just a string"
	rows = append(rows, wrow{ts: future, cat: "z", vol: 1})
	var ops []engine.RowOp
	for _, r := range rows {
		row := engine.Row{"timestamp": r.ts, "category": r.cat, "volume": r.vol}
		for k, v := range map[string]any{"share": r.share, "info": r.info, "note": r.note} {
			if v != nil {
				row[k] = v
			}
		}
		ops = append(ops, engine.RowOp{Kind: engine.OpUpsert, Row: row})
	}
	sort.SliceStable(rows, func(i, j int) bool {
		if rows[i].ts != rows[j].ts {
			return rows[i].ts < rows[j].ts
		}
		return rows[i].cat < rows[j].cat
	})

	// Three journaled messages; the model has processed the first two and
	// failed on the first.
	t0 := int64(base * 1e6)
	msgs := []*engine.Message{
		{ID: "2015-m1", Key: "m1", Topic: "org.fedoraproject.prod.buildsys.tag", TimeUS: t0, Raw: []byte(`{}`)},
		{ID: "2015-m2", Key: "m2", Topic: "org.fedoraproject.prod.buildsys.tag", TimeUS: t0 + 30e6, Raw: []byte(`{}`)},
		{ID: "2015-m3", Key: "m3", Topic: "org.fedoraproject.prod.buildsys.tag", TimeUS: t0 + 90_250_000, Raw: []byte(`{}`)},
	}
	if _, err := db.Append(ctx, msgs); err != nil {
		t.Fatal(err)
	}
	tx, err := db.Begin(ctx, ident)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Apply(ops); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(engine.Checkpoint{Cursor: msgs[1].Pos(), CursorID: msgs[1].ID, Processed: 2,
		Errors: []engine.ModelError{{Ident: ident, MsgID: "2015-m1", TimeUS: t0, Err: "boom", Traceback: "stack"}},
		// Two work items waiting for their outcome.
		Work: []engine.WorkItem{{Seq: 1, Item: []byte(`"a"`)}, {Seq: 2, Item: []byte(`"b"`)}}, WorkSeq: 2}); err != nil {
		t.Fatal(err)
	}

	logs := &bytes.Buffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv := httptest.NewServer(web.New(db, logger).Handler())
	t.Cleanup(srv.Close)
	return &fixture{db: db, srv: srv, rows: rows, logs: logs, cursorTime: base + 30, lag: 60.25}
}

// sel returns the expected rows of a query, the way the API must select
// them: filter, order, limit, then the page.
func (fx *fixture) sel(desc bool, lo, hi float64, limit, offset, count int) []wrow {
	var out []wrow
	for _, r := range fx.rows {
		if r.ts >= lo && r.ts <= hi {
			out = append(out, r)
		}
	}
	if desc {
		for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
			out[i], out[j] = out[j], out[i]
		}
	}
	if limit > 0 && limit < len(out) {
		out = out[:limit]
	}
	if offset >= len(out) {
		return nil
	}
	out = out[offset:]
	if count < len(out) {
		out = out[:count]
	}
	return out
}

var all = math.Inf(1)

// do sends a request; hdr holds header name/value pairs.
func (fx *fixture) do(t *testing.T, method, path string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, fx.srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

func (fx *fixture) get(t *testing.T, path string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	return fx.do(t, http.MethodGet, path, hdr...)
}

// decodeRows decodes a JSON feed body.
func decodeRows(t *testing.T, body []byte) []map[string]any {
	t.Helper()
	var rows []map[string]any
	if err := json.Unmarshal(body, &rows); err != nil {
		t.Fatalf("decode %q: %v", body, err)
	}
	if rows == nil {
		t.Fatalf("body %q is not a JSON array", body)
	}
	return rows
}

func wantJSON(rows []wrow) []map[string]any {
	out := []map[string]any{}
	for _, r := range rows {
		out = append(out, r.json())
	}
	return out
}

func decodeCSV(t *testing.T, body []byte) [][]string {
	t.Helper()
	recs, err := csv.NewReader(bytes.NewReader(body)).ReadAll()
	if err != nil {
		t.Fatalf("decode CSV %q: %v", body, err)
	}
	return recs
}

func wantCSV(rows []wrow) [][]string {
	out := [][]string{csvHeader}
	for _, r := range rows {
		out = append(out, r.csv())
	}
	return out
}

func assertStatus(t *testing.T, resp *http.Response, body []byte, want int) {
	t.Helper()
	if resp.StatusCode != want {
		t.Fatalf("%s %s: status %d, want %d; body %s", resp.Request.Method, resp.Request.URL, resp.StatusCode, want, body)
	}
}

// errBody decodes an error response, checking it is JSON.
func errBody(t *testing.T, resp *http.Response, body []byte) map[string]string {
	t.Helper()
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("error Content-Type = %q, want application/json", ct)
	}
	var e map[string]string
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("error body %q: %v", body, err)
	}
	if e["error"] == "" {
		t.Errorf("error body %q has no error message", body)
	}
	return e
}

func TestFeedDefaultJSON(t *testing.T) {
	fx := newFixture(t)
	for _, accept := range []string{"", "*/*", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
		"image/png", "application/json", "text/javascript", "text/*", "text/csv;q=0.5, application/json", "text/csv, application/json"} {
		t.Run(accept, func(t *testing.T) {
			var hdr []string
			if accept != "" {
				hdr = []string{"Accept", accept}
			}
			resp, body := fx.get(t, feed, hdr...)
			assertStatus(t, resp, body, 200)
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q, want application/json", ct)
			}
			got := decodeRows(t, body)
			// Default: newest first, no stop, so the future bucket leads.
			want := wantJSON(fx.sel(true, -all, all, 0, 0, 100))
			if !reflect.DeepEqual(got, want) {
				t.Errorf("rows:\n got %v\nwant %v", got, want)
			}
			if got[0]["timestamp"] != future {
				t.Errorf("first row %v: the in-progress bucket is hidden", got[0])
			}
		})
	}
}

func TestFeedCSV(t *testing.T) {
	fx := newFixture(t)
	for _, tc := range []struct{ path, accept string }{
		{feed + "?order=asc", "text/csv"},
		{feed + "?order=asc", "application/csv"},
		{feed + "?order=asc", "application/json;q=0.5, text/csv"},
		{feed + "?order=asc", "text/csv, */*;q=0.1"},
		{feed + "?order=asc&format=csv", ""},
		{feed + "?order=asc&format=csv", "application/json"},
	} {
		t.Run(tc.path+" "+tc.accept, func(t *testing.T) {
			var hdr []string
			if tc.accept != "" {
				hdr = []string{"Accept", tc.accept}
			}
			resp, body := fx.get(t, tc.path, hdr...)
			assertStatus(t, resp, body, 200)
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/csv") {
				t.Errorf("Content-Type = %q, want text/csv", ct)
			}
			got := decodeCSV(t, body)
			want := wantCSV(fx.sel(false, -all, all, 0, 0, 100))
			if !reflect.DeepEqual(got, want) {
				t.Errorf("records:\n got %q\nwant %q", got, want)
			}
			// The tricky value is quoted, its quotes doubled, its newline kept.
			if !bytes.Contains(body, []byte(`"a,b ""q""`+"\n"+`c"`)) {
				t.Errorf("body does not quote %q:\n%s", tricky, body)
			}
			for _, s := range []string{"1000000000000000000000", "0.0000001"} {
				if !bytes.Contains(body, []byte(","+s+",")) {
					t.Errorf("body lacks %s written without exponent:\n%s", s, body)
				}
			}
		})
	}
}

func TestFeedJSONP(t *testing.T) {
	fx := newFixture(t)
	_, plain := fx.get(t, feed+"?rows_per_page=3")
	for _, cb := range []string{"cb", "jQuery.cb_1", "$", "_a.$b.c9"} {
		resp, body := fx.get(t, feed+"?rows_per_page=3&callback="+url.QueryEscape(cb), "Accept", "text/csv")
		assertStatus(t, resp, body, 200)
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/javascript") {
			t.Errorf("callback %s: Content-Type = %q", cb, ct)
		}
		want := cb + "(" + strings.TrimSuffix(string(plain), "\n") + ");"
		if string(body) != want {
			t.Errorf("callback %s: body\n%s\nwant\n%s", cb, body, want)
		}
		if resp.Header.Get("X-Link-Count") != "9" {
			t.Errorf("callback %s: X-Link-Count = %q, want 9", cb, resp.Header.Get("X-Link-Count"))
		}
	}
}

func TestFeedParams(t *testing.T) {
	fx := newFixture(t)
	b1, b3 := strconv.FormatFloat(base+3600, 'f', -1, 64), strconv.FormatFloat(base+3*3600, 'f', -1, 64)
	tests := []struct {
		query string
		want  []wrow
		pages int
	}{
		{"", fx.sel(true, -all, all, 0, 0, 100), 1},
		{"order=desc", fx.sel(true, -all, all, 0, 0, 100), 1},
		{"order=asc", fx.sel(false, -all, all, 0, 0, 100), 1},
		{"limit=0", fx.sel(true, -all, all, 0, 0, 100), 1},
		{"limit=5", fx.sel(true, -all, all, 5, 0, 100), 1},
		{"limit=500", fx.sel(true, -all, all, 0, 0, 100), 1},
		{"rows_per_page=1", fx.sel(true, -all, all, 0, 0, 1), 25},
		{"rows_per_page=100", fx.sel(true, -all, all, 0, 0, 100), 1},
		{"rows_per_page=10&page=2", fx.sel(true, -all, all, 0, 10, 10), 3},
		{"rows_per_page=10&page=3&order=asc", fx.sel(false, -all, all, 0, 20, 10), 3},
		{"rows_per_page=10&page=4", nil, 3},
		{"rows_per_page=10&page=99999999999999999", nil, 3},
		{"start=" + b1, fx.sel(true, base+3600, all, 0, 0, 100), 1},
		{"start=" + b1 + ".0&order=asc", fx.sel(false, base+3600, all, 0, 0, 100), 1},
		{"start=" + b1 + ".5&order=asc", fx.sel(false, base+3600.5, all, 0, 0, 100), 1},
		{"stop=" + b3, fx.sel(true, -all, base+3*3600, 0, 0, 100), 1},
		{"start=" + b1 + "&stop=" + b3 + "&order=asc", fx.sel(false, base+3600, base+3*3600, 0, 0, 100), 1},
		{"start=" + b3 + "&stop=" + b3, fx.sel(true, base+3*3600, base+3*3600, 0, 0, 100), 1},
		{"start=1.4391216e9&stop=" + b1, fx.sel(true, base, base+3600, 0, 0, 100), 1},
		{"start=-5&stop=0", nil, 0},
		{"start=" + b1 + "&limit=7&rows_per_page=3&page=3", fx.sel(true, base+3600, all, 7, 6, 3), 3},
		{"order=&limit=&page=&rows_per_page=&start=&stop=&format=&callback=", fx.sel(true, -all, all, 0, 0, 100), 1},
		{"_=12345&unknown=x", fx.sel(true, -all, all, 0, 0, 100), 1},
	}
	for _, tc := range tests {
		t.Run(tc.query, func(t *testing.T) {
			resp, body := fx.get(t, feed+"?"+tc.query)
			assertStatus(t, resp, body, 200)
			if got, want := decodeRows(t, body), wantJSON(tc.want); !reflect.DeepEqual(got, want) {
				t.Errorf("rows:\n got %v\nwant %v", got, want)
			}
			if got := resp.Header.Get("X-Link-Count"); got != strconv.Itoa(tc.pages) {
				t.Errorf("X-Link-Count = %s, want %d", got, tc.pages)
			}
		})
	}
}

func TestFeedBadParams(t *testing.T) {
	fx := newFixture(t)
	tests := []struct{ query, param string }{
		{"order=up", "order"},
		{"order=ASC", "order"},
		{"limit=abc", "limit"},
		{"limit=-1", "limit"},
		{"limit=1.5", "limit"},
		{"limit=+3", "limit"},
		{"limit=99999999999999999999999", "limit"},
		{"page=0", "page"},
		{"page=-1", "page"},
		{"page=two", "page"},
		{"page=1e3", "page"},
		{"rows_per_page=0", "rows_per_page"},
		{"rows_per_page=101", "rows_per_page"},
		{"rows_per_page=-5", "rows_per_page"},
		{"rows_per_page=ten", "rows_per_page"},
		{"start=abc", "start"},
		{"start=NaN", "start"},
		{"start=nan", "start"},
		{"start=Inf", "start"},
		{"stop=-Inf", "stop"},
		{"stop=infinity", "stop"},
		{"start=0x10", "start"},
		{"start=1_000", "start"},
		{"start=1e999", "start"},
		{"stop=%201", "stop"},
		{"start=10&stop=5", "start"},
		{"callback=alert(1)", "callback"},
		{"callback=a..b", "callback"},
		{"callback=1abc", "callback"},
		{"callback=a-b", "callback"},
		{"callback=%3Cscript%3E", "callback"},
		{"callback=" + strings.Repeat("a", 129), "callback"},
		{"format=xml", "format"},
		{"format=CSV", "format"},
		{"format=csv&callback=cb", "callback"},
		{"order=asc&order=desc", "order"},
		{"page=1&page=2", "page"},
		{"a=%zz", ""},
		{"a=1;b=2", ""},
	}
	for _, tc := range tests {
		t.Run(tc.query, func(t *testing.T) {
			resp, body := fx.get(t, feed+"?"+tc.query)
			assertStatus(t, resp, body, 400)
			e := errBody(t, resp, body)
			if e["parameter"] != tc.param {
				t.Errorf("parameter = %q, want %q (body %s)", e["parameter"], tc.param, body)
			}
			if tc.param != "" && !strings.HasPrefix(e["error"], "parameter "+tc.param+": ") {
				t.Errorf("error %q does not name the parameter", e["error"])
			}
			if resp.Header.Get("Access-Control-Allow-Origin") != "*" {
				t.Errorf("no CORS header on an error")
			}
		})
	}
	_, body := fx.get(t, feed+"?rows_per_page=0")
	want := `{"error":"parameter rows_per_page: must be an integer from 1 to 100, got \"0\"","parameter":"rows_per_page"}` + "\n"
	if string(body) != want {
		t.Errorf("body %s, want %s", body, want)
	}
	if bytes.Contains(fx.logs.Bytes(), []byte("level=ERROR")) {
		t.Errorf("bad input was logged as an internal error:\n%s", fx.logs)
	}
}

var linkRe = regexp.MustCompile(`<([^>]*)>; rel="([^"]*)"`)

func parseLinks(t *testing.T, h string) map[string]string {
	t.Helper()
	links := map[string]string{}
	for _, m := range linkRe.FindAllStringSubmatch(h, -1) {
		if _, dup := links[m[2]]; dup {
			t.Errorf("Link %q: rel %s twice", h, m[2])
		}
		links[m[2]] = m[1]
	}
	return links
}

// knownParams are the parameters a link keeps; others are dropped.
var knownParams = []string{"order", "limit", "start", "stop", "rows_per_page", "format", "callback"}

// checkLink checks that a link keeps the parameters of the request that
// the API reads, only with another page, and returns that page.
func checkLink(t *testing.T, link, path string, query url.Values) int {
	t.Helper()
	u, err := url.Parse(link)
	if err != nil {
		t.Fatalf("link %q: %v", link, err)
	}
	if u.Path != path || u.Host != "" {
		t.Errorf("link %q: path %q, want %q", link, u.Path, path)
	}
	got := u.Query()
	page, err := strconv.Atoi(got.Get("page"))
	if err != nil || len(got["page"]) != 1 {
		t.Errorf("link %q: bad page", link)
	}
	got.Del("page")
	// end fixes the range of a listing (every link carries it when there
	// are rows); after, on next links, is the page's last row.
	if len(got["end"]) > 1 || len(got["after"]) > 1 {
		t.Errorf("link %q: end or after repeated", link)
	}
	got.Del("end")
	got.Del("after")
	want := url.Values{}
	for _, k := range knownParams {
		if v, ok := query[k]; ok {
			want[k] = v
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("link %q: query %v, want %v", link, got, want)
	}
	return page
}

// TestWalkPages follows the next links from the first page to the last and
// checks that every row comes exactly once, in order, with every parameter
// carried along.
func TestWalkPages(t *testing.T) {
	fx := newFixture(t)
	b2 := strconv.FormatFloat(base+2*3600, 'f', -1, 64)
	tests := []struct {
		query string
		want  []wrow
		csv   bool
		cb    string
	}{
		{"order=asc&rows_per_page=5&foo=bar", fx.sel(false, -all, all, 0, 0, 100), false, ""},
		{"rows_per_page=4&limit=10&format=json", fx.sel(true, -all, all, 10, 0, 100), false, ""},
		{"start=" + b2 + "&stop=" + strconv.FormatFloat(future, 'f', -1, 64) + "&rows_per_page=2&order=desc", fx.sel(true, base+2*3600, future, 0, 0, 100), false, ""},
		{"rows_per_page=7&order=asc&format=csv&limit=20", fx.sel(false, -all, all, 20, 0, 100), true, ""},
		{"callback=my.cb&rows_per_page=6&page=1", fx.sel(true, -all, all, 0, 0, 100), false, "my.cb"},
		{"rows_per_page=1&order=asc&limit=9", fx.sel(false, -all, all, 9, 0, 100), false, ""},
	}
	for _, tc := range tests {
		t.Run(tc.query, func(t *testing.T) {
			query, err := url.ParseQuery(tc.query)
			if err != nil {
				t.Fatal(err)
			}
			rpp, _ := strconv.Atoi(query.Get("rows_per_page"))
			pageCount := (len(tc.want) + rpp - 1) / rpp
			var got []string
			next := feed + "?" + tc.query
			for n := 1; next != ""; n++ {
				if n > 100 {
					t.Fatal("too many pages")
				}
				resp, body := fx.get(t, next)
				assertStatus(t, resp, body, 200)
				if h := resp.Header.Get("X-Link-Number"); h != strconv.Itoa(n) {
					t.Errorf("page %d: X-Link-Number = %s", n, h)
				}
				if h := resp.Header.Get("X-Link-Count"); h != strconv.Itoa(pageCount) {
					t.Errorf("page %d: X-Link-Count = %s, want %d", n, h, pageCount)
				}
				links := parseLinks(t, resp.Header.Get("Link"))
				for rel, want := range map[string]int{"first": 1, "last": pageCount, "previous": n - 1, "next": n + 1} {
					link, ok := links[rel]
					if present := (rel != "previous" || n > 1) && (rel != "next" || n < pageCount); ok != present {
						t.Fatalf("page %d: rel %s present = %v, want %v (Link %q)", n, rel, ok, present, resp.Header.Get("Link"))
					}
					if ok {
						if p := checkLink(t, link, feed, query); p != want {
							t.Errorf("page %d: rel %s goes to page %d, want %d", n, rel, p, want)
						}
					}
				}
				switch {
				case tc.csv:
					recs := decodeCSV(t, body)
					if !reflect.DeepEqual(recs[0], csvHeader) {
						t.Errorf("page %d: header %q", n, recs[0])
					}
					for _, r := range recs[1:] {
						got = append(got, strings.Join(r, "\x1f"))
					}
				default:
					if tc.cb != "" {
						s, ok := strings.CutPrefix(string(body), tc.cb+"(")
						if s, ok = strings.CutSuffix(s, ");"); !ok {
							t.Fatalf("page %d: body %q is not JSON-P", n, body)
						}
						body = []byte(s)
					}
					for _, r := range decodeRows(t, body) {
						b, _ := json.Marshal(r)
						got = append(got, string(b))
					}
				}
				next = links["next"]
			}
			var want []string
			for _, r := range tc.want {
				if tc.csv {
					want = append(want, strings.Join(r.csv(), "\x1f"))
				} else {
					b, _ := json.Marshal(r.json())
					want = append(want, string(b))
				}
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("rows over all pages:\n got %q\nwant %q", got, want)
			}
		})
	}
}

func TestPastTheEnd(t *testing.T) {
	fx := newFixture(t)
	resp, body := fx.get(t, feed+"?limit=7&rows_per_page=3&page=5&order=asc")
	assertStatus(t, resp, body, 200)
	if string(body) != "[]\n" {
		t.Errorf("body %q, want []", body)
	}
	if resp.Header.Get("X-Link-Count") != "3" || resp.Header.Get("X-Link-Number") != "5" {
		t.Errorf("X-Link-Count %s, X-Link-Number %s; want 3 and 5", resp.Header.Get("X-Link-Count"), resp.Header.Get("X-Link-Number"))
	}
	links := parseLinks(t, resp.Header.Get("Link"))
	if _, ok := links["next"]; ok {
		t.Errorf("next link past the end: %v", links)
	}
	q, _ := url.ParseQuery("limit=7&rows_per_page=3&order=asc")
	if p := checkLink(t, links["previous"], feed, q); p != 3 {
		t.Errorf("previous goes to page %d, want the last page, 3", p)
	}

	// Limit before paging: the last page holds the rest of the limit only.
	resp, body = fx.get(t, feed+"?limit=7&rows_per_page=3&page=3&order=asc")
	if got, want := decodeRows(t, body), wantJSON(fx.sel(false, -all, all, 7, 6, 3)); !reflect.DeepEqual(got, want) || len(got) != 1 {
		t.Errorf("page 3 of limit 7:\n got %v\nwant %v", got, want)
	}

	// An empty selection has no pages.
	resp, body = fx.get(t, "/api/no-layout")
	assertStatus(t, resp, body, 200)
	if string(body) != "[]\n" || resp.Header.Get("X-Link-Count") != "0" {
		t.Errorf("empty model: body %q, X-Link-Count %s", body, resp.Header.Get("X-Link-Count"))
	}
	links = parseLinks(t, resp.Header.Get("Link"))
	if len(links) != 2 || links["first"] == "" || links["first"] != links["last"] {
		t.Errorf("empty model: links %v, want first = last = page 1", links)
	}
}

func TestIndex(t *testing.T) {
	fx := newFixture(t)
	resp, body := fx.get(t, "/api/")
	assertStatus(t, resp, body, 200)
	var idents []string
	if err := json.Unmarshal(body, &idents); err != nil {
		t.Fatal(err)
	}
	want := []string{"no-layout", "odd/ident", ident}
	if !reflect.DeepEqual(idents, want) {
		t.Errorf("idents = %q, want %q", idents, want)
	}
	resp, body = fx.get(t, "/api/", "Accept", "text/csv")
	assertStatus(t, resp, body, 200)
	if string(body) != "ident\nno-layout\nodd/ident\n"+ident+"\n" {
		t.Errorf("CSV index = %q", body)
	}
	resp, body = fx.get(t, "/api/?callback=cb")
	if string(body) != `cb(["no-layout","odd/ident","`+ident+`"]);` {
		t.Errorf("JSON-P index = %q", body)
	}
	resp, body = fx.get(t, "/api")
	if resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != "/api/" {
		t.Errorf("/api: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, body = fx.get(t, "/")
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/web/getting-started" {
		t.Errorf("/: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
}

func TestMeta(t *testing.T) {
	fx := newFixture(t)
	resp, body := fx.get(t, feed+"/meta", "Accept", "text/csv")
	assertStatus(t, resp, body, 200)
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	col := func(name string, typ string, notNull, index, key bool, doc, agg string) map[string]any {
		return map[string]any{"name": name, "type": typ, "not_null": notNull, "index": index, "key": key, "doc": doc, "aggregate": agg}
	}
	lastErr, _ := m["last_error"].(map[string]any)
	if at, _ := lastErr["at"].(float64); at < float64(time.Now().Add(-time.Hour).Unix()) {
		t.Errorf("last_error.at = %v, want about now", lastErr["at"])
	}
	delete(lastErr, "at")
	if at, _ := m["updated_at"].(float64); at < float64(time.Now().Add(-time.Hour).Unix()) {
		t.Errorf("updated_at = %v, want about now", m["updated_at"])
	}
	delete(m, "updated_at")
	want := map[string]any{
		"ident": ident, "name": "Volume by category", "summary": "Messages per category",
		"description": "How many messages each category sent, per hour.",
		"interval":    3600.0, "interval_text": "1h", "calendar": nil, "backlog": 86400.0,
		"topics": []any{"org.fedoraproject.prod."}, "script": "models/volume.lua",
		"table": "model_volume_by_category_1h",
		"columns": []any{
			// volume: the default of a bucketed model's number; share: declared.
			col("timestamp", "real", true, true, true, "end of the bucket", "none"),
			col("category", "text", true, false, true, "", "none"),
			col("volume", "integer", true, false, false, "", "sum"),
			col("share", "real", false, false, false, "", "max"),
			col("info", "json", false, false, false, "", "none"),
			col("note", "text", false, false, false, "", "none"),
		},
		"key":         []any{"timestamp", "category"},
		"cursor":      map[string]any{"time": fx.cursorTime, "id": "2015-m2"},
		"lag_seconds": fx.lag, "processed": 2.0, "errors": 1.0, "status": "ok", "status_reason": "",
		"last_error": map[string]any{"msg_id": "2015-m1", "time": base, "error": "boom"},
		"has_layout": true, "queued": 2.0,
		"journal": map[string]any{"messages": 3.0, "newest": base + 90.25},
	}
	if !reflect.DeepEqual(m, want) {
		got, _ := json.MarshalIndent(m, "", " ")
		exp, _ := json.MarshalIndent(want, "", " ")
		t.Errorf("meta:\n%s\nwant\n%s", got, exp)
	}

	resp, body = fx.get(t, "/api/no-layout/meta")
	assertStatus(t, resp, body, 200)
	m = nil
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]any{"interval": nil, "interval_text": nil, "backlog": nil, "last_error": nil,
		"has_layout": false, "topics": []any{}, "cursor": map[string]any{"time": nil, "id": nil}, "processed": 0.0,
		"lag_seconds": 90.25} {
		if !reflect.DeepEqual(m[k], v) {
			t.Errorf("no-layout meta %s = %#v, want %#v", k, m[k], v)
		}
	}

	resp, body = fx.get(t, "/api/odd%2Fident/meta")
	assertStatus(t, resp, body, 200)
	if !bytes.Contains(body, []byte(`"ident":"odd/ident"`)) {
		t.Errorf("odd ident meta: %s", body)
	}
	resp, body = fx.get(t, "/api/odd%2Fident?rows_per_page=1")
	assertStatus(t, resp, body, 200)
	if l := resp.Header.Get("Link"); !strings.Contains(l, "</api/odd%2Fident?rows_per_page=1&page=1>") {
		t.Errorf("odd ident Link = %q", l)
	}

	resp, body = fx.get(t, feed+"/meta?format=csv")
	assertStatus(t, resp, body, 400)
	if e := errBody(t, resp, body); e["parameter"] != "format" {
		t.Errorf("meta?format=csv: %v", e)
	}
	resp, body = fx.get(t, feed+"/meta?callback=x.y")
	if !strings.HasPrefix(string(body), `x.y({"ident":"`+ident+`"`) || !strings.HasSuffix(string(body), "});") {
		t.Errorf("JSON-P meta = %s", body)
	}
}

func TestLayout(t *testing.T) {
	fx := newFixture(t)
	resp, body := fx.get(t, feed+"/layout")
	assertStatus(t, resp, body, 200)
	var got, want any
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	json.Unmarshal([]byte(layout), &want)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("layout = %s, want %s", body, layout)
	}
	if resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Error("no CORS header on layout")
	}
	resp, body = fx.get(t, feed+"/layout?callback=cb")
	if !strings.HasPrefix(string(body), "cb({") || resp.Header.Get("Content-Type") != "application/javascript; charset=utf-8" {
		t.Errorf("JSON-P layout = %s (%s)", body, resp.Header.Get("Content-Type"))
	}

	resp, body = fx.get(t, "/api/no-layout/layout")
	assertStatus(t, resp, body, 404)
	if e := errBody(t, resp, body); e["model"] != "no-layout" {
		t.Errorf("no layout: %v", e)
	}
}

func TestNotFound(t *testing.T) {
	fx := newFixture(t)
	for _, path := range []string{"/api/nope", "/api/nope?order=asc", "/api/nope/meta", "/api/nope/layout", "/api/nope?format=csv"} {
		resp, body := fx.get(t, path, "Accept", "text/csv")
		assertStatus(t, resp, body, 404)
		e := errBody(t, resp, body)
		if e["model"] != "nope" || !strings.Contains(e["error"], "nope") {
			t.Errorf("%s: %s", path, body)
		}
		if resp.Header.Get("Access-Control-Allow-Origin") != "*" {
			t.Errorf("%s: no CORS header", path)
		}
	}
	for _, path := range []string{"/api/a/b/c", "/nothing", "/api/" + ident + "/other"} {
		resp, body := fx.get(t, path)
		assertStatus(t, resp, body, 404)
		errBody(t, resp, body)
	}
}

func TestMethods(t *testing.T) {
	fx := newFixture(t)
	for _, method := range []string{"POST", "PUT", "DELETE", "PATCH"} {
		for _, path := range []string{"/api/", feed, feed + "/meta", feed + "/layout"} {
			resp, body := fx.do(t, method, path)
			assertStatus(t, resp, body, 405)
			errBody(t, resp, body)
			if a := resp.Header.Get("Allow"); a != "GET, HEAD, OPTIONS" {
				t.Errorf("%s %s: Allow = %q", method, path, a)
			}
		}
	}
	resp, body := fx.do(t, "HEAD", feed)
	assertStatus(t, resp, body, 200)
	if len(body) != 0 || resp.Header.Get("X-Link-Count") != "1" {
		t.Errorf("HEAD: body %q, X-Link-Count %q", body, resp.Header.Get("X-Link-Count"))
	}
}

func TestCORS(t *testing.T) {
	fx := newFixture(t)
	for _, path := range []string{"/api/", feed, feed + "/meta", feed + "/layout", feed + "?page=0", "/api/nope"} {
		resp, _ := fx.get(t, path, "Origin", "https://example.org")
		if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "*" {
			t.Errorf("%s: Access-Control-Allow-Origin = %q", path, got)
		}
		if got := resp.Header.Get("Access-Control-Expose-Headers"); got != "Link, X-Link-Number, X-Link-Count" {
			t.Errorf("%s: Access-Control-Expose-Headers = %q", path, got)
		}
	}
	for _, path := range []string{"/api/", feed, feed + "/meta", feed + "/layout"} {
		resp, body := fx.do(t, "OPTIONS", path, "Origin", "https://example.org",
			"Access-Control-Request-Method", "GET", "Access-Control-Request-Headers", "accept")
		assertStatus(t, resp, body, 204)
		for k, v := range map[string]string{
			"Access-Control-Allow-Origin":  "*",
			"Access-Control-Allow-Methods": "GET, OPTIONS",
			"Access-Control-Allow-Headers": "Accept, Content-Type",
		} {
			if got := resp.Header.Get(k); got != v {
				t.Errorf("OPTIONS %s: %s = %q, want %q", path, k, got, v)
			}
		}
	}
}

func TestGolden(t *testing.T) {
	fx := newFixture(t)
	for _, tc := range []struct{ file, path string }{
		{"feed_asc.json", feed + "?order=asc&rows_per_page=8"},
		{"feed_asc.csv", feed + "?order=asc&rows_per_page=8&format=csv"},
		{"feed_desc_page2.json", feed + "?rows_per_page=3&page=2&stop=" + strconv.FormatFloat(base+7*3600, 'f', -1, 64)},
	} {
		t.Run(tc.file, func(t *testing.T) {
			resp, body := fx.get(t, tc.path)
			assertStatus(t, resp, body, 200)
			golden := filepath.Join("testdata", tc.file)
			if *update {
				if err := os.WriteFile(golden, body, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(body, want) {
				t.Errorf("%s differs from %s:\n got %s\nwant %s", tc.path, golden, body, want)
			}
		})
	}
}

// TestOpenClose runs the server on a listener of its own.
func TestOpenClose(t *testing.T) {
	s := web.New(stubReader{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err := s.Open("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	if err := s.Open("127.0.0.1:0"); err == nil {
		t.Error("a second Open succeeded")
	}
	addr := s.Addr().String()
	resp, err := http.Get("http://" + addr + "/api/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "[\"a\"]\n" {
		t.Errorf("GET /api/: %d %q", resp.StatusCode, body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if s.Addr() != nil {
		t.Errorf("Addr after Close = %v, want nil", s.Addr())
	}
	if _, err := http.Get("http://" + addr + "/api/"); err == nil {
		t.Error("still serving after Close")
	}
	if err := s.Close(ctx); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// stubReader serves one model, or fails as told.
type stubReader struct {
	err   error
	panic bool
}

func (s stubReader) ListModels(context.Context) ([]engine.ModelInfo, error) {
	if s.panic {
		panic("kaboom")
	}
	if s.err != nil {
		return nil, s.err
	}
	return []engine.ModelInfo{{Spec: engine.ModelSpec{Ident: "a"}}}, nil
}

func (s stubReader) ModelInfo(ctx context.Context, ident string) (engine.ModelInfo, error) {
	if s.panic {
		panic("kaboom")
	}
	return engine.ModelInfo{}, s.err
}

func (s stubReader) Rows(ctx context.Context, ident string, q engine.RowQuery) (engine.RowPage, error) {
	if s.panic {
		panic("kaboom")
	}
	if s.err != nil {
		return engine.RowPage{}, s.err
	}
	// A value JSON cannot carry must not break the response.
	return engine.RowPage{Columns: []string{"timestamp", "x"}, Types: []schema.Type{schema.Real, schema.Real},
		Rows: [][]any{{1.5, math.NaN()}}, Total: 1}, nil
}

func TestInternalErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		reader stubReader
		logged string
	}{
		{"error", stubReader{err: errors.New("disk on fire at /var/lib/secret")}, "disk on fire"},
		{"panic", stubReader{panic: true}, "kaboom"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logs := &bytes.Buffer{}
			srv := httptest.NewServer(web.New(tc.reader, slog.New(slog.NewTextHandler(logs, nil))).Handler())
			defer srv.Close()
			for _, path := range []string{"/api/", "/api/a", "/api/a/meta", "/api/a/layout"} {
				resp, err := http.Get(srv.URL + path)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 500 || string(body) != `{"error":"internal error"}`+"\n" {
					t.Errorf("%s: %d %s", path, resp.StatusCode, body)
				}
				if resp.Header.Get("Content-Type") != "application/json" {
					t.Errorf("%s: Content-Type %q", path, resp.Header.Get("Content-Type"))
				}
			}
			if !strings.Contains(logs.String(), tc.logged) || !strings.Contains(logs.String(), "level=ERROR") {
				t.Errorf("the cause was not logged:\n%s", logs)
			}
		})
	}

	srv := httptest.NewServer(web.New(stubReader{}, slog.New(slog.NewTextHandler(io.Discard, nil))).Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/api/a")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != `[{"timestamp":1.5,"x":null}]`+"\n" {
		t.Errorf("NaN value: %d %s", resp.StatusCode, body)
	}
}
