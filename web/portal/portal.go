// Package portal serves statscache's web portal: the getting-started
// guide, the live dashboard, one feed page per model (chart, drill-down,
// infinite table, downloads) and the API reference with live examples.
//
// Everything the pages need is embedded in the binary with go:embed: HTML
// templates, one style sheet, a few hand-written scripts and the SVG
// charts they draw. No page or asset names another host (no CDN, no web
// font), and every page carries a Content-Security-Policy that lets the
// browser talk to this server only. The pages read the data through the
// REST API under /api/, so the portal needs no access to the store: it is
// an http.Handler the daemon mounts next to the API (see Handler).
package portal

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"statscache/scripts"
)

//go:embed assets/templates/*.html assets/static
var assets embed.FS

// ContentSecurityPolicy is sent with every page: scripts, styles, images
// and API calls may come from this server only, and nothing may frame the
// portal. The pages have no inline script or style, so none is allowed.
const ContentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// Cache lifetimes of the assets. A page links every asset with ?v=<hash
// of its content>, so such a URL never changes meaning and may be cached
// for a year; the same asset asked for without (or with a stale) version
// must be revalidated (ETag), and so must the pages.
const (
	cacheVersioned = "public, max-age=31536000, immutable"
	cacheRevalid   = "no-cache"
)

// contentTypes of the asset extensions, fixed here rather than read from
// the system's MIME tables, which differ between machines.
var contentTypes = map[string]string{
	".css":  "text/css; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".svg":  "image/svg+xml",
	".png":  "image/png",
	".txt":  "text/plain; charset=utf-8",
	".lua":  "text/plain; charset=utf-8",
	".json": "application/json",
}

// asset is one embedded static file.
type asset struct {
	body        []byte
	hash        string // hex sha256, its ETag and version
	contentType string
}

// portal is the handler.
type portal struct {
	log      *slog.Logger
	assets   map[string]*asset // by path under /static/
	pages    map[string]*template.Template
	example  string // the popularity model, shown on the getting-started page
	notFound *template.Template
}

// Page names, as the templates and the navigation know them.
const (
	pageGettingStarted = "getting-started"
	pageDashboard      = "dashboard"
	pageModel          = "model"
	pageReference      = "reference"
	pageContributors   = "contributors"
	pageNotFound       = "notfound"
)

// pageData is what a page template is rendered with.
type pageData struct {
	Title   string
	Page    string // the page name, to highlight the navigation
	Ident   string // the model of a model page
	Example string // the popularity script
}

// Handler returns the portal. It answers:
//
//	/                          302 to /web/getting-started
//	/web, /web/                302 to /web/getting-started
//	/web/getting-started       what statscache is, and how to write a model
//	/web/dashboard             every model, live
//	/web/dashboard/<ident>     one model's feed (an ident with "/" is asked for as %2F)
//	/web/reference             the REST API, with live examples
//	/web/contributors          active, new, returning contributors, cohorts, the week in Fedora
//	/static/<file>             the embedded assets
//
// Anything else is a 404 page. Only GET and HEAD are allowed. The pages
// call the API under /api/ on the same host, so the portal must be mounted
// next to it. A nil logger means slog.Default().
func Handler(logger *slog.Logger) http.Handler {
	if logger == nil {
		logger = slog.Default()
	}
	p, err := newPortal(logger)
	if err != nil {
		// The assets are embedded and checked by the tests: this cannot
		// happen in a binary that passed them.
		panic(fmt.Sprintf("portal: %v", err))
	}
	return p
}

func newPortal(logger *slog.Logger) (*portal, error) {
	p := &portal{log: logger, assets: map[string]*asset{}, pages: map[string]*template.Template{}}
	err := fs.WalkDir(assets, "assets/static", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := assets.ReadFile(name)
		if err != nil {
			return err
		}
		ct, ok := contentTypes[path.Ext(name)]
		if !ok {
			return fmt.Errorf("asset %s: no content type for its extension", name)
		}
		sum := sha256.Sum256(body)
		p.assets[strings.TrimPrefix(name, "assets/static/")] = &asset{body: body, hash: hex.EncodeToString(sum[:]), contentType: ct}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load assets: %w", err)
	}
	ex, err := fs.ReadFile(scripts.FS, "popularity.lua")
	if err != nil {
		return nil, fmt.Errorf("example model: %w", err)
	}
	p.example = string(ex)
	funcs := template.FuncMap{"asset": p.assetURL}
	for _, name := range []string{pageGettingStarted, pageDashboard, pageModel, pageReference, pageContributors, pageNotFound} {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(assets, "assets/templates/layout.html", "assets/templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("template %s: %w", name, err)
		}
		p.pages[name] = t
	}
	p.notFound = p.pages[pageNotFound]
	return p, nil
}

