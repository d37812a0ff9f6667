package sqlkit

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/klauspost/compress/s2"
)

// Raw records are stored compressed, each on its own so that a scan
// decompresses only what it reads. A bus record is about 1 KB of JSON whose
// field names and much of whose text recur from record to record, which a
// record alone cannot exploit. So each database keeps dictionaries in
// journal_dicts: raw content, records of the journal's first messages, and
// a stored record names the dictionary it was compressed with. Both stores
// keep the same stored form and the same dictionaries, so a database moves
// from SQLite to PostgreSQL byte for byte.
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
// DictMinRecords records are at hand.
const (
	dictSize       = s2.MaxDictSize
	dictRecord     = 4 << 10
	DictMinRecords = 64
)

// Codec compresses and decompresses records with the database's
// dictionaries. It is replaced whole when a dictionary is added.
type Codec struct {
	id    uint32 // the newest dictionary, the one records are compressed with; 0: none
	dicts map[uint32]*s2.Dict
	raw   map[uint32][]byte // as stored
}

func NewCodec(raw map[uint32][]byte) (*Codec, error) {
	c := &Codec{raw: raw, dicts: make(map[uint32]*s2.Dict, len(raw))}
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

// With returns a codec that also has dictionary d as id, the newest.
func (c *Codec) With(id uint32, d []byte) (*Codec, error) {
	raw := make(map[uint32][]byte, len(c.raw)+1)
	for k, v := range c.raw {
		raw[k] = v
	}
	raw[id] = d
	return NewCodec(raw)
}

// Pack returns the record as it is stored in journal.raw.
func (c *Codec) Pack(raw []byte) []byte {
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

// UnpackedLen returns the length of a stored record once unpacked, from
// its stored form's header, or its stored length when it is not packed or
// the header does not give one it can trust (a damaged record: Unpack
// tells). The scan cache counts a message's memory by it, so a header that
// claims gigabytes its operations do not make must not be taken at its
// word (see blockLen).
func UnpackedLen(stored []byte) int {
	if len(stored) == 0 || stored[0] != packedMark {
		return len(stored)
	}
	_, n := binary.Uvarint(stored[1:])
	if n <= 0 {
		return len(stored)
	}
	size, err := blockLen(stored[1+n:])
	if err != nil {
		return len(stored)
	}
	return size
}

// The decoded length an S2 block's header claims is checked against the
// block's operations (opsLen) only when it exceeds both of these: a record
// of the bus is about 1 KB that S2 stores in a quarter of it, so the check
// costs nothing on the journal's records, and a header that escapes it
// claims at most the larger of 64 KiB and 8 times the stored block, which
// is all a damaged record can then make a reader allocate before the
// decoder refuses it. A block whose operations do make what its header
// claims is decoded, however much that is: S2 stores a 16 MiB run in 5
// bytes, and such a record is not damaged.
const (
	checkClaimAbove = 64 << 10
	checkClaimRatio = 8
)

// blockLen returns the decoded length an S2 block's header claims, or an
// error when the header is unreadable or claims more than the operations
// make (see checkClaimAbove).
func blockLen(block []byte) (int, error) {
	claim, err := s2.DecodedLen(block)
	if err != nil {
		return 0, err
	}
	if claim <= checkClaimAbove || claim/checkClaimRatio <= len(block) {
		return claim, nil
	}
	_, hdr := binary.Uvarint(block)
	total, err := opsLen(block[hdr:])
	if err != nil {
		return 0, fmt.Errorf("the header claims %d bytes, its operations cannot be read: %w", claim, err)
	}
	if total != uint64(claim) {
		return 0, fmt.Errorf("the header claims %d bytes, its operations make %d", claim, total)
	}
	return claim, nil
}

// ErrUnknownDict is a stored record naming a dictionary the codec lacks.
var ErrUnknownDict = errors.New("unknown journal dictionary")

// Unpack returns the record as received from its stored form.
func (c *Codec) Unpack(stored []byte) ([]byte, error) {
	if len(stored) == 0 || stored[0] != packedMark {
		return stored, nil
	}
	id, n := binary.Uvarint(stored[1:])
	if n <= 0 || id > math.MaxUint32 {
		return nil, errors.New("decompress record: bad header")
	}
	block := stored[1+n:]
	var d *s2.Dict
	if id != 0 {
		if d = c.dicts[uint32(id)]; d == nil {
			return nil, fmt.Errorf("%w %d", ErrUnknownDict, id)
		}
	}
	// Checked before the decoder allocates what the header claims.
	if _, err := blockLen(block); err != nil {
		return nil, fmt.Errorf("decompress record: %w", err)
	}
	var out []byte
	var err error
	if d == nil {
		out, err = s2.Decode(nil, block)
	} else {
		out, err = d.Decode(nil, block)
	}
	if err != nil {
		return nil, fmt.Errorf("decompress record: %w", err)
	}
	return out, nil
}

// DictContent makes a dictionary, as stored, from records: at most two of
// each topic, the first dictRecord bytes of each, up to dictSize bytes (the
// last ones are kept). It returns nil when there are too few records to be
// representative.
func DictContent(records [][]byte, topics []string) []byte {
	if len(records) < DictMinRecords {
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

// ID is the dictionary records are compressed with (0: none yet).
func (c *Codec) ID() uint32 { return c.id }
