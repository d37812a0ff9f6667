package sqlstore

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync"

	"github.com/klauspost/compress/s2"
)

// Raw records are stored compressed, each on its own so that a scan
// decompresses only what it reads. A bus record is about 1 KB of JSON whose
// field names and much of whose text recur from record to record, which a
// record alone cannot exploit. So each database keeps dictionaries in
// journal_dicts: raw content, records of the journal's first messages, and
// a stored record names the dictionary it was compressed with.
//
// The format is S2 with a dictionary, from github.com/klauspost/compress
// (pure Go, no second cgo library beside SQLite, maintained). Measured on
// the fedmsg-corpus records with the same 64 KB dictionary, zstd's fastest
// level keeps 23% of a record and costs about 5 µs of CPU per record
// (entropy tables are built for every small frame: more than the SQLite
// insert), S2 keeps 24% for about 1 µs; both without a dictionary keep 50%
// (zstd) and 66% (S2).
//
// A stored record that begins with byte 0 is compressed: 0, the
// dictionary id (uvarint; 0 is none), the S2 block. Any other is stored as
// received: a record that does not shrink, and every record written before
// migration 0010 repacked them. A record that itself begins with 0 is
// always stored compressed.
const packedMark = 0

// Dictionary content: records of the first messages, at most dictRecord
// bytes of each and two of each topic, up to dictSize bytes, once at least
// dictMinRecords records are at hand.
const (
	dictSize       = s2.MaxDictSize
	dictRecord     = 4 << 10
	dictMinRecords = 64
)

// codec compresses and decompresses records with the database's
// dictionaries. It is replaced whole when a dictionary is added.
type codec struct {
	id    uint32 // the newest dictionary, the one records are compressed with; 0: none
	dicts map[uint32]*s2.Dict
	raw   map[uint32][]byte // as stored
}

func newCodec(raw map[uint32][]byte) (*codec, error) {
	c := &codec{raw: raw, dicts: make(map[uint32]*s2.Dict, len(raw))}
	for id, b := range raw {
		d := s2.NewDict(b)
		if d == nil {
			return nil, fmt.Errorf("journal dictionary %d is invalid", id)
		}
		c.dicts[id] = d
		c.id = max(c.id, id)
	}
	return c, nil
}

// with returns a codec that also has dictionary d as id, the newest.
func (c *codec) with(id uint32, d []byte) (*codec, error) {
	raw := make(map[uint32][]byte, len(c.raw)+1)
	for k, v := range c.raw {
		raw[k] = v
	}
	raw[id] = d
	return newCodec(raw)
}

// pack returns the record as it is stored in journal.raw.
func (c *codec) pack(raw []byte) []byte {
	var hdr [1 + binary.MaxVarintLen32]byte
	n := 1 + binary.PutUvarint(hdr[1:], uint64(c.id))
	dst := make([]byte, n, n+s2.MaxEncodedLen(len(raw)))
	copy(dst, hdr[:n])
	var z []byte
	if d := c.dicts[c.id]; d != nil {
		z = d.Encode(dst[n:], raw)
	} else {
		z = s2.Encode(dst[n:], raw)
	}
	if n+len(z) < len(raw) || len(raw) > 0 && raw[0] == packedMark {
		return dst[:n+len(z)]
	}
	return raw
}

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

// errUnknownDict is a stored record naming a dictionary the codec lacks.
var errUnknownDict = errors.New("unknown journal dictionary")

// unpack returns the record as received from its stored form.
func (c *codec) unpack(stored []byte) ([]byte, error) {
	if len(stored) == 0 || stored[0] != packedMark {
		return stored, nil
	}
	id, n := binary.Uvarint(stored[1:])
	if n <= 0 || id > math.MaxUint32 {
		return nil, errors.New("decompress record: bad header")
	}
	block := stored[1+n:]
	var out []byte
	var err error
	if id == 0 {
		out, err = s2.Decode(nil, block)
	} else if d := c.dicts[uint32(id)]; d != nil {
		out, err = d.Decode(nil, block)
	} else {
		return nil, fmt.Errorf("%w %d", errUnknownDict, id)
	}
	if err != nil {
		return nil, fmt.Errorf("decompress record: %w", err)
	}
	return out, nil
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

// dictContent makes a dictionary, as stored, from records: at most two of
// each topic, the first dictRecord bytes of each, up to dictSize bytes (the
// last ones are kept). It returns nil when there are too few records to be
// representative.
func dictContent(records [][]byte, topics []string) []byte {
	if len(records) < dictMinRecords {
		return nil
	}
	seen := map[string]int{}
	var out []byte
	for i, r := range records {
		if seen[topics[i]] >= 2 {
			continue
		}
		seen[topics[i]]++
		out = append(out, r[:min(len(r), dictRecord)]...)
		if len(out) >= dictSize {
			break
		}
	}
	// The records of the first messages come last: matches at short
	// offsets cost fewer bits.
	d := s2.MakeDict(out, records[0][:min(len(records[0]), 16)])
	if d == nil {
		return nil
	}
	return d.Bytes()
}

// dictFor returns the codec an append compresses with: the current one,
// or, when the database has no dictionary yet, one with a dictionary made
// from recs and recorded in tx (the caller installs it once tx commits).
// Another process may have recorded one meanwhile: it is then read.
func (db *DB) dictFor(ctx context.Context, tx *sql.Tx, rows []journalRow) (c *codec, added bool, err error) {
	c = db.codec.Load()
	if c.id != 0 || len(rows) < dictMinRecords {
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
