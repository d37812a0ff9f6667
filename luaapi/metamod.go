package luaapi

import (
	lua "github.com/yuin/gopher-lua"

	"statscache/luaapi/meta"
)

// metaModule gives models the fedmsg.meta helpers: meta.usernames(msg),
// meta.packages(msg), meta.objects(msg) (sorted arrays), meta.agent(msg)
// (string or nil), meta.title, meta.subtitle, meta.link, meta.icon,
// meta.secondary_icon and meta.processor (strings), and meta.groups,
// meta.containers, meta.modules and meta.flatpaks (sorted arrays, from a
// fedora-messaging message's headers). Each helper's rules run once per
// message, whichever and however many models ask, and only when one asks
// (see meta.Library.ComputeSome).
func metaModule(L *lua.LState, m *Model, lib *meta.Library) *lua.LTable {
	t := L.NewTable()
	result := func(L *lua.LState, name string, want meta.Helpers) *meta.Result {
		if m.cur == nil || L.Get(1) != m.msgT {
			L.RaiseError("meta.%s(msg): pass the message given to process, during process", name)
		}
		m.metaAsked |= want
		host := m.guard.inHost()
		r, err := lib.ComputeSome(m.cur, want)
		host.done()
		if err != nil {
			L.RaiseError("meta.%s: %v", name, err)
		}
		return r
	}
	set := func(name string, want meta.Helpers, get func(*meta.Result) []string) {
		t.RawSetString(name, L.NewFunction(func(L *lua.LState) int {
			vals := get(result(L, name, want))
			out := L.CreateTable(len(vals), 0)
			for i, v := range vals {
				out.RawSetInt(i+1, lua.LString(v))
			}
			L.Push(out)
			return 1
		}))
	}
	str := func(name string, want meta.Helpers, get func(*meta.Result) string) {
		t.RawSetString(name, L.NewFunction(func(L *lua.LState) int {
			L.Push(lua.LString(get(result(L, name, want))))
			return 1
		}))
	}
	set("usernames", meta.Usernames, func(r *meta.Result) []string { return r.Usernames })
	set("packages", meta.Packages, func(r *meta.Result) []string { return r.Packages })
	set("objects", meta.Objects, func(r *meta.Result) []string { return r.Objects })
	// What a fedora-messaging message's headers say it is about.
	set("groups", 0, func(r *meta.Result) []string { return r.Groups })
	set("containers", 0, func(r *meta.Result) []string { return r.Containers })
	set("modules", 0, func(r *meta.Result) []string { return r.Modules })
	set("flatpaks", 0, func(r *meta.Result) []string { return r.Flatpaks })
	str("title", meta.Title, func(r *meta.Result) string { return r.Title })
	str("subtitle", meta.Subtitle, func(r *meta.Result) string { return r.Subtitle })
	str("link", meta.Link, func(r *meta.Result) string { return r.Link })
	str("icon", meta.Icon, func(r *meta.Result) string { return r.Icon })
	str("secondary_icon", meta.SecondaryIcon, func(r *meta.Result) string { return r.SecondaryIcon })
	str("processor", 0, func(r *meta.Result) string { return r.Processor })
	t.RawSetString("agent", L.NewFunction(func(L *lua.LState) int {
		if a := result(L, "agent", meta.Agent).Agent; a != nil {
			L.Push(lua.LString(*a))
		} else {
			L.Push(lua.LNil)
		}
		return 1
	}))
	return t
}
