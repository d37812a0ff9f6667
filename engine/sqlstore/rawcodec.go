package sqlstore

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"sync"

	"statscache/engine/sqlkit"
)

// Journal records are stored compressed with the database's dictionaries
// (journal_dicts); the format and the codec are sqlkit's (codec.go), shared
// with the PostgreSQL store. This file reads and writes the dictionaries.

// codec is sqlkit's, under the names this package uses.
type codec struct{ *sqlkit.Codec }

const dictMinRecords = sqlkit.DictMinRecords

var errUnknownDict = sqlkit.ErrUnknownDict

func newCodec(raw map[uint32][]byte) (*codec, error) {
	c, err := sqlkit.NewCodec(raw)
	if err != nil {
		return nil, err
	}
	return &codec{c}, nil
}

func (c *codec) with(id uint32, d []byte) (*codec, error) {
	n, err := c.With(id, d)
	if err != nil {
		return nil, err
	}
	return &codec{n}, nil
}

func (c *codec) pack(raw []byte) []byte               { return c.Pack(raw) }
func (c *codec) unpack(stored []byte) ([]byte, error) { return c.Unpack(stored) }

var dictContent = sqlkit.DictContent

// packAll compresses the records of rows in place, on every core when
// there are many.
func (c *codec) packAll(rows []journalRow) {
	workers := min(runtime.GOMAXPROCS(0), len(rows)/256)
	if workers <= 1 {
		for i := range rows {
			rows[i].raw = c.pack(rows[i].m.Raw)
		}
		return
	}
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(rows); i += workers {
				rows[i].raw = c.pack(rows[i].m.Raw)
			}
		}()
	}
	wg.Wait()
}

// loadDicts reads every dictionary of the database.
func loadDicts(ctx context.Context, q interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}) (map[uint32][]byte, error) {
	rows, err := q.QueryContext(ctx, `SELECT id, dict FROM journal_dicts`)
	if err != nil {
		return nil, fmt.Errorf("journal dictionaries: %w", err)
	}
	defer rows.Close()
	out := map[uint32][]byte{}
	for rows.Next() {
		var id uint32
		var d []byte
		if err := rows.Scan(&id, &d); err != nil {
			return nil, fmt.Errorf("journal dictionaries: %w", err)
		}
		out[id] = d
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("journal dictionaries: %w", err)
	}
	return out, nil
}

// dictFor returns the codec an append compresses with: the current one,
// or, when the database has no dictionary yet, one with a dictionary made
// from recs and recorded in tx (the caller installs it once tx commits).
// Another process may have recorded one meanwhile: it is then read.
func (db *DB) dictFor(ctx context.Context, tx *sql.Tx, rows []journalRow) (c *codec, added bool, err error) {
	c = db.codec.Load()
	if c.ID() != 0 || len(rows) < dictMinRecords {
		return c, false, nil
	}
	dicts, err := loadDicts(ctx, tx)
	if err != nil {
		return nil, false, err
	}
	if len(dicts) > 0 {
		c, err = newCodec(dicts)
		return c, err == nil, err
	}
	recs := make([][]byte, len(rows))
	topics := make([]string, len(rows))
	for i, r := range rows {
		recs[i], topics[i] = r.m.Raw, r.m.Topic
	}
	d := dictContent(recs, topics)
	if d == nil {
		return c, false, nil
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO journal_dicts (id, dict) VALUES (1, ?)`, d); err != nil {
		return nil, false, fmt.Errorf("journal dictionary: %w", err)
	}
	c, err = c.with(1, d)
	return c, err == nil, err
}

// unpacker decompresses a stored record for a message read from the
// journal (engine.Message.SetPacked), when a model first reads it.
func (db *DB) unpacker(stored []byte) ([]byte, error) {
	return db.unpackRaw(context.Background(), stored)
}

// unpackRaw decompresses a stored record. A frame that names a dictionary
// this process has not read (another process added it) reloads them.
func (db *DB) unpackRaw(ctx context.Context, stored []byte) ([]byte, error) {
	c := db.codec.Load()
	out, err := c.unpack(stored)
	if err == nil || !errors.Is(err, errUnknownDict) {
		return out, err
	}
	dicts, lerr := loadDicts(ctx, db.r)
	if lerr != nil {
		return nil, errors.Join(err, lerr)
	}
	if c, lerr = newCodec(dicts); lerr != nil {
		return nil, errors.Join(err, lerr)
	}
	db.codec.Store(c)
	return c.unpack(stored)
}

// keyHash is the journal_keys hash of a dedupe key: the first 8 bytes of
// its SHA-256, so that keys crafted to collide are as hard to find as for
// SHA-256 itself (collisions are still handled, see migration 0010).
var keyHash = func(key string) int64 {
	s := sha256.Sum256([]byte(key))
	return int64(binary.BigEndian.Uint64(s[:8]))
}
