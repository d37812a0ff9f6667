package archive

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"statscache/engine"
	"statscache/engine/archive/dgtest"
)

// rawRecord is a minimal /raw record at ts (seconds, with a fraction).
func rawRecord(i int, ts float64) []byte {
	b, _ := json.Marshal(map[string]any{
		"msg_id": fmt.Sprintf("2024-%08x-0000-4000-8000-000000000000", i), "topic": "org.fedoraproject.prod.test",
		"timestamp": json.Number(strconv.FormatFloat(ts, 'f', 6, 64)), "msg": map[string]any{"i": i},
	})
	return b
}

// TestFetchSpansTileFractionalRanges: consecutive FetchSpans calls over
// ranges whose ends fall inside a second (and on a message) deliver every
// message exactly once, each inside the span it comes with, and the spans
// of each call tile its range in order, empty windows included.
func TestFetchSpansTileFractionalRanges(t *testing.T) {
	rng := rand.New(rand.NewPCG(41, 1))
	var recs [][]byte
	times := map[string]int64{}
	for i := 0; i < 400; i++ {
		// Many on whole seconds and on the range ends below, the rest
		// anywhere in 300 s.
		var ts float64
		switch i % 4 {
		case 0:
			ts = float64(t0 + rng.IntN(300))
		case 1:
			ts = float64(t0) + float64(rng.IntN(12))*25 + 0.25 // on a range end
		default:
			ts = float64(t0) + rng.Float64()*300
		}
		rec := rawRecord(i, ts)
		recs = append(recs, rec)
		m, err := (&engine.Decoder{}).Decode(rec)
		if err != nil {
			t.Fatal(err)
		}
		times[m.Key] = m.TimeUS
	}
	srv := dgtest.New(recs, dgtest.Options{Seed: 3})
	defer srv.Close()
	c := newClient(t, srv)
	c.Window = 7 * time.Second
	seen := map[string]int{}
	for k := 0; k < 12; k++ {
		from := time.Unix(t0, 0).Add(time.Duration(k)*25*time.Second + 250*time.Millisecond)
		to := from.Add(25 * time.Second)
		if k == 0 {
			from = time.Unix(t0-1, 0)
		}
		if k == 11 {
			to = time.Unix(t0+301, 0)
		}
		next := from.UnixMicro()
		err := c.FetchSpans(context.Background(), from, to, func(s engine.Span, batch []*engine.Message) error {
			if s.FromUS != next || s.Empty() {
				t.Errorf("range %d: span %+v after %d: the spans do not tile", k, s, next)
			}
			next = s.ToUS
			for _, m := range batch {
				if m.TimeUS < s.FromUS || m.TimeUS >= s.ToUS {
					t.Errorf("message at %d delivered with span %+v", m.TimeUS, s)
				}
				seen[m.Key]++
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if next != to.UnixMicro() {
			t.Errorf("range %d: spans end at %d, want %d", k, next, to.UnixMicro())
		}
	}
	for k, us := range times {
		if seen[k] != 1 {
			t.Errorf("message at %s delivered %d times", time.UnixMicro(us).UTC().Format(time.RFC3339Nano), seen[k])
		}
	}
}

// TestRecordsOutsideTheWindowDoNotCount: an archive that answers a window
// with a record from elsewhere in place of one of its own must not make
// the window add up: the span would be recorded complete without the
// missing message. The window must fail (the follower retries it; models
// wait) instead.
func TestRecordsOutsideTheWindowDoNotCount(t *testing.T) {
	// in1 and in2 (at t0+20) are the window's; in2 is never returned.
	in1 := rawRecord(1, t0+10)
	far := rawRecord(3, t0-86400)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Every query: a total of 2, answered with in1 and a record from
		// a day before.
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"raw_messages":[%s,%s],"total":2,"pages":1,"count":2}`, in1, far)
	}))
	defer srv.Close()
	c := &Client{BaseURL: srv.URL, Window: time.Minute, MaxRefetch: 2, Retries: 1,
		BackoffMin: time.Millisecond, BackoffMax: time.Millisecond, Logger: testLogger(t)}
	var spans []engine.Span
	err := c.FetchSpans(context.Background(), time.Unix(t0, 0), time.Unix(t0+60, 0), func(s engine.Span, batch []*engine.Message) error {
		spans = append(spans, s)
		return nil
	})
	if err == nil {
		t.Errorf("the window was taken as complete (spans %+v) though the archive answered a record from outside it for one of its own", spans)
	}
}
