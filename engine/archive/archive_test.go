package archive

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fastjson"

	"statscache/engine"
	"statscache/engine/archive/dgtest"
)

const t0 = 1_700_000_000 // a whole minute, hour and day in UTC

type want struct {
	key    string
	timeUS int64
}

// history builds n /raw records from the bundled sample with fresh ids and
// timestamps in [t0, t0+span) seconds, many sharing a second, plus hot
// records in the single second t0+hot (more than a page of ties) and one
// record on every minute boundary (the inclusive-end edge).
func history(t testing.TB, n, spanSec, hot int) (recs [][]byte, exp []want) {
	t.Helper()
	f, err := os.Open("../../scripts/sample/messages.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var sample []map[string]json.RawMessage
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatal(err)
		}
		sample = append(sample, m)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	mk := func(i int, sec int64) {
		m := map[string]json.RawMessage{}
		for k, v := range sample[i%len(sample)] {
			m[k] = v
		}
		id := fmt.Sprintf("2024-%08x-0000-4000-8000-%012x", i, rng.Uint64()&0xffffffffffff)
		m["msg_id"] = json.RawMessage(strconv.Quote(id))
		m["timestamp"] = json.RawMessage(fmt.Sprintf("%d.0", sec))
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, b)
		exp = append(exp, want{engine.DedupeKey(id), sec * 1e6})
	}
	i := 0
	for ; i < n; i++ {
		// Bunch messages into few seconds so that ties straddle pages.
		mk(i, t0+int64(rng.IntN(spanSec/4))*4)
	}
	for j := 0; j < hot; j++ {
		mk(i, t0+int64(spanSec/2)+1)
		i++
	}
	for s := int64(0); s <= int64(spanSec); s += 60 {
		mk(i, t0+s)
		i++
	}
	slices.SortFunc(exp, func(a, b want) int {
		if a.timeUS != b.timeUS {
			return int(a.timeUS - b.timeUS)
		}
		return strings.Compare(a.key, b.key)
	})
	return recs, exp
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(logWriter{t}, &slog.HandlerOptions{Level: slog.LevelError}))
}

type logWriter struct{ t *testing.T }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func newClient(t *testing.T, srv *dgtest.Server) *Client {
	return &Client{
		BaseURL:        srv.URL,
		HTTP:           srv.Client(),
		Window:         5 * time.Minute,
		Retries:        12,
		BackoffMin:     time.Millisecond,
		BackoffMax:     20 * time.Millisecond,
		RequestTimeout: 10 * time.Second,
		Logger:         testLogger(t),
	}
}

// collectAll runs Fetch and checks that batches come in order.
func collectAll(t *testing.T, c *Client, start, end time.Time) ([]want, error) {
	t.Helper()
	var got []want
	var last engine.Position
	err := c.Fetch(context.Background(), start, end, func(batch []*engine.Message) error {
		for _, m := range batch {
			if !last.Less(m.Pos()) {
				t.Errorf("out of order: %+v after %+v", m.Pos(), last)
			}
			last = m.Pos()
			got = append(got, want{m.Key, m.TimeUS})
		}
		return nil
	})
	return got, err
}

func checkExact(t *testing.T, got, exp []want) {
	t.Helper()
	if len(got) != len(exp) {
		t.Errorf("got %d messages, want %d", len(got), len(exp))
	}
	for i := range min(len(got), len(exp)) {
		if got[i] != exp[i] {
			t.Fatalf("message %d is %+v, want %+v", i, got[i], exp[i])
		}
	}
}

func span3600() (time.Time, time.Time) {
	return time.Unix(t0, 0), time.Unix(t0+3600+1, 0)
}

func TestFetchExactlyOnceInOrder(t *testing.T) {
	recs, exp := history(t, 2000, 3600, 250)
	for _, conc := range []int{1, 4} {
		t.Run(fmt.Sprintf("concurrency=%d", conc), func(t *testing.T) {
			srv := dgtest.New(recs, dgtest.Options{})
			defer srv.Close()
			c := newClient(t, srv)
			c.Concurrency = conc
			start, end := span3600()
			got, err := collectAll(t, c, start, end)
			if err != nil {
				t.Fatal(err)
			}
			checkExact(t, got, exp)
			p := c.Progress()
			if p.WindowsDone != p.Windows || p.Messages != int64(len(exp)) || p.Refetches == 0 || p.Splits == 0 {
				t.Errorf("progress %+v: want every window done, %d messages, splits and refetches", p, len(exp))
			}
			for _, r := range srv.Requests() {
				q := r.Query
				if r.Accept != "application/json" || q.Get("order") != "asc" || q.Get("rows_per_page") != "100" ||
					q.Get("start") == "" || q.Get("end") == "" || q.Get("page") == "" || r.Status != http.StatusOK {
					t.Fatalf("bad request %+v", r)
				}
				if _, err := strconv.ParseInt(q.Get("start"), 10, 64); err != nil {
					t.Fatalf("start is not epoch seconds: %+v", r)
				}
			}
		})
	}
}

