package amqp_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	rmq "github.com/rabbitmq/amqp091-go"

	"statscache/engine"
	"statscache/engine/amqp"
	"statscache/engine/amqp/amqptest"
)

func TestBindingKeys(t *testing.T) {
	cases := []struct {
		topics []string
		want   []string
	}{
		{nil, []string{"#"}},
		{[]string{""}, []string{"#"}},
		{[]string{"org.fedoraproject.prod."}, []string{"org.fedoraproject.prod.#"}},
		{[]string{"org.fedoraproject.prod"}, []string{"org.fedoraproject.prod.#"}},
		{[]string{"org.fedoraproject.prod.", "io.pagure.prod.", "org.fedoraproject.prod"}, []string{"io.pagure.prod.#", "org.fedoraproject.prod.#"}},
	}
	for _, c := range cases {
		if got := amqp.BindingKeys(c.topics); !reflect.DeepEqual(got, c.want) {
			t.Errorf("BindingKeys(%q) = %q, want %q", c.topics, got, c.want)
		}
	}
}

func TestNewQueueName(t *testing.T) {
	// The pattern Fedora's broker allows its "fedora" user to create.
	seen := map[string]bool{}
	for i := 0; i < 100; i++ {
		n := amqp.NewQueueName()
		if len(n) != 36 || n[8] != '-' || n[13] != '-' || n[14] != '4' || n[18] != '-' || n[23] != '-' || !strings.ContainsRune("89ab", rune(n[19])) {
			t.Fatalf("%q is not a UUID4", n)
		}
		if seen[n] {
			t.Fatalf("%q twice", n)
		}
		seen[n] = true
	}
}

// memSettings is an in-memory engine.Settings.
type memSettings struct {
	mu sync.Mutex
	m  map[string]string
}

func (s *memSettings) Setting(_ context.Context, k string) (string, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[k]
	return v, ok, nil
}

func (s *memSettings) InitSetting(_ context.Context, k, v string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.m[k]; ok {
		return old, nil
	}
	s.m[k] = v
	return v, nil
}

func (s *memSettings) PutSetting(_ context.Context, k, v string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[k] = v
	return nil
}

func TestStoredQueue(t *testing.T) {
	s := &memSettings{m: map[string]string{}}
	a, err := amqp.StoredQueue(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := amqp.StoredQueue(context.Background(), s)
	if a != b || len(a) != 36 {
		t.Fatalf("StoredQueue gave %q then %q, want one UUID reused", a, b)
	}
}

// journal stands in for the daemon: it collects messages and calls
// journaled for them from another goroutine, in shuffled batches.
type journal struct {
	mu        sync.Mutex
	got       map[string]*engine.Message
	times     map[string]int
	pending   []func()
	hold      bool     // do not call journaled (until release)
	held      []func() // what hold kept back
	wake      chan struct{}
	stop      chan struct{}
	stopped   sync.WaitGroup
	delivered int
}

func newJournal(hold bool) *journal {
	j := &journal{got: map[string]*engine.Message{}, times: map[string]int{}, hold: hold, wake: make(chan struct{}, 1), stop: make(chan struct{})}
	j.stopped.Add(1)
	go func() {
		defer j.stopped.Done()
		for {
			select {
			case <-j.wake:
			case <-time.After(20 * time.Millisecond):
			case <-j.stop:
				j.flush()
				return
			}
			j.flush()
		}
	}()
	return j
}

func (j *journal) flush() {
	j.mu.Lock()
	batch := j.pending
	j.pending = nil
	j.mu.Unlock()
	rand.Shuffle(len(batch), func(a, b int) { batch[a], batch[b] = batch[b], batch[a] })
	for _, f := range batch {
		f()
	}
}

func (j *journal) deliver(_ context.Context, m *engine.Message, journaled func()) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.got[m.ID] = m
	j.times[m.ID]++
	j.delivered++
	if !j.hold && rand.IntN(7) != 0 { // now and then keep one back for a later batch
		j.pending = append(j.pending, journaled)
		select {
		case j.wake <- struct{}{}:
		default:
		}
	} else if !j.hold {
		j.pending = append(j.pending, journaled)
	} else {
		j.held = append(j.held, journaled)
	}
	return nil
}

