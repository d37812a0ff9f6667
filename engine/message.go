package engine

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/valyala/fastjson"
)

// Message is one bus message, normalized from whatever shape it arrived in:
// a datagrepper /raw record, a /v2 record or a fedmsg ZeroMQ envelope. It is
// immutable once decoded and may be shared by every model goroutine.
type Message struct {
	// ID is the message id as the source sent it ("2015-<uuid>" or "<uuid>").
	ID string
	// Key is the dedupe key: ID without a leading "YYYY-". The same message
	// bridged between ZeroMQ and AMQP carries both forms.
	Key string
	// Topic is the full topic, e.g. org.fedoraproject.prod.buildsys.build.state.change.
	Topic string
	// TimeUS is the message time in microseconds since the Unix epoch (UTC).
	TimeUS int64
	// Raw is the record exactly as received. Body and headers are read from
	// it on demand, so models that never look at the body never pay for it.
	// A message read from the journal may hold it in stored form instead
	// (SetPacked): read it with Record, never from Raw directly, unless the
	// message was decoded here.
	Raw []byte

	rawMu  sync.Mutex
	packed []byte                       // Raw in stored form, until Record unpacks it
	unpack func([]byte) ([]byte, error) // nil unless packed is set
	size   int                          // the record's length once unpacked, while packed
	// grown is told by how many bytes the unpacked record differs from
	// size when Record unpacks it (nothing, unless the stored form's
	// header was wrong): the scan cache that holds the message counts it
	// (see watchSize).
	grown interface{ grew(int) }

	memoMu sync.Mutex
	// The first key memoized is held in place, the others in memo: one
	// key (fedmsg.meta's) is the common case, and a map made for every
	// message, hashed through its interface keys, was a tenth of the cost
	// of sharing fedmsg.meta's results between models.
	memoSet          bool
	memoKey, memoVal any
	memo             map[any]any
}

// SetPacked gives a message read from the journal its record in the form
// the journal stores it: Record unpacks it the first time something reads
// the record. Counting models read only the topic and the time, so most
// messages are never unpacked, and the journal reads the runners share
// (scanCache) hold a quarter of the bytes: at 1,000,000 messages they were
// most of a replay's heap.
//
// size is the record's length once unpacked, as the stored form's header
// gives it (0 when unknown: the stored length). Size reports it from the
// start, so that the scan cache counts a record at what it will take once
// a model unpacks it, not less: counted at its stored size, a batch that
// the fedmsg.meta models unpacked after the counting models had cached it
// grew the cache past its bound, which then dropped batches the models
// behind had still to read (see scanCache.pace).
func (m *Message) SetPacked(stored []byte, size int, unpack func([]byte) ([]byte, error)) {
	if size <= 0 {
		size = len(stored)
	}
	m.rawMu.Lock()
	m.Raw, m.packed, m.unpack, m.size = nil, stored, unpack, size
	m.rawMu.Unlock()
}

// Record returns the record (Raw), unpacking it first when the message came
// from the journal in stored form. It is safe for concurrent use. A stored
// record that does not unpack (a damaged journal) gives an error naming
// the message, each time it is read.
func (m *Message) Record() ([]byte, error) {
	m.rawMu.Lock()
	if m.unpack == nil {
		defer m.rawMu.Unlock()
		return m.Raw, nil
	}
	raw, err := m.unpack(m.packed)
	if err != nil {
		m.rawMu.Unlock()
		return nil, fmt.Errorf("message %s: journal record: %w", m.ID, err)
	}
	grew, grown := len(raw)-m.size, m.grown
	m.Raw, m.packed, m.unpack, m.grown = raw, nil, nil, nil
	m.rawMu.Unlock()
	// Told without rawMu: the cache takes its own lock, and holds it
	// while it reads messages' sizes.
	if grown != nil && grew != 0 {
		grown.grew(grew)
	}
	return raw, nil
}

// Size is how many bytes the record takes unpacked, whether it is yet or
// not (see SetPacked).
func (m *Message) Size() int {
	m.rawMu.Lock()
	defer m.rawMu.Unlock()
	if m.unpack != nil {
		return m.size
	}
	return len(m.Raw)
}

// watchSize returns Size, and has w told how much the record grows by if
// it is unpacked later: the two in one step, so that no growth is missed
// or counted twice.
func (m *Message) watchSize(w interface{ grew(int) }) int {
	m.rawMu.Lock()
	defer m.rawMu.Unlock()
	if m.unpack != nil {
		m.grown = w
		return m.size
	}
	return len(m.Raw)
}

// Memo returns the value cached on the message under key, computing it
// with fn the first time. It lets work that every model would repeat (such
// as extracting the users a message is about) run once per message, shared
// by all models.
func (m *Message) Memo(key any, fn func() any) any {
	m.memoMu.Lock()
	defer m.memoMu.Unlock()
	if m.memoSet && m.memoKey == key {
		return m.memoVal
	}
	if v, ok := m.memo[key]; ok {
		return v
	}
	v := fn()
	switch {
	case !m.memoSet:
		m.memoSet, m.memoKey, m.memoVal = true, key, v
	case m.memo == nil:
		m.memo = map[any]any{key: v}
	default:
		m.memo[key] = v
	}
	return v
}

