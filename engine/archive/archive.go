// Package archive reads bus history from datagrepper's /raw endpoint to
// fill the gaps the live bus leaves.
//
// datagrepper cannot be paged naively (shared/research/datagrepper-fedmsg.md
// §1.7): it orders by a one-second timestamp with no tiebreaker, so rows that
// share a second come back in any order and offset paging can skip or repeat
// them; each page is a new query with a new total; and messages are inserted
// late, stamped in the past. The client therefore works in fixed time
// windows with explicit start and end, pages each window, and checks that
// it collected as many unique messages as the window's total says. When it
// did not, it splits the window in halves and fetches again, down to one
// second, where it re-fetches until the union of ids reaches the total.
// Windows are fetched concurrently but handed on strictly in order, and a
// window that cannot be fetched stops the run with an error rather than
// being skipped.
//
// The client does not know how far behind the bus the archive is: callers
// must keep end at least a settle lag (minutes) before now, and re-scan
// recent windows, so that late inserts are seen.
package archive

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/valyala/fastjson"

	"statscache/engine"
)

// Defaults for the zero values of Client.
const (
	DefaultConcurrency    = 2 // polite: datagrepper is a shared community service
	DefaultRowsPerPage    = 100
	DefaultWindow         = time.Hour
	DefaultMinWindow      = time.Second
	DefaultRetries        = 6
	DefaultRequestTimeout = 60 * time.Second
	DefaultBackoffMin     = 500 * time.Millisecond
	DefaultBackoffMax     = 30 * time.Second
	// DefaultMaxRefetch bounds how often one minimal window is fetched
	// again before the client gives up on reaching its total.
	DefaultMaxRefetch = 20
	// maxRowsPerPage is datagrepper's cap (rows_per_page > 100 is a 400).
	maxRowsPerPage = 100
)

// Client fetches history from datagrepper. Set the fields, then call Fetch;
// zero values take the defaults. A Client must not be copied after first
// use. Fetch may run once at a time per Client.
type Client struct {
	// BaseURL is datagrepper's base, e.g.
	// https://apps.fedoraproject.org/datagrepper; the client appends /raw.
	BaseURL string
	HTTP    *http.Client
	// Concurrency bounds the windows fetched at once.
	Concurrency int
	// RowsPerPage is at most 100, datagrepper's cap.
	RowsPerPage int
	// Window is the span of the windows the range is cut into; MinWindow
	// is the smallest a window is split to. Both are whole seconds (the
	// archive's resolution), at least one.
	Window, MinWindow time.Duration
	// Retries is how many times a failed request is retried, with
	// exponential backoff between BackoffMin and BackoffMax.
	Retries                int
	BackoffMin, BackoffMax time.Duration
	// RequestTimeout bounds one HTTP request, body included.
	RequestTimeout time.Duration
	// MaxRefetch bounds the re-fetches of one minimal window whose pages
	// never add up to its total.
	MaxRefetch int
	Limits     engine.Limits
	// OnProgress, if set, is called after every delivered window.
	OnProgress func(Progress)
	// OnReject, if set, is called with every record that failed to decode.
	OnReject func(engine.Reject)
	Logger   *slog.Logger

	mu      sync.Mutex
	prog    Progress
	started time.Time
	rejects []engine.Reject
}

// Progress is where a Fetch is. Windows counts the planned windows (the
// splits a window needs are not counted); Rate is messages per second
// since the Fetch began and ETA extrapolates it over the windows left.
type Progress struct {
	Windows     int
	WindowsDone int
	Messages    int64
	Rate        float64
	ETA         time.Duration
	Requests    int64 // HTTP requests made
	Retries     int64 // requests that failed and were retried
	Splits      int64 // windows split because the pages did not add up
	Refetches   int64 // minimal windows fetched again for the same reason
	Rejected    int64 // records that failed to decode
	Duplicates  int64 // records dropped as already seen
	Outside     int64 // records outside the window asked for (not counted)
	// Position is the end of the last delivered window: a Fetch that fails
	// can be resumed from here.
	Position time.Time
}