func TestFetchUnderFailures(t *testing.T) {
	recs, exp := history(t, 1500, 3600, 150)
	srv := dgtest.New(recs, dgtest.Options{FailEvery: 7, TruncateEvery: 5, SlowEvery: 13, Slow: 20 * time.Millisecond})
	defer srv.Close()
	c := newClient(t, srv)
	c.Concurrency = 3
	start, end := span3600()
	got, err := collectAll(t, c, start, end)
	if err != nil {
		t.Fatal(err)
	}
	checkExact(t, got, exp)
	var html, trunc bool
	for _, r := range srv.Requests() {
		html = html || r.Status >= 500
	}
	trunc = c.Progress().Retries > 0
	if !html || !trunc {
		t.Errorf("failures were not exercised: %+v", c.Progress())
	}
}

func TestTimeoutsAreRetried(t *testing.T) {
	recs, exp := history(t, 200, 600, 0)
	srv := dgtest.New(recs, dgtest.Options{SlowEvery: 3, Slow: 2 * time.Second})
	defer srv.Close()
	c := newClient(t, srv)
	c.RequestTimeout = 200 * time.Millisecond
	got, err := collectAll(t, c, time.Unix(t0, 0), time.Unix(t0+601, 0))
	if err != nil {
		t.Fatal(err)
	}
	checkExact(t, got, exp)
	if c.Progress().Retries == 0 {
		t.Error("no retries")
	}
}

func TestDeadServerIsAnError(t *testing.T) {
	recs, _ := history(t, 100, 600, 0)
	srv := dgtest.New(recs, dgtest.Options{})
	c := newClient(t, srv)
	c.Retries = 2
	srv.Close()
	delivered := 0
	err := c.Fetch(context.Background(), time.Unix(t0, 0), time.Unix(t0+600, 0), func(b []*engine.Message) error {
		delivered += len(b)
		return nil
	})
	var we *WindowError
	if !errors.As(err, &we) || !we.Start.Equal(time.Unix(t0, 0)) || delivered != 0 {
		t.Fatalf("err = %v, delivered %d; want a WindowError at the start and nothing delivered", err, delivered)
	}
}

func TestOutageStopsAtTheFailingWindow(t *testing.T) {
	recs, exp := history(t, 600, 3600, 0)
	// Down for one stretch in the middle of the range: windows before it
	// are delivered, the run stops there, nothing after it is delivered.
	srv := dgtest.New(recs, dgtest.Options{FailFrom: time.Unix(t0+1900, 0), FailTo: time.Unix(t0+1950, 0)})
	defer srv.Close()
	c := newClient(t, srv)
	c.Retries = 2
	c.Concurrency = 3
	start, end := span3600()
	got, err := collectAll(t, c, start, end)
	var we *WindowError
	if !errors.As(err, &we) {
		t.Fatalf("err = %v, want a WindowError", err)
	}
	if !we.Start.Equal(time.Unix(t0+1800, 0)) || !c.Progress().Position.Equal(we.Start) {
		t.Errorf("failed window starts %v, progress at %v; want %v", we.Start, c.Progress().Position, time.Unix(t0+1800, 0))
	}
	var before []want
	for _, w := range exp {
		if w.timeUS < (t0+1800)*1e6 {
			before = append(before, w)
		}
	}
	checkExact(t, got, before)
	// Resuming from the failed window once the archive is back delivers the rest.
	srv2 := dgtest.New(recs, dgtest.Options{})
	defer srv2.Close()
	c2 := newClient(t, srv2)
	rest, err := collectAll(t, c2, we.Start, end)
	if err != nil {
		t.Fatal(err)
	}
	checkExact(t, append(got, rest...), exp)
}

