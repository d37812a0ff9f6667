package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"statscache/engine"
)

var _ engine.Settings = (*DB)(nil)

// Setting reads one value of the settings table.
func (db *DB) Setting(ctx context.Context, key string) (string, bool, error) {
	var v string
	err := db.r.QueryRowContext(ctx, `SELECT value FROM settings WHERE key = ?`, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("read setting %s: %w", key, err)
	}
	return v, true, nil
}

// InitSetting stores value under key unless the key has one, and returns
// the stored value. It reads back through the writer connection, so it
// sees its own insert (or the one that won) at once.
func (db *DB) InitSetting(ctx context.Context, key, value string) (string, error) {
	if _, err := db.w.ExecContext(ctx, `INSERT INTO settings (key, value, updated_at) VALUES (?, ?, ?) ON CONFLICT (key) DO NOTHING`,
		key, value, time.Now().Unix()); err != nil {
		return "", fmt.Errorf("init setting %s: %w", key, err)
	}
	var v string
	if err := db.w.QueryRowContext(ctx, `SELECT value FROM settings WHERE key = ?`, key).Scan(&v); err != nil {
		return "", fmt.Errorf("init setting %s: read back: %w", key, err)
	}
	return v, nil
}

// PutSetting stores value under key, replacing the old value.
func (db *DB) PutSetting(ctx context.Context, key, value string) error {
	if _, err := db.w.ExecContext(ctx, `INSERT INTO settings (key, value, updated_at) VALUES (?, ?, ?)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`,
		key, value, time.Now().Unix()); err != nil {
		return fmt.Errorf("put setting %s: %w", key, err)
	}
	return nil
}
