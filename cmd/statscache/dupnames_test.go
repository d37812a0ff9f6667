package main

import (
	"bytes"
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDuplicateModelNames: two scripts that declare the same model are both
// refused, with file and line, by check and at the start of a replay; the
// other scripts run. (A running daemon's reload keeps the running version:
// see engine.TestEngineReloadDuplicateIdents.)
func TestDuplicateModelNames(t *testing.T) {
	dir := t.TempDir()
	vol, err := os.ReadFile("../../scripts/volume.lua")
	if err != nil {
		t.Fatal(err)
	}
	topic, err := os.ReadFile("../../scripts/volume-by-topic.lua")
	if err != nil {
		t.Fatal(err)
	}
	for name, src := range map[string][]byte{"volume.lua": vol, "volume-again.lua": append([]byte("-- a copy\n\n"), vol...), "volume-by-topic.lua": topic} {
		if err := os.WriteFile(filepath.Join(dir, name), src, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	a, b := filepath.Join(dir, "volume.lua"), filepath.Join(dir, "volume-again.lua")
	wantErrs := []string{
		a + `:6: model "volume-1s" is also declared by ` + b + `:8`,
		b + `:8: model "volume-1s" is also declared by ` + a + `:6`,
	}

	t.Run("ErrCheck", func(t *testing.T) {
		var out, errb bytes.Buffer
		if code := cmdCheck(context.Background(), []string{"--scripts", dir}, &out, &errb); code != 1 {
			t.Fatalf("check exit %d, want 1\n%s%s", code, out.String(), errb.String())
		}
		for _, w := range wantErrs {
			if !strings.Contains(errb.String(), w) {
				t.Errorf("check errors lack %q:\n%s", w, errb.String())
			}
		}
		if strings.Contains(out.String(), "volume-1s") || !strings.Contains(out.String(), "volume-by-topic-1s") {
			t.Errorf("check lists:\n%s\nwant volume-by-topic and no volume model", out.String())
		}
	})
	t.Run("ErrReplayStart", func(t *testing.T) {
		input := filepath.Join(dir, "in.jsonl")
		rec := `{"msg_id": "2015-a", "topic": "org.fedoraproject.prod.buildsys.tag", "timestamp": 1439121600, "msg": {}}` + "\n"
		if err := os.WriteFile(input, []byte(rec), 0o644); err != nil {
			t.Fatal(err)
		}
		dbPath := filepath.Join(dir, "t.db")
		var out, errb bytes.Buffer
		code := cmdReplay(context.Background(), []string{"--db", dbPath, "--scripts", dir, "--final", input}, &out, &errb)
		if code != 0 {
			t.Fatalf("replay exit %d\n%s%s", code, out.String(), errb.String())
		}
		for _, w := range wantErrs {
			if !strings.Contains(errb.String(), w) {
				t.Errorf("replay errors lack %q:\n%s", w, errb.String())
			}
		}
		db, err := sql.Open("sqlite3", dbPath)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		rows, err := db.Query(`SELECT ident FROM models ORDER BY ident`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var idents []string
		for rows.Next() {
			var id string
			rows.Scan(&id)
			idents = append(idents, id)
		}
		if got := strings.Join(idents, " "); got != "volume-by-topic-1m volume-by-topic-1s volume-by-topic-5s" {
			t.Errorf("models started: %s; want only volume-by-topic's", got)
		}
	})
}
