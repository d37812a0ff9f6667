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

// ParseInterval reads an interval as the original's schedule strings
// ("1s", "15s", "1m", "1h", "1d", "1d1h1m1s") or as a number of seconds.
// Intervals are whole seconds and positive.
func ParseInterval(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, fmt.Errorf("empty interval")
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
			return 0, fmt.Errorf("interval %q: unknown unit %q (want d, h, m or s)", s, rest[i])
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
// [Nd][Nh][Nm][Ns], "0s" when empty. It is the suffix of a model's ident.
func FormatInterval(d time.Duration) string {
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
