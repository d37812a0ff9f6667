package sandbox

// Lua patterns, matched by our own backtracking matcher so that a
// pathological pattern stops when its call does. gopher-lua's matcher (its
// pm package) runs to completion whatever the call's context says, and a
// pattern such as ".-.-.-.-.-b" over 100 kB of text takes minutes.
//
// The semantics are Lua 5.1's (reference manual §5.4.1), with the pattern's
// length taken from the string rather than a terminating NUL, and the
// frontier pattern %f[set] as the 5.1 implementation has it. Every step of
// the matcher counts, and every few thousand steps it looks at the call's
// context: when the call is over its time limit (or cancelled) the match
// raises an error.

import (
	"strconv"

	lua "github.com/yuin/gopher-lua"
)

const (
	maxCaptures = 32 // as Lua's LUA_MAXCAPTURES
	// maxMatchDepth bounds the matcher's recursion (one level per
	// quantified item or capture of the pattern); Lua 5.2 has the same
	// guard (MAXCCALLS) for the same reason: the Go stack.
	maxMatchDepth = 1000
	capUnfinished = -1
	capPosition   = -2
	// checkEvery is how many matcher steps run between two looks at the
	// call's context.
	checkEvery = 4096
)

// patternError is a malformed pattern or a misuse of captures; it becomes
// a Lua error with this text.
type patternError string

type capture struct{ init, len int }

// matcher is one match of pattern pat against src. It is not reused across
// calls of the string functions.
type matcher struct {
	src, pat string
	level    int
	capture  [maxCaptures]capture
	depth    int
	steps    int
	// L's context is checked every checkEvery steps (Interrupted raises
	// when the call must stop); nil checks nothing. A state, not a
	// closure, so that a matcher can live on the caller's stack: the
	// string functions run for most messages of most models.
	L *lua.LState
}

func (m *matcher) step() {
	m.steps++
	if m.steps%checkEvery == 0 && m.L != nil {
		Interrupted(m.L)
	}
}

func (m *matcher) fail(msg string) { panic(patternError(msg)) }

// classEnd returns the index just after the single-character class that
// starts at p.
func (m *matcher) classEnd(p int) int {
	pat := m.pat
	c := pat[p]
	p++
	switch c {
	case '%':
		if p >= len(pat) {
			m.fail("malformed pattern (ends with '%')")
		}
		return p + 1
	case '[':
		if p < len(pat) && pat[p] == '^' {
			p++
		}
		// The first character of a set is taken as is, so "[]]" is a set
		// holding "]".
		for {
			if p >= len(pat) {
				m.fail("malformed pattern (missing ']')")
			}
			c := pat[p]
			p++
			if c == '%' && p < len(pat) {
				p++
			}
			if p < len(pat) && pat[p] == ']' {
				return p + 1
			}
		}
	}
	return p
}

// validate raises the error of a malformed pattern before any matching,
// so that a pattern is refused whatever the subject (Lua finds some of
// these only when the matcher reaches them).
func (m *matcher) validate() {
	pat, open, total := m.pat, 0, 0
	for p := 0; p < len(pat); {
		switch pat[p] {
		case '(':
			if total++; total > maxCaptures {
				m.fail("too many captures")
			}
			if p+1 < len(pat) && pat[p+1] == ')' {
				p += 2
				continue
			}
			open++
			p++
		case ')':
			if open--; open < 0 {
				m.fail("invalid pattern capture")
			}
			p++
		case '%':
			if p+1 < len(pat) {
				switch pat[p+1] {
				case 'b':
					if p+3 >= len(pat) {
						m.fail("missing arguments to '%b'")
					}
					p += 4
					continue
				case 'f':
					if p+2 >= len(pat) || pat[p+2] != '[' {
						m.fail("missing '[' after '%f' in pattern")
					}
					p = m.classEnd(p + 2)
					continue
				case '0':
					m.fail("invalid capture index")
				}
			}
			p = m.classEnd(p)
		default:
			p = m.classEnd(p)
		}
	}
	if open > 0 {
		m.fail("unfinished capture")
	}
}

