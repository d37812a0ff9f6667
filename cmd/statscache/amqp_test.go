package main

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"math/rand"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	rmq "github.com/rabbitmq/amqp091-go"

	"statscache/engine"
	"statscache/engine/amqp"
	"statscache/engine/amqp/amqptest"
	"statscache/engine/archive/dgtest"
)

// fmCorpus makes fedora-messaging messages and recounts them. Their
// topics are handled by no fedmsg.meta rule and their bodies name nobody,
// so the users and packages a message is about are exactly those of its
// headers: the recount of volume-by-user and volume-by-package needs no
// rules.
type fmCorpus struct {
	prefix string // the test's own topic prefix (amqptest.TopicPrefix)
	mu     sync.Mutex
	rng    *rand.Rand
	seen   map[string]bool
	all    []amqptest.Message
}

func newFMCorpus(seed int64) *fmCorpus {
	return &fmCorpus{prefix: amqptest.TopicPrefix(), rng: rand.New(rand.NewSource(seed)), seen: map[string]bool{}}
}

var fmCategories = []string{"sctest", "scbuild", "scupdate", "scwiki"}

// message makes a message sent at t (whole seconds, as fedora-messaging
// sends them).
func (c *fmCorpus) message(t time.Time) amqptest.Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	cat := fmCategories[c.rng.Intn(len(fmCategories))]
	m := amqptest.Message{
		ID:     amqp.NewQueueName(),
		Topic:  fmt.Sprintf("%s%s.thing.%s", c.prefix, cat, []string{"new", "done"}[c.rng.Intn(2)]),
		SentAt: t.UTC().Truncate(time.Second),
		Body:   map[string]any{"n": c.rng.Intn(1000), "note": "statscache test"},
	}
	for i, n := 0, c.rng.Intn(3); i < n; i++ {
		m.Users = append(m.Users, fmt.Sprintf("user%d", c.rng.Intn(7)))
	}
	if c.rng.Intn(2) == 0 {
		m.Pkgs = []string{[]string{"kernel", "glibc", "python3"}[c.rng.Intn(3)]}
	}
	return m
}

// counted records that m reaches statscache (once, whatever the copies).
func (c *fmCorpus) counted(m amqptest.Message) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.seen[m.ID] {
		c.seen[m.ID] = true
		c.all = append(c.all, m)
	}
}

func (c *fmCorpus) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.all)
}

// volumeTables are the shipped volume models: table prefix, intervals and
// what each message counts under.
var volumeTables = []struct {
	table     string
	intervals []int64
	keys      func(m amqptest.Message) []string
}{
	{"model_volume", []int64{1, 5, 60}, func(amqptest.Message) []string { return []string{""} }},
	{"model_volume_by_category", []int64{1, 15, 60, 3600, 86400}, func(m amqptest.Message) []string { return []string{engine.Category(m.Topic)} }},
	{"model_volume_by_topic", []int64{1, 5, 60}, func(m amqptest.Message) []string { return []string{m.Topic} }},
	{"model_volume_by_user", []int64{1, 5, 60}, func(m amqptest.Message) []string { return dedupe(m.Users) }},
	{"model_volume_by_package", []int64{1, 5, 60}, func(m amqptest.Message) []string { return dedupe(m.Pkgs) }},
}

func dedupe(s []string) []string {
	s = append([]string(nil), s...)
	sort.Strings(s)
	out := s[:0]
	for i, x := range s {
		if i == 0 || x != s[i-1] {
			out = append(out, x)
		}
	}
	return out
}

// recount counts the messages per table, bucket end and key.
func (c *fmCorpus) recount() map[string]map[string]int64 {
	out := map[string]map[string]int64{}
	for _, vt := range volumeTables {
		for _, iv := range vt.intervals {
			name := fmt.Sprintf("%s_%s", vt.table, intervalName(iv))
			counts := map[string]int64{}
			for _, m := range c.all {
				ts := m.SentAt.Unix()
				end := ts - ((ts%iv)+iv)%iv + iv
				for _, k := range vt.keys(m) {
					counts[fmt.Sprintf("%d|%s", end, k)]++
				}
			}
			out[name] = counts
		}
	}
	return out
}

func intervalName(iv int64) string {
	switch {
	case iv%86400 == 0:
		return fmt.Sprintf("%dd", iv/86400)
	case iv%3600 == 0:
		return fmt.Sprintf("%dh", iv/3600)
	case iv%60 == 0:
		return fmt.Sprintf("%dm", iv/60)
	}
	return fmt.Sprintf("%ds", iv)
}

