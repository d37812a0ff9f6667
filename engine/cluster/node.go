package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"sort"
	"sync"
	"time"

	"statscache/engine"
)

// Lease is one lease row.
type Lease struct {
	Key     string    `json:"key"`
	Holder  string    `json:"holder"` // "" when released
	Token   int64     `json:"token"`
	Expires time.Time `json:"expires"`
	// Live: held and not expired (by the database's clock).
	Live bool `json:"live"`
}

// Beat is what a heartbeat reads back.
type Beat struct {
	// Instances are the live ones (unexpired heartbeat rows), this one
	// included.
	Instances []Instance
	Leases    []Lease
	// Reload is the cluster's reload generation: a reload asked of any
	// instance raises it, and every instance reloads when it sees it rise.
	Reload int64
}

// Store is the database side of the coordination. Expiry is measured on
// the database's clock, so the instances' clocks do not need to agree on
// it.
type Store interface {
	// Heartbeat records the instance as live for ttl, with its address,
	// models, watermark and refused commits, and returns the live
	// instances, every lease and the reload generation.
	Heartbeat(ctx context.Context, me Instance, ttl time.Duration) (Beat, error)
	// Acquire takes the lease of key for holder when it is free, expired
	// or held under holder's name (an earlier run of this instance that
	// died), raising its token; ok is false when another instance holds
	// it.
	Acquire(ctx context.Context, key, holder string, ttl time.Duration) (f engine.Fence, ok bool, err error)
	// Renew extends the leases held (key to token) by holder and returns
	// the keys it still holds: the others were taken.
	Renew(ctx context.Context, holder string, held map[string]int64, ttl time.Duration) (kept map[string]bool, err error)
	// Release frees a lease held with f, for another instance to take at
	// once.
	Release(ctx context.Context, key string, f engine.Fence) error
	// Leave removes the instance's heartbeat row.
	Leave(ctx context.Context, id string) error
	// RequestReload raises the reload generation.
	RequestReload(ctx context.Context) (int64, error)
}

// Engine is what a node drives: *engine.Engine.
type Engine interface {
	LeaseKeys() map[string]string
	Grant(ctx context.Context, key string, f engine.Fence) error
	Release(key string)
	Granted() map[string]engine.Fence
	SetClusterWatermark(us int64)
	FencedCommits() int64
}

// Config tunes a Node.
type Config struct {
	// ID names the instance (unique among those sharing the database).
	ID string
	// Addr is where it serves the API, shown in /status.
	Addr string
	// Lease is how long a lease and a heartbeat last without renewal
	// (default 15 s). An instance that cannot renew its leases for
	// Lease*2/3 stops its models, before any other can take them.
	Lease time.Duration
	// Tick is how often the heartbeat runs (default 500 ms): it also
	// moves the cluster watermark, so it bounds the added latency.
	Tick time.Duration
	// Watermark returns the time (unix µs) up to which this instance has
	// journaled everything it will journal; false before it knows.
	Watermark func() (int64, bool)
	// Fill says this instance can fill from the archive: the fill lease
	// may go to it. OnFill is told when it gets or loses the fill lease.
	Fill   bool
	OnFill func(held bool)
	// OnReload is called when another instance asked for a reload.
	OnReload func()
	// OnGrant is called after models started here (their holds may need
	// setting: the daemon's follower replans).
	OnGrant func()
	// Drain bounds the stop (default engine.DefaultDrain): the models'
	// last commits, the leases given back and the heartbeat removed all
	// end within it after Run's context ends. What it cuts short the
	// others learn when the leases expire.
	Drain  time.Duration
	Logger *slog.Logger
}

// DefaultLease is Config.Lease when it is not set.
const DefaultLease = 15 * time.Second

// Node is one instance's part of the coordination.
type Node struct {
	cfg   Config
	store Store
	eng   Engine
	log   *slog.Logger

	mu   sync.Mutex
	fill *engine.Fence // the fill lease, when held
	// lost are leases a renewal found taken; their models stop at their
	// next commit (refused) or a lease later.
	lost      map[string]lostLease
	lastRenew time.Time // the last successful renewal
	beat      Beat
	conflicts map[string]string
	assign    map[string]string
	lastErr   string
	reloadGen int64
	started   bool
	clusterWM int64
}

