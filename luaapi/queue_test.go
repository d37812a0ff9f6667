package luaapi_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"statscache/engine"
	"statscache/luaapi"
	"statscache/luaapi/scripttest"
)

// lengthService answers /len/N with N*10 as text; /flaky/N fails with 503
// on the first try of each N; /slow sleeps.
func lengthService(t *testing.T) (*httptest.Server, *atomic.Int64) {
	var calls atomic.Int64
	seen := map[string]bool{}
	var mu = make(chan struct{}, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
		if len(parts) != 2 {
			http.Error(w, "no such path", http.StatusNotFound)
			return
		}
		n, err := strconv.Atoi(parts[1])
		if err != nil {
			http.Error(w, "bad number", http.StatusBadRequest)
			return
		}
		if parts[0] == "flaky" {
			mu <- struct{}{}
			first := !seen[parts[1]]
			seen[parts[1]] = true
			<-mu
			if first {
				http.Error(w, "try later", http.StatusServiceUnavailable)
				return
			}
		}
		fmt.Fprint(w, n*10)
	}))
	t.Cleanup(srv.Close)
	return srv, &calls
}

const queueScript = `
model {
  name = "q", summary = "s", description = "d",
  columns = {{name = "mid", type = "text", key = true}, {name = "v", type = "integer"}, {name = "err", type = "text"}},
  queue = {workers = 3, limit = 4, retries = 2, services = {"svc"}},
}
local got = {}
function process(msg)
  queue.push({id = msg.id, n = msg.body.n, path = msg.body.path or "len"})
end
function work(item)
  local body, status = http.get("svc", "/" .. item.path .. "/" .. item.n)
  if status == 503 then retry("service busy") end
  if status ~= 200 then error("status " .. status) end
  return {id = item.id, v = tonumber(body)}
end
function done(item, result, err)
  if err then
    got[#got + 1] = {timestamp = 0, mid = item.id, err = err}
  else
    assert(result.id == item.id)
    got[#got + 1] = {timestamp = 0, mid = item.id, v = result.v}
  end
end
function update(db)
  for _, r in ipairs(got) do db:upsert(r) end
  got = {}
end
`

func queueOpts(url string) luaapi.Options {
	o := quiet
	o.Services = &luaapi.HTTPServices{URLs: map[string]string{"svc": url}}
	return o
}

func runQueueScript(t *testing.T, src string, opts luaapi.Options, recs ...string) (*scripttest.Store, string) {
	t.Helper()
	models, err := luaapi.LoadSource("q.lua", []byte(src), opts)
	if err != nil {
		t.Fatal(err)
	}
	store := scripttest.NewStore()
	e := engine.New(store, engine.Config{Logger: quiet.Logger, BatchSize: 2})
	if err := e.Add(context.Background(), models[0]); err != nil {
		t.Fatal(err)
	}
	var msgs []*engine.Message
	for _, r := range recs {
		msgs = append(msgs, decode(t, r))
	}
	if _, err := e.Ingest(context.Background(), msgs); err != nil {
		t.Fatal(err)
	}
	if err := e.Run(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	return store, models[0].Spec().Ident
}

func TestQueueScript(t *testing.T) {
	srv, calls := lengthService(t)
	var recs []string
	for i := range 20 {
		path := `"len"`
		switch i {
		case 5:
			path = `"flaky"`
		case 6:
			path = `"nothing/here"`
		}
		recs = append(recs, rawRecord(fmt.Sprintf("2024-m%02d", i), "t", float64(100+i), fmt.Sprintf(`{"n": %d, "path": %s}`, i, path)))
	}
	opts := queueOpts(srv.URL)
	opts.Limits.WorkTimeout = 5 * time.Second
	store, ident := runQueueScript(t, queueScript, opts, recs...)
	rows, err := store.Rows(ident)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 20 {
		t.Fatalf("%d rows, want 20: %v", len(rows), rows)
	}
	for i, r := range rows {
		id := fmt.Sprintf("2024-m%02d", i)
		if r["mid"] != id {
			t.Fatalf("row %d: id %v, want %s", i, r["mid"], id)
		}
		if i == 6 {
			if e, _ := r["err"].(string); !strings.Contains(e, "status 404") {
				t.Errorf("row %d: err %q, want the 404 raised by work", i, e)
			}
			continue
		}
		if r["v"] != int64(i*10) || r["err"] != nil {
			t.Errorf("row %d: %v, want v = %d", i, r, i*10)
		}
	}
	// 20 items, one of them retried once after its 503.
	if n := calls.Load(); n != 21 {
		t.Errorf("%d requests, want 21", n)
	}
	errs := store.Errors(ident)
	if len(errs) != 1 || errs[0].MsgID != "work item 7" || !strings.Contains(errs[0].Err, "status 404") {
		t.Errorf("recorded errors: %+v", errs)
	}
}

func TestQueueScriptLoadErrors(t *testing.T) {
	decl := `model {name = "x", summary = "s", description = "d", columns = {{name = "n", type = "integer"}}%s}`
	fns := "function process(msg) end\nfunction update(db) end\n"
	tests := []struct {
		name, queue, extra, want string
	}{
		{"WorkWithoutDone", "", "function work(item) end", "needs both work(item) and done"},
		{"DoneWithoutWork", "", "function done(item, result, err) end", "needs both work(item) and done"},
		{"QueueWithoutFunctions", `, queue = {workers = 2}`, "", "needs both work(item) and done"},
		{"WorkNoArgs", "", "function work() end\nfunction done(item, result, err) end", "work must take one argument"},
		{"DoneOneArg", "", "function work(item) end\nfunction done(item) end", "done must take the arguments"},
		{"BadWorkers", `, queue = {workers = 0}`, "function work(item) end\nfunction done(item, result, err) end", "queue.workers must be a whole number from 1 to 64"},
		{"BadLimit", `, queue = {limit = 1.5}`, "function work(item) end\nfunction done(item, result, err) end", "queue.limit must be a whole number"},
		{"UnknownField", `, queue = {threads = 2}`, "function work(item) end\nfunction done(item, result, err) end", `unknown field "threads" in queue`},
		{"ServiceNotConfigured", `, queue = {services = {"koji"}}`, "function work(item) end\nfunction done(item, result, err) end", `service "koji" is not configured`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := fmt.Sprintf(decl, tc.queue) + "\n" + fns + tc.extra + "\n"
			_, err := luaapi.LoadSource("x.lua", []byte(src), queueOpts("http://127.0.0.1:1"))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
			if !strings.HasPrefix(err.Error(), "x.lua") {
				t.Errorf("error %q does not name the script", err)
			}
		})
	}
}

