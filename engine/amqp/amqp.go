// Package amqp receives live fedora-messaging messages from a RabbitMQ
// broker (AMQP 0-9-1) and turns them into engine messages.
//
// Since fedmsg was retired (February 2025) every Fedora message travels
// over fedora-messaging: the publisher sends the JSON body to the
// amq.topic exchange with the topic as routing key, the message_id
// property as id and the time in the sent-at header. Unlike ZeroMQ, AMQP
// keeps what a subscriber has not acknowledged. The subscriber therefore
// consumes from a durable queue of its own, named once (a UUID stored in
// the database: Fedora's public broker lets its "fedora" user create only
// UUID-named queues) and reused on every start, so that what is published
// while the daemon is down waits for it; and it acknowledges a delivery
// only once the daemon says the transaction that journaled it has
// committed. A crash before the ack means a redelivery, which the
// journal's dedupe turns into exactly once. What the broker drops (a
// queue unused for an hour, or over its length cap, on Fedora's broker)
// the archive fills in.
package amqp

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	rmq "github.com/rabbitmq/amqp091-go"

	"statscache/engine"
)

// Fedora's public broker and the files the fedora-messaging package
// installs for it (its configs/cacert.pem, fedora-cert.pem and
// fedora-key.pem). The certificate and key are public: the broker gives
// every holder read-only access to a federated copy of Fedora's bus.
const (
	FedoraURL  = "amqps://fedora@rabbitmq.fedoraproject.org/%2Fpublic_pubsub"
	FedoraCA   = "/etc/fedora-messaging/cacert.pem"
	FedoraCert = "/etc/fedora-messaging/fedora-cert.pem"
	FedoraKey  = "/etc/fedora-messaging/fedora-key.pem"
)

// Exchange is where fedora-messaging publishes: a durable topic exchange.
const Exchange = "amq.topic"

// QueueSetting is the settings key under which the queue name is kept.
const QueueSetting = "amqp.queue"

// Defaults for the zero values of Config.
const (
	DefaultPrefetch     = 500
	DefaultReconnectMin = 200 * time.Millisecond
	DefaultReconnectMax = 30 * time.Second
	DefaultDialTimeout  = 15 * time.Second
	DefaultHeartbeat    = 10 * time.Second
	DefaultDrainTimeout = 10 * time.Second
	DefaultAppName      = "statscache"
)

// Config tells a Subscriber where to consume. Zero values take the
// defaults.
type Config struct {
	// URL is the broker: amqp:// or amqps://user:password@host:port/vhost,
	// as RabbitMQ writes it (the default vhost "/" is %2F).
	URL string
	// Queue is the name of the durable queue to consume from; see
	// StoredQueue for the usual way to name it.
	Queue string
	// Topics are topic prefixes, each bound as prefix + "#" (a prefix
	// ending in a word without its dot gets ".#"). Empty means every topic.
	Topics []string
	// Prefetch bounds the deliveries in flight: received and not yet
	// acknowledged.
	Prefetch int
	// CAFile, CertFile and KeyFile configure TLS for amqps://. With a
	// client certificate and no password in the URL, the subscriber
	// authenticates with EXTERNAL (the certificate), as Fedora's broker
	// wants.
	CAFile, CertFile, KeyFile string
	// AppName is sent in the connection's client properties ("app"), which
	// Fedora's broker asks clients to set; ConnectionName names the
	// connection in the broker's listings.
	AppName, ConnectionName string
	// Limits bound one message; larger or deeper ones are rejected.
	Limits engine.Limits
	// ReconnectMin and ReconnectMax bound the exponential backoff (with
	// jitter) between connection attempts.
	ReconnectMin, ReconnectMax time.Duration
	// DialTimeout bounds the TCP, TLS and AMQP handshakes; Heartbeat is
	// the AMQP heartbeat interval.
	DialTimeout, Heartbeat time.Duration
	// DrainTimeout is how long a stopping subscriber waits for the
	// journaled calls of what it has handed over before it closes the
	// channel (whatever is not acknowledged then is redelivered).
	DrainTimeout time.Duration
	// Settings, when set, keeps the queue's bindings between runs, so
	// that a binding no longer wanted (a --topic removed) is removed.
	Settings engine.Settings
	// OnReject, if set, is called with each rejected delivery before it
	// is acknowledged, so that the caller can store it.
	OnReject func(engine.Reject)
	Logger   *slog.Logger
}

