package main

import (
	"bufio"
	"bytes"
	"database/sql"
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"statscache/engine"
)

// The contributor models are checked against a recount written here from
// their definitions, over a generated corpus spanning more than six months:
// the users of every message as "statscache meta" reports them, minus the
// names in scripts/lib/system_accounts.lua, grouped by ISO week and month
// with the time package. Nothing of the models' code or of engine.Bucket is
// shared with the recount.

// contribScripts copies the three contributor models, lib/ and meta/ into
// a scripts directory of their own, so the replays run only them.
func contribScripts(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "scripts")
	for _, f := range []string{"contributors.lua", "contributor-retention.lua", "activity-by-category.lua"} {
		copyFile(t, filepath.Join("../../scripts", f), filepath.Join(dir, f))
	}
	for _, sub := range []string{"lib", "meta"} {
		err := filepath.WalkDir(filepath.Join("../../scripts", sub), func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			rel, _ := filepath.Rel("../../scripts", p)
			copyFile(t, p, filepath.Join(dir, rel))
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// genSpanCorpus writes a corpus of n messages (genCorpus's: the shared
// generator's when it is there) whose times are spread evenly over days
// days from 2015-08-09, keeping their order and whole seconds. The
// generator cannot go slower than one message every 20 s on average, so
// a corpus that spans months would otherwise need millions of messages.
func genSpanCorpus(t *testing.T, n int, seed int64, days int) string {
	t.Helper()
	src := genCorpus(t, n, seed, false)
	in, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	var recs []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(in))
	sc.Buffer(nil, 1<<26)
	for sc.Scan() {
		var r map[string]any
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		recs = append(recs, r)
	}
	if len(recs) < 2 {
		t.Fatalf("%s: %d records", src, len(recs))
	}
	t0, _ := recs[0]["timestamp"].(float64)
	t1, _ := recs[len(recs)-1]["timestamp"].(float64)
	scale := float64(days) * 86400 / max(t1-t0, 1)
	const start = 1439078400 // 2015-08-09 00:00 UTC, a Sunday
	var out bytes.Buffer
	for _, r := range recs {
		ts, _ := r["timestamp"].(float64)
		r["timestamp"] = float64(int64(start + (ts-t0)*scale))
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		out.Write(b)
		out.WriteByte('\n')
	}
	path := filepath.Join(t.TempDir(), fmt.Sprintf("span-%d-%d-%dd.jsonl", n, seed, days))
	if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// contribRecord is one corpus message as the recount sees it.
type contribRecord struct {
	time     time.Time
	category string
	people   []string // meta.usernames minus the system accounts
}

// readContribCorpus reads the corpus and, line by line, what "statscache
// meta" reports for it, drops repeated ids (by dedupe key) and the system
// accounts.
func readContribCorpus(t *testing.T, corpus, scripts string) []contribRecord {
	t.Helper()
	src, err := os.ReadFile(filepath.Join(scripts, "lib", "system_accounts.lua"))
	if err != nil {
		t.Fatal(err)
	}
	system := map[string]bool{}
	for _, m := range regexp.MustCompile(`"([^"]*)"`).FindAllSubmatch(src, -1) {
		system[string(m[1])] = true
	}
	if len(system) < 10 || !system["bodhi"] || !system["releng"] {
		t.Fatalf("system_accounts.lua: read %d names (%v): the file's format changed", len(system), system)
	}
	metaOut, err := command("meta", "--scripts", scripts, corpus).Output()
	if err != nil {
		t.Fatalf("statscache meta: %v", err)
	}
	in, err := os.ReadFile(corpus)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(in), "\n"), "\n")
	metas := strings.Split(strings.TrimSuffix(string(metaOut), "\n"), "\n")
	if len(lines) != len(metas) {
		t.Fatalf("statscache meta printed %d lines for %d records", len(metas), len(lines))
	}
	seen := map[string]bool{}
	var out []contribRecord
	withPeople, filtered := 0, 0
	for i, l := range lines {
		var rec struct {
			ID    string  `json:"msg_id"`
			Topic string  `json:"topic"`
			Time  float64 `json:"timestamp"`
		}
		var m struct {
			Usernames *[]string `json:"usernames"`
		}
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("corpus line %d: %v", i+1, err)
		}
		if err := json.Unmarshal([]byte(metas[i]), &m); err != nil || m.Usernames == nil {
			t.Fatalf("meta line %d: %v: %.200s", i+1, err, metas[i])
		}
		key := engine.DedupeKey(rec.ID)
		if seen[key] {
			continue
		}
		seen[key] = true
		r := contribRecord{time: time.Unix(int64(rec.Time), 0).UTC(), category: engine.Category(rec.Topic)}
		for _, u := range *m.Usernames {
			if system[u] {
				filtered++
				continue
			}
			r.people = append(r.people, u)
		}
		if len(r.people) > 0 {
			withPeople++
		}
		out = append(out, r)
	}
	if withPeople < len(out)/10 || filtered == 0 {
		t.Fatalf("%d of %d messages name a contributor, %d system accounts left out: the corpus does not exercise the models", withPeople, len(out), filtered)
	}
	return out
}

