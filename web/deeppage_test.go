package web_test

import (
	"fmt"
	"math"
	"net/url"
	"reflect"
	"strconv"
	"testing"

	"statscache/engine"
)

// TestDeepPagesByNumberOverHTTP: pages deep enough to be found from the
// store's page anchors (offset 500 and more) by number, in both orders,
// with and without limit and end (an older one, and one past every row),
// and page numbers at, after and far after the last page: the rows are
// those of the table listed by following the Link header, and no request
// is answered with a 5xx.
func TestDeepPagesByNumberOverHTTP(t *testing.T) {
	fx := newFixture(t)
	var rows []engine.Row
	for i := 0; i < 1500; i++ {
		rows = append(rows, engine.Row{"timestamp": float64(1439100000 + 60*(i%500)), "category": fmt.Sprintf("d%03d", i/500), "volume": int64(i)})
	}
	fx.addRows(t, rows...)
	listing := func(order, extra string) ([]string, string) {
		var got []string
		next := feed + "?rows_per_page=100&order=" + order + extra
		end := ""
		for n := 0; next != ""; n++ {
			if n > 40 {
				t.Fatal("too many pages")
			}
			resp, body := fx.get(t, next)
			assertStatus(t, resp, body, 200)
			for _, r := range decodeRows(t, body) {
				got = append(got, rowID(r))
			}
			links := parseLinks(t, resp.Header.Get("Link"))
			if u, err := url.Parse(links["first"]); end == "" && err == nil {
				end = u.Query().Get("end")
			}
			next = links["next"]
		}
		return got, end
	}
	wantAsc, oldEnd := listing("asc", "")
	wantDesc, _ := listing("desc", "")
	// Rows after the older End, all over the key order.
	rows = rows[:0]
	for i := 0; i < 300; i++ {
		rows = append(rows, engine.Row{"timestamp": float64(1439100000 + 60*(i%500)), "category": fmt.Sprintf("c%03d", i), "volume": int64(i)})
	}
	fx.addRows(t, rows...)
	newAsc, _ := listing("asc", "")
	old, _ := strconv.ParseInt(oldEnd, 10, 64)
	for _, tc := range []struct {
		order string
		end   int64
		limit int
		want  []string
	}{
		{"asc", 0, 0, newAsc},
		{"asc", old, 0, wantAsc},
		{"desc", old, 0, wantDesc},
		{"asc", old, 1234, wantAsc[:1234]},
		{"desc", old, 1234, wantDesc[:1234]},
		{"asc", 1 << 40, 0, newAsc},
	} {
		for _, rpp := range []int{1, 7, 100} {
			last := (len(tc.want) + rpp - 1) / rpp
			for _, page := range []int{500/rpp + 1, 512/rpp + 1, last / 2, last - 1, last, last + 1, math.MaxInt / 2} {
				if page < 1 {
					continue
				}
				q := fmt.Sprintf("?order=%s&rows_per_page=%d&page=%d", tc.order, rpp, page)
				if tc.end > 0 {
					q += fmt.Sprintf("&end=%d", tc.end)
				}
				if tc.limit > 0 {
					q += fmt.Sprintf("&limit=%d", tc.limit)
				}
				resp, body := fx.get(t, feed+q)
				assertStatus(t, resp, body, 200)
				var got []string
				for _, r := range decodeRows(t, body) {
					got = append(got, rowID(r))
				}
				var want []string
				if off := (page - 1) * rpp; page <= last && off < len(tc.want) {
					want = tc.want[off:min(off+rpp, len(tc.want))]
				}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("%s: got %q, want %q", q, got, want)
				}
			}
		}
	}
}
