package sandbox

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	lua "github.com/yuin/gopher-lua"
)

// The built-ins of gopher-lua's base, table and string libraries that can
// run long or allocate without bound are replaced by the versions below,
// which look at the call's context every few thousand steps (as the Lua VM
// does between instructions) and ask the state's Meter before they build a
// string or a list of results. The README ("Limits") lists them.

// maxResults bounds how many values string.byte and unpack may return
// (Lua 5.1's own C stack allows about 8000).
const maxResults = 100_000

// valueSize is what one Lua value costs on the stack or in a slice.
const valueSize = 16

type lib struct{ m *Meter }

func installLimited(L *lua.LState, m *Meter) {
	b := lib{m}
	str, _ := L.GetGlobal("string").(*lua.LTable)
	tab, _ := L.GetGlobal("table").(*lua.LTable)
	for name, fn := range map[string]lua.LGFunction{
		"find": b.find, "match": b.match, "gmatch": b.gmatch, "gfind": b.gmatch, "gsub": b.gsub,
		"format": b.format, "rep": b.rep, "char": b.char, "byte": b.byte,
		"upper": b.mapBytes("string.upper", upper), "lower": b.mapBytes("string.lower", lower),
		"reverse": b.reverse,
	} {
		if str != nil {
			str.RawSetString(name, L.NewFunction(fn))
		}
	}
	for name, fn := range map[string]lua.LGFunction{"concat": b.concat, "sort": b.sort} {
		if tab != nil {
			tab.RawSetString(name, L.NewFunction(fn))
		}
	}
	L.SetGlobal("unpack", L.NewFunction(b.unpack))
}

// ticker counts the steps of a loop in a built-in and checks the call's
// context every checkEvery of them.
type ticker struct {
	L *lua.LState
	n int
}

func (t *ticker) tick() {
	t.n++
	if t.n%checkEvery == 0 {
		Interrupted(t.L)
	}
}

// newMatcher prepares a match of pat in src whose errors and interruptions
// surface as Lua errors of L. It returns a value, which stays on the
// caller's stack.
func newMatcher(L *lua.LState, src, pat string) matcher {
	m := matcher{src: src, pat: pat, L: L}
	m.validate()
	return m
}

// protect turns a pattern error raised by the matcher into a Lua error.
func protect(L *lua.LState) {
	if r := recover(); r != nil {
		if pe, ok := r.(patternError); ok {
			L.RaiseError("%s", string(pe))
		}
		panic(r)
	}
}

// posrelat turns a Lua string position (negative from the end) into a
// non-negative one, as Lua 5.1 does.
func posrelat(pos, n int) int {
	if pos < 0 {
		pos += n + 1
	}
	return max(pos, 0)
}

func pushAll(L *lua.LState, vs []lua.LValue) int {
	for _, v := range vs {
		L.Push(v)
	}
	return len(vs)
}

const specials = "^$*+?.([%-"

func (b lib) findAux(L *lua.LState, find bool) (n int) {
	src, pat := L.CheckString(1), L.CheckString(2)
	init := posrelat(L.OptInt(3, 1), len(src)) - 1
	init = min(max(init, 0), len(src))
	if find && (lua.LVAsBool(L.Get(4)) || !strings.ContainsAny(pat, specials)) {
		i := strings.Index(src[init:], pat)
		if i < 0 {
			L.Push(lua.LNil)
			return 1
		}
		L.Push(lua.LNumber(init + i + 1))
		L.Push(lua.LNumber(init + i + len(pat)))
		return 2
	}
	anchored := strings.HasPrefix(pat, "^")
	if anchored {
		pat = pat[1:]
	}
	defer protect(L)
	m := newMatcher(L, src, pat)
	s, e := m.find(init, anchored)
	if s < 0 {
		L.Push(lua.LNil)
		return 1
	}
	caps := m.captures(s, e, !find)
	b.m.Charge(L, int64(len(caps))*valueSize)
	if find {
		L.Push(lua.LNumber(s + 1))
		L.Push(lua.LNumber(e))
		return 2 + pushAll(L, caps)
	}
	return pushAll(L, caps)
}

// string.find(s, pattern [, init [, plain]])
func (b lib) find(L *lua.LState) int { return b.findAux(L, true) }

// string.match(s, pattern [, init])
func (b lib) match(L *lua.LState) int { return b.findAux(L, false) }

