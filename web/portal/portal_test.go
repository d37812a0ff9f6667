package portal_test

import (
	"context"
	"html"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"statscache/engine/sqlstore"
	"statscache/web"
	"statscache/web/portal"
)

// site is what the daemon serves once the lead mounts the portal: the API
// under /api/, the portal everywhere else, "/" redirecting to the guide.
func site(reader web.Reader) http.Handler {
	api := web.New(reader, nil).Handler()
	mux := http.NewServeMux()
	mux.Handle("/api/", api)
	mux.Handle("/api", api)
	mux.Handle("/", portal.Handler(nil))
	return mux
}

// emptyDB is a real, empty store.
func emptyDB(t *testing.T) *sqlstore.DB {
	t.Helper()
	db, err := sqlstore.Open(context.Background(), filepath.Join(t.TempDir(), "stats.db"), sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func get(t *testing.T, h http.Handler, method, target string, header http.Header) *http.Response {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func body(t *testing.T, res *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

var pages = []struct {
	path, want string
}{
	{"/web/getting-started", "What you can rely on"},
	{"/web/dashboard", `id="groups"`},
	{"/web/dashboard/volume-by-category-1h", `data-ident="volume-by-category-1h"`},
	{"/web/dashboard/odd%2Fident", `data-ident="odd/ident"`},
	{"/web/reference", "GET /api/&lt;ident&gt;/meta"},
	{"/web/contributors", `id="cohorts"`},
}

func TestPages(t *testing.T) {
	h := portal.Handler(nil)
	for _, p := range pages {
		res := get(t, h, http.MethodGet, p.path, nil)
		b := body(t, res)
		if res.StatusCode != http.StatusOK {
			t.Errorf("GET %s: status %d", p.path, res.StatusCode)
		}
		if ct := res.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
			t.Errorf("GET %s: Content-Type %q", p.path, ct)
		}
		if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") || !strings.Contains(csp, "connect-src 'self'") {
			t.Errorf("GET %s: Content-Security-Policy %q", p.path, csp)
		}
		if res.Header.Get("Cache-Control") != "no-cache" {
			t.Errorf("GET %s: Cache-Control %q", p.path, res.Header.Get("Cache-Control"))
		}
		if !strings.Contains(b, p.want) {
			t.Errorf("GET %s: body lacks %q", p.path, p.want)
		}
		for _, nav := range []string{`href="/web/getting-started"`, `href="/web/dashboard"`, `href="/web/contributors"`, `href="/web/reference"`} {
			if !strings.Contains(b, nav) {
				t.Errorf("GET %s: no navigation link %s", p.path, nav)
			}
		}
		// No inline script or style: the CSP would block them.
		if regexp.MustCompile(`<script>|<script [^>]*>[^<]|<style|\sstyle=`).MatchString(b) {
			t.Errorf("GET %s: inline script or style", p.path)
		}
		head := get(t, h, http.MethodHead, p.path, nil)
		if head.StatusCode != http.StatusOK || body(t, head) != "" {
			t.Errorf("HEAD %s: status %d", p.path, head.StatusCode)
		}
	}
}

func TestRedirectsAndErrors(t *testing.T) {
	h := site(emptyDB(t))
	for path, want := range map[string]string{
		"/":               "/web/getting-started",
		"/web":            "/web/getting-started",
		"/web/":           "/web/getting-started",
		"/web/dashboard/": "/web/dashboard",
	} {
		res := get(t, h, http.MethodGet, path, nil)
		if res.StatusCode != http.StatusFound || res.Header.Get("Location") != want {
			t.Errorf("GET %s: %d to %q, want 302 to %q", path, res.StatusCode, res.Header.Get("Location"), want)
		}
	}
	for _, path := range []string{"/web/nothing", "/web/getting-started/x", "/nothing", "/static/nothing.js", "/static/"} {
		res := get(t, h, http.MethodGet, path, nil)
		if res.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: status %d, want 404", path, res.StatusCode)
		}
	}
	res := get(t, h, http.MethodGet, "/web/nothing", nil)
	if b := body(t, res); !strings.Contains(b, "Page not found") || res.Header.Get("Content-Type") != "text/html; charset=utf-8" {
		t.Errorf("404 page: %s %q", res.Header.Get("Content-Type"), b)
	}
	res = get(t, h, http.MethodPost, "/web/dashboard", nil)
	if res.StatusCode != http.StatusMethodNotAllowed || res.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST: %d, Allow %q", res.StatusCode, res.Header.Get("Allow"))
	}
	// The API is still the API.
	res = get(t, h, http.MethodGet, "/api/", nil)
	if res.StatusCode != http.StatusOK || strings.TrimSpace(body(t, res)) != "[]" {
		t.Errorf("GET /api/: %d", res.StatusCode)
	}
}

