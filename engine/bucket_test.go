package engine_test

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"statscache/engine"
)

type bucketCase struct {
	line               int
	timeUS, intervalUS int64
	iv                 time.Duration // the interval, fixed or calendar
	want               int64
}

// readBucketGolden reads testdata/buckets.golden: "time_us interval
// want_us" per line, with # comments; the interval is whole seconds or a
// calendar interval ("1w", "1mo").
func readBucketGolden(t *testing.T) []bucketCase {
	t.Helper()
	f, err := os.Open("testdata/buckets.golden")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var cases []bucketCase
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		if len(fields) != 3 {
			t.Fatalf("buckets.golden:%d: want 3 fields, got %d", n, len(fields))
		}
		var v [3]int64
		var iv time.Duration
		for i, s := range fields {
			if i == 1 && (s == "1w" || s == "1mo") {
				iv, _ = engine.ParseInterval(s)
				continue
			}
			if v[i], err = strconv.ParseInt(s, 10, 64); err != nil {
				t.Fatalf("buckets.golden:%d: %v", n, err)
			}
		}
		if iv == 0 {
			iv = time.Duration(v[1]) * time.Second
		}
		cases = append(cases, bucketCase{line: n, timeUS: v[0], intervalUS: v[1] * 1e6, iv: iv, want: v[2]})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(cases) < 40 {
		t.Fatalf("buckets.golden: only %d cases read", len(cases))
	}
	return cases
}

func TestBucketEndGolden(t *testing.T) {
	calendar := 0
	for _, c := range readBucketGolden(t) {
		t.Run(fmt.Sprintf("line%d", c.line), func(t *testing.T) {
			if !engine.IsCalendar(c.iv) {
				got, want := engine.BucketEnd(c.timeUS, c.intervalUS), c.want
				if got != want {
					t.Errorf("BucketEnd(%d, %d) = %d, want %d (buckets.golden:%d)", c.timeUS, c.intervalUS, got, want, c.line)
				}
			} else {
				calendar++
			}
			got, want := engine.Bucket(c.timeUS, c.iv), c.want
			if got != want {
				t.Errorf("Bucket(%d, %s) = %d, want %d (buckets.golden:%d)", c.timeUS, engine.FormatInterval(c.iv), got, want, c.line)
			}
		})
	}
	if calendar < 20 {
		t.Errorf("buckets.golden: only %d calendar cases", calendar)
	}
}

// TestCalendarBucketProperties checks calendar labels against the time
// package over every hour of 1969 to 1971 and of 2015 to 2017 (leap year,
// ISO week 53, the epoch): a week's label is a Monday 00:00 UTC less than
// 7 days after the time and after it; a month's is the first of a month
// 00:00 UTC, after the time, with the time in the month before.
func TestCalendarBucketProperties(t *testing.T) {
	for _, span := range [][2]int{{1969, 1972}, {2015, 2018}} {
		from := time.Date(span[0], 1, 1, 0, 0, 0, 0, time.UTC)
		to := time.Date(span[1], 1, 1, 0, 0, 0, 0, time.UTC)
		for tm := from; tm.Before(to); tm = tm.Add(time.Hour + time.Minute + time.Second) {
			us := tm.UnixMicro()
			w := time.UnixMicro(engine.Bucket(us, engine.Week)).UTC()
			if w.Weekday() != time.Monday || w.Hour()+w.Minute()+w.Second()+w.Nanosecond() != 0 || !w.After(tm) || w.Sub(tm) > 7*24*time.Hour {
				t.Fatalf("Bucket(%s, 1w) = %s: not the Monday that ends its ISO week", tm, w)
			}
			y, wk := tm.ISOWeek()
			if y2, wk2 := w.Add(-time.Microsecond).ISOWeek(); y != y2 || wk != wk2 {
				t.Fatalf("Bucket(%s, 1w) = %s: ends ISO week %d-%d, not %d-%d", tm, w, y2, wk2, y, wk)
			}
			m := time.UnixMicro(engine.Bucket(us, engine.Month)).UTC()
			prev := m.Add(-time.Microsecond)
			if m.Day() != 1 || m.Hour()+m.Minute()+m.Second()+m.Nanosecond() != 0 || prev.Month() != tm.Month() || prev.Year() != tm.Year() {
				t.Fatalf("Bucket(%s, 1mo) = %s: not the first instant of the next month", tm, m)
			}
		}
	}
	// Fixed intervals keep their epoch alignment through Bucket.
	if got := engine.Bucket(1439121600123456, 7*24*time.Hour); got != engine.BucketEnd(1439121600123456, 7*86400e6) {
		t.Errorf("Bucket(t, 7d) = %d: a fixed 7d interval must stay aligned on the epoch", got)
	}
}

