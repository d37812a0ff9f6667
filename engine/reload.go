package engine

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"statscache/schema"
)

// ReloadResult says what a reload did with each model.
type ReloadResult struct {
	Kept       []string // unchanged: left running untouched
	Restarted  []string // changed code, same table: resumed from their cursor
	Rebuilding []string // changed table: a new version is being built
	Added      []string // new models, catching up
	Removed    []string // gone from the scripts: stopped, tables kept
	Errors     []error  // models that could not be started
}

// ShadowSep separates a model's ident from the version tag of a table
// being rebuilt; the API never lists such idents.
const ShadowSep = "#"

// Reload replaces the running models with models, the way Prometheus
// reloads rules: everything was loaded and validated before, and models
// from scripts that failed to load (failedScripts) keep their running
// version. An unchanged model (same version, same table) keeps running
// untouched. A changed model whose table is the same restarts from its
// cursor. A changed model whose table changed gets a new table, built from
// the journal in the background while the old one keeps serving; it
// replaces the old one atomically once it has caught up. A model whose
// script is gone stops; its table stays.
func (e *Engine) Reload(ctx context.Context, models []Model, failedScripts []string) ReloadResult {
	var res ReloadResult
	select {
	case e.swap <- struct{}{}:
	case <-ctx.Done():
		res.Errors = append(res.Errors, fmt.Errorf("reload: %w", ctx.Err()))
		return res
	}
	defer func() { <-e.swap }()
	failed := map[string]bool{}
	for _, f := range failedScripts {
		failed[f] = true
	}
	refused, errs := DuplicateIdents(models)
	res.Errors = append(res.Errors, errs...)
	if len(refused) > 0 {
		var kept []Model
		for _, m := range models {
			if !refused[m.Spec().Script] {
				kept = append(kept, m)
			}
		}
		models = kept
		for f := range refused {
			failed[f] = true
		}
	}
	e.mu.Lock()
	current := map[string]*runner{}
	for id, r := range e.runners {
		current[id] = r
	}
	e.mu.Unlock()

	seen := map[string]bool{}
	rebuild := map[string]bool{} // shadow idents the new models rebuild
	for _, m := range models {
		spec := m.Spec()
		ident := spec.Ident // addShadow renames spec
		seen[ident] = true
		old, ok := current[ident]
		if !ok {
			if err := e.Add(ctx, m); err != nil {
				res.Errors = append(res.Errors, err)
				continue
			}
			if spec.Ident != ident { // its stored table differs: rebuilt
				rebuild[spec.Ident] = true
				res.Rebuilding = append(res.Rebuilding, ident)
				continue
			}
			res.Added = append(res.Added, ident)
			continue
		}
		sameTable := sameTable(&old.spec.Table, &spec.Table)
		if sameTable && old.spec.Version == spec.Version && old.spec.Version != "" && !old.isFailed() {
			res.Kept = append(res.Kept, ident)
			continue
		}
		if sameTable {
			e.Remove(ident)
			if err := e.Add(ctx, m); err != nil {
				res.Errors = append(res.Errors, err)
				// Put the old version back rather than lose the model.
				if err2 := e.Add(ctx, old.model); err2 != nil {
					res.Errors = append(res.Errors, err2)
				}
				continue
			}
			res.Restarted = append(res.Restarted, ident)
			continue
		}
		rebuild[ident+ShadowSep+spec.Table.Fingerprint()] = true
		if err := e.addShadow(ctx, m); err != nil {
			res.Errors = append(res.Errors, err)
			continue
		}
		res.Rebuilding = append(res.Rebuilding, ident)
	}
	for id, r := range current {
		if seen[id] || failed[r.spec.Script] {
			continue
		}
		if strings.Contains(id, ShadowSep) {
			// A rebuild the scripts no longer ask for (the table changed
			// again, back, or the script is gone) must not be promoted.
			if !rebuild[id] {
				e.log.Info("reload: stopping the rebuild of a table no script declares any more", "shadow", id)
				e.Remove(id)
			}
			continue
		}
		e.Remove(id)
		res.Removed = append(res.Removed, id)
	}
	for _, l := range [][]string{res.Kept, res.Restarted, res.Rebuilding, res.Added, res.Removed} {
		sort.Strings(l)
	}
	return res
}