func (c *Config) setDefaults() {
	if c.Prefetch <= 0 {
		c.Prefetch = DefaultPrefetch
	}
	if c.ReconnectMin <= 0 {
		c.ReconnectMin = DefaultReconnectMin
	}
	if c.ReconnectMax < c.ReconnectMin {
		c.ReconnectMax = max(DefaultReconnectMax, c.ReconnectMin)
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.Heartbeat <= 0 {
		c.Heartbeat = DefaultHeartbeat
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = DefaultDrainTimeout
	}
	if c.AppName == "" {
		c.AppName = DefaultAppName
	}
	if c.Limits.MaxBytes <= 0 {
		c.Limits.MaxBytes = engine.DefaultLimits.MaxBytes
	}
	if c.Limits.MaxDepth <= 0 {
		c.Limits.MaxDepth = engine.DefaultLimits.MaxDepth
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate checks the URL and the TLS files without connecting.
func (c *Config) Validate() error {
	u, err := rmq.ParseURI(c.URL)
	if err != nil {
		return fmt.Errorf("amqp: URL %s: %w", Redact(c.URL), err)
	}
	if c.Queue == "" {
		return errors.New("amqp: no queue name")
	}
	tlsFiles := c.CAFile != "" || c.CertFile != "" || c.KeyFile != ""
	if tlsFiles && u.Scheme != "amqps" {
		return fmt.Errorf("amqp: --amqp-ca, --amqp-cert and --amqp-key need an amqps:// URL, not %s", Redact(c.URL))
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		return errors.New("amqp: a client certificate needs both --amqp-cert and --amqp-key")
	}
	if u.Scheme == "amqps" {
		if _, err := c.tlsConfig(); err != nil {
			return err
		}
	}
	return nil
}

// Redact returns the URL without its password, for logs and /status.
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}

func (c *Config) tlsConfig() (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("amqp: CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("amqp: CA file %s holds no PEM certificate", c.CAFile)
		}
		tc.RootCAs = pool
	}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("amqp: client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// external reports whether the connection authenticates with its client
// certificate: there is one and the URL gives no password.
func (c *Config) external() bool {
	if c.CertFile == "" {
		return false
	}
	u, err := url.Parse(c.URL)
	if err != nil || u.User == nil {
		return true
	}
	p, ok := u.User.Password()
	return !ok || p == ""
}

// BindingKeys returns the routing keys the queue is bound with for the
// topic prefixes: "org.fedoraproject.prod." becomes
// "org.fedoraproject.prod.#", a prefix without its final dot gets ".#",
// and no prefix binds "#" (everything). AMQP matches whole words, so a
// prefix that ends inside a word ("org.fedora") matches nothing more than
// that word.
func BindingKeys(topics []string) []string {
	var keys []string
	for _, t := range topics {
		switch {
		case t == "":
			keys = append(keys, "#")
		case strings.HasSuffix(t, "."):
			keys = append(keys, t+"#")
		default:
			keys = append(keys, t+".#")
		}
	}
	if len(keys) == 0 {
		keys = []string{"#"}
	}
	slices.Sort(keys)
	return slices.Compact(keys)
}

// NewQueueName returns a fresh queue name: a random UUID4, the only kind of
// name Fedora's public broker lets its users create.
func NewQueueName() string {
	var b [16]byte
	rand.Read(b[:]) // never fails (crypto/rand)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// StoredQueue returns the queue name kept in the settings, generating and
// storing one the first time. The same name on every start is what lets
// messages published while the daemon is down wait for it.
func StoredQueue(ctx context.Context, s engine.Settings) (string, error) {
	name, err := s.InitSetting(ctx, QueueSetting, NewQueueName())
	if err != nil {
		return "", fmt.Errorf("amqp: queue name: %w", err)
	}
	return name, nil
}

// Connection states in Stats.State.
const (
	StateConnecting   = "connecting"
	StateConnected    = "connected"
	StateDisconnected = "disconnected"
	StateStopped      = "stopped"
)

// Reject reasons, the keys of Stats.RejectReasons: the engine's Reject*
// kinds of a bad delivery, and these.
const (
	// ReasonUnsubscribed: the routing key matches none of the wanted
	// binding keys (a binding left from an earlier run).
	ReasonUnsubscribed = "unsubscribed"
)

// Stats is what the subscriber has done since New, for /status and
// /metrics. Deliveries counts every delivery; Acked those acknowledged
// (journaled, duplicates and rejects included); Redelivered those the
// broker marked as delivered before (to this or an earlier run).
type Stats struct {
	State         string           `json:"state"`
	URL           string           `json:"url"`
	Queue         string           `json:"queue"`
	Bindings      []string         `json:"bindings"`
	Connects      int64            `json:"connects"`
	Reconnects    int64            `json:"reconnects"`
	ConnectErrors int64            `json:"connect_errors"`
	Disconnects   int64            `json:"disconnects"`
	LastError     string           `json:"last_error,omitempty"`
	Deliveries    int64            `json:"deliveries"`
	Acked         int64            `json:"acked"`
	Redelivered   int64            `json:"redelivered"`
	Rejected      int64            `json:"rejected"`
	Unacked       int64            `json:"unacked"`
	CatchingUp    bool             `json:"catching_up"`
	RejectReasons map[string]int64 `json:"reject_reasons"`
}

// Subscriber consumes one queue and hands on decoded messages. Its
// counters are safe to read while it runs.
type Subscriber struct {
	cfg      Config
	log      *slog.Logger
	bindings []string

	state                                      atomic.Value // string
	connects, reconnects, connErrs, disconnect atomic.Int64
	deliveries, acked, redelivered, rejected   atomic.Int64
	unacked                                    atomic.Int64
	catchingUp                                 atomic.Bool
	mu                                         sync.Mutex
	reasons                                    map[string]int64
	lastErr                                    string
	running                                    atomic.Bool
}

// New returns a subscriber for cfg; nothing is connected until RunFunc.
func New(cfg Config) *Subscriber {
	cfg.setDefaults()
	s := &Subscriber{cfg: cfg, log: cfg.Logger, reasons: map[string]int64{}, bindings: BindingKeys(cfg.Topics)}
	s.state.Store(StateDisconnected)
	s.catchingUp.Store(true)
	return s
}

// CatchingUp reports whether messages that were in the queue when the
// subscriber last (re)connected may still be missing from the journal:
// from New until the backlog found at the first connection is journaled,
// and again from a lost connection until the backlog found at the next one
// is. The backlog includes what the broker requeued (delivered but not
// acknowledged), which can be older than messages already journaled; a
// daemon holds its watermark meanwhile, so that no model passes them.
func (s *Subscriber) CatchingUp() bool { return s.catchingUp.Load() }

// Stats returns a snapshot of the counters.
func (s *Subscriber) Stats() Stats {
	st := Stats{
		State: s.state.Load().(string), URL: Redact(s.cfg.URL), Queue: s.cfg.Queue,
		Bindings: slices.Clone(s.bindings),
		Connects: s.connects.Load(), Reconnects: s.reconnects.Load(),
		ConnectErrors: s.connErrs.Load(), Disconnects: s.disconnect.Load(),
		Deliveries: s.deliveries.Load(), Acked: s.acked.Load(), Redelivered: s.redelivered.Load(),
		Rejected: s.rejected.Load(), Unacked: s.unacked.Load(), CatchingUp: s.catchingUp.Load(),
	}
	s.mu.Lock()
	st.LastError = s.lastErr
	st.RejectReasons = make(map[string]int64, len(s.reasons))
	for k, v := range s.reasons {
		st.RejectReasons[k] = v
	}
	s.mu.Unlock()
	return st
}

// errDeliver wraps an error of the deliver callback: it stops the
// subscriber instead of reconnecting.
type errDeliver struct{ err error }

func (e errDeliver) Error() string { return e.err.Error() }
func (e errDeliver) Unwrap() error { return e.err }

// RunFunc consumes until ctx ends, calling deliver for each accepted
// message from one goroutine, in delivery order. deliver hands the
// message on (it may block: the prefetch bounds what waits meanwhile);
// journaled must be called once the message is durably journaled (or
// found to be a duplicate), from any goroutine and in any order; only then
// is the delivery acknowledged. A lost connection or channel is
// reconnected with backoff, and consumption resumes from the same queue;
// deliveries that were not acknowledged come again. An error from
// deliver other than ctx's stops the subscriber and is returned. RunFunc
// may be called only once.
func (s *Subscriber) RunFunc(ctx context.Context, deliver func(ctx context.Context, m *engine.Message, journaled func()) error) error {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("amqp: RunFunc called twice")
	}
	if err := s.cfg.Validate(); err != nil {
		return err
	}
	defer s.state.Store(StateStopped)
	backoff := s.cfg.ReconnectMin
	connectedBefore := false
	for ctx.Err() == nil {
		consumed, err := s.session(ctx, deliver, &connectedBefore)
		var de errDeliver
		if errors.As(err, &de) {
			return fmt.Errorf("amqp: deliver: %w", de.err)
		}
		if ctx.Err() != nil {
			break
		}
		if consumed {
			backoff = s.cfg.ReconnectMin // a session that worked resets the backoff
		}
		s.setErr(err)
		s.state.Store(StateDisconnected)
		s.log.Warn("amqp: connection lost, reconnecting", "err", err, "retry_in", backoff)
		if !engine.Sleep(ctx, engine.Jitter(backoff)) {
			break
		}
		backoff = min(backoff*2, s.cfg.ReconnectMax)
	}
	return nil
}

func (s *Subscriber) setErr(err error) {
	if err == nil {
		return
	}
	s.mu.Lock()
	s.lastErr = err.Error()
	s.mu.Unlock()
}

func (s *Subscriber) dial(ctx context.Context) (*rmq.Connection, error) {
	props := rmq.NewConnectionProperties()
	props["app"] = s.cfg.AppName
	props["information"] = "statscache: statistics of the Fedora message bus"
	if s.cfg.ConnectionName != "" {
		props.SetClientConnectionName(s.cfg.ConnectionName)
	}
	cfg := rmq.Config{
		Heartbeat:  s.cfg.Heartbeat,
		Properties: props,
		Dial: func(network, addr string) (net.Conn, error) {
			d := net.Dialer{Timeout: s.cfg.DialTimeout, KeepAlive: 30 * time.Second}
			conn, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			// The handshakes must not hang on a dead server; amqp091
			// clears the deadline once the connection is open.
			if err := conn.SetDeadline(time.Now().Add(s.cfg.DialTimeout)); err != nil {
				conn.Close()
				return nil, err
			}
			return conn, nil
		},
	}
	if strings.HasPrefix(s.cfg.URL, "amqps:") {
		tc, err := s.cfg.tlsConfig()
		if err != nil {
			return nil, err
		}
		cfg.TLSClientConfig = tc
	}
	if s.cfg.external() {
		cfg.SASL = []rmq.Authentication{&rmq.ExternalAuth{}}
	}
	return rmq.DialConfig(s.cfg.URL, cfg)
}

// session runs one connection: declare, bind, consume until the
// connection or channel is lost (an error) or ctx ends (nil, after
// draining). consumed reports whether consumption started.
func (s *Subscriber) session(ctx context.Context, deliver func(context.Context, *engine.Message, func()) error, connectedBefore *bool) (consumed bool, err error) {
	s.state.Store(StateConnecting)
	conn, err := s.dial(ctx)
	if err != nil {
		s.connErrs.Add(1)
		return false, fmt.Errorf("connect to %s: %w", Redact(s.cfg.URL), err)
	}
	defer conn.Close()
	// Close notifications must be buffered: amqp091 blocks on them.
	connClosed := conn.NotifyClose(make(chan *rmq.Error, 1))
	ch, err := conn.Channel()
	if err != nil {
		s.connErrs.Add(1)
		return false, fmt.Errorf("open channel: %w", err)
	}
	chClosed := ch.NotifyClose(make(chan *rmq.Error, 1))
	backlog, err := s.declare(ctx, ch)
	if err != nil {
		s.connErrs.Add(1)
		return false, err
	}
	tag := fmt.Sprintf("%s-%d-%s", s.cfg.AppName, os.Getpid(), NewQueueName()[:8])
	deliveries, err := ch.Consume(s.cfg.Queue, tag, false, false, false, false, nil)
	if err != nil {
		s.connErrs.Add(1)
		return false, fmt.Errorf("consume from %s: %w", s.cfg.Queue, err)
	}
	s.connects.Add(1)
	if *connectedBefore {
		s.reconnects.Add(1)
	}
	*connectedBefore = true
	s.state.Store(StateConnected)
	s.log.Info("amqp: consuming", "url", Redact(s.cfg.URL), "queue", s.cfg.Queue, "bindings", s.bindings, "prefetch", s.cfg.Prefetch, "backlog", backlog)

	ack := newAcker(s, ch, backlog)
	defer ack.close()
	// Whatever this session leaves unacknowledged comes back first in the
	// next one.
	defer s.catchingUp.Store(true)
	dec := engine.Decoder{Limits: s.cfg.Limits}
	for {
		select {
		case d, ok := <-deliveries:
			if !ok {
				s.disconnect.Add(1)
				return true, closeReason(connClosed, chClosed)
			}
			if err := s.handle(ctx, &dec, ack, d, deliver); err != nil {
				if ctx.Err() != nil {
					s.drain(ack)
					return true, nil
				}
				return true, errDeliver{err}
			}
		case <-ctx.Done():
			s.drain(ack)
			return true, nil
		}
	}
}

// declare makes the queue (durable, so that it outlives the connection
// and the broker's restarts), binds it, and removes bindings of an
// earlier run that are no longer wanted. It returns the number of
// messages waiting in the queue: the broker delivers those first.
func (s *Subscriber) declare(ctx context.Context, ch *rmq.Channel) (int, error) {
	if err := ch.Qos(s.cfg.Prefetch, 0, false); err != nil {
		return 0, fmt.Errorf("set prefetch: %w", err)
	}
	q, err := ch.QueueDeclare(s.cfg.Queue, true, false, false, false, nil)
	if err != nil {
		return 0, fmt.Errorf("declare queue %s: %w", s.cfg.Queue, err)
	}
	for _, k := range s.bindings {
		if err := ch.QueueBind(s.cfg.Queue, k, Exchange, false, nil); err != nil {
			return 0, fmt.Errorf("bind queue %s to %s with %q: %w", s.cfg.Queue, Exchange, k, err)
		}
	}
	if s.cfg.Settings == nil {
		return q.Messages, nil
	}
	key := "amqp.bindings." + s.cfg.Queue
	if old, ok, err := s.cfg.Settings.Setting(ctx, key); err == nil && ok {
		var prev []string
		json.Unmarshal([]byte(old), &prev)
		for _, k := range prev {
			if !slices.Contains(s.bindings, k) {
				if err := ch.QueueUnbind(s.cfg.Queue, k, Exchange, nil); err != nil {
					return 0, fmt.Errorf("unbind %q from queue %s: %w", k, s.cfg.Queue, err)
				}
				s.log.Info("amqp: removed a binding no longer wanted", "queue", s.cfg.Queue, "key", k)
			}
		}
	}
	b, _ := json.Marshal(s.bindings)
	if err := s.cfg.Settings.PutSetting(ctx, key, string(b)); err != nil {
		s.log.Warn("amqp: cannot remember the bindings", "err", err)
	}
	return q.Messages, nil
}

// handle decodes one delivery and hands it on, or rejects and
// acknowledges it. It returns only deliver's error.
func (s *Subscriber) handle(ctx context.Context, dec *engine.Decoder, ack *acker, d rmq.Delivery, deliver func(context.Context, *engine.Message, func()) error) error {
	s.deliveries.Add(1)
	if d.Redelivered {
		s.redelivered.Add(1)
	}
	ack.delivered(d.DeliveryTag)
	m, err := dec.DecodeDelivery(engine.Delivery{
		MessageID: d.MessageId, RoutingKey: d.RoutingKey, Headers: jsonTable(d.Headers), Body: d.Body,
	})
	if err != nil {
		kind := engine.RejectInvalid
		var de *engine.DeliveryError
		if errors.As(err, &de) {
			kind = de.Kind
		}
		s.reject(kind, d, err.Error())
		ack.done(d.DeliveryTag, false)
		return nil
	}
	if !s.wanted(d.RoutingKey) {
		s.reject(ReasonUnsubscribed, d, fmt.Sprintf("routing key %q matches none of %q", clip(d.RoutingKey), s.bindings))
		ack.done(d.DeliveryTag, false)
		return nil
	}
	if ctx.Err() != nil {
		// Stopping: a message handed over now might miss the live loop's
		// last journal; the broker delivers it again next time.
		return ctx.Err()
	}
	tag := d.DeliveryTag
	ack.handed(1)
	if err := deliver(ctx, m, func() { ack.done(tag, true) }); err != nil {
		ack.handed(-1)
		return err
	}
	return nil
}

func (s *Subscriber) wanted(topic string) bool {
	for _, k := range s.bindings {
		if topicMatch(k, topic) {
			return true
		}
	}
	return false
}

func (s *Subscriber) reject(reason string, d rmq.Delivery, detail string) {
	s.rejected.Add(1)
	s.mu.Lock()
	s.reasons[reason]++
	s.mu.Unlock()
	s.log.Warn("amqp: delivery rejected", "reason", reason, "detail", detail, "routing_key", clip(d.RoutingKey), "message_id", clip(d.MessageId))
	if s.cfg.OnReject != nil {
		s.cfg.OnReject(engine.Reject{
			Source: "amqp " + s.cfg.Queue,
			Reason: reason + ": " + detail,
			Record: rejectRecord(d),
		})
	}
}

// rejectRecord is what is kept of a rejected delivery: its id, routing
// key, headers and body (as text: it may not be JSON; cut at 64 KiB, enough
// to inspect), as one JSON object. Two deliveries differ in it even when
// their bodies are the same; a delivery that comes again is the same.
func rejectRecord(d rmq.Delivery) []byte {
	body := d.Body
	if len(body) > 64<<10 {
		body = body[:64<<10]
	}
	b, err := json.Marshal(struct {
		ID         string         `json:"message_id"`
		RoutingKey string         `json:"routing_key"`
		Headers    map[string]any `json:"headers"`
		Body       string         `json:"body"`
	}{d.MessageId, d.RoutingKey, jsonTable(d.Headers), string(body)})
	if err != nil { // a header json cannot write (NaN): keep the rest
		b, _ = json.Marshal(struct {
			ID         string `json:"message_id"`
			RoutingKey string `json:"routing_key"`
			Body       string `json:"body"`
		}{d.MessageId, d.RoutingKey, string(body)})
	}
	return b
}

// drain waits (bounded) until everything handed over is journaled and
// acknowledged, so that a clean stop leaves nothing to redeliver.
func (s *Subscriber) drain(ack *acker) {
	deadline := time.Now().Add(s.cfg.DrainTimeout)
	for ack.outstanding() > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	ack.flush()
	if n := ack.outstanding(); n > 0 {
		s.log.Warn("amqp: stopping with deliveries not journaled yet: the broker will deliver them again", "count", n)
	}
}

// closeReason waits briefly for the broker's reason of a closed delivery
// channel.
func closeReason(conn, ch chan *rmq.Error) error {
	t := time.NewTimer(time.Second)
	defer t.Stop()
	select {
	case e, ok := <-ch:
		if ok && e != nil {
			return fmt.Errorf("channel closed: %w", e)
		}
	case e, ok := <-conn:
		if ok && e != nil {
			return fmt.Errorf("connection closed: %w", e)
		}
	case <-t.C:
	}
	return errors.New("delivery channel closed")
}

// topicMatch reports whether an AMQP topic binding key (words separated
// by dots, "*" one word, "#" zero or more words) matches a routing key.
func topicMatch(key, topic string) bool {
	return matchWords(strings.Split(key, "."), strings.Split(topic, "."))
}

func matchWords(k, t []string) bool {
	for len(k) > 0 {
		if k[0] == "#" {
			rest := k[1:]
			for i := 0; i <= len(t); i++ {
				if matchWords(rest, t[i:]) {
					return true
				}
			}
			return false
		}
		if len(t) == 0 || (k[0] != "*" && k[0] != t[0]) {
			return false
		}
		k, t = k[1:], t[1:]
	}
	return len(t) == 0
}

// jsonTable converts AMQP header values to JSON values.
func jsonTable(t rmq.Table) map[string]any {
	if t == nil {
		return nil
	}
	out := make(map[string]any, len(t))
	for k, v := range t {
		out[k] = jsonValue(v)
	}
	return out
}

func jsonValue(v any) any {
	switch x := v.(type) {
	case nil, bool, string, float64, int64:
		return x
	case int8:
		return int64(x)
	case uint8:
		return int64(x)
	case int16:
		return int64(x)
	case uint16:
		return int64(x)
	case int32:
		return int64(x)
	case uint32:
		return int64(x)
	case int:
		return int64(x)
	case float32:
		return float64(x)
	case rmq.Decimal:
		f := float64(x.Value)
		for i := uint8(0); i < x.Scale; i++ {
			f /= 10
		}
		return f
	case time.Time:
		return x.UTC().Format(time.RFC3339)
	case []byte:
		return string(x)
	case rmq.Table:
		return jsonTable(x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = jsonValue(e)
		}
		return out
	}
	return fmt.Sprint(v)
}

// clip shortens a string from the wire for a log line.
func clip(s string) string {
	if len(s) > 200 {
		s = s[:200]
	}
	if !utf8.ValidString(s) {
		return fmt.Sprintf("%x", s)
	}
	return s
}
