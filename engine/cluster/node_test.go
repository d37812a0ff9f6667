package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"testing"
	"time"

	"statscache/engine"
)

// memStore is Store in memory, on the local clock.
type memStore struct {
	mu        sync.Mutex
	instances map[string]memInstance
	leases    map[string]*Lease
	reload    int64
	down      bool // every call fails, as with an unreachable database
}

type memInstance struct {
	in      Instance
	expires time.Time
}

func newMemStore() *memStore {
	return &memStore{instances: map[string]memInstance{}, leases: map[string]*Lease{}}
}

var errDown = errors.New("database unreachable")

func (s *memStore) Heartbeat(ctx context.Context, me Instance, ttl time.Duration) (Beat, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return Beat{}, errDown
	}
	now := time.Now()
	s.instances[me.ID] = memInstance{me, now.Add(ttl)}
	var b Beat
	for _, mi := range s.instances {
		if mi.expires.After(now) {
			b.Instances = append(b.Instances, mi.in)
		}
	}
	for _, l := range s.leases {
		c := *l
		c.Live = c.Holder != "" && c.Expires.After(now)
		b.Leases = append(b.Leases, c)
	}
	b.Reload = s.reload
	return b, nil
}

func (s *memStore) Acquire(ctx context.Context, key, holder string, ttl time.Duration) (engine.Fence, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return engine.Fence{}, false, errDown
	}
	now := time.Now()
	l := s.leases[key]
	if l == nil {
		l = &Lease{Key: key}
		s.leases[key] = l
	}
	if l.Holder != "" && l.Holder != holder && l.Expires.After(now) {
		return engine.Fence{}, false, nil
	}
	l.Holder, l.Token, l.Expires = holder, l.Token+1, now.Add(ttl)
	return engine.Fence{Holder: holder, Token: l.Token}, true, nil
}

func (s *memStore) Renew(ctx context.Context, holder string, held map[string]int64, ttl time.Duration) (map[string]bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return nil, errDown
	}
	kept := map[string]bool{}
	for k, tok := range held {
		if l := s.leases[k]; l != nil && l.Holder == holder && l.Token == tok {
			l.Expires = time.Now().Add(ttl)
			kept[k] = true
		}
	}
	return kept, nil
}

func (s *memStore) Release(ctx context.Context, key string, f engine.Fence) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l := s.leases[key]; l != nil && l.Holder == f.Holder && l.Token == f.Token {
		l.Holder, l.Expires = "", time.Time{}
	}
	return nil
}

func (s *memStore) Leave(ctx context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.instances, id)
	return nil
}

func (s *memStore) RequestReload(ctx context.Context) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reload++
	return s.reload, nil
}

// holder is who holds key now (live), or "".
func (s *memStore) holder(key string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l := s.leases[key]; l != nil && l.Expires.After(time.Now()) {
		return l.Holder
	}
	return ""
}

// fakeEngine records grants.
type fakeEngine struct {
	mu      sync.Mutex
	keys    map[string]string
	granted map[string]engine.Fence
	wm      int64
}

func newFakeEngine(keys ...string) *fakeEngine {
	e := &fakeEngine{keys: map[string]string{}, granted: map[string]engine.Fence{}}
	for _, k := range keys {
		e.keys[k] = "v1"
	}
	return e
}

func (e *fakeEngine) LeaseKeys() map[string]string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return maps.Clone(e.keys)
}
func (e *fakeEngine) Grant(ctx context.Context, key string, f engine.Fence) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.granted[key] = f
	return nil
}
func (e *fakeEngine) Release(key string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.granted, key)
}
func (e *fakeEngine) Granted() map[string]engine.Fence {
	e.mu.Lock()
	defer e.mu.Unlock()
	return maps.Clone(e.granted)
}
func (e *fakeEngine) SetClusterWatermark(us int64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.wm = us
}
func (e *fakeEngine) FencedCommits() int64 { return 0 }

type testNode struct {
	*Node
	eng *fakeEngine
	wm  int64
}

func newTestNode(s Store, id string, lease time.Duration, keys ...string) *testNode {
	tn := &testNode{eng: newFakeEngine(keys...)}
	tn.Node = New(Config{ID: id, Lease: lease, Logger: slog.New(slog.DiscardHandler),
		Watermark: func() (int64, bool) { return tn.wm, tn.wm != 0 }}, s, tn.eng)
	return tn
}

func ticks(ctx context.Context, rounds int, nodes ...*testNode) {
	for i := 0; i < rounds; i++ {
		for _, n := range nodes {
			n.tick(ctx)
		}
	}
}

// owners checks that every key runs in exactly one engine and returns
// how many each runs.
func owners(t *testing.T, s *memStore, keys []string, nodes ...*testNode) map[string]int {
	t.Helper()
	count := map[string]int{}
	for _, k := range keys {
		var in []string
		for _, n := range nodes {
			if _, ok := n.eng.Granted()[k]; ok {
				in = append(in, n.cfg.ID)
			}
		}
		if len(in) != 1 {
			t.Errorf("%s runs in %v, want exactly one instance", k, in)
			continue
		}
		if h := s.holder(k); h != in[0] {
			t.Errorf("%s runs in %s but the store says %q holds it", k, in[0], h)
		}
		count[in[0]]++
	}
	return count
}

