package engine_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	"statscache/engine"
)

// scripted is newFake declared by a script at a line, with a version.
func scripted(ident, script string, line int, version string) *fakeModel {
	f := newFake(ident)
	f.spec.Script, f.spec.Line, f.spec.Version = script, line, version
	return f
}

// TestEngineReloadDuplicateIdents: two scripts declaring the same model are
// both refused, each with an error at its declaration naming the other,
// and the running version of the model is kept, untouched; at a start (a
// reload from nothing) neither wins.
func TestEngineReloadDuplicateIdents(t *testing.T) {
	db := openTestDB(t, "")
	e := newEngine(t, db, engine.Config{}, scripted("dup", "a.lua", 1, "v1"), scripted("other", "c.lua", 1, "v1"))
	ingest(t, e, message(t, "r1", tBuild, 1))
	run(t, e)

	res := e.Reload(context.Background(), []engine.Model{
		scripted("dup", "a.lua", 1, "v2"), // changed, but clashes
		scripted("dup", "b.lua", 3, "v1"),
		scripted("other", "c.lua", 1, "v1"),
	}, nil)
	var got []string
	for _, err := range res.Errors {
		var de *engine.DuplicateError
		if !errors.As(err, &de) {
			t.Errorf("error %v is not a *DuplicateError", err)
		}
		got = append(got, err.Error())
	}
	want := []string{
		`a.lua:1: model "dup" is also declared by b.lua:3`,
		`b.lua:3: model "dup" is also declared by a.lua:1`,
	}
	if len(got) != len(want) {
		t.Fatalf("errors %q, want %d", got, len(want))
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("error %q, want it to start with %q", got[i], want[i])
		}
	}
	if !reflect.DeepEqual(res.Kept, []string{"other"}) || len(res.Removed)+len(res.Restarted)+len(res.Added)+len(res.Rebuilding) != 0 {
		t.Errorf("Reload = %+v, want only other kept, dup untouched", res)
	}
	var idents []string
	for _, s := range e.Stats() {
		idents = append(idents, s.Ident)
	}
	if !reflect.DeepEqual(idents, []string{"dup", "other"}) {
		t.Errorf("running %v, want dup (its running version) and other", idents)
	}
	ingest(t, e, message(t, "r2", tBodhi, 2))
	run(t, e)
	if got, want := db.counts(t, "dup"), map[string]int64{tBuild: 1, tBodhi: 1}; !reflect.DeepEqual(got, want) {
		t.Errorf("dup rows %v, want %v: the running version goes on", got, want)
	}

	t.Run("OKStartRefusesBoth", func(t *testing.T) {
		e := engine.New(db.store, quietConfig(engine.Config{}))
		res := e.Reload(context.Background(), []engine.Model{scripted("dup", "a.lua", 1, "v1"), scripted("dup", "b.lua", 3, "v1")}, nil)
		if len(res.Errors) != 2 || len(res.Added) != 0 || len(e.Stats()) != 0 {
			t.Errorf("Reload from nothing = %+v, %d running; want both refused, none running", res, len(e.Stats()))
		}
	})
}

// TestEngineShadowIdentIsPrivate: a model may not take an ident with the
// separator of tables being rebuilt (it would pass for a rebuild).
func TestEngineShadowIdentIsPrivate(t *testing.T) {
	db := openTestDB(t, "")
	e := engine.New(db.store, quietConfig(engine.Config{}))
	err := e.Add(context.Background(), scripted("dup"+engine.ShadowSep+"0123456789abcdef", "x.lua", 1, "v1"))
	if err == nil || !strings.Contains(err.Error(), "reserved for tables being rebuilt") {
		t.Errorf("Add of a shadow ident: %v, want it refused", err)
	}
	if n := len(e.Stats()); n != 0 {
		t.Errorf("%d models running, want none", n)
	}
}