func TestLateInsertWhilePaging(t *testing.T) {
	recs, exp := history(t, 300, 300, 0)
	late := []byte(`{"msg_id":"2024-late-one","topic":"org.fedoraproject.prod.late","timestamp":1700000150.0,"msg":{}}`)
	// Visible from the second request on: the first page's total is one
	// short, so the pages of the first pass cannot agree.
	srv := dgtest.New(recs, dgtest.Options{Late: []dgtest.Late{{Record: late, AfterRequests: 1}}})
	defer srv.Close()
	c := newClient(t, srv)
	c.Concurrency = 1
	got, err := collectAll(t, c, time.Unix(t0, 0), time.Unix(t0+301, 0))
	if err != nil {
		t.Fatal(err)
	}
	exp = append(exp, want{"late-one", 1700000150 * 1e6})
	slices.SortFunc(exp, func(a, b want) int {
		if a.timeUS != b.timeUS {
			return int(a.timeUS - b.timeUS)
		}
		return strings.Compare(a.key, b.key)
	})
	checkExact(t, got, exp)
}

func TestRejectsAreReported(t *testing.T) {
	recs, exp := history(t, 150, 600, 0)
	bad := [][]byte{
		[]byte(`{"msg_id":"2024-no-topic","timestamp":1700000010.0,"msg":{}}`),
		[]byte(`{"msg_id":"2024-no-body","topic":"a.b.c.d","timestamp":1700000020.0}`),
		[]byte(`{"topic":"a.b.c.d","timestamp":1700000030.0,"msg":{}}`),
	}
	srv := dgtest.New(append(recs, bad...), dgtest.Options{})
	defer srv.Close()
	c := newClient(t, srv)
	var mu sync.Mutex
	var cb []engine.Reject
	c.OnReject = func(r engine.Reject) { mu.Lock(); cb = append(cb, r); mu.Unlock() }
	got, err := collectAll(t, c, time.Unix(t0, 0), time.Unix(t0+601, 0))
	if err != nil {
		t.Fatal(err)
	}
	checkExact(t, got, exp)
	rs := c.Rejects()
	if len(rs) != len(bad) || len(cb) != len(bad) || c.Progress().Rejected != int64(len(bad)) {
		t.Fatalf("rejects %+v", rs)
	}
	for _, r := range rs {
		if r.Reason == "" || !strings.HasPrefix(r.Source, "datagrepper /raw [") || len(r.Record) == 0 {
			t.Errorf("reject %+v", r)
		}
	}
}

func TestFractionalRange(t *testing.T) {
	// [start, end) with fractions: the archive sees whole seconds, the
	// client cuts back by message time.
	recs, exp := history(t, 200, 600, 0)
	srv := dgtest.New(recs, dgtest.Options{})
	defer srv.Close()
	c := newClient(t, srv)
	start := time.Unix(t0+100, 500_000_000)
	end := time.Unix(t0+400, 500_000_000)
	got, err := collectAll(t, c, start, end)
	if err != nil {
		t.Fatal(err)
	}
	var in []want
	for _, w := range exp {
		if w.timeUS >= start.UnixMicro() && w.timeUS < end.UnixMicro() {
			in = append(in, w)
		}
	}
	checkExact(t, got, in)
}

func TestFnErrorStops(t *testing.T) {
	recs, _ := history(t, 300, 3600, 0)
	srv := dgtest.New(recs, dgtest.Options{})
	defer srv.Close()
	c := newClient(t, srv)
	boom := errors.New("boom")
	calls := 0
	err := c.Fetch(context.Background(), time.Unix(t0, 0), time.Unix(t0+3600, 0), func([]*engine.Message) error {
		calls++
		return boom
	})
	if !errors.Is(err, boom) || calls != 1 {
		t.Fatalf("err %v after %d calls", err, calls)
	}
}

func TestDecodePage(t *testing.T) {
	var p fastjson.Parser
	for _, tc := range []struct {
		body string
		ok   bool
	}{
		{`{"raw_messages":[],"total":0,"pages":0,"count":0}`, true},
		{`{"raw_messages":[{"a":1}],"total":3,"pages":1,"count":1}`, true},
		{`{"raw_messages":[{"a":1}],"total":3,"pages":1,"count":2}`, false},
		{`{"raw_messages":[{"a":1},{"b":2}],"total":1,"pages":1,"count":2}`, false},
		{`{"raw_messages":[{"a":1}],"total":3,"pa`, false},
		{`{"error":"internal_error"}`, false},
		{`<html>`, false},
		{`[]`, false},
		{`{"raw_messages":[],"total":-1,"pages":0}`, false},
		{`{"raw_messages":[],"total":"1","pages":0}`, false},
	} {
		_, err := decodePage(&p, []byte(tc.body))
		if (err == nil) != tc.ok {
			t.Errorf("decodePage(%s) err = %v, want ok %v", tc.body, err, tc.ok)
		}
	}
}

