package luaapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	lua "github.com/yuin/gopher-lua"
)

// Services are the HTTP services a work function may call, by name. A
// script names the services it needs in queue = {services = {...}}, and
// loads only when each of them is configured: scripts never see URLs, and
// never reach a host the operator did not list.
type Services interface {
	Has(name string) bool
	// Do sends one request to the named service.
	Do(ctx context.Context, service string, req *HTTPRequest) (*HTTPResponse, error)
}

// ErrBadRequest is wrapped by Services errors that trying again cannot
// mend (a path that is not relative, a request no recorded answer matches);
// any other error of Do is taken as the service being unreachable, which
// the engine retries.
var ErrBadRequest = errors.New("bad request")

// HTTPRequest is a request of a work function; Path is relative to the
// service's base URL.
type HTTPRequest struct {
	Method      string
	Path        string
	ContentType string
	Body        []byte
}

// HTTPResponse is what a service answered.
type HTTPResponse struct {
	Status      int
	ContentType string
	Body        []byte
}

// HTTPServices are Services reached over HTTP.
type HTTPServices struct {
	// URLs maps a service name to its base URL.
	URLs map[string]string
	// Client sends the requests; nil means a client with a 30 s timeout.
	Client *http.Client
	// MaxBody bounds a response body; 0 means 16 MiB.
	MaxBody int64
}

// Has reports whether the service is configured.
func (s *HTTPServices) Has(name string) bool {
	_, ok := s.URLs[name]
	return ok
}

var defaultHTTPClient = &http.Client{Timeout: 30 * time.Second}

// Do sends the request to the service's base URL joined with its path.
func (s *HTTPServices) Do(ctx context.Context, service string, req *HTTPRequest) (*HTTPResponse, error) {
	base, ok := s.URLs[service]
	if !ok {
		return nil, fmt.Errorf("service %q is not configured: %w", service, ErrBadRequest)
	}
	u, err := joinURL(base, req.Path)
	if err != nil {
		return nil, err
	}
	hr, err := http.NewRequestWithContext(ctx, req.Method, u, bytes.NewReader(req.Body))
	if err != nil {
		return nil, err
	}
	if req.ContentType != "" {
		hr.Header.Set("Content-Type", req.ContentType)
	}
	hr.Header.Set("User-Agent", "statscache")
	c := s.Client
	if c == nil {
		c = defaultHTTPClient
	}
	// A copy, so that whatever client is given, a redirect cannot take the
	// request to a host the operator did not name.
	cc := *c
	cc.CheckRedirect = sameHostRedirect(service, base, c.CheckRedirect)
	resp, err := cc.Do(hr)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	max := s.MaxBody
	if max <= 0 {
		max = 16 << 20
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		return nil, fmt.Errorf("read the answer: %w", err)
	}
	if int64(len(body)) > max {
		return nil, fmt.Errorf("the answer is over the limit of %d bytes", max)
	}
	return &HTTPResponse{Status: resp.StatusCode, ContentType: resp.Header.Get("Content-Type"), Body: body}, nil
}

// sameHostRedirect follows a redirect only to the host of the service's
// base URL (the same scheme and port, or an upgrade from http to https on
// the default port): a script reaches the hosts it was given and no other.
// A refused redirect wraps ErrBadRequest, so it is not retried.
func sameHostRedirect(service, base string, next func(*http.Request, []*http.Request) error) func(*http.Request, []*http.Request) error {
	return func(req *http.Request, via []*http.Request) error {
		b, err := url.Parse(base)
		if err != nil {
			return fmt.Errorf("service URL %q: %w", base, err)
		}
		if !sameHost(b, req.URL) {
			return fmt.Errorf("redirect to %s://%s refused: service %s is %s://%s: %w", req.URL.Scheme, req.URL.Host, service, b.Scheme, b.Host, ErrBadRequest)
		}
		if next != nil {
			return next(req, via)
		}
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		return nil
	}
}

