package luaapi

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
)

// TestHTTPServicesRefuseRedirectToAnotherHost: a service that redirects to
// another host (a second loopback server, or the same server under another
// name) gets an error that is not retried, and the other host sees no
// request; a redirect within the service's host is followed.
func TestHTTPServicesRefuseRedirectToAnotherHost(t *testing.T) {
	var otherHits atomic.Int64
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		otherHits.Add(1)
		w.Write([]byte("secret of another host"))
	}))
	defer other.Close()
	var svc *httptest.Server
	svc = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/elsewhere":
			http.Redirect(w, r, other.URL+"/steal", http.StatusFound)
		case "/api/by-name":
			// The same server, named localhost: another host for the client.
			u, _ := url.Parse(svc.URL)
			http.Redirect(w, r, "http://localhost:"+u.Port()+"/api/here", http.StatusFound)
		case "/api/moved":
			http.Redirect(w, r, "/api/here", http.StatusMovedPermanently)
		case "/api/here":
			w.Write([]byte("here"))
		default:
			http.NotFound(w, r)
		}
	}))
	defer svc.Close()
	s := &HTTPServices{URLs: map[string]string{"koji": svc.URL + "/api"}}
	ctx := context.Background()

	resp, err := s.Do(ctx, "koji", &HTTPRequest{Method: http.MethodGet, Path: "moved"})
	if err != nil || resp.Status != 200 || string(resp.Body) != "here" {
		t.Fatalf("redirect within the host: %+v, %v; want 200 here", resp, err)
	}
	for _, path := range []string{"elsewhere", "by-name"} {
		resp, err := s.Do(ctx, "koji", &HTTPRequest{Method: http.MethodGet, Path: path})
		if err == nil {
			t.Errorf("%s: followed to another host: %d %q", path, resp.Status, resp.Body)
			continue
		}
		if !errors.Is(err, ErrBadRequest) || !strings.Contains(err.Error(), "refused") {
			t.Errorf("%s: error %v, want a refused redirect wrapping ErrBadRequest (not retried)", path, err)
		}
	}
	if n := otherHits.Load(); n != 0 {
		t.Errorf("the other host got %d requests", n)
	}
	// A client given by the caller is held to the same rule.
	s.Client = &http.Client{}
	if _, err := s.Do(ctx, "koji", &HTTPRequest{Method: http.MethodGet, Path: "elsewhere"}); err == nil || otherHits.Load() != 0 {
		t.Errorf("with a caller's client: err %v, other host hits %d", err, otherHits.Load())
	}
}

func TestSameHost(t *testing.T) {
	for _, tc := range []struct {
		base, to string
		want     bool
	}{
		{"http://koji.example/kojihub", "http://koji.example/other", true},
		{"http://koji.example:80/kojihub", "http://KOJI.example/x", true},
		{"http://koji.example/kojihub", "https://koji.example/kojihub", true},
		{"https://koji.example/kojihub", "http://koji.example/kojihub", false},
		{"http://koji.example:8080/", "https://koji.example/", false},
		{"http://127.0.0.1:8080/", "http://127.0.0.1:8081/", false},
		{"http://koji.example/", "http://evil.example/", false},
		{"http://127.0.0.1:8080/", "http://localhost:8080/", false},
	} {
		b, _ := url.Parse(tc.base)
		to, _ := url.Parse(tc.to)
		if got := sameHost(b, to); got != tc.want {
			t.Errorf("sameHost(%s, %s) = %v, want %v", tc.base, tc.to, got, tc.want)
		}
	}
}