// New returns a node. Run it.
func New(cfg Config, store Store, eng Engine) *Node {
	if cfg.Lease <= 0 {
		cfg.Lease = DefaultLease
	}
	if cfg.Tick <= 0 {
		cfg.Tick = 500 * time.Millisecond
	}
	if cfg.Drain <= 0 {
		cfg.Drain = engine.DefaultDrain
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Node{cfg: cfg, store: store, eng: eng, log: cfg.Logger, reloadGen: -1, clusterWM: math.MinInt64, lost: map[string]lostLease{}}
}

// Run coordinates until ctx ends, then stops the models and releases the
// leases (gracefully: another instance takes them at once).
func (n *Node) Run(ctx context.Context) error {
	t := time.NewTicker(n.cfg.Tick)
	defer t.Stop()
	for {
		n.tick(ctx)
		select {
		case <-t.C:
		case <-ctx.Done():
			n.leave(ctx)
			return nil
		}
	}
}

// SetAddr sets the address the heartbeat publishes (known once the
// daemon listens).
func (n *Node) SetAddr(addr string) {
	n.mu.Lock()
	n.cfg.Addr = addr
	n.mu.Unlock()
}

// HoldsFill reports whether this instance holds the fill lease.
func (n *Node) HoldsFill() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.fill != nil
}

// RequestReload asks every instance (this one included) to reload.
func (n *Node) RequestReload(ctx context.Context) error {
	_, err := n.store.RequestReload(ctx)
	return err
}

// tick is one heartbeat: publish, read the others, renew, rebalance.
func (n *Node) tick(ctx context.Context) {
	n.mu.Lock()
	addr := n.cfg.Addr
	n.mu.Unlock()
	me := Instance{ID: n.cfg.ID, Addr: addr, Models: n.eng.LeaseKeys(), Refused: n.eng.FencedCommits()}
	if n.cfg.Fill {
		me.Models[FillKey] = "archive"
	}
	if n.cfg.Watermark != nil {
		if wm, ok := n.cfg.Watermark(); ok {
			me.WatermarkUS = &wm
		}
	}
	beat, err := n.store.Heartbeat(ctx, me, n.cfg.Lease)
	if err == nil {
		n.setWatermark(beat)
		err = n.renew(ctx)
	}
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		n.failed(err)
		return
	}
	n.rebalance(ctx, beat)
	n.mu.Lock()
	n.lastErr = ""
	prev := n.reloadGen
	n.reloadGen = beat.Reload
	n.mu.Unlock()
	if prev >= 0 && beat.Reload > prev && n.cfg.OnReload != nil {
		n.cfg.OnReload()
	}
}

// setWatermark caps the engine at the least watermark of the live
// instances: none of them will journal a message older than that (one
// that does is late, as a message the bus delivers too late is).
// Instances that have not said yet do not count; an instance whose
// heartbeat expired (dead, or paused) drops out.
func (n *Node) setWatermark(b Beat) {
	wm := int64(math.MaxInt64)
	for _, in := range b.Instances {
		if in.WatermarkUS != nil {
			wm = min(wm, *in.WatermarkUS)
		}
	}
	if wm == math.MaxInt64 {
		wm = math.MinInt64 // no promise yet: process nothing
	}
	n.mu.Lock()
	n.clusterWM = wm
	n.mu.Unlock()
	n.eng.SetClusterWatermark(wm)
}

