package engine_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/valyala/fastjson"

	"statscache/engine"
)

const (
	uuid1 = "3f9a1e0c-6b1f-4c8e-9a53-1c2d3e4f5a6b"
	uuid2 = "5c2a0d4e-77aa-4b0c-8f1e-0a1b2c3d4e5f"
)

// decodeOK are records of every accepted shape, with the fields they decode to.
var decodeOK = []struct {
	name     string
	limits   engine.Limits
	rec      string
	id, key  string
	topic    string
	timeUS   int64
	category string
}{
	{
		name:     "OKRawFloatTimestamp",
		rec:      `{"i": 1, "msg": {"owner": "ralph"}, "msg_id": "2015-` + uuid1 + `", "timestamp": 1439121600.25, "topic": "org.fedoraproject.prod.buildsys.build.state.change", "username": "apache"}`,
		id:       "2015-" + uuid1,
		key:      uuid1,
		topic:    "org.fedoraproject.prod.buildsys.build.state.change",
		timeUS:   1439121600250000,
		category: "buildsys",
	},
	{
		name:     "OKRawTenthOfASecond",
		rec:      `{"msg_id": "2015-` + uuid1 + `", "topic": "org.fedoraproject.prod.buildsys.tag", "timestamp": 1439121659.9, "msg": {}}`,
		id:       "2015-" + uuid1,
		key:      uuid1,
		topic:    "org.fedoraproject.prod.buildsys.tag",
		timeUS:   1439121659900000,
		category: "buildsys",
	},
	{
		name:     "OKRawMicroseconds",
		rec:      `{"msg_id": "2015-` + uuid1 + `", "topic": "org.fedoraproject.prod.buildsys.tag", "timestamp": 1439121659.999999, "msg": {}}`,
		id:       "2015-" + uuid1,
		key:      uuid1,
		topic:    "org.fedoraproject.prod.buildsys.tag",
		timeUS:   1439121659999999,
		category: "buildsys",
	},
	{
		name:     "OKFedmsgEnvelopeIntTimestamp",
		rec:      `{"username": "apache", "i": 5, "timestamp": 1439121660, "msg_id": "2015-` + uuid2 + `", "crypto": "x509", "topic": "org.fedoraproject.prod.bodhi.update.comment", "msg": {"comment": {"text": "works"}}}`,
		id:       "2015-" + uuid2,
		key:      uuid2,
		topic:    "org.fedoraproject.prod.bodhi.update.comment",
		timeUS:   1439121660000000,
		category: "bodhi",
	},
	{
		name:     "OKV2SentAtOffset",
		rec:      `{"id": "` + uuid2 + `", "topic": "org.fedoraproject.prod.fedocal.calendar.new", "body": {"agent": "pingou"}, "headers": {"fedora_messaging_schema": "base.message", "sent-at": "2018-11-18T10:11:41+00:00"}}`,
		id:       uuid2,
		key:      uuid2,
		topic:    "org.fedoraproject.prod.fedocal.calendar.new",
		timeUS:   1542535901000000,
		category: "fedocal",
	},
	{
		name:     "OKV2SentAtZMicroseconds",
		rec:      `{"id": "` + uuid2 + `", "topic": "org.fedoraproject.prod.fedocal.calendar.new", "body": {}, "headers": {"sent-at": "2018-11-18T10:11:41.123456Z"}}`,
		id:       uuid2,
		key:      uuid2,
		topic:    "org.fedoraproject.prod.fedocal.calendar.new",
		timeUS:   1542535901123456,
		category: "fedocal",
	},
	{
		name:     "OKV2SentAtOtherZone",
		rec:      `{"id": "` + uuid2 + `", "topic": "org.fedoraproject.prod.fedocal.calendar.new", "body": {}, "headers": {"sent-at": "2018-11-18T11:11:41+01:00"}}`,
		id:       uuid2,
		key:      uuid2,
		topic:    "org.fedoraproject.prod.fedocal.calendar.new",
		timeUS:   1542535901000000,
		category: "fedocal",
	},
	{
		name:     "OKV2SentAtSpace",
		rec:      `{"id": "` + uuid2 + `", "topic": "org.fedoraproject.prod.fedocal.calendar.new", "body": {}, "headers": {"sent-at": "2018-11-18 10:11:41+00:00"}}`,
		id:       uuid2,
		key:      uuid2,
		topic:    "org.fedoraproject.prod.fedocal.calendar.new",
		timeUS:   1542535901000000,
		category: "fedocal",
	},
	{
		name:     "OKV2SentAtNoZoneIsUTC",
		rec:      `{"id": "` + uuid2 + `", "topic": "org.fedoraproject.prod.fedocal.calendar.new", "body": {}, "headers": {"sent-at": "2018-11-18T10:11:41"}}`,
		id:       uuid2,
		key:      uuid2,
		topic:    "org.fedoraproject.prod.fedocal.calendar.new",
		timeUS:   1542535901000000,
		category: "fedocal",
	},
	{
		name:     "OKNullTimestampFallsBackToSentAt",
		rec:      `{"msg_id": null, "id": "2018-` + uuid2 + `", "topic": "org.fedoraproject.prod.fedocal.calendar.new", "timestamp": null, "body": {}, "headers": {"sent-at": "2018-11-18T10:11:41Z"}}`,
		id:       "2018-" + uuid2,
		key:      uuid2,
		topic:    "org.fedoraproject.prod.fedocal.calendar.new",
		timeUS:   1542535901000000,
		category: "fedocal",
	},
	{
		name:     "OKBeforeEpoch",
		rec:      `{"msg_id": "old", "topic": "a.b.c.d.e", "timestamp": -1.5, "msg": {}}`,
		id:       "old",
		key:      "old",
		topic:    "a.b.c.d.e",
		timeUS:   -1500000,
		category: "d",
	},
	{
		name:     "OKAtEpoch",
		rec:      `{"msg_id": "zero", "topic": "a.b.c.d", "timestamp": 0, "msg": {}}`,
		id:       "zero",
		key:      "zero",
		topic:    "a.b.c.d",
		timeUS:   0,
		category: "d",
	},
	{
		name:     "OKLastSecondOfYear9999",
		rec:      `{"msg_id": "late", "topic": "a.b.c.d", "timestamp": 253402300799, "msg": {}}`,
		id:       "late",
		key:      "late",
		topic:    "a.b.c.d",
		timeUS:   253402300799000000,
		category: "d",
	},
	{
		name:     "OKFirstSecondOfYear1",
		rec:      `{"msg_id": "early", "topic": "a.b.c.d", "timestamp": -62135596800, "msg": {}}`,
		id:       "early",
		key:      "early",
		topic:    "a.b.c.d",
		timeUS:   -62135596800000000,
		category: "d",
	},
	{
		name:     "OKShortTopicUnclassified",
		rec:      `{"msg_id": "2016-` + uuid1 + `", "topic": "org.fedoraproject.prod", "timestamp": 1, "msg": {}}`,
		id:       "2016-" + uuid1,
		key:      uuid1,
		topic:    "org.fedoraproject.prod",
		timeUS:   1000000,
		category: "Unclassified",
	},
	{
		name:     "OKOneWordTopicUnclassified",
		rec:      `{"msg_id": "x", "topic": "heartbeat", "timestamp": 1, "msg": {}}`,
		id:       "x",
		key:      "x",
		topic:    "heartbeat",
		timeUS:   1000000,
		category: "Unclassified",
	},
	{
		name:     "OKVirtualTopic",
		rec:      `{"msg_id": "vt", "topic": "VirtualTopic.eng.brew.build.complete", "timestamp": 1, "msg": {}}`,
		id:       "vt",
		key:      "vt",
		topic:    "VirtualTopic.eng.brew.build.complete",
		timeUS:   1000000,
		category: "brew",
	},
	{
		name:     "OKDedupeNeedsFourDigits",
		rec:      `{"msg_id": "abcd-` + uuid1 + `", "topic": "a.b.c.d", "timestamp": 1, "msg": {}}`,
		id:       "abcd-" + uuid1,
		key:      "abcd-" + uuid1,
		topic:    "a.b.c.d",
		timeUS:   1000000,
		category: "d",
	},
	{
		name:     "OKExactlyMaxBytes",
		limits:   engine.Limits{MaxBytes: len(`{"msg_id": "m", "topic": "a.b.c.d", "timestamp": 1, "msg": {}}`)},
		rec:      `{"msg_id": "m", "topic": "a.b.c.d", "timestamp": 1, "msg": {}}`,
		id:       "m",
		key:      "m",
		topic:    "a.b.c.d",
		timeUS:   1000000,
		category: "d",
	},
	{
		name:     "OKExactlyMaxDepth",
		limits:   engine.Limits{MaxDepth: 4},
		rec:      `{"msg_id": "m", "topic": "a.b.c.d", "timestamp": 1, "msg": {"a": {"b": [1]}}}`,
		id:       "m",
		key:      "m",
		topic:    "a.b.c.d",
		timeUS:   1000000,
		category: "d",
	},
	{
		name:     "OKBracketsInStringsDoNotNest",
		limits:   engine.Limits{MaxDepth: 2},
		rec:      `{"msg_id": "m", "topic": "a.b.c.d", "timestamp": 1, "msg": {"text": "[[[{{{ \" ]]] \\ {{{{"}}`,
		id:       "m",
		key:      "m",
		topic:    "a.b.c.d",
		timeUS:   1000000,
		category: "d",
	},
}

