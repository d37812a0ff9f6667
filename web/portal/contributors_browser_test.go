package portal_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"statscache/engine"
	"statscache/engine/filesource"
	"statscache/engine/sqlstore"
	"statscache/luaapi"
	"statscache/luaapi/meta"
)

// contributorsDB runs the three contributor models over the bundled sample
// spread over 24 weeks from Monday 2015-06-01, so that the page has weeks,
// months and cohorts to draw.
func contributorsDB(t *testing.T) *sqlstore.DB {
	t.Helper()
	ctx := context.Background()
	quiet := slog.New(slog.DiscardHandler)
	dir := t.TempDir()
	err := filepath.WalkDir("../../scripts", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel("../../scripts", p)
		switch {
		case d.IsDir():
			if rel != "." && rel != "lib" && rel != "meta" && filepath.Dir(rel) != "lib" {
				return filepath.SkipDir
			}
			return os.MkdirAll(filepath.Join(dir, rel), 0o755)
		case filepath.Dir(rel) == "." && filepath.Ext(rel) == ".lua":
			switch rel {
			case "contributors.lua", "contributor-retention.lua", "activity-by-category.lua":
			default:
				return nil
			}
		case filepath.Dir(rel) == ".":
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	lib, err := meta.Load(filepath.Join(dir, "meta"), quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(lib.Close)
	models, errs := luaapi.LoadDir(dir, luaapi.Options{Logger: quiet, Meta: lib})
	for _, err := range errs {
		t.Fatalf("load scripts: %v", err)
	}
	if len(models) != 4 {
		t.Fatalf("%d contributor models loaded, want 4", len(models))
	}

	raw, err := os.ReadFile("../../scripts/sample/messages.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	var recs []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatal(err)
		}
		recs = append(recs, m)
	}
	// Week w takes 120 consecutive sample messages from 40 w on (wrapping
	// around), so people arrive, stay for a few weeks, leave, and come back
	// when the window wraps.
	start := time.Date(2015, 6, 1, 0, 0, 0, 0, time.UTC).Unix()
	const week, perWeek = 7 * 86400, 120
	var corpus bytes.Buffer
	for w := 0; w < 24; w++ {
		for j := 0; j < perWeek; j++ {
			r := recs[(w*40+j)%len(recs)]
			r["msg_id"] = fmt.Sprintf("2015-contrib-%02d-%03d", w, j)
			r["timestamp"] = float64(start + int64(w)*week + int64(j)*week/perWeek)
			b, _ := json.Marshal(r)
			corpus.Write(b)
			corpus.WriteByte('\n')
		}
	}
	path := filepath.Join(t.TempDir(), "spread.jsonl")
	if err := os.WriteFile(path, corpus.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}

	db, err := sqlstore.Open(ctx, filepath.Join(t.TempDir(), "stats.db"), sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	eng := engine.New(db, engine.Config{Logger: quiet})
	for _, m := range models {
		if err := eng.Add(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	err = (&filesource.Reader{}).ReadFile(ctx, path, func(b filesource.Batch) error {
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

// TestBrowserContributors drives the contributors page: the weekly and
// monthly stacked bars with churn below the axis, the cohort grid, and the
// week in Fedora, against the models' own rows; and the page against a
// daemon without these models.
func TestBrowserContributors(t *testing.T) {
	chromium, driver, err := browserBinaries()
	if err != nil {
		if os.Getenv("STATSCACHE_SKIP_BROWSER") == "1" {
			t.Skipf("STATSCACHE_SKIP_BROWSER=1: %v", err)
		}
		t.Fatalf("%v (set STATSCACHE_SKIP_BROWSER=1 to skip the browser test)", err)
	}
	out := testOut(t)
	b := startBrowser(t, chromium, driver, out)

	t.Run("models", func(t *testing.T) {
		b.t = t
		db := contributorsDB(t)
		srv := httptest.NewServer(site(db))
		defer srv.Close()
		weeks := rowCount(t, srv.URL, "contributors-1w", nil)
		months := rowCount(t, srv.URL, "contributors-1mo", nil)
		if weeks < 24 || months < 6 {
			t.Fatalf("%d weeks and %d months of rows: the fixture is too short", weeks, months)
		}

		b.open(srv.URL + "/web/dashboard")
		b.wait("the dashboard", `return document.querySelectorAll('.card').length === 4 && !!document.querySelector('.card[data-ident="contributors-1mo"] .latest .label')`)
		// A month's card names the calendar month, not 2629746 s before its end.
		if l := b.jsString(`return document.querySelector('.card[data-ident="contributors-1mo"] .latest .label').textContent`); !regexp.MustCompile(`2015-10-01 – 2015-11-01 UTC: the last complete month`).MatchString(l) {
			t.Errorf("contributors-1mo card: %q, want October 2015 as the last complete month", l)
		}
		if l := b.jsString(`return document.querySelector('.card[data-ident="contributors-1w"] .latest .label').textContent`); !regexp.MustCompile(`2015-11-02 – 2015-11-09 UTC: the last complete week`).MatchString(l) {
			t.Errorf("contributors-1w card: %q, want the week of Monday 2015-11-02", l)
		}
		b.click(`.nav a[href="/web/contributors"]`)
		b.wait("the contributors page", `return document.body.dataset.contributorsReady === 'yes' && !!document.body.dataset.weekReady`)
		if !b.jsBool(`return document.querySelector('.nav a[href="/web/contributors"]').getAttribute('aria-current') === 'page'`) {
			t.Error("the navigation does not mark the contributors page as current")
		}
		if n := b.jsInt(`return document.querySelectorAll('#weekly .period').length`); n != weeks {
			t.Errorf("%d weekly bars, want one per row of contributors-1w (%d)", n, weeks)
		}
		if n := b.jsInt(`return document.querySelectorAll('#monthly .period').length`); n != months {
			t.Errorf("%d monthly bars, want %d", n, months)
		}
		// Every bar's stacked segments sum to its active count, and churn
		// hangs below the axis.
		var bad []string
		b.js(&bad, `var out = [];
			['#weekly', '#monthly'].forEach(function (box) {
				var zero = +document.querySelector(box + ' line.zero').getAttribute('y1');
				document.querySelectorAll(box + ' .period').forEach(function (g) {
					var m = /: (\d+) active \((\d+) new, (\d+) returning, (\d+) retained\), (\d+) churned/.exec(g.querySelector('title').textContent);
					if (!m) { out.push(box + ': no numbers in ' + g.querySelector('title').textContent); return; }
					if (+m[1] !== +m[2] + +m[3] + +m[4]) out.push(box + ': active is not new + returning + retained: ' + m[0]);
					var up = 0;
					g.querySelectorAll('rect.seg').forEach(function (r) {
						var y = +r.getAttribute('y'), h = +r.getAttribute('height');
						if (r.classList.contains('churned')) { if (Math.abs(y - zero) > 0.01) out.push(box + ': churn not hanging from the axis'); }
						else { up += h; if (y + h > zero + 0.01) out.push(box + ': a segment below the axis'); }
					});
					if (+m[1] > 0 && up <= 0) out.push(box + ': no bar for ' + m[0]);
				});
			});
			return out;`)
		for _, s := range bad {
			t.Error(s)
		}
		if n := b.jsInt(`return document.querySelectorAll('#weekly rect.churned').length`); n == 0 {
			t.Error("no churn drawn below the weekly axis")
		}
		if n := b.jsInt(`return document.querySelectorAll('#weekly rect.returning').length`); n == 0 {
			t.Error("no returning contributors drawn")
		}
		// The cohort grid: age-0 sizes from the model, shares between 0 and 1.
		// One grid row per cohort (an age-0 row of the model) of the last 20
		// weeks, its size that row's count.
		var cohortRows []struct {
			Timestamp, Cohort float64
			Age, Active       int
		}
		getJSON(t, srv.URL+"/api/contributor-retention-1w?rows_per_page=100&order=desc", &cohortRows)
		newest := cohortRows[0].Timestamp
		sizes := map[string]int{}
		for _, r := range cohortRows {
			if r.Age == 0 && r.Cohort > newest-20*7*86400 {
				sizes[time.Unix(int64(r.Cohort)-7*86400, 0).UTC().Format("2006-01-02")] = r.Active
			}
		}
		var shown map[string]int
		b.js(&shown, `var out = {}; document.querySelectorAll('#cohorts tbody tr').forEach(function (tr) { out[tr.querySelector('th').textContent] = +tr.querySelector('td.size').textContent; }); return out;`)
		if len(sizes) < 3 || fmt.Sprint(shown) != fmt.Sprint(sizes) {
			t.Errorf("cohort grid rows (first week: size) %v, want %v", shown, sizes)
		}
		if !b.jsBool(`return Array.prototype.every.call(document.querySelectorAll('#cohorts td.cell'), function (c) { var s = +c.dataset.share; return s >= 0 && s <= 1; })`) {
			t.Error("a cohort cell's share is outside [0, 1]")
		}
		if !b.jsBool(`return Array.prototype.some.call(document.querySelectorAll('#cohorts td.cell'), function (c) { return +c.dataset.share > 0; })`) {
			t.Error("no cohort keeps anyone: the grid is empty")
		}
		// The week in Fedora: ranked by messages, with the change.
		var msgs []int
		b.js(&msgs, `return Array.prototype.map.call(document.querySelectorAll('#week tbody tr .rank-num'), function (e) { return +e.textContent.replace(/[^0-9]/g, ''); })`)
		if len(msgs) < 3 {
			t.Fatalf("the week in Fedora ranks %d categories", len(msgs))
		}
		for i := 1; i < len(msgs); i++ {
			if msgs[i] > msgs[i-1] {
				t.Errorf("the week's categories are not ranked by messages: %v", msgs)
				break
			}
		}
		b.screenshot("contributors", true)
		// Another week from the picker.
		b.js(nil, `var p = document.querySelector('#week-pick'); p.selectedIndex = 3; p.dispatchEvent(new Event('change'));`)
		b.wait("the chosen week", `return document.body.dataset.weekReady === document.querySelector('#week-pick').value`)
		if !b.jsBool(`return document.querySelectorAll('#week td.change').length > 0 && /▲|▼|=|new this week/.test(document.querySelector('#week td.change').textContent)`) {
			t.Error("the week in Fedora shows no change from the week before")
		}
		checkPage(t, b, srv.URL)

		// A calendar model's own page: the interval switcher links 1w and
		// 1mo, and a drill-down into a month narrows to that month (its
		// start from the calendar, not 2629746 s before its end).
		b.open(srv.URL + "/web/dashboard/contributors-1mo")
		b.wait("the chart", `return document.body.dataset.chart === 'ready' && document.querySelectorAll('#chart circle.pt').length > 0`)
		var chips []string
		b.js(&chips, `return Array.prototype.map.call(document.querySelectorAll('#siblings .chip'), function (c) { return c.textContent; })`)
		if fmt.Sprint(chips) != "[1w 1mo]" {
			t.Errorf("interval switcher %v, want [1w 1mo]", chips)
		}
		const sept1, aug1 = "1441065600", 1438387200 // the row of August ends on September 1
		b.js(nil, `document.querySelector('#chart circle.pt[data-t="`+sept1+`"]').dispatchEvent(new KeyboardEvent('keydown', {key: 'Enter', bubbles: true}))`)
		b.wait("the drill-down", `return new URLSearchParams(location.search).get('stop') === arguments[0]`, sept1)
		if start := b.jsString(`return new URLSearchParams(location.search).get('start')`); start != fmt.Sprint(aug1)+".001" {
			t.Errorf("drill-down into August starts at %s, want %d.001 (August 1)", start, aug1)
		}
		b.wait("August's row", `return document.body.dataset.tableDone === '1' && document.body.dataset.rows === '1'`)
		b.wait("the interval switcher", `return !!document.querySelector('#siblings a.sibling')`)
		b.click(`#siblings a.sibling`)
		b.wait("the weekly model, same range", `return location.pathname === '/web/dashboard/contributors-1w' && document.body.dataset.tableDone === '1'`)
		if n := b.jsInt(`return +document.body.dataset.rows`); n != 5 {
			t.Errorf("the range of August 2015 holds %d week rows, want 5 (the weeks ending on Mondays 3, 10, 17, 24 and 31)", n)
		}
		checkPage(t, b, srv.URL)
	})

	t.Run("without the models", func(t *testing.T) {
		b.t = t
		srv := httptest.NewServer(site(emptyDB(t)))
		defer srv.Close()
		b.open(srv.URL + "/web/contributors")
		b.wait("the placeholders", `return document.body.dataset.contributorsReady === 'yes'`)
		if !b.jsBool(`return /contributors-1w is not loaded/.test(document.querySelector('#weekly').textContent)`) {
			t.Errorf("the page does not say the model is missing: %s", b.jsString(`return document.querySelector('#weekly').textContent`))
		}
		b.screenshot("contributors-empty", false)
		checkPage(t, b, srv.URL, "404 (Not Found)")
	})
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("GET %s: %s", url, res.Status)
	}
	if err := json.NewDecoder(res.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}