// volumeCounts reads the same counts from the database.
func volumeCounts(t *testing.T, path string) map[string]map[string]int64 {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	out := map[string]map[string]int64{}
	for _, vt := range volumeTables {
		key := map[string]string{"model_volume": "''", "model_volume_by_category": "category", "model_volume_by_topic": "topic",
			"model_volume_by_user": `"user"`, "model_volume_by_package": "package"}[vt.table]
		for _, iv := range vt.intervals {
			name := fmt.Sprintf("%s_%s", vt.table, intervalName(iv))
			rows, err := db.Query(fmt.Sprintf(`SELECT printf('%%d|%%s', timestamp, %s), volume FROM %s`, key, name))
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			counts := map[string]int64{}
			for rows.Next() {
				var k string
				var n int64
				rows.Scan(&k, &n)
				counts[k] = n
			}
			rows.Close()
			out[name] = counts
		}
	}
	return out
}

func sameVolumes(t *testing.T, c *fmCorpus, db string) {
	t.Helper()
	want, got := c.recount(), volumeCounts(t, db)
	for name, w := range want {
		sameCounts(t, name, got[name], w)
	}
	if len(want["model_volume_by_user_1m"]) == 0 || len(want["model_volume_by_package_1m"]) == 0 {
		t.Fatal("the corpus names no users or packages: volume-by-user and volume-by-package were not exercised")
	}
}

// amqpStats reads the AMQP part of /status.
func (d *daemonProc) amqpStats(t *testing.T) amqp.Stats {
	t.Helper()
	var st struct {
		Bus struct {
			Transport string     `json:"transport"`
			Stats     amqp.Stats `json:"stats"`
		} `json:"bus"`
	}
	b, _ := json.Marshal(d.status(t))
	json.Unmarshal(b, &st)
	if st.Bus.Transport != "amqp" {
		t.Fatalf("/status bus is %q, want amqp", st.Bus.Transport)
	}
	return st.Bus.Stats
}