// string.gmatch(s, pattern): as in Lua 5.1, a leading '^' is not an
// anchor here (it matches itself).
func (b lib) gmatch(L *lua.LState) int {
	src, pat := L.CheckString(1), L.CheckString(2)
	func() {
		defer protect(L)
		newMatcher(L, src, pat)
	}()
	pos := 0
	L.Push(L.NewFunction(func(L *lua.LState) int {
		defer protect(L)
		m := newMatcher(L, src, pat)
		for s := pos; s <= len(src); s++ {
			m.level, m.depth = 0, 0
			if e := m.match(s, 0); e != -1 {
				m.finished()
				pos = e
				if e == s {
					pos++
				}
				caps := m.captures(s, e, true)
				b.m.Charge(L, int64(len(caps))*valueSize)
				return pushAll(L, caps)
			}
		}
		pos = len(src) + 1
		return 0
	}))
	return 1
}

// builder builds the result string of a built-in, refusing to grow past
// the meter's string cap.
type builder struct {
	L   *lua.LState
	m   *Meter
	fn  string
	buf strings.Builder
}

func (w *builder) grow(n int) {
	if total := int64(w.buf.Len()) + int64(n); total > int64(w.m.maxString()) {
		w.L.RaiseError("%s: the result would be over %d bytes, the limit", w.fn, w.m.maxString())
	}
	w.m.Charge(w.L, int64(n))
}

func (w *builder) str(s string) {
	w.grow(len(s))
	w.buf.WriteString(s)
}

func (w *builder) byte(c byte) {
	w.grow(1)
	w.buf.WriteByte(c)
}

// string.gsub(s, pattern, repl [, n])
func (b lib) gsub(L *lua.LState) int {
	src, pat := L.CheckString(1), L.CheckString(2)
	repl := L.Get(3)
	switch repl.Type() {
	case lua.LTString, lua.LTNumber, lua.LTTable, lua.LTFunction:
	default:
		L.ArgError(3, "string/function/table expected, got "+repl.Type().String())
	}
	maxN := L.OptInt(4, len(src)+1)
	anchored := strings.HasPrefix(pat, "^")
	if anchored {
		pat = pat[1:]
	}
	defer protect(L)
	m := newMatcher(L, src, pat)
	out := &builder{L: L, m: b.m, fn: "string.gsub"}
	s, n := 0, 0
loop:
	for n < maxN {
		m.level, m.depth = 0, 0
		e := m.match(s, 0)
		if e != -1 {
			m.finished()
			n++
			b.replace(L, &m, out, repl, s, e)
		}
		switch {
		case e != -1 && e > s:
			s = e
		case s < len(src):
			out.byte(src[s])
			s++
		default:
			break loop
		}
		if anchored {
			break
		}
	}
	out.str(src[s:])
	L.Push(lua.LString(out.buf.String()))
	L.Push(lua.LNumber(n))
	return 2
}

// replace adds the replacement of the match src[s:e].
func (b lib) replace(L *lua.LState, m *matcher, out *builder, repl lua.LValue, s, e int) {
	var v lua.LValue
	switch r := repl.(type) {
	case lua.LString, lua.LNumber:
		rs := lua.LVAsString(r)
		for i := 0; i < len(rs); i++ {
			c := rs[i]
			if c != '%' {
				out.byte(c)
				continue
			}
			i++
			switch {
			case i >= len(rs):
				L.RaiseError("invalid use of '%%' in replacement string")
			case rs[i] == '0':
				out.str(m.src[s:e])
			case '1' <= rs[i] && rs[i] <= '9':
				out.str(m.captureString(int(rs[i]-'1'), s, e))
			default:
				out.byte(rs[i])
			}
		}
		return
	case *lua.LTable:
		v = L.GetTable(r, m.captureValue(0, s, e))
	case *lua.LFunction:
		caps := m.captures(s, e, true)
		L.Push(r)
		pushAll(L, caps)
		L.Call(len(caps), 1)
		v = L.Get(-1)
		L.Pop(1)
	}
	switch x := v.(type) {
	case *lua.LNilType:
		out.str(m.src[s:e])
	case lua.LBool:
		if !x {
			out.str(m.src[s:e])
			return
		}
		L.RaiseError("invalid replacement value (a boolean)")
	case lua.LString, lua.LNumber:
		out.str(lua.LVAsString(x))
	default:
		L.RaiseError("invalid replacement value (a %s)", v.Type())
	}
}

// string.rep(s, n)
func (b lib) rep(L *lua.LState) int {
	s := L.CheckString(1)
	n := L.CheckInt(2)
	if n <= 0 || s == "" {
		L.Push(lua.LString(""))
		return 1
	}
	if max := b.m.maxString(); n > max/len(s) {
		L.RaiseError("string.rep: the result would be %.0f bytes, over the limit of %d", float64(len(s))*float64(n), max)
	}
	b.m.String(L, "string.rep", int64(len(s))*int64(n))
	L.Push(lua.LString(strings.Repeat(s, n)))
	return 1
}

