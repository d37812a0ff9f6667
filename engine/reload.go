package engine

import (
	"context"
	"fmt"
	"sort"
	"strings"
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
	failed := map[string]bool{}
	for _, f := range failedScripts {
		failed[f] = true
	}
	e.mu.Lock()
	current := map[string]*runner{}
	for id, r := range e.runners {
		current[id] = r
	}
	e.mu.Unlock()

	seen := map[string]bool{}
	for _, m := range models {
		spec := m.Spec()
		seen[spec.Ident] = true
		old, ok := current[spec.Ident]
		if !ok {
			if err := e.Add(ctx, m); err != nil {
				res.Errors = append(res.Errors, err)
				continue
			}
			res.Added = append(res.Added, spec.Ident)
			continue
		}
		sameTable := old.spec.Table.Fingerprint() == spec.Table.Fingerprint()
		if sameTable && old.spec.Version == spec.Version && old.spec.Version != "" && !old.isFailed() {
			res.Kept = append(res.Kept, spec.Ident)
			continue
		}
		if sameTable {
			e.Remove(spec.Ident)
			if err := e.Add(ctx, m); err != nil {
				res.Errors = append(res.Errors, err)
				// Put the old version back rather than lose the model.
				if err2 := e.Add(ctx, old.model); err2 != nil {
					res.Errors = append(res.Errors, err2)
				}
				continue
			}
			res.Restarted = append(res.Restarted, spec.Ident)
			continue
		}
		if err := e.addShadow(ctx, m); err != nil {
			res.Errors = append(res.Errors, err)
			continue
		}
		res.Rebuilding = append(res.Rebuilding, spec.Ident)
	}
	for id, r := range current {
		if seen[id] || failed[r.spec.Script] || strings.Contains(id, ShadowSep) {
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
	if old, ok := e.runners[spec.Ident]; ok {
		// The same rebuild is already under way: keep it.
		e.mu.Unlock()
		_ = old
		return nil
	}
	e.mu.Unlock()
	if err := e.Add(ctx, m); err != nil {
		spec.Ident, spec.Table.Name = target, strings.TrimSuffix(spec.Table.Name, "_"+fp)
		return fmt.Errorf("rebuild %s: %w", target, err)
	}
	e.mu.Lock()
	if r, ok := e.runners[spec.Ident]; ok {
		r.promoteTo = target
	}
	e.mu.Unlock()
	return nil
}

// promote replaces the model target with the caught-up shadow runner r:
// the store swaps the tables in one transaction (so the API never shows a
// half-built table), then the old runner stops and r carries on under the
// model's ident. It runs on r's goroutine.
func (e *Engine) promote(ctx context.Context, r *runner) error {
	target := r.promoteTo
	shadow := r.spec.Ident
	e.mu.Lock()
	old := e.runners[target]
	e.mu.Unlock()
	if old != nil && old.cancel != nil {
		old.cancel()
		<-old.done
	}
	if err := e.store.Promote(ctx, shadow, target); err != nil {
		return fmt.Errorf("promote the rebuilt table of %s: %w", target, err)
	}
	e.mu.Lock()
	delete(e.runners, shadow)
	for i, id := range e.order {
		if id == shadow {
			e.order = append(e.order[:i], e.order[i+1:]...)
			break
		}
	}
	e.runners[target] = r
	replaced := false
	for _, id := range e.order {
		if id == target {
			replaced = true
		}
	}
	if !replaced {
		e.order = append(e.order, target)
	}
	e.mu.Unlock()
	r.spec.Ident = target
	r.state.ident = target
	r.rows.ident = target
	r.promoteTo = ""
	r.log = e.log.With("model", target)
	r.log.Info("rebuilt table promoted", "table", r.spec.Table.Name)
	return nil
}