func TestCalendarIntervals(t *testing.T) {
	for _, tt := range []struct {
		in    string
		want  time.Duration
		ident string
	}{{"1w", engine.Week, "contributors-1w"}, {" 1mo ", engine.Month, "contributors-1mo"}} {
		got, err := engine.ParseInterval(tt.in)
		if err != nil || got != tt.want {
			t.Fatalf("ParseInterval(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
		if !engine.IsCalendar(got) || got <= 0 {
			t.Errorf("%q: IsCalendar false or not positive", tt.in)
		}
		if id := engine.Ident("Contributors", got); id != tt.ident {
			t.Errorf("Ident(Contributors, %q) = %q, want %q", tt.in, id, tt.ident)
		}
	}
	// No parsed fixed interval is taken for a calendar one.
	for _, s := range []string{"7d", "604800", "2629746", "30d10h29m6s"} {
		iv, err := engine.ParseInterval(s)
		if err != nil || engine.IsCalendar(iv) {
			t.Errorf("ParseInterval(%q) = %v, %v: want a fixed interval", s, iv, err)
		}
	}
}

// TestBucketEndProperties checks, on every golden time, what any bucket
// label must satisfy: the time lies in [end-I, end) and end is a multiple of
// I.
func TestBucketEndProperties(t *testing.T) {
	for _, c := range readBucketGolden(t) {
		if engine.IsCalendar(c.iv) {
			continue // TestCalendarBucketProperties
		}
		for _, iv := range []int64{1e6, 5e6, 60e6, 3600e6, 86400e6, c.intervalUS} {
			end := engine.BucketEnd(c.timeUS, iv)
			if end%iv != 0 || c.timeUS < end-iv || c.timeUS >= end {
				t.Errorf("BucketEnd(%d, %d) = %d: not the end of the bucket holding the time", c.timeUS, iv, end)
			}
		}
	}
}

func TestBucketEndNoInterval(t *testing.T) {
	for _, iv := range []int64{0, -60e6} {
		got, want := engine.BucketEnd(1439121600123456, iv), int64(1439121600123456)
		if got != want {
			t.Errorf("BucketEnd(t, %d) = %d, want t unchanged (%d)", iv, got, want)
		}
	}
}

func TestParseInterval(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want time.Duration
		// format is FormatInterval(want): the canonical spelling.
		format string
	}{
		{"OK1s", "1s", time.Second, "1s"},
		{"OK10s", "10s", 10 * time.Second, "10s"},
		{"OK15s", "15s", 15 * time.Second, "15s"},
		{"OK1m", "1m", time.Minute, "1m"},
		{"OK10m", "10m", 10 * time.Minute, "10m"},
		{"OK1h", "1h", time.Hour, "1h"},
		{"OK1d", "1d", 24 * time.Hour, "1d"},
		{"OK1d1h1m1s", "1d1h1m1s", 90061 * time.Second, "1d1h1m1s"},
		{"OK5h15m", "5h15m", 18900 * time.Second, "5h15m"},
		{"OK5h20m30s", "5h20m30s", 19230 * time.Second, "5h20m30s"},
		{"OK1d12h", "1d12h", 36 * time.Hour, "1d12h"},
		{"OKSkippedUnits", "2d30s", 2*24*time.Hour + 30*time.Second, "2d30s"},
		{"OKSeconds", "90", 90 * time.Second, "1m30s"},
		{"OKSecondsDay", "86400", 24 * time.Hour, "1d"},
		{"OKUnnormalized", "60s", time.Minute, "1m"},
		{"OKUnnormalizedHours", "25h", 25 * time.Hour, "1d1h"},
		{"OKSpaces", " 1h ", time.Hour, "1h"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := engine.ParseInterval(tt.in)
			if err != nil {
				t.Fatalf("ParseInterval(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Errorf("ParseInterval(%q) = %v, want %v", tt.in, got, tt.want)
			}
			if got, want := engine.FormatInterval(got), tt.format; got != want {
				t.Errorf("FormatInterval(%v) = %q, want %q", tt.want, got, want)
			}
			// The canonical spelling parses back to the same interval.
			back, err := engine.ParseInterval(tt.format)
			if err != nil || back != tt.want {
				t.Errorf("ParseInterval(%q) = %v, %v; want %v", tt.format, back, err, tt.want)
			}
		})
	}
}

func TestParseIntervalErrors(t *testing.T) {
	tests := []struct {
		name, in, wantErr string
	}{
		{"ErrBanana", "banana", "want forms like"},
		{"ErrEmpty", "", "empty interval"},
		{"ErrBlank", "   ", "empty interval"},
		{"ErrZeroUnit", "0s", "must be positive"},
		{"ErrZeroSum", "0d0h0m0s", "must be positive"},
		{"ErrZeroSeconds", "0", "must be positive"},
		{"ErrNegativeSeconds", "-5", "must be positive"},
		{"ErrNegativeUnit", "-1h", "want forms like"},
		{"ErrOrder", "1h1d", "units must go from days down to seconds"},
		{"ErrRepeatedUnit", "1h1h", "units must go from days down to seconds"},
		{"ErrUnknownUnit", "1y", "unknown unit"},
		{"ErrTwoWeeks", "2w", "calendar intervals are 1w"},
		{"ErrTwoMonths", "2mo", "calendar intervals are 1w"},
		{"ErrMinuteMonth", "1m1mo", "calendar intervals are 1w"},
		{"ErrUpperCaseUnit", "1H", "unknown unit"},
		{"ErrTrailingNumber", "1d1", "want forms like"},
		{"ErrNoNumber", "h", "want forms like"},
		{"ErrFraction", "1.5h", "unknown unit"},
		{"ErrTooLarge", "99999999999999999999s", "number too large"},
		{"ErrTooManySeconds", "99999999999", "too long"},
		{"ErrInnerSpace", "1h 30m", "want forms like"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := engine.ParseInterval(tt.in)
			if err == nil {
				t.Fatalf("ParseInterval(%q) = %v, want an error", tt.in, got)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseInterval(%q) error %q, want it to contain %q", tt.in, err, tt.wantErr)
			}
		})
	}
}