// string.char(...)
func (b lib) char(L *lua.LState) int {
	top := L.GetTop()
	b.m.String(L, "string.char", int64(top))
	buf := make([]byte, top)
	for i := 1; i <= top; i++ {
		c := L.CheckInt(i)
		if c < 0 || c > 255 {
			L.ArgError(i, "invalid value")
		}
		buf[i-1] = byte(c)
	}
	L.Push(lua.LString(buf))
	return 1
}

// string.byte(s [, i [, j]])
func (b lib) byte(L *lua.LState) int {
	s := L.CheckString(1)
	i := posrelat(L.OptInt(2, 1), len(s))
	j := posrelat(L.OptInt(3, i), len(s))
	i = max(i, 1)
	j = min(j, len(s))
	if i > j {
		return 0
	}
	n := j - i + 1
	if n > maxResults {
		L.RaiseError("string.byte: string slice too long (%d values, the limit is %d)", n, maxResults)
	}
	b.m.Charge(L, int64(n)*valueSize)
	for k := i; k <= j; k++ {
		L.Push(lua.LNumber(s[k-1]))
	}
	return n
}

func upper(c byte) byte {
	if 'a' <= c && c <= 'z' {
		return c - 'a' + 'A'
	}
	return c
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c - 'A' + 'a'
	}
	return c
}

// mapBytes is string.upper and string.lower: byte-wise, ASCII only, as in
// the C locale.
func (b lib) mapBytes(name string, f func(byte) byte) lua.LGFunction {
	return func(L *lua.LState) int {
		s := L.CheckString(1)
		b.m.String(L, name, int64(len(s)))
		buf := make([]byte, len(s))
		for i := 0; i < len(s); i++ {
			buf[i] = f(s[i])
		}
		L.Push(lua.LString(buf))
		return 1
	}
}

// string.reverse(s)
func (b lib) reverse(L *lua.LState) int {
	s := L.CheckString(1)
	b.m.String(L, "string.reverse", int64(len(s)))
	buf := make([]byte, len(s))
	for i := range len(s) {
		buf[len(s)-1-i] = s[i]
	}
	L.Push(lua.LString(buf))
	return 1
}

// table.concat(t [, sep [, i [, j]]]): the bounds are clamped to the
// table's length as gopher-lua does. The length is summed before the
// string is built.
func (b lib) concat(L *lua.LState) int {
	t := L.CheckTable(1)
	sep := L.OptString(2, "")
	n := t.Len()
	i := L.OptInt(3, 1)
	j := L.OptInt(4, n)
	if L.GetTop() == 3 && (i > n || i < 1) {
		L.Push(lua.LString(""))
		return 1
	}
	i = max(min(i, n), 1)
	j = min(j, n)
	if i > j {
		L.Push(lua.LString(""))
		return 1
	}
	tk := ticker{L: L}
	total := int64(0)
	for k := i; k <= j; k++ {
		tk.tick()
		v := t.RawGetInt(k)
		if !lua.LVCanConvToString(v) {
			L.RaiseError("invalid value (%s) at index %d in table for concat", v.Type(), k)
		}
		total += int64(len(lua.LVAsString(v)))
		if k < j {
			total += int64(len(sep))
		}
		if total > int64(b.m.maxString()) {
			L.RaiseError("table.concat: the result would be over %d bytes, the limit", b.m.maxString())
		}
	}
	b.m.String(L, "table.concat", total)
	var sb strings.Builder
	sb.Grow(int(total))
	for k := i; k <= j; k++ {
		sb.WriteString(lua.LVAsString(t.RawGetInt(k)))
		if k < j {
			sb.WriteString(sep)
		}
	}
	L.Push(lua.LString(sb.String()))
	return 1
}

// table.sort(t [, comp]): the values are sorted in a Go slice (whose
// comparisons look at the call's context) and written back.
func (b lib) sort(L *lua.LState) int {
	t := L.CheckTable(1)
	var cmp *lua.LFunction
	if L.GetTop() >= 2 && L.Get(2) != lua.LNil {
		cmp = L.CheckFunction(2)
	}
	n := t.Len()
	b.m.Charge(L, int64(n)*valueSize)
	vals := make([]lua.LValue, n)
	for i := range vals {
		vals[i] = t.RawGetInt(i + 1)
	}
	tk := ticker{L: L}
	sort.Slice(vals, func(i, j int) bool {
		tk.tick()
		if cmp == nil {
			return L.LessThan(vals[i], vals[j])
		}
		L.Push(cmp)
		L.Push(vals[i])
		L.Push(vals[j])
		L.Call(2, 1)
		r := lua.LVAsBool(L.Get(-1))
		L.Pop(1)
		return r
	})
	for i, v := range vals {
		t.RawSetInt(i+1, v)
	}
	return 0
}