// WindowError is returned when a window cannot be fetched. Every window
// before Start has been delivered; resume from Start.
type WindowError struct {
	Start, End time.Time
	Err        error
}

func (e *WindowError) Error() string {
	return fmt.Sprintf("archive: window [%s, %s): %v", e.Start.UTC().Format(time.RFC3339), e.End.UTC().Format(time.RFC3339), e.Err)
}

func (e *WindowError) Unwrap() error { return e.Err }

// Progress returns a snapshot of the current (or last) Fetch.
func (c *Client) Progress() Progress {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.progressLocked()
}

// Rejects returns the records that failed to decode in the current (or
// last) Fetch, with their reasons.
func (c *Client) Rejects() []engine.Reject {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]engine.Reject(nil), c.rejects...)
}

func (c *Client) progressLocked() Progress {
	p := c.prog
	if el := time.Since(c.started).Seconds(); el > 0 && !c.started.IsZero() {
		p.Rate = float64(p.Messages) / el
		if p.WindowsDone > 0 {
			p.ETA = time.Duration(el / float64(p.WindowsDone) * float64(p.Windows-p.WindowsDone) * float64(time.Second))
		}
	}
	return p
}

func (c *Client) count(f func(p *Progress)) {
	c.mu.Lock()
	f(&c.prog)
	c.mu.Unlock()
}

// settings are the effective (defaulted) configuration of one Fetch.
type settings struct {
	base                   string
	hc                     *http.Client
	conc, rpp              int
	window, minWindow      int64 // seconds
	retries, maxRefetch    int
	backoffMin, backoffMax time.Duration
	timeout                time.Duration
	log                    *slog.Logger
}