// classMatches reports whether c is in the class %cl.
func classMatches(c byte, cl byte) bool {
	var res bool
	switch cl | 0x20 {
	case 'a':
		res = isAlpha(c)
	case 'c':
		res = c < 0x20 || c == 0x7f
	case 'd':
		res = '0' <= c && c <= '9'
	case 'l':
		res = 'a' <= c && c <= 'z'
	case 'p':
		res = isPunct(c)
	case 's':
		res = c == ' ' || '\t' <= c && c <= '\r'
	case 'u':
		res = 'A' <= c && c <= 'Z'
	case 'w':
		res = isAlpha(c) || '0' <= c && c <= '9'
	case 'x':
		res = '0' <= c && c <= '9' || 'a' <= c|0x20 && c|0x20 <= 'f'
	case 'z':
		res = c == 0
	default:
		return cl == c
	}
	if 'A' <= cl && cl <= 'Z' {
		return !res
	}
	return res
}

func isAlpha(c byte) bool { return 'a' <= c|0x20 && c|0x20 <= 'z' }

func isPunct(c byte) bool {
	return 0x21 <= c && c <= 0x2f || 0x3a <= c && c <= 0x40 || 0x5b <= c && c <= 0x60 || 0x7b <= c && c <= 0x7e
}

// setMatches reports whether c is in the set pat[p:ec+1], where pat[p] is
// '[' and pat[ec] is its closing ']'.
func (m *matcher) setMatches(c byte, p, ec int) bool {
	pat := m.pat
	sig := true
	if pat[p+1] == '^' {
		sig = false
		p++
	}
	for p++; p < ec; p++ {
		switch {
		case pat[p] == '%':
			p++
			if classMatches(c, pat[p]) {
				return sig
			}
		case pat[p+1] == '-' && p+2 < ec:
			p += 2
			if pat[p-2] <= c && c <= pat[p] {
				return sig
			}
		case pat[p] == c:
			return sig
		}
	}
	return !sig
}

// single reports whether src[s] exists and matches the class pat[p:ep].
func (m *matcher) single(s, p, ep int) bool {
	if s >= len(m.src) {
		return false
	}
	c := m.src[s]
	switch m.pat[p] {
	case '.':
		return true
	case '%':
		return classMatches(c, m.pat[p+1])
	case '[':
		return m.setMatches(c, p, ep-1)
	}
	return m.pat[p] == c
}

// match matches pat[p:] at src[s:], returning the end of the match or -1.
func (m *matcher) match(s, p int) int {
	m.depth++
	if m.depth > maxMatchDepth {
		m.fail("pattern too complex")
	}
	r := m.doMatch(s, p)
	m.depth--
	return r
}

func (m *matcher) doMatch(s, p int) int {
	pat := m.pat
	for {
		m.step()
		if p == len(pat) {
			return s
		}
		switch pat[p] {
		case '(':
			if p+1 < len(pat) && pat[p+1] == ')' {
				return m.startCapture(s, p+2, capPosition)
			}
			return m.startCapture(s, p+1, capUnfinished)
		case ')':
			return m.endCapture(s, p+1)
		case '$':
			if p+1 == len(pat) {
				if s == len(m.src) {
					return s
				}
				return -1
			}
		case '%':
			if p+1 < len(pat) {
				switch c := pat[p+1]; {
				case c == 'b':
					if s = m.balance(s, p+2); s == -1 {
						return -1
					}
					p += 4
					continue
				case c == 'f':
					p += 2
					if p >= len(pat) || pat[p] != '[' {
						m.fail("missing '[' after '%f' in pattern")
					}
					ep := m.classEnd(p)
					var prev, cur byte
					if s > 0 {
						prev = m.src[s-1]
					}
					if s < len(m.src) {
						cur = m.src[s]
					}
					if m.setMatches(prev, p, ep-1) || !m.setMatches(cur, p, ep-1) {
						return -1
					}
					p = ep
					continue
				case '0' <= c && c <= '9':
					if s = m.backref(s, c); s == -1 {
						return -1
					}
					p += 2
					continue
				}
			}
		}
		// A single-character class, maybe followed by a quantifier.
		ep := m.classEnd(p)
		ok := m.single(s, p, ep)
		if ep < len(pat) {
			switch pat[ep] {
			case '?':
				if ok {
					if r := m.match(s+1, ep+1); r != -1 {
						return r
					}
				}
				p = ep + 1
				continue
			case '*':
				return m.maxExpand(s, p, ep)
			case '+':
				if !ok {
					return -1
				}
				return m.maxExpand(s+1, p, ep)
			case '-':
				return m.minExpand(s, p, ep)
			}
		}
		if !ok {
			return -1
		}
		s++
		p = ep
	}
}