// weekEnd is the Monday 00:00 UTC after t; monthEnd the first of the next
// month.
func weekEnd(t time.Time) time.Time {
	d := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	back := (int(d.Weekday()) + 6) % 7 // days since Monday
	return d.AddDate(0, 0, 7-back)
}

func monthEnd(t time.Time) time.Time {
	return time.Date(t.Year(), t.Month()+1, 1, 0, 0, 0, 0, time.UTC)
}

// recountContributors computes the contributors table for one kind of
// period: a row per period from the first message's to the last's.
func recountContributors(recs []contribRecord, end func(time.Time) time.Time) map[string]string {
	active := map[time.Time]map[string]bool{}
	first, last := end(recs[0].time), end(recs[0].time)
	for _, r := range recs {
		p := end(r.time)
		if p.Before(first) {
			first = p
		}
		if p.After(last) {
			last = p
		}
		if active[p] == nil {
			active[p] = map[string]bool{}
		}
		for _, u := range r.people {
			active[p][u] = true
		}
	}
	out := map[string]string{}
	ever, prev := map[string]bool{}, map[string]bool{}
	for p := first; !p.After(last); p = end(p) {
		a := active[p]
		var nw, retained, returning, churned int
		for u := range a {
			switch {
			case !ever[u]:
				nw++
			case prev[u]:
				retained++
			default:
				returning++
			}
		}
		for u := range prev {
			if !a[u] {
				churned++
			}
		}
		out[fmt.Sprint(p.Unix())] = fmt.Sprintf("active=%d new=%d retained=%d returning=%d churned=%d", len(a), nw, retained, returning, churned)
		for u := range a {
			ever[u] = true
		}
		prev = a
	}
	return out
}

func recountRetention(recs []contribRecord) map[string]string {
	cohort := map[string]time.Time{}
	active := map[time.Time]map[string]bool{}
	for _, r := range recs {
		w := weekEnd(r.time)
		for _, u := range r.people {
			if _, ok := cohort[u]; !ok {
				cohort[u] = w
			}
			if active[w] == nil {
				active[w] = map[string]bool{}
			}
			active[w][u] = true
		}
	}
	counts := map[[2]time.Time]int{}
	for w, a := range active {
		for u := range a {
			counts[[2]time.Time{w, cohort[u]}]++
		}
	}
	out := map[string]string{}
	for k, n := range counts {
		age := int(k[0].Sub(k[1]).Hours()) / (7 * 24)
		out[fmt.Sprintf("%d|%d", k[0].Unix(), k[1].Unix())] = fmt.Sprintf("age=%d active=%d", age, n)
	}
	return out
}

func recountActivity(recs []contribRecord) map[string]string {
	type wc struct {
		w   time.Time
		cat string
	}
	msgs := map[wc]int{}
	people := map[wc]map[string]bool{}
	for _, r := range recs {
		k := wc{weekEnd(r.time), r.category}
		msgs[k]++
		if people[k] == nil {
			people[k] = map[string]bool{}
		}
		for _, u := range r.people {
			people[k][u] = true
		}
	}
	out := map[string]string{}
	for k, n := range msgs {
		prev := msgs[wc{k.w.AddDate(0, 0, -7), k.cat}]
		out[fmt.Sprintf("%d|%s", k.w.Unix(), k.cat)] = fmt.Sprintf("messages=%d contributors=%d previous_messages=%d", n, len(people[k]), prev)
	}
	return out
}

