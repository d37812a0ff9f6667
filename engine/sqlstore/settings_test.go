package sqlstore_test

import (
	"context"
	"path/filepath"
	"testing"

	"statscache/engine/sqlstore"
)

// TestSettings: a value initialised once survives a reopen, a second
// InitSetting keeps the first value, and PutSetting replaces it.
func TestSettings(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "settings.db")
	db, err := sqlstore.Open(ctx, path, sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, err := db.Setting(ctx, "amqp.queue"); err != nil || ok {
		t.Fatalf("Setting on an empty table = ok %v, err %v; want nothing", ok, err)
	}
	v, err := db.InitSetting(ctx, "amqp.queue", "first")
	if err != nil || v != "first" {
		t.Fatalf("InitSetting = %q, %v; want first", v, err)
	}
	if v, err = db.InitSetting(ctx, "amqp.queue", "second"); err != nil || v != "first" {
		t.Fatalf("second InitSetting = %q, %v; want the first value kept", v, err)
	}
	db.Close()

	db, err = sqlstore.Open(ctx, path, sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if v, ok, err := db.Setting(ctx, "amqp.queue"); err != nil || !ok || v != "first" {
		t.Fatalf("after reopen Setting = %q, %v, %v; want first", v, ok, err)
	}
	if err := db.PutSetting(ctx, "amqp.queue", "third"); err != nil {
		t.Fatal(err)
	}
	if v, _, _ := db.Setting(ctx, "amqp.queue"); v != "third" {
		t.Fatalf("after PutSetting Setting = %q, want third", v)
	}
}