// TestQueueScriptSandbox: each side of the queue has only its own tools.
func TestQueueScriptSandbox(t *testing.T) {
	srv, _ := lengthService(t)
	decl := `model {name = "x", summary = "s", description = "d", columns = {{name = "mid", type = "text", key = true}, {name = "err", type = "text"}}, queue = {retries = 0, services = {"svc"}}}`
	tests := []struct {
		name, process, work, want string
	}{
		{"HTTPInProcess", `http.get("svc", "/len/1")`, `return 1`, "http.get is only available in work(item)"},
		{"StateInWork", `queue.push(1)`, `state.set("a", 1)`, "state is not available in work(item)"},
		{"PushInWork", `queue.push(1)`, `queue.push(2)`, "queue.push is not available in work(item)"},
		{"UndeclaredService", `queue.push(1)`, `http.get("other", "/x")`, `service "other" is not declared`},
		{"AbsoluteURL", `queue.push(1)`, `http.get("svc", "http://example.org/")`, "must be relative"},
		{"FunctionResult", `queue.push(1)`, `return function() end`, "cannot be stored"},
		{"FunctionItem", `queue.push(function() end)`, `return 1`, "cannot be stored"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := decl + `
local errs = {}
function process(msg) ` + tc.process + ` end
function work(item) ` + tc.work + ` end
function done(item, result, err) errs[#errs + 1] = {timestamp = 0, mid = tostring(item), err = err} end
function update(db) for _, r in ipairs(errs) do db:upsert(r) end errs = {} end
`
			store, ident := runQueueScript(t, src, queueOpts(srv.URL), rawRecord("2024-a", "t", 1, `{}`))
			var all []string
			for _, e := range store.Errors(ident) {
				all = append(all, e.Err)
			}
			rows, _ := store.Rows(ident)
			for _, r := range rows {
				all = append(all, fmt.Sprint(r["err"]))
			}
			if !strings.Contains(strings.Join(all, "\n"), tc.want) {
				t.Fatalf("errors %q, want one containing %q", all, tc.want)
			}
		})
	}
}

