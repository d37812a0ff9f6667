package meta

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"statscache/engine"
)

var rulesDir = filepath.Join("..", "..", "scripts", "meta")

func load(t testing.TB) *Library {
	t.Helper()
	l, err := Load(rulesDir, nil)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func mustCompute(t testing.TB, l *Library, rec string) *Result {
	t.Helper()
	r, err := l.ComputeRecord("", []byte(rec))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestUnknownTopicGivesDefault(t *testing.T) {
	l := load(t)
	r := mustCompute(t, l, `{"topic": "org.example.prod.nothing.here", "msg": {"agent": "ralph"}}`)
	j, _ := json.Marshal(r)
	want := `{"usernames":[],"packages":[],"objects":[],"agent":null,"title":"nothing.here","subtitle":"","link":"","icon":null,"secondary_icon":null,"processor":"unhandled"}`
	if string(j) != want {
		t.Errorf("got  %s\nwant %s", j, want)
	}
	r = mustCompute(t, l, `{"topic": "/topic/org.example.x", "msg": {}}`)
	if r.Title != "/topic/org.example.x" {
		t.Errorf("STOMP title = %q", r.Title)
	}
}

func TestMissingFieldsGiveDefaults(t *testing.T) {
	l := load(t)
	for _, p := range l.Processors() {
		if p.Default {
			continue
		}
		// A topic for the processor with an empty body, a body of the
		// wrong types, and no body at all.
		topic := strings.NewReplacer(`\.`, ".", "(dev|stg|prod)", "prod", "(dev|stage|prod)", "prod").Replace(p.Prefix) +
			"." + strings.ToLower(p.Name) + ".some.event.complete"
		for _, body := range []string{`{}`, `{"msg": 1, "update": "x", "commit": [], "agent": 5}`, `[]`, `null`} {
			r, err := l.ComputeRecord(topic, []byte(`{"topic":"`+topic+`","msg":`+body+`}`))
			if err != nil {
				t.Errorf("%s %s: %v", topic, body, err)
				continue
			}
			if r.Processor != p.Name {
				t.Errorf("%s: processor %q, want %q", topic, r.Processor, p.Name)
			}
			if r.Usernames == nil || r.Packages == nil || r.Objects == nil {
				t.Errorf("%s: nil set in %+v", topic, r)
			}
		}
	}
	// A record without msg: a bare body.
	r := mustCompute(t, l, `{"topic":"org.fedoraproject.prod.bodhi.update.comment"}`)
	if r.Processor != "Bodhi" || len(r.Usernames) != 0 {
		t.Errorf("bare record: %+v", r)
	}
}

// rulesFolder returns a new rules folder holding the shipped rules'
// shared files (_lib.lua and _default.lua), to which a test adds its own.
func rulesFolder(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range []string{"_lib.lua", "_default.lua"} {
		b, err := os.ReadFile(filepath.Join(rulesDir, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestSyntaxErrorNamesFileAndLine(t *testing.T) {
	dir := rulesFolder(t)
	os.WriteFile(filepath.Join(dir, "broken.lua"), []byte("local P = processor{name = 'x'}\n\nfunction P.subtitle(msg)\n  return msg.msg.\nend\n"), 0o644)
	_, err := Load(dir, nil)
	if err == nil {
		t.Fatal("no error for a syntax error")
	}
	if !strings.Contains(err.Error(), "broken.lua") || !strings.Contains(err.Error(), "line:5") {
		t.Errorf("error does not name file and line: %v", err)
	}
	// A runtime error while loading names the file and line too.
	os.WriteFile(filepath.Join(dir, "broken.lua"), []byte("\nlocal x = nil\nx.y = 1\n"), 0o644)
	_, err = Load(dir, nil)
	if err == nil || !strings.Contains(err.Error(), "broken.lua:3") {
		t.Errorf("runtime error does not name file and line: %v", err)
	}
}

func TestSandbox(t *testing.T) {
	dir := rulesFolder(t)
	os.WriteFile(filepath.Join(dir, "x.lua"), []byte(`
local P = processor{name = "x"}
function P.subtitle(msg)
  local out = {}
  for _, g in ipairs({"dofile", "loadfile", "load", "loadstring", "require", "collectgarbage", "os", "io"}) do
    if _G[g] ~= nil then out[#out + 1] = g end
  end
  return table.concat(out, ",")
end
`), 0o644)
	l, err := Load(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := mustCompute(t, l, `{"topic":"org.fedoraproject.prod.x.y","msg":{}}`)
	if r.Subtitle != "" {
		t.Errorf("sandbox leaves %s", r.Subtitle)
	}
}

func TestComputeMessageAndConcurrency(t *testing.T) {
	l := load(t)
	cases := readCases(t, filepath.Join("testdata", "cases.jsonl"))
	want := make([][]byte, len(cases))
	for i, c := range cases {
		r, err := l.ComputeRecord("", c.Msg)
		if err != nil {
			t.Fatal(err)
		}
		want[i], _ = json.Marshal(r)
	}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for rep := 0; rep < 3; rep++ {
				for i, c := range cases {
					m := &engine.Message{Topic: c.Topic, Raw: c.Msg}
					r, err := l.Compute(m)
					if err != nil {
						t.Error(err)
						return
					}
					r2, _ := l.Compute(m) // memoized
					if r2 != r {
						t.Error("Compute is not memoized on the message")
					}
					if got, _ := json.Marshal(r); !bytes.Equal(got, want[i]) {
						t.Errorf("%s: concurrent result differs:\n%s\n%s", c.Case, got, want[i])
					}
				}
			}
		}()
	}
	wg.Wait()
}

func TestRunJSONL(t *testing.T) {
	l := load(t)
	in := strings.Join([]string{
		`{"topic":"org.fedoraproject.prod.git.mass_branch.start","msg":{"agent":"dgilmore"},"timestamp":1}`,
		`not json`,
		``,
		`{"case":"x","msg":{"topic":"org.fedoraproject.prod.fas.user.create","msg":{"agent":"ralph","user":"toshio"}}}`,
		`{"topic":"org.fedoraproject.prod.x","body":{"agent":"a"},"headers":{}}`,
		`[1]`,
	}, "\n")
	var out bytes.Buffer
	if err := RunJSONL(strings.NewReader(in), &out, l); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 5 {
		t.Fatalf("got %d lines:\n%s", len(lines), out.String())
	}
	for i, sub := range []string{`"subtitle":"dgilmore started a mass branch"`, `"line":2`, `"New FAS account:  'toshio'  (created by 'ralph')"`, `"processor":"unhandled"`, `"line":6`} {
		if !strings.Contains(lines[i], sub) {
			t.Errorf("line %d = %s, want it to contain %s", i, lines[i], sub)
		}
	}
}

func FuzzCompute(f *testing.F) {
	l, err := Load(rulesDir, nil)
	if err != nil {
		f.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join("testdata", "cases.jsonl")); err == nil {
		for _, line := range bytes.Split(b, []byte("\n")) {
			var c corpusCase
			if json.Unmarshal(line, &c) == nil && c.Msg != nil {
				f.Add(c.Topic, []byte(c.Msg))
			}
		}
	}
	f.Add("org.fedoraproject.prod.bodhi.update.comment", []byte(`{"msg":{"comment":{"text":null}}}`))
	f.Fuzz(func(t *testing.T, topic string, rec []byte) {
		r, err := l.ComputeRecord(topic, rec)
		if err == nil && (r.Usernames == nil || r.Packages == nil || r.Objects == nil) {
			t.Fatal("nil set")
		}
	})
}

func BenchmarkCompute(b *testing.B) {
	l := load(b)
	path := filepath.Join("..", "..", "..", "shared", "corpus", "fedmsg-meta-cases.jsonl")
	if _, err := os.Stat(path); err != nil {
		path = filepath.Join("testdata", "cases.jsonl")
	}
	cases := readCases(b, path)
	// all: every helper, as `statscache meta` does; users+packages: what
	// the shipped models ask for, on a new message each time.
	for _, bc := range []struct {
		name string
		hs   Helpers
	}{{"all", AllHelpers}, {"users+packages", Usernames | Packages}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				c := cases[i%len(cases)]
				m := &engine.Message{Topic: c.Topic, Raw: c.Msg}
				if _, err := l.ComputeSome(m, bc.hs); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestLazyMessage checks that a rule sees the lazily converted message as
// it would a plain table: walking it with pairs, next and ipairs, reading
// missing and null members, and returning a part of it.
func TestLazyMessage(t *testing.T) {
	dir := t.TempDir()
	lib, err := os.ReadFile(filepath.Join(rulesDir, "_lib.lua"))
	if err != nil {
		t.Fatal(err)
	}
	rules := map[string]string{
		"_lib.lua":     string(lib),
		"_default.lua": `processor{name = "unhandled", default = true}`,
		"probe.lua": `
local u = util
local P = processor{name = "probe"}
function P.usernames(msg) return msg.msg.people end            -- an object, returned as is
function P.packages(msg) return u.keys(msg.msg.deps) end        -- pairs on an unread object
function P.objects(msg)
  local m, out = msg.msg, {}
  for i, x in ipairs(m.list) do out[#out + 1] = u.str(i) .. "=" .. u.str(x) end
  out[#out + 1] = "empty:" .. u.str(u.truthy(m.empty))          -- next on an empty object
  out[#out + 1] = "null:" .. u.str(m.gone)
  out[#out + 1] = "missing:" .. u.str(m.nothere)
  out[#out + 1] = "deep:" .. u.str(u.get(m, "a", "b", "c"))
  local n = 0
  for k in pairs(msg) do n = n + 1 end                           -- the envelope itself
  out[#out + 1] = "envkeys:" .. n
  return out
end
function P.subtitle(msg) return msg.topic .. " " .. u.str(msg.username) end
`,
	}
	for name, src := range rules {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	l, err := Load(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	rec := `{"topic": "org.fedoraproject.prod.probe.x", "username": "ralph", "msg": {
		"people": {"alice": true, "bob": true}, "deps": {"z": 1, "a": {"q": 2}},
		"list": ["x", null, 3], "empty": {}, "gone": null, "a": {"b": {"c": "deep"}}}}`
	for range 2 { // the second run reuses the pooled state
		r := mustCompute(t, l, rec)
		j, _ := json.Marshal(r)
		want := `{"usernames":["alice","bob"],"packages":["a","z"],"objects":["1=x","2=False","3=3","deep:deep","empty:False","envkeys:3","missing:None","null:None"],"agent":null,"title":"probe.x","subtitle":"org.fedoraproject.prod.probe.x ralph","link":"","icon":null,"secondary_icon":null,"processor":"probe"}`
		if string(j) != want {
			t.Errorf("got  %s\nwant %s", j, want)
		}
	}
}

func TestCasualDelta(t *testing.T) {
	ref := time.Date(2024, 1, 31, 10, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		at   string
		want string
	}{
		{"2024-01-31 12:15:32", "in 2 hours"},
		{"2024-01-31 10:07:40", "in 7 minutes"},
		{"2024-01-31 10:00:56", "right now"},
		{"2024-02-01 10:00:00", "in 1 day"},
		{"2024-02-29 10:00:00", "in 1 month"},
		{"2025-03-01 10:00:00", "in 1 year"},
		{"2024-01-31 08:00:00", "in -2 hours"},
	} {
		at, _ := time.Parse("2006-01-02 15:04:05", c.at)
		if got := casualDelta(at, ref); got != c.want {
			t.Errorf("casualDelta(%s) = %q, want %q", c.at, got, c.want)
		}
	}
}

// TestRuleLimits: a rule that loops, or whose built-ins allocate without
// bound, is stopped at the limit; the message gets an empty answer with
// the reason, every later caller gets that answer at once, and the
// library goes on answering other messages.
func TestRuleLimits(t *testing.T) {
	// The allocating case gets a time limit far above what its 64 MiB
	// take even under the race detector on a loaded machine, so only the
	// memory limit can stop it.
	for _, tc := range []struct {
		dir, reason      string
		timeout, maxWait time.Duration
	}{
		{"looping", "meta: looping: the rules ran longer than the limit of 300ms", 300 * time.Millisecond, 1300 * time.Millisecond},
		{"allocating", "meta: allocating: built-in functions allocated more than the limit of 64 MiB during one call", time.Minute, 20 * time.Second},
	} {
		t.Run(tc.dir, func(t *testing.T) {
			l, err := Load(filepath.Join("testdata", tc.dir), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			l.SetLimits(Limits{Timeout: tc.timeout, MaxAlloc: 64 << 20})
			var d engine.Decoder
			msg, err := d.Decode([]byte(`{"msg_id": "2024-1", "topic": "org.example.prod.x.y", "timestamp": 1, "msg": {}}`))
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			var wg sync.WaitGroup
			results := make([]*Result, 4)
			for i := range results {
				wg.Add(1)
				go func() {
					defer wg.Done()
					r, err := l.Compute(msg)
					if err != nil {
						t.Errorf("compute: %v", err)
					}
					results[i] = r
				}()
			}
			wg.Wait()
			if took := time.Since(start); took > tc.maxWait {
				t.Errorf("callers waited %s, want at most %s", took, tc.maxWait)
			}
			for _, r := range results {
				if r == nil {
					continue
				}
				if r.Err != tc.reason || r.Title != "" || len(r.Usernames) != 0 {
					t.Errorf("got %+v, want an empty answer with reason %q", r, tc.reason)
				}
			}
			if l.Errors() < 1 {
				t.Errorf("errors = %d, want the stop recorded", l.Errors())
			}
		})
	}
}

// TestJSONNull: a rule sees JSON null as models do (sandbox.JSON): nil
// for a member, false inside an array, which keeps its length.
func TestJSONNull(t *testing.T) {
	l, err := Load(filepath.Join("testdata", "nulls"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	r := mustCompute(t, l, `{"topic": "org.example.prod.x", "msg": {"list": [1, null, "x"], "gone": null}}`)
	if want := "3 1 false x nil"; r.Title != want {
		t.Errorf("title %q, want %q", r.Title, want)
	}
}

// TestComputeSomeEqualsCompute: asking for the helpers one at a time, in
// any order, gives each helper the answer computing all of them gives,
// for every bundled case and for a fedora-messaging record whose headers
// add users and an agent; once all were asked, the whole result is the
// same too.
func TestComputeSomeEqualsCompute(t *testing.T) {
	l := load(t)
	cases := readCases(t, filepath.Join("testdata", "cases.jsonl"))
	headed := `{"topic": "org.fedoraproject.prod.bodhi.update.comment", "agent_name": "zoe",
		"headers": {"fedora_messaging_user_zoe": true, "fedora_messaging_rpm_zlib": true, "fedora_messaging_group_packager": true},
		"msg": {"comment": {"user": {"name": "ralph"}, "text": "x", "update": {"title": "kernel-6.7.5-200.fc39", "user": {"name": "ralph"}}}}}`
	cases = append(cases, corpusCase{Case: "headers", Topic: "org.fedoraproject.prod.bodhi.update.comment", Msg: []byte(headed)})
	rng := rand.New(rand.NewPCG(1, 2))
	asked := 0
	for _, c := range cases {
		full, err := l.ComputeRecord(c.Topic, c.Msg)
		if err != nil {
			t.Fatal(err)
		}
		wantJSON, _ := json.Marshal(full)
		for round := 0; round < 3; round++ {
			m := &engine.Message{Topic: c.Topic, Raw: c.Msg}
			order := rng.Perm(len(helperNames))
			for _, i := range order {
				r, err := l.ComputeSome(m, Helpers(1)<<i)
				if err != nil {
					t.Fatal(err)
				}
				asked++
				h := helperNames[i]
				if g, w := got(r, h), got(full, h); !reflect.DeepEqual(g, w) {
					t.Errorf("%s: %s asked alone (order %v) = %v, computing all gives %v", c.Case, h, order, g, w)
				}
				if r.Processor != full.Processor || !reflect.DeepEqual(r.Groups, full.Groups) {
					t.Errorf("%s: processor %q groups %q, want %q %q", c.Case, r.Processor, r.Groups, full.Processor, full.Groups)
				}
			}
			r, _ := l.ComputeSome(m, 0)
			if g, _ := json.Marshal(r); !bytes.Equal(g, wantJSON) {
				t.Errorf("%s: after every helper was asked:\n%s\nwant\n%s", c.Case, g, wantJSON)
			}
		}
	}
	if asked < 100 {
		t.Fatalf("only %d helpers asked: the cases did not load", asked)
	}
}

// TestComputeSomeRunsOnlyWhatIsAsked: a helper nobody asks for is not
// run: a title rule that fails counts an error only once a model asks for
// the title, and only once per message.
func TestComputeSomeRunsOnlyWhatIsAsked(t *testing.T) {
	dir := rulesFolder(t)
	os.WriteFile(filepath.Join(dir, "x.lua"), []byte(`
local P = processor{name = "x"}
function P.usernames(msg) return {msg.msg.user} end
function P.title(msg) error("title rule broken") end
`), 0o644)
	l, err := Load(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	m := &engine.Message{Topic: "org.fedoraproject.prod.x.y", Raw: []byte(`{"topic":"org.fedoraproject.prod.x.y","msg":{"user":"ada"}}`)}
	r, err := l.ComputeSome(m, Usernames)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(r.Usernames, []string{"ada"}) {
		t.Fatalf("usernames %q, want [ada]", r.Usernames)
	}
	if n := l.Errors(); n != 0 {
		t.Errorf("%d rule errors after asking for usernames only: the title rule ran", n)
	}
	for i := 0; i < 2; i++ {
		if _, err := l.ComputeSome(m, Title|Usernames); err != nil {
			t.Fatal(err)
		}
	}
	if n := l.Errors(); n != 1 {
		t.Errorf("%d rule errors after asking for the title twice, want 1", n)
	}
}

// TestExpectedHelpersComputedTogether: a helper some caller asked for on
// its last message (Expect) is computed with the first computation of a
// message that lacks it, not in one of its own when asked; once no caller
// expects it, it is computed only when asked. The packages rule fails, so
// Errors counts each time it runs.
func TestExpectedHelpersComputedTogether(t *testing.T) {
	dir := rulesFolder(t)
	os.WriteFile(filepath.Join(dir, "x.lua"), []byte(`
local P = processor{name = "x"}
function P.usernames(msg) return {msg.msg.user} end
function P.packages(msg) error("packages rule ran") end
`), 0o644)
	l, err := Load(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	msg := func() *engine.Message {
		return &engine.Message{Topic: "org.fedoraproject.prod.x.y", Raw: []byte(`{"topic":"org.fedoraproject.prod.x.y","msg":{"user":"ada"}}`)}
	}
	ask := func(m *engine.Message, hs Helpers, wantErrors int64) {
		t.Helper()
		r, err := l.ComputeSome(m, hs)
		if err != nil {
			t.Fatal(err)
		}
		if hs&Usernames != 0 && !reflect.DeepEqual(r.Usernames, []string{"ada"}) {
			t.Fatalf("usernames %q, want [ada]", r.Usernames)
		}
		if n := l.Errors(); n != wantErrors {
			t.Fatalf("after asking for %b: the packages rule ran %d times, want %d", hs, n, wantErrors)
		}
	}
	// One caller asks for usernames, another for packages.
	l.Expect(0, Usernames)
	l.Expect(0, Packages)
	if got := l.Expected(); got != Usernames|Packages {
		t.Fatalf("expected %b, want usernames and packages", got)
	}
	m := msg()
	ask(m, Usernames, 1) // packages computed with usernames
	ask(m, Packages, 1)  // and not again
	ask(m, Usernames|Packages, 1)
	// The packages caller now asks for nothing (or closed).
	l.Expect(Packages, 0)
	if got := l.Expected(); got != Usernames {
		t.Fatalf("expected %b, want usernames only", got)
	}
	m = msg()
	ask(m, Usernames, 1)
	ask(m, Packages, 2)
	// Two callers expect packages; one leaving keeps it expected.
	l.Expect(0, Packages)
	l.Expect(Usernames, Packages)
	l.Expect(Packages, 0)
	m = msg()
	ask(m, Usernames, 3)
	ask(m, Packages, 3)
}
