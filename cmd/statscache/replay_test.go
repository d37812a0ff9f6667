package main

import (
	"bufio"
	"bytes"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"statscache/cmd/statscache/kojitest"
	"statscache/engine"
)

// replayCmd runs "statscache replay" in this process and returns its
// standard output; a non-zero exit fails the test.
func replayCmd(t *testing.T, args ...string) string {
	t.Helper()
	var out, errs bytes.Buffer
	if code := run(append([]string{"replay"}, args...), &out, &errs); code != 0 {
		t.Fatalf("replay %s: exit %d\n%s%s", strings.Join(args, " "), code, out.String(), errs.String())
	}
	return out.String() + errs.String()
}

// summaryField reads one figure of replay's summary.
func summaryField(t *testing.T, out, name string) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + name + `:\s+(\d+)`).FindStringSubmatch(out)
	if m == nil {
		return "0"
	}
	return m[1]
}

// TestReplayBadLines replays files with bad lines first, in the middle and
// last, with a byte order mark and CRLF line ends, a saved page with a bad
// record, and a document that is not one: every good record is journaled
// and every bad line is kept in rejects under its file and line, as the
// reader's golden files say.
func TestReplayBadLines(t *testing.T) {
	files, err := filepath.Glob("../../engine/filesource/testdata/*.json*")
	if err != nil || len(files) < 5 {
		t.Fatalf("test files: %v %v", files, err)
	}
	var wantIDs, wantRejects []string
	outRe := regexp.MustCompile(`^(\S+?:\d+)(?:: message (\S+)| raw_messages\[\d+\]: rejected: |: rejected: )`)
	for _, f := range files {
		golden, err := os.ReadFile(strings.TrimSuffix(f, filepath.Ext(f)) + ".out")
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(strings.TrimSpace(string(golden)), "\n") {
			m := outRe.FindStringSubmatch(line)
			switch {
			case m == nil:
				t.Fatalf("golden line %q", line)
			case m[2] != "":
				wantIDs = append(wantIDs, m[2])
			default:
				wantRejects = append(wantRejects, m[1])
			}
		}
	}
	scripts := t.TempDir()
	copyScript(t, "volume.lua", scripts)
	db := filepath.Join(t.TempDir(), "bad.db")
	out := replayCmd(t, append([]string{"--db", db, "--scripts", scripts, "--final"}, files...)...)

	if got, want := summaryField(t, out, "accepted"), len(wantIDs); got != strconv.Itoa(want) {
		t.Errorf("accepted %s, want %d\n%s", got, want, out)
	}
	if got, want := summaryField(t, out, "rejected"), len(wantRejects); got != strconv.Itoa(want) {
		t.Errorf("rejected %s, want %d\n%s", got, want, out)
	}
	conn := openRO(t, db)
	if got, want := query(t, conn, `SELECT id FROM journal ORDER BY id`), sortedLines(wantIDs); got != want {
		t.Errorf("journal ids:\n%s\nwant:\n%s", got, want)
	}
	// Sources are the paths given, with the line; compare file:line.
	var gotRejects []string
	for _, src := range strings.Split(strings.TrimSpace(query(t, conn, `SELECT source FROM rejects`)), "\n") {
		src = strings.TrimPrefix(src, "../../engine/filesource/testdata/")
		src = strings.SplitN(src, " ", 2)[0]
		gotRejects = append(gotRejects, src)
	}
	if got, want := sortedLines(gotRejects), sortedLines(wantRejects); got != want {
		t.Errorf("rejects:\n%s\nwant:\n%s", got, want)
	}
	for _, src := range wantRejects {
		if !strings.Contains(out, "source=../../engine/filesource/testdata/"+src) && !strings.Contains(out, `source="../../engine/filesource/testdata/`+src) {
			t.Errorf("reject %s is not logged with its file and line", src)
		}
	}
	if n := countRows(t, db, `SELECT count(*) FROM rejects WHERE record IS NULL`); n != 0 {
		t.Errorf("%v rejects without their record", n)
	}
	// The bad records never reached a model.
	if got := countRows(t, db, `SELECT total(volume) FROM model_volume_1s`); got != float64(len(wantIDs)) {
		t.Errorf("volume-1s counts %v messages, want %d", got, len(wantIDs))
	}
}

func sortedLines(s []string) string {
	s = append([]string(nil), s...)
	sort.Strings(s)
	return strings.Join(s, "\n") + "\n"
}