func FuzzDecodePage(f *testing.F) {
	f.Add([]byte(`{"raw_messages":[{"msg_id":"x","topic":"t","timestamp":1.0,"msg":{}}],"total":1,"pages":1,"count":1}`))
	f.Add([]byte(`{"raw_messages":[],"total":0,"pages":0,"count":0,"arguments":{}}`))
	f.Add([]byte(`{"raw_messages":`))
	f.Add([]byte(`<!doctype html>`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var p fastjson.Parser
		pg, err := decodePage(&p, body)
		if err != nil {
			return
		}
		if len(pg.records) > pg.total || pg.total < 0 {
			t.Fatalf("accepted inconsistent page %+v", pg)
		}
		var dec engine.Decoder
		for _, r := range pg.records {
			dec.Decode(r)
			recordID(&p, r)
		}
	})
}

func TestDgtestQuirks(t *testing.T) {
	recs, _ := history(t, 60, 60, 0)
	srv := dgtest.New(recs, dgtest.Options{})
	defer srv.Close()
	get := func(accept, query string) (*http.Response, string) {
		req, _ := http.NewRequest("GET", srv.URL+"/raw?"+query, nil)
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var sb strings.Builder
		buf := make([]byte, 4096)
		for {
			n, err := resp.Body.Read(buf)
			sb.Write(buf[:n])
			if err != nil {
				break
			}
		}
		return resp, sb.String()
	}
	win := fmt.Sprintf("start=%d&end=%d", t0, t0+60)
	for _, tc := range []struct {
		accept, query string
		status        int
		ct            string
	}{
		{"application/json", win, 200, "application/json"},
		{"", win, 200, "text/html; charset=utf-8"}, // JSON labelled HTML
		{"text/html", win, 200, "text/html; charset=utf-8"},
		{"*/*", win, 200, "application/json"},
		{"application/json", win + "&rows_per_page=101", 400, "text/html; charset=utf-8"},
		{"application/json", win + "&page=0", 400, "text/html; charset=utf-8"},
		{"application/json", win + "&order=up", 400, "text/html; charset=utf-8"},
		{"application/json", win + "&page=x", 500, "application/json"},
	} {
		resp, body := get(tc.accept, tc.query)
		if resp.StatusCode != tc.status || resp.Header.Get("Content-Type") != tc.ct {
			t.Errorf("Accept %q ?%s: %d %q, want %d %q: %.100s", tc.accept, tc.query, resp.StatusCode, resp.Header.Get("Content-Type"), tc.status, tc.ct, body)
		}
	}
	_, body := get("application/json", win)
	var page struct {
		Raw       []json.RawMessage `json:"raw_messages"`
		Total     int
		Pages     int
		Count     int
		Arguments map[string]any
	}
	if err := json.Unmarshal([]byte(body), &page); err != nil {
		t.Fatal(err)
	}
	// Inclusive start and end, default 25 rows per page, descending order.
	inWin := 0
	for _, r := range recs {
		var x struct{ Timestamp float64 }
		json.Unmarshal(r, &x)
		if x.Timestamp >= t0 && x.Timestamp <= t0+60 {
			inWin++
		}
	}
	if page.Total != inWin || page.Count != 25 || len(page.Raw) != 25 || page.Pages != (inWin+24)/25 ||
		page.Arguments["order"] != "desc" || page.Arguments["rows_per_page"] != float64(25) {
		t.Errorf("page: total %d (want %d) count %d pages %d args %v", page.Total, inWin, page.Count, page.Pages, page.Arguments)
	}
}

func TestProgressLog(t *testing.T) {
	recs, _ := history(t, 1500, 3600, 150)
	srv := dgtest.New(recs, dgtest.Options{FailEvery: 7, TruncateEvery: 5})
	defer srv.Close()
	c := newClient(t, srv)
	start, end := span3600()
	var last Progress
	c.OnProgress = func(p Progress) { last = p }
	if _, err := collectAll(t, c, start, end); err != nil {
		t.Fatal(err)
	}
	t.Logf("progress %+v, %d requests", last, len(srv.Requests()))
	if last.WindowsDone != last.Windows || last.ETA != 0 || last.Rate <= 0 {
		t.Errorf("final progress %+v", last)
	}
}