// Position is a place in the journal's total order: (time, key). The zero
// Position is before every message.
type Position struct {
	TimeUS int64  `json:"time_us"`
	Key    string `json:"key"`
}

// Pos returns the message's place in the total order.
func (m *Message) Pos() Position { return Position{m.TimeUS, m.Key} }

// Less orders positions by time, then key. The zero Position comes before
// every other one, including messages from before 1970.
func (p Position) Less(q Position) bool {
	if p.IsZero() || q.IsZero() {
		return p.IsZero() && !q.IsZero()
	}
	if p.TimeUS != q.TimeUS {
		return p.TimeUS < q.TimeUS
	}
	return p.Key < q.Key
}

// IsZero reports whether p is the start of the journal.
func (p Position) IsZero() bool { return p.TimeUS == 0 && p.Key == "" }

// Time returns the message time as a time.Time in UTC.
func (m *Message) Time() time.Time { return time.UnixMicro(m.TimeUS).UTC() }

// Seconds returns the message time in Unix seconds.
func (m *Message) Seconds() float64 { return float64(m.TimeUS) / 1e6 }

// Category is datagrepper's category of the message: the fourth word of the
// topic (the third for ActiveMQ "VirtualTopic" topics), or "Unclassified"
// when the topic is too short.
func (m *Message) Category() string { return Category(m.Topic) }

// Category computes datagrepper's category of a topic; see Message.Category.
func Category(topic string) string {
	want := 3
	if strings.Contains(topic, "VirtualTopic") {
		want = 2
	}
	rest := topic
	for i := 0; i < want; i++ {
		j := strings.IndexByte(rest, '.')
		if j < 0 {
			return "Unclassified"
		}
		rest = rest[j+1:]
	}
	if j := strings.IndexByte(rest, '.'); j >= 0 {
		rest = rest[:j]
	}
	return rest
}