func (m *matcher) maxExpand(s, p, ep int) int {
	i := 0
	for m.single(s+i, p, ep) {
		m.step()
		i++
	}
	for ; i >= 0; i-- {
		if r := m.match(s+i, ep+1); r != -1 {
			return r
		}
	}
	return -1
}

func (m *matcher) minExpand(s, p, ep int) int {
	for {
		if r := m.match(s, ep+1); r != -1 {
			return r
		}
		if !m.single(s, p, ep) {
			return -1
		}
		s++
	}
}

func (m *matcher) startCapture(s, p, what int) int {
	if m.level >= maxCaptures {
		m.fail("too many captures")
	}
	m.capture[m.level] = capture{s, what}
	m.level++
	r := m.match(s, p)
	if r == -1 {
		m.level--
	}
	return r
}

func (m *matcher) endCapture(s, p int) int {
	l := -1
	for i := m.level - 1; i >= 0; i-- {
		if m.capture[i].len == capUnfinished {
			l = i
			break
		}
	}
	if l < 0 {
		m.fail("invalid pattern capture")
	}
	m.capture[l].len = s - m.capture[l].init
	r := m.match(s, p)
	if r == -1 {
		m.capture[l].len = capUnfinished
	}
	return r
}

func (m *matcher) balance(s, p int) int {
	if p+1 >= len(m.pat) {
		m.fail("missing arguments to '%b'")
	}
	if s >= len(m.src) || m.src[s] != m.pat[p] {
		return -1
	}
	b, e := m.pat[p], m.pat[p+1]
	depth := 1
	for s++; s < len(m.src); s++ {
		m.step()
		switch m.src[s] {
		case e:
			if depth--; depth == 0 {
				return s + 1
			}
		case b:
			depth++
		}
	}
	return -1
}

func (m *matcher) backref(s int, c byte) int {
	l := int(c) - '1'
	if l < 0 || l >= m.level || m.capture[l].len == capUnfinished {
		m.fail("invalid capture index")
	}
	cp := m.capture[l]
	if cp.len == capPosition {
		return -1 // as in Lua 5.1: a position capture matches no text
	}
	if len(m.src)-s >= cp.len && m.src[cp.init:cp.init+cp.len] == m.src[s:s+cp.len] {
		return s + cp.len
	}
	return -1
}

// finished raises the error of a match that left a capture open: a
// pattern such as "(a" is malformed even where its captures are not used.
func (m *matcher) finished() {
	for i := 0; i < m.level; i++ {
		if m.capture[i].len == capUnfinished {
			m.fail("unfinished capture")
		}
	}
}

// captureValue returns capture i of a match of src[s:e]: the whole match
// when the pattern has no captures and i is 0.
func (m *matcher) captureValue(i, s, e int) lua.LValue {
	if i >= m.level {
		if i != 0 {
			m.fail("invalid capture index")
		}
		return lua.LString(m.src[s:e])
	}
	c := m.capture[i]
	switch c.len {
	case capUnfinished:
		m.fail("unfinished capture")
	case capPosition:
		return lua.LNumber(c.init + 1)
	}
	return lua.LString(m.src[c.init : c.init+c.len])
}

// captureString is captureValue as a string, as a replacement string uses
// it.
func (m *matcher) captureString(i, s, e int) string {
	switch v := m.captureValue(i, s, e).(type) {
	case lua.LString:
		return string(v)
	case lua.LNumber:
		return strconv.Itoa(int(v))
	}
	return ""
}

// captures returns the captures of a match of src[s:e]; with whole, the
// whole match when the pattern has none.
func (m *matcher) captures(s, e int, whole bool) []lua.LValue {
	n := m.level
	if n == 0 && whole {
		n = 1
	}
	out := make([]lua.LValue, n)
	for i := range out {
		out[i] = m.captureValue(i, s, e)
	}
	return out
}

// find looks for the pattern in src from init (0-based); anchored patterns
// (a leading '^', already removed from pat) are tried at init only. It
// returns the start and end of the first match, or -1, -1.
func (m *matcher) find(init int, anchored bool) (int, int) {
	for s := init; ; s++ {
		m.level, m.depth = 0, 0
		if e := m.match(s, 0); e != -1 {
			m.finished()
			return s, e
		}
		if anchored || s >= len(m.src) {
			return -1, -1
		}
	}
}
