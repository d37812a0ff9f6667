package web_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"statscache/engine"
	"statscache/engine/sqlstore"
	"statscache/schema"
	"statscache/web"
)

// TestMetaCalendarIntervals checks what /api/<ident>/meta says of the
// calendar intervals: the ident suffix as text, the nominal length in whole
// seconds, and which calendar steps the buckets, so that a portal does not
// take a month for 2629746 seconds counted from the epoch.
func TestMetaCalendarIntervals(t *testing.T) {
	ctx := t.Context()
	db, err := sqlstore.Open(ctx, filepath.Join(t.TempDir(), "stats.db"), sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, iv := range []string{"1w", "1mo", "7d"} {
		d, err := engine.ParseInterval(iv)
		if err != nil {
			t.Fatal(err)
		}
		id := engine.Ident("contributors", d)
		spec := &engine.ModelSpec{Ident: id, Name: "contributors", Interval: d, Table: schema.Table{Name: schema.TableName(id),
			Columns: []schema.Column{{Name: "timestamp", Type: schema.Real}, {Name: "active", Type: schema.Integer}}, Key: []string{"timestamp"}}}
		if _, err := db.Register(ctx, spec); err != nil {
			t.Fatal(err)
		}
	}
	srv := httptest.NewServer(web.New(db, nil).Handler())
	defer srv.Close()
	for _, tt := range []struct {
		ident, text string
		secs        float64
		calendar    any
	}{
		{"contributors-1w", "1w", 604800, "week"},
		{"contributors-1mo", "1mo", 2629746, "month"},
		{"contributors-7d", "7d", 604800, nil},
	} {
		resp, err := http.Get(srv.URL + "/api/" + tt.ident + "/meta")
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		err = json.NewDecoder(resp.Body).Decode(&m)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s: %s, %v", tt.ident, resp.Status, err)
		}
		if m["interval_text"] != tt.text || m["interval"] != tt.secs || m["calendar"] != tt.calendar {
			t.Errorf("%s: interval %v, interval_text %v, calendar %v; want %v, %q, %v",
				tt.ident, m["interval"], m["interval_text"], m["calendar"], tt.secs, tt.text, tt.calendar)
		}
	}
}
