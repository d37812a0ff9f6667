package follow

import (
	"math"
	"testing"
	"time"
)

// TestNeedFromWithAModelWantingEverything: one model has no start (it
// wants the whole journal: the daemon's Start stands for it), another has
// committed before Start. The journal must be complete from the earlier
// of the two, or the second model is not held at holes before Start.
func TestNeedFromWithAModelWantingEverything(t *testing.T) {
	start := time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)
	early := start.Add(-time.Hour).UnixMicro()
	f := &Follower{cfg: Config{Start: start}, liveFrom: math.MaxInt64}
	for _, tc := range []struct {
		name string
		pos  map[string]int64
		want int64
	}{
		{"only everything", map[string]int64{"a": math.MinInt64}, start.UnixMicro()},
		{"everything and an earlier model", map[string]int64{"a": math.MinInt64, "b": early}, early},
		{"everything and a later model", map[string]int64{"a": math.MinInt64, "b": start.Add(time.Hour).UnixMicro()}, start.UnixMicro()},
		{"no model", map[string]int64{}, start.UnixMicro()},
		{"one model", map[string]int64{"b": early}, early},
	} {
		if got := f.needFromLocked(tc.pos); got != tc.want {
			t.Errorf("%s: need from %d, want %d", tc.name, got, tc.want)
		}
	}
}
