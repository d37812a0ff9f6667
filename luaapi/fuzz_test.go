package luaapi_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"statscache/luaapi"
)

// snippet builds a Lua chunk from fuzz bytes: statements made of the
// library functions scripts get, over strings, patterns and tables that
// can be large, inside loops that may never end.
func snippet(gen []byte) string {
	pick := func(opts ...string) string {
		if len(gen) == 0 {
			return opts[0]
		}
		c := int(gen[0])
		gen = gen[1:]
		return opts[c%len(opts)]
	}
	str := func() string {
		return pick(`s`, `"hello, world"`, `string.rep("a", 100000)`, `string.rep("ab", 300000)`, `tostring(n)`,
			`big`, `(s .. s)`, `string.char(65, 66, 0, 255)`, `"(a(b)c)"`, `""`)
	}
	pat := func() string {
		return pick(`".-.-.-.-b"`, `"(%w+)"`, `"%b()"`, `"[^,]*"`, `"^(a*)$"`, `"(a-)%1"`, `"%f[%w]%w+"`,
			`"((((((((((a))))))))))"`, `"a*a*a*a*a*a*b"`, `"["`, `"%"`, `"()"`, `""`)
	}
	repl := func() string {
		return pick(`"%1%1%1%1"`, `"%0%0"`, `"x"`, `{a = "b"}`, `function(c) return c .. c end`, `"%9"`, `function() error("r") end`)
	}
	num := func() string { return pick(`1`, `-1`, `1e9`, `0`, `100000`, `2^53`, `0/0`, `n`) }
	stmt := func() string {
		return pick(
			`local a, b = string.find(`+str()+`, `+pat()+`)`,
			`local a = string.match(`+str()+`, `+pat()+`, `+num()+`)`,
			`for a in string.gmatch(`+str()+`, `+pat()+`) do n = n + 1 end`,
			`s = string.gsub(`+str()+`, `+pat()+`, `+repl()+`)`,
			`s = string.format("%5.2f %d %q %s %x", `+num()+`, `+num()+`, `+str()+`, `+str()+`, `+num()+`)`,
			`s = string.rep(`+str()+`, `+num()+`)`,
			`t[#t + 1] = `+str(),
			`s = table.concat(t, `+str()+`)`,
			`table.sort(t)`,
			`table.sort(t, function(x, y) return x > y end)`,
			`local r = {unpack(t, 1, `+num()+`)}`,
			`local r = {string.byte(`+str()+`, 1, `+num()+`)}`,
			`s = string.upper(`+str()+`) .. string.lower(`+str()+`) .. string.reverse(`+str()+`)`,
			`s = `+str()+` .. `+str(),
			`big = big .. big`,
			`local ok, e = pcall(string.rep, `+str()+`, `+num()+`)`,
			`s = json.encode(t)`,
			`local d = json.decode(json.encode({s}))`,
			`n = n + #`+str(),
			`setmetatable(t, {__index = function(tt, k) return k end})`,
			`c:inc(`+str()+`)`,
			`log(`+str()+`)`,
		)
	}
	var b strings.Builder
	b.WriteString("local s, n, t = \"x\", 1, {}\n")
	for len(gen) > 0 {
		switch pick("plain", "plain", "loop", "forever") {
		case "loop":
			fmt.Fprintf(&b, "for i = 1, %s do %s end\n", pick("10", "1000", "100000"), stmt())
		case "forever":
			fmt.Fprintf(&b, "while true do %s end\n", stmt())
		default:
			b.WriteString(stmt() + "\n")
		}
	}
	return b.String()
}

// FuzzScriptLimits drives random Lua built from the library functions
// through loading (the top level, as check does) and process, under small
// limits: nothing panics, and no call outlives its limit by more than a
// second. The seeds are the hostile cases of the README.
func FuzzScriptLimits(f *testing.F) {
	for _, seed := range []string{
		`string.find(string.rep("a", 100000), ".-.-.-.-.-b")`,
		`local s = string.rep("abcd", 1024 * 1024) while true do s = s:gsub("(%w)", "%1%1%1%1") end`,
		`local p = {} for i = 1, 1000 do p[i] = string.rep("x", 1024 * 1024) end local s = table.concat(p)`,
		`setmetatable(_G, {__index = function(t, k) error("boom " .. tostring(k)) end})`,
		`setmetatable(_G, {__index = function(t, k) while true do end end})`,
		`local t = {} for i = 1, 100000 do t[i] = i % 977 end while true do table.sort(t, function(a, b) return a > b end) end`,
		`local s = "xxxxxxxxxxxxxxxx" while true do s = s .. s end`,
		`while true do pcall(function() while true do end end) end`,
		`local t = {1} for i = 1, 60 do t = {t, t} end json.encode(t)`,
		`string.format(string.rep("%s", 1000), unpack((function() local t = {} for i = 1, 1000 do t[i] = string.rep("x", 100000) end return t end)()))`,
	} {
		f.Add(seed, []byte(nil))
	}
	f.Add("", []byte{3, 0, 1, 2, 7, 4, 1, 5})
	f.Add("", []byte{2, 3, 2, 1, 0, 9})
	limit := 300 * time.Millisecond
	opts := luaapi.Options{Logger: quiet.Logger, Limits: luaapi.Limits{CallTimeout: limit, UpdateTimeout: limit, MaxString: 1 << 20, MemoryLimit: 64 << 20}}
	f.Fuzz(func(t *testing.T, raw string, gen []byte) {
		if len(raw) > 2000 || len(gen) > 64 {
			t.Skip()
		}
		body := raw + "\n" + snippet(gen)
		decl := `model {name = "fuzz", summary = "s", description = "d", columns = {{name = "n", type = "integer"}}}` + "\n" +
			"local c = counter()\nbig = string.rep(\"z\", 1000)\n"
		slack := time.Second
		// At the top level, as check and a reload run it.
		start := time.Now()
		luaapi.LoadSource("top.lua", []byte(decl+body+"\nfunction process(msg) end\nfunction update(db) end\n"), opts)
		if took := time.Since(start); took > limit+slack {
			t.Fatalf("loading took %s, over the limit of %s by more than %s:\n%s", took, limit, slack, body)
		}
		// In process.
		models, err := luaapi.LoadSource("proc.lua", []byte(decl+"function process(msg)\n"+body+"\nend\nfunction update(db) end\n"), opts)
		if err != nil {
			return // a syntax error of the raw part
		}
		m := models[0]
		if err := m.Open(nopState{}); err != nil {
			t.Fatalf("open: %v", err)
		}
		defer m.Close()
		start = time.Now()
		m.Process(context.Background(), testMsg)
		if took := time.Since(start); took > limit+slack {
			t.Fatalf("process took %s, over the limit of %s by more than %s:\n%s", took, limit, slack, body)
		}
	})
}
