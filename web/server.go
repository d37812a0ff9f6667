// Package web serves statscache's REST API: the list of models, each
// model's rows (paged, as JSON, JSON-P or CSV), its description and its
// layout. It reads through a small Reader interface, so that it depends on
// what it needs rather than on a particular store, and so that it can be
// tested against a real database without the engine running.
//
// Compared with the original Flask API it keeps the URLs, parameters,
// headers and formats clients rely on, and fixes its bugs: pages after the
// first are correct, Link headers keep every parameter, limit is a real
// limit, bad input is a 400 (never a 500), a missing Accept header gets
// JSON, unknown models get a JSON 404, CORS covers every /api route and
// preflights, JSON-P callbacks are validated, CSV is properly quoted, and
// rows whose timestamp lies in the future (in-progress buckets) are shown.
package web

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/mux"

	"statscache/engine"
	"statscache/web/portal"
)

// Reader is what the API reads. It is declared here, on the consumer side,
// so that any store (or a fake in a test) can serve the API; the SQLite
// store implements it.
type Reader interface {
	// ListModels describes every model, sorted by ident.
	ListModels(ctx context.Context) ([]engine.ModelInfo, error)
	// ModelInfo describes one model; an unknown ident gives an error
	// wrapping engine.ErrNotFound.
	ModelInfo(ctx context.Context, ident string) (engine.ModelInfo, error)
	// Rows reads one page of a model's table; an unknown ident gives an
	// error wrapping engine.ErrNotFound.
	Rows(ctx context.Context, ident string, q engine.RowQuery) (engine.RowPage, error)
}

// Server is the HTTP API. Its Handler can be mounted anywhere (tests use
// httptest); Open and Close run it on a listener of its own.
type Server struct {
	reader  Reader
	log     *slog.Logger
	handler http.Handler

	mu  sync.Mutex
	srv *http.Server
	ln  net.Listener
}

// New builds the API over reader. A nil logger means slog.Default().
func New(reader Reader, logger *slog.Logger) *Server {
	if logger == nil {
		logger = slog.Default()
	}
	s := &Server{reader: reader, log: logger}
	s.handler = s.recoverer(s.common(s.routes()))
	return s
}

// Handler returns the API's handler, with its middleware: panics become a
// logged 500, and every /api response carries the CORS headers.
func (s *Server) Handler() http.Handler { return s.handler }

// Timeouts of the listener started by Open. They bound what a slow or
// stalled client can hold; every response is small (at most a page of
// MaxRowsPerPage rows), so they are generous.
const (
	readHeaderTimeout = 10 * time.Second
	readTimeout       = 30 * time.Second
	writeTimeout      = time.Minute
	idleTimeout       = 2 * time.Minute
)

// HTTPServer returns a server for h with the timeouts above, for whoever
// serves the API (Open, and the daemon beside /status and /metrics).
func HTTPServer(h http.Handler, log *slog.Logger) *http.Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// Open listens on addr (host:port; port 0 picks a free one, see Addr) and
// serves the API in the background until Close.
func (s *Server) Open(addr string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		return fmt.Errorf("web: already serving on %s", s.ln.Addr())
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("web: listen on %s: %w", addr, err)
	}
	srv := HTTPServer(s.handler, s.log)
	s.srv, s.ln = srv, ln
	s.log.Info("web: serving", "addr", ln.Addr().String())
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("web: serve failed", "addr", ln.Addr().String(), "error", err)
		}
	}()
	return nil
}

// Addr returns the address Open listens on (useful with port 0), or nil
// when the server is not open.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Close stops the listener started by Open, letting requests in flight
// finish until ctx expires; then it drops the remaining connections.
// Closing a server that is not open does nothing.
func (s *Server) Close(ctx context.Context) error {
	s.mu.Lock()
	srv := s.srv
	s.srv, s.ln = nil, nil
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	if err := srv.Shutdown(ctx); err != nil {
		srv.Close()
		return fmt.Errorf("web: shutdown: %w", err)
	}
	return nil
}

