package web

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"statscache/engine"
	"statscache/schema"
)

// Paging bounds of the feed, those of the original deployment
// (statscache.app.default_rows_per_page and maximum_rows_per_page).
const (
	DefaultRowsPerPage = 100
	MaxRowsPerPage     = 100
)

// knownParams are the query parameters the API reads. Each may appear at
// most once: with two values it is unclear which one the client meant, so
// the request is refused rather than guessed at. Other parameters (such as
// jQuery's "_" cache buster) are ignored, and left out of the Link header.
var knownParams = []string{"order", "limit", "start", "stop", "page", "rows_per_page", "end", "after", "format", "callback"}

// maxParamBytes bounds the value of a known parameter: far above any valid
// one (the longest is a callback, at most maxCallback bytes), and small
// enough that copying the parameters into the four links of the Link
// header stays cheap. A longer one is refused, whatever its content
// ("1.000…" is a valid time of any length).
const maxParamBytes = 256

// maxKeyParamBytes bounds after, which carries a row's key (its
// timestamp and key columns, such as a long topic name), encoded.
const maxKeyParamBytes = 1024

func maxBytes(name string) int {
	if name == "after" {
		return maxKeyParamBytes
	}
	return maxParamBytes
}

func isKnownParam(name string) bool {
	for _, k := range knownParams {
		if k == name {
			return true
		}
	}
	return false
}

// queryParams is a request's query string, checked for repeats.
type queryParams url.Values

// parseQuery reads the query string. A malformed one (for example with ";"
// separators, which Go no longer splits on) is a 400 rather than being
// silently half-read.
func parseQuery(r *http.Request) (queryParams, error) {
	v, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, &apiError{status: http.StatusBadRequest, msg: fmt.Sprintf("malformed query string: %v", err)}
	}
	for _, name := range knownParams {
		if n := len(v[name]); n > 1 {
			return nil, badParam(name, "given %d times, expected at most once", n)
		}
		if val := v.Get(name); len(val) > maxBytes(name) {
			return nil, badParam(name, "%d bytes is longer than any valid value (at most %d), got %s", len(val), maxBytes(name), echo(val))
		}
	}
	return queryParams(v), nil
}

// get returns the value of a parameter. An empty value counts as absent,
// as it did for the original's limit: HTML forms send empty fields.
func (q queryParams) get(name string) string {
	return url.Values(q).Get(name)
}

var (
	uintRe   = regexp.MustCompile(`^[0-9]+$`)
	numberRe = regexp.MustCompile(`^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?$`)
)

// feedParams are the validated parameters of a model feed.
type feedParams struct {
	desc        bool
	limit       int
	start, stop *float64
	page        int
	rowsPerPage int
	end         int64 // see engine.RowQuery
	after       []any
}

// parseFeed validates the feed parameters. Every bad value is a 400 that
// names the parameter; the original answered most of them with a 500.
func parseFeed(q queryParams) (feedParams, error) {
	p := feedParams{desc: true, page: 1, rowsPerPage: DefaultRowsPerPage}
	switch o := q.get("order"); o {
	case "", "desc":
	case "asc":
		p.desc = false
	default:
		return p, badParam("order", "must be asc or desc, got %s", echo(o))
	}
	if s := q.get("limit"); s != "" {
		n, ok := parseUint(s)
		if !ok {
			return p, badParam("limit", "must be an integer >= 0 (0 means no limit), got %s", echo(s))
		}
		p.limit = n
	}
	if s := q.get("page"); s != "" {
		n, ok := parseUint(s)
		if !ok || n < 1 {
			return p, badParam("page", "must be an integer >= 1, got %s", echo(s))
		}
		p.page = n
	}
	if s := q.get("rows_per_page"); s != "" {
		n, ok := parseUint(s)
		if !ok || n < 1 || n > MaxRowsPerPage {
			return p, badParam("rows_per_page", "must be an integer from 1 to %d, got %s", MaxRowsPerPage, echo(s))
		}
		p.rowsPerPage = n
	}
	for _, b := range []struct {
		name string
		dst  **float64
	}{{"start", &p.start}, {"stop", &p.stop}} {
		s := q.get(b.name)
		if s == "" {
			continue
		}
		f, ok := parseSeconds(s)
		if !ok {
			f, ok = parseRFC3339(s)
		}
		if !ok {
			return p, badParam(b.name, "must be a finite number of Unix seconds (like 1439121660 or 1439121660.5) or an RFC 3339 time (like 2015-08-09T12:01:00Z), got %s", echo(s))
		}
		*b.dst = &f
	}
	if s := q.get("end"); s != "" {
		n, ok := parseUint(s)
		if !ok || n < 1 {
			return p, badParam("end", "must be a row id >= 1 as the Link header gives it, got %s", echo(s))
		}
		p.end = int64(n)
	}
	if s := q.get("after"); s != "" {
		key, ok := decodeKey(s)
		if !ok {
			return p, badParam("after", "must be a row key as the Link header gives it, got %s", echo(s))
		}
		p.after = key
	}
	if p.start != nil && p.stop != nil && *p.start > *p.stop {
		return p, badParam("start", "must not be after stop, got start %s and stop %s", echo(q.get("start")), echo(q.get("stop")))
	}
	return p, nil
}