// renew extends the held leases; those taken meanwhile are stopped here.
func (n *Node) renew(ctx context.Context) error {
	held := map[string]int64{}
	for k, f := range n.eng.Granted() {
		held[k] = f.Token
	}
	n.mu.Lock()
	if n.fill != nil {
		held[FillKey] = n.fill.Token
	}
	n.mu.Unlock()
	if len(held) == 0 {
		n.mu.Lock()
		n.lastRenew = time.Now()
		n.mu.Unlock()
		return nil
	}
	kept, err := n.store.Renew(ctx, n.cfg.ID, held, n.cfg.Lease)
	if err != nil {
		return fmt.Errorf("renew leases: %w", err)
	}
	n.mu.Lock()
	n.lastRenew = time.Now()
	n.mu.Unlock()
	for k := range held {
		if kept[k] {
			continue
		}
		if k == FillKey {
			n.log.Warn("fill lease lost: another instance took it", "lease", k)
			n.setFill(nil)
			continue
		}
		// The models go on until their next commit, which the store
		// refuses (counted), or until the next heartbeat: either way they
		// stop without writing anything.
		n.mu.Lock()
		l, seen := n.lost[k]
		n.mu.Unlock()
		if seen && l.token == held[k] {
			if time.Since(l.at) >= n.cfg.Lease {
				n.eng.Release(k)
			}
			continue
		}
		n.log.Warn("lease lost: another instance took it (this one was paused or cut off); the model stops at its next commit", "lease", k)
		n.mu.Lock()
		n.lost[k] = lostLease{token: held[k], at: time.Now()}
		n.mu.Unlock()
	}
	n.mu.Lock()
	for k, l := range n.lost {
		if held[k] != l.token {
			delete(n.lost, k) // stopped, or acquired again
		}
	}
	n.mu.Unlock()
	return nil
}

// lostLease is a lease a renewal found taken, and when.
type lostLease struct {
	token int64
	at    time.Time
}

// failed handles a heartbeat that did not get through. The leases stay
// valid in the database until they expire; the models stop here at two
// thirds of the lease, before another instance can take them, so that
// nothing this instance has processed waits for a commit that will be
// refused.
func (n *Node) failed(err error) {
	n.mu.Lock()
	n.lastErr = err.Error()
	since := time.Since(n.lastRenew)
	n.mu.Unlock()
	n.log.Error("cluster heartbeat failed", "err", err, "since_last_renewal", since.Round(time.Millisecond))
	if since < n.cfg.Lease*2/3 {
		return
	}
	granted := n.eng.Granted()
	if len(granted) > 0 {
		n.log.Error("cannot renew the leases: stopping the models before they expire", "models", len(granted))
	}
	for k := range granted {
		go n.eng.Release(k)
	}
	n.setFill(nil)
}

// rebalance releases the leases the plan gives to others and acquires
// the free ones it gives to this instance.
func (n *Node) rebalance(ctx context.Context, b Beat) {
	holders := map[string]string{}
	leases := map[string]Lease{}
	for _, l := range b.Leases {
		leases[l.Key] = l
		if l.Live {
			holders[l.Key] = l.Holder
		}
	}
	assign, conflicts := Plan(b.Instances, holders)
	n.mu.Lock()
	n.beat, n.assign, n.conflicts = b, assign, conflicts
	fill := n.fill
	n.mu.Unlock()
	granted := n.eng.Granted()
	// Release first: the others acquire at their next tick.
	for k, f := range granted {
		n.mu.Lock()
		_, lost := n.lost[k]
		n.mu.Unlock()
		if lost {
			continue // renew stops it
		}
		if assign[k] != n.cfg.ID {
			n.log.Info("handing a model over", "lease", k, "to", assign[k], "reason", conflicts[k])
			n.eng.Release(k)
			if err := n.store.Release(ctx, k, f); err != nil {
				n.log.Warn("release lease", "lease", k, "err", err)
			}
		}
	}
	if fill != nil && assign[FillKey] != n.cfg.ID {
		n.setFill(nil)
		if err := n.store.Release(ctx, FillKey, *fill); err != nil {
			n.log.Warn("release lease", "lease", FillKey, "err", err)
		}
	}
	var mine []string
	for k, id := range assign {
		if id == n.cfg.ID {
			mine = append(mine, k)
		}
	}
	sort.Strings(mine)
	started := false
	defer func() {
		if started && n.cfg.OnGrant != nil {
			n.cfg.OnGrant()
		}
	}()
	for _, k := range mine {
		if k == FillKey {
			if fill == nil && !leases[k].Live {
				if f, ok := n.acquire(ctx, k); ok {
					n.setFill(&f)
				}
			}
			continue
		}
		if f, ok := granted[k]; ok {
			n.mu.Lock()
			_, lost := n.lost[k]
			n.mu.Unlock()
			if lost {
				continue
			}
			// Held: make sure it runs (a reload restarts models).
			if err := n.eng.Grant(ctx, k, f); err != nil {
				n.log.Error("start model", "lease", k, "err", err)
			}
			continue
		}
		if l := leases[k]; l.Live && l.Holder != n.cfg.ID {
			continue // its holder releases it first
		}
		f, ok := n.acquire(ctx, k)
		if !ok {
			continue
		}
		if err := n.eng.Grant(ctx, k, f); err != nil {
			n.log.Error("start model: releasing its lease", "lease", k, "err", err)
			n.eng.Release(k)
			n.store.Release(ctx, k, f)
			continue
		}
		started = true
	}
}

