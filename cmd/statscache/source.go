package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"statscache/engine"
	"statscache/engine/amqp"
	"statscache/engine/bus"
	"statscache/engine/follow"
)

// The live input. --bus takes URLs, and the scheme picks the transport:
// amqp:// and amqps:// are fedora-messaging over AMQP 0-9-1 (today's
// Fedora bus, the default), tcp:// and ipc:// are fedmsg over ZeroMQ (the
// bus Fedora ran until February 2025; other deployments and the demo
// still use it).

// amqpOptions are the AMQP flags of "run".
type amqpOptions struct {
	queue          string
	ca, cert, key  string
	prefetch       int
	connectionName string // for tests that close the connection from the broker
}

// registerAMQP adds the AMQP flags to run's flag set.
func registerAMQP(fset *flag.FlagSet, o *amqpOptions) {
	fset.StringVar(&o.queue, "amqp-queue", "", "`name` of the durable AMQP queue to consume from (default: a UUID generated once and kept in the database)")
	fset.StringVar(&o.ca, "amqp-ca", "", "CA certificate `file` (PEM) for amqps:// (default for Fedora's broker: "+amqp.FedoraCA+")")
	fset.StringVar(&o.cert, "amqp-cert", "", "client certificate `file` (PEM) for amqps://; without a password in the URL it authenticates (EXTERNAL) (default for Fedora's broker: "+amqp.FedoraCert+")")
	fset.StringVar(&o.key, "amqp-key", "", "client key `file` (PEM) for --amqp-cert (default for Fedora's broker: "+amqp.FedoraKey+")")
	fset.IntVar(&o.prefetch, "amqp-prefetch", amqp.DefaultPrefetch, "AMQP deliveries in flight: received and not yet journaled")
	fset.StringVar(&o.connectionName, "amqp-connection-name", "", "name of the AMQP connection in the broker's listings (default: statscache)")
}

// transport tells which transport the --bus values pick: "zmq", "amqp" or
// "" (none). Mixing them, or giving two AMQP URLs, is an error.
func transport(buses []string) (string, error) {
	if len(buses) == 0 || (len(buses) == 1 && buses[0] == "none") {
		return "", nil
	}
	kind := ""
	for _, b := range buses {
		var k string
		switch {
		case strings.HasPrefix(b, "amqp://"), strings.HasPrefix(b, "amqps://"):
			k = "amqp"
		case strings.HasPrefix(b, "tcp://"), strings.HasPrefix(b, "ipc://"):
			k = "zmq"
		default:
			return "", fmt.Errorf("--bus %q: want amqp:// or amqps:// (fedora-messaging), tcp:// or ipc:// (fedmsg over ZeroMQ), or none", b)
		}
		if kind != "" && k != kind {
			return "", errors.New("--bus: give either ZeroMQ endpoints (tcp://, ipc://) or one AMQP URL (amqp://, amqps://), not both")
		}
		kind = k
	}
	if kind == "amqp" && len(buses) > 1 {
		return "", errors.New("--bus: one AMQP URL at most (a queue bound to several topics is one URL with several --topic)")
	}
	return kind, nil
}