// release journals what hold kept back.
func (j *journal) release() {
	j.mu.Lock()
	held := j.held
	j.held = nil
	j.mu.Unlock()
	for _, f := range held {
		f()
	}
}

func (j *journal) count() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return len(j.got)
}

func (j *journal) close() {
	close(j.stop)
	j.stopped.Wait()
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// run starts a subscriber and returns a function that stops it.
func run(t *testing.T, cfg amqp.Config, j *journal) (*amqp.Subscriber, func()) {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = quietLogger()
	}
	sub := amqp.New(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sub.RunFunc(ctx, j.deliver) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("RunFunc: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("subscriber did not stop")
		}
	}
	t.Cleanup(stop)
	waitFor(t, "the subscriber to consume", func() bool { return sub.Stats().State == amqp.StateConnected })
	return sub, stop
}

func message(i int, topic string, at time.Time) amqptest.Message {
	return amqptest.Message{
		ID: amqp.NewQueueName(), Topic: topic, SentAt: at,
		Users: []string{fmt.Sprintf("user%d", i%5)}, Pkgs: []string{"kernel"},
		Body: map[string]any{"n": i, "owner": fmt.Sprintf("user%d", i%5)},
	}
}

// TestConsumeAckOutOfOrder: every published message arrives, decoded as
// fedora-messaging defines it, and once all are journaled (in shuffled
// order, from another goroutine) the queue is empty: every delivery was
// acknowledged, none before it was journaled.
func TestConsumeAckOutOfOrder(t *testing.T) {
	url := amqptest.Need(t)
	queue := amqp.NewQueueName()
	amqptest.DeleteQueue(t, queue)
	pub := amqptest.NewPublisher(t)
	j := newJournal(false)
	prefix := amqptest.TopicPrefix()
	sub, stop := run(t, amqp.Config{URL: url, Queue: queue, Prefetch: 40, Topics: []string{prefix}}, j)
	base := time.Now().UTC().Truncate(time.Second)
	var sent []amqptest.Message
	for i := 0; i < 300; i++ {
		m := message(i, prefix+"buildsys.build.state.change", base.Add(time.Duration(i)*time.Second))
		if err := pub.Publish(m); err != nil {
			t.Fatal(err)
		}
		sent = append(sent, m)
	}
	waitFor(t, "300 messages", func() bool { return j.count() == 300 })
	waitFor(t, "every ack", func() bool { return sub.Stats().Acked == 300 })
	stop()
	j.close()
	for _, m := range sent {
		got := j.got[m.ID]
		if got == nil {
			t.Fatalf("message %s missing", m.ID)
		}
		if got.Key != m.ID || got.Topic != m.Topic || got.TimeUS != m.SentAt.UnixMicro() {
			t.Fatalf("message %s decoded as key %q topic %q time %d", m.ID, got.Key, got.Topic, got.TimeUS)
		}
	}
	if n := amqptest.QueueDepth(t, queue); n != 0 {
		t.Errorf("%d messages left in the queue after every one was journaled", n)
	}
	st := sub.Stats()
	if st.Deliveries != 300 || st.Acked != 300 || st.Unacked != 0 || st.Rejected != 0 || st.Queue != queue || !reflect.DeepEqual(st.Bindings, []string{prefix + "#"}) {
		t.Errorf("stats %+v", st)
	}
}