// TestQueueScriptWorkLimit: a work function that never returns stops its
// model with the limit as the reason.
func TestQueueScriptWorkLimit(t *testing.T) {
	srv, _ := lengthService(t)
	src := `model {name = "x", summary = "s", description = "d", columns = {{name = "mid", type = "text", key = true}}, queue = {services = {"svc"}}}
function process(msg) queue.push(msg.id) end
function work(item) while true do end end
function done(item, result, err) end
function update(db) end
`
	opts := queueOpts(srv.URL)
	opts.Limits.WorkTimeout = 300 * time.Millisecond
	store, ident := runQueueScript(t, src, opts, rawRecord("2024-a", "t", 1, `{}`))
	st, _ := store.Status(ident)
	if st.Status != "failed" || !strings.Contains(st.Reason, "longer than the limit of 300ms") {
		t.Fatalf("status %q (%q), want failed for the time limit", st.Status, st.Reason)
	}
}

func TestHTTPServicesJoin(t *testing.T) {
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.Method+" "+r.URL.RequestURI()+" "+r.Header.Get("Content-Type"))
	}))
	defer srv.Close()
	s := &luaapi.HTTPServices{URLs: map[string]string{"a": srv.URL + "/kojihub", "b": srv.URL + "/api/"}}
	reqs := []struct {
		service string
		req     luaapi.HTTPRequest
		want    string
	}{
		{"a", luaapi.HTTPRequest{Method: "POST", ContentType: "text/xml"}, "POST /kojihub text/xml"},
		{"b", luaapi.HTTPRequest{Method: "GET", Path: "builds/1?x=2"}, "GET /api/builds/1?x=2 "},
		{"b", luaapi.HTTPRequest{Method: "GET", Path: "/v1/x"}, "GET /api/v1/x "},
	}
	for _, r := range reqs {
		if _, err := s.Do(context.Background(), r.service, &r.req); err != nil {
			t.Fatal(err)
		}
	}
	for i, r := range reqs {
		if got[i] != r.want {
			t.Errorf("request %d: %q, want %q", i, got[i], r.want)
		}
	}
	if _, err := s.Do(context.Background(), "c", &luaapi.HTTPRequest{Method: "GET"}); err == nil || !strings.Contains(err.Error(), `"c" is not configured`) {
		t.Errorf("unknown service: %v", err)
	}
}

// TestQueueScriptWorkerTableLimit: a work function that keeps every item in
// a global table is stopped like a model that does.
func TestQueueScriptWorkerTableLimit(t *testing.T) {
	srv, _ := lengthService(t)
	src := `model {name = "x", summary = "s", description = "d", columns = {{name = "mid", type = "text", key = true}}, queue = {workers = 1, services = {"svc"}}}
local keep = {}
function process(msg) queue.push(msg.id) end
function work(item) for i = 1, 300000 do keep[#keep + 1] = i end return 1 end
function done(item, result, err) end
function update(db) end
`
	var recs []string
	for i := range 10 {
		recs = append(recs, rawRecord(fmt.Sprintf("2024-a%d", i), "t", float64(i), `{}`))
	}
	store, ident := runQueueScript(t, src, queueOpts(srv.URL), recs...)
	st, _ := store.Status(ident)
	if st.Status != "failed" || !strings.Contains(st.Reason, "tables hold more than") {
		t.Fatalf("status %q (%q), want failed for the table limit", st.Status, st.Reason)
	}
}

// slowState is a State whose reads wait, like a database busy with other
// models' reads.
type slowState struct {
	fakeState
	delay time.Duration
}

func (s slowState) Get(key string) (string, bool, error) {
	time.Sleep(s.delay)
	return s.fakeState.Get(key)
}

// TestHostWaitIsNotCharged: time a call spends waiting for the host (here
// a slow state read) does not count against its time limit; time in Lua
// does.
func TestHostWaitIsNotCharged(t *testing.T) {
	opts := quiet
	opts.Limits.CallTimeout = 300 * time.Millisecond
	src := lines(decl1m,
		`function process(msg)`,
		`  if msg.topic == "spin" then local t = 0 while true do t = t + 1 end end`,
		`  state.get("a") state.get("b")`,
		`end`,
		`function update(db) end`)
	models, err := luaapi.LoadSource("m.lua", src, opts)
	if err != nil {
		t.Fatal(err)
	}
	m := models[0]
	if err := m.Open(slowState{fakeState: newState(), delay: 400 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.Process(context.Background(), decode(t, rawRecord("2024-a", "wait", 1, `{}`))); err != nil {
		t.Fatalf("a call that waited 800ms for state reads under a 300ms limit failed: %v", err)
	}
	err = m.Process(context.Background(), decode(t, rawRecord("2024-b", "spin", 2, `{}`)))
	if !errors.Is(err, engine.ErrModelLimit) {
		t.Fatalf("a call spinning in Lua: %v, want the time limit", err)
	}
}
