package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"

	"statscache/web"
)

// TestRecountVolumeByCategory replays a generated corpus of 50,000
// messages (with malformed records and duplicates), reads every page of
// /api/volume-by-category-1h?order=asc by following the Link headers, and
// compares the counts with an independent recount of the corpus file.
func TestRecountVolumeByCategory(t *testing.T) {
	corpus := genCorpus(t, 50000, 5, true)
	eachStore(t, func(t *testing.T, k storeKind) { recountVolumeByCategory(t, k, corpus) })
}

func recountVolumeByCategory(t *testing.T, k storeKind, corpus string) {
	db := k.newDB(t, "recount")
	out, err := command("replay", "--final", "--db", db, "--scripts", "../../scripts", corpus).CombinedOutput()
	if err != nil {
		t.Fatalf("replay: %v\n%s", err, out)
	}
	want := recount(t, corpus)
	if len(want) < 100 {
		t.Fatalf("recount found only %d buckets", len(want))
	}

	store, err := openStore(t.Context(), db, storeOptions{readOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	srv := httptest.NewServer(web.New(store, nil).Handler())
	defer srv.Close()

	got := map[string]int64{}
	url := srv.URL + "/api/volume-by-category-1h?order=asc"
	pages, prevTS := 0, math.Inf(-1)
	next := regexp.MustCompile(`<([^>]+)>; rel="next"`)
	for url != "" {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		var rows []struct {
			Timestamp float64 `json:"timestamp"`
			Category  string  `json:"category"`
			Volume    int64   `json:"volume"`
		}
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %s", url, resp.Status)
		}
		if err := json.NewDecoder(resp.Body).Decode(&rows); err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		pages++
		for _, r := range rows {
			if r.Timestamp < prevTS {
				t.Fatalf("page %d: timestamp %v after %v: not ascending", pages, r.Timestamp, prevTS)
			}
			prevTS = r.Timestamp
			k := fmt.Sprintf("%.0f|%s", r.Timestamp, r.Category)
			if _, dup := got[k]; dup {
				t.Fatalf("row %s served twice", k)
			}
			got[k] = r.Volume
		}
		url = ""
		if m := next.FindStringSubmatch(resp.Header.Get("Link")); m != nil {
			url = srv.URL + m[1]
		}
	}
	if pages < 2 {
		t.Fatalf("only %d page(s): pagination not exercised", pages)
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("bucket %s: API says %d, recount %d", k, got[k], w)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("bucket %s served but not in the recount", k)
		}
	}
	t.Logf("%d buckets over %d pages agree with the recount", len(want), pages)
}

// recount counts messages per (hour bucket end, category) straight from
// the corpus file, with the acceptance and dedupe rules written out again
// independently of the engine.
func recount(t *testing.T, path string) map[string]int64 {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	seen := map[string]bool{}
	counts := map[string]int64{}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<26)
	year := regexp.MustCompile(`^[0-9]{4}-`)
	for sc.Scan() {
		var rec map[string]any
		if json.Unmarshal(sc.Bytes(), &rec) != nil {
			continue
		}
		id, ok1 := rec["msg_id"].(string)
		topic, ok2 := rec["topic"].(string)
		ts, ok3 := rec["timestamp"].(float64)
		_, ok4 := rec["msg"]
		// The default limits: 8 MiB per record, 64 levels of nesting.
		if !ok1 || !ok2 || !ok3 || !ok4 || id == "" || topic == "" || len(sc.Bytes()) > 8<<20 || depth(rec) > 64 {
			continue
		}
		key := year.ReplaceAllString(id, "")
		if seen[key] {
			continue
		}
		seen[key] = true
		cat := "Unclassified"
		if parts := strings.Split(topic, "."); len(parts) > 3 {
			cat = parts[3]
		}
		end := math.Floor(ts/3600)*3600 + 3600
		counts[fmt.Sprintf("%.0f|%s", end, cat)]++
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return counts
}

// depth is the nesting depth of a decoded JSON value; a flat object is 1.
func depth(v any) int {
	d := 0
	switch x := v.(type) {
	case map[string]any:
		for _, e := range x {
			d = max(d, depth(e))
		}
		return d + 1
	case []any:
		for _, e := range x {
			d = max(d, depth(e))
		}
		return d + 1
	}
	return 0
}