func (c *Client) settings() (settings, error) {
	s := settings{
		base: strings.TrimRight(c.BaseURL, "/"), hc: c.HTTP, conc: c.Concurrency, rpp: c.RowsPerPage,
		retries: c.Retries, maxRefetch: c.MaxRefetch, backoffMin: c.BackoffMin, backoffMax: c.BackoffMax,
		timeout: c.RequestTimeout, log: c.Logger,
	}
	if s.base == "" {
		return s, errors.New("archive: no BaseURL")
	}
	if _, err := url.Parse(s.base); err != nil {
		return s, fmt.Errorf("archive: BaseURL: %w", err)
	}
	if s.hc == nil {
		s.hc = http.DefaultClient
	}
	if s.conc <= 0 {
		s.conc = DefaultConcurrency
	}
	if s.rpp <= 0 || s.rpp > maxRowsPerPage {
		s.rpp = DefaultRowsPerPage
	}
	w, mw := c.Window, c.MinWindow
	if w <= 0 {
		w = DefaultWindow
	}
	if mw <= 0 {
		mw = DefaultMinWindow
	}
	s.window = max(int64(w/time.Second), 1)
	s.minWindow = min(max(int64(mw/time.Second), 1), s.window)
	if s.retries <= 0 {
		s.retries = DefaultRetries
	}
	if s.maxRefetch <= 0 {
		s.maxRefetch = DefaultMaxRefetch
	}
	if s.backoffMin <= 0 {
		s.backoffMin = DefaultBackoffMin
	}
	if s.backoffMax < s.backoffMin {
		s.backoffMax = max(DefaultBackoffMax, s.backoffMin)
	}
	if s.timeout <= 0 {
		s.timeout = DefaultRequestTimeout
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	return s, nil
}

// span is a window in whole Unix seconds: the query is [lo, hi] (the
// archive's end is inclusive) and the window keeps messages in [lo, hi).
type span struct{ lo, hi int64 }

func (w span) String() string {
	return fmt.Sprintf("[%s, %s)", time.Unix(w.lo, 0).UTC().Format(time.RFC3339), time.Unix(w.hi, 0).UTC().Format(time.RFC3339))
}

// Fetch delivers every archived message in [start, end) to fn, in (time,
// key) order and without duplicate keys, one window per call (a window
// with no messages is not delivered). It returns nil when the whole range
// has been delivered, the first error from fn, ctx's error, or a
// *WindowError when a window could not be fetched after all retries;
// windows are never skipped.
//
// The archive keeps only whole seconds, so the range is widened to whole
// seconds on the server side and then cut back to [start, end) by message
// time. Keys are deduplicated within a window and against the window
// before it; a message archived twice under distant timestamps (the
// archive's unique key is (msg_id, timestamp)) is left for the journal to
// deduplicate.
func (c *Client) Fetch(ctx context.Context, start, end time.Time, fn func(batch []*engine.Message) error) error {
	return c.FetchSpans(ctx, start, end, func(_ engine.Span, batch []*engine.Message) error {
		if len(batch) == 0 {
			return nil
		}
		return fn(batch)
	})
}

// FetchSpans is Fetch that also says which span of time each call
// completes: when fn is called with span, batch holds every archived
// message of span not delivered before. Every window is delivered, empty
// or not, and the spans tile [start, end) in order, so a caller that
// records them durably with the messages knows exactly what is left after
// a crash.
func (c *Client) FetchSpans(ctx context.Context, start, end time.Time, fn func(span engine.Span, batch []*engine.Message) error) error {
	s, err := c.settings()
	if err != nil {
		return err
	}
	if !start.Before(end) {
		return nil
	}
	lo := start.Unix() // floor for times after 1970
	if start.Before(time.Unix(lo, 0)) {
		lo--
	}
	hi := end.Unix()
	if time.Unix(hi, 0).Before(end) {
		hi++
	}
	var windows []span
	for a := lo; a < hi; a += s.window {
		windows = append(windows, span{a, min(a+s.window, hi)})
	}
	startUS, endUS := start.UnixMicro(), end.UnixMicro()

	c.mu.Lock()
	c.prog = Progress{Windows: len(windows), Position: start}
	c.started = time.Now()
	c.rejects = nil
	c.mu.Unlock()

	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	type result struct {
		msgs []*engine.Message
		err  error
		done chan struct{}
	}
	results := make([]*result, len(windows))
	for i := range results {
		results[i] = &result{done: make(chan struct{})}
	}
	// ahead bounds the windows fetched but not yet delivered, so memory
	// stays bounded however long the range; sem bounds concurrent fetches.
	ahead := make(chan struct{}, 2*s.conc)
	sem := make(chan struct{}, s.conc)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i, w := range windows {
			select {
			case ahead <- struct{}{}:
			case <-ctx.Done():
				return
			}
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				f := &fetcher{c: c, s: s}
				msgs, err := f.window(ctx, w)
				results[i].msgs, results[i].err = msgs, err
				close(results[i].done)
			}()
		}
	}()

	var prevKeys map[string]struct{}
	for i, w := range windows {
		r := results[i]
		select {
		case <-r.done:
		case <-ctx.Done():
			return ctx.Err()
		}
		if r.err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return &WindowError{Start: time.Unix(w.lo, 0).UTC(), End: time.Unix(w.hi, 0).UTC(), Err: r.err}
		}
		keys := make(map[string]struct{}, len(r.msgs))
		batch := r.msgs[:0]
		dups := 0
		for _, m := range r.msgs {
			if m.TimeUS < startUS || m.TimeUS >= endUS {
				continue
			}
			if _, seen := prevKeys[m.Key]; seen {
				dups++
				continue
			}
			keys[m.Key] = struct{}{}
			batch = append(batch, m)
		}
		prevKeys = keys
		r.msgs = nil
		span := engine.Span{FromUS: max(w.lo*1e6, startUS), ToUS: min(w.hi*1e6, endUS)}
		if err := fn(span, batch); err != nil {
			return err
		}
		<-ahead
		pos := time.Unix(w.hi, 0).UTC()
		if pos.After(end) {
			pos = end
		}
		c.mu.Lock()
		c.prog.WindowsDone++
		c.prog.Messages += int64(len(batch))
		c.prog.Duplicates += int64(dups)
		c.prog.Position = pos
		p := c.progressLocked()
		c.mu.Unlock()
		if c.OnProgress != nil {
			c.OnProgress(p)
		}
	}
	return nil
}