// TestNodesSpreadAndTakeOver: three instances spread nine models three
// each; when one stops heartbeating, the two others take its models once
// its leases expire, each with a raised token; when it comes back, its
// leases are gone (its models are not running there any more) and it
// gets its share again.
func TestNodesSpreadAndTakeOver(t *testing.T) {
	ctx := context.Background()
	s := newMemStore()
	var keys []string
	for i := 0; i < 9; i++ {
		keys = append(keys, fmt.Sprintf("m%d", i))
	}
	lease := 300 * time.Millisecond
	a, b, c := newTestNode(s, "a", lease, keys...), newTestNode(s, "b", lease, keys...), newTestNode(s, "c", lease, keys...)
	a.wm, b.wm, c.wm = 100, 200, 300
	ticks(ctx, 3, a, b, c)
	if got := owners(t, s, keys, a, b, c); got["a"] != 3 || got["b"] != 3 || got["c"] != 3 {
		t.Fatalf("models per instance %v, want 3 each", got)
	}
	if a.eng.wm != 100 || c.eng.wm != 100 {
		t.Errorf("cluster watermark %d/%d, want 100, the least", a.eng.wm, c.eng.wm)
	}
	cHeld := c.eng.Granted()
	// c stops (paused): a and b go on; once its leases and heartbeat
	// expire they take its models.
	deadline := time.Now().Add(lease + 100*time.Millisecond)
	for time.Now().Before(deadline) {
		ticks(ctx, 1, a, b)
		time.Sleep(20 * time.Millisecond)
	}
	ticks(ctx, 2, a, b)
	if got := owners(t, s, keys, a, b); got["a"]+got["b"] != 9 || got["a"] < 4 || got["b"] < 4 {
		t.Errorf("after c stopped: %v, want its models spread over a and b", got)
	}
	if a.eng.wm != 100 {
		t.Errorf("cluster watermark %d, want 100", a.eng.wm)
	}
	a.wm = 150
	ticks(ctx, 1, a)
	if a.eng.wm != 150 {
		t.Errorf("cluster watermark %d after c expired and a moved on, want 150 (c's 300 no longer counts, but neither does it hold back)", a.eng.wm)
	}
	for k, f := range cHeld {
		nf := a.eng.Granted()[k]
		if _, ok := b.eng.Granted()[k]; ok {
			nf = b.eng.Granted()[k]
		}
		if nf.Token <= f.Token {
			t.Errorf("%s taken over with token %d, not above c's %d", k, nf.Token, f.Token)
		}
	}
	// c resumes: its renewal fails for the taken leases; their models
	// stop at their next commit (the store refuses it) or a lease later,
	// and the plan gives c its share back.
	ticks(ctx, 1, c)
	if len(c.eng.Granted()) != 3 {
		t.Errorf("c stopped its models at once: %v (they stop at their refused commit, or after a grace)", c.eng.Granted())
	}
	for end := time.Now().Add(lease); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		ticks(ctx, 1, a, b)
	}
	ticks(ctx, 4, c, a, b)
	if got := owners(t, s, keys, a, b, c); got["a"] != 3 || got["b"] != 3 || got["c"] != 3 {
		t.Errorf("after c came back: %v, want 3 each", got)
	}
}

// TestNodeStopsModelsWhenDatabaseUnreachable: an instance that cannot
// renew its leases stops its models at two thirds of the lease, before
// another instance may take them.
func TestNodeStopsModelsWhenDatabaseUnreachable(t *testing.T) {
	ctx := context.Background()
	s := newMemStore()
	lease := 300 * time.Millisecond
	a := newTestNode(s, "a", lease, "m1", "m2")
	a.wm = 1
	ticks(ctx, 2, a)
	if len(a.eng.Granted()) != 2 {
		t.Fatalf("granted %v", a.eng.Granted())
	}
	s.mu.Lock()
	s.down = true
	s.mu.Unlock()
	ticks(ctx, 1, a)
	if len(a.eng.Granted()) != 2 {
		t.Error("models stopped at the first failed heartbeat: they still hold their leases")
	}
	time.Sleep(lease * 2 / 3)
	ticks(ctx, 1, a)
	deadline := time.Now().Add(2 * time.Second)
	for len(a.eng.Granted()) != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if g := a.eng.Granted(); len(g) != 0 {
		t.Errorf("still running %v with the database unreachable for 2/3 of the lease", g)
	}
}

// TestNodeReloadReachesEveryInstance: a reload asked of one instance is
// seen by every instance at its next heartbeat, once.
func TestNodeReloadReachesEveryInstance(t *testing.T) {
	ctx := context.Background()
	s := newMemStore()
	a, b := newTestNode(s, "a", time.Second, "m"), newTestNode(s, "b", time.Second, "m")
	var mu sync.Mutex
	reloads := map[string]int{}
	for _, n := range []*testNode{a, b} {
		id := n.cfg.ID
		n.cfg.OnReload = func() { mu.Lock(); reloads[id]++; mu.Unlock() }
	}
	ticks(ctx, 1, a, b)
	if err := b.RequestReload(ctx); err != nil {
		t.Fatal(err)
	}
	ticks(ctx, 3, a, b)
	if reloads["a"] != 1 || reloads["b"] != 1 {
		t.Errorf("reloads %v, want one each", reloads)
	}
}
