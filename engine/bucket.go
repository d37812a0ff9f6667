package engine

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// BucketEnd returns the label of the bucket that holds t: buckets are
// [B, B+interval) with B a multiple of interval counted from the Unix epoch,
// and a bucket is labelled with its END, B+interval, as in the original
// statscache. A time exactly on a boundary B belongs to [B, B+interval) and
// so gets B+interval. Times before the epoch use floor division, so they
// bucket the same way. Both arguments are microseconds.
func BucketEnd(tUS, intervalUS int64) int64 {
	if intervalUS <= 0 {
		return tUS
	}
	q := tUS / intervalUS
	if tUS%intervalUS < 0 {
		q-- // Go's division truncates toward zero; buckets floor.
	}
	return (q + 1) * intervalUS
}

// The calendar intervals. Fedora counts its contributors per ISO week and
// per month, and neither is a multiple of a fixed number of seconds from
// the epoch (the epoch was a Thursday; months differ in length). They are
// carried in a time.Duration like the fixed intervals, so ModelSpec and
// everything that stores or compares intervals stays as it is; what tells
// them apart is a nanosecond that no parsed interval has (parsed intervals
// are whole seconds). Their whole seconds are the nominal length: a week,
// and the mean Gregorian month (365.2425 days / 12), which is what code
// that only needs a rough size (a chart's gap, the sort of a list) reads.
const (
	// Week is "1w": ISO weeks, Monday 00:00 UTC up to the next Monday.
	Week = 7*24*time.Hour + 1
	// Month is "1mo": calendar months in UTC.
	Month = 2629746*time.Second + 1
)

// IsCalendar reports whether an interval is one of the calendar intervals.
func IsCalendar(d time.Duration) bool { return d == Week || d == Month }

// mondayOffsetUS is where ISO weeks start relative to the epoch's
// alignment: 1970-01-01 was a Thursday, the first Monday came 4 days later.
const mondayOffsetUS = 4 * 86400 * 1e6

// Bucket returns the END of the bucket of interval iv that holds the time
// tUS (microseconds): BucketEnd for a fixed interval, the next Monday 00:00
// UTC for Week and the first instant of the next month for Month. A time
// exactly on a boundary belongs to the period that starts there, as with
// the fixed intervals.
func Bucket(tUS int64, iv time.Duration) int64 {
	switch iv {
	case Week:
		return BucketEnd(tUS-mondayOffsetUS, 7*86400*1e6) + mondayOffsetUS
	case Month:
		t := time.UnixMicro(tUS).UTC()
		return time.Date(t.Year(), t.Month()+1, 1, 0, 0, 0, 0, time.UTC).UnixMicro()
	}
	return BucketEnd(tUS, iv.Microseconds())
}

// ParseInterval reads an interval as the original's schedule strings
// ("1s", "15s", "1m", "1h", "1d", "1d1h1m1s"), as a number of seconds, or
// as one of the calendar intervals "1w" (Week) and "1mo" (Month). Fixed
// intervals are whole seconds and positive.
func ParseInterval(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, fmt.Errorf("empty interval")
	}
	switch s {
	case "1w":
		return Week, nil
	case "1mo":
		return Month, nil
	}
	if strings.HasSuffix(s, "w") || strings.HasSuffix(s, "mo") {
		return 0, fmt.Errorf("interval %q: the calendar intervals are 1w (ISO weeks) and 1mo (months); write 14d for a fixed two weeks", s)
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n <= 0 {
			return 0, fmt.Errorf("interval %q: must be positive", s)
		}
		if n > 1<<33 {
			return 0, fmt.Errorf("interval %q: too long", s)
		}
		return time.Duration(n) * time.Second, nil
	}
	var total int64
	rest := s
	lastUnit := -1
	for rest != "" {
		i := 0
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		if i == 0 || i == len(rest) {
			return 0, fmt.Errorf("interval %q: want forms like 30s, 5m, 1h, 1d or 1d12h", s)
		}
		n, err := strconv.ParseInt(rest[:i], 10, 64)
		if err != nil || n > 1<<20 {
			return 0, fmt.Errorf("interval %q: number too large", s)
		}
		units := "dhms"
		u := strings.IndexByte(units, rest[i])
		if u < 0 {
			return 0, fmt.Errorf("interval %q: unknown unit %q (want d, h, m or s, or the calendar intervals 1w and 1mo)", s, rest[i])
		}
		if u <= lastUnit {
			return 0, fmt.Errorf("interval %q: units must go from days down to seconds, each once", s)
		}
		lastUnit = u
		total += n * []int64{86400, 3600, 60, 1}[u]
		rest = rest[i+1:]
	}
	if total <= 0 {
		return 0, fmt.Errorf("interval %q: must be positive", s)
	}
	return time.Duration(total) * time.Second, nil
}

// FormatInterval prints an interval the way the original's Schedule did:
// [Nd][Nh][Nm][Ns], "0s" when empty, and the calendar intervals as "1w"
// and "1mo". It is the suffix of a model's ident.
func FormatInterval(d time.Duration) string {
	switch d {
	case Week:
		return "1w"
	case Month:
		return "1mo"
	}
	secs := int64(d / time.Second)
	if secs <= 0 {
		return "0s"
	}
	var b strings.Builder
	for _, u := range []struct {
		n    int64
		name string
	}{{86400, "d"}, {3600, "h"}, {60, "m"}, {1, "s"}} {
		if secs >= u.n {
			fmt.Fprintf(&b, "%d%s", secs/u.n, u.name)
			secs %= u.n
		}
	}
	return b.String()
}

// Ident derives a model's ident from its name and interval the way the
// original did: lower case, spaces become "-", the characters " ' ( ) * & ? ,
// are dropped, and "-<interval>" is appended when there is one. Dots stay
// (so "pagure.io").
func Ident(name string, interval time.Duration) string {
	s := strings.ToLower(strings.TrimSpace(name))
	s = strings.ReplaceAll(s, " ", "-")
	s = strings.Map(func(r rune) rune {
		if strings.ContainsRune(`"'()*&?,`, r) {
			return -1
		}
		return r
	}, s)
	if interval > 0 {
		s += "-" + FormatInterval(interval)
	}
	return s
}
