// Package dgtest is a stand-in for datagrepper's /raw endpoint, for tests
// and the offline demo. It is deliberately as awkward as the real archive
// (see shared/research/datagrepper-fedmsg.md §1): rows that share a second
// come back in a different random order on every request, so offset paging
// skips and repeats rows; start and end are inclusive; rows_per_page is
// capped at 100 and defaults to 25; validation errors are HTML; the content
// type echoes the Accept header; and failures, truncated bodies, slow
// responses and late inserts can be injected. A client that is exact
// against this server has a fair chance of being exact against the real
// one.
package dgtest

import (
	"encoding/json"
	"fmt"
	"html"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Options injects the real archive's failure modes. Zero values disable
// each one.
type Options struct {
	// FailEvery makes every Nth request (counting from 1) fail with an HTML
	// error page, alternating 503 and 500.
	FailEvery int
	// FailFrom and FailTo make every /raw request whose [start, end]
	// overlaps them fail with a 503 HTML page: an archive that is down for
	// one stretch of history.
	FailFrom, FailTo time.Time
	// TruncateEvery cuts the JSON body of every Nth successful request in
	// half (status 200, chunked, so only the JSON parser can tell).
	TruncateEvery int
	// SlowEvery delays every Nth request by Slow before answering.
	SlowEvery int
	Slow      time.Duration
	// Late are records that exist only from some point on: datanommer
	// inserts messages minutes after they were sent, stamped with their
	// send time, so they appear "in the past".
	Late []Late
	// DefaultDelta is the server's DEFAULT_QUERY_DELTA in seconds (0 in the
	// code, 86400 in Fedora's deployment), used when start or end is
	// missing.
	DefaultDelta float64
	// Seed seeds the tie shuffling; 0 picks a random seed.
	Seed uint64
}

// Late is a record that becomes visible after the server has answered
// AfterRequests requests, or after the wall time VisibleAt, whichever is
// set (both: whichever comes first).
type Late struct {
	Record        []byte
	AfterRequests int
	VisibleAt     time.Time
}

// Request is one logged request. Status is 0 while the request is being
// answered, and stays 0 when the client gave up before the answer (slow).
type Request struct {
	Method string
	Path   string
	Query  url.Values
	Accept string
	Status int
}

type row struct {
	ts   float64 // stored time, full precision
	id   string
	rec  map[string]json.RawMessage
	late *Late
}

// Server is a running fake datagrepper. Its URL is the base URL (the
// client appends /raw).
type Server struct {
	*httptest.Server
	opts Options

	mu       sync.Mutex
	rows     []row // sorted by ts
	requests []Request
	n        int // requests answered
	rng      *rand.Rand
}

// New starts a server holding msgs, each a datagrepper /raw record (JSON
// object with msg_id, topic, timestamp, msg). It panics on a record that
// is not such an object: test data is under the test's control.
func New(msgs [][]byte, opts Options) *Server {
	seed := opts.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	s := &Server{opts: opts, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
	for _, m := range msgs {
		s.rows = append(s.rows, mustRow(m, nil))
	}
	for i := range opts.Late {
		s.rows = append(s.rows, mustRow(opts.Late[i].Record, &opts.Late[i]))
	}
	sort.SliceStable(s.rows, func(i, j int) bool { return s.rows[i].ts < s.rows[j].ts })
	s.Server = httptest.NewServer(http.HandlerFunc(s.handle))
	return s
}

func mustRow(rec []byte, late *Late) row {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(rec, &m); err != nil {
		panic(fmt.Sprintf("dgtest: record is not a JSON object: %v", err))
	}
	var ts float64
	var id string
	if err := json.Unmarshal(m["timestamp"], &ts); err != nil {
		panic(fmt.Sprintf("dgtest: record has no numeric timestamp: %s", rec))
	}
	json.Unmarshal(m["msg_id"], &id)
	return row{ts: ts, id: id, rec: m, late: late}
}

// Add inserts records while the server runs, as datanommer would.
func (s *Server) Add(recs ...[]byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range recs {
		s.rows = append(s.rows, mustRow(r, nil))
	}
	sort.SliceStable(s.rows, func(i, j int) bool { return s.rows[i].ts < s.rows[j].ts })
}

// Requests returns the log of every request so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

func (s *Server) handle(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.n++
	n := s.n
	s.requests = append(s.requests, Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(), Accept: r.Header.Get("Accept")})
	logIdx := len(s.requests) - 1
	s.mu.Unlock()
	s.serve(&statusWriter{ResponseWriter: w, s: s, idx: logIdx}, r, n)
}

// statusWriter logs the status before the response leaves, so that a
// client that has its answer also finds it in Requests.
type statusWriter struct {
	http.ResponseWriter
	s   *Server
	idx int
}

func (w *statusWriter) WriteHeader(code int) {
	w.s.mu.Lock()
	w.s.requests[w.idx].Status = code
	w.s.mu.Unlock()
	w.ResponseWriter.WriteHeader(code)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request, n int) int {
	if s.opts.SlowEvery > 0 && n%s.opts.SlowEvery == 0 {
		select {
		case <-time.After(s.opts.Slow):
		case <-r.Context().Done():
			return 0
		}
	}
	if r.Method != http.MethodGet && r.Method != http.MethodOptions {
		return htmlError(w, http.StatusMethodNotAllowed, "The method is not allowed for the requested URL.")
	}
	path := strings.TrimSuffix(r.URL.Path, "/")
	if path != "/raw" {
		return writeJSON(w, r, http.StatusNotFound, map[string]any{"error": "not_found"}, false)
	}
	if s.opts.FailEvery > 0 && n%s.opts.FailEvery == 0 {
		if (n/s.opts.FailEvery)%2 == 0 {
			return htmlError(w, http.StatusInternalServerError, "The server encountered an internal error.")
		}
		return htmlError(w, http.StatusServiceUnavailable, "Service Unavailable")
	}
	q := r.URL.Query()
	page, err := intParam(q, "page", 1)
	if err != nil {
		return internalError(w, r, err)
	}
	rpp, err := intParam(q, "rows_per_page", 25)
	if err != nil {
		return internalError(w, r, err)
	}
	switch {
	case page < 1:
		return htmlError(w, http.StatusBadRequest, "page must be > 0")
	case rpp > 100:
		return htmlError(w, http.StatusBadRequest, "rows_per_page must be <= 100")
	case rpp < 0:
		return htmlError(w, http.StatusBadRequest, "rows_per_page must be >= 0")
	}
	order := q.Get("order")
	if order == "" {
		order = "desc"
	}
	if order != "asc" && order != "desc" {
		return htmlError(w, http.StatusBadRequest, "order must be either 'desc' or 'asc'")
	}
	start, end, delta, err := s.timeRange(q)
	if err != nil {
		return internalError(w, r, err)
	}
	if !s.opts.FailFrom.IsZero() && start != nil && end != nil {
		from, to := float64(s.opts.FailFrom.Unix()), float64(s.opts.FailTo.Unix())
		if *start <= to && *end >= from {
			return htmlError(w, http.StatusServiceUnavailable, "Service Unavailable")
		}
	}
	topics := q["topic"]

	s.mu.Lock()
	var sel []row
	for _, rw := range s.rows {
		if start != nil && end != nil && (rw.ts < *start || rw.ts > *end) {
			continue
		}
		if rw.late != nil && !s.visible(rw.late, n) {
			continue
		}
		if len(topics) > 0 && !contains(topics, topicOf(rw)) {
			continue
		}
		sel = append(sel, rw)
	}
	// ORDER BY timestamp with no tiebreaker: ties in any order, anew per request.
	shuffleTies(sel, s.rng)
	truncate := s.opts.TruncateEvery > 0 && n%s.opts.TruncateEvery == 0
	s.mu.Unlock()

	if order == "desc" {
		for i, j := 0, len(sel)-1; i < j; i, j = i+1, j-1 {
			sel[i], sel[j] = sel[j], sel[i]
		}
	}
	total := len(sel)
	var pageRows []row
	pages := 0
	if rpp == 0 {
		pageRows, pages = sel, min(total, 1)
	} else {
		pages = (total + rpp - 1) / rpp
		lo := min((page-1)*rpp, total)
		hi := min(lo+rpp, total)
		pageRows = sel[lo:hi]
	}
	recs := make([]any, 0, len(pageRows))
	for _, rw := range pageRows {
		recs = append(recs, outRecord(rw))
	}
	plural := func(k string) []string {
		if v := q[k]; v != nil {
			return v
		}
		return []string{}
	}
	body := map[string]any{
		"raw_messages": recs,
		"total":        total,
		"pages":        pages,
		"count":        len(recs),
		"arguments": map[string]any{
			"start": start, "end": end, "delta": delta, "page": page, "rows_per_page": rpp,
			"order": order, "meta": plural("meta"), "users": plural("user"), "packages": plural("package"),
			"categories": plural("category"), "topics": plural("topic"), "contains": plural("contains"),
			"not_users": plural("not_user"), "not_packages": plural("not_package"),
			"not_categories": plural("not_category"), "not_topics": plural("not_topic"),
			"agents": plural("agent"), "not_agents": plural("not_agent"),
		},
	}
	return writeJSON(w, r, http.StatusOK, body, truncate)
}

func (s *Server) visible(l *Late, n int) bool {
	switch {
	case l.AfterRequests > 0 && n > l.AfterRequests:
		return true
	case !l.VisibleAt.IsZero() && !time.Now().Before(l.VisibleAt):
		return true
	}
	return l.AfterRequests <= 0 && l.VisibleAt.IsZero()
}

// timeRange resolves start/end/delta as datagrepper ≥1.0 does (§1.3).
func (s *Server) timeRange(q url.Values) (start, end, delta *float64, err error) {
	get := func(k string) (*float64, error) {
		v := q.Get(k)
		if v == "" {
			return nil, nil
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			t, terr := time.Parse(time.RFC3339, v)
			if terr != nil {
				return nil, fmt.Errorf("invalid %s %q", k, v)
			}
			f = float64(t.Unix())
		}
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, fmt.Errorf("invalid %s %q", k, v)
		}
		return &f, nil
	}
	if start, err = get("start"); err != nil {
		return
	}
	if end, err = get("end"); err != nil {
		return
	}
	if delta, err = get("delta"); err != nil {
		return
	}
	now := float64(time.Now().Unix())
	p := func(f float64) *float64 { return &f }
	switch {
	case start != nil && end != nil:
		delta = p(*end - *start)
	case start != nil && delta != nil:
		end = p(*start + *delta)
	case start != nil:
		end = p(now)
	case end != nil && delta != nil:
		start = p(*end - *delta)
	case delta != nil:
		start, end = p(now-*delta), p(now)
	case s.opts.DefaultDelta > 0 && end != nil:
		start = p(*end - s.opts.DefaultDelta)
	case s.opts.DefaultDelta > 0:
		start, end = p(now-s.opts.DefaultDelta), p(now)
	default:
		start, end = nil, nil // no time filter at all
	}
	return
}

