package luaapi_test

import (
	"path/filepath"
	"reflect"
	"testing"

	"statscache/luaapi"
	"statscache/luaapi/meta"
)

// TestMetaHeaderHelpers: a model sees what a fedora-messaging message's
// headers say it is about through meta.usernames, meta.packages,
// meta.groups, meta.containers, meta.modules and meta.flatpaks, and the
// agent_name of an archive record through meta.agent.
func TestMetaHeaderHelpers(t *testing.T) {
	lib, err := meta.Load(filepath.Join("..", "scripts", "meta"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer lib.Close()
	opts := quiet
	opts.Meta = lib
	src := lines(decl1m,
		"local rows = {}",
		"function process(msg)",
		"  rows[#rows + 1] = {timestamp = 0, k = msg.id, v = {users = meta.usernames(msg), pkgs = meta.packages(msg),",
		"    groups = meta.groups(msg), containers = meta.containers(msg), modules = meta.modules(msg),",
		"    flatpaks = meta.flatpaks(msg), agent = meta.agent(msg) or 'none'}}",
		"end",
		"function update(db)",
		"  for _, r in ipairs(rows) do db:upsert(r) end",
		"end")
	m := openSource(t, "m.lua", src, opts)
	headers := `{"sent-at": "2024-03-01T12:00:07+00:00", "fedora_messaging_user_zoe": true, "fedora_messaging_rpm_zlib": true,
		"fedora_messaging_group_packager": true, "fedora_messaging_container_toolbox": true,
		"fedora_messaging_module_nodejs": true, "fedora_messaging_flatpak_firefox": true}`
	recs := []string{
		`{"id": "a1", "topic": "org.fedoraproject.prod.x.y", "headers": ` + headers + `, "body": {}}`,
		`{"msg_id": "a2", "topic": "org.fedoraproject.prod.x.y", "timestamp": 1709294407.0, "agent_name": "zoe", "headers": ` + headers + `, "msg": {}}`,
	}
	for _, rec := range recs {
		if err := m.Process(t.Context(), decode(t, rec)); err != nil {
			t.Fatal(err)
		}
	}
	w := &recWriter{}
	if err := m.Flush(t.Context(), w); err != nil {
		t.Fatal(err)
	}
	if len(w.rows) != 2 {
		t.Fatalf("%d rows", len(w.rows))
	}
	for i, agent := range []string{"none", "zoe"} {
		want := map[string]any{"users": []any{"zoe"}, "pkgs": []any{"zlib"}, "groups": []any{"packager"},
			"containers": []any{"toolbox"}, "modules": []any{"nodejs"}, "flatpaks": []any{"firefox"}, "agent": agent}
		if got := w.rows[i]["v"]; !reflect.DeepEqual(got, want) {
			t.Errorf("message %d: got %v\nwant %v", i+1, got, want)
		}
	}
}

// TestModelTellsMetaWhatItExpects: a model that asked for fedmsg.meta
// helpers on its last message has the library compute them for the next
// messages (meta.Library.Expect); one that asked for nothing on its last
// message, or closed, no longer does.
func TestModelTellsMetaWhatItExpects(t *testing.T) {
	lib, err := meta.Load(filepath.Join("..", "scripts", "meta"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer lib.Close()
	opts := quiet
	opts.Meta = lib
	src := lines(decl1m,
		"function process(msg)",
		`  if msg.topic:find("users") then meta.usernames(msg) end`,
		`  if msg.topic:find("pkgs") then meta.packages(msg) end`,
		"end",
		"function update(db) end")
	models, err := luaapi.LoadSource("m.lua", src, opts)
	if err != nil {
		t.Fatal(err)
	}
	m := models[0]
	if err := m.Open(newState()); err != nil {
		t.Fatal(err)
	}
	for i, step := range []struct {
		topic string
		want  meta.Helpers
	}{
		{"a.b.users", meta.Usernames},
		{"a.b.users.pkgs", meta.Usernames | meta.Packages},
		{"a.b.pkgs", meta.Packages},
		{"a.b.none", 0},
		{"a.b.users", meta.Usernames},
	} {
		if err := m.Process(t.Context(), decode(t, rawRecord("x", step.topic, float64(i), "{}"))); err != nil {
			t.Fatal(err)
		}
		if got := lib.Expected(); got != step.want {
			t.Errorf("after %s: the library expects %b, want %b", step.topic, got, step.want)
		}
	}
	m.Close()
	if got := lib.Expected(); got != 0 {
		t.Errorf("after Close: the library expects %b, want nothing", got)
	}
}
