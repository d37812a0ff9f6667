package luaapi_test

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"statscache/engine"
	"statscache/luaapi"
	"statscache/luaapi/meta"
)

var testMsg = &engine.Message{ID: "x", Key: "x", Topic: "a.b.c.d", TimeUS: 1}

func openFile(t *testing.T, path string, opts luaapi.Options) *luaapi.Model {
	t.Helper()
	models, err := luaapi.LoadFile(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	m := models[0]
	if err := m.Open(nopState{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// TestMemoryLimit runs a script that fills a table inside one call, which
// no built-in sees: the heap watchdog, the last resort, must stop it for
// heap growth. The time limit is set far away so that only the heap can
// stop it.
func TestMemoryLimit(t *testing.T) {
	m := openFile(t, "testdata/table-growth.lua", luaapi.Options{Limits: luaapi.Limits{CallTimeout: time.Minute, MemoryLimit: 64 << 20}})
	start := time.Now()
	err := m.Process(context.Background(), testMsg)
	want := "hostile-table: model exceeded a limit: the heap grew by more than the limit of 64 MiB during one call"
	if !errors.Is(err, engine.ErrModelLimit) || err.Error() != want {
		t.Fatalf("got %v, want %q", err, want)
	}
	t.Logf("stopped after %s", time.Since(start).Round(time.Millisecond))
}

// TestBuiltinLimits: the built-ins that used to run outside every limit
// stop at the call's time limit or allocation limit, with that reason.
func TestBuiltinLimits(t *testing.T) {
	for _, tc := range []struct {
		file, want string
		limits     luaapi.Limits
		within     time.Duration
		// maxAlloc, when set, bounds what the call allocated in Go: the
		// measure of "refused before it is built", which a wall-clock
		// bound only approximates on a loaded machine.
		maxAlloc uint64
	}{
		{"pattern-hang.lua", "hostile-pattern: model exceeded a limit: a call ran longer than the limit of 2s", luaapi.Limits{}, 3 * time.Second, 0},
		{"sort-forever.lua", "hostile-sort: model exceeded a limit: a call ran longer than the limit of 500ms", luaapi.Limits{CallTimeout: 500 * time.Millisecond}, 1500 * time.Millisecond, 0},
		{"concat-parts.lua", "hostile-concat-parts: model exceeded a limit: built-in functions allocated more than the limit of 512 MiB during one call", luaapi.Limits{CallTimeout: time.Minute}, time.Minute, 0},
		{"shared-table.lua", `state.set("t"): the value is over 16777216 bytes of JSON, the limit`, luaapi.Limits{CallTimeout: time.Minute}, 30 * time.Second, 0},
		// A string doubled with .. is refused at 16 MiB, before it is
		// built, like string.rep's result: a Lua error, not a limit. The
		// doublings up to it allocate 32 MiB; building the refused
		// result would make 64.
		{"concat-growth.lua", "concatenation (..): the result would be 33554432 bytes, over the limit of 16777216", luaapi.Limits{CallTimeout: time.Minute}, time.Minute, 48 << 20},
		{"concat-loop.lua", "hostile-concat-loop: model exceeded a limit: built-in functions allocated more than the limit of 64 MiB during one call", luaapi.Limits{CallTimeout: time.Minute, MemoryLimit: 64 << 20}, 5 * time.Second, 0},
		{"gsub-repeat.lua", "string.gsub: the result would be over 16777216 bytes, the limit", luaapi.Limits{CallTimeout: time.Minute}, time.Minute, 0},
	} {
		t.Run(tc.file, func(t *testing.T) {
			m := openFile(t, "testdata/"+tc.file, luaapi.Options{Limits: tc.limits})
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			start := time.Now()
			err := m.Process(context.Background(), testMsg)
			took := time.Since(start)
			runtime.ReadMemStats(&after)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
			if strings.Contains(tc.want, "model exceeded a limit") != errors.Is(err, engine.ErrModelLimit) {
				t.Errorf("limit error %v: errors.Is(ErrModelLimit) = %v", err, errors.Is(err, engine.ErrModelLimit))
			}
			if took > tc.within {
				t.Errorf("stopped after %s, want within %s", took, tc.within)
			}
			if alloc := after.TotalAlloc - before.TotalAlloc; tc.maxAlloc > 0 && alloc > tc.maxAlloc {
				t.Errorf("the call allocated %d MiB, want at most %d MiB", alloc>>20, tc.maxAlloc>>20)
			}
		})
	}
}

// TestLoadLimits: loading runs script code only under the limits of a
// call, and probes a script's functions without running any of its code.
func TestLoadLimits(t *testing.T) {
	start := time.Now()
	_, err := luaapi.LoadFile("testdata/pattern-toplevel.lua", luaapi.Options{})
	want := "testdata/pattern-toplevel.lua: the script's top level ran longer than the limit of 2s"
	if err == nil || err.Error() != want {
		t.Errorf("got %v, want %q", err, want)
	}
	if took := time.Since(start); took > 3500*time.Millisecond {
		t.Errorf("load gave up after %s", took)
	}

	// A metatable on _G whose __index raises or loops: the script loads
	// (its functions are read raw), and a call that reads a missing
	// global fails or is stopped like any other.
	m := openFile(t, "testdata/globals-index-error.lua", luaapi.Options{})
	if err := m.Process(context.Background(), testMsg); err != nil {
		t.Errorf("process: %v", err)
	}
	m = openFile(t, "testdata/globals-index-loop.lua", luaapi.Options{Limits: luaapi.Limits{CallTimeout: 300 * time.Millisecond}})
	err = m.Process(context.Background(), testMsg)
	if want := "hostile-index-loop: model exceeded a limit: a call ran longer than the limit of 300ms"; err == nil || err.Error() != want {
		t.Errorf("got %v, want %q", err, want)
	}
}

// TestGuiltyNotInnocent: a model that allocates a gigabyte through the
// built-ins is stopped for it, while a model running alongside goes on.
func TestGuiltyNotInnocent(t *testing.T) {
	// A time limit far away, so that only the allocation can stop it
	// (under the race detector a gigabyte of string.rep takes seconds).
	guilty := openFile(t, "testdata/concat-parts.lua", luaapi.Options{Limits: luaapi.Limits{CallTimeout: time.Minute}})
	innocent := openFile(t, "../scripts/volume.lua", quiet)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var innocentErr error
	calls := 0
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := innocent.Process(context.Background(), testMsg); err != nil {
				innocentErr = err
				return
			}
			calls++
		}
	}()
	err := guilty.Process(context.Background(), testMsg)
	close(stop)
	wg.Wait()
	if !errors.Is(err, engine.ErrModelLimit) || !strings.Contains(err.Error(), "built-in functions allocated more than the limit") {
		t.Errorf("guilty: %v, want the allocation limit", err)
	}
	if innocentErr != nil || calls == 0 {
		t.Errorf("innocent: %v after %d calls", innocentErr, calls)
	}
}

// TestMetaRuleLoopDoesNotBlockModel: a model that asks fedmsg.meta about a
// message whose title rule loops gets an empty title once the rules'
// limit passes, and goes on; the usernames, computed on their own, are
// not lost with it.
func TestMetaRuleLoopDoesNotBlockModel(t *testing.T) {
	lib, err := meta.Load("meta/testdata/looping", nil)
	if err != nil {
		t.Fatal(err)
	}
	lib.SetLimits(meta.Limits{Timeout: 300 * time.Millisecond})
	src := lines(`model {name = "asks-meta", summary = "s", description = "d", columns = {{name = "n", type = "integer"}}}`,
		`function process(msg)`,
		`  if meta.title(msg) ~= "" then error("title not empty") end`,
		`  local u = meta.usernames(msg)`,
		`  if #u ~= 1 or u[1] ~= "someone" then error("usernames lost: " .. #u) end`,
		`end`,
		`function update(db) end`)
	opts := quiet
	opts.Meta = lib
	models, err := luaapi.LoadSource("asks-meta.lua", src, opts)
	if err != nil {
		t.Fatal(err)
	}
	m := models[0]
	if err := m.Open(nopState{}); err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	start := time.Now()
	msg := decode(t, rawRecord("2024-a", "org.example.prod.x.y", 1, `{}`))
	if err := m.Process(context.Background(), msg); err != nil {
		t.Fatalf("process: %v", err)
	}
	if took := time.Since(start); took > 1300*time.Millisecond {
		t.Errorf("process took %s, want about the rules' 300ms limit", took)
	}
	if lib.Errors() < 1 {
		t.Errorf("meta errors = %d, want the stop recorded", lib.Errors())
	}
}

// TestRefusedHostCallKeepsLimits: a state read refused where there is no
// state (the script's top level as the loader runs it, a queue script's
// work) is a Lua error a script can catch; catching it must not leave the
// call marked as waiting in the host, which the watchdog never stops.
func TestRefusedHostCallKeepsLimits(t *testing.T) {
	// within runs f, failing the test if it has not returned after d (it
	// is then left spinning: the test has failed anyway).
	within := func(d time.Duration, f func() error) error {
		done := make(chan error, 1)
		go func() { done <- f() }()
		select {
		case err := <-done:
			return err
		case <-time.After(d):
			t.Fatalf("still running after %s: the watchdog did not stop it", d)
			return nil
		}
	}
	opts := quiet
	opts.Limits.CallTimeout = 300 * time.Millisecond
	opts.Limits.WorkTimeout = 300 * time.Millisecond
	load := lines(decl1m,
		`pcall(state.get, "a")`,
		`while true do end`,
		`function process(msg) end`,
		`function update(db) end`)
	err := within(10*time.Second, func() error { _, err := luaapi.LoadSource("m.lua", load, opts); return err })
	if want := "the script's top level ran longer than the limit of 300ms"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("load: %v, want %q", err, want)
	}

	// A host function that panics (the store's fault, which gopher-lua
	// turns into the call's error) leaves the next calls under the limits.
	m, err := luaapi.LoadSource("m.lua", lines(decl1m,
		`function process(msg)`,
		`  if msg.topic == "spin" then while true do end end`,
		`  state.get("a")`,
		`end`,
		`function update(db) end`), opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := m[0].Open(panicState{}); err != nil {
		t.Fatal(err)
	}
	defer m[0].Close()
	if err := m[0].Process(context.Background(), decode(t, rawRecord("2024-a", "get", 1, `{}`))); err == nil || !strings.Contains(err.Error(), "the store broke") {
		t.Errorf("a state read that panics: %v", err)
	}
	err = within(10*time.Second, func() error {
		return m[0].Process(context.Background(), decode(t, rawRecord("2024-b", "spin", 2, `{}`)))
	})
	if !errors.Is(err, engine.ErrModelLimit) {
		t.Errorf("a call after a host function panicked: %v, want the time limit", err)
	}

	srv, _ := lengthService(t)
	wopts := queueOpts(srv.URL)
	wopts.Limits = opts.Limits
	work := `model {name = "x", summary = "s", description = "d", columns = {{name = "mid", type = "text", key = true}}, queue = {services = {"svc"}}}
function process(msg) queue.push(msg.id) end
function work(item) pcall(state.get, "a") while true do end end
function done(item, result, err) end
function update(db) end
`
	models, err := luaapi.LoadSource("q.lua", []byte(work), wopts)
	if err != nil {
		t.Fatal(err)
	}
	w, err := models[0].NewWorker()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	err = within(10*time.Second, func() error { _, err := w.Work(context.Background(), []byte(`"a"`)); return err })
	if !errors.Is(err, engine.ErrModelLimit) {
		t.Errorf("work: %v, want the time limit", err)
	}
}

// panicState is a State whose reads panic.
type panicState struct{ fakeState }

func (panicState) Get(string) (string, bool, error) { panic("the store broke") }
