package engine_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fastjson"

	"statscache/engine"
	"statscache/engine/archive/dgtest"
)

// fmHeaders are the headers fedora-messaging 3.x puts on a message.
func fmHeaders(sentAt string, extra map[string]any) map[string]any {
	h := map[string]any{
		"fedora_messaging_schema":         "koji_fedoramessaging.build.BuildStateChangeV1",
		"fedora_messaging_schema_package": "koji-fedoramessaging-messages",
		"fedora_messaging_severity":       int64(20),
		"priority":                        int64(0),
		"sent-at":                         sentAt,
	}
	for k, v := range extra {
		h[k] = v
	}
	return h
}

func TestDecodeDelivery(t *testing.T) {
	cases := []struct {
		name   string
		dl     engine.Delivery
		timeUS int64
	}{
		{"OffsetNoFraction", engine.Delivery{MessageID: uuid1, RoutingKey: "org.fedoraproject.prod.buildsys.build.state.change",
			Headers: fmHeaders("2019-07-30T19:12:22+00:00", map[string]any{"fedora_messaging_user_ralph": true}),
			Body:    []byte(`{"owner": "ralph", "build_id": 1}`)}, 1564513942000000},
		{"Z", engine.Delivery{MessageID: uuid1, RoutingKey: "org.fedoraproject.prod.copr.build.end",
			Headers: fmHeaders("2019-07-30T19:12:22Z", nil), Body: []byte(`{}`)}, 1564513942000000},
		{"FractionAndOtherOffset", engine.Delivery{MessageID: uuid2, RoutingKey: "org.release-monitoring.prod.anitya.project.version.update",
			Headers: fmHeaders("2019-07-30T21:12:22.5+02:00", nil), Body: []byte(`{"project": {"name": "x"}}`)}, 1564513942500000},
		{"BridgedYearID", engine.Delivery{MessageID: "2019-" + uuid1, RoutingKey: "org.fedoraproject.prod.x.y",
			Headers: fmHeaders("2019-07-30T19:12:22+00:00", nil), Body: []byte(`{"a": [1, 2, {"b": null}]}`)}, 1564513942000000},
	}
	var dec engine.Decoder
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := dec.DecodeDelivery(c.dl)
			if err != nil {
				t.Fatal(err)
			}
			if m.ID != c.dl.MessageID || m.Key != engine.DedupeKey(c.dl.MessageID) || m.Topic != c.dl.RoutingKey || m.TimeUS != c.timeUS {
				t.Fatalf("got id %q key %q topic %q time %d", m.ID, m.Key, m.Topic, m.TimeUS)
			}
			var p fastjson.Parser
			body, err := m.Body(&p)
			if err != nil {
				t.Fatal(err)
			}
			if !jsonEqual(t, body.MarshalTo(nil), c.dl.Body) {
				t.Errorf("body %s, want %s", body.MarshalTo(nil), c.dl.Body)
			}
			h, err := m.Headers(&p)
			if err != nil || h == nil {
				t.Fatalf("headers: %v, %v", h, err)
			}
			want, _ := json.Marshal(c.dl.Headers)
			if !jsonEqual(t, h.MarshalTo(nil), want) {
				t.Errorf("headers %s, want every header: %s", h.MarshalTo(nil), want)
			}
			// The journal keeps Raw and decodes it again on replay.
			again, err := dec.Decode(m.Raw)
			if err != nil {
				t.Fatalf("Raw does not decode again: %v\n%s", err, m.Raw)
			}
			if again.ID != m.ID || again.Key != m.Key || again.Topic != m.Topic || again.TimeUS != m.TimeUS {
				t.Errorf("Raw decodes to %+v, want %+v", again, m)
			}
		})
	}
}

