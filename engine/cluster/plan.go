// Package cluster coordinates several statscache instances (`statscache
// run` processes) that share one database: which instance runs which
// model, how far every instance's models may read the shared journal, and
// which instance fills the journal from the archive. It knows nothing of
// SQL: the database side is the Store interface (engine/pgstore
// implements it), the engine side is *engine.Engine.
//
// Every instance writes a heartbeat row (its id, address, models and the
// time up to which it has journaled everything it will journal) that
// expires after the lease duration. Each model has a lease (holder, token,
// expiry), renewed with the heartbeat. Every instance computes the same
// plan from what the database shows (Plan: the models spread evenly over
// the live instances, holders kept where the balance allows), releases the
// leases the plan gives to others and acquires the free ones it gives to
// it. Commits carry the lease's fence, which the store checks in the
// commit transaction: a paused instance can never commit over the one
// that took its model.
package cluster

import (
	"fmt"
	"sort"
	"strings"
)

// FillKey is the lease of the archive fill: its holder fills the journal's
// incomplete spans from the archive, the others read the durable record
// of complete spans. '#' cannot start a model's ident, so no model's lease
// has this key.
const FillKey = "#fill"

// Instance is a live instance as its heartbeat row shows it.
type Instance struct {
	ID   string `json:"id"`
	Addr string `json:"addr"`
	// Models maps the lease key of every model the instance has loaded to
	// its version (code and table): instances that disagree about a
	// model do not run it.
	Models map[string]string `json:"-"`
	// WatermarkUS is the time (unix µs) up to which the instance has
	// journaled everything it will journal; nil before it says.
	WatermarkUS *int64 `json:"watermark_us,omitempty"`
	// Refused counts the commits the store refused it (lost leases).
	Refused int64 `json:"refused_commits"`
}

// Plan assigns every lease key that some live instance declares to one of
// the instances that declare it, evenly: of n keys over k instances, each
// gets n/k, and the n%k remaining go to the instances that hold the most
// now, so a stable cluster keeps its assignment. A key keeps its current
// holder (holders: key to instance id, for unexpired leases) while the
// holder is under its share. Keys whose declaring instances disagree
// about their version are left out, with the reason in conflicts.
// Every instance computes the same plan from the same rows.
func Plan(instances []Instance, holders map[string]string) (assign, conflicts map[string]string) {
	assign, conflicts = map[string]string{}, map[string]string{}
	ids := make([]string, 0, len(instances))
	byID := map[string]Instance{}
	for _, in := range instances {
		ids = append(ids, in.ID)
		byID[in.ID] = in
	}
	sort.Strings(ids)
	if len(ids) == 0 {
		return assign, conflicts
	}
	// Which instances may run each key.
	cands := map[string][]string{}
	versions := map[string]map[string][]string{} // key -> version -> ids
	for _, id := range ids {
		for k, v := range byID[id].Models {
			cands[k] = append(cands[k], id)
			if versions[k] == nil {
				versions[k] = map[string][]string{}
			}
			versions[k][v] = append(versions[k][v], id)
		}
	}
	var keys []string
	for k := range cands {
		if len(versions[k]) > 1 {
			conflicts[k] = disagreement(versions[k])
			continue
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	// Shares: n/k each, the rest to the instances that hold the most.
	held := map[string]int{}
	for _, k := range keys {
		if h, ok := holders[k]; ok {
			held[h]++
		}
	}
	order := append([]string(nil), ids...)
	sort.SliceStable(order, func(i, j int) bool { return held[order[i]] > held[order[j]] })
	share := map[string]int{}
	for i, id := range order {
		share[id] = len(keys) / len(ids)
		if i < len(keys)%len(ids) {
			share[id]++
		}
	}
	load := map[string]int{}
	var free []string
	for _, k := range keys {
		h, ok := holders[k]
		if ok && contains(cands[k], h) && load[h] < share[h] {
			assign[k] = h
			load[h]++
			continue
		}
		free = append(free, k)
	}
	for _, k := range free {
		best := ""
		for _, id := range cands[k] {
			if best == "" || under(load, share, id) && !under(load, share, best) ||
				under(load, share, id) == under(load, share, best) && load[id] < load[best] {
				best = id
			}
		}
		assign[k] = best
		load[best]++
	}
	return assign, conflicts
}

func under(load, share map[string]int, id string) bool { return load[id] < share[id] }

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// disagreement says which instances have which version of a model.
func disagreement(byVersion map[string][]string) string {
	var parts []string
	for v, ids := range byVersion {
		sort.Strings(ids)
		parts = append(parts, fmt.Sprintf("%s has version %s", strings.Join(ids, ", "), short(v)))
	}
	sort.Strings(parts)
	return "the instances' scripts differ (" + strings.Join(parts, "; ") + "): no instance runs the model until they agree (deploy the same scripts and reload)"
}

func short(v string) string {
	if len(v) > 16 {
		return v[:16]
	}
	return v
}
