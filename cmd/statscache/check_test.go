package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestCheck: check validates the shipped scripts without a deployment and
// lists the services each needs; given services, it holds scripts to them.
func TestCheck(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		code     int
		out, err []string
	}{
		{"NoServices", []string{"--scripts", "../../scripts"}, 0,
			[]string{"build-durations-1h", "koji", "volume-1s"}, nil},
		{"KojiGiven", []string{"--scripts", "../../scripts", "--service", "koji=http://127.0.0.1:1/kojihub"}, 0,
			[]string{"build-durations-1h"}, nil},
		{"OtherServiceOnly", []string{"--scripts", "../../scripts", "--service", "bodhi=https://bodhi.fedoraproject.org"}, 1,
			[]string{"volume-1s"}, []string{`build-durations.lua:41: service "koji" is not configured`, "1 script(s) failed to load"}},
		{"BadURL", []string{"--service", "koji=ftp://x"}, 2, nil, []string{"not an http or https URL"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := cmdCheck(context.Background(), tc.args, &out, &errb)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\n%s%s", code, tc.code, out.String(), errb.String())
			}
			for _, w := range tc.out {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
			for _, w := range tc.err {
				if !strings.Contains(errb.String(), w) {
					t.Errorf("errors lack %q:\n%s", w, errb.String())
				}
			}
		})
	}
}