// contribTables reads the four contributor tables of a database in the
// recount's form.
func contribTables(t *testing.T, path string) map[string]map[string]string {
	t.Helper()
	db := openRO(t, path)
	read := func(q string, format func(vals []any) (string, string)) map[string]string {
		rows, err := db.Query(q)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		defer rows.Close()
		cols, _ := rows.Columns()
		out := map[string]string{}
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			k, v := format(vals)
			if _, dup := out[k]; dup {
				t.Fatalf("%s: row %s twice", q, k)
			}
			out[k] = v
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return out
	}
	num := func(v any) int64 {
		switch x := v.(type) {
		case int64:
			return x
		case float64:
			return int64(x)
		}
		t.Fatalf("not a number: %#v", v)
		return 0
	}
	contributors := func(v []any) (string, string) {
		return fmt.Sprint(num(v[0])), fmt.Sprintf("active=%d new=%d retained=%d returning=%d churned=%d", num(v[1]), num(v[2]), num(v[3]), num(v[4]), num(v[5]))
	}
	const cq = `SELECT timestamp, active, "new", retained, "returning", churned FROM `
	return map[string]map[string]string{
		"contributors-1w":  read(cq+"model_contributors_1w", contributors),
		"contributors-1mo": read(cq+"model_contributors_1mo", contributors),
		"contributor-retention-1w": read(`SELECT timestamp, cohort, age, active FROM model_contributor_retention_1w`, func(v []any) (string, string) {
			return fmt.Sprintf("%d|%d", num(v[0]), num(v[1])), fmt.Sprintf("age=%d active=%d", num(v[2]), num(v[3]))
		}),
		"activity-by-category-1w": read(`SELECT timestamp, category, messages, contributors, previous_messages FROM model_activity_by_category_1w`, func(v []any) (string, string) {
			return fmt.Sprintf("%d|%s", num(v[0]), v[1]), fmt.Sprintf("messages=%d contributors=%d previous_messages=%d", num(v[2]), num(v[3]), num(v[4]))
		}),
	}
}

// compareContrib reports every row that differs between the recount and
// the tables.
func compareContrib(t *testing.T, label string, want, got map[string]map[string]string) {
	t.Helper()
	for ident, w := range want {
		g := got[ident]
		var bad []string
		for k, wv := range w {
			if gv, ok := g[k]; !ok {
				bad = append(bad, fmt.Sprintf("missing %s: %s", k, wv))
			} else if gv != wv {
				bad = append(bad, fmt.Sprintf("row %s: %s, recount %s", k, gv, wv))
			}
		}
		for k, gv := range g {
			if _, ok := w[k]; !ok {
				bad = append(bad, fmt.Sprintf("unexpected %s: %s", k, gv))
			}
		}
		sort.Strings(bad)
		if len(bad) > 0 {
			if len(bad) > 10 {
				bad = append(bad[:10], fmt.Sprintf("... %d more", len(bad)-10))
			}
			t.Errorf("%s: %s: %d of %d rows differ from the recount:\n  %s", label, ident, len(bad), len(w), strings.Join(bad, "\n  "))
		}
	}
}

