package luaapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/valyala/fastjson"
	lua "github.com/yuin/gopher-lua"
	"statscache/luaapi/sandbox"

	"statscache/engine"
	"statscache/luaapi/meta"
)

var _ engine.Model = (*Model)(nil)

// Model is one instance of a script (one per declared interval), running in
// an LState of its own. The engine calls it from a single goroutine.
type Model struct {
	script   *Script
	spec     *engine.ModelSpec
	interval time.Duration
	opts     Options
	log      *slog.Logger

	L       *lua.LState
	process *lua.LFunction
	update  *lua.LFunction
	state   engine.State
	// msgT is the message table handed to process. It is reused from one
	// call to the next, which is why a model must copy what it keeps.
	msgT *lua.LTable
	cur  *engine.Message
	// filled has a bit for each lazy field (see lazyFields) filled for
	// the current message: only those are cleared before the next one.
	filled uint8
	p      fastjson.Parser
	// writer is set only while update runs.
	writer engine.RowWriter
	dbT    *lua.LTable
	guard  *guard
	// queue is what queue.push writes to (see queue.go); done is the
	// script's done function.
	queue engine.Queue
	done  *lua.LFunction
	// worker is set on the instances that run work (see queue.go): they
	// have no state, db or queue, and they have http.
	worker bool
	// recordLib, set only while a script's declaration is read, is told of
	// every lib file the script requires (see Script.version).
	recordLib func(file string, src []byte)
	// workCtx is the context of the work call under way, for http.
	workCtx context.Context
	// temporary is set when the running work call raised an error worth
	// trying again (http could not reach its service, or retry()).
	temporary bool
	// sizeCount is the table entries counted at the last size check;
	// untilSizeCheck counts process calls down to the next one.
	sizeCount, sizeCalls, untilSizeCheck int
	// sizeSeen is checkSize's set of visited tables, kept between checks.
	sizeSeen map[any]bool
	// metaAsked holds the fedmsg.meta helpers the script asked for on the
	// message at hand, metaHabit those of the message before, as the
	// library was told (meta.Library.Expect).
	metaAsked, metaHabit meta.Helpers
}

func newModel(s *Script, spec *engine.ModelSpec, iv time.Duration, opts Options) *Model {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Model{script: s, spec: spec, interval: iv, opts: opts, log: log.With("model", spec.Ident)}
}

// Spec returns the model's declaration.
func (m *Model) Spec() *engine.ModelSpec { return m.spec }

// Script returns the file the model was loaded from.
func (m *Model) Script() *Script { return m.script }

// Open builds a fresh LState, runs the script's top level in it and binds
// the model to its durable state.
func (m *Model) Open(st engine.State) error {
	if m.L != nil {
		m.Close()
	}
	m.state = st
	L, err := m.boot()
	if err != nil {
		return err
	}
	pf, ok1 := rawGlobal(L, "process").(*lua.LFunction)
	uf, ok2 := rawGlobal(L, "update").(*lua.LFunction)
	if !ok1 || !ok2 {
		L.Close()
		m.closeGuard()
		return &ScriptError{File: m.script.Path, Msg: "process and update must be functions"}
	}
	m.L, m.process, m.update = L, pf, uf
	m.done, _ = rawGlobal(L, "done").(*lua.LFunction)
	m.msgT = L.NewTable()
	mt := L.NewTable()
	mt.RawSetString("__index", L.NewFunction(m.lazyField))
	L.SetMetatable(m.msgT, mt)
	m.dbT = newDBTable(L, m)
	m.sizeCount, m.sizeCalls = 0, 64
	m.untilSizeCheck = 64
	return nil
}

// boot builds an LState with the sandbox, the limits and the host API, and
// runs the script's top level in it.
func (m *Model) boot() (*lua.LState, error) {
	lim := m.opts.Limits.withDefaults()
	g, ctx := newGuard(m.spec.Ident, lim)
	m.guard = g
	L := newState(&g.meter)
	L.SetContext(ctx)
	L.SetGlobal("model", L.NewFunction(func(*lua.LState) int { return 0 }))
	installHost(L, m)
	top, err := sandbox.Chunk(L, m.script.proto)
	if err == nil {
		L.Push(top)
		g.enter(lim.CallTimeout)
		err = L.PCall(0, 0, nil)
		g.leave()
	}
	if err != nil {
		L.Close()
		m.closeGuard()
		if lerr := g.limitErr(); lerr != nil {
			return nil, lerr
		}
		return nil, luaError(m.script.Path, err)
	}
	return L, nil
}

// Close releases the LState.
func (m *Model) Close() error {
	if m.metaHabit != 0 {
		m.opts.Meta.Expect(m.metaHabit, 0)
		m.metaHabit = 0
	}
	if m.L != nil {
		m.L.Close()
		m.L = nil
	}
	m.closeGuard()
	return nil
}