// shuffleTies shuffles every run of rows with the same whole second: the
// archive's timestamps have one-second resolution and no tiebreaker.
func shuffleTies(rs []row, rng *rand.Rand) {
	for i := 0; i < len(rs); {
		j := i + 1
		for j < len(rs) && math.Floor(rs[j].ts) == math.Floor(rs[i].ts) {
			j++
		}
		part := rs[i:j]
		rng.Shuffle(len(part), func(a, b int) { part[a], part[b] = part[b], part[a] })
		i = j
	}
}

// outRecord is the record as /raw serves it: the timestamp loses its
// fraction (time.mktime over a timetuple) and is a float.
func outRecord(rw row) map[string]json.RawMessage {
	out := make(map[string]json.RawMessage, len(rw.rec))
	for k, v := range rw.rec {
		out[k] = v
	}
	out["timestamp"] = json.RawMessage(strconv.FormatFloat(math.Floor(rw.ts), 'f', 1, 64))
	return out
}

func topicOf(rw row) string {
	var t string
	json.Unmarshal(rw.rec["topic"], &t)
	return t
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func intParam(q url.Values, k string, def int) (int, error) {
	v := q.Get(k)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("invalid literal for int() with base 10: %q", v)
	}
	return n, nil
}

// writeJSON answers with the content type the real server picks: it echoes
// Accept, so no Accept header means a JSON body labelled text/html, and
// Accept: text/html gets an HTML page.
func writeJSON(w http.ResponseWriter, r *http.Request, status int, body any, truncate bool) int {
	accept := r.Header.Get("Accept")
	if strings.HasPrefix(accept, "text/html") {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(status)
		fmt.Fprintf(w, "<!doctype html><html><head><title>datagrepper</title></head><body><div class=\"message-card\">%d messages</div></body></html>\n", status)
		return status
	}
	ct := "application/json"
	switch {
	case accept == "":
		ct = "text/html; charset=utf-8"
	case accept != "*/*" && !strings.Contains(accept, "*"):
		ct = accept
	}
	data, err := json.Marshal(body)
	if err != nil {
		return htmlError(w, http.StatusInternalServerError, err.Error())
	}
	w.Header().Set("Content-Type", ct)
	if truncate {
		// No Content-Length: the body just stops, as when a proxy gives up.
		w.WriteHeader(status)
		w.Write(data[:len(data)/2])
		return status
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	w.WriteHeader(status)
	w.Write(data)
	return status
}

func internalError(w http.ResponseWriter, r *http.Request, err error) int {
	return writeJSON(w, r, http.StatusInternalServerError, map[string]any{
		"error": "internal_error", "detail": "500 Internal Server Error: " + err.Error(), "traceback": "",
	}, false)
}

// htmlError is a Werkzeug-style error page.
func htmlError(w http.ResponseWriter, status int, msg string) int {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	fmt.Fprintf(w, "<!doctype html>\n<html lang=en>\n<title>%d %s</title>\n<h1>%s</h1>\n<p>%s</p>\n",
		status, http.StatusText(status), http.StatusText(status), html.EscapeString(msg))
	return status
}

// AMQPMessage is a fedora-messaging message as its publisher sent it, for
// building the record datagrepper serves for it.
type AMQPMessage struct {
	ID      string         // the message_id property: a bare UUID
	Topic   string         // the routing key
	Headers map[string]any // sent-at, fedora_messaging_* ...
	Body    any            // the JSON body
	// What datanommer stores beside the message: the schema's agent_name,
	// usernames and packages.
	AgentName       *string
	Users, Packages []string
}

// AMQPRecord returns the /raw record datagrepper serves for a message of
// the AMQP era: datanommer 1.x stores msg_id = message_id, timestamp =
// sent-at, the headers and the schema's agent_name, users and packages;
// the fedmsg-era signature fields are null and i is 0.
// (shared/research/datagrepper-fedmsg.md §3 and §4, record 8.) It panics on
// a message without a valid sent-at header: test data is under the test's
// control.
func AMQPRecord(m AMQPMessage) []byte {
	s, _ := m.Headers["sent-at"].(string)
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(fmt.Sprintf("dgtest: message %s has no valid sent-at header: %q", m.ID, s))
	}
	users, pkgs := m.Users, m.Packages
	if users == nil {
		users = []string{}
	}
	if pkgs == nil {
		pkgs = []string{}
	}
	rec := map[string]any{
		"i": 0, "msg_id": m.ID, "topic": m.Topic,
		"timestamp":   float64(t.UnixMicro()) / 1e6,
		"certificate": nil, "signature": nil, "crypto": nil,
		"agent_name": m.AgentName, "username": m.AgentName,
		"msg": m.Body, "headers": m.Headers,
		"source_name": "datanommer", "source_version": "1.4.0",
		"users": users, "packages": pkgs,
	}
	b, err := json.Marshal(rec)
	if err != nil {
		panic(fmt.Sprintf("dgtest: message %s: %v", m.ID, err))
	}
	return b
}
