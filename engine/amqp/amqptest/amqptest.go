// Package amqptest helps tests use the real RabbitMQ broker on this
// machine (127.0.0.1:5672, guest/guest): it checks the broker is there,
// publishes messages shaped as fedora-messaging publishes them, closes a
// client's connection from the broker side, and deletes test queues.
// It never contacts any other host.
package amqptest

import (
	"context"
	crand "crypto/rand"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	rmq "github.com/rabbitmq/amqp091-go"
)

// URL is the local broker, with RabbitMQ's default account.
const URL = "amqp://guest:guest@127.0.0.1:5672/"

// Need fails the test (or skips it with STATSCACHE_SKIP_AMQP=1) when the
// local broker does not answer, and returns its URL.
func Need(t testing.TB) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", "127.0.0.1:5672", 2*time.Second)
	if err != nil {
		if os.Getenv("STATSCACHE_SKIP_AMQP") == "1" {
			t.Skip("RabbitMQ not reachable on 127.0.0.1:5672 and STATSCACHE_SKIP_AMQP=1")
		}
		t.Fatalf("this test needs RabbitMQ on 127.0.0.1:5672 with guest/guest (start it with `rabbitmq-server -detached`, "+
			"or apt-get install rabbitmq-server; STATSCACHE_SKIP_AMQP=1 skips it): %v", err)
	}
	c.Close()
	return URL
}

// Message is a fedora-messaging message to publish.
type Message struct {
	ID      string // message_id property
	Topic   string // routing key
	SentAt  time.Time
	Users   []string // fedora_messaging_user_<name> headers
	Pkgs    []string // fedora_messaging_rpm_<name> headers
	Body    any      // marshalled to JSON unless it is []byte
	Headers rmq.Table
	// NoSentAt leaves the sent-at header out.
	NoSentAt bool
}

// Headers returns the headers fedora-messaging 3.x sets for m.
func (m Message) headers() rmq.Table {
	h := rmq.Table{
		"fedora_messaging_schema":         "base.message",
		"fedora_messaging_schema_package": "fedora-messaging",
		"fedora_messaging_severity":       int32(20),
		"priority":                        int32(0),
	}
	if !m.NoSentAt {
		h["sent-at"] = m.SentAt.UTC().Format("2006-01-02T15:04:05+00:00")
	}
	for _, u := range m.Users {
		h["fedora_messaging_user_"+u] = true
	}
	for _, p := range m.Pkgs {
		h["fedora_messaging_rpm_"+p] = true
	}
	for k, v := range m.Headers {
		h[k] = v
	}
	return h
}

// HeadersJSON returns the headers as JSON values, as datanommer stores them.
func (m Message) HeadersJSON() map[string]any {
	b, _ := json.Marshal(m.headers())
	var out map[string]any
	json.Unmarshal(b, &out)
	return out
}

// BodyJSON returns the body bytes as published.
func (m Message) BodyJSON() []byte {
	if b, ok := m.Body.([]byte); ok {
		return b
	}
	b, err := json.Marshal(m.Body)
	if err != nil {
		panic(err)
	}
	return b
}

// Publisher publishes over a connection of its own.
type Publisher struct {
	conn *rmq.Connection
	ch   *rmq.Channel
}

// NewPublisher connects a publisher with publisher confirms, so that
// Publish returns once the broker has the message.
func NewPublisher(t testing.TB) *Publisher {
	t.Helper()
	conn, err := rmq.Dial(Need(t))
	if err != nil {
		t.Fatalf("publisher: %v", err)
	}
	ch, err := conn.Channel()
	if err != nil {
		t.Fatalf("publisher channel: %v", err)
	}
	if err := ch.Confirm(false); err != nil {
		t.Fatalf("publisher confirms: %v", err)
	}
	p := &Publisher{conn: conn, ch: ch}
	t.Cleanup(p.Close)
	return p
}

// Publish sends m to amq.topic as fedora-messaging does and waits for the
// broker's confirm.
func (p *Publisher) Publish(m Message) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conf, err := p.ch.PublishWithDeferredConfirmWithContext(ctx, "amq.topic", m.Topic, false, false, rmq.Publishing{
		ContentType: "application/json", ContentEncoding: "utf-8", DeliveryMode: rmq.Persistent,
		MessageId: m.ID, Headers: m.headers(), Body: m.BodyJSON(),
	})
	if err != nil {
		return fmt.Errorf("publish %s: %w", m.ID, err)
	}
	ok, err := conf.WaitContext(ctx)
	if err != nil || !ok {
		return fmt.Errorf("publish %s: not confirmed (%v)", m.ID, err)
	}
	return nil
}

