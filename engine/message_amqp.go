package engine

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/valyala/fastjson"
)

// Delivery is one fedora-messaging message as it arrives over AMQP,
// reduced to what a Message needs. The AMQP source fills it from the
// broker's delivery; the engine knows nothing of AMQP itself.
//
// fedora-messaging's wire format: the body is the message body only (a
// UTF-8 JSON object, no envelope), the id is the message_id property (a
// bare UUID4), the topic is the routing key, and the time is the sent-at
// header (ISO 8601 with an offset: 2019-07-30T19:12:22+00:00). The AMQP
// timestamp property is not set.
type Delivery struct {
	MessageID  string
	RoutingKey string
	// Headers are the AMQP headers with JSON values (string, bool,
	// float64, int64, nil, []any, map[string]any).
	Headers map[string]any
	Body    []byte
}

// Why a delivery was rejected: the Kind of a DeliveryError, and the keys
// the AMQP source counts rejects under.
const (
	RejectTooLarge   = "too large"
	RejectTooDeep    = "too deep"
	RejectNotJSON    = "not JSON"
	RejectNotObject  = "not an object"
	RejectNoID       = "no message id"
	RejectNoTopic    = "no topic"
	RejectNoSentAt   = "no sent-at"
	RejectBadSentAt  = "bad sent-at"
	RejectBadHeaders = "bad headers"
	RejectInvalid    = "invalid"
)

// DeliveryError is a rejected delivery: its Kind (one of the Reject*
// constants) and the RejectError that says why in words.
type DeliveryError struct {
	Kind string
	Err  *RejectError
}

func (e *DeliveryError) Error() string { return e.Err.Error() }

// Unwrap lets errors.Is(err, ErrRejected) and errors.As(err, **RejectError) match.
func (e *DeliveryError) Unwrap() error { return e.Err }

func rejectDelivery(kind, id, format string, args ...any) error {
	return &DeliveryError{Kind: kind, Err: &RejectError{ID: id, Reason: fmt.Sprintf(format, args...)}}
}

// DecodeDelivery turns an AMQP delivery into a Message. Its Raw is the
// delivery in fedora-messaging's own serialized shape (datagrepper's /v2
// record): {"id", "topic", "headers", "body"}, which Decode reads back
// and the Lua side sees as msg.body and msg.headers.
//
// The Message has the id, dedupe key, topic and time that datagrepper's
// /raw record of the same message decodes to (its msg_id is the
// message_id, its timestamp the sent-at), so the journal keeps one of the
// two copies whichever arrives first. A delivery without a sent-at header
// is rejected: stamping it with the time it was received would put it in
// a different bucket than the archive's copy, and hide a broken publisher.
func (d *Decoder) DecodeDelivery(dl Delivery) (*Message, error) {
	lim := d.Limits
	if lim.MaxBytes <= 0 {
		lim.MaxBytes = DefaultLimits.MaxBytes
	}
	if lim.MaxDepth <= 0 {
		lim.MaxDepth = DefaultLimits.MaxDepth
	}
	id := dl.MessageID
	if len(dl.Body) > lim.MaxBytes {
		return nil, rejectDelivery(RejectTooLarge, id, "body of %d bytes is over the limit of %d", len(dl.Body), lim.MaxBytes)
	}
	// The body sits one level down in the record.
	if depth := jsonDepth(dl.Body) + 1; depth > lim.MaxDepth {
		return nil, rejectDelivery(RejectTooDeep, id, "nesting depth %d is over the limit of %d", depth, lim.MaxDepth)
	}
	body, err := d.p.ParseBytes(dl.Body)
	if err != nil {
		return nil, rejectDelivery(RejectNotJSON, id, "body is not valid JSON: %v", err)
	}
	if body.Type() != fastjson.TypeObject {
		return nil, rejectDelivery(RejectNotObject, id, "body is not a JSON object but %s", body.Type())
	}
	if strings.TrimSpace(id) == "" {
		return nil, rejectDelivery(RejectNoID, "", "no message_id property")
	}
	if !utf8.ValidString(id) {
		return nil, rejectDelivery(RejectInvalid, "", "message_id %q is not valid UTF-8", id)
	}
	if dl.RoutingKey == "" {
		return nil, rejectDelivery(RejectNoTopic, id, "empty routing key")
	}
	if !utf8.ValidString(dl.RoutingKey) {
		return nil, rejectDelivery(RejectInvalid, id, "routing key %q is not valid UTF-8", dl.RoutingKey)
	}
	raw, ok := dl.Headers["sent-at"]
	if !ok || raw == nil {
		return nil, rejectDelivery(RejectNoSentAt, id, "no sent-at header")
	}
	s, ok := raw.(string)
	if !ok {
		return nil, rejectDelivery(RejectBadSentAt, id, "sent-at header is %T, not a string", raw)
	}
	sent, err := ParseSentAt(s)
	if err != nil {
		return nil, rejectDelivery(RejectBadSentAt, id, "%v", err)
	}
	headers := dl.Headers
	if headers == nil {
		headers = map[string]any{}
	}
	if !validStrings(headers) {
		// json.Marshal would silently replace the bad bytes.
		return nil, rejectDelivery(RejectBadHeaders, id, "a header name or value is not valid UTF-8")
	}
	hj, err := json.Marshal(headers)
	if err != nil {
		return nil, rejectDelivery(RejectBadHeaders, id, "headers cannot be written as JSON: %v", err)
	}
	rec := deliveryRecord(id, dl.RoutingKey, hj, dl.Body)
	if len(rec) > lim.MaxBytes {
		return nil, rejectDelivery(RejectTooLarge, id, "%d bytes with the headers is over the limit of %d", len(rec), lim.MaxBytes)
	}
	if depth := jsonDepth(rec); depth > lim.MaxDepth {
		return nil, rejectDelivery(RejectTooDeep, id, "nesting depth %d with the headers is over the limit of %d", depth, lim.MaxDepth)
	}
	// The record goes through the ordinary decoder, so that whatever it
	// checks of every record (encoding, id, topic) holds here too.
	m, err := d.Decode(rec)
	if err != nil {
		var re *RejectError
		if errors.As(err, &re) {
			if re.ID == "" {
				re.ID = id
			}
			return nil, &DeliveryError{Kind: RejectInvalid, Err: re}
		}
		return nil, rejectDelivery(RejectInvalid, id, "%v", err)
	}
	m.TimeUS = sent.UnixMicro()
	return m, nil
}