// unpack(t [, i [, j]])
func (b lib) unpack(L *lua.LState) int {
	t := L.CheckTable(1)
	i := L.OptInt(2, 1)
	j := L.OptInt(3, t.Len())
	if i > j {
		return 0
	}
	n := int64(j) - int64(i) + 1
	if n > maxResults {
		L.RaiseError("unpack: too many results to unpack (%d, the limit is %d)", n, maxResults)
	}
	b.m.Charge(L, n*valueSize)
	for k := i; k <= j; k++ {
		L.Push(t.RawGetInt(k))
	}
	return int(n)
}

// string.format(fmt, ...): Lua 5.1's directives (flags "-+ #0", a width
// and a precision of at most two digits, then one of c d i o u x X e E f g
// G q s), each formatted on its own, the result's size checked before each
// piece is added.
func (b lib) format(L *lua.LState) int {
	f := L.CheckString(1)
	top := L.GetTop()
	arg := 1
	out := &builder{L: L, m: b.m, fn: "string.format"}
	for i := 0; i < len(f); i++ {
		c := f[i]
		if c != '%' {
			out.byte(c)
			continue
		}
		i++
		if i < len(f) && f[i] == '%' {
			out.byte('%')
			continue
		}
		arg++
		if arg > top {
			L.ArgError(arg, "no value")
		}
		start := i
		for i < len(f) && strings.IndexByte("-+ #0", f[i]) >= 0 {
			i++
		}
		if i-start > 5 {
			L.RaiseError("invalid format (repeated flags)")
		}
		flags := f[start:i]
		ws := i
		for i < len(f) && i-ws < 2 && isDigit(f[i]) {
			i++
		}
		width := f[ws:i]
		prec, hasPrec := "", false
		if i < len(f) && f[i] == '.' {
			hasPrec = true
			i++
			ps := i
			for i < len(f) && i-ps < 2 && isDigit(f[i]) {
				i++
			}
			prec = f[ps:i]
		}
		if i < len(f) && isDigit(f[i]) {
			L.RaiseError("invalid format (width or precision too long)")
		}
		if i >= len(f) {
			L.RaiseError("invalid option '%%' to 'format'")
		}
		spec := "%" + flags + width
		if hasPrec {
			spec += "." + prec
		}
		w, _ := strconv.Atoi(width)
		p, _ := strconv.Atoi(prec)
		switch conv := f[i]; conv {
		case 'c':
			out.str(pad(string([]byte{byte(int(L.CheckNumber(arg)))}), w, flags))
		case 'd', 'i':
			out.str(fmt.Sprintf(spec+"d", toInt(L.CheckNumber(arg))))
		case 'o', 'u', 'x', 'X':
			verb := string(conv)
			if conv == 'u' {
				verb = "d"
			}
			out.str(fmt.Sprintf(spec+verb, uint64(toInt(L.CheckNumber(arg)))))
		case 'e', 'E', 'f', 'g', 'G':
			if !hasPrec {
				spec += ".6" // C's default precision (Go's %g has none)
			}
			out.str(fmt.Sprintf(spec+string(conv), float64(L.CheckNumber(arg))))
		case 'q':
			s := L.CheckString(arg)
			out.grow(len(s) + 2) // refuse early what cannot fit
			out.byte('"')
			for k := 0; k < len(s); k++ {
				switch s[k] {
				case '"', '\\', '\n':
					out.byte('\\')
					out.byte(s[k])
				case '\r':
					out.str(`\r`)
				case 0:
					out.str(`\000`)
				default:
					out.byte(s[k])
				}
			}
			out.byte('"')
		case 's':
			v := L.Get(arg)
			var s string
			if lua.LVCanConvToString(v) {
				s = lua.LVAsString(v)
			} else {
				s = L.ToStringMeta(v).String()
			}
			if hasPrec && p < len(s) {
				s = s[:p]
			}
			if w > len(s) {
				s = pad(s, w, flags)
			}
			out.str(s)
		default:
			L.RaiseError("invalid option '%%%c' to 'format'", conv)
		}
	}
	L.Push(lua.LString(out.buf.String()))
	return 1
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// toInt is C's (long) cast of a Lua number, saturating where C is
// undefined.
func toInt(n lua.LNumber) int64 {
	f := math.Trunc(float64(n))
	switch {
	case f != f:
		return 0
	case f >= math.MaxInt64:
		return math.MaxInt64
	case f <= math.MinInt64:
		return math.MinInt64
	}
	return int64(f)
}

// pad pads s with spaces to w bytes, on the right with the '-' flag.
func pad(s string, w int, flags string) string {
	if len(s) >= w {
		return s
	}
	fill := strings.Repeat(" ", w-len(s))
	if strings.Contains(flags, "-") {
		return s + fill
	}
	return fill + s
}
