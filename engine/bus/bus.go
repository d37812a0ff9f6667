// Package bus receives live fedmsg messages over ZeroMQ and turns them into
// engine messages.
//
// fedmsg publishers (and Fedora's AMQP→ZeroMQ bridge at
// tcp://hub.fedoraproject.org:9940) bind a PUB socket and send every message
// as exactly two frames: the topic, then a JSON envelope {topic, msg,
// timestamp, msg_id, i, username, ...} whose topic equals the first frame.
// ZeroMQ PUB/SUB has no acknowledgement and no replay: whatever is published
// while a subscriber is disconnected or too slow is lost. The subscriber
// therefore only promises to deliver what reaches it, to reject bad input
// without losing the connection, and to reconnect for ever; the archive
// (package archive) fills the gaps.
package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/go-zeromq/zmq4"

	"statscache/engine"
)

// DefaultEndpoint is Fedora's public fedmsg gateway.
const DefaultEndpoint = "tcp://hub.fedoraproject.org:9940"

// Defaults for the zero values of Config.
const (
	DefaultReconnectMin     = 100 * time.Millisecond
	DefaultReconnectMax     = 10 * time.Second
	DefaultDialTimeout      = 10 * time.Second
	DefaultHandshakeTimeout = 10 * time.Second
)

// fedmsg's TCP keepalive settings (fedmsg.d/base.py): idle 60 s, then a probe
// every 5 s, 3 unanswered probes drop the connection.
var defaultKeepAlive = net.KeepAliveConfig{Enable: true, Idle: 60 * time.Second, Interval: 5 * time.Second, Count: 3}

// Config tells a Subscriber where to listen. Zero values take the defaults.
type Config struct {
	// Endpoints are the PUB sockets to connect to (tcp://host:port); one
	// SUB socket is kept per endpoint, as fedmsg does.
	Endpoints []string
	// Topics are topic prefixes to subscribe to (ZeroMQ filters by byte
	// prefix of the topic frame). Empty, or "", means every topic.
	Topics []string
	// Limits bound one envelope; larger or deeper ones are rejected. A
	// frame more than 1 MiB over Limits.MaxBytes cannot even be read
	// safely: it fails the connection, which is counted as a reject and
	// reconnected.
	Limits engine.Limits
	// ReconnectMin and ReconnectMax bound the exponential backoff (with
	// jitter) between connection attempts to one endpoint.
	ReconnectMin, ReconnectMax time.Duration
	// DialTimeout bounds the TCP connect, HandshakeTimeout the ZMTP
	// greeting and handshake that follow it.
	DialTimeout, HandshakeTimeout time.Duration
	// IdleTimeout, when positive, drops and re-dials a connection that has
	// delivered nothing for that long. fedmsg has no heartbeat, so on a
	// busy bus (Fedora's carries about a message a second) silence is the
	// only sign of a publisher that is wedged but still holds the TCP
	// connection. Zero disables it; TCP keepalive is always on.
	IdleTimeout time.Duration
	// OnReject, if set, is called (from the endpoint's goroutine) with each
	// rejected message so that the caller can store it.
	OnReject func(engine.Reject)
	Logger   *slog.Logger
}

