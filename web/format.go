package web

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"statscache/engine"
	"statscache/schema"
)

// Content types of the responses.
const (
	contentTypeJSON  = "application/json"
	contentTypeJSONP = "application/javascript; charset=utf-8"
	contentTypeCSV   = "text/csv; charset=utf-8; header=present"
)

// format is the representation a response is served in.
type format int

const (
	formatJSON format = iota
	formatJSONP
	formatCSV
)

// maxCallback bounds the length of a JSON-P callback name.
const maxCallback = 128

// callbackRe accepts a JavaScript identifier or a dotted path of them
// (jQuery.cb_1), and nothing that could smuggle script into the response:
// the original echoed any callback, which was an XSS hole.
var callbackRe = regexp.MustCompile(`^[A-Za-z_$][A-Za-z0-9_$]*(\.[A-Za-z_$][A-Za-z0-9_$]*)*$`)

// negotiate picks the representation of a response. Explicit query
// parameters beat the Accept header: a callback gives JSON-P, format=csv or
// format=json is obeyed. Otherwise the answer is JSON unless the Accept
// header explicitly prefers CSV (see prefersCSV). In particular a missing
// Accept header, */*, text/html (a browser) and types we cannot produce at
// all (image/png) get JSON: the original answered 406 to the first and the
// last, which helped nobody. csvOK says whether the endpoint has a CSV form;
// where it has none, an Accept header asking for CSV still gets JSON, and
// format=csv is a 400.
func negotiate(r *http.Request, q queryParams, csvOK bool) (format, string, error) {
	cb := q.get("callback")
	if cb != "" && (len(cb) > maxCallback || !callbackRe.MatchString(cb)) {
		return 0, "", badParam("callback", "must be a JavaScript identifier or dotted path (like jQuery.cb_1) of at most %d characters, got %s",
			maxCallback, echo(cb))
	}
	switch f := q.get("format"); f {
	case "":
	case "json":
		if cb != "" {
			return formatJSONP, cb, nil
		}
		return formatJSON, "", nil
	case "csv":
		if !csvOK {
			return 0, "", badParam("format", "csv is not available for this resource (use json)")
		}
		if cb != "" {
			return 0, "", badParam("callback", "cannot be combined with format=csv")
		}
		return formatCSV, "", nil
	default:
		if csvOK {
			return 0, "", badParam("format", "must be json or csv, got %s", echo(f))
		}
		return 0, "", badParam("format", "must be json, got %s", echo(f))
	}
	if cb != "" {
		return formatJSONP, cb, nil
	}
	if csvOK && prefersCSV(r.Header.Values("Accept")) {
		return formatCSV, "", nil
	}
	return formatJSON, "", nil
}

// prefersCSV reports whether an Accept header explicitly prefers CSV: it
// names text/csv or application/csv with a quality above zero and above that
// of every range JSON matches (application/json, text/json, the javascript
// types, application/*, text/* and */*). Ties go to JSON, as in the
// original, where JSON came first in the server's list.
func prefersCSV(accept []string) bool {
	csvQ, jsonQ := -1.0, -1.0
	for _, header := range accept {
		for _, part := range strings.Split(header, ",") {
			mt, q := mediaRange(part)
			switch mt {
			case "text/csv", "application/csv":
				csvQ = math.Max(csvQ, q)
			case "application/json", "text/json", "application/javascript", "text/javascript",
				"application/*", "text/*", "*/*":
				jsonQ = math.Max(jsonQ, q)
			}
		}
	}
	return csvQ > 0 && csvQ > jsonQ
}

// mediaRange splits one element of an Accept header into its lower-cased
// media range and its quality (1 when absent or unreadable).
func mediaRange(s string) (string, float64) {
	params := strings.Split(s, ";")
	mt := strings.ToLower(strings.TrimSpace(params[0]))
	q := 1.0
	for _, p := range params[1:] {
		k, v, ok := strings.Cut(strings.TrimSpace(p), "=")
		if !ok || !strings.EqualFold(strings.TrimSpace(k), "q") {
			continue
		}
		if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil && f >= 0 && f <= 1 {
			q = f
		}
	}
	return mt, q
}

// marshalJSON encodes v compactly, without the trailing newline of
// json.Encoder. HTML characters stay escaped (\u003c), which keeps JSON-P
// bodies inert in a browser.
func marshalJSON(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode json: %w", err)
	}
	return b, nil
}

// send writes a complete response. Bodies are built in memory first, so a
// failure while building one still gets a proper error status.
func send(w http.ResponseWriter, status int, contentType string, body []byte) {
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	w.Write(body)
}