// parseUint reads a plain decimal integer: no sign, no spaces, no
// overflow.
func parseUint(s string) (int, bool) {
	if !uintRe.MatchString(s) {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	return n, err == nil
}

// parseSeconds reads a decimal number of seconds. strconv.ParseFloat alone
// would also take NaN, Inf, hexadecimal and underscores, none of which is a
// time.
func parseSeconds(s string) (float64, bool) {
	if !numberRe.MatchString(s) {
		return 0, false
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, false
	}
	return f, true
}

// parseRFC3339 reads an RFC 3339 time (2015-08-09T12:01:00Z, with any
// offset and fraction) as Unix seconds.
func parseRFC3339(s string) (float64, bool) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return 0, false
	}
	return float64(t.UnixMicro()) / 1e6, true
}

// encodeKey writes a row key (engine.RowPage.End or Last) as a URL-safe
// token: base64url of its JSON array. Opaque to clients, which only copy
// it from one Link to the next request.
func encodeKey(key []any) (string, error) {
	b, err := json.Marshal(key)
	if err != nil {
		return "", fmt.Errorf("encode row key: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// decodeKey reads a token of encodeKey: a JSON array of numbers and
// strings (numbers kept exact as json.Number; the store checks them
// against the column types).
func decodeKey(s string) ([]any, bool) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, false
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var key []any
	if err := dec.Decode(&key); err != nil || key == nil || dec.More() {
		return nil, false
	}
	for _, v := range key {
		switch v.(type) {
		case json.Number, string:
		default:
			return nil, false
		}
	}
	return key, true
}

// rowQuery turns the feed parameters into the store's query. A page far
// past the end gets an offset past every row rather than an overflow.
func (p feedParams) rowQuery() engine.RowQuery {
	off := math.MaxInt
	if p.page-1 <= math.MaxInt/p.rowsPerPage {
		off = (p.page - 1) * p.rowsPerPage
	}
	return engine.RowQuery{Start: p.start, Stop: p.stop, Desc: p.desc, Limit: p.limit, Offset: off, Count: p.rowsPerPage,
		End: p.end, After: p.after}
}

// identVar returns the model ident of the route. The router matches the
// escaped path, so that an ident containing "/" can be asked for as %2F.
func identVar(r *http.Request) (string, error) {
	raw := mux.Vars(r)["ident"]
	ident, err := url.PathUnescape(raw)
	if err != nil {
		return "", noModel(raw)
	}
	return ident, nil
}

// modelPath is the path of a model's feed.
func modelPath(ident string) string {
	return "/api/" + url.PathEscape(ident)
}

// pageURL is the feed URL of another page: the request's own query string,
// the parameters this API reads kept in their order, with page set to n,
// end set to the range's end (when there is one) and after set, or
// removed when empty.
// The original built its links from the route variables and lost start,
// stop, order, limit and rows_per_page. Parameters the API does not read
// are left out: they mean nothing to it, and copying them would let one
// request make every response header it gets four times as large. Values
// are re-escaped so that nothing in them can break the Link header.
func pageURL(r *http.Request, ident string, n int, end, after string) string {
	set := []struct{ k, v string }{{"page", strconv.Itoa(n)}, {"end", end}, {"after", after}}
	done := map[string]bool{}
	var parts []string
	for _, piece := range strings.Split(r.URL.RawQuery, "&") {
		if piece == "" {
			continue
		}
		k, v, hasValue := strings.Cut(piece, "=")
		k, err1 := url.QueryUnescape(k)
		v, err2 := url.QueryUnescape(v)
		if err1 != nil || err2 != nil || !isKnownParam(k) {
			continue // parseQuery refused malformed queries already
		}
		if k == "page" || k == "end" || k == "after" {
			for _, kv := range set {
				if kv.k == k && kv.v != "" && !done[k] {
					parts = append(parts, k+"="+url.QueryEscape(kv.v))
				}
			}
			done[k] = true
			continue
		}
		if hasValue {
			parts = append(parts, url.QueryEscape(k)+"="+url.QueryEscape(v))
		} else {
			parts = append(parts, url.QueryEscape(k))
		}
	}
	for _, kv := range set {
		if !done[kv.k] && kv.v != "" {
			parts = append(parts, kv.k+"="+url.QueryEscape(kv.v))
		}
	}
	return modelPath(ident) + "?" + strings.Join(parts, "&")
}

// linkHeader builds the pagination Link header. The relation names
// previous and next are the original's (clients rely on them); first and
// last are added. previous is omitted on page 1 and points to the last page
// from beyond the end; next is omitted on the last page.
//
// Every link carries end, the newest row id when the first request was
// served, so that a client following the links sees the rows of that
// moment each exactly once, however fast the table grows; next also
// carries after, the page's last row, so that the next page is found by
// key rather than by skipping rows. A request with only page (and no end)
// is served as before, by position.
func linkHeader(r *http.Request, ident string, page, pageCount int, end, after string) string {
	last := max(pageCount, 1)
	var links []string
	add := func(n int, rel, after string) {
		links = append(links, fmt.Sprintf("<%s>; rel=%q", pageURL(r, ident, n, end, after), rel))
	}
	add(1, "first", "")
	if page > 1 {
		add(min(page-1, last), "previous", "")
	}
	if page < pageCount {
		add(page+1, "next", after)
	}
	add(last, "last", "")
	return strings.Join(links, ", ")
}

// index answers GET /api/: the idents of every model, sorted.
func (s *Server) index(w http.ResponseWriter, r *http.Request) error {
	q, err := parseQuery(r)
	if err != nil {
		return err
	}
	f, cb, err := negotiate(r, q, true)
	if err != nil {
		return err
	}
	models, err := s.reader.ListModels(r.Context())
	if err != nil {
		return fmt.Errorf("list models: %w", err)
	}
	idents := make([]string, 0, len(models))
	for _, m := range models {
		idents = append(idents, m.Spec.Ident)
	}
	sort.Strings(idents)
	if f == formatCSV {
		records := [][]string{{"ident"}}
		for _, id := range idents {
			records = append(records, []string{id})
		}
		body, err := writeCSV(records)
		if err != nil {
			return err
		}
		send(w, http.StatusOK, contentTypeCSV, body)
		return nil
	}
	body, err := marshalJSON(idents)
	if err != nil {
		return err
	}
	sendJSON(w, f, cb, body)
	return nil
}

// modelRequest reads what every /api/{ident}... route starts with: the
// ident, the query and the response format (csvOK: whether CSV may be
// asked for).
func modelRequest(r *http.Request, csvOK bool) (ident string, q queryParams, f format, cb string, err error) {
	if ident, err = identVar(r); err != nil {
		return
	}
	if q, err = parseQuery(r); err != nil {
		return
	}
	f, cb, err = negotiate(r, q, csvOK)
	return
}

// feed answers GET /api/{ident}: one page of the model's rows, with the
// pagination headers. A page past the end is not an error: it is an empty
// page (200, []), with X-Link-Count telling how many pages there are, so
// that a client walking pages while rows are added or a limit shrinks sees
// a clean end rather than a failure.
func (s *Server) feed(w http.ResponseWriter, r *http.Request) error {
	ident, q, f, cb, err := modelRequest(r, true)
	if err != nil {
		return err
	}
	p, err := parseFeed(q)
	if err != nil {
		return err
	}
	page, err := s.reader.Rows(r.Context(), ident, p.rowQuery())
	if errors.Is(err, engine.ErrNotFound) {
		return noModel(ident)
	}
	var ke *engine.KeyError
	if errors.As(err, &ke) {
		return badParam(strings.ToLower(ke.Field), "does not name a row of this table: %s", ke.Reason)
	}
	if err != nil {
		return fmt.Errorf("rows of %s: %w", ident, err)
	}
	var body []byte
	if f == formatCSV {
		body, err = rowsCSV(page)
	} else {
		body, err = rowsJSON(page)
	}
	if err != nil {
		return fmt.Errorf("encode rows of %s: %w", ident, err)
	}
	pageCount := (page.Total + p.rowsPerPage - 1) / p.rowsPerPage
	var end, after string
	if page.End > 0 {
		end = strconv.FormatInt(page.End, 10)
	}
	if page.Last != nil {
		if after, err = encodeKey(page.Last); err != nil {
			return err
		}
	}
	h := w.Header()
	h.Set("Link", linkHeader(r, ident, p.page, pageCount, end, after))
	h.Set("X-Link-Number", strconv.Itoa(p.page))
	h.Set("X-Link-Count", strconv.Itoa(pageCount))
	if f == formatCSV {
		send(w, http.StatusOK, contentTypeCSV, body)
	} else {
		sendJSON(w, f, cb, body)
	}
	return nil
}

// metaColumn describes one column of a model table.
type metaColumn struct {
	Name    string      `json:"name"`
	Type    schema.Type `json:"type"`
	NotNull bool        `json:"not_null"`
	Index   bool        `json:"index"`
	Key     bool        `json:"key"`
	Doc     string      `json:"doc"`
	// Aggregate is how the column's values combine over rows and buckets:
	// sum, last, max or none (see schema.EffectiveAggregate).
	Aggregate string `json:"aggregate"`
}

// metaCursor is the last journal message a model has fully processed.
type metaCursor struct {
	Time *float64 `json:"time"` // Unix seconds; null before the first message
	ID   *string  `json:"id"`
}

// metaError is a model's most recent processing error.
type metaError struct {
	MsgID string  `json:"msg_id"`
	Time  float64 `json:"time"` // the message's time, Unix seconds
	Error string  `json:"error"`
	At    int64   `json:"at"` // when it was recorded, Unix seconds
}

// metaDoc is the body of GET /api/{ident}/meta. Durations are in seconds,
// null when unset, so that a portal can label and scale graphs without
// knowing Go's units.
type metaDoc struct {
	Ident        string   `json:"ident"`
	Name         string   `json:"name"`
	Summary      string   `json:"summary"`
	Description  string   `json:"description"`
	Interval     *float64 `json:"interval"`
	IntervalText *string  `json:"interval_text"`
	// Calendar is "week" (ISO weeks, Monday 00:00 UTC) or "month"
	// (calendar months, UTC) for the calendar intervals, whose buckets are
	// not Interval seconds long from the epoch: a portal must step from one
	// bucket to the next by the calendar. Interval is then the nominal
	// length (604800 s; the mean month, 2629746 s).
	Calendar     *string      `json:"calendar"`
	Backlog      *float64     `json:"backlog"`
	Topics       []string     `json:"topics"`
	Script       string       `json:"script"`
	Table        string       `json:"table"`
	Columns      []metaColumn `json:"columns"`
	Key          []string     `json:"key"`
	Cursor       metaCursor   `json:"cursor"`
	LagSeconds   float64      `json:"lag_seconds"`
	Processed    int64        `json:"processed"`
	Errors       int64        `json:"errors"`
	Status       string       `json:"status"`
	StatusReason string       `json:"status_reason"`
	UpdatedAt    int64        `json:"updated_at"`
	LastError    *metaError   `json:"last_error"`
	HasLayout    bool         `json:"has_layout"`
	Queued       int64        `json:"queued"`
	Journal      metaJournal  `json:"journal"`
}

// metaJournal is the journal as the model's figures were read: how many
// messages it holds and the time of the newest (null when empty). The same
// for every model; the portal's dashboard header shows it.
type metaJournal struct {
	Messages int64    `json:"messages"`
	Newest   *float64 `json:"newest"`
}

func ptr[T any](v T) *T { return &v }

// hasLayout reports whether a spec carries a layout.
func hasLayout(spec *engine.ModelSpec) bool {
	l := bytes.TrimSpace(spec.Layout)
	return len(l) > 0 && !bytes.Equal(l, []byte("null"))
}

// newMetaDoc describes a model for the meta endpoint.
func newMetaDoc(info engine.ModelInfo) metaDoc {
	spec := &info.Spec
	d := metaDoc{
		Ident:        spec.Ident,
		Name:         spec.Name,
		Summary:      spec.Summary,
		Description:  spec.Description,
		Topics:       append([]string{}, spec.Topics...),
		Script:       spec.Script,
		Table:        spec.Table.Name,
		Columns:      make([]metaColumn, 0, len(spec.Table.Columns)),
		Key:          append([]string{}, spec.Table.Key...),
		LagSeconds:   info.LagSeconds,
		Processed:    info.Status.Processed,
		Errors:       info.Status.Errors,
		Status:       info.Status.Status,
		StatusReason: info.Status.Reason,
		HasLayout:    hasLayout(spec),
		Queued:       info.Queued,
		Journal:      metaJournal{Messages: info.JournalMessages},
	}
	if info.JournalNewestUS != 0 {
		t := float64(info.JournalNewestUS) / 1e6
		d.Journal.Newest = &t
	}
	if !info.Status.UpdatedAt.IsZero() {
		d.UpdatedAt = info.Status.UpdatedAt.Unix()
	}
	if spec.Interval > 0 {
		secs := math.Floor(spec.Interval.Seconds()) // a calendar interval carries an extra nanosecond
		text := engine.FormatInterval(spec.Interval)
		d.Interval, d.IntervalText = &secs, &text
		switch spec.Interval {
		case engine.Week:
			d.Calendar = ptr("week")
		case engine.Month:
			d.Calendar = ptr("month")
		}
	}
	if spec.Backlog > 0 {
		secs := spec.Backlog.Seconds()
		d.Backlog = &secs
	}
	for _, c := range spec.Table.Columns {
		d.Columns = append(d.Columns, metaColumn{Name: c.Name, Type: c.Type, NotNull: c.NotNull, Index: c.Index,
			Key: spec.Table.IsKey(c.Name), Doc: c.Doc, Aggregate: spec.Table.EffectiveAggregate(c, spec.Interval > 0)})
	}
	if !info.Status.Cursor.IsZero() {
		t := float64(info.Status.Cursor.TimeUS) / 1e6
		id := info.Status.CursorID
		d.Cursor = metaCursor{Time: &t, ID: &id}
	}
	if e := info.LastError; e != nil {
		d.LastError = &metaError{MsgID: e.MsgID, Time: float64(e.TimeUS) / 1e6, Error: e.Err, At: info.LastErrorAt.Unix()}
	}
	return d
}

// modelInfo reads a model, turning an unknown ident into a 404.
func (s *Server) modelInfo(r *http.Request, ident string) (engine.ModelInfo, error) {
	info, err := s.reader.ModelInfo(r.Context(), ident)
	if errors.Is(err, engine.ErrNotFound) {
		return info, noModel(ident)
	}
	if err != nil {
		return info, fmt.Errorf("model %s: %w", ident, err)
	}
	return info, nil
}

// meta answers GET /api/{ident}/meta: the model's declaration and status.
// JSON only.
func (s *Server) meta(w http.ResponseWriter, r *http.Request) error {
	ident, _, f, cb, err := modelRequest(r, false)
	if err != nil {
		return err
	}
	info, err := s.modelInfo(r, ident)
	if err != nil {
		return err
	}
	body, err := marshalJSON(newMetaDoc(info))
	if err != nil {
		return fmt.Errorf("meta of %s: %w", ident, err)
	}
	sendJSON(w, f, cb, body)
	return nil
}

// layout answers GET /api/{ident}/layout: the layout the model declared,
// as is (JSON only), or 404 when it declared none.
func (s *Server) layout(w http.ResponseWriter, r *http.Request) error {
	ident, _, f, cb, err := modelRequest(r, false)
	if err != nil {
		return err
	}
	info, err := s.modelInfo(r, ident)
	if err != nil {
		return err
	}
	if !hasLayout(&info.Spec) {
		return &apiError{status: http.StatusNotFound, msg: fmt.Sprintf("model %q has no layout", ident), model: ident}
	}
	// Marshalling a RawMessage validates and compacts it, and escapes HTML
	// characters as for every other body.
	body, err := marshalJSON(info.Spec.Layout)
	if err != nil {
		return fmt.Errorf("layout of %s: the stored layout is not valid JSON: %w", ident, err)
	}
	sendJSON(w, f, cb, body)
	return nil
}
