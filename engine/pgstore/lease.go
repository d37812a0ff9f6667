package pgstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"

	"statscache/engine"
	"statscache/engine/cluster"
)

// The coordination of several instances sharing the database
// (engine/cluster): heartbeats, leases, the fence every commit checks, and
// the reload generation. Tables in migration 0050_cluster.sql.

var _ cluster.Store = (*DB)(nil)

// holdsLease checks in tx that the lease of ident's model is held with f
// and has not expired, and share-locks the lease row until tx ends (see
// checkFence); an error wrapping engine.ErrFenced when it is not, which
// says what (the write) was refused.
func holdsLease(ctx context.Context, tx pgx.Tx, ident string, f engine.Fence, what string) error {
	var ok bool
	err := tx.QueryRow(ctx, `SELECT true FROM cluster_leases WHERE key = $1 AND holder = $2 AND token = $3
		AND expires_at > clock_timestamp() FOR SHARE`, engine.LeaseKey(ident), f.Holder, f.Token).Scan(&ok)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%s with lease token %d of %s: %w", what, f.Token, f.Holder, engine.ErrFenced)
	}
	if err != nil {
		return fmt.Errorf("lease of %s: %w", ident, err)
	}
	return nil
}

// checkFence is run by a model's commit transaction when the engine runs
// models under leases: the lease of the model must still be held by the
// fence's holder with the fence's token, and not have expired. The lease
// row stays share-locked until the transaction ends, so a takeover (which
// updates the row) waits for this commit, and this commit sees a takeover
// that committed first. The commit is logged with the span of the journal
// it covers. A paused instance must not keep the row locked for ever: the
// daemon opens the store with Options.IdleInTransaction.
func checkFence(ctx context.Context, tx pgx.Tx, ident string, cp engine.Checkpoint) error {
	f := cp.Fence
	if err := holdsLease(ctx, tx, ident, *f, "commit "+ident); err != nil {
		return err
	}
	// Every journal message of (From, Cursor] must have passed through
	// the batch. The journal lock (shared, taken in Begin) waited for any
	// append in flight, so this count sees it: a message another instance
	// journaled there after the batch read the journal, and did not flag
	// late (the model's cursor was still From), is found here, and the
	// engine processes the batch again. An append after this commit sees
	// the new cursor and flags it late.
	lo, lk := cp.From.TimeUS, cp.From.Key
	if cp.From.IsZero() {
		lo, lk = math.MinInt64, ""
	}
	var n int64
	if err := tx.QueryRow(ctx, `SELECT count(*) FROM journal WHERE (time_us, key) > ($1, $2) AND (time_us, key) <= ($3, $4)`,
		lo, lk, cp.Cursor.TimeUS, cp.Cursor.Key).Scan(&n); err != nil {
		return fmt.Errorf("count the batch of %s: %w", ident, err)
	}
	if n > cp.Processed {
		return fmt.Errorf("commit %s: %d journal messages up to %v, the batch passed %d: %w", ident, n, cp.Cursor, cp.Processed, engine.ErrJournaledBehind)
	}
	// The first commit of a model says where its history starts: each
	// instance that added it set a start of its own (SetStart), the last
	// one stays, and it is this run's that decides which messages
	// journaled later are late for the model.
	if cp.From.IsZero() {
		if _, err := tx.Exec(ctx, `UPDATE models SET start_us = $1 WHERE ident = $2 AND cursor_key = ''`, cp.StartUS, ident); err != nil {
			return fmt.Errorf("start of %s: %w", ident, err)
		}
	}
	if _, err := tx.Exec(ctx, `INSERT INTO cluster_commits (ident, holder, token, from_us, from_key, to_us, to_key)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`, ident, f.Holder, f.Token, cp.From.TimeUS, cp.From.Key, cp.Cursor.TimeUS, cp.Cursor.Key); err != nil {
		return fmt.Errorf("log the commit of %s: %w", ident, err)
	}
	return nil
}

