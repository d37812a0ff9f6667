package portal_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/gorilla/mux"

	"statscache/web/portal"
)

// The portal mounted in a gorilla router the way web's router would mount
// it (encoded paths, GET and HEAD, prefixes /web and /static/): idents
// holding "/" still reach the model page.
func TestMountedInGorilla(t *testing.T) {
	r := mux.NewRouter()
	r.UseEncodedPath()
	p := portal.Handler(nil)
	r.Handle("/", http.RedirectHandler("/web/getting-started", http.StatusFound)).Methods(http.MethodGet, http.MethodHead)
	r.PathPrefix("/web").Handler(p).Methods(http.MethodGet, http.MethodHead)
	r.PathPrefix("/static/").Handler(p).Methods(http.MethodGet, http.MethodHead)
	for path, want := range map[string]int{
		"/web/getting-started":       http.StatusOK,
		"/web/dashboard":             http.StatusOK,
		"/web/dashboard/odd%2Fident": http.StatusOK,
		"/web/reference":             http.StatusOK,
		"/web/contributors":          http.StatusOK,
		"/web/nothing":               http.StatusNotFound,
		"/static/portal.css":         http.StatusOK,
		"/":                          http.StatusFound,
	} {
		res := get(t, r, http.MethodGet, path, nil)
		if res.StatusCode != want {
			t.Errorf("GET %s: status %d, want %d", path, res.StatusCode, want)
		}
		if path == "/web/dashboard/odd%2Fident" && !strings.Contains(body(t, res), `data-ident="odd/ident"`) {
			t.Errorf("GET %s: the ident did not survive the router", path)
		}
	}
}