// checkFedoraBroker fills in the TLS files for Fedora's public broker when
// it is the --bus (the default) and no file was given, and says which are
// missing and where they come from.
func checkFedoraBroker(buses []string, o *amqpOptions) error {
	if len(buses) != 1 || buses[0] != amqp.FedoraURL {
		return nil
	}
	if o.ca == "" && o.cert == "" && o.key == "" {
		o.ca, o.cert, o.key = amqp.FedoraCA, amqp.FedoraCert, amqp.FedoraKey
	}
	var missing []string
	for _, f := range []string{o.ca, o.cert, o.key} {
		if f == "" {
			continue
		}
		if _, err := os.Stat(f); err != nil {
			missing = append(missing, f)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return fmt.Errorf(`the default bus is Fedora's public broker %s, which needs a CA certificate, a client certificate and its key; missing: %s.
They are public and come with fedora-messaging: install the fedora-messaging package (Fedora: dnf install fedora-messaging; it puts them in /etc/fedora-messaging/),
or download cacert.pem, fedora-cert.pem and fedora-key.pem from https://github.com/fedora-infra/fedora-messaging/tree/stable/configs
and give them with --amqp-ca, --amqp-cert and --amqp-key. Or pick another bus with --bus (--bus none: archive only)`,
		amqp.FedoraURL, strings.Join(missing, ", "))
}

// liveSource is where live messages enter: a follow.Bus (deliver hands a
// message to the follower's live loop; journaled, which the loop calls once
// the transaction that journaled the message has committed, is what
// acknowledges an AMQP delivery; ZeroMQ has nothing to acknowledge) that
// also reports for /status. The AMQP source is also a follow.CatchingUp.
type liveSource interface {
	follow.Bus
	// Status is the source's part of /status.
	Status() any
}

// newSource builds the live source --bus asks for, or nil for none.
// onReject keeps a rejected record.
func newSource(ctx context.Context, cfg daemonConfig, limits engine.Limits, settings engine.Settings,
	reg prometheus.Registerer, log *slog.Logger, onReject func(engine.Reject)) (liveSource, error) {
	kind, err := transport(cfg.buses)
	if err != nil {
		return nil, err
	}
	switch kind {
	case "zmq":
		return &zmqSource{endpoints: cfg.buses, sub: bus.New(bus.Config{
			Endpoints: cfg.buses, Topics: cfg.topics, Limits: limits, Logger: log.With("source", "bus"), OnReject: onReject,
		})}, nil
	case "amqp":
		o := cfg.amqp
		queue := o.queue
		if queue == "" {
			if queue, err = amqp.StoredQueue(ctx, settings); err != nil {
				return nil, err
			}
		}
		ac := amqp.Config{
			URL: cfg.buses[0], Queue: queue, Topics: cfg.topics, Prefetch: o.prefetch,
			CAFile: o.ca, CertFile: o.cert, KeyFile: o.key, ConnectionName: o.connectionName,
			Limits: limits, Settings: settings, OnReject: onReject, Logger: log.With("source", "amqp"),
		}
		if err := ac.Validate(); err != nil {
			return nil, err
		}
		s := &amqpSource{sub: amqp.New(ac)}
		if err := reg.Register(amqpCollector{s.sub}); err != nil {
			return nil, fmt.Errorf("amqp metrics: %w", err)
		}
		return s, nil
	}
	return nil, nil
}

type zmqSource struct {
	endpoints []string
	sub       *bus.Subscriber
}

// RunFunc adapts the ZeroMQ subscriber to the follower: nothing to
// acknowledge, the archive fills what it drops.
func (z *zmqSource) RunFunc(ctx context.Context, deliver func(context.Context, *engine.Message, func()) error) error {
	return z.sub.RunFunc(ctx, func(ctx context.Context, m *engine.Message) error { return deliver(ctx, m, nil) })
}

// Status keeps the shape /status had before AMQP: endpoints and stats.
func (z *zmqSource) Status() any {
	return struct {
		Transport string    `json:"transport"`
		Endpoints []string  `json:"endpoints"`
		Stats     bus.Stats `json:"stats"`
	}{"zeromq", z.endpoints, z.sub.Stats()}
}

type amqpSource struct{ sub *amqp.Subscriber }

func (a *amqpSource) RunFunc(ctx context.Context, deliver func(context.Context, *engine.Message, func()) error) error {
	return a.sub.RunFunc(ctx, deliver)
}

func (a *amqpSource) CatchingUp() bool { return a.sub.CatchingUp() }

func (a *amqpSource) Status() any {
	return struct {
		Transport string     `json:"transport"`
		Stats     amqp.Stats `json:"stats"`
	}{"amqp", a.sub.Stats()}
}

// amqpCollector reads the AMQP subscriber's counters when Prometheus
// scrapes.
type amqpCollector struct{ sub *amqp.Subscriber }

var (
	descAMQPConnected   = prometheus.NewDesc("statscache_amqp_connected", "1 while the AMQP connection is consuming.", []string{"queue"}, nil)
	descAMQPDeliveries  = prometheus.NewDesc("statscache_amqp_deliveries_total", "AMQP deliveries received.", nil, nil)
	descAMQPAcked       = prometheus.NewDesc("statscache_amqp_acked_total", "AMQP deliveries acknowledged (journaled, duplicate or rejected).", nil, nil)
	descAMQPRedelivered = prometheus.NewDesc("statscache_amqp_redelivered_total", "AMQP deliveries the broker had delivered before.", nil, nil)
	descAMQPUnacked     = prometheus.NewDesc("statscache_amqp_unacked", "AMQP deliveries received and not yet acknowledged.", nil, nil)
	descAMQPReconnects  = prometheus.NewDesc("statscache_amqp_reconnects_total", "AMQP connections made again after one was lost.", nil, nil)
	descAMQPRejected    = prometheus.NewDesc("statscache_amqp_rejected_total", "AMQP deliveries rejected, by reason.", []string{"reason"}, nil)
)

func (c amqpCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descAMQPConnected, descAMQPDeliveries, descAMQPAcked, descAMQPRedelivered, descAMQPUnacked, descAMQPReconnects, descAMQPRejected} {
		ch <- d
	}
}

func (c amqpCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.sub.Stats()
	connected := 0.0
	if st.State == amqp.StateConnected {
		connected = 1
	}
	ch <- prometheus.MustNewConstMetric(descAMQPConnected, prometheus.GaugeValue, connected, st.Queue)
	ch <- prometheus.MustNewConstMetric(descAMQPDeliveries, prometheus.CounterValue, float64(st.Deliveries))
	ch <- prometheus.MustNewConstMetric(descAMQPAcked, prometheus.CounterValue, float64(st.Acked))
	ch <- prometheus.MustNewConstMetric(descAMQPRedelivered, prometheus.CounterValue, float64(st.Redelivered))
	ch <- prometheus.MustNewConstMetric(descAMQPUnacked, prometheus.GaugeValue, float64(st.Unacked))
	ch <- prometheus.MustNewConstMetric(descAMQPReconnects, prometheus.CounterValue, float64(st.Reconnects))
	for reason, n := range st.RejectReasons {
		ch <- prometheus.MustNewConstMetric(descAMQPRejected, prometheus.CounterValue, float64(n), reason)
	}
}
