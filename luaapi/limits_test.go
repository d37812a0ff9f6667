package luaapi_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"statscache/engine"
	"statscache/luaapi"
)

// TestMemoryLimit runs a script that doubles a string inside one call
// until memory runs out: the watchdog stops it for heap growth (or, on a
// slow machine, for time), and the error is a limit error.
func TestMemoryLimit(t *testing.T) {
	models, err := luaapi.LoadFile("testdata/concat-growth.lua", luaapi.Options{})
	if err != nil {
		t.Fatal(err)
	}
	m := models[0]
	if err := m.Open(nopState{}); err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	start := time.Now()
	err = m.Process(context.Background(), &engine.Message{ID: "x", Key: "x", Topic: "a.b.c.d", TimeUS: 1})
	if !errors.Is(err, engine.ErrModelLimit) {
		t.Fatalf("got %v, want a limit error", err)
	}
	if !strings.Contains(err.Error(), "heap grew") && !strings.Contains(err.Error(), "longer than") {
		t.Errorf("reason %q names neither the heap nor the time limit", err)
	}
	t.Logf("stopped after %s: %v", time.Since(start).Round(time.Millisecond), err)
}