func TestFormatInterval(t *testing.T) {
	tests := []struct {
		name string
		in   time.Duration
		want string
	}{
		{"OK10s", 10 * time.Second, "10s"},
		{"OK10m", 10 * time.Minute, "10m"},
		{"OK1h", time.Hour, "1h"},
		{"OK1d", 24 * time.Hour, "1d"},
		{"OK1d1h1m1s", 24*time.Hour + time.Hour + time.Minute + time.Second, "1d1h1m1s"},
		{"OK2d", 48 * time.Hour, "2d"},
		{"OKZero", 0, "0s"},
		{"OKSubSecond", 500 * time.Millisecond, "0s"},
		{"OKDropsFraction", 1500 * time.Millisecond, "1s"},
		{"OKNegative", -time.Hour, "0s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, want := engine.FormatInterval(tt.in), tt.want
			if got != want {
				t.Errorf("FormatInterval(%v) = %q, want %q", tt.in, got, want)
			}
		})
	}
}

func TestIdent(t *testing.T) {
	tests := []struct {
		name     string
		model    string
		interval time.Duration
		want     string
	}{
		{"OKVolumeByCategory", "volume-by-category", time.Hour, "volume-by-category-1h"},
		{"OKSpaces", "Volume by Category", time.Hour, "volume-by-category-1h"},
		{"OKDotKept", "number of contribution to pagure.io", 24 * time.Hour, "number-of-contribution-to-pagure.io-1d"},
		{"OKRemovedCharacters", `A "B" 'c' (d) *e & f? g,h`, time.Minute, "a-b-c-d-e--f-gh-1m"},
		{"OKLongSuffix", "x", 90061 * time.Second, "x-1d1h1m1s"},
		{"OKNoInterval", "Release Engineering Event Logs", 0, "release-engineering-event-logs"},
		{"OKTrimmed", "  volume  ", 5 * time.Second, "volume-5s"},
		{"OKOtherPunctuationKept", "a/b:c_d", 0, "a/b:c_d"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, want := engine.Ident(tt.model, tt.interval), tt.want
			if got != want {
				t.Errorf("Ident(%q, %v) = %q, want %q", tt.model, tt.interval, got, want)
			}
		})
	}
}