// DuplicateIdents refuses the scripts that declare a model ident another
// script (or the same one) also declares. Names are unique: rather than
// let one of them silently win, every script involved is refused, with an
// error at its declaration naming the others; Reload treats them as
// scripts that failed to load (their running versions are kept).
func DuplicateIdents(models []Model) (refused map[string]bool, errs []error) {
	byIdent := map[string][]*ModelSpec{}
	var idents []string
	for _, m := range models {
		s := m.Spec()
		if _, ok := byIdent[s.Ident]; !ok {
			idents = append(idents, s.Ident)
		}
		byIdent[s.Ident] = append(byIdent[s.Ident], s)
	}
	sort.Strings(idents)
	refused = map[string]bool{}
	for _, id := range idents {
		specs := byIdent[id]
		if len(specs) < 2 {
			continue
		}
		for i, s := range specs {
			var others []string
			for j, o := range specs {
				if j != i {
					others = append(others, declaredAt(o))
				}
			}
			errs = append(errs, &DuplicateError{Ident: id, Script: s.Script, Line: s.Line, Others: others})
			refused[s.Script] = true
		}
	}
	return refused, errs
}

// DuplicateError refuses a script that declares a model ident another
// script also declares (Others: where, as file:line).
type DuplicateError struct {
	Ident, Script string
	Line          int
	Others        []string
}

// Reason is the error without its location.
func (e *DuplicateError) Reason() string {
	return fmt.Sprintf("model %q is also declared by %s: model names must be unique, so neither script is loaded (a running version is kept)",
		e.Ident, strings.Join(e.Others, ", "))
}

func (e *DuplicateError) Error() string {
	return declaredAt(&ModelSpec{Script: e.Script, Line: e.Line}) + ": " + e.Reason()
}

// declaredAt is where a model is declared: file:line, or the file.
func declaredAt(s *ModelSpec) string {
	if s.Line > 0 {
		return fmt.Sprintf("%s:%d", s.Script, s.Line)
	}
	return s.Script
}

// rebuiltName is the name addShadow gives the table rebuilt for the
// declaration t, which the model keeps once it is promoted.
func rebuiltName(t *schema.Table) string { return t.Name + "_" + t.Fingerprint() }

// sameTable reports whether declared is the table a running model has:
// the same declaration, or the table a rebuild of it made. A promoted
// model runs on a table named after its declaration's fingerprint, which
// the scripts do not name: without this, the next reload or start asked for
// the same rebuild again, which the store refused (the rebuilt table is
// the model's already), and the model did not start.
func sameTable(running, declared *schema.Table) bool {
	if running.Fingerprint() == declared.Fingerprint() {
		return true
	}
	rebuilt := *declared
	rebuilt.Name = rebuiltName(declared)
	return running.Fingerprint() == rebuilt.Fingerprint()
}

// registerRebuilt registers spec on the table a rebuild of its declaration
// made (see sameTable), naming spec's table so when that succeeds;
// ErrTableChanged when the model has no such table.
func (e *Engine) registerRebuilt(ctx context.Context, spec *ModelSpec) (ModelStatus, error) {
	name := spec.Table.Name
	spec.Table.Name = rebuiltName(&spec.Table)
	st, err := e.store.Register(ctx, spec)
	if err != nil {
		spec.Table.Name = name
	}
	return st, err
}