// Heartbeat records the instance as live for ttl and reads back the live
// instances, the leases and the reload generation, in one transaction.
// It also prunes the commit log of entries older than a day.
func (db *DB) Heartbeat(ctx context.Context, me cluster.Instance, ttl time.Duration) (cluster.Beat, error) {
	var b cluster.Beat
	models, err := json.Marshal(me.Models)
	if err != nil {
		return b, err
	}
	err = pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO cluster_instances (id, addr, expires_at, watermark_us, models, refused)
			VALUES ($1, $2, now() + $3 * interval '1 microsecond', $4, $5, $6)
			ON CONFLICT (id) DO UPDATE SET addr = excluded.addr, beat_at = now(), expires_at = excluded.expires_at,
			watermark_us = excluded.watermark_us, models = excluded.models, refused = excluded.refused`,
			me.ID, me.Addr, ttl.Microseconds(), me.WatermarkUS, models, me.Refused); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT id, addr, watermark_us, models, refused FROM cluster_instances WHERE expires_at > now() ORDER BY id`)
		if err != nil {
			return err
		}
		b.Instances, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (cluster.Instance, error) {
			var in cluster.Instance
			var m []byte
			if err := r.Scan(&in.ID, &in.Addr, &in.WatermarkUS, &m, &in.Refused); err != nil {
				return in, err
			}
			return in, json.Unmarshal(m, &in.Models)
		})
		if err != nil {
			return err
		}
		rows, err = tx.Query(ctx, `SELECT key, holder, token, greatest(expires_at, 'epoch'), holder <> '' AND expires_at > now() FROM cluster_leases ORDER BY key`)
		if err != nil {
			return err
		}
		b.Leases, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (cluster.Lease, error) {
			var l cluster.Lease
			err := r.Scan(&l.Key, &l.Holder, &l.Token, &l.Expires, &l.Live)
			return l, err
		})
		if err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, `SELECT gen FROM cluster_reload WHERE id = 1`).Scan(&b.Reload); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `DELETE FROM cluster_commits WHERE at < now() - interval '1 day'`)
		return err
	})
	if err != nil {
		return b, fmt.Errorf("heartbeat: %w", err)
	}
	return b, nil
}

// Acquire takes the lease of key when it is free, expired or held under
// holder's own name (an earlier run of this instance that died: names
// are unique among live instances), raising its token. It does not wait for a commit that holds the lease row: it tries
// again at the next heartbeat.
func (db *DB) Acquire(ctx context.Context, key, holder string, ttl time.Duration) (engine.Fence, bool, error) {
	db.leased.Store(true)
	f := engine.Fence{Holder: holder}
	ok := false
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SET LOCAL lock_timeout = '1s'`); err != nil {
			return err
		}
		err := tx.QueryRow(ctx, `INSERT INTO cluster_leases (key, holder, token, expires_at, acquired_at)
			VALUES ($1, $2, 1, now() + $3 * interval '1 microsecond', now())
			ON CONFLICT (key) DO UPDATE SET holder = excluded.holder, token = cluster_leases.token + 1,
			expires_at = excluded.expires_at, acquired_at = now()
			WHERE cluster_leases.holder IN ('', excluded.holder) OR cluster_leases.expires_at <= now()
			RETURNING token`, key, holder, ttl.Microseconds()).Scan(&f.Token)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		ok = err == nil
		return err
	})
	if pgCode(err) == "55P03" { // lock_not_available: a commit holds the row
		return f, false, nil
	}
	if err != nil {
		return f, false, fmt.Errorf("acquire lease %s: %w", key, err)
	}
	return f, ok, nil
}

// Renew extends the leases holder holds with the given tokens and returns
// the keys it still holds.
func (db *DB) Renew(ctx context.Context, holder string, held map[string]int64, ttl time.Duration) (map[string]bool, error) {
	keys, tokens := make([]string, 0, len(held)), make([]int64, 0, len(held))
	for k, t := range held {
		keys, tokens = append(keys, k), append(tokens, t)
	}
	rows, err := db.pool.Query(ctx, `UPDATE cluster_leases l SET expires_at = now() + $2 * interval '1 microsecond'
		FROM unnest($3::text[], $4::bigint[]) AS h(key, token)
		WHERE l.key = h.key AND l.token = h.token AND l.holder = $1 RETURNING l.key`, holder, ttl.Microseconds(), keys, tokens)
	if err != nil {
		return nil, fmt.Errorf("renew leases: %w", err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("renew leases: %w", err)
	}
	kept := make(map[string]bool, len(got))
	for _, k := range got {
		kept[k] = true
	}
	return kept, nil
}

// Release frees a lease held with f.
func (db *DB) Release(ctx context.Context, key string, f engine.Fence) error {
	if _, err := db.pool.Exec(ctx, `UPDATE cluster_leases SET holder = '', expires_at = 'epoch'
		WHERE key = $1 AND holder = $2 AND token = $3`, key, f.Holder, f.Token); err != nil {
		return fmt.Errorf("release lease %s: %w", key, err)
	}
	return nil
}

// Leave removes the instance's heartbeat row.
func (db *DB) Leave(ctx context.Context, id string) error {
	if _, err := db.pool.Exec(ctx, `DELETE FROM cluster_instances WHERE id = $1`, id); err != nil {
		return fmt.Errorf("leave: %w", err)
	}
	return nil
}

// RequestReload raises the reload generation.
func (db *DB) RequestReload(ctx context.Context) (int64, error) {
	var gen int64
	if err := db.pool.QueryRow(ctx, `UPDATE cluster_reload SET gen = gen + 1 WHERE id = 1 RETURNING gen`).Scan(&gen); err != nil {
		return 0, fmt.Errorf("request a reload: %w", err)
	}
	return gen, nil
}