func TestDecodeDeliveryReject(t *testing.T) {
	good := func() engine.Delivery {
		return engine.Delivery{MessageID: uuid1, RoutingKey: "org.fedoraproject.prod.x.y",
			Headers: fmHeaders("2019-07-30T19:12:22+00:00", nil), Body: []byte(`{"a": 1}`)}
	}
	with := func(f func(*engine.Delivery)) engine.Delivery { d := good(); f(&d); return d }
	cases := []struct {
		name string
		dl   engine.Delivery
		kind string
	}{
		{"NotJSON", with(func(d *engine.Delivery) { d.Body = []byte(`{not json`) }), engine.RejectNotJSON},
		{"Empty", with(func(d *engine.Delivery) { d.Body = nil }), engine.RejectNotJSON},
		{"TrailingGarbage", with(func(d *engine.Delivery) { d.Body = []byte(`{} {}`) }), engine.RejectNotJSON},
		{"Array", with(func(d *engine.Delivery) { d.Body = []byte(`[1, 2]`) }), engine.RejectNotObject},
		{"String", with(func(d *engine.Delivery) { d.Body = []byte(`"text"`) }), engine.RejectNotObject},
		{"Null", with(func(d *engine.Delivery) { d.Body = []byte(`null`) }), engine.RejectNotObject},
		{"NoID", with(func(d *engine.Delivery) { d.MessageID = "" }), engine.RejectNoID},
		{"BlankID", with(func(d *engine.Delivery) { d.MessageID = "  " }), engine.RejectNoID},
		{"NoTopic", with(func(d *engine.Delivery) { d.RoutingKey = "" }), engine.RejectNoTopic},
		{"NoSentAt", with(func(d *engine.Delivery) { delete(d.Headers, "sent-at") }), engine.RejectNoSentAt},
		{"NoHeaders", with(func(d *engine.Delivery) { d.Headers = nil }), engine.RejectNoSentAt},
		{"SentAtNumber", with(func(d *engine.Delivery) { d.Headers["sent-at"] = int64(1564513942) }), engine.RejectBadSentAt},
		{"SentAtNaive", with(func(d *engine.Delivery) { d.Headers["sent-at"] = "2019-07-30T19:12:22" }), engine.RejectBadSentAt},
		{"SentAtGarbage", with(func(d *engine.Delivery) { d.Headers["sent-at"] = "yesterday" }), engine.RejectBadSentAt},
		{"HeaderNaN", with(func(d *engine.Delivery) { d.Headers["x"] = nan() }), engine.RejectBadHeaders},
		{"TooLarge", with(func(d *engine.Delivery) {
			d.Body = []byte(`{"blob": "` + strings.Repeat("x", 70000) + `"}`)
		}), engine.RejectTooLarge},
		{"TooLargeWithHeaders", with(func(d *engine.Delivery) {
			d.Headers["big"] = strings.Repeat("y", 66000)
		}), engine.RejectTooLarge},
		{"TooDeep", with(func(d *engine.Delivery) {
			d.Body = []byte(`{"a":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`)
		}), engine.RejectTooDeep},
		{"TooDeepHeaders", with(func(d *engine.Delivery) {
			var v any = "leaf"
			for i := 0; i < 80; i++ {
				v = map[string]any{"n": v}
			}
			d.Headers["deep"] = v
		}), engine.RejectTooDeep},
	}
	dec := engine.Decoder{Limits: engine.Limits{MaxBytes: 65536, MaxDepth: 64}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := dec.DecodeDelivery(c.dl)
			if err == nil {
				t.Fatalf("accepted: %.200s", m.Raw)
			}
			var de *engine.DeliveryError
			if !errors.As(err, &de) {
				t.Fatalf("error %v is not a DeliveryError", err)
			}
			if de.Kind != c.kind {
				t.Errorf("kind %q, want %q (%v)", de.Kind, c.kind, err)
			}
			var re *engine.RejectError
			if !errors.Is(err, engine.ErrRejected) || !errors.As(err, &re) || re.Reason == "" {
				t.Errorf("error %v does not wrap a RejectError with a reason", err)
			}
		})
	}
	// The decoder is still usable after rejects.
	if _, err := dec.DecodeDelivery(good()); err != nil {
		t.Fatal(err)
	}
}

func nan() float64 { z := 0.0; return z / z }

