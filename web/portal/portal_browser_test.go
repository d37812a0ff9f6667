package portal_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"statscache/cmd/statscache/kojitest"
	"statscache/engine"
	"statscache/engine/filesource"
	"statscache/engine/sqlstore"
	"statscache/luaapi"
)

// Two models the shipped scripts do not have: one whose table stays empty
// (no message has its topic), and one with a layout.
var extraScripts = map[string]string{
	"never-seen.lua": `
model {
  name = "never-seen",
  summary = "Messages on a topic nobody publishes",
  description = [[Counts messages on a topic that does not exist, so that its table stays empty.]],
  interval = "1h",
  topics = {"org.example.nothing."},
  columns = {{name = "volume", type = "integer", not_null = true}},
}
local c = counter()
function process(msg) c:inc(bucket(msg.time)) end
function update(db) for ts, n in c:drain() do db:add{timestamp = ts, volume = n} end end
`,
	"events-by-category.lua": `
model {
  name = "events-by-category",
  summary = "Messages per category per day, grouped by a layout",
  description = [[Messages per day and category; its layout groups the categories.]],
  interval = "1d",
  columns = {
    {name = "category", type = "text", key = true, index = true},
    {name = "volume", type = "integer", not_null = true},
  },
  layout = {
    title = "Bus activity",
    groups = {
      {name = "packaging", title = "Packaging", categories = {
        {category = "buildsys", title = "Koji builds"}, {category = "bodhi", title = "Updates"}, {category = "pkgdb", title = "Package database"}}},
      {name = "collaboration", title = "Collaboration", categories = {"pagure", "github", "meetbot"}},
    },
  },
}
local c = counter()
function process(msg) c:inc(bucket(msg.time), msg.category) end
function update(db) for ts, cat, n in c:drain() do db:add{timestamp = ts, category = cat, volume = n} end end
`,
}

