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
// fedora-messaging message's headers). The rules run once per
// message, whichever and however many models ask (see meta.Library).
func metaModule(L *lua.LState, m *Model, lib *meta.Library) *lua.LTable {
	t := L.NewTable()
	result := func(L *lua.LState, name string) *meta.Result {
		if m.cur == nil || L.Get(1) != m.msgT {
			L.RaiseError("meta.%s(msg): pass the message given to process, during process", name)
		}
		done := m.guard.inHost()
		r, err := lib.Compute(m.cur)
		done()
		if err != nil {
			L.RaiseError("meta.%s: %v", name, err)
		}
		return r
	}
	set := func(name string, get func(*meta.Result) []string) {
		t.RawSetString(name, L.NewFunction(func(L *lua.LState) int {
			vals := get(result(L, name))
			out := L.CreateTable(len(vals), 0)
			for i, v := range vals {
				out.RawSetInt(i+1, lua.LString(v))
			}
			L.Push(out)
			return 1
		}))
	}
	str := func(name string, get func(*meta.Result) string) {
		t.RawSetString(name, L.NewFunction(func(L *lua.LState) int {
			L.Push(lua.LString(get(result(L, name))))
			return 1
		}))
	}
	set("usernames", func(r *meta.Result) []string { return r.Usernames })
	set("packages", func(r *meta.Result) []string { return r.Packages })
	set("objects", func(r *meta.Result) []string { return r.Objects })
	// What a fedora-messaging message's headers say it is about.
	set("groups", func(r *meta.Result) []string { return r.Groups })
	set("containers", func(r *meta.Result) []string { return r.Containers })
	set("modules", func(r *meta.Result) []string { return r.Modules })
	set("flatpaks", func(r *meta.Result) []string { return r.Flatpaks })
	str("title", func(r *meta.Result) string { return r.Title })
	str("subtitle", func(r *meta.Result) string { return r.Subtitle })
	str("link", func(r *meta.Result) string { return r.Link })
	str("icon", func(r *meta.Result) string { return r.Icon })
	str("secondary_icon", func(r *meta.Result) string { return r.SecondaryIcon })
	str("processor", func(r *meta.Result) string { return r.Processor })
	t.RawSetString("agent", L.NewFunction(func(L *lua.LState) int {
		if a := result(L, "agent").Agent; a != nil {
			L.Push(lua.LString(*a))
		} else {
			L.Push(lua.LNil)
		}
		return 1
	}))
	return t
}