// validStrings reports whether every string in v (keys included) is valid UTF-8.
func validStrings(v any) bool {
	switch x := v.(type) {
	case string:
		return utf8.ValidString(x)
	case map[string]any:
		for k, e := range x {
			if !utf8.ValidString(k) || !validStrings(e) {
				return false
			}
		}
	case []any:
		for _, e := range x {
			if !validStrings(e) {
				return false
			}
		}
	}
	return true
}

// deliveryRecord writes {"id":…,"topic":…,"headers":…,"body":…} with the
// body's bytes as they came.
func deliveryRecord(id, topic string, headers, body []byte) []byte {
	idj, _ := json.Marshal(id) // strings always marshal
	tj, _ := json.Marshal(topic)
	b := make([]byte, 0, len(idj)+len(tj)+len(headers)+len(body)+40)
	b = append(b, `{"id":`...)
	b = append(b, idj...)
	b = append(b, `,"topic":`...)
	b = append(b, tj...)
	b = append(b, `,"headers":`...)
	b = append(b, headers...)
	b = append(b, `,"body":`...)
	b = append(b, body...)
	b = append(b, '}')
	return b
}

// ParseSentAt reads fedora-messaging's sent-at header: ISO 8601 with an
// offset (+00:00, or Z as datanommer also accepts), with or without a
// fraction of a second. A time without an offset is refused: its zone
// would be a guess.
func ParseSentAt(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("sent-at %q is not an ISO 8601 time with an offset", s)
	}
	if t.Year() < 1 || t.Year() > 9999 {
		return time.Time{}, fmt.Errorf("sent-at %q is out of range", s)
	}
	return t.UTC(), nil
}

// Fedora-messaging headers that say what a message is about: one header
// per name, named prefix + name, with the value true.
const (
	HeaderUserPrefix      = "fedora_messaging_user_"
	HeaderGroupPrefix     = "fedora_messaging_group_"
	HeaderPackagePrefix   = "fedora_messaging_rpm_"
	HeaderContainerPrefix = "fedora_messaging_container_"
	HeaderModulePrefix    = "fedora_messaging_module_"
	HeaderFlatpakPrefix   = "fedora_messaging_flatpak_"
)

// HeaderNames returns the names of the headers prefix<name> whose value is
// true (fedora-messaging's filter headers), in the order of the object.
func HeaderNames(headers *fastjson.Value, prefix string) []string {
	o, err := headers.Object()
	if err != nil {
		return nil
	}
	var out []string
	o.Visit(func(k []byte, v *fastjson.Value) {
		if len(k) > len(prefix) && string(k[:len(prefix)]) == prefix && v.Type() == fastjson.TypeTrue {
			out = append(out, string(k[len(prefix):]))
		}
	})
	return out
}