// fetcher fetches one planned window; each goroutine has its own (the
// decoder is not safe for concurrent use).
type fetcher struct {
	c   *Client
	s   settings
	dec engine.Decoder
	p   fastjson.Parser
}

// window returns the messages of w (times in [w.lo, w.hi)), sorted by
// (time, key), each key once.
func (f *fetcher) window(ctx context.Context, w span) ([]*engine.Message, error) {
	f.dec.Limits = f.c.Limits
	got := map[string]*engine.Message{}
	if err := f.collect(ctx, w, got); err != nil {
		return nil, err
	}
	out := make([]*engine.Message, 0, len(got))
	for _, m := range got {
		if m.TimeUS >= w.lo*1e6 && m.TimeUS < w.hi*1e6 {
			out = append(out, m)
		}
	}
	slices.SortFunc(out, func(a, b *engine.Message) int {
		if a.Pos().Less(b.Pos()) {
			return -1
		}
		if b.Pos().Less(a.Pos()) {
			return 1
		}
		return 0
	})
	return out, nil
}

// collect adds the messages of the query [w.lo, w.hi] to got, making sure
// the count adds up to the archive's total.
func (f *fetcher) collect(ctx context.Context, w span, got map[string]*engine.Message) error {
	seen := map[string]struct{}{} // ids of this query, rejects included
	ok, err := f.pass(ctx, w, got, seen)
	if err != nil || ok {
		return err
	}
	if w.hi-w.lo > f.s.minWindow {
		// Ties shuffled across page boundaries (or a late insert): page
		// smaller windows, which need fewer pages.
		mid := w.lo + (w.hi-w.lo)/2
		f.c.count(func(p *Progress) { p.Splits++ })
		f.s.log.Debug("archive: window did not add up, splitting", "window", w.String())
		if err := f.collect(ctx, span{w.lo, mid}, got); err != nil {
			return err
		}
		return f.collect(ctx, span{mid, w.hi}, got)
	}
	// A minimal window holding more than one page of ties: only repeated
	// passes can see every row; keep the union until it reaches the total.
	for i := 0; i < f.s.maxRefetch; i++ {
		f.c.count(func(p *Progress) { p.Refetches++ })
		ok, err := f.pass(ctx, w, got, seen)
		if err != nil || ok {
			return err
		}
	}
	return fmt.Errorf("window %s: %d unique records after %d passes, fewer than the archive's total", w, len(seen), f.s.maxRefetch+1)
}

// pass pages once through the query [w.lo, w.hi] and reports whether the
// unique ids seen so far (over all passes) reach the total of every page.
func (f *fetcher) pass(ctx context.Context, w span, got map[string]*engine.Message, seen map[string]struct{}) (bool, error) {
	total, pages := -1, 1
	consistent := true
	for page := 1; page <= pages; page++ {
		pg, err := f.page(ctx, w, page)
		if err != nil {
			return false, err
		}
		if total >= 0 && pg.total != total {
			consistent = false // rows appeared (or vanished) while paging
		}
		total = max(total, pg.total)
		// Trust the arithmetic, not the pages field: a hostile or broken
		// answer must not send us paging for ever.
		pages = (total + f.s.rpp - 1) / f.s.rpp
		for _, rec := range pg.records {
			f.take(w, page, rec, got, seen)
		}
	}
	return consistent && len(seen) >= total, nil
}

