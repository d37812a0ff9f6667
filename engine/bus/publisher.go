package bus

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/go-zeromq/zmq4"
)

// Publisher is a fedmsg-style publisher: a bound PUB socket that sends
// (topic, envelope) pairs. statscache itself never publishes; the
// publisher exists so that tests and the demo can run a local bus.
type Publisher struct {
	sock     zmq4.Socket
	endpoint string
}

// NewPublisher binds a PUB socket to endpoint, e.g. "tcp://127.0.0.1:0"
// (port 0 picks a free port; Endpoint tells which). The socket lives until
// Close or until ctx is cancelled.
func NewPublisher(ctx context.Context, endpoint string) (*Publisher, error) {
	sock := zmq4.NewPub(ctx)
	if err := sock.Listen(endpoint); err != nil {
		sock.Close()
		return nil, fmt.Errorf("bus: publisher: %w", err)
	}
	ep := endpoint
	if a := sock.Addr(); a != nil && strings.HasPrefix(endpoint, "tcp://") {
		ep = "tcp://" + a.String()
	}
	return &Publisher{sock: sock, endpoint: ep}, nil
}

// Endpoint is the address subscribers should connect to.
func (p *Publisher) Endpoint() string { return p.endpoint }

// Publish sends one fedmsg message: the topic frame and the JSON envelope.
// Like any ZeroMQ PUB socket it drops the message for subscribers that are
// not connected yet (see WaitSubscribed).
func (p *Publisher) Publish(topic string, envelope []byte) error {
	return p.PublishFrames([]byte(topic), envelope)
}

// PublishFrames sends an arbitrary multipart message; tests use it to send
// malformed messages. The first frame is what subscriptions filter on.
func (p *Publisher) PublishFrames(frames ...[]byte) error {
	if len(frames) == 0 {
		return fmt.Errorf("bus: publish: no frames")
	}
	msg := zmq4.NewMsgFrom(frames...)
	var err error
	if len(frames) == 1 {
		err = p.sock.Send(msg)
	} else {
		err = p.sock.SendMulti(msg)
	}
	if err != nil {
		return fmt.Errorf("bus: publish %q: %w", clip(frames[0]), err)
	}
	return nil
}

// WaitSubscribed blocks until some subscriber connection has subscribed to
// a prefix of topic, or ctx ends. It is the cure for
// PUB/SUB's slow-joiner problem in tests and in the demo: messages sent
// before the subscription has arrived are silently dropped.
func (p *Publisher) WaitSubscribed(ctx context.Context, topic string) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		if p.subscribed(topic) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("bus: waiting for a subscriber of %q: %w", topic, ctx.Err())
		case <-t.C:
		}
	}
}

// subscribed reports whether a connection's subscriptions match topic
// (zmq4 exposes only the union over connections).
func (p *Publisher) subscribed(topic string) bool {
	ts, ok := p.sock.(zmq4.Topics)
	if !ok {
		return false
	}
	for _, prefix := range ts.Topics() {
		if strings.HasPrefix(topic, prefix) {
			return true
		}
	}
	return false
}

// Close closes the socket.
func (p *Publisher) Close() error {
	if err := p.sock.Close(); err != nil {
		return fmt.Errorf("bus: close publisher: %w", err)
	}
	return nil
}
