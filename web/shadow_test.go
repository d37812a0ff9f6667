package web_test

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"statscache/engine"
	"statscache/engine/sqlstore"
	"statscache/schema"
	"statscache/web"
)

// TestShadowsArePrivate: a table being rebuilt lives under a shadow ident
// (ident#fingerprint) until it is promoted. A daemon stopped mid-rebuild
// leaves it in the database; the feed, meta and layout routes must never
// serve it, and the model list must not show it.
func TestShadowsArePrivate(t *testing.T) {
	ctx := context.Background()
	db, err := sqlstore.Open(ctx, filepath.Join(t.TempDir(), "stats.db"), sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	spec := func(ident, table string) *engine.ModelSpec {
		return &engine.ModelSpec{Ident: ident, Name: "vol", Summary: "s", Description: "d",
			Layout: json.RawMessage(`{"chart": "line"}`),
			Table: schema.Table{Name: table, Key: []string{"timestamp"},
				Columns: []schema.Column{{Name: "timestamp", Type: schema.Real, NotNull: true}, {Name: "n", Type: schema.Integer}}}}
	}
	shadow := "vol-1m" + engine.ShadowSep + "0123456789abcdef"
	for _, s := range []*engine.ModelSpec{spec("vol-1m", "vol_1m"), spec(shadow, "vol_1m_0123456789abcdef")} {
		if _, err := db.Register(ctx, s); err != nil {
			t.Fatal(err)
		}
		tx, err := db.Begin(ctx, s.Ident)
		if err != nil {
			t.Fatal(err)
		}
		if err := tx.Apply([]engine.RowOp{{Kind: engine.OpUpsert, Row: engine.Row{"timestamp": 60.0, "n": int64(1)}}}); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(engine.Checkpoint{}); err != nil {
			t.Fatal(err)
		}
	}
	srv := httptest.NewServer(web.New(db, nil).Handler())
	t.Cleanup(srv.Close)
	get := func(path string) (int, string) {
		resp, err := srv.Client().Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b strings.Builder
		buf := make([]byte, 4096)
		for {
			n, err := resp.Body.Read(buf)
			b.Write(buf[:n])
			if err != nil {
				break
			}
		}
		return resp.StatusCode, b.String()
	}
	for _, path := range []string{"/api/vol-1m", "/api/vol-1m/meta", "/api/vol-1m/layout"} {
		if code, body := get(path); code != 200 {
			t.Errorf("%s: %d %s, want 200 (the promoted model)", path, code, body)
		}
	}
	esc := url.PathEscape(shadow)
	for _, path := range []string{"/api/" + esc, "/api/" + esc + "?format=csv", "/api/" + esc + "/meta", "/api/" + esc + "/layout"} {
		if code, body := get(path); code != 404 || !strings.Contains(body, `"error"`) {
			t.Errorf("%s: %d %s, want a JSON 404", path, code, body)
		}
	}
	if code, body := get("/api/"); code != 200 || strings.Contains(body, engine.ShadowSep) || !strings.Contains(body, "vol-1m") {
		t.Errorf("/api/: %d %s, want vol-1m listed and no shadow", code, body)
	}
}
