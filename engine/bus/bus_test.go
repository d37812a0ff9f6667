package bus

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"statscache/engine"
)

// testTimeout bounds every wait in these tests. It is generous on purpose:
// nothing here asserts on timing, only on what eventually arrives.
const testTimeout = 60 * time.Second

type envelope struct {
	ID       string
	Topic    string
	Envelope []byte
}

// sampleEnvelopes turns the first n records of the bundled sample into
// fedmsg envelopes as a publisher sends them: msg_id, topic, an integer
// timestamp, msg, i and username.
func sampleEnvelopes(t testing.TB, n int) []envelope {
	t.Helper()
	f, err := os.Open("../../scripts/sample/messages.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []envelope
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 16<<20)
	for sc.Scan() && len(out) < n {
		var rec struct {
			MsgID     string          `json:"msg_id"`
			Topic     string          `json:"topic"`
			Timestamp float64         `json:"timestamp"`
			Msg       json.RawMessage `json:"msg"`
			I         int             `json:"i"`
			Username  *string         `json:"username"`
		}
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatal(err)
		}
		user := "fedmsg"
		if rec.Username != nil {
			user = *rec.Username
		}
		env, err := json.Marshal(map[string]any{
			"msg_id": rec.MsgID, "topic": rec.Topic, "timestamp": int64(rec.Timestamp),
			"msg": rec.Msg, "i": rec.I, "username": user,
		})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, envelope{rec.MsgID, rec.Topic, env})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(out) < n {
		t.Fatalf("sample has %d records, want %d", len(out), n)
	}
	return out
}

// harness runs a subscriber and collects what it delivers.
type harness struct {
	sub    *Subscriber
	cancel context.CancelFunc
	done   chan error

	mu      sync.Mutex
	got     map[string]*engine.Message
	order   []string
	rejects []engine.Reject
	arrived chan struct{}
}

func startSubscriber(t *testing.T, cfg Config) *harness {
	t.Helper()
	h := &harness{got: map[string]*engine.Message{}, done: make(chan error, 1), arrived: make(chan struct{}, 1)}
	cfg.OnReject = func(r engine.Reject) {
		h.mu.Lock()
		h.rejects = append(h.rejects, r)
		h.mu.Unlock()
		h.poke()
	}
	if cfg.ReconnectMax == 0 {
		cfg.ReconnectMin, cfg.ReconnectMax = 20*time.Millisecond, 300*time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	h.sub = New(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	out := make(chan *engine.Message)
	go func() { h.done <- h.sub.Run(ctx, out) }()
	go func() {
		for {
			select {
			case m := <-out:
				h.mu.Lock()
				if _, dup := h.got[m.ID]; !dup {
					h.order = append(h.order, m.ID)
				}
				h.got[m.ID] = m
				h.mu.Unlock()
				h.poke()
			case <-ctx.Done():
				return
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-h.done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(testTimeout):
			t.Errorf("Run did not return after cancel")
		}
	})
	return h
}

func (h *harness) poke() {
	select {
	case h.arrived <- struct{}{}:
	default:
	}
}

// waitFor polls cond after every delivery until it holds or the test
// timeout passes.
func (h *harness) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(testTimeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		h.mu.Lock()
		ok := cond()
		h.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-h.arrived:
		case <-tick.C:
		case <-deadline:
			t.Fatalf("timed out waiting for %s; stats %+v", what, h.sub.Stats())
		}
	}
}

func (h *harness) has(id string) bool { _, ok := h.got[id]; return ok }

func (h *harness) hasAll(envs []envelope) bool {
	for _, e := range envs {
		if !h.has(e.ID) {
			return false
		}
	}
	return true
}