// sameHost compares the host a URL reaches with the service's.
func sameHost(base, to *url.URL) bool {
	if !strings.EqualFold(base.Hostname(), to.Hostname()) {
		return false
	}
	port := func(u *url.URL) string {
		if p := u.Port(); p != "" {
			return p
		}
		if strings.EqualFold(u.Scheme, "https") {
			return "443"
		}
		return "80"
	}
	if strings.EqualFold(base.Scheme, to.Scheme) {
		return port(base) == port(to)
	}
	return strings.EqualFold(base.Scheme, "http") && strings.EqualFold(to.Scheme, "https") && port(base) == "80" && port(to) == "443"
}

// joinURL appends a path (with its query) to a base URL.
func joinURL(base, path string) (string, error) {
	if path == "" {
		return base, nil
	}
	if strings.Contains(path, "://") || strings.HasPrefix(path, "//") {
		return "", fmt.Errorf("path %q must be relative to the service's URL: %w", path, ErrBadRequest)
	}
	b, err := url.Parse(base)
	if err != nil {
		return "", fmt.Errorf("service URL %q: %w", base, err)
	}
	p, q, _ := strings.Cut(path, "?")
	b.Path = strings.TrimSuffix(b.Path, "/") + "/" + strings.TrimPrefix(p, "/")
	if q != "" {
		b.RawQuery = q
	}
	return b.String(), nil
}

// httpModule: in work(item) only,
//
//	http.get(service, path) -> body, status
//	http.post(service, path, body [, content_type]) -> body, status
//
// Any answer is returned, whatever its status: the script decides what a
// 404 or a 503 means. A service that cannot be reached raises an error that
// the engine retries with backoff, as does retry(reason).
func httpModule(L *lua.LState, m *Model) *lua.LTable {
	t := L.NewTable()
	do := func(L *lua.LState, name string, req *HTTPRequest, service string) int {
		if !m.worker || m.workCtx == nil {
			L.RaiseError("http.%s is only available in work(item): process, update and done must not wait for the network", name)
		}
		if !m.declaresService(service) {
			L.RaiseError("http.%s: service %q is not declared in queue = {services = {...}}", name, service)
		}
		if m.opts.Services == nil || !m.opts.Services.Has(service) {
			L.RaiseError("http.%s: service %q is not configured", name, service)
		}
		host := m.guard.inHost()
		resp, err := m.opts.Services.Do(m.workCtx, service, req)
		host.done()
		if err != nil {
			m.temporary = !errors.Is(err, context.Canceled) && !errors.Is(err, ErrBadRequest)
			L.RaiseError("http.%s %s %q: %v", name, service, req.Path, err)
		}
		m.guard.chargeString(L, "http."+name, len(resp.Body))
		L.Push(lua.LString(resp.Body))
		L.Push(lua.LNumber(resp.Status))
		return 2
	}
	L.SetFuncs(t, map[string]lua.LGFunction{
		"get": func(L *lua.LState) int {
			service, path := L.CheckString(1), L.OptString(2, "")
			return do(L, "get", &HTTPRequest{Method: http.MethodGet, Path: path}, service)
		},
		"post": func(L *lua.LState) int {
			service, path, body := L.CheckString(1), L.CheckString(2), L.CheckString(3)
			ct := L.OptString(4, "application/octet-stream")
			return do(L, "post", &HTTPRequest{Method: http.MethodPost, Path: path, ContentType: ct, Body: []byte(body)}, service)
		},
	})
	return t
}

// luaRetry: retry(reason) gives up on this try of the work item and asks
// for another later, with backoff; after the declared retries the item is
// delivered to done with the reason as its error.
func luaRetry(m *Model) lua.LGFunction {
	return func(L *lua.LState) int {
		if !m.worker {
			L.RaiseError("retry is only available in work(item)")
		}
		m.temporary = true
		L.RaiseError("%s", L.OptString(1, "retry"))
		return 0
	}
}

func (m *Model) declaresService(name string) bool {
	if m.script.decl == nil || m.script.decl.queue == nil {
		return false
	}
	for _, s := range m.script.decl.queue.services {
		if s == name {
			return true
		}
	}
	return false
}
