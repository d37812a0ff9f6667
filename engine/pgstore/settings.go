package pgstore

import (
	"context"
	"fmt"
	"time"
)

// Setting reads one value of the settings table.
func (db *DB) Setting(ctx context.Context, key string) (string, bool, error) {
	var v string
	err := again0(ctx, func() error { return db.pool.QueryRow(ctx, `SELECT value FROM settings WHERE key = $1`, key).Scan(&v) })
	if errNoRows(err) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("read setting %s: %w", key, err)
	}
	return v, true, nil
}

// InitSetting stores value under key unless the key has one, and returns
// the stored value. Of two processes racing, the second's insert waits for
// the first's to commit and then does nothing; its read, a new statement,
// sees the first's value.
func (db *DB) InitSetting(ctx context.Context, key, value string) (string, error) {
	if err := db.exec(ctx, `INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3) ON CONFLICT (key) DO NOTHING`,
		key, value, time.Now().Unix()); err != nil {
		return "", fmt.Errorf("init setting %s: %w", key, err)
	}
	var v string
	if err := again0(ctx, func() error { return db.pool.QueryRow(ctx, `SELECT value FROM settings WHERE key = $1`, key).Scan(&v) }); err != nil {
		return "", fmt.Errorf("init setting %s: read back: %w", key, err)
	}
	return v, nil
}

// PutSetting stores value under key, replacing the old value.
func (db *DB) PutSetting(ctx context.Context, key, value string) error {
	if err := db.exec(ctx, `INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`,
		key, value, time.Now().Unix()); err != nil {
		return fmt.Errorf("put setting %s: %w", key, err)
	}
	return nil
}
