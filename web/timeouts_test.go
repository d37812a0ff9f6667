package web_test

import (
	"net/http"
	"testing"
	"time"

	"statscache/web"
)

// TestHTTPServerTimeouts: the server the API and the daemon use bounds how
// long a client may take to send a request and to read the answer, so a
// stalled client cannot hold a connection (and a goroutine) forever. The
// write timeout leaves ample room for the largest answer, one page of
// MaxRowsPerPage rows.
func TestHTTPServerTimeouts(t *testing.T) {
	srv := web.HTTPServer(http.NotFoundHandler(), nil)
	for name, d := range map[string]time.Duration{
		"ReadHeaderTimeout": srv.ReadHeaderTimeout,
		"ReadTimeout":       srv.ReadTimeout,
		"WriteTimeout":      srv.WriteTimeout,
		"IdleTimeout":       srv.IdleTimeout,
	} {
		if d <= 0 || d > 5*time.Minute {
			t.Errorf("%s = %s, want a bound between 0 and 5 minutes", name, d)
		}
	}
	if srv.WriteTimeout < 30*time.Second {
		t.Errorf("WriteTimeout %s: too short for a page over a slow link", srv.WriteTimeout)
	}
}