// decodeErr are records that must be rejected, with a word of the reason.
var decodeErr = []struct {
	name   string
	limits engine.Limits
	rec    string
	reason string
	id     string // the id the error names, when the record had one
}{
	{name: "ErrInvalidUTF8", rec: "{\"msg_id\": \"x\", \"topic\": \"a.b.c.d\", \"timestamp\": 1, \"msg\": {\"who\": \"\xff\xfe\"}}", reason: "invalid UTF-8 at byte 68"},
	{name: "ErrTruncatedUTF8", rec: "{\"msg_id\": \"x\", \"topic\": \"a.b.c.d\", \"timestamp\": 1, \"msg\": {\"who\": \"caf\xc3\"}}", reason: "invalid UTF-8"},
	{name: "ErrRawNUL", rec: "{\"msg_id\": \"x\", \"topic\": \"a.b.c.d\", \"timestamp\": 1, \"msg\": {\"who\": \"a\x00b\"}}", reason: "NUL byte"},
	{name: "ErrNULOutsideString", rec: "{\"msg_id\": \"x\", \"topic\": \"a.b.c.d\", \"timestamp\": 1, \"msg\": {}}\x00", reason: "NUL byte"},
	{name: "ErrEscapedNUL", rec: `{"msg_id": "x", "topic": "a.b.c.d", "timestamp": 1, "msg": {"who": "a\u0000b"}}`, reason: `NUL (\u0000)`},
	{name: "ErrRawControl", rec: "{\"msg_id\": \"x\", \"topic\": \"a.b.c.d\", \"timestamp\": 1, \"msg\": {\"who\": \"a\x1bb\"}}", reason: "raw control character 0x1b"},
	{name: "ErrRawTabInString", rec: "{\"msg_id\": \"x\", \"topic\": \"a.b.c.d\", \"timestamp\": 1, \"msg\": {\"who\": \"a\tb\"}}", reason: "raw control character 0x09"},
	{name: "ErrControlAfterEscape", rec: "{\"msg_id\": \"x\", \"topic\": \"a.b.c.d\", \"timestamp\": 1, \"msg\": {\"who\": \"a\\\x01\"}}", reason: "raw control character 0x01"},
	{name: "ErrNoID", rec: `{"topic": "a.b.c.d", "timestamp": 1, "msg": {}}`, reason: "no string msg_id or id"},
	{name: "ErrNullID", rec: `{"msg_id": null, "topic": "a.b.c.d", "timestamp": 1, "msg": {}}`, reason: "no string msg_id or id"},
	{name: "ErrNumericID", rec: `{"msg_id": 12345, "topic": "a.b.c.d", "timestamp": 1, "msg": {}}`, reason: "no string msg_id or id"},
	{name: "ErrNumericV2ID", rec: `{"id": 12345, "topic": "a.b.c.d", "body": {}, "headers": {"sent-at": "2018-11-18T10:11:41Z"}}`, reason: "no string msg_id or id"},
	{name: "ErrEmptyID", rec: `{"msg_id": "", "topic": "a.b.c.d", "timestamp": 1, "msg": {}}`, reason: "empty id"},
	{name: "ErrBlankID", rec: `{"msg_id": " \t ", "topic": "a.b.c.d", "timestamp": 1, "msg": {}}`, reason: "empty id"},
	{name: "ErrNoTopic", rec: `{"msg_id": "m1", "timestamp": 1, "msg": {}}`, reason: "no string topic", id: "m1"},
	{name: "ErrNumericTopic", rec: `{"msg_id": "m1", "topic": 7, "timestamp": 1, "msg": {}}`, reason: "no string topic", id: "m1"},
	{name: "ErrEmptyTopic", rec: `{"msg_id": "m1", "topic": "", "timestamp": 1, "msg": {}}`, reason: "no string topic", id: "m1"},
	{name: "ErrNoTime", rec: `{"msg_id": "m1", "topic": "a.b.c.d", "msg": {}}`, reason: "no numeric timestamp and no headers.sent-at", id: "m1"},
	{name: "ErrNoTimeHeadersNotObject", rec: `{"id": "m1", "topic": "a.b.c.d", "body": {}, "headers": "sent-at"}`, reason: "no numeric timestamp", id: "m1"},
	{name: "ErrStringTimestamp", rec: `{"msg_id": "m1", "topic": "a.b.c.d", "timestamp": "1439121600", "msg": {}}`, reason: "timestamp is string, not a number", id: "m1"},
	{name: "ErrBoolTimestamp", rec: `{"msg_id": "m1", "topic": "a.b.c.d", "timestamp": true, "msg": {}}`, reason: "not a number", id: "m1"},
	{name: "ErrNaNTimestamp", rec: `{"msg_id": "m1", "topic": "a.b.c.d", "timestamp": NaN, "msg": {}}`, reason: "not a finite number", id: "m1"},
	{name: "ErrInfTimestamp", rec: `{"msg_id": "m1", "topic": "a.b.c.d", "timestamp": -inf, "msg": {}}`, reason: "not a finite number", id: "m1"},
	{name: "ErrOverflowTimestamp", rec: `{"msg_id": "m1", "topic": "a.b.c.d", "timestamp": 1e400, "msg": {}}`, reason: "not a finite number", id: "m1"},
	{name: "ErrTimestampMilliseconds", rec: `{"msg_id": "m1", "topic": "a.b.c.d", "timestamp": 1439121600000000, "msg": {}}`, reason: "out of range", id: "m1"},
	{name: "ErrTimestampAfterYear9999", rec: `{"msg_id": "m1", "topic": "a.b.c.d", "timestamp": 253402300800, "msg": {}}`, reason: "out of range", id: "m1"},
	{name: "ErrTimestampBeforeYear1", rec: `{"msg_id": "m1", "topic": "a.b.c.d", "timestamp": -62135596801, "msg": {}}`, reason: "out of range", id: "m1"},
	{name: "ErrBadSentAt", rec: `{"id": "m1", "topic": "a.b.c.d", "body": {}, "headers": {"sent-at": "yesterday"}}`, reason: `headers.sent-at "yesterday" is not an ISO-8601 time`, id: "m1"},
	{name: "ErrSentAtDateOnly", rec: `{"id": "m1", "topic": "a.b.c.d", "body": {}, "headers": {"sent-at": "2018-11-18"}}`, reason: "not an ISO-8601 time", id: "m1"},
	{name: "ErrSentAtYear0", rec: `{"id": "m1", "topic": "a.b.c.d", "body": {}, "headers": {"sent-at": "0000-01-01T00:00:00Z"}}`, reason: "not an ISO-8601 time", id: "m1"},
	{name: "ErrNumericSentAt", rec: `{"id": "m1", "topic": "a.b.c.d", "body": {}, "headers": {"sent-at": 1542535901}}`, reason: "headers.sent-at is number, not a string", id: "m1"},
	{name: "ErrNotObjectArray", rec: `[{"msg_id": "m1"}]`, reason: "not a JSON object but array"},
	{name: "ErrNotObjectString", rec: `"m1"`, reason: "not a JSON object but string"},
	{name: "ErrNotObjectNumber", rec: `42`, reason: "not a JSON object but number"},
	{name: "ErrNotObjectNull", rec: `null`, reason: "not a JSON object but null"},
	{name: "ErrInvalidJSON", rec: `{"msg_id": "m1", "topic": `, reason: "not valid JSON"},
	{name: "ErrEmptyInput", rec: ``, reason: "not valid JSON"},
	{name: "ErrTrailingData", rec: `{"msg_id": "m1", "topic": "a.b.c.d", "timestamp": 1, "msg": {}} {}`, reason: "not valid JSON"},
	{
		name:   "ErrOverMaxBytes",
		limits: engine.Limits{MaxBytes: 40},
		rec:    `{"msg_id": "m1", "topic": "a.b.c.d", "timestamp": 1, "msg": {}}`,
		reason: "63 bytes is over the limit of 40",
	},
	{
		name:   "ErrOverMaxDepth",
		limits: engine.Limits{MaxDepth: 4},
		rec:    `{"msg_id": "m1", "topic": "a.b.c.d", "timestamp": 1, "msg": {"a": {"b": {"c": {}}}}}`,
		reason: "nesting depth 5 is over the limit of 4",
	},
	{
		name:   "ErrOverDefaultMaxDepth",
		rec:    `{"msg_id": "m1", "topic": "a.b.c.d", "timestamp": 1, "msg": ` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`,
		reason: "nesting depth 101 is over the limit of 64",
	},
	{
		name:   "ErrDeepUnbalanced",
		rec:    strings.Repeat(`{"a":[`, 100000),
		reason: "nesting depth 200000 is over the limit of 64",
	},
	{name: "ErrNoMsgOrBody", rec: `{"msg_id": "m1", "topic": "a.b.c.d", "timestamp": 1}`, reason: "no msg or body", id: "m1"},
	{name: "ErrBodyOnlyInHeaders", rec: `{"id": "m1", "topic": "a.b.c.d", "headers": {"sent-at": "2018-11-18T10:11:41Z", "body": {}}}`, reason: "no msg or body", id: "m1"},
}

func TestDecode(t *testing.T) {
	for _, tt := range decodeOK {
		t.Run(tt.name, func(t *testing.T) {
			d := engine.Decoder{Limits: tt.limits}
			in := []byte(tt.rec)
			m, err := d.Decode(in)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if got, want := m.ID, tt.id; got != want {
				t.Errorf("ID = %q, want %q", got, want)
			}
			if got, want := m.Key, tt.key; got != want {
				t.Errorf("Key = %q, want %q", got, want)
			}
			if got, want := m.Topic, tt.topic; got != want {
				t.Errorf("Topic = %q, want %q", got, want)
			}
			if got, want := m.TimeUS, tt.timeUS; got != want {
				t.Errorf("TimeUS = %d, want %d", got, want)
			}
			if got, want := m.Category(), tt.category; got != want {
				t.Errorf("Category() = %q, want %q", got, want)
			}
			if got, want := m.Pos(), (engine.Position{TimeUS: tt.timeUS, Key: tt.key}); got != want {
				t.Errorf("Pos() = %+v, want %+v", got, want)
			}
			if got, want := m.Time().UnixMicro(), tt.timeUS; got != want {
				t.Errorf("Time() = %d µs, want %d", got, want)
			}
			if got, want := m.Time().Location().String(), "UTC"; got != want {
				t.Errorf("Time() is in %s, want %s", got, want)
			}
			// Raw is the record as received, in a copy of its own.
			if !bytes.Equal(m.Raw, []byte(tt.rec)) {
				t.Errorf("Raw = %s, want the input", m.Raw)
			}
			for i := range in {
				in[i] = 'x'
			}
			if got, want := string(m.Raw), tt.rec; got != want {
				t.Errorf("Raw changed with the caller's buffer: %s", got)
			}
			var p fastjson.Parser
			if _, err := m.Body(&p); err != nil {
				t.Errorf("Body: %v", err)
			}
		})
	}
}

func TestDecodeReject(t *testing.T) {
	for _, tt := range decodeErr {
		t.Run(tt.name, func(t *testing.T) {
			d := engine.Decoder{Limits: tt.limits}
			m, err := d.Decode([]byte(tt.rec))
			if err == nil {
				t.Fatalf("Decode accepted %s as %+v", tt.rec, m)
			}
			if m != nil {
				t.Errorf("Decode returned a message with the error %v", err)
			}
			if !errors.Is(err, engine.ErrRejected) {
				t.Errorf("error %v does not wrap ErrRejected", err)
			}
			var re *engine.RejectError
			if !errors.As(err, &re) {
				t.Fatalf("error %v is not a *RejectError", err)
			}
			if !strings.Contains(re.Reason, tt.reason) {
				t.Errorf("reason %q, want it to contain %q", re.Reason, tt.reason)
			}
			if got, want := re.ID, tt.id; got != want {
				t.Errorf("RejectError.ID = %q, want %q", got, want)
			}
			if tt.id != "" && !strings.Contains(err.Error(), tt.id) {
				t.Errorf("error %q does not name the record %s", err, tt.id)
			}
		})
	}
}

// TestDecoderReuse checks that messages from one Decoder do not share memory
// with each other or with the parser.
func TestDecoderReuse(t *testing.T) {
	var d engine.Decoder
	m1, err := d.Decode([]byte(decodeOK[0].rec))
	if err != nil {
		t.Fatal(err)
	}
	m2, err := d.Decode([]byte(decodeOK[4].rec))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := m1.ID, decodeOK[0].id; got != want {
		t.Errorf("first message's ID = %q after a second Decode, want %q", got, want)
	}
	if got, want := m1.Topic, decodeOK[0].topic; got != want {
		t.Errorf("first message's Topic = %q after a second Decode, want %q", got, want)
	}
	if got, want := m2.ID, decodeOK[4].id; got != want {
		t.Errorf("second message's ID = %q, want %q", got, want)
	}
}

func TestDedupeKey(t *testing.T) {
	tests := []struct {
		name, id, want string
	}{
		{"OKYearPrefix", "2015-" + uuid1, uuid1},
		{"OKOtherYear", "2023-" + uuid1, uuid1},
		{"OKBareUUID", uuid1, uuid1},
		{"OKLettersNotYear", "abcd-" + uuid1, "abcd-" + uuid1},
		{"OKOnlyPrefix", "2015-", "2015-"},
		{"OKThreeDigits", "201-" + uuid1, "201-" + uuid1},
		{"OKNoDash", "20150" + uuid1, "20150" + uuid1},
		{"OKOnce", "2015-2016-x", "2016-x"},
		{"OKShort", "x", "x"},
		{"OKEmpty", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, want := engine.DedupeKey(tt.id), tt.want
			if got != want {
				t.Errorf("DedupeKey(%q) = %q, want %q", tt.id, got, want)
			}
		})
	}
}

func TestCategory(t *testing.T) {
	tests := []struct {
		name, topic, want string
	}{
		{"OKFourthWord", "org.fedoraproject.prod.buildsys.build.state.change", "buildsys"},
		{"OKExactlyFourWords", "org.fedoraproject.prod.bodhi", "bodhi"},
		{"OKPagure", "io.pagure.prod.pagure.git.receive", "pagure"},
		{"OKThreeWords", "org.fedoraproject.prod", "Unclassified"},
		{"OKTrailingDot", "org.fedoraproject.prod.", ""},
		{"OKOneWord", "heartbeat", "Unclassified"},
		{"OKEmpty", "", "Unclassified"},
		{"OKVirtualTopic", "VirtualTopic.eng.brew.build.complete", "brew"},
		{"OKVirtualTopicPrefixed", "/topic/VirtualTopic.eng.ci.koji-build", "ci"},
		{"OKVirtualTopicShort", "VirtualTopic.eng", "Unclassified"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, want := engine.Category(tt.topic), tt.want
			if got != want {
				t.Errorf("Category(%q) = %q, want %q", tt.topic, got, want)
			}
		})
	}
}

func TestPositionLess(t *testing.T) {
	zero := engine.Position{}
	tests := []struct {
		name string
		p, q engine.Position
		want bool
	}{
		{"OKEarlierTime", engine.Position{TimeUS: 1, Key: "b"}, engine.Position{TimeUS: 2, Key: "a"}, true},
		{"OKLaterTime", engine.Position{TimeUS: 2, Key: "a"}, engine.Position{TimeUS: 1, Key: "b"}, false},
		{"OKTieByKey", engine.Position{TimeUS: 1, Key: "a"}, engine.Position{TimeUS: 1, Key: "b"}, true},
		{"OKEqual", engine.Position{TimeUS: 1, Key: "a"}, engine.Position{TimeUS: 1, Key: "a"}, false},
		{"OKZeroBeforeNegative", zero, engine.Position{TimeUS: -5, Key: "a"}, true},
		{"OKNegativeAfterZero", engine.Position{TimeUS: -5, Key: "a"}, zero, false},
		{"OKZeroBeforeEpochMessage", zero, engine.Position{TimeUS: 0, Key: "a"}, true},
		{"OKZeroNotBeforeZero", zero, zero, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, want := tt.p.Less(tt.q), tt.want
			if got != want {
				t.Errorf("%+v.Less(%+v) = %v, want %v", tt.p, tt.q, got, want)
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	for _, tt := range decodeOK {
		f.Add([]byte(tt.rec))
	}
	for _, tt := range decodeErr {
		if len(tt.rec) < 4096 {
			f.Add([]byte(tt.rec))
		}
	}
	small := engine.Limits{MaxBytes: 256, MaxDepth: 4}
	f.Fuzz(func(t *testing.T, rec []byte) {
		for _, lim := range []engine.Limits{{}, small} {
			d := engine.Decoder{Limits: lim}
			in := append([]byte(nil), rec...)
			m, err := d.Decode(in)
			if err != nil {
				if m != nil {
					t.Fatalf("Decode returned a message and the error %v", err)
				}
				var re *engine.RejectError
				if !errors.Is(err, engine.ErrRejected) || !errors.As(err, &re) || re.Reason == "" {
					t.Fatalf("error %v is not a RejectError with a reason", err)
				}
				continue
			}
			if strings.TrimSpace(m.ID) == "" || m.Key == "" || m.Topic == "" {
				t.Fatalf("accepted a message with ID %q, Key %q, Topic %q", m.ID, m.Key, m.Topic)
			}
			if got, want := m.Key, engine.DedupeKey(m.ID); got != want {
				t.Fatalf("Key = %q, want DedupeKey(%q) = %q", got, m.ID, want)
			}
			if !bytes.Equal(m.Raw, rec) {
				t.Fatalf("Raw = %q, want the input %q", m.Raw, rec)
			}
			if !utf8.Valid(m.Raw) || bytes.IndexByte(m.Raw, 0) >= 0 || bytes.Contains(m.Raw, []byte(`\u0000`)) {
				t.Fatalf("accepted a record with invalid UTF-8 or a NUL: %q", m.Raw)
			}
			if len(in) > 0 {
				in[0] ^= 0xff
				if !bytes.Equal(m.Raw, rec) {
					t.Fatalf("Raw shares memory with the input")
				}
			}
			if lim == small && len(rec) > small.MaxBytes {
				t.Fatalf("accepted %d bytes over the limit of %d", len(rec), small.MaxBytes)
			}
			if m.TimeUS < -62135596800e6 || m.TimeUS > 253402300799e6 {
				t.Fatalf("TimeUS %d is out of the accepted range", m.TimeUS)
			}
			if m.Pos().IsZero() || !(engine.Position{}).Less(m.Pos()) {
				t.Fatalf("message position %+v is not after the start of the journal", m.Pos())
			}
			var p fastjson.Parser
			if _, err := m.Body(&p); err != nil {
				t.Fatalf("accepted message has no body: %v", err)
			}
			if _, err := m.Headers(&p); err != nil {
				t.Fatalf("accepted message's headers: %v", err)
			}
			_ = m.Category()
			// Decoding the stored record again gives the same message.
			again, err := d.Decode(m.Raw)
			if err != nil {
				t.Fatalf("re-decoding the stored record: %v", err)
			}
			if again.ID != m.ID || again.Key != m.Key || again.Topic != m.Topic || again.TimeUS != m.TimeUS {
				t.Fatalf("re-decoded %+v, want %+v", again.Pos(), m.Pos())
			}
		}
	})
}
