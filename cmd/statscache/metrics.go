package main

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"statscache/engine"
)

// metrics are the daemon's Prometheus metrics. Counters of the sources
// are updated as messages flow; model and backfill figures are read from
// the engine and the archive client at scrape time.
type metrics struct {
	reg        *prometheus.Registry
	received   *prometheus.CounterVec
	journaled  *prometheus.CounterVec
	duplicates *prometheus.CounterVec
	late       prometheus.Counter
	rejected   *prometheus.CounterVec
	reloads    prometheus.Counter
}

func newMetrics(d *daemon) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.received = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "statscache_messages_received_total",
		Help: "Messages decoded from a source (bus, archive)."}, []string{"source"})
	m.journaled = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "statscache_messages_journaled_total",
		Help: "New messages written to the journal."}, []string{"source"})
	m.duplicates = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "statscache_messages_duplicate_total",
		Help: "Messages already in the journal (same id, with or without the year)."}, []string{"source"})
	m.late = prometheus.NewCounter(prometheus.CounterOpts{Name: "statscache_messages_late_total",
		Help: "Messages journaled behind a model's committed cursor: that model does not see them."})
	m.rejected = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "statscache_messages_rejected_total",
		Help: "Records that could not be accepted, by source."}, []string{"source"})
	m.reloads = prometheus.NewCounter(prometheus.CounterOpts{Name: "statscache_reloads_total", Help: "Script reloads."})
	m.reg.MustRegister(m.received, m.journaled, m.duplicates, m.late, m.rejected, m.reloads,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), &engineCollector{d}, clusterCollector{d})
	return m
}

// count records what Ingest did with n messages from source.
func (m *metrics) count(source string, n int, res engine.AppendResult) {
	m.received.WithLabelValues(source).Add(float64(n))
	m.journaled.WithLabelValues(source).Add(float64(res.Added))
	m.duplicates.WithLabelValues(source).Add(float64(res.Duplicates))
	m.late.Add(float64(res.Late))
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// engineCollector reads per-model progress, the watermark and backfill
// progress when Prometheus scrapes.
type engineCollector struct{ d *daemon }

var (
	descProcessed = prometheus.NewDesc("statscache_model_processed_total", "Messages a model has processed in this run.", []string{"model"}, nil)
	descErrors    = prometheus.NewDesc("statscache_model_errors_total", "Messages a model's process failed on in this run.", []string{"model"}, nil)
	descFailed    = prometheus.NewDesc("statscache_model_failed", "1 when the model is stopped (quarantined).", []string{"model"}, nil)
	descQueued    = prometheus.NewDesc("statscache_model_queue_items", "Work items a model has committed and not yet had the outcome of.", []string{"model"}, nil)
	descLag       = prometheus.NewDesc("statscache_model_lag_seconds", "How far the model's committed cursor is behind the wall clock.", []string{"model"}, nil)
	descWatermark = prometheus.NewDesc("statscache_watermark_seconds", "Models process messages older than this (Unix seconds).", nil, nil)
	descBackfill  = prometheus.NewDesc("statscache_backfill_messages_total", "Messages fetched from the archive.", nil, nil)
	descWindows   = prometheus.NewDesc("statscache_backfill_windows", "Archive windows of the current fill, by state.", []string{"state"}, nil)
	descETA       = prometheus.NewDesc("statscache_backfill_eta_seconds", "Estimated time to the end of the archive fill.", nil, nil)
	// The journal's completeness (engine/follow).
	descIncomplete      = prometheus.NewDesc("statscache_fill_incomplete_seconds", "Seconds of time the journal may still lack before the live region: what the archive has left to fill.", nil, nil)
	descIncompleteSpans = prometheus.NewDesc("statscache_fill_incomplete_spans", "Spans of time the journal may still lack before the live region.", nil, nil)
	descHeld            = prometheus.NewDesc("statscache_fill_held_models", "Models held back until the archive has filled a span they need.", nil, nil)
)

func (c *engineCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descProcessed, descErrors, descFailed, descQueued, descLag, descWatermark, descBackfill, descWindows, descETA, descIncomplete, descIncompleteSpans, descHeld} {
		ch <- d
	}
}

func (c *engineCollector) Collect(ch chan<- prometheus.Metric) {
	now := float64(nowUS()) / 1e6
	for _, s := range c.d.p.eng.Stats() {
		ch <- prometheus.MustNewConstMetric(descProcessed, prometheus.CounterValue, float64(s.Processed), s.Ident)
		ch <- prometheus.MustNewConstMetric(descErrors, prometheus.CounterValue, float64(s.Errors), s.Ident)
		failed := 0.0
		if s.Failed != "" {
			failed = 1
		}
		ch <- prometheus.MustNewConstMetric(descFailed, prometheus.GaugeValue, failed, s.Ident)
		ch <- prometheus.MustNewConstMetric(descQueued, prometheus.GaugeValue, float64(s.Queued), s.Ident)
		if !s.Cursor.IsZero() {
			ch <- prometheus.MustNewConstMetric(descLag, prometheus.GaugeValue, now-float64(s.Cursor.TimeUS)/1e6, s.Ident)
		}
	}
	if wm := c.d.p.eng.Watermark(); !wm.IsZero() {
		ch <- prometheus.MustNewConstMetric(descWatermark, prometheus.GaugeValue, float64(wm.UnixMicro())/1e6)
	}
	if c.d.arch != nil {
		p := c.d.arch.Progress()
		ch <- prometheus.MustNewConstMetric(descBackfill, prometheus.CounterValue, float64(p.Messages))
		ch <- prometheus.MustNewConstMetric(descWindows, prometheus.GaugeValue, float64(p.WindowsDone), "done")
		ch <- prometheus.MustNewConstMetric(descWindows, prometheus.GaugeValue, float64(p.Windows), "total")
		ch <- prometheus.MustNewConstMetric(descETA, prometheus.GaugeValue, p.ETA.Seconds())
	}
	fs := c.d.fol.Status()
	ch <- prometheus.MustNewConstMetric(descIncomplete, prometheus.GaugeValue, fs.IncompleteSeconds)
	ch <- prometheus.MustNewConstMetric(descIncompleteSpans, prometheus.GaugeValue, float64(len(fs.Incomplete)))
	ch <- prometheus.MustNewConstMetric(descHeld, prometheus.GaugeValue, float64(len(fs.Held)))
}

func nowUS() int64 { return time.Now().UnixMicro() }