func (n *Node) acquire(ctx context.Context, key string) (engine.Fence, bool) {
	f, ok, err := n.store.Acquire(ctx, key, n.cfg.ID, n.cfg.Lease)
	if err != nil {
		n.log.Warn("acquire lease", "lease", key, "err", err)
		return f, false
	}
	if ok {
		n.log.Info("lease acquired", "lease", key, "token", f.Token)
	}
	return f, ok
}

func (n *Node) setFill(f *engine.Fence) {
	n.mu.Lock()
	was := n.fill != nil
	n.fill = f
	n.mu.Unlock()
	if was != (f != nil) && n.cfg.OnFill != nil {
		n.cfg.OnFill(f != nil)
	}
}

// leave stops the models, releases the leases and removes the heartbeat
// row, so that the others take over at their next tick instead of
// waiting for the leases to expire. It is given the drain time from the
// moment ctx ended, the models' last commits included: a database that
// does not answer must not hold the stop up.
func (n *Node) leave(stopped context.Context) {
	ctx, cancel := engine.WithDrain(stopped, n.cfg.Drain)
	defer cancel()
	for k, f := range n.eng.Granted() {
		n.eng.Release(k)
		if err := n.store.Release(ctx, k, f); err != nil {
			n.log.Warn("release lease", "lease", k, "err", err)
		}
	}
	n.mu.Lock()
	fill := n.fill
	n.mu.Unlock()
	if fill != nil {
		n.setFill(nil)
		n.store.Release(ctx, FillKey, *fill)
	}
	if err := n.store.Leave(ctx, n.cfg.ID); err != nil {
		n.log.Warn("leave the cluster", "err", err)
	}
}

// Status is the cluster as this instance last saw it, for /status.
type Status struct {
	ID        string            `json:"id"`
	Instances []InstanceStatus  `json:"instances"`
	Leases    []Lease           `json:"leases"`
	Conflicts map[string]string `json:"conflicts"`
	// Watermark is the least watermark of the live instances: models
	// read the journal up to it.
	Watermark *time.Time `json:"watermark,omitempty"`
	Fill      bool       `json:"fill"`
	LastError string     `json:"last_error,omitempty"`
	Refused   int64      `json:"refused_commits"`
}

// InstanceStatus is a live instance and the leases it holds.
type InstanceStatus struct {
	Instance
	Watermark *time.Time `json:"watermark,omitempty"`
	Models    []string   `json:"models"`
}

// Status returns the last heartbeat's view.
func (n *Node) Status() Status {
	n.mu.Lock()
	defer n.mu.Unlock()
	st := Status{ID: n.cfg.ID, Leases: n.beat.Leases, Conflicts: n.conflicts, Fill: n.fill != nil, LastError: n.lastErr, Refused: n.eng.FencedCommits()}
	if st.Conflicts == nil {
		st.Conflicts = map[string]string{}
	}
	if n.clusterWM != math.MinInt64 && n.clusterWM != math.MaxInt64 {
		t := time.UnixMicro(n.clusterWM).UTC()
		st.Watermark = &t
	}
	by := map[string][]string{}
	for _, l := range n.beat.Leases {
		if l.Live {
			by[l.Holder] = append(by[l.Holder], l.Key)
		}
	}
	for _, in := range n.beat.Instances {
		is := InstanceStatus{Instance: in, Models: by[in.ID]}
		if is.Models == nil {
			is.Models = []string{}
		}
		sort.Strings(is.Models)
		if in.WatermarkUS != nil {
			t := time.UnixMicro(*in.WatermarkUS).UTC()
			is.Watermark = &t
		}
		st.Instances = append(st.Instances, is)
	}
	return st
}
