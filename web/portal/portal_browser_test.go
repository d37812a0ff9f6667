package portal_test

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

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
// over the bundled sample of bus messages, into a fresh SQLite file.
func replayedDB(t *testing.T) *sqlstore.DB {
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
	return db
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

	t.Run("replayed", func(t *testing.T) {
		b.t = t
		db := replayedDB(t)
		srv := httptest.NewServer(site(db))
		defer srv.Close()
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
		if n := b.jsInt(`return document.querySelectorAll('.card svg.spark path').length`); n == 0 {
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
		b.screenshot("dashboard", true)
		b.typeText("#filter", "by-topic")
		b.wait("the filter", `return Array.prototype.filter.call(document.querySelectorAll('.card'), function (c) { return c.offsetParent !== null; }).length === 3`)
		b.screenshot("dashboard-filtered", false)
		checkPage(t, b, srv.URL)

		// Open a model from its card.
		const ident = "volume-by-topic-1s"
		total := rowCount(t, srv.URL, ident, nil)
		if total <= 200 {
			t.Fatalf("%s has %d rows; the test needs more than 200", ident, total)
		}
		b.click(`.card[data-ident="` + ident + `"] h3 a`)
		b.wait("the model page", `return location.pathname === '/web/dashboard/`+ident+`' && document.body.dataset.modelReady === '1'`)
		b.wait("the chart and the first page", `return document.querySelectorAll('#chart svg .series path').length > 0 &&
			document.querySelectorAll('#chart circle.pt').length > 0 && document.body.dataset.rows === '100'`)
		if got := b.jsString(`return document.querySelector('#row-count').textContent`); got != fmt.Sprintf("100 of %d rows", total) {
			t.Errorf("row count %q, want 100 of %d rows", got, total)
		}
		b.screenshot("model", true)

		// Scroll to the end of the table: a second page loads.
		b.js(nil, `document.querySelector('#sentinel').scrollIntoView()`)
		b.wait("the second page", `return document.body.dataset.rows === '200'`)
		b.screenshot("model-scrolled", false)
		b.js(nil, `window.scrollTo(0, 0)`)

		// Change the range: the last day of data.
		b.click(`[data-range="86400"]`)
		b.wait("the range in the URL", `var p = new URLSearchParams(location.search); return p.has('start') && p.has('stop')`)
		q, err := url.ParseQuery(strings.TrimPrefix(b.jsString("return location.search"), "?"))
		if err != nil {
			t.Fatal(err)
		}
		inDay := rowCount(t, srv.URL, ident, url.Values{"start": {q.Get("start")}, "stop": {q.Get("stop")}})
		if inDay == 0 || inDay >= total {
			t.Errorf("the last day has %d of %d rows", inDay, total)
		}
		b.wait("the table of the last day", `return document.body.dataset.tableDone === '1' && document.body.dataset.rows === arguments[0]`, strconv.Itoa(min(inDay, 100)))
		b.wait("the chart of the last day", `return document.body.dataset.chart === 'ready' && document.querySelectorAll('#chart circle.pt').length > 0`)
		// Oldest first.
		b.js(nil, `var s = document.querySelector('#order'); s.value = 'asc'; s.dispatchEvent(new Event('change'))`)
		b.wait("ascending order", `var ts = Array.prototype.map.call(document.querySelectorAll('#rows tbody tr td:first-child'), function (td) { return +td.title; });
			return new URLSearchParams(location.search).get('order') === 'asc' && document.body.dataset.tableDone === '1' && ts.length >= 1 && ts[0] <= ts[ts.length - 1]`)
		b.screenshot("model-last-day", true)

		// Drill down: click a point; the range narrows to its bucket.
		b.click(`[data-range="all"]`)
		// At least the first page of the whole range (infinite scroll may already
		// have fetched the next one if the end of the table is in view).
		b.wait("all rows again", `return !location.search.includes('start') && +document.body.dataset.rows >= 100 && document.body.dataset.chart === 'ready' && document.querySelectorAll('#chart circle.pt').length > 0`)
		// A point in the middle that no other point covers.
		point := b.jsString(`document.querySelector('#chart').scrollIntoView({block: 'center'});
			var ps = Array.prototype.slice.call(document.querySelectorAll('#chart circle.pt')), mid = Math.floor(ps.length / 2);
			ps.sort(function (a, b) { return Math.abs(ps.indexOf(a) - mid) - Math.abs(ps.indexOf(b) - mid); });
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
		b.wait("the range before the drill-down", `return !location.search.includes('stop') && document.body.dataset.rows === '100'`)
		checkPage(t, b, srv.URL)

		// A model without an interval, with a series per user.
		b.open(srv.URL + "/web/dashboard/popularity")
		b.wait("the popularity chart", `return document.body.dataset.modelReady === '1' && document.querySelectorAll('#chart svg .series path').length > 1 && +document.body.dataset.rows > 0`)
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

		// The reference, with live examples.
		b.open(srv.URL + "/web/reference")
		b.wait("the examples", `return document.querySelector('#example-model').value === 'volume-by-category-1h' && document.querySelectorAll('.example input').length > 10`)
		b.click(`.example[data-url="/api/{ident}?rows_per_page=3"] button`)
		b.wait("a feed example", `var o = document.querySelector('.example[data-url="/api/{ident}?rows_per_page=3"] .out').textContent; return /HTTP 200/.test(o) && /X-Link-Count/.test(o) && /"category"/.test(o)`)
		b.click(`.example[data-url="/api/{ident}?rows_per_page=500"] button`)
		b.wait("an error example", `return /HTTP 400[\s\S]*rows_per_page/.test(document.querySelector('.example[data-url="/api/{ident}?rows_per_page=500"] .out').textContent)`)
		b.screenshot("reference", false)
		checkPage(t, b, srv.URL, "400 (Bad Request)")

		// Narrow screens.
		b.resize(412, 900)
		b.open(srv.URL + "/web/dashboard")
		b.wait("the cards", `return document.querySelectorAll('.card svg.spark').length > 0`)
		b.screenshot("mobile-dashboard", false)
		b.open(srv.URL + "/web/dashboard/volume-by-category-1h")
		b.wait("the chart", `return document.querySelectorAll('#chart svg .series path').length > 0`)
		b.screenshot("mobile-model", true)
		if w := b.jsInt(`return document.documentElement.scrollWidth`); w > 412 {
			t.Errorf("the model page is %d pixels wide on a 412-pixel screen", w)
		}
		b.resize(1280, 900)
		checkPage(t, b, srv.URL)
	})
}