// DedupeKey strips a leading "YYYY-" (four ASCII digits and a dash) from id.
func DedupeKey(id string) string {
	if len(id) > 5 && id[4] == '-' && isDigits(id[:4]) {
		return id[5:]
	}
	return id
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// Limits bound what a single record may cost. The defaults are far above
// anything a real Fedora message reaches (the largest in the corpus is a few
// hundred KiB and nests about a dozen levels deep).
type Limits struct {
	MaxBytes int // whole record, in bytes
	MaxDepth int // nesting of objects and arrays
}

// DefaultLimits are the limits used when none are configured.
var DefaultLimits = Limits{MaxBytes: 8 << 20, MaxDepth: 64}

// ErrRejected is wrapped by every error returned for a record that cannot be
// accepted; callers count such records and carry on.
var ErrRejected = errors.New("record rejected")

// RejectError says why a record was rejected.
type RejectError struct {
	ID     string // the id, when the record had one
	Reason string
}

func (e *RejectError) Error() string {
	if e.ID != "" {
		return fmt.Sprintf("record %s rejected: %s", e.ID, e.Reason)
	}
	return "record rejected: " + e.Reason
}

// Unwrap lets errors.Is(err, ErrRejected) match.
func (e *RejectError) Unwrap() error { return ErrRejected }

func reject(id, format string, args ...any) error {
	return &RejectError{ID: id, Reason: fmt.Sprintf(format, args...)}
}

// Decoder turns records into messages. It reuses a parser, so one Decoder
// must not be used by two goroutines at once.
type Decoder struct {
	Limits Limits
	p      fastjson.Parser
}

// Decode reads one record: a datagrepper /raw record ({msg_id, topic,
// timestamp, msg}), a /v2 record ({id, topic, body, headers["sent-at"]}) or a
// fedmsg envelope (like /raw, with an integer timestamp). The returned
// message keeps its own copy of raw.
func (d *Decoder) Decode(raw []byte) (*Message, error) {
	lim := d.Limits
	if lim.MaxBytes <= 0 {
		lim.MaxBytes = DefaultLimits.MaxBytes
	}
	if lim.MaxDepth <= 0 {
		lim.MaxDepth = DefaultLimits.MaxDepth
	}
	if len(raw) > lim.MaxBytes {
		return nil, reject("", "%d bytes is over the limit of %d", len(raw), lim.MaxBytes)
	}
	if depth := jsonDepth(raw); depth > lim.MaxDepth {
		return nil, reject("", "nesting depth %d is over the limit of %d", depth, lim.MaxDepth)
	}
	if why := checkText(raw); why != "" {
		return nil, reject("", "%s", why)
	}
	v, err := d.p.ParseBytes(raw)
	if err != nil {
		return nil, reject("", "not valid JSON: %v", err)
	}
	if v.Type() != fastjson.TypeObject {
		return nil, reject("", "not a JSON object but %s", v.Type())
	}
	m := &Message{}
	// The id: msg_id (/raw, fedmsg) or id (/v2, fedora-messaging).
	idv := v.Get("msg_id")
	if idv == nil || idv.Type() == fastjson.TypeNull {
		idv = v.Get("id")
	}
	if idv == nil || idv.Type() != fastjson.TypeString {
		return nil, reject("", "no string msg_id or id")
	}
	m.ID = string(idv.GetStringBytes())
	if strings.TrimSpace(m.ID) == "" {
		return nil, reject("", "empty id")
	}
	m.Key = DedupeKey(m.ID)
	tv := v.Get("topic")
	if tv == nil || tv.Type() != fastjson.TypeString || len(tv.GetStringBytes()) == 0 {
		return nil, reject(m.ID, "no string topic")
	}
	m.Topic = string(tv.GetStringBytes())
	ts, err := recordTime(v)
	if err != nil {
		return nil, reject(m.ID, "%v", err)
	}
	m.TimeUS = ts
	if b := v.Get("msg"); b == nil {
		if b = v.Get("body"); b == nil {
			return nil, reject(m.ID, "no msg or body")
		}
	}
	m.Raw = append([]byte(nil), raw...)
	return m, nil
}

// maxTimeUS bounds accepted times to years 0001..9999, where every
// conversion in the engine, SQLite and JSON stays exact.
const (
	minTimeUS = -62135596800 * 1e6
	maxTimeUS = 253402300799 * 1e6
)

func recordTime(v *fastjson.Value) (int64, error) {
	// An AMQP-era record's sent-at header is the time its bus copy gets
	// (see DecodeDelivery); /raw's timestamp is the same time cut to the
	// second, so the header wins when it is a valid one.
	if s := v.Get("headers", "sent-at"); s != nil && s.Type() == fastjson.TypeString {
		if t, err := ParseSentAt(string(s.GetStringBytes())); err == nil {
			return t.UnixMicro(), nil
		}
	}
	if t := v.Get("timestamp"); t != nil && t.Type() != fastjson.TypeNull {
		if t.Type() != fastjson.TypeNumber {
			return 0, fmt.Errorf("timestamp is %s, not a number", t.Type())
		}
		f, err := t.Float64()
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return 0, fmt.Errorf("timestamp is not a finite number")
		}
		us := math.Round(f * 1e6)
		if us < minTimeUS || us > maxTimeUS {
			return 0, fmt.Errorf("timestamp %v is out of range", f)
		}
		return int64(us), nil
	}
	if s := v.Get("headers", "sent-at"); s != nil {
		if s.Type() != fastjson.TypeString {
			return 0, fmt.Errorf("headers.sent-at is %s, not a string", s.Type())
		}
		t, err := parseSentAt(string(s.GetStringBytes()))
		if err != nil {
			return 0, err
		}
		return t.UnixMicro(), nil
	}
	return 0, fmt.Errorf("no numeric timestamp and no headers.sent-at")
}

func parseSentAt(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999Z07:00"} {
		if t, err := time.Parse(layout, s); err == nil {
			if t.Year() < 1 || t.Year() > 9999 {
				break
			}
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("headers.sent-at %q is not an ISO-8601 time", s)
}

// jsonDepth returns the deepest nesting of objects and arrays in b, skipping
// strings. It is a byte scan, cheap enough to run before parsing so that a
// hostile record never reaches the recursive parser.
func jsonDepth(b []byte) int {
	depth, max := 0, 0
	inStr := false
	for i := 0; i < len(b); i++ {
		c := b[i]
		if inStr {
			switch c {
			case '\\':
				i++
			case '"':
				inStr = false
			}
			continue
		}
		switch c {
		case '"':
			inStr = true
		case '{', '[':
			depth++
			if depth > max {
				max = depth
			}
		case '}', ']':
			depth--
		}
	}
	return max
}

// Body parses the message body (the record's "msg", or "body") with p and
// returns it. The value is valid until p is used again.
func (m *Message) Body(p *fastjson.Parser) (*fastjson.Value, error) {
	raw, err := m.Record()
	if err != nil {
		return nil, err
	}
	v, err := p.ParseBytes(raw)
	if err != nil {
		return nil, fmt.Errorf("message %s: body: %w", m.ID, err)
	}
	if b := v.Get("msg"); b != nil {
		return b, nil
	}
	if b := v.Get("body"); b != nil {
		return b, nil
	}
	return nil, fmt.Errorf("message %s: no msg or body", m.ID)
}

// Headers returns the record's headers object, or nil when it has none.
func (m *Message) Headers(p *fastjson.Parser) (*fastjson.Value, error) {
	raw, err := m.Record()
	if err != nil {
		return nil, err
	}
	v, err := p.ParseBytes(raw)
	if err != nil {
		return nil, fmt.Errorf("message %s: headers: %w", m.ID, err)
	}
	return v.Get("headers"), nil
}