// TestDeliveryAndArchiveAgree: a message received over AMQP and the record
// datagrepper serves for it (/raw of the AMQP era, and /v2) decode to the
// same id, dedupe key, topic and time, so the journal keeps one; and the
// body and headers a model sees are the same.
func TestDeliveryAndArchiveAgree(t *testing.T) {
	agent := "ralph"
	for _, sentAt := range []string{"2024-03-01T12:00:07+00:00", "2024-03-01T12:00:07Z", "2024-03-01T12:00:07.25+00:00"} {
		headers := fmHeaders(sentAt, map[string]any{"fedora_messaging_user_ralph": true, "fedora_messaging_rpm_kernel": true})
		body := []byte(`{"owner":"ralph","name":"kernel","build_id":42,"nested":{"list":[1,"two",null]}}`)
		dl := engine.Delivery{MessageID: uuid1, RoutingKey: "org.fedoraproject.prod.buildsys.build.state.change", Headers: headers, Body: body}
		raw := dgtest.AMQPRecord(dgtest.AMQPMessage{ID: uuid1, Topic: dl.RoutingKey, Headers: headers,
			Body: json.RawMessage(body), AgentName: &agent, Users: []string{"ralph"}, Packages: []string{"kernel"}})
		v2, _ := json.Marshal(map[string]any{"id": uuid1, "topic": dl.RoutingKey, "headers": headers,
			"body": json.RawMessage(body), "priority": 0, "queue": nil})
		var dec engine.Decoder
		fromBus, err := dec.DecodeDelivery(dl)
		if err != nil {
			t.Fatal(err)
		}
		for name, rec := range map[string][]byte{"raw": raw, "v2": v2} {
			fromArchive, err := dec.Decode(rec)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if fromArchive.ID != fromBus.ID || fromArchive.Key != fromBus.Key || fromArchive.Topic != fromBus.Topic || fromArchive.TimeUS != fromBus.TimeUS {
				t.Errorf("sent-at %s: %s record decodes to (%s %s %s %d), the delivery to (%s %s %s %d)", sentAt, name,
					fromArchive.ID, fromArchive.Key, fromArchive.Topic, fromArchive.TimeUS, fromBus.ID, fromBus.Key, fromBus.Topic, fromBus.TimeUS)
			}
			var p1, p2 fastjson.Parser
			b1, _ := fromBus.Body(&p1)
			b2, _ := fromArchive.Body(&p2)
			if !jsonEqual(t, b1.MarshalTo(nil), b2.MarshalTo(nil)) {
				t.Errorf("%s: bodies differ: %s vs %s", name, b1, b2)
			}
			h1, _ := fromBus.Headers(&p1)
			h2, _ := fromArchive.Headers(&p2)
			if !jsonEqual(t, h1.MarshalTo(nil), h2.MarshalTo(nil)) {
				t.Errorf("%s: headers differ: %s vs %s", name, h1, h2)
			}
		}
	}
}

func TestHeaderNames(t *testing.T) {
	v := fastjson.MustParse(`{"fedora_messaging_user_ralph": true, "fedora_messaging_user_bob": true,
		"fedora_messaging_user_off": false, "fedora_messaging_user_": true, "fedora_messaging_rpm_kernel": true,
		"fedora_messaging_user_str": "true", "sent-at": "x"}`)
	if got, want := engine.HeaderNames(v, engine.HeaderUserPrefix), []string{"ralph", "bob"}; !reflect.DeepEqual(got, want) {
		t.Errorf("users %q, want %q", got, want)
	}
	if got := engine.HeaderNames(v, engine.HeaderPackagePrefix); !reflect.DeepEqual(got, []string{"kernel"}) {
		t.Errorf("packages %q", got)
	}
	if got := engine.HeaderNames(fastjson.MustParse(`[1]`), engine.HeaderUserPrefix); got != nil {
		t.Errorf("from an array: %q", got)
	}
}

func jsonEqual(t testing.TB, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatalf("%v: %s", err, a)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	return reflect.DeepEqual(x, y)
}

