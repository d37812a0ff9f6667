package main

import (
	"flag"
	"runtime/debug"
	"testing"
)

func TestByteSizeFlag(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "1048576": 1 << 20, "200MiB": 200 << 20, "2GiB": 2 << 30, "64KiB": 64 << 10} {
		var b byteSize
		if err := b.Set(in); err != nil || int64(b) != want {
			t.Errorf("Set(%q) = %d, %v; want %d", in, b, err, want)
		}
		var back byteSize
		if err := back.Set(b.String()); err != nil || back != b {
			t.Errorf("%q prints as %q, which reads back as %d, %v", in, b.String(), back, err)
		}
	}
	for _, in := range []string{"", "-1", "12MB", "MiB", "1.5GiB"} {
		var b byteSize
		if err := b.Set(in); err == nil {
			t.Errorf("Set(%q) accepted: %d", in, b)
		}
	}
}

// The collection pace defaults to 100 (see defaultGCPercent) and is set
// even when the runtime started with another, a GOGC in the environment
// wins over that default (the pace is left as the runtime read it), and an
// explicit flag wins over both.
func TestGCPercentFlag(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	const atStart = 77 // what the runtime took from GOGC, or its own 100
	for _, tc := range []struct {
		env  string
		args []string
		want int // the pace in force afterwards
	}{
		{"", nil, 100},
		{"200", nil, atStart},
		{"200", []string{"--gc-percent", "70"}, 70},
		{"", []string{"--gc-percent", "0"}, atStart},
		{"", []string{"--gc-percent", "50"}, 50},
	} {
		t.Setenv("GOGC", tc.env)
		debug.SetGCPercent(atStart)
		var c common
		fs := flag.NewFlagSet("test", flag.ContinueOnError)
		c.register(fs)
		if err := fs.Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		c.memoryLimit = 0
		c.tuneRuntime()
		if got := debug.SetGCPercent(100); got != tc.want {
			t.Errorf("GOGC=%q %v: pace %d, want %d", tc.env, tc.args, got, tc.want)
		}
	}
}
