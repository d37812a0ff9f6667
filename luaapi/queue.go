package luaapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/valyala/fastjson"
	lua "github.com/yuin/gopher-lua"

	"statscache/engine"
)

// A script with a work queue defines two more functions beside process and
// update:
//
//	work(item) -> result   runs on a worker, in an LState of its own, with
//	                       http but without state, db or queue
//	done(item, result, err) runs in the model, in push order; what it
//	                       aggregates is written by the next update
//
// and pushes items with queue.push(item) from process or update. Items and
// results are JSON values (tables, strings, numbers, booleans).

var _ engine.QueueModel = (*Model)(nil)

// MaxWorkItem bounds the JSON size of one work item or result: they are
// stored in the database until delivered.
const MaxWorkItem = 1 << 20

// queueDecl is the queue = {...} declaration.
type queueDecl struct {
	workers, limit, retries int
	services                []string
}

// Services returns the services the script's work function may call.
func (m *Model) Services() []string {
	if d := m.script.decl.queue; d != nil {
		return append([]string(nil), d.services...)
	}
	return nil
}

// BindQueue gives the model the queue that queue.push writes to.
func (m *Model) BindQueue(q engine.Queue) { m.queue = q }

// QueueConfig reports the script's queue declaration; ok is false for a
// script without work and done functions.
func (m *Model) QueueConfig() (engine.QueueConfig, bool) {
	d := m.script.decl.queue
	if d == nil {
		return engine.QueueConfig{}, false
	}
	return engine.QueueConfig{Workers: d.workers, Limit: d.limit, Retries: d.retries}, true
}

// queueModule: queue.push(item) adds a work item to the batch being
// processed; it is stored when the batch commits.
func queueModule(L *lua.LState, m *Model) *lua.LTable {
	t := L.NewTable()
	L.SetFuncs(t, map[string]lua.LGFunction{
		"push": func(L *lua.LState) int {
			switch {
			case m.worker:
				L.RaiseError("queue.push is not available in work(item): return the result, and push more from done or process")
			case m.script.decl == nil || m.script.decl.queue == nil:
				L.RaiseError("queue.push: this script defines no work(item) and done(item, result, err) functions")
			case m.queue == nil:
				L.RaiseError("queue.push is only available in process, update and done")
			}
			b, err := encodeWork(L, L.CheckAny(1))
			if err != nil {
				L.ArgError(1, err.Error())
			}
			m.guard.charge(L, len(b))
			if err := m.queue.Push(b); err != nil {
				if errors.Is(err, engine.ErrModelLimit) {
					m.guard.stop(err.Error())
				}
				L.RaiseError("%v", err)
			}
			return 0
		},
	})
	return t
}

func encodeWork(L *lua.LState, v lua.LValue) ([]byte, error) {
	g, err := toGoL(L, v, 2*MaxWorkItem) // the exact bound is checked on the JSON below
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(g)
	if err != nil {
		return nil, err
	}
	if len(b) > MaxWorkItem {
		return nil, fmt.Errorf("the value is %d bytes of JSON, over the limit of %d", len(b), MaxWorkItem)
	}
	return b, nil
}

func decodeWork(L *lua.LState, p *fastjson.Parser, b []byte) (lua.LValue, error) {
	if b == nil {
		return lua.LNil, nil
	}
	v, err := p.ParseBytes(b)
	if err != nil {
		return nil, err
	}
	return fromJSON(L, v), nil
}

// Deliver calls the script's done(item, result, err).
func (m *Model) Deliver(ctx context.Context, item, result []byte, workErr error) error {
	if m.done == nil {
		return fmt.Errorf("%s: done is not defined", m.spec.Ident)
	}
	iv, err := decodeWork(m.L, &m.p, item)
	if err != nil {
		return fmt.Errorf("%s: work item: %w", m.spec.Ident, err)
	}
	rv, err := decodeWork(m.L, &m.p, result)
	if err != nil {
		return fmt.Errorf("%s: work result: %w", m.spec.Ident, err)
	}
	ev := lua.LValue(lua.LNil)
	if workErr != nil {
		ev = lua.LString(workErr.Error())
	}
	if err := m.callN(m.done, 0, m.guard.limits.CallTimeout, iv, rv, ev); err != nil {
		return fmt.Errorf("%s: done: %w", m.spec.Ident, err)
	}
	return nil
}

// worker is one instance of a queue script that runs work items.
type worker struct {
	m    *Model
	work *lua.LFunction
}

// NewWorker starts an LState of the script for work(item).
func (m *Model) NewWorker() (engine.Worker, error) {
	w := newModel(m.script, m.spec, m.interval, m.opts)
	w.worker = true
	L, err := w.boot()
	if err != nil {
		return nil, fmt.Errorf("%s: worker: %w", m.spec.Ident, err)
	}
	fn, ok := rawGlobal(L, "work").(*lua.LFunction)
	if !ok {
		L.Close()
		w.closeGuard()
		return nil, &ScriptError{File: m.script.Path, Msg: "work must be a function"}
	}
	w.L = L
	w.sizeCalls, w.untilSizeCheck = 1, 1 // the first check after the first item
	return &worker{m: w, work: fn}, nil
}

// Work calls work(item) and returns its result as JSON.
func (w *worker) Work(ctx context.Context, item []byte) ([]byte, error) {
	m := w.m
	m.workCtx, m.temporary = ctx, false
	defer func() { m.workCtx = nil }()
	iv, err := decodeWork(m.L, &m.p, item)
	if err != nil {
		return nil, fmt.Errorf("work item: %w", err)
	}
	if err := m.callN(w.work, 1, m.guard.limits.WorkTimeout, iv); err != nil {
		if m.temporary {
			return nil, fmt.Errorf("%w (%w)", err, engine.ErrTemporary)
		}
		return nil, err
	}
	ret := m.L.Get(-1)
	m.L.Pop(1)
	// A worker keeps its globals from one item to the next: the same bound
	// on what its tables hold applies as in the model.
	if m.untilSizeCheck--; m.untilSizeCheck <= 0 {
		if err := m.checkSize(); err != nil {
			return nil, err
		}
	}
	b, err := encodeWork(m.L, ret)
	if err != nil {
		return nil, fmt.Errorf("work returned a value that cannot be stored: %w", err)
	}
	return b, nil
}

// Close releases the worker's LState.
func (w *worker) Close() error { return w.m.Close() }
