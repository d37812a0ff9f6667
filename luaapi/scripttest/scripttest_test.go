package scripttest

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestShippedScripts runs the examples of every shipped script: each must
// have examples, and every one of its models must pass.
func TestShippedScripts(t *testing.T) {
	results, err := RunDir(context.Background(), filepath.Join("..", "..", "scripts"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	failed := Report(&out, results, false)
	if failed {
		t.Errorf("statscache test over the shipped scripts failed:\n%s", out.String())
	}
	if len(results) == 0 {
		t.Fatal("no scripts")
	}
	for _, r := range results {
		if r.NoExamples {
			t.Errorf("%s has no examples", r.Script)
		}
	}
	t.Logf("\n%s", out.String())
}

// writeScript writes files into a fresh scripts directory and returns it.
func writeScripts(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func runReport(t *testing.T, dir string, opts Options) (string, bool) {
	t.Helper()
	results, err := RunDir(context.Background(), dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	failed := Report(&out, results, false)
	t.Logf("\n%s", out.String())
	return out.String(), failed
}

const countScript = `model {
  name = "count",
  summary = "s",
  description = "d",
  interval = "1m",
  columns = {
    {name = "category", type = "text", key = true},
    {name = "volume", type = "integer", not_null = true},
  },
}
local c = counter()
function process(msg)
  c:inc(bucket(msg.time), msg.category)
end
function update(db)
  for ts, cat, n in c:drain() do
    db:add{timestamp = ts, category = cat, volume = n}
  end
end
`

const countInput = `{"msg_id": "2015-a", "topic": "org.fedoraproject.prod.buildsys.build.state.change", "timestamp": 1439121600.0, "msg": {}}
{"msg_id": "2015-b", "topic": "org.fedoraproject.prod.buildsys.build.state.change", "timestamp": 1439121659.9, "msg": {}}
{"msg_id": "2015-c", "topic": "org.fedoraproject.prod.bodhi.update.comment", "timestamp": 1439121660.0, "msg": {}}
`

func TestPass(t *testing.T) {
	dir := writeScripts(t, map[string]string{
		"count.lua":            countScript,
		"examples/count.jsonl": countInput,
		"examples/count.want.json": `{"count-1m": [
  {"timestamp": 1439121720.0, "category": "bodhi", "volume": 1},
  {"timestamp": 1439121660, "category": "buildsys", "volume": 2}
]}`,
		"other.lua": strings.Replace(countScript, `"count"`, `"other"`, 1),
	})
	out, failed := runReport(t, dir, Options{})
	if failed {
		t.Fatalf("failed:\n%s", out)
	}
	for _, want := range []string{"ok    count-1m", "--    other", "no examples", "ok: 1 models passed, 1 script(s) without examples"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// A wrong expected row fails with a diff naming the row and the value.
func TestWrongRow(t *testing.T) {
	dir := writeScripts(t, map[string]string{
		"count.lua":            countScript,
		"examples/count.jsonl": countInput,
		"examples/count.want.json": `{"count-1m": [
  {"timestamp": 1439121660, "category": "buildsys", "volume": 3},
  {"timestamp": 1439121660, "category": "koji", "volume": 1}
]}`,
	})
	out, failed := runReport(t, dir, Options{})
	if !failed {
		t.Fatalf("passed:\n%s", out)
	}
	for _, want := range []string{
		"FAIL  count-1m",
		`changed row     {"timestamp": 1439121660, "category": "buildsys"}: volume = 2, want 3`,
		`missing row     {"timestamp": 1439121660, "category": "koji", "volume": 1}`,
		`unexpected row  {"timestamp": 1439121720, "category": "bodhi", "volume": 1}`,
		"FAIL: 1 of 1 models failed",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// A script that raises on every message fails, with the Lua error and its
// line.
func TestRuntimeErrorEveryMessage(t *testing.T) {
	dir := writeScripts(t, map[string]string{
		"boom.lua": strings.Replace(strings.Replace(countScript, `"count"`, `"boom"`, 1),
			"  c:inc(bucket(msg.time), msg.category)", "  error(\"boom on \" .. msg.id)", 1),
		"examples/boom.jsonl":     countInput,
		"examples/boom.want.json": `{"boom-1m": []}`,
	})
	out, failed := runReport(t, dir, Options{})
	if !failed {
		t.Fatalf("passed:\n%s", out)
	}
	for _, want := range []string{"FAIL  boom-1m", "3 errors in process, work or done, over 3 messages", "boom.lua:13: boom on 2015-a"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// A script that does not load fails with its file and line.
func TestLoadError(t *testing.T) {
	dir := writeScripts(t, map[string]string{
		"bad.lua":   "model {\n  name = \"bad\",\n}\nfunction process(msg)\n  if then\nend\n",
		"count.lua": countScript,
	})
	out, failed := runReport(t, dir, Options{})
	if !failed {
		t.Fatalf("passed:\n%s", out)
	}
	if !regexp.MustCompile(`FAIL  .*bad\.lua\n\s+.*bad\.lua:5: syntax error`).MatchString(out) {
		t.Errorf("output lacks the file and line:\n%s", out)
	}
}

// A model missing from the want file fails and prints what it wrote; an
// ident the script does not declare fails the script.
func TestWantFileIdents(t *testing.T) {
	dir := writeScripts(t, map[string]string{
		"count.lua":                countScript,
		"examples/count.jsonl":     countInput,
		"examples/count.want.json": `{}`,
	})
	out, failed := runReport(t, dir, Options{})
	if !failed || !strings.Contains(out, `"count-1m": [`) || !strings.Contains(out, `{"timestamp": 1439121660, "category": "buildsys", "volume": 2},`) {
		t.Errorf("want the rows written:\n%s", out)
	}
	dir = writeScripts(t, map[string]string{
		"count.lua":                countScript,
		"examples/count.jsonl":     countInput,
		"examples/count.want.json": `{"count-1m": [], "count-1h": []}`,
	})
	out, failed = runReport(t, dir, Options{})
	if !failed || !strings.Contains(out, "lists count-1h, which") {
		t.Errorf("want an unknown ident reported:\n%s", out)
	}
}

// A bad example record fails the script with its file and line.
func TestBadRecord(t *testing.T) {
	dir := writeScripts(t, map[string]string{
		"count.lua":                countScript,
		"examples/count.jsonl":     countInput + "{\"topic\": \"x\"}\n",
		"examples/count.want.json": `{"count-1m": []}`,
	})
	out, failed := runReport(t, dir, Options{})
	if !failed || !strings.Contains(out, "count.jsonl:4:") {
		t.Errorf("want the bad record's line:\n%s", out)
	}
}

// A model that keeps its running values in Lua memory passes in one batch
// but not with a commit per message and a restart half way.
func TestRestartConsistency(t *testing.T) {
	script := `model {
  name = "running",
  summary = "s",
  description = "d",
  columns = {{name = "n", type = "integer"}},
}
local total = 0
local pending = {}
function process(msg)
  total = total + 1
  pending[#pending + 1] = {timestamp = msg.time, n = total}
end
function update(db)
  for _, r in ipairs(pending) do db:insert(r) end
  pending = {}
end
`
	dir := writeScripts(t, map[string]string{
		"running.lua":            script,
		"examples/running.jsonl": countInput,
		"examples/running.want.json": `{"running": [
  {"timestamp": 1439121600, "n": 1},
  {"timestamp": 1439121659.9, "n": 2},
  {"timestamp": 1439121660, "n": 3}
]}`,
	})
	out, failed := runReport(t, dir, Options{})
	if !failed || !strings.Contains(out, "restart half way gives other rows") {
		t.Errorf("want the restart difference:\n%s", out)
	}
}

// --run selects models by ident or script name.
func TestRunFilter(t *testing.T) {
	dir := writeScripts(t, map[string]string{
		"count.lua": countScript,
		"bad.lua":   "syntax error here",
	})
	out, failed := runReport(t, dir, Options{Run: regexp.MustCompile(`^count-1m$`)})
	if failed || !strings.Contains(out, "--    count") || strings.Contains(out, "bad.lua") {
		t.Errorf("want only count:\n%s", out)
	}
}

const lookupScript = `model {
  name = "lookup", summary = "s", description = "d",
  columns = {{name = "build", type = "integer", key = true}, {name = "owner", type = "text"}},
  queue = {services = {"koji"}, retries = 0},
}
local got = {}
function process(msg) queue.push(msg.body.build_id) end
function work(id)
  local body, status = http.post("koji", "", "<int>" .. id .. "</int>", "text/xml")
  if status ~= 200 then error("status " .. status) end
  return body
end
function done(id, owner, err)
  if err then error(err) end
  got[#got + 1] = {timestamp = 0, build = id, owner = owner}
end
function update(db) for _, r in ipairs(got) do db:upsert(r) end got = {} end
`

const lookupInput = `{"msg_id": "2015-a", "topic": "t", "timestamp": 1439121600.0, "msg": {"build_id": 7}}
{"msg_id": "2015-b", "topic": "t", "timestamp": 1439121601.0, "msg": {"build_id": 8}}
`

// Queue scripts run offline against recorded service answers.
func TestServiceFixtures(t *testing.T) {
	want := `{"lookup": [{"timestamp": 0, "build": 7, "owner": "kevin"}, {"timestamp": 0, "build": 8, "owner": "ralph"}]}`
	tests := []struct {
		name     string
		services string // "" for no file
		ok       bool
		wantOut  []string
	}{
		{"Pass", `{"koji": [{"method": "POST", "body_contains": "<int>7<", "body": "kevin"}, {"body_file": "eight.txt"}]}`, true, []string{"ok    lookup"}},
		{"NoAnswer", `{"koji": [{"method": "POST", "body_contains": "<int>7<", "body": "kevin"}]}`, false,
			[]string{"work item 2", `no answer in`, `matches POST koji "" with body "<int>8</int>"`}},
		{"NoFile", "", false, []string{`service "koji" is not configured: record its answers in`, "lookup.services.json"}},
		{"BadFile", `{"koji": [{"method": "POST", "bdy": "x"}]}`, false, []string{`unknown field "bdy"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			files := map[string]string{
				"lookup.lua":                lookupScript,
				"examples/lookup.jsonl":     lookupInput,
				"examples/lookup.want.json": want,
				"examples/eight.txt":        "ralph",
			}
			if tc.services != "" {
				files["examples/lookup.services.json"] = tc.services
			}
			out, failed := runReport(t, writeScripts(t, files), Options{})
			if failed == tc.ok {
				t.Fatalf("failed = %v, want %v:\n%s", failed, !tc.ok, out)
			}
			for _, w := range tc.wantOut {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}