// TestRecountContributors replays a corpus spanning 200 days (29 ISO
// weeks, 7 months) through the three contributor models and compares every
// column of every row with the recount; then does it again with the replay
// killed (SIGKILL) at random instants and restarted until it finishes.
func TestRecountContributors(t *testing.T) {
	const days = 200
	corpus := genSpanCorpus(t, 30000, 15, days)
	scripts := contribScripts(t)
	recs := readContribCorpus(t, corpus, scripts)
	want := map[string]map[string]string{
		"contributors-1w":          recountContributors(recs, weekEnd),
		"contributors-1mo":         recountContributors(recs, monthEnd),
		"contributor-retention-1w": recountRetention(recs),
		"activity-by-category-1w":  recountActivity(recs),
	}
	if n := len(want["contributors-1w"]); n < 28 {
		t.Fatalf("the recount has %d weeks: the corpus does not span six months", n)
	}
	if n := len(want["contributors-1mo"]); n < 7 {
		t.Fatalf("the recount has %d months", n)
	}
	// The corpus must have contributors who come back after weeks away, or
	// returning is never exercised: about 4,100 returns from the shared
	// generator (5,000 users), 30 from the built-in one (the sample's 70
	// users, most of them active every week).
	returning := 0
	for _, v := range want["contributors-1w"] {
		var a, n, r, ret, c int
		fmt.Sscanf(v, "active=%d new=%d retained=%d returning=%d churned=%d", &a, &n, &r, &ret, &c)
		returning += ret
	}
	if returning < 20 {
		t.Fatalf("only %d returning contributors over the corpus", returning)
	}
	t.Logf("%d messages over %d days: %d weeks, %d months, %d cohort cells, %d category weeks, %d returns",
		len(recs), days, len(want["contributors-1w"]), len(want["contributors-1mo"]),
		len(want["contributor-retention-1w"]), len(want["activity-by-category-1w"]), returning)

	dir := t.TempDir()
	ref := filepath.Join(dir, "ref.db")
	start := time.Now()
	if out, err := command("replay", "--final", "--db", ref, "--scripts", scripts, corpus).CombinedOutput(); err != nil {
		t.Fatalf("replay: %v\n%s", err, out)
	}
	full := time.Since(start)
	compareContrib(t, "uninterrupted replay", want, contribTables(t, ref))

	// Kill the replay with SIGKILL until it finishes: the first time while
	// the models process (the journal takes the first part of a run), then
	// at random instants of what is left; each run resumes from what the
	// last one committed.
	crash := filepath.Join(dir, "crash.db")
	rng := rand.New(rand.NewSource(testSeed(t)))
	kills, midProcessing := 0, 0
	for i := 0; i < 12; i++ {
		cmd := command("replay", "--final", "--db", crash, "--scripts", scripts, "--batch", "200", "--batch-interval", "20ms", corpus)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		kill := time.After(time.Duration(rng.Int63n(int64(full)/3)) + 5*time.Millisecond)
		stopPeek := make(chan struct{})
		if i == 0 {
			// The first kill lands while the models process: as soon as
			// every model has committed part of the corpus (a random
			// instant missed that part once the models got faster).
			kill = modelsUnderway(crash, len(recs), stopPeek)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		finished := false
		select {
		case err := <-done:
			close(stopPeek)
			if err != nil {
				t.Fatalf("run %d ended on its own with %v\n%s", i, err, out.String())
			}
			finished = true
		case <-kill:
			close(stopPeek)
			cmd.Process.Kill() // SIGKILL
			<-done
			kills++
			// Processed, committed and not finished: the kill landed in
			// the middle of the models' work.
			if n := countRows(t, crash, `SELECT min(processed) FROM models`); n > 0 && n < float64(len(recs)) {
				midProcessing++
			}
		}
		if finished {
			break
		}
	}
	if out, err := command("replay", "--final", "--db", crash, "--scripts", scripts, corpus).CombinedOutput(); err != nil {
		t.Fatalf("final replay: %v\n%s", err, out)
	}
	t.Logf("%d kills at random instants, %d of them with the models part way (uninterrupted replay: %s)", kills, midProcessing, full.Round(time.Millisecond))
	if midProcessing == 0 {
		t.Fatalf("no kill landed while the models were part way through the corpus")
	}
	compareContrib(t, "after SIGKILLs", want, contribTables(t, crash))
}

// modelsUnderway returns a channel that is ready once every model of the
// database at path has committed part of the n messages, and not all of
// them; it looks every few milliseconds until stop is closed.
func modelsUnderway(path string, n int, stop <-chan struct{}) <-chan time.Time {
	ready := make(chan time.Time, 1)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(3 * time.Millisecond):
			}
			db, err := sql.Open("sqlite3", "file:"+path+"?mode=ro&_busy_timeout=1000")
			if err != nil {
				continue
			}
			var low sql.NullFloat64
			err = db.QueryRow(`SELECT min(processed) FROM models`).Scan(&low)
			db.Close()
			if err == nil && low.Valid && low.Float64 > 0 && low.Float64 < float64(n) {
				ready <- time.Now()
				return
			}
		}
	}()
	return ready
}
