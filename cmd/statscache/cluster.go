package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"statscache/engine/cluster"
	"statscache/engine/pgstore"
)

// Several `statscache run` processes may share one PostgreSQL database
// (README, "Running several instances"): engine/cluster decides which
// instance runs which model and how far the models may read the shared
// journal; this file wires it into the daemon.

// leaseOrDefault is --lease, or the default when it is not set.
func leaseOrDefault(d time.Duration) time.Duration {
	if d <= 0 {
		return cluster.DefaultLease
	}
	return d
}

// newNode returns the daemon's part of the coordination. fill says the
// daemon has an archive to fill from.
func (d *daemon) newNode(ctx context.Context, fill bool) *cluster.Node {
	id := d.cfg.instance
	if id == "" {
		host, _ := os.Hostname()
		var b [3]byte
		rand.Read(b[:])
		id = fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
	}
	return cluster.New(cluster.Config{
		ID: id, Lease: d.cfg.lease, Watermark: d.fol.Promise, Fill: fill, Drain: d.drain,
		OnFill:   func(bool) { d.fol.Replan() },
		OnGrant:  d.fol.Replan,
		OnReload: func() { d.reload(ctx) },
		Logger:   d.log.With("part", "cluster", "instance", id),
	}, d.p.db.(*pgstore.DB), d.p.eng)
}

// runNode runs the node, once the daemon serves (its address goes in the
// heartbeat). The returned channel is closed when the node has released
// its leases after ctx ended.
func (d *daemon) runNode(ctx context.Context) <-chan struct{} {
	done := make(chan struct{})
	if d.node == nil {
		close(done)
		return done
	}
	d.node.SetAddr(d.addr.String())
	go func() {
		defer close(done)
		d.node.Run(ctx)
	}()
	return done
}

// holdsFill says whether this instance fills from the archive now: it
// holds the fill lease.
func (d *daemon) holdsFill() bool { return d.node != nil && d.node.HoldsFill() }

// hup answers SIGHUP: with several instances, every one of them reloads
// (each from its own scripts directory); alone, or when the database
// cannot be reached, this one does at once.
func (d *daemon) hup(ctx context.Context) {
	if d.node != nil {
		if err := d.node.RequestReload(ctx); err == nil {
			d.log.Info("reload asked of every instance sharing the database")
			return
		} else {
			d.log.Error("cannot ask the other instances to reload: reloading this one", "err", err)
		}
	}
	d.reload(ctx)
}

var (
	descRefused = prometheus.NewDesc("statscache_lease_refused_commits_total",
		"Model commits the database refused because another instance had taken the model's lease (this one was paused or cut off).", nil, nil)
	descLeases = prometheus.NewDesc("statscache_leases_held", "Model leases this instance holds.", nil, nil)
)

// clusterCollector reads the lease figures at scrape time.
type clusterCollector struct{ d *daemon }

func (c clusterCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descRefused
	ch <- descLeases
}

func (c clusterCollector) Collect(ch chan<- prometheus.Metric) {
	if c.d.node == nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(descRefused, prometheus.CounterValue, float64(c.d.p.eng.FencedCommits()))
	ch <- prometheus.MustNewConstMetric(descLeases, prometheus.GaugeValue, float64(len(c.d.p.eng.Granted())))
}