func copyScript(t *testing.T, name, dir string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("../../scripts", name))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestReplayComposes replays a corpus in three consecutive parts, one
// replay after the other, and the whole corpus in one replay, and compares
// every model table, state, cursor and work queue: they must be equal both
// before and after "replay --final". The parts are cut inside a second,
// where the first record of the next part sorts before the last record of
// the part before it (same second, smaller key): the case that used to be
// flagged late.
func TestReplayComposes(t *testing.T) {
	corpus := genCorpus(t, 5000, 3, false)
	lines := readLines(t, corpus)
	cut1, cut2 := splitInSecond(t, lines, 2000), splitInSecond(t, lines, 3500)
	dir := t.TempDir()
	parts := []string{filepath.Join(dir, "a.jsonl"), filepath.Join(dir, "b.jsonl"), filepath.Join(dir, "c.jsonl")}
	for i, r := range [][2]int{{0, cut1}, {cut1, cut2}, {cut2, len(lines)}} {
		if err := os.WriteFile(parts[i], []byte(strings.Join(lines[r[0]:r[1]], "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	koji := httptest.NewServer(kojitest.New(kojitest.Options{}))
	defer koji.Close()
	flags := func(db string) []string {
		return []string{"--db", db, "--scripts", "../../scripts", "--service", "koji=" + koji.URL + "/kojihub", "--batch", "700"}
	}
	whole, split := filepath.Join(dir, "whole.db"), filepath.Join(dir, "split.db")
	out := replayCmd(t, append(flags(whole), corpus)...)
	if summaryField(t, out, "held back") == "0" {
		t.Errorf("the replay held nothing back:\n%s", out)
	}
	for _, p := range parts {
		out := replayCmd(t, append(flags(split), p)...)
		if late := summaryField(t, out, "late"); late != "0" {
			t.Errorf("replay of %s: %s late messages\n%s", filepath.Base(p), late, out)
		}
	}
	compareDBs(t, "before --final", whole, split)
	replayCmd(t, append(flags(whole), "--final")...)
	replayCmd(t, append(flags(split), "--final")...)
	compareDBs(t, "after --final", whole, split)
	for _, db := range []string{whole, split} {
		if n := countRows(t, db, `SELECT total(late) FROM journal`); n != 0 {
			t.Errorf("%s: %v late messages in the journal", filepath.Base(db), n)
		}
		if n := countRows(t, db, `SELECT count(*) FROM models WHERE status != 'ok'`); n != 0 {
			t.Errorf("%s: %v failed models", filepath.Base(db), n)
		}
		if n := countRows(t, db, `SELECT count(*) FROM journal j WHERE NOT EXISTS (SELECT 1 FROM models m WHERE (m.cursor_time_us, m.cursor_key) >= (j.time_us, j.key))`); n != 0 {
			t.Errorf("%s: %v messages after every cursor after --final", filepath.Base(db), n)
		}
	}
}

func compareDBs(t *testing.T, when, wantPath, gotPath string) {
	t.Helper()
	want, got := dumpDB(t, wantPath), dumpDB(t, gotPath)
	if len(want) < 20 {
		t.Fatalf("only %d tables in the dump", len(want))
	}
	for name, w := range want {
		if g := got[name]; g != w {
			t.Errorf("%s: %s differs between parts and whole:\n%s", when, name, firstDiff(w, g))
		}
	}
	if len(got) != len(want) {
		t.Errorf("%s: %d tables from the parts, %d from the whole", when, len(got), len(want))
	}
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) != "" {
			out = append(out, sc.Text())
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// splitInSecond returns a cut at or after line from where the records on
// both sides share a second and the first one after the cut sorts before
// the last one before it.
func splitInSecond(t *testing.T, lines []string, from int) int {
	t.Helper()
	var d engine.Decoder
	for i := from; i < len(lines); i++ {
		a, errA := d.Decode([]byte(lines[i-1]))
		b, errB := d.Decode([]byte(lines[i]))
		if errA == nil && errB == nil && a.TimeUS/1e6 == b.TimeUS/1e6 && b.Key < a.Key {
			return i
		}
	}
	t.Fatalf("no cut inside a second after line %d", from)
	return 0
}

// TestReplayLateness replays two parts whose messages overlap in time by
// several seconds (the last records before the cut and the first after it
// trade places): with --lateness covering the overlap the parts give the
// tables of one replay of everything; without it, some messages are late,
// which shows what the flag is for.
func TestReplayLateness(t *testing.T) {
	lines := readLines(t, genCorpus(t, 3000, 4, false))
	cut, moved := 1500, 8
	partA := append(append([]string(nil), lines[:cut-moved]...), lines[cut:cut+moved]...)
	partB := append(append([]string(nil), lines[cut-moved:cut]...), lines[cut+moved:]...)
	var d engine.Decoder
	timeOf := func(l string) int64 {
		m, err := d.Decode([]byte(l))
		if err != nil {
			t.Fatal(err)
		}
		return m.TimeUS
	}
	overlap := time.Duration(timeOf(partA[len(partA)-1])-timeOf(partB[0])) * time.Microsecond
	if overlap < 3*time.Second {
		t.Fatalf("the moved records are only %s older than the first part's newest", overlap)
	}
	dir := t.TempDir()
	a, b, whole := filepath.Join(dir, "a.jsonl"), filepath.Join(dir, "b.jsonl"), filepath.Join(dir, "whole.jsonl")
	write := func(path string, ls ...[]string) {
		var all []string
		for _, l := range ls {
			all = append(all, l...)
		}
		if err := os.WriteFile(path, []byte(strings.Join(all, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(a, partA)
	write(b, partB)
	write(whole, lines)
	scripts := t.TempDir()
	copyScript(t, "volume.lua", scripts)
	copyScript(t, "volume-by-category.lua", scripts)
	lateness := (overlap + time.Second).Truncate(time.Second).String()
	run := func(db string, flags ...string) (late int) {
		for _, f := range []string{a, b} {
			out := replayCmd(t, append(append([]string{"--db", db, "--scripts", scripts}, flags...), f)...)
			n, _ := strconv.Atoi(summaryField(t, out, "late"))
			late += n
		}
		replayCmd(t, "--db", db, "--scripts", scripts, "--final")
		return late
	}
	ref := filepath.Join(dir, "ref.db")
	replayCmd(t, "--db", ref, "--scripts", scripts, "--final", whole)
	if late := run(filepath.Join(dir, "lateness.db"), "--lateness", lateness); late != 0 {
		t.Errorf("with --lateness %s: %d late messages", lateness, late)
	}
	compareDBs(t, "with --lateness "+lateness, ref, filepath.Join(dir, "lateness.db"))
	if late := run(filepath.Join(dir, "none.db")); late == 0 {
		t.Errorf("without --lateness no message was late: the parts do not overlap by more than a second")
	}
}