// take decodes one record into got, or reports it as rejected, once per id.
func (f *fetcher) take(w span, page int, rec []byte, got map[string]*engine.Message, seen map[string]struct{}) {
	id := recordID(&f.p, rec)
	if _, dup := seen[id]; dup {
		return
	}
	m, err := f.dec.Decode(rec)
	if err == nil && (m.TimeUS < (w.lo-1)*1e6 || m.TimeUS >= (w.hi+1)*1e6) {
		// Not a row of this query [lo, hi] (a second of slack either
		// side: the archive keeps whole seconds, a sent-at header may
		// carry a fraction): the total counts only the query's rows, so a
		// record from elsewhere must not make the window add up in place
		// of a missing one.
		f.c.count(func(p *Progress) { p.Outside++ })
		f.s.log.Warn("archive: record outside the window asked for; not counted", "window", w.String(), "page", page, "id", m.ID,
			"time", time.UnixMicro(m.TimeUS).UTC().Format(time.RFC3339Nano))
		return
	}
	seen[id] = struct{}{}
	if err != nil {
		r := engine.Reject{Source: fmt.Sprintf("datagrepper /raw %s page %d", w, page), Reason: err.Error(), Record: rec}
		f.c.mu.Lock()
		f.c.prog.Rejected++
		f.c.rejects = append(f.c.rejects, r)
		f.c.mu.Unlock()
		f.s.log.Warn("archive: record rejected", "source", r.Source, "reason", r.Reason)
		if f.c.OnReject != nil {
			f.c.OnReject(r)
		}
		return
	}
	if old, ok := got[m.Key]; !ok || m.Pos().Less(old.Pos()) {
		got[m.Key] = m
	}
}

// recordID identifies a record for the total check: its id, or the record
// itself when it has none (it will be rejected, but still counts).
func recordID(p *fastjson.Parser, rec []byte) string {
	if v, err := p.ParseBytes(rec); err == nil {
		for _, k := range []string{"msg_id", "id"} {
			if s := v.GetStringBytes(k); s != nil {
				// The archive is unique on (msg_id, timestamp).
				var ts []byte
				if t := v.Get("timestamp"); t != nil {
					ts = t.MarshalTo(nil)
				}
				return string(s) + "\x00" + string(ts)
			}
		}
	}
	return "\x01" + string(rec)
}

// page is one decoded /raw response.
type page struct {
	total, pages int
	records      [][]byte
}

// retryable marks errors worth another attempt.
type retryable struct{ err error }

func (e retryable) Error() string { return e.err.Error() }
func (e retryable) Unwrap() error { return e.err }

// page fetches one page, retrying transient failures with backoff.
func (f *fetcher) page(ctx context.Context, w span, n int) (page, error) {
	q := url.Values{}
	q.Set("start", strconv.FormatInt(w.lo, 10))
	q.Set("end", strconv.FormatInt(w.hi, 10))
	q.Set("order", "asc")
	q.Set("rows_per_page", strconv.Itoa(f.s.rpp))
	q.Set("page", strconv.Itoa(n))
	u := f.s.base + "/raw?" + q.Encode()
	var last error
	for attempt := 0; ; attempt++ {
		f.c.count(func(p *Progress) { p.Requests++ })
		pg, err := f.get(ctx, u)
		if err == nil {
			return pg, nil
		}
		if ctx.Err() != nil {
			return page{}, ctx.Err()
		}
		last = err
		var r retryable
		if !errors.As(err, &r) {
			return page{}, fmt.Errorf("GET %s: %w", u, err)
		}
		if attempt >= f.s.retries {
			break
		}
		f.c.count(func(p *Progress) { p.Retries++ })
		d := backoff(f.s.backoffMin, f.s.backoffMax, attempt)
		f.s.log.Warn("archive: request failed, retrying", "url", u, "err", err, "attempt", attempt+1, "retry_in", d)
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return page{}, ctx.Err()
		}
	}
	return page{}, fmt.Errorf("GET %s: giving up after %d attempts: %w", u, f.s.retries+1, last)
}