func (m *Model) closeGuard() { m.guard.release() }

// scriptErr is an error raised by script code, with its Lua traceback.
type scriptErr struct {
	msg, trace string
}

func (e *scriptErr) Error() string     { return e.msg }
func (e *scriptErr) Traceback() string { return e.trace }

func (m *Model) call(fn *lua.LFunction, arg lua.LValue, limit time.Duration) error {
	return m.callN(fn, 0, limit, arg)
}

// callN calls fn under the model's limits, leaving nret results on the
// stack when it succeeds.
func (m *Model) callN(fn *lua.LFunction, nret int, limit time.Duration, args ...lua.LValue) error {
	L := m.L
	if L == nil {
		return errors.New("model is not open")
	}
	m.guard.enter(limit)
	err := L.CallByParam(lua.P{Fn: fn, NRet: nret, Protect: true}, args...)
	m.guard.leave()
	if err != nil {
		L.SetTop(0)
		if lerr := m.guard.limitErr(); lerr != nil {
			return lerr
		}
		var ae *lua.ApiError
		if errors.As(err, &ae) {
			return &scriptErr{msg: ae.Object.String(), trace: ae.StackTrace}
		}
		return &scriptErr{msg: err.Error()}
	}
	return nil
}

// Process fills the reused message table and calls the script's process.
func (m *Model) Process(ctx context.Context, msg *engine.Message) error {
	t := m.msgT
	m.cur = msg
	t.RawSetString("topic", lua.LString(msg.Topic))
	t.RawSetString("time", lua.LNumber(msg.Seconds()))
	if m.filled != 0 {
		// Drop what the previous message's lazy fields left behind.
		for i, f := range lazyFields {
			if m.filled&(1<<i) != 0 {
				t.RawSetString(f, lua.LNil)
			}
		}
		m.filled = 0
	}
	err := m.call(m.process, t, m.guard.limits.CallTimeout)
	m.cur = nil
	if m.metaAsked != m.metaHabit {
		m.opts.Meta.Expect(m.metaHabit, m.metaAsked)
		m.metaHabit = m.metaAsked
	}
	m.metaAsked = 0
	if err == nil {
		if m.untilSizeCheck--; m.untilSizeCheck <= 0 {
			err = m.checkSize()
		}
	}
	return err
}

// lazyFields are the message fields filled on first read; topic and time
// are set eagerly because nearly every model reads them.
var lazyFields = []string{"id", "key", "category", "body", "msg", "headers"}

// The bits of Model.filled, in the order of lazyFields.
const (
	fillID uint8 = 1 << iota
	fillKey
	fillCategory
	fillBody
	fillMsg
	fillHeaders
)

// lazyField is the message table's __index: it fills id, key and category,
// and converts the body or the headers from JSON, the first time the script
// reads them, so a model pays only for what it uses.
func (m *Model) lazyField(L *lua.LState) int {
	t := L.CheckTable(1)
	key := L.OptString(2, "")
	if m.cur == nil {
		L.Push(lua.LNil)
		return 1
	}
	switch key {
	case "id", "key", "category":
		v := lua.LString(m.cur.ID)
		switch key {
		case "id":
			m.filled |= fillID
		case "key":
			v = lua.LString(m.cur.Key)
			m.filled |= fillKey
		case "category":
			v = lua.LString(m.cur.Category())
			m.filled |= fillCategory
		}
		t.RawSetString(key, v)
		L.Push(v)
	case "body", "msg":
		raw, err := m.cur.Record()
		if err != nil {
			L.RaiseError("%v", err)
		}
		m.guard.charge(L, 2*len(raw)) // the tables, about twice the JSON
		b, err := m.cur.Body(&m.p)
		if err != nil {
			L.RaiseError("%v", err)
		}
		v := fromJSON(L, b)
		m.filled |= fillBody | fillMsg
		t.RawSetString("body", v)
		t.RawSetString("msg", v)
		L.Push(v)
	case "headers":
		h, err := m.cur.Headers(&m.p)
		if err != nil {
			L.RaiseError("%v", err)
		}
		v := fromJSON(L, h)
		if v == lua.LNil {
			v = L.NewTable()
		}
		m.filled |= fillHeaders
		t.RawSetString("headers", v)
		L.Push(v)
	default:
		L.Push(lua.LNil)
	}
	return 1
}

// Flush calls the script's update with the db object bound to w.
func (m *Model) Flush(ctx context.Context, w engine.RowWriter) error {
	m.writer = w
	defer func() { m.writer = nil }()
	if err := m.call(m.update, m.dbT, m.guard.limits.UpdateTimeout); err != nil {
		return fmt.Errorf("%s: update: %w", m.spec.Ident, err)
	}
	return m.checkSize()
}
