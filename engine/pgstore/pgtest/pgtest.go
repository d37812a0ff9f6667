// Package pgtest gives tests a fresh PostgreSQL database on the local
// server (127.0.0.1:5432, trust authentication; .ci/setup starts it),
// created for the test run and dropped after it.
//
// It connects as the user the tests run as, or as "postgres" when that role
// does not exist or may not create databases, to the first of the
// databases "postgres", "test" and "template1" that exists.
// STATSCACHE_PG_ADMIN overrides all of it with a URL. When no server
// answers, the test fails, unless STATSCACHE_SKIP_POSTGRES=1, which skips
// it instead.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"os/user"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Addr is where the tests' PostgreSQL listens.
const Addr = "127.0.0.1:5432"

var (
	adminOnce sync.Once
	adminURL  string
	adminErr  error
)

// admin finds a connection that may create databases.
func admin(ctx context.Context) (string, error) {
	adminOnce.Do(func() {
		if u := os.Getenv("STATSCACHE_PG_ADMIN"); u != "" {
			adminURL = u
			return
		}
		var users []string
		if u, err := user.Current(); err == nil && u.Username != "" {
			users = append(users, u.Username)
		}
		users = append(users, "postgres")
		adminURL, adminErr = findAdmin(ctx, users, []string{"postgres", "test", "template1"})
	})
	return adminURL, adminErr
}

// findAdmin returns the URL of the first user and database (in that
// order) that can connect and may create databases: a role or a database
// that does not exist (root's own database, on a fresh server) is passed
// over.
func findAdmin(ctx context.Context, users, dbs []string) (string, error) {
	var errs []string
	for _, usr := range users {
		for _, db := range dbs {
			u := fmt.Sprintf("postgres://%s@%s/%s?sslmode=disable&connect_timeout=5", url.User(usr).String(), Addr, db)
			conn, err := pgx.Connect(ctx, u)
			if err != nil {
				errs = append(errs, fmt.Sprintf("%s@%s: %v", usr, db, err))
				continue
			}
			var ok bool
			err = conn.QueryRow(ctx, `SELECT rolcreatedb OR rolsuper FROM pg_roles WHERE rolname = current_user`).Scan(&ok)
			conn.Close(ctx)
			if err != nil || !ok {
				errs = append(errs, fmt.Sprintf("%s may not create databases", usr))
				break
			}
			return u, nil
		}
	}
	return "", fmt.Errorf("no PostgreSQL at %s to create a test database in: %s", Addr, strings.Join(errs, "; "))
}

// URL creates a fresh, empty database for the test and returns its URL;
// the database is dropped when the test ends.
func URL(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	au, err := admin(ctx)
	if err != nil {
		if os.Getenv("STATSCACHE_SKIP_POSTGRES") == "1" {
			t.Skipf("skipped (STATSCACHE_SKIP_POSTGRES=1): %v", err)
		}
		t.Fatalf("%v (start it with bash .ci/setup, or set STATSCACHE_SKIP_POSTGRES=1 to skip these tests)", err)
	}
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	name := "statscache_test_" + hex.EncodeToString(b[:])
	conn, err := pgx.Connect(ctx, au)
	if err != nil {
		t.Fatalf("connect to PostgreSQL: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, au)
		if err != nil {
			t.Errorf("drop database %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	u, err := url.Parse(au)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}