// checkDecoded asserts that every envelope arrived with its id, topic and time.
func (h *harness) checkDecoded(t *testing.T, envs []envelope) {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, e := range envs {
		m := h.got[e.ID]
		if m == nil {
			t.Errorf("message %s missing", e.ID)
			continue
		}
		if m.Topic != e.Topic || m.Key != engine.DedupeKey(e.ID) || m.TimeUS%1e6 != 0 || m.TimeUS == 0 {
			t.Errorf("message %s decoded as topic %q key %q time %d", e.ID, m.Topic, m.Key, m.TimeUS)
		}
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// badFrames are the malformed messages every test sends between good ones,
// with the reason each must be rejected for.
func badFrames(good envelope) (frames [][][]byte, reasons []string) {
	return [][][]byte{
			{[]byte(good.Topic), good.Envelope, []byte("extra")},               // 3 frames
			{[]byte("org.fedoraproject.prod.other.topic"), good.Envelope},      // topic mismatch
			{[]byte("org.fedoraproject.prod.bad.json"), []byte(`{"msg_id": `)}, // invalid JSON
			{[]byte("org.fedoraproject.prod.lonely")},                          // 1 frame
		}, []string{
			ReasonFrames, ReasonTopic, ReasonDecode, ReasonFrames,
		}
}

func countReasons(rs []string) map[string]int64 {
	m := map[string]int64{}
	for _, r := range rs {
		m[r]++
	}
	return m
}

func checkReasons(t *testing.T, st Stats, want map[string]int64) {
	t.Helper()
	for k, v := range want {
		if st.RejectReasons[k] != v {
			t.Errorf("rejects for %q = %d, want %d (all: %v)", k, st.RejectReasons[k], v, st.RejectReasons)
		}
	}
	var total int64
	for _, v := range want {
		total += v
	}
	if st.Rejected != total {
		t.Errorf("Rejected = %d, want %d", st.Rejected, total)
	}
}

func TestZmq4PublisherGoodAndBad(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	pub, err := NewPublisher(ctx, "tcp://127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	h := startSubscriber(t, Config{Endpoints: []string{pub.Endpoint()}})
	if err := pub.WaitSubscribed(ctx, ""); err != nil {
		t.Fatal(err)
	}
	envs := sampleEnvelopes(t, 60)
	first, rest := envs[:30], envs[30:]
	for _, e := range first {
		if err := pub.Publish(e.Topic, e.Envelope); err != nil {
			t.Fatal(err)
		}
	}
	bad, reasons := badFrames(envs[0])
	for _, f := range bad {
		if err := pub.PublishFrames(f...); err != nil {
			t.Fatal(err)
		}
	}
	for _, e := range rest {
		if err := pub.Publish(e.Topic, e.Envelope); err != nil {
			t.Fatal(err)
		}
	}
	want := countReasons(reasons)
	h.waitFor(t, "all good messages and the rejects", func() bool {
		return h.hasAll(envs) && int(h.sub.Stats().Rejected) >= len(bad)
	})
	h.checkDecoded(t, envs)
	st := h.sub.Stats()
	checkReasons(t, st, want)
	if st.Accepted != int64(len(envs)) || st.Received != st.Accepted+st.Rejected {
		t.Errorf("stats %+v: want %d accepted and received = accepted + rejected", st, len(envs))
	}
	// The order on one connection is the publish order.
	h.mu.Lock()
	for i, id := range h.order {
		if id != envs[i].ID {
			t.Errorf("message %d is %s, want %s", i, id, envs[i].ID)
			break
		}
	}
	if len(h.rejects) != len(bad) || !strings.HasPrefix(h.rejects[0].Reason, ReasonFrames) || !strings.HasPrefix(h.rejects[0].Source, "bus tcp://") {
		t.Errorf("OnReject got %+v", h.rejects)
	}
	h.mu.Unlock()
}

func TestTopicPrefix(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	pub, err := NewPublisher(ctx, "tcp://127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	envs := sampleEnvelopes(t, 120)
	const prefix = "org.fedoraproject.prod."
	h := startSubscriber(t, Config{Endpoints: []string{pub.Endpoint()}, Topics: []string{prefix}})
	if err := pub.WaitSubscribed(ctx, prefix+"x"); err != nil {
		t.Fatal(err)
	}
	var want []envelope
	for _, e := range envs {
		if strings.HasPrefix(e.Topic, prefix) {
			want = append(want, e)
		}
		if err := pub.Publish(e.Topic, e.Envelope); err != nil {
			t.Fatal(err)
		}
	}
	if len(want) == 0 || len(want) == len(envs) {
		t.Fatalf("sample does not exercise the prefix: %d of %d match", len(want), len(envs))
	}
	// A sentinel published last proves everything before it was handled.
	sentinel := envelope{"2024-sentinel", prefix + "sentinel", []byte(`{"msg_id":"2024-sentinel","topic":"org.fedoraproject.prod.sentinel","timestamp":1,"msg":{},"i":1,"username":"t"}`)}
	if err := pub.Publish(sentinel.Topic, sentinel.Envelope); err != nil {
		t.Fatal(err)
	}
	h.waitFor(t, "the sentinel", func() bool { return h.has(sentinel.ID) })
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.got) != len(want)+1 {
		t.Errorf("got %d messages, want %d", len(h.got), len(want)+1)
	}
	for _, e := range want {
		if !h.has(e.ID) {
			t.Errorf("missing %s %s", e.ID, e.Topic)
		}
	}
}

func TestOversizeFrameDropsConnectionAndRecovers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	pub, err := NewPublisher(ctx, "tcp://127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	h := startSubscriber(t, Config{Endpoints: []string{pub.Endpoint()}, Limits: engine.Limits{MaxBytes: 4096}})
	if err := pub.WaitSubscribed(ctx, ""); err != nil {
		t.Fatal(err)
	}
	envs := sampleEnvelopes(t, 20)
	var small []envelope
	for _, e := range envs {
		if len(e.Envelope) < 4096 {
			small = append(small, e)
		}
	}
	// Over MaxBytes but under the frame guard: rejected by the decoder,
	// the connection survives.
	big := []byte(`{"msg_id":"2024-big","topic":"t","timestamp":1,"msg":"` + strings.Repeat("x", 8192) + `"}`)
	if err := pub.Publish("t", big); err != nil {
		t.Fatal(err)
	}
	// Over the frame guard: the connection is dropped before zmq4 allocates.
	huge := make([]byte, 4096+1<<20+1)
	if err := pub.Publish("t", huge); err != nil {
		t.Fatal(err)
	}
	h.waitFor(t, "the frame-size reject", func() bool { return h.sub.Stats().RejectReasons[ReasonFrameSize] == 1 })
	// Whatever is published after the reconnect arrives; publish until it does.
	publishUntil(t, ctx, h, pub, small)
	st := h.sub.Stats()
	if st.RejectReasons[ReasonDecode] != 1 || st.Disconnects < 1 || st.Reconnects < 1 {
		t.Errorf("stats %+v", st)
	}
}

// publishUntil republishes envs until the subscriber has all of them: the
// cure for the slow joiner after a reconnect, where the publisher cannot
// tell the old connection from the new one.
func publishUntil(t *testing.T, ctx context.Context, h *harness, pub *Publisher, envs []envelope) {
	t.Helper()
	for {
		h.mu.Lock()
		done := h.hasAll(envs)
		h.mu.Unlock()
		if done {
			return
		}
		for _, e := range envs {
			if err := pub.Publish(e.Topic, e.Envelope); err != nil {
				t.Fatal(err)
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("messages never arrived; stats %+v", h.sub.Stats())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func TestZmq4Reconnect(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	pub, err := NewPublisher(ctx, "tcp://127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ep := pub.Endpoint()
	h := startSubscriber(t, Config{Endpoints: []string{ep}})
	envs := sampleEnvelopes(t, 40)
	publishUntil(t, ctx, h, pub, envs[:20])
	if err := pub.Close(); err != nil {
		t.Fatal(err)
	}
	h.waitFor(t, "the disconnect", func() bool { return h.sub.Stats().Disconnects >= 1 })
	pub2, err := NewPublisher(ctx, ep)
	if err != nil {
		t.Fatal(err)
	}
	defer pub2.Close()
	publishUntil(t, ctx, h, pub2, envs[20:])
	if st := h.sub.Stats(); st.Reconnects < 1 || st.Rejected != 0 {
		t.Errorf("stats %+v", st)
	}
	h.checkDecoded(t, envs)
}

func TestDeadEndpointKeepsRetrying(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens here now
	h := startSubscriber(t, Config{Endpoints: []string{"tcp://" + addr}})
	h.waitFor(t, "a few failed dials", func() bool { return h.sub.Stats().DialErrors >= 3 })
}

func TestSilentPeerHandshakeTimeout(t *testing.T) {
	// A peer that accepts TCP and never speaks ZMTP must not hang the socket.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			go io.Copy(io.Discard, c)
		}
	}()
	defer func() {
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	}()
	h := startSubscriber(t, Config{Endpoints: []string{"tcp://" + l.Addr().String()}, HandshakeTimeout: 200 * time.Millisecond})
	h.waitFor(t, "handshake timeouts", func() bool { return h.sub.Stats().DialErrors >= 2 })
}

func TestBadConfig(t *testing.T) {
	for _, cfg := range []Config{{}, {Endpoints: []string{"ipc:///tmp/x"}}, {Endpoints: []string{"tcp://nohostport"}}} {
		if err := New(cfg).Run(context.Background(), make(chan *engine.Message)); err == nil {
			t.Errorf("Run(%+v) = nil, want an error", cfg)
		}
	}
}

func TestGuardScan(t *testing.T) {
	c1, c2 := net.Pipe()
	defer c1.Close()
	defer c2.Close()
	g := &guardedConn{Conn: c1, opts: dialOptions{frameLimit: 300}, greeting: zmtpGreetingLen}
	stream := make([]byte, zmtpGreetingLen)
	stream = append(stream, flagCommand, 3, 'a', 'b', 'c') // short command
	stream = append(stream, 0x01, 2, 'h', 'i')             // short frame, more
	long := []byte{flagLong, 0, 0, 0, 0, 0, 0, 1, 0}       // 256 bytes
	stream = append(stream, long...)
	stream = append(stream, make([]byte, 256)...)
	// Feed it one byte at a time: framing must survive any split.
	for i := range stream {
		if err := g.scan(stream[i : i+1]); err != nil {
			t.Fatalf("byte %d: %v", i, err)
		}
	}
	if !g.handshook || g.body != 0 || len(g.hdr) != 0 {
		t.Fatalf("state after stream: %+v", g)
	}
	err := g.scan([]byte{flagLong, 0, 0, 0, 0, 0, 0, 2, 0})
	if _, ok := err.(*FrameTooLargeError); !ok {
		t.Fatalf("512-byte frame over a 300 limit: err = %v", err)
	}
}

// ---- libzmq peer ----

// pyPublisher is a real libzmq publisher (Debian's python3-zmq). It binds an
// XPUB socket so that it can wait for the subscription before sending (no
// slow-joiner race), sends the frames it was given, prints SENT, and exits
// when its stdin is closed.
const pyPublisher = `
import json, sys, zmq
port, batch = int(sys.argv[1]), sys.argv[2]
ctx = zmq.Context()
s = ctx.socket(zmq.XPUB)
s.setsockopt(zmq.LINGER, 2000)
if port == 0:
    port = s.bind_to_random_port("tcp://127.0.0.1")
else:
    s.bind("tcp://127.0.0.1:%d" % port)
print("PORT %d" % port, flush=True)
s.setsockopt(zmq.RCVTIMEO, 60000)
sub = s.recv()
if sub[:1] != b"\x01":
    sys.exit("unexpected first message from subscriber: %r" % sub)
for frames in json.load(open(batch)):
    s.send_multipart([f.encode("utf-8") for f in frames])
print("SENT", flush=True)
sys.stdin.read()
s.close()
ctx.term()
`

const pythonPath = "/usr/bin/python3"

// requireLibzmq fails the test when python3-zmq is missing: the libzmq
// interop test is part of the contract. STATSCACHE_SKIP_LIBZMQ=1 opts out.
func requireLibzmq(t *testing.T) {
	t.Helper()
	if os.Getenv("STATSCACHE_SKIP_LIBZMQ") == "1" {
		t.Skip("STATSCACHE_SKIP_LIBZMQ=1")
	}
	out, err := exec.Command(pythonPath, "-c", "import zmq; print(zmq.zmq_version())").CombinedOutput()
	if err != nil {
		t.Fatalf("the libzmq interop test needs %s with python3-zmq (apt-get install -y python3 python3-zmq), or STATSCACHE_SKIP_LIBZMQ=1: %v\n%s", pythonPath, err, out)
	}
	t.Logf("libzmq %s", strings.TrimSpace(string(out)))
}

type pyProc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string
	port  int
	wait  chan error
}

func startPy(t *testing.T, port int, batch [][]string) *pyProc {
	t.Helper()
	dir := t.TempDir()
	script := filepath.Join(dir, "pub.py")
	if err := os.WriteFile(script, []byte(pyPublisher), 0o644); err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(batch)
	if err != nil {
		t.Fatal(err)
	}
	bf := filepath.Join(dir, "batch.json")
	if err := os.WriteFile(bf, data, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(pythonPath, script, fmt.Sprint(port), bf)
	cmd.Stderr = testWriter{t}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &pyProc{cmd: cmd, stdin: stdin, lines: make(chan string, 4), wait: make(chan error, 1)}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		close(p.lines)
		p.wait <- cmd.Wait()
	}()
	t.Cleanup(func() { p.stop(t) })
	line := p.expect(t, "PORT ")
	if _, err := fmt.Sscanf(line, "PORT %d", &p.port); err != nil {
		t.Fatalf("publisher said %q", line)
	}
	return p
}

func (p *pyProc) expect(t *testing.T, prefix string) string {
	t.Helper()
	select {
	case line, ok := <-p.lines:
		if !ok || !strings.HasPrefix(line, prefix) {
			t.Fatalf("python publisher: got %q (open %v), want %q...", line, ok, prefix)
		}
		return line
	case <-time.After(testTimeout):
		t.Fatalf("python publisher did not say %q", prefix)
	}
	return ""
}

// stop closes stdin, which makes the publisher exit, and waits for it.
func (p *pyProc) stop(t *testing.T) {
	if p.stdin == nil {
		return
	}
	p.stdin.Close()
	p.stdin = nil
	select {
	case err := <-p.wait:
		if err != nil {
			t.Errorf("python publisher: %v", err)
		}
	case <-time.After(testTimeout):
		p.cmd.Process.Kill()
		t.Errorf("python publisher did not exit")
	}
}

func framesOf(envs []envelope) [][]string {
	var out [][]string
	for _, e := range envs {
		out = append(out, []string{e.Topic, string(e.Envelope)})
	}
	return out
}

func TestLibzmqPublisher(t *testing.T) {
	requireLibzmq(t)
	envs := sampleEnvelopes(t, 80)
	bad, reasons := badFrames(envs[0])
	batch := framesOf(envs[:40])
	for _, f := range bad {
		var fs []string
		for _, b := range f {
			fs = append(fs, string(b))
		}
		batch = append(batch, fs)
	}
	batch = append(batch, framesOf(envs[40:])...)
	py := startPy(t, 0, batch)
	h := startSubscriber(t, Config{Endpoints: []string{fmt.Sprintf("tcp://127.0.0.1:%d", py.port)}})
	py.expect(t, "SENT")
	h.waitFor(t, "every good message and the rejects", func() bool {
		return h.hasAll(envs) && int(h.sub.Stats().Rejected) >= len(bad)
	})
	h.checkDecoded(t, envs)
	checkReasons(t, h.sub.Stats(), countReasons(reasons))
	h.mu.Lock()
	for i, id := range h.order {
		if id != envs[i].ID {
			t.Errorf("message %d is %s, want %s", i, id, envs[i].ID)
			break
		}
	}
	h.mu.Unlock()
}

func TestLibzmqReconnect(t *testing.T) {
	requireLibzmq(t)
	envs := sampleEnvelopes(t, 60)
	py := startPy(t, 0, framesOf(envs[:30]))
	port := py.port
	h := startSubscriber(t, Config{Endpoints: []string{fmt.Sprintf("tcp://127.0.0.1:%d", port)}})
	py.expect(t, "SENT")
	h.waitFor(t, "the first batch", func() bool { return h.hasAll(envs[:30]) })
	py.stop(t)
	h.waitFor(t, "the disconnect", func() bool { return h.sub.Stats().Disconnects >= 1 })
	// A new publisher process on the same port: the subscriber re-dials,
	// re-subscribes, and the publisher sends once it sees the subscription.
	py2 := startPy(t, port, framesOf(envs[30:]))
	py2.expect(t, "SENT")
	h.waitFor(t, "the second batch", func() bool { return h.hasAll(envs[30:]) })
	h.checkDecoded(t, envs)
	if st := h.sub.Stats(); st.Reconnects < 1 || st.Rejected != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestIdleTimeoutRedials(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	pub, err := NewPublisher(ctx, "tcp://127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	h := startSubscriber(t, Config{Endpoints: []string{pub.Endpoint()}, IdleTimeout: 150 * time.Millisecond})
	// A silent publisher: the subscriber drops and re-dials the connection.
	h.waitFor(t, "idle reconnects", func() bool { return h.sub.Stats().Reconnects >= 2 })
	envs := sampleEnvelopes(t, 5)
	publishUntil(t, ctx, h, pub, envs)
}

// FuzzAccept feeds arbitrary frames and byte streams to the two places
// that read untrusted bus input: neither may panic, and every message is
// either accepted or rejected.
func FuzzAccept(f *testing.F) {
	f.Add([]byte("org.fedoraproject.prod.x"), []byte(`{"msg_id":"2024-a","topic":"org.fedoraproject.prod.x","timestamp":1,"msg":{}}`), 2)
	f.Add([]byte("t"), []byte(`{"msg_id":`), 3)
	f.Add([]byte{0xff}, []byte{}, 1)
	f.Fuzz(func(t *testing.T, topic, env []byte, nframes int) {
		s := New(Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		frames := [][]byte{topic, env}
		switch {
		case nframes%4 == 1:
			frames = frames[:1]
		case nframes%4 == 3:
			frames = append(frames, env)
		}
		var dec engine.Decoder
		m := s.accept(s.log, &dec, "fuzz", frames)
		st := s.Stats()
		if st.Received != 1 || st.Accepted+st.Rejected != 1 || (m != nil) != (st.Accepted == 1) {
			t.Fatalf("stats %+v, message %v", st, m != nil)
		}
		c1, c2 := net.Pipe()
		defer c1.Close()
		defer c2.Close()
		g := &guardedConn{Conn: c1, opts: dialOptions{frameLimit: 1 << 10}, greeting: zmtpGreetingLen}
		g.scan(append(append(topic, env...), topic...))
	})
}