// TestUnjournaledComeBack: what was delivered but never journaled (a crash
// between the delivery and the commit) is delivered again, flagged as a
// redelivery, to the next subscriber of the same queue; what was
// journaled is not.
func TestUnjournaledComeBack(t *testing.T) {
	url := amqptest.Need(t)
	queue := amqp.NewQueueName()
	amqptest.DeleteQueue(t, queue)
	pub := amqptest.NewPublisher(t)
	held := newJournal(true)
	prefix := amqptest.TopicPrefix()
	_, stop := run(t, amqp.Config{URL: url, Queue: queue, Prefetch: 100, DrainTimeout: 100 * time.Millisecond, Topics: []string{prefix}}, held)
	now := time.Now()
	for i := 0; i < 50; i++ {
		if err := pub.Publish(message(i, prefix+"x.y", now)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "50 deliveries", func() bool { return held.count() == 50 })
	// Stop without journaling any: as a crash before the commit.
	held.close()
	stop()
	if n := amqptest.QueueDepth(t, queue); n != 50 {
		t.Fatalf("%d messages back in the queue, want all 50 (none journaled)", n)
	}
	j := newJournal(true)
	sub, stop2 := run(t, amqp.Config{URL: url, Queue: queue, Topics: []string{prefix}}, j)
	waitFor(t, "50 redeliveries", func() bool { return j.count() == 50 })
	if !sub.CatchingUp() {
		t.Error("not catching up while the backlog of 50 is not journaled")
	}
	j.release()
	waitFor(t, "50 acks", func() bool { return sub.Stats().Acked == 50 })
	if sub.CatchingUp() {
		t.Error("still catching up once the backlog is journaled")
	}
	stop2()
	j.close()
	if st := sub.Stats(); st.Redelivered != 50 {
		t.Errorf("redelivered %d, want 50", st.Redelivered)
	}
	for id := range held.got {
		if j.got[id] == nil {
			t.Errorf("message %s not delivered again", id)
		}
	}
	if n := amqptest.QueueDepth(t, queue); n != 0 {
		t.Errorf("%d left after journaling", n)
	}
}

// TestReconnectAfterBrokerClose: the broker closes the subscriber's
// connection (as at a broker restart or rabbitmqctl close_all_connections)
// while messages are being published; the subscriber reconnects to the same
// queue and nothing is lost.
func TestReconnectAfterBrokerClose(t *testing.T) {
	url := amqptest.Need(t)
	queue := amqp.NewQueueName()
	amqptest.DeleteQueue(t, queue)
	pub := amqptest.NewPublisher(t)
	j := newJournal(false)
	name := "statscache-test-" + queue[:8]
	prefix := amqptest.TopicPrefix()
	sub, stop := run(t, amqp.Config{URL: url, Queue: queue, ConnectionName: name, Topics: []string{prefix}, ReconnectMin: 50 * time.Millisecond, ReconnectMax: 500 * time.Millisecond}, j)
	var ids []string
	publish := func(n int) {
		for i := 0; i < n; i++ {
			m := message(i, prefix+"x.y", time.Now())
			if err := pub.Publish(m); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, m.ID)
		}
	}
	publish(100)
	closed := amqptest.CloseConnections(t, name)
	if len(closed) != 1 {
		t.Fatalf("closed %d connections named %s, want 1", len(closed), name)
	}
	// Fedora's broker asks clients to name their application.
	if !strings.Contains(closed[0], `"app"`) || !strings.Contains(closed[0], `"statscache"`) {
		t.Errorf("client properties without app = statscache: %s", closed[0])
	}
	publish(100) // while the subscriber reconnects, and after
	waitFor(t, "the reconnect", func() bool { return sub.Stats().Reconnects >= 1 })
	waitFor(t, "all 200 after the reconnect", func() bool { return j.count() == 200 })
	waitFor(t, "every ack", func() bool { st := sub.Stats(); return st.Unacked == 0 && st.Acked >= 200 })
	st := sub.Stats()
	stop()
	j.close()
	if st.Reconnects < 1 || st.Disconnects < 1 || st.State != amqp.StateConnected {
		t.Errorf("stats after a broker-side close: %+v", st)
	}
	if !strings.Contains(st.LastError, "closed") {
		t.Errorf("last error %q does not say the connection was closed", st.LastError)
	}
	for _, id := range ids {
		if j.got[id] == nil {
			t.Fatalf("message %s lost across the reconnect", id)
		}
	}
	if n := amqptest.QueueDepth(t, queue); n != 0 {
		t.Errorf("%d left in the queue", n)
	}
}