// sendJSON writes an encoded JSON value as JSON or JSON-P.
func sendJSON(w http.ResponseWriter, f format, callback string, body []byte) {
	if f == formatJSONP {
		b := make([]byte, 0, len(callback)+len(body)+2)
		b = append(b, callback...)
		b = append(b, '(')
		b = append(b, body...)
		b = append(b, ");"...)
		send(w, http.StatusOK, contentTypeJSONP, b)
		return
	}
	send(w, http.StatusOK, contentTypeJSON, append(body, '\n'))
}

// jsonValue encodes one cell. Non-finite floats, which JSON cannot carry,
// become null rather than failing the whole response.
func jsonValue(v any) ([]byte, error) {
	if f, ok := v.(float64); ok && (math.IsNaN(f) || math.IsInf(f, 0)) {
		return []byte("null"), nil
	}
	return marshalJSON(v)
}

// rowsJSON encodes a page as an array of objects, one per row. Keys follow
// the table's column order (timestamp first) rather than Go's map order, so
// the output is stable and reads naturally. The row id is internal and is
// never served.
func rowsJSON(page engine.RowPage) ([]byte, error) {
	keys := make([][]byte, len(page.Columns))
	for i, c := range page.Columns {
		k, err := marshalJSON(c)
		if err != nil {
			return nil, err
		}
		keys[i] = k
	}
	var b bytes.Buffer
	b.WriteByte('[')
	for i, row := range page.Rows {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('{')
		for j, v := range row {
			if j >= len(keys) {
				break
			}
			if j > 0 {
				b.WriteByte(',')
			}
			b.Write(keys[j])
			b.WriteByte(':')
			enc, err := jsonValue(v)
			if err != nil {
				return nil, fmt.Errorf("column %s: %w", page.Columns[j], err)
			}
			b.Write(enc)
		}
		b.WriteByte('}')
	}
	b.WriteByte(']')
	return b.Bytes(), nil
}

// csvValue formats one cell for CSV: numbers without exponent where
// possible, json columns as their JSON text, NULL as an empty field.
func csvValue(v any, t schema.Type) (string, error) {
	if v == nil {
		return "", nil
	}
	if t == schema.JSON {
		b, err := jsonValue(v)
		return string(b), err
	}
	switch x := v.(type) {
	case string:
		return x, nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return "", nil
		}
		return strconv.FormatFloat(x, 'f', -1, 64), nil
	case bool:
		return strconv.FormatBool(x), nil
	}
	b, err := jsonValue(v)
	return string(b), err
}

// writeCSV encodes records as RFC 4180 CSV (fields with commas, quotes or
// line breaks are quoted, quotes doubled). Records end with "\n" rather than
// "\r\n": encoding/csv in CRLF mode would also rewrite line breaks inside
// values, and every CSV reader in use accepts both.
func writeCSV(records [][]string) ([]byte, error) {
	for _, rec := range records {
		for i, f := range rec {
			rec[i] = csvText(f)
		}
	}
	var b bytes.Buffer
	cw := csv.NewWriter(&b)
	if err := cw.WriteAll(records); err != nil {
		return nil, fmt.Errorf("encode csv: %w", err)
	}
	return b.Bytes(), nil
}

// csvText makes a field safe to serve as text/csv; charset=utf-8: bytes
// that are not UTF-8 and control characters other than tab and line
// breaks (NUL, ESC, DEL, ...) become U+FFFD. Records that carry them are
// rejected at the door, but a model may build such a string itself (string.char,
// a byte-wise sub), and older databases may hold some. JSON needs no such
// step: encoding/json escapes control characters and replaces invalid
// UTF-8 already.
func csvText(s string) string {
	clean := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= utf8.RuneSelf || isControl(rune(c)) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && n == 1) || isControl(r) {
			b.WriteRune(utf8.RuneError)
		} else {
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

func isControl(r rune) bool {
	return (r < 0x20 && r != '\t' && r != '\n' && r != '\r') || r == 0x7f
}

// rowsCSV encodes a page as CSV: a header line with timestamp first and
// the other columns in alphabetical order, as the original did, then one
// line per row.
func rowsCSV(page engine.RowPage) ([]byte, error) {
	t := schema.Table{Columns: make([]schema.Column, len(page.Columns))}
	index := make(map[string]int, len(page.Columns))
	for i, c := range page.Columns {
		t.Columns[i] = schema.Column{Name: c}
		index[c] = i
	}
	header := append([]string{schema.TimestampColumn}, t.SortedNonTimestamp()...)
	records := make([][]string, 0, len(page.Rows)+1)
	records = append(records, header)
	for _, row := range page.Rows {
		rec := make([]string, len(header))
		for j, name := range header {
			i, ok := index[name]
			if !ok || i >= len(row) {
				continue
			}
			var typ schema.Type
			if i < len(page.Types) {
				typ = page.Types[i]
			}
			s, err := csvValue(row[i], typ)
			if err != nil {
				return nil, fmt.Errorf("column %s: %w", name, err)
			}
			rec[j] = s
		}
		records = append(records, rec)
	}
	return writeCSV(records)
}