// routes builds the router. Every API route answers GET and HEAD, and
// OPTIONS for CORS preflights; any other method is a 405.
func (s *Server) routes() http.Handler {
	r := mux.NewRouter()
	// Match the escaped path, so an ident containing "/" can be asked for
	// as %2F; identVar unescapes it.
	r.UseEncodedPath()
	methods := []string{http.MethodGet, http.MethodHead, http.MethodOptions}
	p := portal.Handler(s.log)
	r.Handle("/", http.RedirectHandler("/web/getting-started", http.StatusFound)).Methods(http.MethodGet, http.MethodHead)
	r.PathPrefix("/web").Handler(p).Methods(http.MethodGet, http.MethodHead)
	r.PathPrefix("/static/").Handler(p).Methods(http.MethodGet, http.MethodHead)
	r.Handle("/api", http.RedirectHandler("/api/", http.StatusMovedPermanently)).Methods(http.MethodGet, http.MethodHead)
	r.Handle("/api/", s.endpoint(s.index)).Methods(methods...)
	r.Handle("/api/{ident}", s.endpoint(s.feed)).Methods(methods...)
	r.Handle("/api/{ident}/meta", s.endpoint(s.meta)).Methods(methods...)
	r.Handle("/api/{ident}/layout", s.endpoint(s.layout)).Methods(methods...)
	r.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		s.sendError(w, &apiError{status: http.StatusNotFound, msg: "no such resource"})
	})
	r.MethodNotAllowedHandler = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Allow", "GET, HEAD, OPTIONS")
		s.sendError(w, &apiError{status: http.StatusMethodNotAllowed,
			msg: fmt.Sprintf("method %s is not allowed: the API is read-only (GET)", req.Method)})
	})
	return r
}

// endpoint adapts a handler that returns an error, and answers CORS
// preflights (OPTIONS) for its route.
func (s *Server) endpoint(h func(http.ResponseWriter, *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodOptions {
			hd := w.Header()
			hd.Set("Allow", "GET, HEAD, OPTIONS")
			hd.Set("Access-Control-Allow-Methods", "GET, OPTIONS")
			hd.Set("Access-Control-Allow-Headers", "Accept, Content-Type")
			hd.Set("Access-Control-Max-Age", "86400")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if err := h(w, r); err != nil {
			s.fail(w, r, err)
		}
	})
}

// isAPI reports whether a path is under /api, where the CORS headers go.
func isAPI(path string) bool {
	return path == "/api" || strings.HasPrefix(path, "/api/")
}

// common sets the headers every response shares. Under /api, that
// includes CORS: the data is public and meant to be embedded in other
// sites, so any origin may read it, errors included (so that a cross-origin
// client can show why a request failed), and the pagination headers are
// exposed to scripts.
func (s *Server) common(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		if isAPI(r.URL.Path) {
			h.Set("Access-Control-Allow-Origin", "*")
			h.Set("Access-Control-Expose-Headers", "Link, X-Link-Number, X-Link-Count")
			h.Set("Vary", "Accept")
		}
		next.ServeHTTP(w, r)
	})
}

// recorder remembers whether a response has started, so that the recover
// middleware knows whether it can still send an error, and its status for
// the request log.
type recorder struct {
	http.ResponseWriter
	status int
}

func (rw *recorder) WriteHeader(code int) {
	if rw.status == 0 {
		rw.status = code
	}
	rw.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (rw *recorder) Unwrap() http.ResponseWriter { return rw.ResponseWriter }

func (rw *recorder) Write(b []byte) (int, error) {
	if rw.status == 0 {
		rw.status = http.StatusOK
	}
	return rw.ResponseWriter.Write(b)
}

// recoverer turns a panic in a handler into a logged 500 with a JSON body
// (when nothing was sent yet), so that one bad request never takes the
// server down or leaves the client without an answer. It also logs every
// request at debug level.
func (s *Server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rw := &recorder{ResponseWriter: w}
		begin := time.Now()
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler { // the handler asked to abort the connection
					panic(v)
				}
				s.log.ErrorContext(r.Context(), "web: panic while serving", "method", r.Method, "url", r.URL.String(),
					"panic", fmt.Sprint(v), "stack", string(debug.Stack()))
				if rw.status == 0 {
					s.sendError(rw, &apiError{status: http.StatusInternalServerError, msg: "internal error"})
				}
			}
			s.log.DebugContext(r.Context(), "web: request", "method", r.Method, "url", r.URL.String(),
				"status", rw.status, "duration", time.Since(begin))
		}()
		next.ServeHTTP(rw, r)
	})
}