// PublishRaw sends a delivery of any shape (for bad input).
func (p *Publisher) PublishRaw(topic string, pub rmq.Publishing) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conf, err := p.ch.PublishWithDeferredConfirmWithContext(ctx, "amq.topic", topic, false, false, pub)
	if err != nil {
		return err
	}
	if ok, err := conf.WaitContext(ctx); err != nil || !ok {
		return fmt.Errorf("not confirmed (%v)", err)
	}
	return nil
}

// Close closes the publisher's connection.
func (p *Publisher) Close() { p.conn.Close() }

// QueueDepth returns the messages ready in a queue (not counting those
// delivered and not yet acknowledged), declaring nothing.
func QueueDepth(t testing.TB, queue string) int {
	t.Helper()
	ch, done := channel(t)
	defer done()
	q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	if err != nil {
		t.Fatalf("queue %s: %v", queue, err)
	}
	return q.Messages
}

// DeleteQueue deletes a queue when the test ends.
func DeleteQueue(t testing.TB, queue string) {
	t.Cleanup(func() {
		conn, err := rmq.Dial(URL)
		if err != nil {
			return
		}
		defer conn.Close()
		if ch, err := conn.Channel(); err == nil {
			ch.QueueDelete(queue, false, false, false)
		}
	})
}

// CloseConnections closes, from the broker side, every connection whose
// client-provided name is name (rabbitmqctl close_connection): what a
// broker restart or `rabbitmqctl close_all_connections` does to a client,
// without touching anyone else's connections. It returns the client
// properties (as rabbitmqctl prints them) of each connection it closed.
func CloseConnections(t testing.TB, name string) []string {
	t.Helper()
	out, err := exec.Command("rabbitmqctl", "-s", "list_connections", "pid", "client_properties").Output()
	if err != nil {
		t.Fatalf("rabbitmqctl list_connections: %v", err)
	}
	var closed []string
	for _, line := range strings.Split(string(out), "\n") {
		pid, props, ok := strings.Cut(line, "\t")
		if !ok || !strings.Contains(props, `"`+name+`"`) {
			continue
		}
		if out, err := exec.Command("rabbitmqctl", "-q", "close_connection", pid, "closed by a statscache test").CombinedOutput(); err != nil {
			t.Fatalf("rabbitmqctl close_connection %s: %v\n%s", pid, err, out)
		}
		closed = append(closed, props)
	}
	return closed
}

// DeclareQueue creates a durable queue bound to amq.topic with keys (as
// the subscriber would), so that messages published before a subscriber
// first starts wait in it; the queue is deleted when the test ends.
func DeclareQueue(t testing.TB, queue string, keys ...string) {
	t.Helper()
	ch, done := channel(t)
	defer done()
	if _, err := ch.QueueDeclare(queue, true, false, false, false, nil); err != nil {
		t.Fatalf("declare %s: %v", queue, err)
	}
	for _, k := range keys {
		if err := ch.QueueBind(queue, k, "amq.topic", false, nil); err != nil {
			t.Fatalf("bind %s: %v", queue, err)
		}
	}
	DeleteQueue(t, queue)
}

// TopicPrefix returns a topic prefix no other test uses, shaped like
// Fedora's (org.fedoraproject.<env>.; the category stays the fourth word).
// Every test binds only its own prefix: the broker's amq.topic is shared
// by every test that runs at the same time, on this machine.
func TopicPrefix() string {
	var b [4]byte
	crand.Read(b[:])
	return fmt.Sprintf("org.fedoraproject.t%x.", b)
}

// channel opens a connection and a channel for one operation; done closes
// them.
func channel(t testing.TB) (*rmq.Channel, func()) {
	t.Helper()
	conn, err := rmq.Dial(Need(t))
	if err != nil {
		t.Fatal(err)
	}
	ch, err := conn.Channel()
	if err != nil {
		conn.Close()
		t.Fatal(err)
	}
	return ch, func() { conn.Close() }
}
