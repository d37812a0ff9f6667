package web_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"statscache/engine"
	"statscache/engine/sqlstore"
	"statscache/schema"
	"statscache/web"
)

// TestLinkKeepsKnownParams sends a huge parameter the API does not read:
// it is left out of the Link header, which keeps every parameter the API
// reads. A huge value of a parameter it reads is refused with the JSON
// error.
func TestLinkKeepsKnownParams(t *testing.T) {
	fx := newFixture(t)
	junk := strings.Repeat("x", 1<<20)
	resp, body := fx.get(t, feed+"?_="+junk+"&rows_per_page=2&order=asc&start=1&stop=1e10&limit=20&format=json&callback=cb&page=2")
	assertStatus(t, resp, body, 200)
	link := resp.Header.Get("Link")
	if len(link) > 1000 || strings.Contains(link, "xxx") || strings.Contains(link, "_=") {
		t.Errorf("Link header of %d bytes keeps the unknown parameter: %.200s", len(link), link)
	}
	want := "</api/" + ident + "?rows_per_page=2&order=asc&start=1&stop=1e10&limit=20&format=json&callback=cb&page=1&end="
	if !strings.HasPrefix(link, want) {
		t.Errorf("Link = %s\nwant it to start with %s", link, want)
	}
	for _, p := range []string{"start=" + "1." + strings.Repeat("0", 300), "limit=" + strings.Repeat("0", 300) + "1", "callback=" + strings.Repeat("a", 1<<20)} {
		name, _, _ := strings.Cut(p, "=")
		resp, body := fx.get(t, feed+"?"+p)
		assertStatus(t, resp, body, 400)
		if e := errBody(t, resp, body); e["parameter"] != name {
			t.Errorf("%s...: parameter %q in %s", p[:20], e["parameter"], body)
		}
		if len(body) > 500 {
			t.Errorf("error of %d bytes for a long %s", len(body), name)
		}
	}
}

// TestBadTextServed serves rows whose strings hold a NUL, an escape
// character, DEL and bytes that are not UTF-8 (a model can build such
// strings, and older databases may hold some): the CSV replaces them with
// U+FFFD, the JSON escapes or replaces them, and both are valid UTF-8.
func TestBadTextServed(t *testing.T) {
	ctx := context.Background()
	db, err := sqlstore.Open(ctx, filepath.Join(t.TempDir(), "text.db"), sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	spec := &engine.ModelSpec{Ident: "text", Name: "Text", Table: schema.Table{Name: schema.TableName("text"),
		Columns: []schema.Column{{Name: "timestamp", Type: schema.Real}, {Name: "note", Type: schema.Text}, {Name: "info", Type: schema.JSON}},
		Key:     []string{"timestamp"}}}
	if _, err := db.Register(ctx, spec); err != nil {
		t.Fatal(err)
	}
	bad := "a\x00b\x1bc\x7fd\xffe\xc3(f\tg\nh"
	tx, err := db.Begin(ctx, "text")
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Apply([]engine.RowOp{{Kind: engine.OpUpsert, Row: engine.Row{"timestamp": 1.0, "note": bad, "info": map[string]any{"k": bad}}}}); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(engine.Checkpoint{}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(web.New(db, nil).Handler())
	defer srv.Close()
	get := func(q string) []byte {
		resp, err := http.Get(srv.URL + "/api/text" + q)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", q, resp.StatusCode, body)
		}
		return body
	}
	csvBody := get("?format=csv")
	if !utf8.Valid(csvBody) {
		t.Errorf("CSV is not UTF-8: %q", csvBody)
	}
	for _, c := range csvBody {
		if (c < 0x20 && c != '\n' && c != '\t') || c == 0x7f {
			t.Errorf("CSV holds the control character %#x: %q", c, csvBody)
		}
	}
	recs := decodeCSV(t, csvBody)
	if want := "a\uFFFDb\uFFFDc\uFFFDd\uFFFDe\uFFFD(f\tg\nh"; len(recs) != 2 || recs[1][2] != want {
		t.Errorf("CSV records %q, want the note %q", recs, want)
	}
	jsonBody := get("")
	if !utf8.Valid(jsonBody) || bytes.IndexByte(jsonBody, 0) >= 0 || bytes.IndexByte(jsonBody, 0x1b) >= 0 {
		t.Errorf("JSON is not clean UTF-8: %q", jsonBody)
	}
	var rows []map[string]any
	if err := json.Unmarshal(jsonBody, &rows); err != nil || len(rows) != 1 {
		t.Fatalf("JSON %q: %v", jsonBody, err)
	}
	if got := rows[0]["note"]; got != "a\x00b\x1bc\x7fd\uFFFDe\uFFFD(f\tg\nh" {
		t.Errorf("JSON note decodes to %q", got)
	}
}

// TestRequestsNetHTTPRefuses documents the requests that net/http itself
// answers before any handler runs, so not with the JSON error: a request
// target with an invalid escape (/api/%zz) or a raw control character, and
// a header value with a control character. They get a 400 and the
// connection is closed; the server goes on. The same mistakes where they
// do reach the API (an invalid escape in the query string, an escaped
// control character in the path) get the JSON error.
func TestRequestsNetHTTPRefuses(t *testing.T) {
	fx := newFixture(t)
	addr := strings.TrimPrefix(fx.srv.URL, "http://")
	raw := func(req string) (*http.Response, []byte) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(c, req); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("%q: %v", req, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, body
	}
	for _, req := range []string{
		"GET /api/%zz HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /api/\x01 HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET " + feed + " HTTP/1.1\r\nHost: x\r\nAccept: text/\x01csv\r\n\r\n",
	} {
		resp, body := raw(req)
		if resp.StatusCode != 400 || !resp.Close {
			t.Errorf("%q: %d (close %v) %s, want net/http's 400", req, resp.StatusCode, resp.Close, body)
		}
	}
	for _, tc := range []struct {
		req    string
		status int
	}{
		{"GET " + feed + "?a=%zz HTTP/1.1\r\nHost: x\r\n\r\n", 400},
		{"GET /api/%01 HTTP/1.1\r\nHost: x\r\n\r\n", 404},
		{"GET /api/%25zz HTTP/1.1\r\nHost: x\r\n\r\n", 404},
		{"GET " + feed + "?rows_per_page=%01 HTTP/1.1\r\nHost: x\r\n\r\n", 400},
		{"GET " + feed + " HTTP/1.1\r\nHost: x\r\nAccept: text/\xffcsv\r\n\r\n", 200},
	} {
		resp, body := raw(tc.req)
		if resp.StatusCode != tc.status {
			t.Errorf("%q: %d %s, want %d", tc.req, resp.StatusCode, body, tc.status)
			continue
		}
		if tc.status != 200 {
			errBody(t, resp, body)
		}
	}
	if resp, body := fx.get(t, feed); resp.StatusCode != 200 {
		t.Errorf("after the bad requests: %d %s", resp.StatusCode, body)
	}
}
