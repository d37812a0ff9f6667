package meta

import (
	"sort"

	"github.com/valyala/fastjson"

	"statscache/engine"
)

// fromHeaders completes what the rules found with what a fedora-messaging
// message says of itself. Its publisher puts one header per user, group,
// package, container, module and flatpak the message is about
// (fedora_messaging_user_<name> = true, ...: what its schema's usernames,
// groups, packages... return), so a consumer knows them without the
// schema's code; datanommer adds the schema's agent_name to its /raw
// records. The rules, written for fedmsg, know none of today's schemas,
// so usernames and packages are the union of both, and agent_name, when
// the record has it, is the agent. A fedmsg-era message has no such
// headers and keeps exactly what the rules say.
func fromHeaders(r *Result, rec *fastjson.Value, hs Helpers) *Result {
	r.Groups, r.Containers, r.Modules, r.Flatpaks = []string{}, []string{}, []string{}, []string{}
	if h := rec.Get("headers"); h != nil && h.Type() == fastjson.TypeObject {
		if hs&Usernames != 0 {
			r.Usernames = union(r.Usernames, engine.HeaderNames(h, engine.HeaderUserPrefix))
		}
		if hs&Packages != 0 {
			r.Packages = union(r.Packages, engine.HeaderNames(h, engine.HeaderPackagePrefix))
		}
		r.Groups = union(r.Groups, engine.HeaderNames(h, engine.HeaderGroupPrefix))
		r.Containers = union(r.Containers, engine.HeaderNames(h, engine.HeaderContainerPrefix))
		r.Modules = union(r.Modules, engine.HeaderNames(h, engine.HeaderModulePrefix))
		r.Flatpaks = union(r.Flatpaks, engine.HeaderNames(h, engine.HeaderFlatpakPrefix))
	}
	if a := rec.Get("agent_name"); hs&Agent != 0 && a != nil && a.Type() == fastjson.TypeString && len(a.GetStringBytes()) > 0 {
		s := string(a.GetStringBytes())
		r.Agent = &s
	}
	return r
}

// union adds names to a sorted set, keeping it sorted and without
// duplicates or empty names.
func union(set, names []string) []string {
	if len(names) == 0 {
		return set
	}
	out := append([]string{}, set...)
	for _, n := range names {
		if n == "" {
			continue
		}
		if i := sort.SearchStrings(out, n); i == len(out) || out[i] != n {
			out = append(out, "")
			copy(out[i+1:], out[i:])
			out[i] = n
		}
	}
	return out
}
