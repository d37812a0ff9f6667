package web_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/url"
	"reflect"
	"strconv"
	"testing"

	"statscache/engine"
)

// addRows commits rows to the fixture's main model, as a running model
// would while a client pages through its table.
func (fx *fixture) addRows(t *testing.T, rows ...engine.Row) {
	t.Helper()
	ctx := context.Background()
	tx, err := fx.db.Begin(ctx, ident)
	if err != nil {
		t.Fatal(err)
	}
	var ops []engine.RowOp
	for _, r := range rows {
		ops = append(ops, engine.RowOp{Kind: engine.OpUpsert, Row: r})
	}
	if err := tx.Apply(ops); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(engine.Checkpoint{}); err != nil {
		t.Fatal(err)
	}
}

// rowID names a row of a JSON page by its key.
func rowID(r map[string]any) string { return fmt.Sprintf("%v/%v", r["timestamp"], r["category"]) }

// TestStablePaging follows the Link header while rows are committed
// between every two requests, newer than every row and inside the newest
// bucket: the pages show the rows of the first request's moment, each
// exactly once, in order, and the page count does not move. A client that
// builds page=N URLs itself (no end) is served by position as before, and
// sees the shifted rows twice: that is what end is for.
func TestStablePaging(t *testing.T) {
	for _, order := range []string{"desc", "asc"} {
		t.Run(order, func(t *testing.T) {
			fx := newFixture(t)
			var want []string
			for _, r := range fx.sel(order == "desc", -all, all, 0, 0, 1000) {
				want = append(want, fmt.Sprintf("%v/%v", r.ts, r.cat))
			}
			var got []string
			next := feed + "?rows_per_page=4&order=" + order
			count := ""
			for n := 0; next != ""; n++ {
				if n > 20 {
					t.Fatal("too many pages")
				}
				resp, body := fx.get(t, next)
				assertStatus(t, resp, body, 200)
				if count == "" {
					count = resp.Header.Get("X-Link-Count")
				} else if c := resp.Header.Get("X-Link-Count"); c != count {
					t.Errorf("page %d: X-Link-Count %s, first page said %s", n+1, c, count)
				}
				for _, r := range decodeRows(t, body) {
					got = append(got, rowID(r))
				}
				// A newer bucket, and a new row inside the newest one that
				// sorts before its rows.
				fx.addRows(t,
					engine.Row{"timestamp": future + float64(n+1)*3600, "category": "new", "volume": int64(n)},
					engine.Row{"timestamp": future, "category": fmt.Sprintf("y%02d", n), "volume": int64(n)})
				next = parseLinks(t, resp.Header.Get("Link"))["next"]
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("rows over all pages:\n got %q\nwant %q", got, want)
			}
		})
	}

	t.Run("page only", func(t *testing.T) {
		fx := newFixture(t)
		seen := map[string]int{}
		dup := 0
		for page := 1; page <= 7; page++ {
			resp, body := fx.get(t, feed+"?rows_per_page=4&page="+strconv.Itoa(page))
			assertStatus(t, resp, body, 200)
			for _, r := range decodeRows(t, body) {
				if seen[rowID(r)]++; seen[rowID(r)] > 1 {
					dup++
				}
			}
			fx.addRows(t, engine.Row{"timestamp": future + float64(page)*3600, "category": "new", "volume": int64(page)})
		}
		if dup == 0 {
			t.Errorf("page-only requests saw no row twice while rows were added: they are no longer served by position")
		}
	})
}

// TestDeepPageByNumber asks for the last page of a listing by number,
// with and without end: the same rows as walking there.
func TestDeepPageByNumber(t *testing.T) {
	fx := newFixture(t)
	for _, q := range []string{"rows_per_page=1&page=25", "rows_per_page=1&page=20&order=asc", "rows_per_page=2&page=13", "rows_per_page=3&page=5&limit=14"} {
		resp, body := fx.get(t, feed+"?"+q)
		assertStatus(t, resp, body, 200)
		v, _ := url.ParseQuery(q)
		rpp, _ := strconv.Atoi(v.Get("rows_per_page"))
		page, _ := strconv.Atoi(v.Get("page"))
		limit, _ := strconv.Atoi(v.Get("limit"))
		var want []string
		for _, r := range fx.sel(v.Get("order") != "asc", -all, all, limit, (page-1)*rpp, rpp) {
			want = append(want, fmt.Sprintf("%v/%v", r.ts, r.cat))
		}
		var got []string
		for _, r := range decodeRows(t, body) {
			got = append(got, rowID(r))
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: got %q, want %q", q, got, want)
		}
	}
}

// TestKeyParams: end and after that do not name a row of the table are a
// 400 naming the parameter; RFC 3339 times select what Unix seconds do.
func TestKeyParams(t *testing.T) {
	fx := newFixture(t)
	resp, body := fx.get(t, feed+"?rows_per_page=2")
	assertStatus(t, resp, body, 200)
	end := ""
	if u, err := url.Parse(parseLinks(t, resp.Header.Get("Link"))["first"]); err == nil {
		end = u.Query().Get("end")
	}
	if end == "" {
		t.Fatalf("first link carries no end: %s", resp.Header.Get("Link"))
	}
	for _, tc := range []struct{ query, param string }{
		{"end=notanumber", "end"},
		{"end=0", "end"},
		{"after=" + b64(`{"a":1}`), "after"},
		{"after=" + b64(`[1439121600]`), "after"},
		{"after=" + b64(`["x","a"]`), "after"},
		{"after=" + b64(`[1439121600,"a"] x`), "after"},
		{"after=" + b64(`[1439121600,null]`), "after"},
		{"after=notbase64!", "after"},
	} {
		resp, body := fx.get(t, feed+"?"+tc.query)
		assertStatus(t, resp, body, 400)
		if e := errBody(t, resp, body); e["parameter"] != tc.param {
			t.Errorf("%s: error %v, want parameter %s", tc.query, e, tc.param)
		}
	}
	for _, pair := range [][2]string{
		{"start=1439125200&stop=1439132400", "start=2015-08-09T13:00:00Z&stop=2015-08-09T17:00:00%2B02:00"},
		{"start=1439125200.5", "start=2015-08-09T13:00:00.5Z"},
	} {
		_, a := fx.get(t, feed+"?"+pair[0])
		resp, b := fx.get(t, feed+"?"+pair[1])
		assertStatus(t, resp, b, 200)
		if string(a) != string(b) {
			t.Errorf("%s gives\n%s\nbut %s gives\n%s", pair[1], b, pair[0], a)
		}
	}
	resp, body = fx.get(t, feed+"?start=2015-08-09%2013:00")
	assertStatus(t, resp, body, 400)
}

// b64 encodes a key parameter the way the API does (base64url of JSON).
func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
