package pgstore

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"

	"github.com/jackc/pgx/v5"

	"statscache/engine"
	"statscache/engine/sqlkit"
)

// Journal records are stored as sqlstore stores them: compressed with the
// database's dictionaries (journal_dicts), in sqlkit's format. A 1 KB bus
// record keeps about a quarter of its size, which is also a quarter of the
// bytes PostgreSQL writes to its WAL and reads back in a scan.

// loadDicts reads every dictionary of the database.
func loadDicts(ctx context.Context, q queryer) (map[uint32][]byte, error) {
	rows, err := q.Query(ctx, `SELECT id, dict FROM journal_dicts`)
	if err != nil {
		return nil, fmt.Errorf("journal dictionaries: %w", err)
	}
	defer rows.Close()
	out := map[uint32][]byte{}
	for rows.Next() {
		var id int32
		var d []byte
		if err := rows.Scan(&id, &d); err != nil {
			return nil, fmt.Errorf("journal dictionaries: %w", err)
		}
		out[uint32(id)] = d
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("journal dictionaries: %w", err)
	}
	return out, nil
}

// loadCodec reads the dictionaries and installs a codec with them.
func (db *DB) loadCodec(ctx context.Context) (*sqlkit.Codec, error) {
	dicts, err := loadDicts(ctx, db.pool)
	if err != nil {
		return nil, err
	}
	c, err := sqlkit.NewCodec(dicts)
	if err != nil {
		return nil, err
	}
	db.codec.Store(c)
	return c, nil
}

// codecFor returns the codec an append compresses msgs with: the current
// one, or, when the database has no dictionary yet, one with a dictionary
// made from msgs and recorded in tx. Another process may record one at the
// same time: the insert of the second waits for the first and does
// nothing, and both then use the first's. The caller installs the codec
// once tx commits.
func (db *DB) codecFor(ctx context.Context, tx pgx.Tx, msgs []*engine.Message) (*sqlkit.Codec, error) {
	c := db.codec.Load()
	if c.ID() != 0 || len(msgs) < sqlkit.DictMinRecords {
		return c, nil
	}
	recs := make([][]byte, len(msgs))
	topics := make([]string, len(msgs))
	for i, m := range msgs {
		recs[i], topics[i] = m.Raw, m.Topic
	}
	if d := sqlkit.DictContent(recs, topics); d != nil {
		if _, err := tx.Exec(ctx, `INSERT INTO journal_dicts (id, dict) VALUES (1, $1) ON CONFLICT (id) DO NOTHING`, d); err != nil {
			return nil, fmt.Errorf("journal dictionary: %w", err)
		}
	}
	dicts, err := loadDicts(ctx, tx)
	if err != nil {
		return nil, err
	}
	return sqlkit.NewCodec(dicts)
}

// packAll returns the stored form of each message's record, compressed on
// every core when there are many.
func packAll(c *sqlkit.Codec, msgs []*engine.Message) [][]byte {
	out := make([][]byte, len(msgs))
	workers := min(runtime.GOMAXPROCS(0), len(msgs)/256)
	if workers <= 1 {
		for i, m := range msgs {
			out[i] = c.Pack(m.Raw)
		}
		return out
	}
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(msgs); i += workers {
				out[i] = c.Pack(msgs[i].Raw)
			}
		}()
	}
	wg.Wait()
	return out
}

// unpack returns a record as received from its stored form. A record
// naming a dictionary this process has not read (another process, or a
// database moved from SQLite, added it) reloads them.
// unpacker decompresses a stored record for a message read from the
// journal (engine.Message.SetPacked), when a model first reads it.
func (db *DB) unpacker(stored []byte) ([]byte, error) {
	return db.unpack(context.Background(), stored)
}

func (db *DB) unpack(ctx context.Context, stored []byte) ([]byte, error) {
	out, err := db.codec.Load().Unpack(stored)
	if err == nil || !errors.Is(err, sqlkit.ErrUnknownDict) {
		return out, err
	}
	c, lerr := db.loadCodec(ctx)
	if lerr != nil {
		return nil, errors.Join(err, lerr)
	}
	return c.Unpack(stored)
}