func backoff(lo, hi time.Duration, attempt int) time.Duration {
	d := float64(lo) * math.Pow(2, float64(attempt))
	if d > float64(hi) {
		d = float64(hi)
	}
	return time.Duration(d/2 + rand.Float64()*d/2)
}

// get performs one request and decodes the body.
func (f *fetcher) get(ctx context.Context, u string) (page, error) {
	ctx, cancel := context.WithTimeout(ctx, f.s.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return page{}, err
	}
	// Without it datagrepper labels JSON as text/html, and text/html gets
	// an HTML page; exactly this value gets JSON.
	req.Header.Set("Accept", "application/json")
	resp, err := f.s.hc.Do(req)
	if err != nil {
		return page{}, retryable{err} // refused, reset, timed out: all transient
	}
	defer resp.Body.Close()
	limit := int64(f.s.rpp)*int64(max(f.c.Limits.MaxBytes, engine.DefaultLimits.MaxBytes)) + 1<<20
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit))
	if err != nil {
		return page{}, retryable{fmt.Errorf("read body: %w", err)}
	}
	ct, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	switch {
	case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusRequestTimeout:
		return page{}, retryable{fmt.Errorf("status %s: %s", resp.Status, snippet(body))}
	case resp.StatusCode != http.StatusOK:
		return page{}, fmt.Errorf("status %s: %s", resp.Status, snippet(body))
	case ct == "text/html":
		// An error page from a proxy or the app, served with 200.
		return page{}, retryable{fmt.Errorf("got an HTML page instead of JSON: %s", snippet(body))}
	}
	pg, err := decodePage(&f.p, body)
	if err != nil {
		return page{}, retryable{err}
	}
	return pg, nil
}

// decodePage reads a /raw response: raw_messages, total, pages and count.
// Anything missing or inconsistent (a truncated body, a proxy's JSON error)
// is an error; the records themselves are decoded later, one by one.
func decodePage(p *fastjson.Parser, body []byte) (page, error) {
	v, err := p.ParseBytes(body)
	if err != nil {
		return page{}, fmt.Errorf("response is not JSON (truncated?): %w", err)
	}
	if v.Type() != fastjson.TypeObject {
		return page{}, fmt.Errorf("response is a JSON %s, not an object", v.Type())
	}
	arr := v.Get("raw_messages")
	if arr == nil || arr.Type() != fastjson.TypeArray {
		if e := v.Get("error"); e != nil {
			return page{}, fmt.Errorf("archive error: %s", snippet(e.MarshalTo(nil)))
		}
		return page{}, errors.New("response has no raw_messages array")
	}
	num := func(k string) (int, error) {
		x := v.Get(k)
		if x == nil || x.Type() != fastjson.TypeNumber {
			return 0, fmt.Errorf("response has no numeric %s", k)
		}
		n, err := x.Int()
		if err != nil || n < 0 {
			return 0, fmt.Errorf("response %s is not a count", k)
		}
		return n, nil
	}
	var pg page
	if pg.total, err = num("total"); err != nil {
		return page{}, err
	}
	if pg.pages, err = num("pages"); err != nil {
		return page{}, err
	}
	items, _ := arr.Array()
	if c, err := num("count"); err == nil && c != len(items) {
		return page{}, fmt.Errorf("response count %d but %d records", c, len(items))
	}
	if len(items) > pg.total {
		return page{}, fmt.Errorf("response has %d records but a total of %d", len(items), pg.total)
	}
	for _, it := range items {
		pg.records = append(pg.records, it.MarshalTo(nil))
	}
	return pg, nil
}

func snippet(b []byte) string {
	s := strings.Join(strings.Fields(string(b)), " ")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}