// FuzzDecodeDelivery feeds arbitrary deliveries to the decoder. It must
// never panic; a rejected delivery has a known kind; an accepted one has a
// Raw that decodes again to the same message with the body it came with,
// and the archive's /raw record of it decodes to the same id, key, topic
// and time.
func FuzzDecodeDelivery(f *testing.F) {
	f.Add(uuid1, "org.fedoraproject.prod.x.y", "2019-07-30T19:12:22+00:00", []byte(`{"a": 1}`), []byte(`{"fedora_messaging_user_ralph": true}`))
	f.Add("2019-"+uuid2, "t", "2019-07-30T19:12:22.999Z", []byte(`{}`), []byte(`{}`))
	f.Add("", "", "", []byte(`[`), []byte(`null`))
	f.Add("id", "topic", "0001-01-01T00:00:00+14:00", []byte(`{"s": "\ud800"}`), []byte(`{"x": [1, {"y": null}]}`))
	f.Add("id", "topic", "9999-12-31T23:59:59-14:00", []byte("{\"k\": \"\xff\"}"), []byte(`{"deep": [[[[[]]]]]}`))
	known := map[string]bool{engine.RejectTooLarge: true, engine.RejectTooDeep: true, engine.RejectNotJSON: true,
		engine.RejectNotObject: true, engine.RejectNoID: true, engine.RejectNoTopic: true, engine.RejectNoSentAt: true,
		engine.RejectBadSentAt: true, engine.RejectBadHeaders: true, engine.RejectInvalid: true}
	f.Fuzz(func(t *testing.T, id, topic, sentAt string, body, headerJSON []byte) {
		var headers map[string]any
		if json.Unmarshal(headerJSON, &headers) != nil || headers == nil {
			headers = map[string]any{}
		}
		if sentAt != "" {
			headers["sent-at"] = sentAt
		}
		dec := engine.Decoder{Limits: engine.Limits{MaxBytes: 4096, MaxDepth: 16}}
		m, err := dec.DecodeDelivery(engine.Delivery{MessageID: id, RoutingKey: topic, Headers: headers, Body: body})
		if err != nil {
			var de *engine.DeliveryError
			if !errors.As(err, &de) || !known[de.Kind] || de.Err == nil || de.Err.Reason == "" {
				t.Fatalf("error %v is not a DeliveryError of a known kind", err)
			}
			return
		}
		if m.ID != id || m.Topic != topic || m.Key != engine.DedupeKey(id) || len(m.Raw) > 4096 {
			t.Fatalf("accepted as id %q topic %q key %q (%d bytes)", m.ID, m.Topic, m.Key, len(m.Raw))
		}
		again, err := dec.Decode(m.Raw)
		if err != nil {
			t.Fatalf("Raw does not decode again: %v\n%s", err, m.Raw)
		}
		if again.ID != m.ID || again.Key != m.Key || again.Topic != m.Topic || again.TimeUS != m.TimeUS {
			t.Fatalf("Raw decodes to (%q %q %q %d), want (%q %q %q %d)", again.ID, again.Key, again.Topic, again.TimeUS, m.ID, m.Key, m.Topic, m.TimeUS)
		}
		var p fastjson.Parser
		b, err := m.Body(&p)
		if err != nil || b.Type() != fastjson.TypeObject {
			t.Fatalf("body %v, %v", b, err)
		}
		want := fastjson.MustParseBytes(body)
		if !bytes.Equal(b.MarshalTo(nil), want.MarshalTo(nil)) {
			t.Fatalf("body %s, want %s", b, want)
		}
		// The archive's copy: only for messages datanommer could store.
		if _, err := time.Parse(time.RFC3339Nano, sentAt); err != nil || !json.Valid(body) {
			return
		}
		if _, err := json.Marshal(json.RawMessage(body)); err != nil {
			return
		}
		hs, _ := json.Marshal(headers)
		if bytes.Contains(hs, []byte(`\ufffd`)) {
			return // headers with invalid UTF-8 are not stored as they came
		}
		rec := dgtest.AMQPRecord(dgtest.AMQPMessage{ID: id, Topic: topic, Headers: headers, Body: json.RawMessage(body)})
		big := engine.Decoder{Limits: engine.Limits{MaxBytes: 1 << 20, MaxDepth: 32}}
		arch, err := big.Decode(rec)
		if err != nil {
			return // e.g. an id or topic the archive decoder refuses in its own shape
		}
		if arch.Key != m.Key || arch.Topic != m.Topic || arch.TimeUS != m.TimeUS {
			t.Fatalf("archive record decodes to (%q %q %d), the delivery to (%q %q %d)", arch.Key, arch.Topic, arch.TimeUS, m.Key, m.Topic, m.TimeUS)
		}
	})
}