// An ident is text in the page, never markup.
func TestIdentEscaped(t *testing.T) {
	res := get(t, portal.Handler(nil), http.MethodGet, "/web/dashboard/%3Cscript%3Ealert(1)%3C%2Fscript%3E", nil)
	b := body(t, res)
	if res.StatusCode != http.StatusOK || strings.Contains(b, "<script>alert") || !strings.Contains(b, "&lt;script&gt;alert(1)&lt;/script&gt;") {
		t.Errorf("ident not escaped: %d\n%s", res.StatusCode, b)
	}
	for _, bad := range []string{"/web/dashboard/a%0Ab", "/web/dashboard/%00"} {
		if res := get(t, portal.Handler(nil), http.MethodGet, bad, nil); res.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: status %d, want 404", bad, res.StatusCode)
		}
	}
}

// The getting-started page shows the shipped popularity model verbatim.
func TestGettingStartedExample(t *testing.T) {
	src, err := os.ReadFile("../../scripts/popularity.lua")
	if err != nil {
		t.Fatal(err)
	}
	b := body(t, get(t, portal.Handler(nil), http.MethodGet, "/web/getting-started", nil))
	if !strings.Contains(html.UnescapeString(b), string(src)) {
		t.Error("the getting-started page does not hold scripts/popularity.lua as it is")
	}
}

var assetRe = regexp.MustCompile(`(?:src|href)="(/static/[^"?]+)\?v=([0-9a-f]+)"`)

func TestAssets(t *testing.T) {
	h := portal.Handler(nil)
	seen := map[string]bool{}
	for _, p := range pages {
		b := body(t, get(t, h, http.MethodGet, p.path, nil))
		for _, m := range assetRe.FindAllStringSubmatch(b, -1) {
			seen[m[1]] = true
			url := m[1] + "?v=" + m[2]
			res := get(t, h, http.MethodGet, url, nil)
			if res.StatusCode != http.StatusOK {
				t.Errorf("GET %s: status %d", url, res.StatusCode)
				continue
			}
			want := map[string]string{".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}[filepath.Ext(m[1])]
			if ct := res.Header.Get("Content-Type"); ct != want {
				t.Errorf("GET %s: Content-Type %q, want %q", url, ct, want)
			}
			if cc := res.Header.Get("Cache-Control"); cc != "public, max-age=31536000, immutable" {
				t.Errorf("GET %s: Cache-Control %q", url, cc)
			}
			etag := res.Header.Get("ETag")
			if etag == "" {
				t.Errorf("GET %s: no ETag", url)
				continue
			}
			// Without its version an asset must be revalidated...
			res = get(t, h, http.MethodGet, m[1], nil)
			if res.StatusCode != http.StatusOK || res.Header.Get("Cache-Control") != "no-cache" {
				t.Errorf("GET %s: %d, Cache-Control %q", m[1], res.StatusCode, res.Header.Get("Cache-Control"))
			}
			res = get(t, h, http.MethodGet, m[1]+"?v=0000000000000000", nil)
			if res.Header.Get("Cache-Control") != "no-cache" {
				t.Errorf("GET %s with a stale version: Cache-Control %q", m[1], res.Header.Get("Cache-Control"))
			}
			// ...and revalidation works.
			res = get(t, h, http.MethodGet, m[1], http.Header{"If-None-Match": {etag}})
			if res.StatusCode != http.StatusNotModified {
				t.Errorf("GET %s If-None-Match: status %d, want 304", m[1], res.StatusCode)
			}
		}
	}
	for _, want := range []string{"/static/portal.css", "/static/common.js", "/static/chart.js", "/static/dashboard.js", "/static/model.js", "/static/reference.js", "/static/favicon.svg"} {
		if !seen[want] {
			t.Errorf("no page links %s", want)
		}
	}
}

// xmlNamespaces are identifiers that look like URLs but are never fetched.
var xmlNamespaces = map[string]bool{"http://www.w3.org/2000/svg": true}

// No embedded file, and no page, names another host: the portal must work
// on machines without internet, and must not leak its readers elsewhere.
func TestNoOtherHosts(t *testing.T) {
	abs := regexp.MustCompile(`(?i)\b(?:https?|wss?|ftp):\/\/[^\s"'<>)]*`)
	protoRel := regexp.MustCompile(`(?i)(?:src|href|action|url)\s*[=(]\s*["']?//`)
	check := func(name, text string) {
		for _, u := range abs.FindAllString(text, -1) {
			if !xmlNamespaces[u] {
				t.Errorf("%s names another host: %s", name, u)
			}
		}
		if m := protoRel.FindString(text); m != "" {
			t.Errorf("%s has a protocol-relative URL: %s", name, m)
		}
	}
	n := 0
	err := fs.WalkDir(os.DirFS("assets"), ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(filepath.Join("assets", name))
		if err != nil {
			return err
		}
		check(name, string(b))
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 10 {
		t.Errorf("only %d asset files checked", n)
	}
	h := portal.Handler(nil)
	for _, p := range pages {
		check(p.path, body(t, get(t, h, http.MethodGet, p.path, nil)))
	}
}
