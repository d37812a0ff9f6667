package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startDemo starts "statscache demo" in dir (its working directory).
func startDemo(t *testing.T, dir string, args ...string) *daemonProc {
	t.Helper()
	cmd := command(append([]string{"demo", "--listen", "127.0.0.1:0", "--db", filepath.Join(dir, "demo.db"), "--every", "100ms"}, args...)...)
	cmd.Dir = dir
	return startProc(t, "demo", cmd)
}

// waitOutput waits until the process has written want.
func (d *daemonProc) waitOutput(t *testing.T, want string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(d.out.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in the output:\n%s", want, d.out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestDemoLoadsScriptsFolder is the analyst's first hour: in a folder with
// scripts/, the demo says it loads them, serves their models, and a reload
// after a new script is dropped in starts it.
func TestDemoLoadsScriptsFolder(t *testing.T) {
	dir := t.TempDir()
	scripts := filepath.Join(dir, "scripts")
	copyFile(t, "../../scripts/volume.lua", filepath.Join(scripts, "volume.lua"))
	d := startDemo(t, dir)
	defer d.stop(t)
	d.waitOutput(t, "loading the models of ./scripts (1 scripts)")
	if strings.Contains(d.out.String(), "embedded") {
		t.Errorf("the demo mentions the embedded models while it loads ./scripts:\n%s", d.out.String())
	}
	api := get(t, "http://"+d.addr+"/api/")
	if !strings.Contains(api, `"volume-1m"`) || strings.Contains(api, "volume-by-category") {
		t.Fatalf("/api/ should list the models of ./scripts only: %s", api)
	}

	// Drop in a first model of one's own, and reload.
	src, err := os.ReadFile("../../scripts/volume.lua")
	if err != nil {
		t.Fatal(err)
	}
	mine := strings.Replace(string(src), `name = "volume"`, `name = "my-first-model"`, 1)
	if err := os.WriteFile(filepath.Join(scripts, "my-first-model.lua"), []byte(mine), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := command("reload", "--db", filepath.Join(dir, "demo.db")).CombinedOutput(); err != nil {
		t.Fatalf("statscache reload: %v\n%s", err, out)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(get(t, "http://"+d.addr+"/api/"), `"my-first-model-1m"`) {
		if time.Now().After(deadline) {
			t.Fatalf("the dropped-in model did not appear after the reload:\n%s", d.out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if sumVolume(t, d.addr, "my-first-model-1m") == 0 {
		// It catches up from the journal: the hour of history is there.
		deadline := time.Now().Add(30 * time.Second)
		for sumVolume(t, d.addr, "my-first-model-1m") == 0 && time.Now().Before(deadline) {
			time.Sleep(200 * time.Millisecond)
		}
		if sumVolume(t, d.addr, "my-first-model-1m") == 0 {
			t.Errorf("my-first-model-1m counted nothing")
		}
	}
}

// TestDemoEmbeddedReloadSaysWhy: without a scripts folder the demo runs
// the embedded models, says so on start, and a reload says there is
// nothing to reload and how to use a folder instead of doing nothing
// without a word.
func TestDemoEmbeddedReloadSaysWhy(t *testing.T) {
	dir := t.TempDir()
	d := startDemo(t, dir)
	defer d.stop(t)
	d.waitOutput(t, "running the shipped models embedded in the binary (there is no ./scripts folder here)")
	d.waitOutput(t, "--scripts DIR")
	d.cmd.Process.Signal(syscall.SIGHUP)
	d.waitOutput(t, "nothing to reload")
	d.waitOutput(t, "run the demo in a folder with a scripts/ folder, or with --scripts DIR")
	st := d.status(t)
	reloads, _ := st["reloads"].([]any)
	if len(reloads) != 1 || !strings.Contains(strings.Join(anyStrings(reloads[0].(map[string]any)["errors"]), " "), "nothing to reload") {
		t.Errorf("/status reloads = %v, want the one reload with its reason", st["reloads"])
	}
}

func anyStrings(v any) []string {
	var out []string
	l, _ := v.([]any)
	for _, x := range l {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}