// replayedDB runs the real pipeline: the shipped scripts (and extra ones)
// over the bundled sample of bus messages, into a fresh SQLite file. The
// engine is returned for liveTraffic.
func replayedDB(t *testing.T) (*sqlstore.DB, *engine.Engine) {
	t.Helper()
	ctx := context.Background()
	quiet := slog.New(slog.DiscardHandler)
	// build-durations asks a Koji stand-in, over loopback HTTP.
	koji := httptest.NewServer(kojitest.New(kojitest.Options{}))
	t.Cleanup(koji.Close)
	services := &luaapi.HTTPServices{URLs: map[string]string{"koji": koji.URL + "/kojihub"}}
	models, errs := luaapi.LoadDir("../../scripts", luaapi.Options{Logger: quiet, Services: services})
	extraDir := t.TempDir()
	for name, src := range extraScripts {
		if err := os.WriteFile(filepath.Join(extraDir, name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	more, errs2 := luaapi.LoadDir(extraDir, luaapi.Options{Logger: quiet})
	for _, err := range append(errs, errs2...) {
		t.Fatalf("load scripts: %v", err)
	}
	models = append(models, more...)
	db, err := sqlstore.Open(ctx, filepath.Join(t.TempDir(), "stats.db"), sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	eng := engine.New(db, engine.Config{Logger: quiet})
	for _, m := range models {
		if err := eng.Add(ctx, m); err != nil {
			t.Fatalf("add %s: %v", m.Spec().Ident, err)
		}
	}
	err = (&filesource.Reader{}).ReadFile(ctx, "../../scripts/sample/messages.jsonl", func(b filesource.Batch) error {
		if len(b.Rejects) > 0 {
			if err := db.AddRejects(ctx, b.Rejects); err != nil {
				return err
			}
		}
		_, err := eng.Ingest(ctx, b.Messages)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Run(ctx, false); err != nil {
		t.Fatal(err)
	}
	return db, eng
}

// sampleMessages reads the bundled sample, the templates of liveTraffic.
func sampleMessages(t *testing.T) []*engine.Message {
	t.Helper()
	var out []*engine.Message
	err := (&filesource.Reader{}).ReadFile(context.Background(), "../../scripts/sample/messages.jsonl", func(b filesource.Batch) error {
		out = append(out, b.Messages...)
		return nil
	})
	if err != nil || len(out) == 0 {
		t.Fatalf("read the sample: %d messages, %v", len(out), err)
	}
	return out
}

// liveTraffic keeps the daemon's pipeline running on messages of now, as
// on the bus: it journals the last 70 minutes at one message every 5 s
// (so that the dashboard's last hour is full), then one to three messages
// every 200 ms until the test ends, while the engine follows the journal.
// The messages are the sample's, with new ids and times.
func liveTraffic(t *testing.T, eng *engine.Engine) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	templates := sampleMessages(t)
	n := 0
	mk := func(at time.Time) *engine.Message {
		tm := templates[n%len(templates)]
		n++
		key := fmt.Sprintf("live-%07d", n)
		return &engine.Message{ID: "2026-" + key, Key: key, Topic: tm.Topic, TimeUS: at.UnixMicro(), Raw: tm.Raw}
	}
	now := time.Now()
	var back []*engine.Message
	for at := now.Add(-70 * time.Minute); at.Before(now.Add(-time.Second)); at = at.Add(5 * time.Second) {
		back = append(back, mk(at))
	}
	if _, err := eng.Ingest(ctx, back); err != nil {
		t.Fatal(err)
	}
	ran := make(chan error, 1)
	go func() { ran <- eng.Run(ctx, true) }()
	fed := make(chan error, 1)
	go func() {
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				fed <- nil
				return
			case <-tick.C:
			}
			var batch []*engine.Message
			for i := 0; i <= n%3; i++ {
				batch = append(batch, mk(time.Now()))
			}
			if _, err := eng.Ingest(ctx, batch); err != nil && ctx.Err() == nil {
				fed <- err
				return
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-fed; err != nil {
			t.Errorf("live traffic: %v", err)
		}
		if err := <-ran; err != nil {
			t.Errorf("engine: %v", err)
		}
	})
}

// allRows reads every row of a model up to a listing's end (the end the
// page showed, from its data-end), ascending, as the API lists them.
func allRows(t *testing.T, db *sqlstore.DB, ident, end string) (engine.RowPage, []map[string]any) {
	t.Helper()
	e, err := strconv.ParseInt(end, 10, 64)
	if err != nil {
		t.Fatalf("%s: end %q: %v", ident, end, err)
	}
	page, err := db.Rows(context.Background(), ident, engine.RowQuery{End: e})
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	for _, r := range page.Rows {
		m := map[string]any{}
		for i, c := range page.Columns {
			m[c] = r[i]
		}
		out = append(out, m)
	}
	return page, out
}

// num reads an int64 or float64 value of a row.
func num(v any) float64 {
	switch x := v.(type) {
	case int64:
		return float64(x)
	case float64:
		return x
	}
	return math.NaN()
}

// chartPoint is a drawn point of the model page's chart.
type chartPoint struct {
	Series string  `json:"s"`
	T      float64 `json:"t"`
	V      float64 `json:"v"`
}

func chartPoints(b *browser) []chartPoint {
	var pts []chartPoint
	b.js(&pts, `return Array.prototype.map.call(document.querySelectorAll('#chart circle.pt'), function (c) {
		return {s: c.getAttribute('data-series'), t: +c.getAttribute('data-t'), v: +c.getAttribute('data-v')}; })`)
	return pts
}

// phoneFits checks that the page is no wider than a phone's viewport.
func phoneFits(t *testing.T, b *browser) {
	t.Helper()
	var w struct {
		Doc  int `json:"doc"`
		View int `json:"view"`
	}
	b.js(&w, `return {doc: document.documentElement.scrollWidth, view: window.innerWidth}`)
	if w.View == 0 || w.Doc > w.View {
		t.Errorf("%s is %d pixels wide in a %d-pixel viewport", b.jsString("return location.href"), w.Doc, w.View)
	}
}

// testOut is the folder of the screenshots: $STATSCACHE_TEST_OUT/portal,
// or a temporary folder.
func testOut(t *testing.T) string {
	dir := t.TempDir()
	if out := os.Getenv("STATSCACHE_TEST_OUT"); out != "" {
		dir = filepath.Join(out, "portal")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("screenshots and the chromedriver log are in %s", dir)
	return dir
}

// pageCount asks the API how many rows a selection has (pages of one row).
func rowCount(t *testing.T, base, ident string, q url.Values) int {
	t.Helper()
	if q == nil {
		q = url.Values{}
	}
	q.Set("rows_per_page", "1")
	res, err := http.Get(base + "/api/" + url.PathEscape(ident) + "?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	n, err := strconv.Atoi(res.Header.Get("X-Link-Count"))
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("row count of %s: %d %q", ident, res.StatusCode, res.Header.Get("X-Link-Count"))
	}
	return n
}

// checkPage asserts that everything the page loaded came from origin and
// that the console shows no error, except those matching allowed.
func checkPage(t *testing.T, b *browser, origin string, allowed ...string) {
	t.Helper()
	var foreign []string
	b.js(&foreign, `var origin = arguments[0];
		return performance.getEntriesByType('navigation').concat(performance.getEntriesByType('resource'))
			.map(function (e) { return e.name; })
			.filter(function (n) { return n.indexOf(origin + '/') !== 0; });`, origin)
	if len(foreign) > 0 {
		t.Errorf("%s requested other hosts: %v", b.jsString("return location.href"), foreign)
	}
	var n int
	b.js(&n, "return performance.getEntriesByType('resource').length")
	if n == 0 {
		t.Errorf("%s: no resource entry recorded", b.jsString("return location.href"))
	}
	for _, e := range b.consoleLog() {
		if e.Level != "SEVERE" && e.Level != "WARNING" {
			continue
		}
		ok := false
		for _, a := range allowed {
			if strings.Contains(e.Message, a) {
				ok = true
			}
		}
		if !ok {
			t.Errorf("console %s on %s: %s", e.Level, b.jsString("return location.href"), e.Message)
		}
	}
}

// TestBrowser drives headless Chromium through every page, against a
// daemon holding replayed data and against an empty one.
func TestBrowser(t *testing.T) {
	chromium, driver, err := browserBinaries()
	if err != nil {
		if os.Getenv("STATSCACHE_SKIP_BROWSER") == "1" {
			t.Skipf("STATSCACHE_SKIP_BROWSER=1: %v", err)
		}
		t.Fatalf("%v (set STATSCACHE_SKIP_BROWSER=1 to skip the browser test)", err)
	}
	out := testOut(t)
	b := startBrowser(t, chromium, driver, out)

	t.Run("empty", func(t *testing.T) {
		b.t = t
		srv := httptest.NewServer(site(emptyDB(t)))
		defer srv.Close()
		b.open(srv.URL + "/")
		b.wait("the getting-started page", `return location.pathname === '/web/getting-started' && !!document.querySelector('#popularity-source')`)
		checkPage(t, b, srv.URL)

		b.open(srv.URL + "/web/dashboard")
		b.wait("the empty dashboard", `var e = document.querySelector('.placeholder.empty'); return !!e && /No models yet/.test(e.textContent)`)
		b.screenshot("empty-dashboard", false)
		checkPage(t, b, srv.URL)

		b.open(srv.URL + "/web/reference")
		b.wait("the model list", `return /no models yet/.test(document.querySelector('#example-model').textContent)`)
		b.click(".example button")
		b.wait("the first example's answer", `return /HTTP 200/.test(document.querySelector('.example .out').textContent)`)
		checkPage(t, b, srv.URL)

		b.open(srv.URL + "/web/dashboard/volume-1m")
		b.wait("the missing model message", `return document.body.dataset.modelReady === 'error' && /There is no model called/.test(document.querySelector('#banner').textContent)`)
		b.screenshot("empty-missing-model", false)
		checkPage(t, b, srv.URL, "404 (Not Found)")
	})

	t.Run("live", func(t *testing.T) {
		b.t = t
		db, eng := replayedDB(t)
		srv := httptest.NewServer(site(db))
		defer srv.Close()
		liveTraffic(t, eng)
		models, err := db.ListModels(context.Background())
		if err != nil {
			t.Fatal(err)
		}

		// Getting started.
		b.open(srv.URL + "/")
		b.wait("the getting-started page", `return location.pathname === '/web/getting-started'`)
		if !b.jsBool(`return /name = "popularity"/.test(document.querySelector('#popularity-source').textContent)`) {
			t.Error("the getting-started page does not show the popularity model")
		}
		b.screenshot("getting-started", true)
		checkPage(t, b, srv.URL)

		// The dashboard fills in, and refreshes by itself.
		b.open(srv.URL + "/web/dashboard?refresh=1")
		b.wait("every card filled in", `var cs = document.querySelectorAll('.card');
			return cs.length === arguments[0] && Array.prototype.every.call(cs, function (c) { return c.querySelector('svg.spark, .spark-empty') && c.querySelector('.stats div'); })`, len(models))
		if n := b.jsInt(`return document.querySelectorAll('.card svg.spark path, .card svg.spark rect').length`); n == 0 {
			t.Error("no sparkline drawn")
		}
		if !b.jsBool(`return /No rows yet/.test(document.querySelector('.card[data-ident="never-seen-1h"]').textContent)`) {
			t.Error("the empty model's card does not say it has no rows")
		}
		scriptsSeen := map[string]bool{}
		for _, m := range models {
			scriptsSeen[m.Spec.Script] = true
		}
		if n := b.jsInt(`return document.querySelectorAll('.group').length`); n != len(scriptsSeen) {
			t.Errorf("%d groups of cards, want one per script (%d)", n, len(scriptsSeen))
		}
		stamp := b.jsString(`return document.body.dataset.refreshed`)
		b.wait("a refresh by polling", `return document.body.dataset.refreshed !== arguments[0]`, stamp)

		// The header: the bus rate over the last hour of complete minutes,
		// as the API's volume-1m rows give it.
		b.wait("the bus rate", `var r = document.querySelector('#bus-rate'); return r.hasAttribute('data-total') && !!document.querySelector('#bus-spark svg')`)
		var rate struct {
			Total, From, To float64
			Text, Label     string
		}
		b.js(&rate, `var r = document.querySelector('#bus-rate');
			return {Total: +r.dataset.total, From: +r.dataset.from, To: +r.dataset.to, Text: r.textContent, Label: document.querySelector('#bus-rate-label').textContent}`)
		if rate.To-rate.From != 3600 || math.Mod(rate.To, 60) != 0 {
			t.Errorf("the bus rate covers (%v, %v], want one hour of whole minutes", rate.From, rate.To)
		}
		from, to := strconv.FormatFloat(rate.From+60, 'f', -1, 64), strconv.FormatFloat(rate.To, 'f', -1, 64)
		hour := 0.0
		if _, rows := allRowsRange(t, srv.URL, "volume-1m", from, to); len(rows) > 0 {
			for _, r := range rows {
				hour += r["volume"].(float64)
			}
		}
		if hour == 0 || rate.Total != hour || rate.Text != strconv.FormatFloat(math.Round(hour/60*10)/10, 'f', -1, 64) {
			t.Errorf("bus rate %q (total %v), but volume-1m holds %v messages in (%v, %v]", rate.Text, rate.Total, hour, rate.From, rate.To)
		}
		if !strings.Contains(rate.Label, "per minute") || !strings.Contains(rate.Label, "60 complete minutes") {
			t.Errorf("bus rate label %q", rate.Label)
		}
		// Facts the same for every model are in the header, not on every card.
		if !b.jsBool(`return /Processed[\s\S]*messages/.test(document.querySelector('#bus-facts').textContent) && !Array.prototype.some.call(document.querySelectorAll('.card .stats dt'), function (d) { return d.textContent === 'Processed'; })`) {
			t.Error("the header does not show the journal, or every card still repeats Processed")
		}
		// A count's headline is its last complete bucket, labelled with its
		// span; the bucket still filling is marked partial.
		var head struct {
			Complete float64
			Value    string
			Text     string
		}
		b.js(&head, `var c = document.querySelector('.card[data-ident="volume-1m"] .latest');
			return {Complete: +c.dataset.complete, Value: c.querySelector('.value').textContent, Text: c.textContent}`)
		_, bucket := allRowsRange(t, srv.URL, "volume-1m", strconv.FormatFloat(head.Complete, 'f', -1, 64), strconv.FormatFloat(head.Complete, 'f', -1, 64))
		want := "0"
		if len(bucket) == 1 {
			want = strconv.FormatFloat(bucket[0]["volume"].(float64), 'f', -1, 64)
		}
		if head.Value != want || !strings.Contains(head.Text, "last complete minute") || !strings.Contains(head.Text, "partial") {
			t.Errorf("volume-1m headline %q for the bucket ending %v (API: %s): %q", head.Value, head.Complete, want, head.Text)
		}
		b.screenshot("dashboard", true)
		b.typeText("#filter", "by-topic")
		b.wait("the filter", `return Array.prototype.filter.call(document.querySelectorAll('.card'), function (c) { return c.offsetParent !== null; }).length === 3`)
		b.screenshot("dashboard-filtered", false)
		checkPage(t, b, srv.URL)

		// Open a model from its card.
		const ident = "volume-by-topic-1s"
		if total := rowCount(t, srv.URL, ident, nil); total <= 200 {
			t.Fatalf("%s has %d rows; the test needs more than 200", ident, total)
		}
		b.click(`.card[data-ident="` + ident + `"] h3 a`)
		b.wait("the model page", `return location.pathname === '/web/dashboard/`+ident+`' && document.body.dataset.modelReady === '1'`)
		b.wait("the chart and the first page", `return document.querySelectorAll('#chart svg .series path').length > 0 &&
			document.querySelectorAll('#chart circle.pt').length > 0 && document.body.dataset.rows === '100' && document.body.dataset.chart === 'ready'`)
		end := b.jsString(`return document.body.dataset.end`)
		total := rowCount(t, srv.URL, ident, url.Values{"end": {end}})
		if got := b.jsString(`return document.querySelector('#row-count').textContent`); got != fmt.Sprintf("100 of %s rows", fmtThousands(total)) {
			t.Errorf("row count %q, want 100 of %d rows (the listing's end %s)", got, total, end)
		}
		// No point of a count's chart exceeds the API's value for its bucket
		// (a sum of several rows would).
		_, rows := allRows(t, db, ident, b.jsString(`return document.body.dataset.chartEnd`))
		api := map[string]float64{}
		for _, r := range rows {
			api[fmt.Sprintf("%v|%v", r["topic"], r["timestamp"])] += num(r["volume"])
		}
		pts := chartPoints(b)
		for _, p := range pts {
			if v, ok := api[fmt.Sprintf("%v|%v", p.Series, p.T)]; !ok || p.V > v {
				t.Errorf("%s chart: %s at %v is %v, the API says %v (present %v)", ident, p.Series, p.T, p.V, v, ok)
			}
		}
		if b.jsString(`return document.querySelector('#chart').dataset.agg`) != "sum" {
			t.Errorf("%s: the chart does not combine by sum", ident)
		}
		b.screenshot("model", true)

		// Scroll to the end of the table: a second page loads.
		b.js(nil, `document.querySelector('#sentinel').scrollIntoView()`)
		b.wait("the second page", `return document.body.dataset.rows === '200'`)
		b.screenshot("model-scrolled", false)
		b.js(nil, `window.scrollTo(0, 0)`)

		// Change the range: the last day of data.
		b.click(`[data-range="86400"]`)
		b.wait("the range in the URL", `var p = new URLSearchParams(location.search); return p.has('start') && p.has('stop') && document.body.dataset.total !== undefined`)
		q, err := url.ParseQuery(strings.TrimPrefix(b.jsString("return location.search"), "?"))
		if err != nil {
			t.Fatal(err)
		}
		if start, stop := q.Get("start"), q.Get("stop"); !(parseF(stop)-parseF(start) == 86400-1) {
			t.Errorf("the last day of 1 s buckets is start=%s stop=%s, want 86400 whole buckets (stop - start = 86399)", start, stop)
		}
		inDay := rowCount(t, srv.URL, ident, url.Values{"start": {q.Get("start")}, "stop": {q.Get("stop")}, "end": {b.jsString(`return document.body.dataset.end`)}})
		if inDay == 0 || inDay >= total {
			t.Errorf("the last day has %d of %d rows", inDay, total)
		}
		b.wait("the table of the last day", `return document.body.dataset.total === arguments[0] && +document.body.dataset.rows === Math.min(100, +arguments[0])`, strconv.Itoa(inDay))
		b.wait("the chart of the last day", `return document.body.dataset.chart === 'ready' && document.querySelectorAll('#chart circle.pt').length > 0`)
		// Oldest first.
		b.js(nil, `var s = document.querySelector('#order'); s.value = 'asc'; s.dispatchEvent(new Event('change'))`)
		b.wait("ascending order", `var ts = Array.prototype.map.call(document.querySelectorAll('#rows tbody tr td:first-child'), function (td) { return +td.title; });
			return new URLSearchParams(location.search).get('order') === 'asc' && +document.body.dataset.rows >= 1 && ts.length >= 1 && ts[0] <= ts[ts.length - 1]`)
		b.screenshot("model-last-day", true)

		// Drill down: click a point; the range narrows to its bucket.
		b.click(`[data-range="all"]`)
		// At least the first page of the whole range (infinite scroll may already
		// have fetched the next one if the end of the table is in view).
		b.wait("all rows again", `return !location.search.includes('start') && +document.body.dataset.rows >= 100 && document.body.dataset.chart === 'ready' && document.querySelectorAll('#chart circle.pt:not(.partial)').length > 0`)
		// A point in the middle of a complete bucket that no other point covers.
		point := b.jsString(`document.querySelector('#chart').scrollIntoView({block: 'center'});
			var ps = Array.prototype.slice.call(document.querySelectorAll('#chart circle.pt:not(.partial)'));
			var box = document.querySelector('#chart').getBoundingClientRect(), mid = box.left + box.width / 2;
			var x = function (c) { var r = c.getBoundingClientRect(); return Math.abs(r.left + r.width / 2 - mid); };
			ps.sort(function (a, b) { return x(a) - x(b); });
			for (var i = 0; i < ps.length; i++) {
				var r = ps[i].getBoundingClientRect();
				if (document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2) === ps[i]) return ps[i].getAttribute('data-t');
			}
			return '';`)
		if point == "" {
			t.Fatal("every chart point is covered by another")
		}
		tp, _ := strconv.ParseFloat(point, 64)
		b.click(fmt.Sprintf(`#chart circle.pt[data-t="%s"]`, point))
		b.wait("the drill-down", `return new URLSearchParams(location.search).get('stop') === arguments[0]`, point)
		start, _ := strconv.ParseFloat(b.jsString(`return new URLSearchParams(location.search).get('start')`), 64)
		if math.Abs(start-(tp-1+0.001)) > 1e-6 {
			t.Errorf("drill-down start %v, want the bucket's start %v (+1 ms)", start, tp-1)
		}
		inBucket := rowCount(t, srv.URL, ident, url.Values{"start": {strconv.FormatFloat(start, 'f', -1, 64)}, "stop": {point}})
		b.wait("the bucket's rows", `var t = arguments[1]; return document.body.dataset.tableDone === '1' && document.body.dataset.rows === arguments[0] &&
			Array.prototype.every.call(document.querySelectorAll('#rows tbody tr td:first-child'), function (td) { return td.title === t; })`,
			strconv.Itoa(inBucket), point)
		if inBucket == 0 || inBucket >= total {
			t.Errorf("the bucket holds %d rows", inBucket)
		}
		b.screenshot("model-drilldown", true)
		// Back undoes the drill-down.
		b.must(b.do(http.MethodPost, "/back", map[string]any{}, nil))
		b.wait("the range before the drill-down", `return !location.search.includes('stop') && +document.body.dataset.rows >= 100`)
		checkPage(t, b, srv.URL)

		// Paging a table while rows are added: volume-1s gains a row every
		// second. Scrolled to its end, the table shows each row once, as
		// many as the count it announced, which the API confirms.
		b.open(srv.URL + "/web/dashboard/volume-1s")
		b.wait("the table", `return document.body.dataset.modelReady === '1' && +document.body.dataset.rows >= 100`)
		time.Sleep(1500 * time.Millisecond) // rows are committed meanwhile
		b.wait("the end of the table", `document.querySelector('#sentinel').scrollIntoView(); return document.body.dataset.tableDone === '1'`)
		var seen struct {
			Rows, Unique, Total int
			End                 string
		}
		b.js(&seen, `var ts = Array.prototype.map.call(document.querySelectorAll('#rows tbody tr td:first-child'), function (td) { return td.title; });
			return {Rows: ts.length, Unique: new Set(ts).size, Total: +document.body.dataset.total, End: document.body.dataset.end}`)
		if seen.Rows != seen.Unique || seen.Rows != seen.Total || seen.Total != rowCount(t, srv.URL, "volume-1s", url.Values{"end": {seen.End}}) {
			t.Errorf("volume-1s paged while it grew: %d rows shown, %d distinct, count %d (API at its end: %d)", seen.Rows, seen.Unique, seen.Total,
				rowCount(t, srv.URL, "volume-1s", url.Values{"end": {seen.End}}))
		}
		if now := rowCount(t, srv.URL, "volume-1s", nil); now <= seen.Total {
			t.Errorf("volume-1s did not grow while the table was read (%d rows, %d shown): the check proves nothing", now, seen.Total)
		}
		checkPage(t, b, srv.URL)

		// Quick ranges are whole buckets: the last hour of volume-1m is 60
		// one-minute buckets; the interval links are ordered by length and
		// carry the range.
		b.open(srv.URL + "/web/dashboard/volume-by-category-1m")
		b.wait("the model page", `return document.body.dataset.modelReady === '1' && !document.querySelector('#siblings').hidden`)
		b.click(`[data-range="3600"]`)
		b.wait("the last hour", `var p = new URLSearchParams(location.search); return p.has('start') && document.querySelector('[data-range="3600"]').classList.contains('active')`)
		q, _ = url.ParseQuery(strings.TrimPrefix(b.jsString("return location.search"), "?"))
		if d := parseF(q.Get("stop")) - parseF(q.Get("start")); d != 3540 || math.Mod(parseF(q.Get("stop")), 60) != 0 {
			t.Errorf("last hour of 1m buckets: start=%s stop=%s, want 60 whole buckets", q.Get("start"), q.Get("stop"))
		}
		var chips []struct{ Text, Href string }
		b.wait("interval links with the range", `return Array.prototype.every.call(document.querySelectorAll('#siblings a.chip'), function (a) { return a.href.indexOf(location.search) > 0; })`)
		b.js(&chips, `return Array.prototype.map.call(document.querySelectorAll('#siblings .chip'), function (a) { return {Text: a.textContent, Href: a.getAttribute('href') || ''}; })`)
		var order []string
		for _, c := range chips {
			order = append(order, c.Text)
		}
		if strings.Join(order, " ") != "1s 15s 1m 1h 1d" {
			t.Errorf("interval links %q, want ordered by length", order)
		}
		b.wait("the chart of the last hour", `return document.body.dataset.chart === 'ready' && document.querySelectorAll('#chart circle.pt.partial').length > 0`)
		if n := b.jsInt(`var xs = new Set(); document.querySelectorAll('#chart circle.pt').forEach(function (c) { xs.add(c.getAttribute('data-t')); }); return xs.size`); n > 60 {
			t.Errorf("the last hour of 1m buckets charts %d buckets", n)
		}
		b.screenshot("model-last-hour", true)
		checkPage(t, b, srv.URL)

		// A model without an interval, with a series per user, whose
		// references are running totals (aggregate "last"): the chart and
		// the legend show the API's last row, never a sum.
		b.open(srv.URL + "/web/dashboard/popularity")
		b.wait("the popularity chart", `return document.body.dataset.modelReady === '1' && document.body.dataset.chart === 'ready' &&
			document.querySelectorAll('#chart svg .series path').length > 1 && +document.body.dataset.rows > 0`)
		if agg := b.jsString(`return document.querySelector('#chart').dataset.agg`); agg != "last" {
			t.Errorf("popularity's chart combines by %q, want last", agg)
		}
		_, prow := allRows(t, db, "popularity", b.jsString(`return document.body.dataset.chartEnd`))
		lastOf, maxAt := map[string]float64{}, map[string]float64{}
		for _, r := range prow {
			u, v := r["username"].(string), num(r["references"])
			lastOf[u] = v
			k := fmt.Sprintf("%s|%v", u, r["timestamp"])
			maxAt[k] = math.Max(maxAt[k], v)
		}
		var legend []struct {
			Name  string
			Total float64
		}
		b.js(&legend, `return Array.prototype.map.call(document.querySelectorAll('#legend span[data-series]'), function (s) { return {Name: s.dataset.series, Total: +s.dataset.total}; })`)
		if len(legend) == 0 {
			t.Error("popularity: no legend")
		}
		for _, l := range legend {
			if l.Total != lastOf[l.Name] {
				t.Errorf("popularity legend: %s %v, the API's last row says %v", l.Name, l.Total, lastOf[l.Name])
			}
		}
		for _, p := range chartPoints(b) {
			if v, ok := maxAt[fmt.Sprintf("%s|%v", p.Series, p.T)]; !ok || p.V > v {
				t.Errorf("popularity chart: %s at %v is %v, above the API's rows (%v)", p.Series, p.T, p.V, v)
			}
		}
		b.screenshot("model-popularity", true)
		checkPage(t, b, srv.URL)

		// A model whose table is empty.
		b.open(srv.URL + "/web/dashboard/never-seen-1h")
		b.wait("the empty model's messages", `return document.body.dataset.tableDone === '1' &&
			/no rows yet/.test(document.querySelector('#chart-status').textContent) && /no rows yet/.test(document.querySelector('#sentinel').textContent)`)
		b.screenshot("model-empty", false)
		checkPage(t, b, srv.URL)

		// A model with a layout: its table is grouped.
		b.open(srv.URL + "/web/dashboard/events-by-category-1d")
		b.wait("the grouped table", `return document.body.dataset.rows === '100' && document.querySelectorAll('#rows tr.group-head').length >= 2 &&
			document.querySelectorAll('#rows tbody[data-category="pagure"] tr').length > 1`)
		if !b.jsBool(`return /Koji builds/.test(document.querySelector('#rows').textContent) && !document.querySelector('#layout-note').hidden`) {
			t.Error("the layout's category titles are not shown")
		}
		b.screenshot("model-layout", true)
		checkPage(t, b, srv.URL)

		// A missing model.
		b.open(srv.URL + "/web/dashboard/no-such-model")
		b.wait("the missing model message", `return /There is no model called/.test(document.querySelector('#banner').textContent)`)
		checkPage(t, b, srv.URL, "404 (Not Found)")

		// The reference, with live examples; its layout example uses a
		// model that has a layout.
		b.open(srv.URL + "/web/reference")
		b.wait("the examples", `return document.querySelector('#example-model').value === 'volume-by-category-1h' && document.querySelectorAll('.example input').length > 10`)
		b.click(`.example[data-url="/api/{ident}?rows_per_page=3"] button`)
		b.wait("a feed example", `var o = document.querySelector('.example[data-url="/api/{ident}?rows_per_page=3"] .out').textContent; return /HTTP 200/.test(o) && /X-Link-Count/.test(o) && /"category"/.test(o)`)
		b.click(`.example[data-url="/api/{ident}?rows_per_page=500"] button`)
		b.wait("an error example", `return /HTTP 400[\s\S]*rows_per_page/.test(document.querySelector('.example[data-url="/api/{ident}?rows_per_page=500"] .out').textContent)`)
		b.wait("the layout example's model", `return !/volume-by-category-1h/.test(document.querySelector('.example[data-needs="layout"] input').value)`)
		b.click(`.example[data-needs="layout"] button`)
		b.wait("the layout example", `return /HTTP 200/.test(document.querySelector('.example[data-needs="layout"] .out').textContent)`)
		b.screenshot("reference", false)
		checkPage(t, b, srv.URL, "400 (Bad Request)")

		// A phone: every page fits 390 pixels, nothing scrolls sideways.
		b.resize(390, 844)
		for _, page := range []struct{ path, ready, shot string }{
			{"/web/getting-started", `return !!document.querySelector('#popularity-source')`, "phone-getting-started"},
			{"/web/dashboard", `return document.querySelectorAll('.card svg.spark').length > 0 && !!document.querySelector('#bus-spark svg')`, "phone-dashboard"},
			{"/web/dashboard/volume-by-topic-1s", `return document.body.dataset.chart === 'ready' && +document.body.dataset.rows > 0`, "phone-model"},
			{"/web/dashboard/popularity", `return document.body.dataset.chart === 'ready' && +document.body.dataset.rows > 0`, "phone-popularity"},
			{"/web/dashboard/events-by-category-1d", `return +document.body.dataset.rows > 0`, "phone-layout"},
			{"/web/reference", `return document.querySelectorAll('.example input').length > 10 && document.querySelector('#example-model').value !== ''`, "phone-reference"},
		} {
			b.open(srv.URL + page.path)
			b.wait(page.shot, page.ready)
			phoneFits(t, b)
			b.screenshot(page.shot, false)
		}
		// The value column of a model's table stays on screen.
		b.open(srv.URL + "/web/dashboard/volume-by-topic-1s")
		b.wait("the table", `return +document.body.dataset.rows > 0`)
		if !b.jsBool(`var td = document.querySelector('#rows tbody tr td.num'); var r = td.getBoundingClientRect(); return r.right <= window.innerWidth && r.width > 0`) {
			t.Error("on a phone, the value column of the table is off screen")
		}
		b.resize(1280, 900)
		checkPage(t, b, srv.URL)
	})
}

// allRowsRange reads every row of a selection through the API, following
// the Link header.
func allRowsRange(t *testing.T, base, ident, start, stop string) (int, []map[string]any) {
	t.Helper()
	next := base + "/api/" + url.PathEscape(ident) + "?" + url.Values{"start": {start}, "stop": {stop}, "order": {"asc"}}.Encode()
	var out []map[string]any
	pages := 0
	for next != "" {
		res, err := http.Get(next)
		if err != nil {
			t.Fatal(err)
		}
		var rows []map[string]any
		err = json.NewDecoder(res.Body).Decode(&rows)
		res.Body.Close()
		if err != nil || res.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d %v", next, res.StatusCode, err)
		}
		out = append(out, rows...)
		pages++
		next = ""
		if m := nextLink.FindStringSubmatch(res.Header.Get("Link")); m != nil {
			next = base + m[1]
		}
	}
	return pages, out
}

var nextLink = regexp.MustCompile(`<([^>]*)>; rel="next"`)

func parseF(s string) float64 {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return math.NaN()
	}
	return f
}

// fmtThousands writes n as the portal does (1,234).
func fmtThousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
