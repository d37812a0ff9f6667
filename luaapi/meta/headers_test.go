package meta

import (
	"encoding/json"
	"reflect"
	"testing"
)

// TestHeaders: for a fedora-messaging message the helpers add what its
// headers say (usernames and packages united with the rules' findings;
// groups, containers, modules and flatpaks from the headers alone), and
// agent_name is the agent, whether the record is a datagrepper /raw record
// of the AMQP era or the /v2 shape a delivery is journaled in.
func TestHeaders(t *testing.T) {
	l := load(t)
	headers := `{"fedora_messaging_schema": "bodhi.update.comment.v1", "sent-at": "2024-03-01T12:00:07+00:00",
		"fedora_messaging_user_zoe": true, "fedora_messaging_user_ralph": true, "fedora_messaging_user_off": false,
		"fedora_messaging_rpm_kernel": true, "fedora_messaging_rpm_zlib": true,
		"fedora_messaging_group_packager": true, "fedora_messaging_container_fedora-toolbox": true,
		"fedora_messaging_module_nodejs": true, "fedora_messaging_flatpak_firefox": true}`
	// A bodhi comment whose body names ralph and the kernel package.
	body := `{"comment": {"user": {"name": "ralph"}, "text": "works", "update": {"title": "kernel-6.7.5-200.fc39", "builds": [{"nvr": "kernel-6.7.5-200.fc39"}], "user": {"name": "ralph"}}}}`
	topic := "org.fedoraproject.prod.bodhi.update.comment"
	raw := `{"i": 0, "msg_id": "273ed91d-b8b5-487a-9576-95b9fbdf3eec", "topic": "` + topic + `", "timestamp": 1709294407.0,
		"agent_name": "zoe", "username": "zoe", "users": ["ralph", "zoe"], "packages": ["kernel", "zlib"],
		"msg": ` + body + `, "headers": ` + headers + `, "source_name": "datanommer", "source_version": "1.4.0"}`
	v2 := `{"id": "273ed91d-b8b5-487a-9576-95b9fbdf3eec", "topic": "` + topic + `", "headers": ` + headers + `, "body": ` + body + `}`
	plain := `{"msg_id": "2024-273ed91d-b8b5-487a-9576-95b9fbdf3eec", "topic": "` + topic + `", "timestamp": 1709294407.0, "headers": {}, "msg": ` + body + `}`

	rules := mustCompute(t, l, plain)
	if len(rules.Usernames) == 0 || len(rules.Packages) == 0 {
		t.Fatalf("the bodhi rules find nothing in the body (%q, %q): the test would prove nothing", rules.Usernames, rules.Packages)
	}
	for name, rec := range map[string]string{"raw": raw, "v2": v2} {
		r := mustCompute(t, l, rec)
		if want := union(rules.Usernames, []string{"ralph", "zoe"}); !reflect.DeepEqual(r.Usernames, want) {
			t.Errorf("%s: usernames %q, want %q", name, r.Usernames, want)
		}
		if want := union(rules.Packages, []string{"kernel", "zlib"}); !reflect.DeepEqual(r.Packages, want) {
			t.Errorf("%s: packages %q, want %q", name, r.Packages, want)
		}
		for what, got := range map[string][]string{"groups": r.Groups, "containers": r.Containers, "modules": r.Modules, "flatpaks": r.Flatpaks} {
			want := map[string][]string{"groups": {"packager"}, "containers": {"fedora-toolbox"}, "modules": {"nodejs"}, "flatpaks": {"firefox"}}[what]
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s: %s %q, want %q", name, what, got, want)
			}
		}
		if !reflect.DeepEqual(r.Objects, rules.Objects) || r.Title != rules.Title || r.Subtitle != rules.Subtitle {
			t.Errorf("%s: headers changed what only the rules say", name)
		}
		j, _ := json.Marshal(r)
		var out map[string]any
		json.Unmarshal(j, &out)
		if out["groups"] == nil || out["flatpaks"] == nil {
			t.Errorf("%s: JSON lacks the header sets: %s", name, j)
		}
	}
	if a := mustCompute(t, l, raw).Agent; a == nil || *a != "zoe" {
		t.Errorf("agent %v, want agent_name zoe", a)
	}
	if a, b := mustCompute(t, l, v2).Agent, rules.Agent; (a == nil) != (b == nil) || (a != nil && *a != *b) {
		t.Errorf("without agent_name the agent is the rules' (%v), got %v", b, a)
	}
	// A fedmsg-era record is untouched: no header sets in its JSON.
	j, _ := json.Marshal(rules)
	var out map[string]any
	json.Unmarshal(j, &out)
	if _, ok := out["groups"]; ok {
		t.Errorf("fedmsg record JSON has groups: %s", j)
	}
}

func TestUnion(t *testing.T) {
	got := union([]string{"b", "d"}, []string{"d", "a", "", "c", "a"})
	if want := []string{"a", "b", "c", "d"}; !reflect.DeepEqual(got, want) {
		t.Errorf("union = %q, want %q", got, want)
	}
	in := []string{"x"}
	union(in, []string{"a"})
	if in[0] != "x" {
		t.Error("union changed its input")
	}
}