func (c *Config) setDefaults() {
	if c.ReconnectMin <= 0 {
		c.ReconnectMin = DefaultReconnectMin
	}
	if c.ReconnectMax < c.ReconnectMin {
		c.ReconnectMax = max(DefaultReconnectMax, c.ReconnectMin)
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if c.Limits.MaxBytes <= 0 {
		c.Limits.MaxBytes = engine.DefaultLimits.MaxBytes
	}
	if c.Limits.MaxDepth <= 0 {
		c.Limits.MaxDepth = engine.DefaultLimits.MaxDepth
	}
	if len(c.Topics) == 0 {
		c.Topics = []string{""}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Reject reasons, the keys of Stats.RejectReasons.
const (
	ReasonFrames       = "frame count"    // not exactly two frames
	ReasonDecode       = "decode"         // envelope is not a valid record
	ReasonTopic        = "topic mismatch" // envelope topic differs from the topic frame
	ReasonUnsubscribed = "unsubscribed"   // topic matches no subscribed prefix
	ReasonFrameSize    = "frame size"     // a frame over the limit; the connection was dropped
)

// Stats counts what the subscriber has seen since New. Received counts every
// message read from a socket; Received = Accepted + Rejected.
type Stats struct {
	Received    int64
	Accepted    int64
	Rejected    int64
	Connects    int64 // successful connections, first ones included
	Reconnects  int64 // successful connections after a previous one on the same endpoint
	DialErrors  int64 // failed connection attempts
	Disconnects int64 // established connections that broke (or idled out)
	Connected   int64 // endpoints connected right now
	// RejectReasons counts rejects by reason (the Reason* constants).
	RejectReasons map[string]int64
}

// Subscriber keeps one SUB socket per endpoint and hands on decoded
// messages. Its counters are safe to read while it runs.
type Subscriber struct {
	cfg Config
	log *slog.Logger

	received, accepted, rejected     atomic.Int64
	connects, reconnects, dialErrors atomic.Int64
	disconnects, connected           atomic.Int64
	reasonMu                         sync.Mutex
	reasons                          map[string]int64
	running                          atomic.Bool
}

// New returns a subscriber for cfg; nothing is connected until Run.
func New(cfg Config) *Subscriber {
	cfg.setDefaults()
	return &Subscriber{cfg: cfg, log: cfg.Logger, reasons: map[string]int64{}}
}

// Stats returns a snapshot of the counters.
func (s *Subscriber) Stats() Stats {
	st := Stats{
		Received:    s.received.Load(),
		Accepted:    s.accepted.Load(),
		Rejected:    s.rejected.Load(),
		Connects:    s.connects.Load(),
		Reconnects:  s.reconnects.Load(),
		DialErrors:  s.dialErrors.Load(),
		Disconnects: s.disconnects.Load(),
		Connected:   s.connected.Load(),
	}
	s.reasonMu.Lock()
	st.RejectReasons = make(map[string]int64, len(s.reasons))
	for k, v := range s.reasons {
		st.RejectReasons[k] = v
	}
	s.reasonMu.Unlock()
	return st
}

// Run connects to every endpoint and sends each accepted message to out
// until ctx is cancelled; then it closes the sockets and returns nil. It
// blocks on out when the consumer is slow, which pushes back into ZeroMQ
// (whose publisher then drops messages past its high-water mark, as fedmsg
// documents). It returns an error at once for a bad configuration. Run may
// be called only once.
func (s *Subscriber) Run(ctx context.Context, out chan<- *engine.Message) error {
	return s.RunFunc(ctx, func(ctx context.Context, m *engine.Message) error {
		select {
		case out <- m:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
}

// RunFunc is Run with a callback instead of a channel. fn is called from
// one goroutine per endpoint, so it must be safe for concurrent use; an
// error from fn other than ctx's stops the subscriber and is returned.
func (s *Subscriber) RunFunc(ctx context.Context, fn func(context.Context, *engine.Message) error) error {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("bus: Run called twice")
	}
	if len(s.cfg.Endpoints) == 0 {
		return errors.New("bus: no endpoints configured")
	}
	if err := registerTransport(); err != nil {
		return fmt.Errorf("bus: register transport: %w", err)
	}
	eps := make([]string, len(s.cfg.Endpoints))
	for i, ep := range s.cfg.Endpoints {
		g, err := guardedEndpoint(ep)
		if err != nil {
			return fmt.Errorf("bus: %w", err)
		}
		eps[i] = g
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	for i := range eps {
		wg.Go(func() {
			if err := s.runEndpoint(ctx, s.cfg.Endpoints[i], eps[i], fn); err != nil {
				cancel(err)
			}
		})
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}

// runEndpoint keeps one endpoint connected until ctx ends. It returns only
// an error from fn.
func (s *Subscriber) runEndpoint(ctx context.Context, name, ep string, fn func(context.Context, *engine.Message) error) error {
	log := s.log.With("endpoint", name)
	backoff := s.cfg.ReconnectMin
	connectedBefore := false
	dec := engine.Decoder{Limits: s.cfg.Limits}
	for ctx.Err() == nil {
		sctx, closeSock := context.WithCancel(withDialOptions(ctx, dialOptions{
			frameLimit:       uint64(s.cfg.Limits.MaxBytes) + 1<<20,
			handshakeTimeout: s.cfg.HandshakeTimeout,
			idleTimeout:      s.cfg.IdleTimeout,
			keepAlive:        defaultKeepAlive,
			dialTimeout:      s.cfg.DialTimeout,
		}))
		sock := zmq4.NewSub(sctx,
			zmq4.WithDialerMaxRetries(0), // we retry, with backoff
			zmq4.WithDialerTimeout(s.cfg.DialTimeout),
			zmq4.WithLogger(slog.NewLogLogger(log.Handler(), slog.LevelDebug)),
		)
		var err error
		for _, t := range s.cfg.Topics {
			if err = sock.SetOption(zmq4.OptionSubscribe, t); err != nil {
				break
			}
		}
		if err == nil {
			err = sock.Dial(ep)
		}
		if err != nil {
			sock.Close()
			closeSock()
			if ctx.Err() != nil {
				break
			}
			s.dialErrors.Add(1)
			log.Warn("bus: cannot connect, will retry", "err", err, "retry_in", backoff)
			if !engine.Sleep(ctx, engine.Jitter(backoff)) {
				break
			}
			backoff = min(backoff*2, s.cfg.ReconnectMax)
			continue
		}
		s.connects.Add(1)
		if connectedBefore {
			s.reconnects.Add(1)
		}
		connectedBefore = true
		s.connected.Add(1)
		log.Info("bus: connected", "topics", s.cfg.Topics)
		first := true
		var rerr, ferr error
		for {
			var msg zmq4.Msg
			msg, rerr = sock.Recv()
			if rerr != nil {
				break
			}
			if msg.Type == zmq4.CmdMsg {
				continue // a ZMTP command (e.g. PING) surfaced by zmq4, not a message
			}
			if first {
				// A connection that works resets the backoff.
				backoff, first = s.cfg.ReconnectMin, false
			}
			if m := s.accept(log, &dec, name, msg.Frames); m != nil {
				if ferr = fn(ctx, m); ferr != nil {
					break
				}
			}
		}
		s.connected.Add(-1)
		sock.Close()
		closeSock()
		if ctx.Err() != nil {
			break
		}
		if ferr != nil {
			return fmt.Errorf("bus: endpoint %s: deliver: %w", name, ferr)
		}
		s.disconnects.Add(1)
		var big *FrameTooLargeError
		if errors.As(rerr, &big) {
			s.received.Add(1)
			s.rejectf(log, name, ReasonFrameSize, nil, "%v; reconnecting", big)
		}
		log.Warn("bus: connection lost, reconnecting", "err", rerr, "retry_in", backoff)
		if !engine.Sleep(ctx, engine.Jitter(backoff)) {
			break
		}
		backoff = min(backoff*2, s.cfg.ReconnectMax)
	}
	return nil
}

// accept checks one ZeroMQ message and returns its decoded envelope, or nil
// after counting and logging why it was rejected.
func (s *Subscriber) accept(log *slog.Logger, dec *engine.Decoder, ep string, frames [][]byte) *engine.Message {
	s.received.Add(1)
	if len(frames) != 2 {
		var rec []byte
		if len(frames) > 0 {
			rec = frames[len(frames)-1]
		}
		s.rejectf(log, ep, ReasonFrames, rec, "%d frames, want 2 (topic, envelope)", len(frames))
		return nil
	}
	topic, env := frames[0], frames[1]
	if !s.subscribed(topic) {
		s.rejectf(log, ep, ReasonUnsubscribed, env, "topic %q matches no subscribed prefix", clip(topic))
		return nil
	}
	m, err := dec.Decode(env)
	if err != nil {
		s.rejectf(log, ep, ReasonDecode, env, "topic %q: %v", clip(topic), err)
		return nil
	}
	if m.Topic != string(topic) {
		s.rejectf(log, ep, ReasonTopic, env, "envelope %s has topic %q but the topic frame is %q", m.ID, clip([]byte(m.Topic)), clip(topic))
		return nil
	}
	s.accepted.Add(1)
	return m
}

func (s *Subscriber) subscribed(topic []byte) bool {
	for _, p := range s.cfg.Topics {
		if strings.HasPrefix(string(topic), p) {
			return true
		}
	}
	return false
}

func (s *Subscriber) rejectf(log *slog.Logger, ep, reason string, rec []byte, format string, args ...any) {
	s.rejected.Add(1)
	s.reasonMu.Lock()
	s.reasons[reason]++
	s.reasonMu.Unlock()
	detail := fmt.Sprintf(format, args...)
	log.Warn("bus: message rejected", "reason", reason, "detail", detail)
	if s.cfg.OnReject != nil {
		if len(rec) > 64<<10 {
			rec = rec[:64<<10] // enough to inspect; the limit already rejected it
		}
		s.cfg.OnReject(engine.Reject{
			Source: "bus " + ep,
			Reason: reason + ": " + detail,
			Record: append([]byte(nil), rec...),
		})
	}
}

// clip shortens a topic frame for a log line and makes it printable.
func clip(b []byte) string {
	if len(b) > 200 {
		b = b[:200]
	}
	if !utf8.Valid(b) {
		return fmt.Sprintf("%x", b)
	}
	return string(b)
}
