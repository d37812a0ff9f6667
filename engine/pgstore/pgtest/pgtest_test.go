package pgtest

import (
	"os"
	"strings"
	"testing"
)

// TestFindAdminPassesOverMissing: a role that does not exist and a
// database that does not exist (a fresh server, where only "postgres" is
// there) are passed over for the next candidates.
func TestFindAdminPassesOverMissing(t *testing.T) {
	if _, err := admin(t.Context()); err != nil {
		if os.Getenv("STATSCACHE_SKIP_POSTGRES") == "1" {
			t.Skipf("skipped (STATSCACHE_SKIP_POSTGRES=1): %v", err)
		}
		t.Fatal(err)
	}
	u, err := findAdmin(t.Context(), []string{"statscache_no_such_role", "postgres"}, []string{"statscache_no_such_db", "postgres"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(u, "postgres@") || !strings.HasSuffix(strings.Split(u, "?")[0], "/postgres") {
		t.Errorf("found %s, want postgres@.../postgres", u)
	}
	if _, err := findAdmin(t.Context(), []string{"statscache_no_such_role"}, []string{"postgres"}); err == nil || !strings.Contains(err.Error(), "statscache_no_such_role") {
		t.Errorf("no candidate left: %v", err)
	}
}

// TestURL: each call gives a fresh, empty database of its own.
func TestURL(t *testing.T) {
	a, b := URL(t), URL(t)
	if a == b {
		t.Fatalf("two calls gave one database %s", a)
	}
}
