package follow

import (
	"math"
	"sort"
	"time"

	"statscache/engine"
)

// SpanStatus is a span of time as /status shows it.
type SpanStatus struct {
	From    time.Time `json:"from"`
	To      time.Time `json:"to"`
	Seconds float64   `json:"seconds"`
}

// Status is what the follower knows about the journal's completeness.
type Status struct {
	// Archive is false when there is no archive to fill from: Note then
	// says that gaps cannot be filled.
	Archive bool   `json:"archive"`
	Note    string `json:"note,omitempty"`
	// NeedFrom is where the journal must be complete from: the earliest
	// position of any model.
	NeedFrom *time.Time `json:"need_from,omitempty"`
	// LiveFrom is where this run's bus subscription took over: Margin
	// past its first delivery (absent until the bus delivered anything).
	LiveFrom *time.Time `json:"live_from,omitempty"`
	// Incomplete are the spans from NeedFrom that the journal may lack and
	// that hold models until the archive has filled them;
	// IncompleteSeconds adds them up (what is left to fill).
	Incomplete        []SpanStatus `json:"incomplete"`
	IncompleteSeconds float64      `json:"incomplete_seconds"`
	// Unverified are the spans the bus delivered in this run that the
	// archive has not confirmed yet (they do not hold the models).
	Unverified []SpanStatus `json:"unverified"`
	// Complete are the spans known complete (from NeedFrom on).
	Complete []SpanStatus `json:"complete"`
	// Filling is the span being fetched now.
	Filling *SpanStatus `json:"filling,omitempty"`
	// LastError is why the last fetch failed; Unreachable says the
	// archive failed (not the journal, e.g. a full disk).
	LastError   string `json:"last_error,omitempty"`
	Unreachable bool   `json:"unreachable"`
	// Held lists the models that may not process past a time yet, and
	// that time.
	Held map[string]time.Time `json:"held"`
}

func spanStatus(s engine.Span) SpanStatus {
	return SpanStatus{From: time.UnixMicro(s.FromUS).UTC(), To: time.UnixMicro(s.ToUS).UTC(),
		Seconds: float64(s.ToUS-s.FromUS) / 1e6}
}

// Status returns a snapshot, with the spans cut at now.
func (f *Follower) Status() Status {
	now := f.cfg.Clock.Now().UnixMicro()
	f.mu.Lock()
	defer f.mu.Unlock()
	st := Status{Archive: f.arch != nil, Held: map[string]time.Time{}, LastError: f.lastErr, Unreachable: f.unreach,
		Incomplete: []SpanStatus{}, Unverified: []SpanStatus{}, Complete: []SpanStatus{}}
	if f.arch == nil {
		st.Note = "no archive (--datagrepper is empty): spans count as complete as the bus delivers them, and gaps cannot be filled"
	}
	if !f.started {
		return st
	}
	need := f.needFrom
	if need != math.MaxInt64 && need != math.MinInt64 {
		t := time.UnixMicro(need).UTC()
		st.NeedFrom = &t
	}
	if f.liveFrom != math.MaxInt64 {
		t := time.UnixMicro(f.liveFrom).UTC()
		st.LiveFrom = &t
	}
	end := min(f.liveFrom, now)
	for _, h := range f.complete.holes(need, end) {
		st.Incomplete = append(st.Incomplete, spanStatus(h))
		st.IncompleteSeconds += float64(h.ToUS-h.FromUS) / 1e6
	}
	if f.liveFrom < now {
		for _, h := range f.complete.holes(f.liveFrom, now) {
			st.Unverified = append(st.Unverified, spanStatus(h))
		}
	}
	for _, s := range f.complete {
		if s.ToUS > need {
			st.Complete = append(st.Complete, spanStatus(engine.Span{FromUS: max(s.FromUS, need), ToUS: s.ToUS}))
		}
	}
	if f.filling != nil {
		s := spanStatus(*f.filling)
		st.Filling = &s
	}
	ids := make([]string, 0, len(f.holds))
	for id := range f.holds {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		if c := f.holds[id]; c != math.MaxInt64 {
			st.Held[id] = time.UnixMicro(c).UTC()
		}
	}
	return st
}