// assetURL is the versioned URL of an asset, for the templates.
func (p *portal) assetURL(name string) (string, error) {
	a, ok := p.assets[name]
	if !ok {
		return "", fmt.Errorf("no asset %q", name)
	}
	return "/static/" + name + "?v=" + a.hash[:16], nil
}

func (p *portal) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed: the portal is read-only", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("X-Content-Type-Options", "nosniff")
	// The escaped path, so that an ident holding "/" (sent as %2F) stays
	// one path segment.
	ep := r.URL.EscapedPath()
	switch {
	case ep == "/" || ep == "/web" || ep == "/web/":
		http.Redirect(w, r, "/web/getting-started", http.StatusFound)
	case ep == "/web/getting-started":
		p.render(w, r, http.StatusOK, pageGettingStarted, pageData{Title: "Getting started", Example: p.example})
	case ep == "/web/dashboard":
		p.render(w, r, http.StatusOK, pageDashboard, pageData{Title: "Dashboard"})
	case ep == "/web/dashboard/":
		http.Redirect(w, r, "/web/dashboard", http.StatusFound)
	case strings.HasPrefix(ep, "/web/dashboard/"):
		ident, err := url.PathUnescape(strings.TrimPrefix(ep, "/web/dashboard/"))
		if err != nil || ident == "" || strings.ContainsAny(ident, "\x00\r\n") {
			p.render(w, r, http.StatusNotFound, pageNotFound, pageData{Title: "Not found"})
			return
		}
		p.render(w, r, http.StatusOK, pageModel, pageData{Title: ident, Ident: ident})
	case ep == "/web/reference":
		p.render(w, r, http.StatusOK, pageReference, pageData{Title: "API reference"})
	case ep == "/web/contributors":
		p.render(w, r, http.StatusOK, pageContributors, pageData{Title: "Contributors"})
	case strings.HasPrefix(ep, "/static/"):
		p.serveAsset(w, r, strings.TrimPrefix(ep, "/static/"))
	default:
		p.render(w, r, http.StatusNotFound, pageNotFound, pageData{Title: "Not found"})
	}
}

// render writes a page, with the headers every page carries.
func (p *portal) render(w http.ResponseWriter, r *http.Request, status int, name string, data pageData) {
	data.Page = name
	var buf bytes.Buffer
	if err := p.pages[name].ExecuteTemplate(&buf, "layout.html", data); err != nil {
		p.log.ErrorContext(r.Context(), "portal: render", "page", name, "error", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", ContentSecurityPolicy)
	h.Set("Referrer-Policy", "same-origin")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cache-Control", cacheRevalid)
	h.Set("Content-Length", fmt.Sprint(buf.Len()))
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		w.Write(buf.Bytes())
	}
}

// serveAsset serves an embedded file with its ETag; a request carrying the
// current version (?v=) may cache it for good.
func (p *portal) serveAsset(w http.ResponseWriter, r *http.Request, name string) {
	a, ok := p.assets[name]
	if !ok {
		http.Error(w, "no such asset", http.StatusNotFound)
		return
	}
	h := w.Header()
	h.Set("Content-Type", a.contentType)
	h.Set("ETag", `"`+a.hash[:32]+`"`)
	if v := r.URL.Query().Get("v"); v != "" && strings.HasPrefix(a.hash, v) && len(v) >= 16 {
		h.Set("Cache-Control", cacheVersioned)
	} else {
		h.Set("Cache-Control", cacheRevalid)
	}
	// ServeContent answers If-None-Match with a 304 and handles HEAD and
	// ranges.
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(a.body))
}