func (d *daemonProc) waitConsuming(t *testing.T) amqp.Stats {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if st := d.amqpStats(t); st.State == amqp.StateConnected {
			return st
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("the daemon does not consume:\n%s", tail(d.out.String(), 30))
	return amqp.Stats{}
}

// TestDaemonAMQPKillAndBrokerClose publishes fedora-messaging messages from
// a separate publisher while the daemon (a real process) is killed with
// SIGKILL, restarted on the same database (and so the same queue), and
// disconnected once by the broker: every volume table equals the recount
// of what was published, volume-by-user counting the users of the
// headers; and once stopped cleanly the daemon leaves nothing unacked.
func TestDaemonAMQPKillAndBrokerClose(t *testing.T) {
	url := amqptest.Need(t)
	c := newFMCorpus(7)
	pub := amqptest.NewPublisher(t)
	db := filepath.Join(t.TempDir(), "amqp.db")
	conn := "statscache-test-" + amqp.NewQueueName()[:8]
	args := []string{"--db", db, "--scripts", "../../scripts", "--bus", url, "--amqp-connection-name", conn, "--topic", c.prefix,
		// A lateness above the default: on a machine loaded far past its
		// cores (load 20 on 2 cores was seen) the daemon can fall seconds
		// behind the publisher, and a message it journals later than
		// that counts as late, whatever the transport.
		"--epoch", time.Now().Add(-time.Hour).Format(time.RFC3339), "--lateness", "5s", "--batch-interval", "100ms"}
	d := startDaemon(t, args...)
	st := d.waitConsuming(t)
	queue := st.Queue
	amqptest.DeleteQueue(t, queue)
	t.Cleanup(func() { killDaemon(d) }) // first: a daemon left running would declare the queue again
	if len(queue) != 36 || !slices.Equal(st.Bindings, []string{c.prefix + "#"}) {
		t.Fatalf("queue %q bindings %q: want a UUID bound with %s#", queue, st.Bindings, c.prefix)
	}

	stop := make(chan struct{})
	var pubErr error
	published := make(chan struct{})
	go func() {
		defer close(published)
		for {
			select {
			case <-stop:
				return
			default:
			}
			m := c.message(time.Now())
			if pubErr = pub.Publish(m); pubErr != nil {
				return
			}
			c.counted(m)
			time.Sleep(3 * time.Millisecond)
		}
	}()
	waitFor := func(n int) {
		for c.len() < n && pubErr == nil {
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitFor(300)
	d.cmd.Process.Kill() // SIGKILL: no handler runs, nothing is flushed or acked
	<-d.done
	waitFor(c.len() + 200) // published while the daemon is down: they wait in the queue
	// Down for longer than the lateness window: what the killed daemon had
	// received and not journaled is then older than the watermark at the
	// restart, and only the hold while the backlog comes in keeps the
	// models from passing it.
	time.Sleep(6 * time.Second)
	d = startDaemon(t, args...)
	if st := d.waitConsuming(t); st.Queue != queue {
		t.Fatalf("restarted on queue %s, want the stored %s", st.Queue, queue)
	}
	waitFor(c.len() + 300)
	if n := len(amqptest.CloseConnections(t, conn)); n != 1 {
		t.Fatalf("closed %d connections named %s, want 1", n, conn)
	}
	waitFor(c.len() + 300)
	close(stop)
	<-published
	if pubErr != nil {
		t.Fatal(pubErr)
	}
	d.waitTotal(t, int64(c.len()))
	st = d.amqpStats(t)
	if st.Reconnects < 1 || st.State != amqp.StateConnected {
		t.Errorf("after the broker closed the connection: %+v", st)
	}
	t.Logf("published %d; after the restart: %d deliveries, %d redelivered, %d acked, %d reconnects",
		c.len(), st.Deliveries, st.Redelivered, st.Acked, st.Reconnects)
	d.stop(t)
	sameVolumes(t, c, db)
	if n := amqptest.QueueDepth(t, queue); n != 0 {
		t.Errorf("%d messages left in the queue after a clean stop", n)
	}
	// Redeliveries older than what models had passed would be journaled
	// as late, and those models would never count them.
	sdb := openRO(t, db)
	defer sdb.Close()
	var late int
	if err := sdb.QueryRow(`SELECT count(*) FROM journal WHERE late = 1`).Scan(&late); err != nil || late != 0 {
		t.Errorf("%d messages journaled late (%v)", late, err)
	}
}

// TestDaemonAMQPAndArchive: some messages reach only the archive (the
// daemon was down too long), some only AMQP, some both (waiting in the
// queue and in the archive, a bridged one with its fedmsg id "YYYY-uuid"
// in the archive): each is counted once. Bad deliveries of every kind are
// rejected with their reason, kept, counted, and the stream goes on.
func TestDaemonAMQPAndArchive(t *testing.T) {
	url := amqptest.Need(t)
	c := newFMCorpus(11)
	pub := amqptest.NewPublisher(t)
	queue := amqp.NewQueueName()
	amqptest.DeclareQueue(t, queue, c.prefix+"#")
	now := time.Now()
	record := func(m amqptest.Message, id string) []byte {
		return dgtest.AMQPRecord(dgtest.AMQPMessage{ID: id, Topic: m.Topic, Headers: m.HeadersJSON(),
			Body: json.RawMessage(m.BodyJSON()), Users: m.Users, Packages: m.Pkgs})
	}
	var history [][]byte
	for i := 0; i < 300; i++ { // only in the archive
		m := c.message(now.Add(-50 * time.Minute).Add(time.Duration(i) * 8 * time.Second))
		history = append(history, record(m, m.ID))
		c.counted(m)
	}
	for i := 0; i < 120; i++ { // in the queue and in the archive
		m := c.message(now.Add(-9 * time.Minute).Add(time.Duration(i) * 4 * time.Second))
		id := m.ID
		if i%6 == 0 {
			id = m.SentAt.Format("2006") + "-" + m.ID // as the fedmsg bridge named it
		}
		history = append(history, record(m, id))
		if err := pub.Publish(m); err != nil {
			t.Fatal(err)
		}
		c.counted(m)
	}
	dg := dgtest.New(history, dgtest.Options{})
	defer dg.Close()
	db := filepath.Join(t.TempDir(), "both.db")
	d := startDaemon(t, "--db", db, "--scripts", "../../scripts", "--bus", url, "--amqp-queue", queue,
		"--topic", c.prefix, "--datagrepper", dg.URL, "--epoch", now.Add(-time.Hour).Format(time.RFC3339),
		"--settle", "1s", "--lateness", "2s", "--batch-interval", "100ms", "--max-bytes", "65536")
	t.Cleanup(func() { killDaemon(d) })
	if st := d.waitConsuming(t); st.Queue != queue || !slices.Equal(st.Bindings, []string{c.prefix + "#"}) {
		t.Fatalf("consuming %s with %q", st.Queue, st.Bindings)
	}
	topic := c.prefix + "sctest.bad.input"
	sentAt := time.Now().UTC().Format(time.RFC3339)
	raw := func(id, body string, h rmq.Table) rmq.Publishing {
		if h == nil {
			h = rmq.Table{"sent-at": sentAt}
		}
		return rmq.Publishing{ContentType: "application/json", MessageId: id, Headers: h, Body: []byte(body)}
	}
	bad := []struct {
		reason string
		pub    rmq.Publishing
	}{
		{engine.RejectNotJSON, raw("bad-1", `{"unterminated": `, nil)},
		{engine.RejectNotObject, raw("bad-2", `["a", "list"]`, nil)},
		{engine.RejectNoID, raw("", `{"a": 1}`, nil)},
		{engine.RejectNoSentAt, raw("bad-4", `{"a": 1}`, rmq.Table{"fedora_messaging_severity": int32(20)})},
		{engine.RejectBadSentAt, raw("bad-5", `{"a": 1}`, rmq.Table{"sent-at": "2024-13-45T99:00:00"})},
		{engine.RejectTooLarge, raw("bad-6", `{"blob": "`+strings.Repeat("x", 70000)+`"}`, nil)},
		{engine.RejectTooDeep, raw("bad-7", `{"a": `+strings.Repeat("[", 80)+strings.Repeat("]", 80)+`}`, nil)},
	}
	for i := 0; i < 150; i++ {
		m := c.message(time.Now())
		if err := pub.Publish(m); err != nil {
			t.Fatal(err)
		}
		c.counted(m)
		if i%3 == 0 { // both: datanommer has it too
			dg.Add(record(m, m.ID))
		}
		if i%20 == 0 && i/20 < len(bad) {
			if err := pub.PublishRaw(topic, bad[i/20].pub); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	d.waitTotal(t, int64(c.len()))
	metrics := get(t, "http://"+d.addr+"/metrics")
	for _, b := range bad {
		re := regexp.MustCompile(`statscache_amqp_rejected_total\{reason="` + regexp.QuoteMeta(b.reason) + `"\} 1\b`)
		if !re.MatchString(metrics) {
			t.Errorf("no reject counted for %q:\n%s", b.reason, grep(metrics, "rejected"))
		}
	}
	if !strings.Contains(metrics, fmt.Sprintf(`statscache_messages_rejected_total{source="bus"} %d`, len(bad))) {
		t.Errorf("bus rejects not counted as %d:\n%s", len(bad), grep(metrics, "rejected"))
	}
	st := d.amqpStats(t)
	d.stop(t)
	sameVolumes(t, c, db)
	sdb := openRO(t, db)
	defer sdb.Close()
	var kept int
	if err := sdb.QueryRow(`SELECT count(*) FROM rejects WHERE source LIKE 'amqp %'`).Scan(&kept); err != nil || kept != len(bad) {
		t.Errorf("%d rejects kept (%v), want %d", kept, err, len(bad))
	}
	var journaled int
	sdb.QueryRow(`SELECT count(*) FROM journal`).Scan(&journaled)
	if journaled != c.len() {
		t.Errorf("journal holds %d messages, want %d (one per message, whatever the copies)", journaled, c.len())
	}
	if n := amqptest.QueueDepth(t, queue); n != 0 {
		t.Errorf("%d messages left in the queue: rejects and duplicates must be acknowledged too", n)
	}
	t.Logf("%d messages (300 archive only, 120 both before the start, 150 live of which 50 also archived); amqp %+v", c.len(), st)
}

// killDaemon kills a daemon a failed test left running and waits for it.
func killDaemon(d *daemonProc) {
	if d.cmd.Process.Kill() != nil {
		return // already gone
	}
	select {
	case <-d.done:
	case <-time.After(5 * time.Second):
	}
}

// TestRunNeedsFedoraFiles: with no --bus, run wants Fedora's broker and
// says which files it lacks and where they come from, before touching
// the network.
func TestRunNeedsFedoraFiles(t *testing.T) {
	dir := t.TempDir()
	out, err := command("run", "--db", filepath.Join(dir, "x.db"), "--amqp-ca", filepath.Join(dir, "ca.pem"),
		"--amqp-cert", filepath.Join(dir, "cert.pem"), "--amqp-key", filepath.Join(dir, "key.pem")).CombinedOutput()
	if err == nil {
		t.Fatalf("run started without the broker's files:\n%s", out)
	}
	for _, want := range []string{amqp.FedoraURL, "ca.pem", "cert.pem", "key.pem", "fedora-messaging", "--amqp-ca"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the message does not mention %q:\n%s", want, out)
		}
	}
	out, _ = command("run", "--db", filepath.Join(dir, "x.db"), "--bus", "amqp://127.0.0.1/", "--bus", "tcp://127.0.0.1:1").CombinedOutput()
	if !strings.Contains(string(out), "either ZeroMQ endpoints") {
		t.Errorf("mixed transports accepted:\n%s", out)
	}
	out, _ = command("run", "--help").CombinedOutput()
	for _, want := range []string{"-amqp-queue", "-amqp-ca", "-amqp-cert", "-amqp-key", amqp.FedoraURL, amqp.FedoraCA} {
		if !strings.Contains(string(out), want) {
			t.Errorf("run --help does not mention %q", want)
		}
	}
}