// TestRejects: bad deliveries of every kind are rejected with their
// reason, handed to OnReject, counted and acknowledged (so they do not
// come back), and the good messages around them go through.
func TestRejects(t *testing.T) {
	url := amqptest.Need(t)
	queue := amqp.NewQueueName()
	amqptest.DeleteQueue(t, queue)
	pub := amqptest.NewPublisher(t)
	var mu sync.Mutex
	var rejects []engine.Reject
	j := newJournal(false)
	prefix := amqptest.TopicPrefix()
	sub, stop := run(t, amqp.Config{URL: url, Queue: queue, Topics: []string{prefix},
		Limits: engine.Limits{MaxBytes: 65536, MaxDepth: 32},
		OnReject: func(r engine.Reject) {
			mu.Lock()
			rejects = append(rejects, r)
			mu.Unlock()
		}}, j)
	topic := prefix + "x.y"
	sentAt := time.Now().UTC().Format(time.RFC3339)
	props := func(id string, body string, h rmq.Table) rmq.Publishing {
		if h == nil {
			h = rmq.Table{"sent-at": sentAt}
		}
		return rmq.Publishing{ContentType: "application/json", MessageId: id, Headers: h, Body: []byte(body)}
	}
	bad := []struct {
		reason string
		pub    rmq.Publishing
	}{
		{engine.RejectNotJSON, props("b1", `{not json`, nil)},
		{engine.RejectNotObject, props("b2", `[1, 2, 3]`, nil)},
		{engine.RejectNoID, props("", `{}`, nil)},
		{engine.RejectNoSentAt, props("b4", `{}`, rmq.Table{"fedora_messaging_severity": int32(20)})},
		{engine.RejectBadSentAt, props("b5", `{}`, rmq.Table{"sent-at": "last tuesday"})},
		{engine.RejectTooLarge, props("b6", `{"blob": "`+strings.Repeat("x", 70000)+`"}`, nil)},
		{engine.RejectTooDeep, props("b7", `{"a": `+strings.Repeat("[", 50)+strings.Repeat("]", 50)+`}`, nil)},
	}
	want := map[string]int64{}
	good := 0
	for i, b := range bad {
		if err := pub.Publish(message(i, topic, time.Now())); err != nil {
			t.Fatal(err)
		}
		good++
		if err := pub.PublishRaw(topic, b.pub); err != nil {
			t.Fatal(err)
		}
		want[b.reason]++
	}
	if err := pub.Publish(message(99, topic, time.Now())); err != nil {
		t.Fatal(err)
	}
	good++
	// Not bound: never delivered, not a reject.
	if err := pub.Publish(message(100, strings.Replace(prefix, "org.fedoraproject.", "org.centos.", 1)+"x.y", time.Now())); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the good messages", func() bool { return j.count() == good })
	waitFor(t, "every ack", func() bool { return sub.Stats().Acked == int64(good+len(bad)) })
	stop()
	j.close()
	st := sub.Stats()
	if !reflect.DeepEqual(st.RejectReasons, want) || st.Rejected != int64(len(bad)) {
		t.Errorf("reject reasons %v (%d), want %v", st.RejectReasons, st.Rejected, want)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(rejects) != len(bad) {
		t.Fatalf("OnReject called %d times, want %d", len(rejects), len(bad))
	}
	for i, r := range rejects {
		var rec struct {
			ID   string `json:"message_id"`
			Body string `json:"body"`
		}
		if err := json.Unmarshal(r.Record, &rec); err != nil || rec.ID != bad[i].pub.MessageId || !strings.HasPrefix(string(bad[i].pub.Body), rec.Body) {
			t.Errorf("reject %d: record %.200s (%v)", i, r.Record, err)
		}
		if !strings.HasPrefix(r.Reason, bad[i].reason+": ") || r.Source != "amqp "+queue {
			t.Errorf("reject %d: %+v, want reason %q", i, r, bad[i].reason)
		}
	}
	if n := amqptest.QueueDepth(t, queue); n != 0 {
		t.Errorf("%d left in the queue: rejects must be acknowledged", n)
	}
}

// TestBindingsFollowTopics: a queue reused with other --topic prefixes
// loses the bindings no longer wanted, so their topics stop arriving.
func TestBindingsFollowTopics(t *testing.T) {
	url := amqptest.Need(t)
	queue := amqp.NewQueueName()
	amqptest.DeleteQueue(t, queue)
	pub := amqptest.NewPublisher(t)
	settings := &memSettings{m: map[string]string{}}
	j := newJournal(false)
	p1, p2 := amqptest.TopicPrefix(), amqptest.TopicPrefix()
	_, stop := run(t, amqp.Config{URL: url, Queue: queue, Settings: settings, Topics: []string{p1, p2}}, j)
	stop()
	j.close()
	j = newJournal(false)
	sub, stop := run(t, amqp.Config{URL: url, Queue: queue, Settings: settings, Topics: []string{p1}}, j)
	if err := pub.Publish(message(1, p2+"pull-request.new", time.Now())); err != nil {
		t.Fatal(err)
	}
	m := message(2, p1+"bodhi.update.comment", time.Now())
	if err := pub.Publish(m); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the bound message", func() bool { return j.count() == 1 })
	time.Sleep(200 * time.Millisecond)
	stop()
	j.close()
	if j.got[m.ID] == nil || len(j.got) != 1 {
		t.Errorf("got %d messages, want only %s", len(j.got), m.ID)
	}
	if st := sub.Stats(); st.Rejected != 0 {
		t.Errorf("rejects %v: the unbound topic should not even be delivered", st.RejectReasons)
	}
}

// TestBadConfig: mistakes in the configuration are reported before any
// connection.
func TestBadConfig(t *testing.T) {
	for _, c := range []amqp.Config{
		{URL: "http://127.0.0.1:5672/", Queue: "q"},
		{URL: "amqp://127.0.0.1:5672/"},
		{URL: "amqp://127.0.0.1:5672/", Queue: "q", CAFile: "/nonexistent"},
		{URL: "amqps://127.0.0.1:5671/", Queue: "q", CertFile: "x"},
		{URL: "amqps://127.0.0.1:5671/", Queue: "q", CAFile: "/nonexistent/ca.pem"},
	} {
		if err := c.Validate(); err == nil {
			t.Errorf("%+v validated", c)
		}
	}
	if got := amqp.Redact("amqps://user:secret@host/%2Fvhost"); strings.Contains(got, "secret") {
		t.Errorf("Redact left the password: %s", got)
	}
}

// TestAMQPS: over amqps:// the subscriber checks the server's certificate
// against --amqp-ca and consumes as over amqp:// (the local broker has no
// TLS listener: a loopback TLS proxy stands in front of it). A CA that
// did not sign the server's certificate is refused.
func TestAMQPS(t *testing.T) {
	files := amqptest.NewTLSFiles(t, "statscache")
	addr := amqptest.TLSProxy(t, files.Server)
	queue := amqp.NewQueueName()
	amqptest.DeleteQueue(t, queue)
	pub := amqptest.NewPublisher(t)
	prefix := amqptest.TopicPrefix()
	j := newJournal(false)
	sub, stop := run(t, amqp.Config{URL: "amqps://guest:guest@" + addr + "/", CAFile: files.CA, Queue: queue, Topics: []string{prefix}}, j)
	m := message(1, prefix+"x.y", time.Now())
	if err := pub.Publish(m); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the message over TLS", func() bool { return j.count() == 1 && sub.Stats().Acked == 1 })
	stop()
	j.close()

	other := amqptest.NewTLSFiles(t, "statscache")
	bad := amqp.New(amqp.Config{URL: "amqps://guest:guest@" + addr + "/", CAFile: other.CA, Queue: queue, Logger: quietLogger(),
		ReconnectMin: 10 * time.Millisecond, ReconnectMax: 50 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); bad.RunFunc(ctx, newJournal(false).deliver) }()
	waitFor(t, "a refused handshake", func() bool { return bad.Stats().ConnectErrors > 0 })
	cancel()
	<-done
	if st := bad.Stats(); st.Connects != 0 || !strings.Contains(st.LastError, "certificate") {
		t.Errorf("with the wrong CA: %+v", st)
	}
}