// addShadow starts a rebuild of m's table under a shadow ident. The
// shadow runner processes the journal from the start into a new table and
// is promoted in place of the old model when it reaches the head.
func (e *Engine) addShadow(ctx context.Context, m Model) error {
	spec := m.Spec()
	target := spec.Ident
	fp := spec.Table.Fingerprint()
	spec.Ident = target + ShadowSep + fp
	spec.Table.Name = spec.Table.Name + "_" + fp
	e.mu.Lock()
	old, ok := e.runners[spec.Ident]
	e.mu.Unlock()
	if ok {
		if !old.isFailed() {
			// The same rebuild is already under way: keep it.
			return nil
		}
		// It stopped (its promotion failed, say): start it again, from
		// its cursor.
		e.Remove(spec.Ident)
	}
	if err := e.add(ctx, m, target); err != nil {
		spec.Ident, spec.Table.Name = target, strings.TrimSuffix(spec.Table.Name, "_"+fp)
		return fmt.Errorf("rebuild %s: %w", target, err)
	}
	return nil
}

// promote replaces the model target with the caught-up shadow runner r,
// atomically as the API and Stats see it: either the rebuilt table is in
// place and r runs under the model's ident, or the old table is kept and
// its model runs again from its cursor. The old runner is stopped first (it
// commits its batch), the store swaps the tables in one transaction (so
// the API never shows a half-built table), then r takes the model's ident.
// It runs on r's goroutine; nil without a swap means r was stopped
// meanwhile (shutdown, or a reload that removed it), an error wrapping
// ErrFenced that the store refused the swap because another instance
// holds the model's lease now.
func (e *Engine) promote(ctx context.Context, r *runner) error {
	// One swap at a time, and none while a reload changes the runners.
	select {
	case e.swap <- struct{}{}:
	case <-ctx.Done():
		return nil
	}
	defer func() { <-e.swap }()
	if ctx.Err() != nil {
		return nil
	}
	target, shadow := r.promoteTo, r.spec.Ident
	e.mu.Lock()
	if e.runners[shadow] != r {
		e.mu.Unlock()
		return nil
	}
	old := e.runners[target]
	if old != nil {
		old.replaced = true
	}
	e.mu.Unlock()
	if old != nil && old.cancel != nil {
		old.cancel()
		<-old.done
	}
	pctx, cancel := WithDrain(ctx, e.cfg.Drain)
	err := e.store.Promote(pctx, shadow, target, r.fence)
	cancel()
	if err != nil {
		err = fmt.Errorf("promote the rebuilt table of %s (the old table is kept): %w", target, err)
		if errors.Is(err, ErrFenced) {
			// Another instance runs the model now: the rebuild stops
			// here, as at a refused commit, before the old runner is put
			// back (not started: the lease is no longer granted).
			r.loseLease(err)
		}
		if old != nil {
			e.resume(old)
		}
		return err
	}
	e.mu.Lock()
	delete(e.runners, shadow)
	for i, id := range e.order {
		if id == shadow {
			e.order = append(e.order[:i], e.order[i+1:]...)
			break
		}
	}
	if e.runners[target] == nil {
		e.order = append(e.order, target)
	}
	e.runners[target] = r
	// Under both locks: Stats never sees r under one ident and the map
	// under the other.
	r.mu.Lock()
	r.spec.Ident = target
	r.mu.Unlock()
	e.mu.Unlock()
	r.state.ident = target
	r.rows.ident = target
	r.promoteTo = ""
	r.log = e.log.With("model", target)
	r.log.Info("rebuilt table promoted", "table", r.spec.Table.Name)
	return nil
}

// resume replaces a stopped runner by a fresh one of the same model that
// carries on from the runner's last commit. It needs nothing from the
// store, so it works when the store is what failed.
func (e *Engine) resume(old *runner) {
	st := ModelStatus{Cursor: old.committed, CursorID: old.cursorID, Status: "ok"}
	if reason := old.failedReason(); reason != "" {
		st.Status, st.Reason = "failed", reason
	}
	if old.committed != old.cursor {
		st.CursorID = "" // the id goes with the processed position, not the committed one
	}
	nr := newRunner(e, old.model, st)
	nr.startUS, nr.promoteTo = old.startUS, old.promoteTo
	nr.hold.Store(old.hold.Load())
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.runners[old.spec.Ident] != old {
		return // removed meanwhile
	}
	e.runners[old.spec.Ident] = nr
	if e.running != nil && e.mayStart(nr) {
		e.start(nr)
	}
	nr.log.Warn("model resumed from its last commit")
}
