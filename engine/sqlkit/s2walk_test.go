package sqlkit

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/klauspost/compress/s2"
)

// corpusRecords returns the bus records of the shared corpus, and their
// topics, or skips the test when the corpus is not there.
func corpusRecords(t testing.TB) ([][]byte, []string) {
	t.Helper()
	f, err := os.Open("../../../shared/corpus/bus-samples.jsonl")
	if errors.Is(err, os.ErrNotExist) {
		t.Skip("no ../shared corpus")
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var records [][]byte
	var topics []string
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		var line struct {
			Message json.RawMessage `json:"message"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("corpus line: %v", err)
		}
		var m struct {
			Topic string `json:"topic"`
		}
		if err := json.Unmarshal(line.Message, &m); err != nil {
			t.Fatalf("corpus message: %v", err)
		}
		records = append(records, append([]byte(nil), line.Message...))
		topics = append(topics, m.Topic)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(records) < DictMinRecords {
		t.Fatalf("the corpus has %d records, fewer than a dictionary needs", len(records))
	}
	return records, topics
}

// ops returns the operations of an S2 block and the length its header
// claims.
func ops(t testing.TB, block []byte) ([]byte, int) {
	t.Helper()
	claim, err := s2.DecodedLen(block)
	if err != nil {
		t.Fatalf("block header: %v", err)
	}
	_, hdr := binary.Uvarint(block)
	return block[hdr:], claim
}

// opsLen accepts every block the S2 encoders make, with and without a
// dictionary, and sums them to the decoded length: records packed by the
// codec (real bus records, long runs S2 stores as repeats, random bytes,
// empty and 1-byte ones) and the same inputs through S2's other encoders,
// which choose other operations.
func TestOpsLenAcceptsEncodedBlocks(t *testing.T) {
	records, topics := corpusRecords(t)
	plain, withDict := testCodecs(t, records, topics)
	dict := withDict.dicts[1]
	random := make([]byte, 200<<10)
	rand.New(rand.NewSource(1)).Read(random)
	cases := map[string][]byte{
		"empty":              {},
		"1 byte":             {'x'},
		"the mark":           {packedMark},
		"1 MiB of a":         bytes.Repeat([]byte("a"), 1<<20),
		"1 MiB of abc":       bytes.Repeat([]byte("abc"), 1<<20/3),
		"random":             random,
		"random, repeated":   bytes.Repeat(random[:70<<10], 20),
		"corpus, all":        bytes.Join(records, []byte("\n")),
		"corpus, 50 times":   bytes.Repeat(records[7], 50),
		"corpus, one record": records[len(records)-1],
	}
	for i, r := range records {
		cases[fmt.Sprintf("corpus %d (%s)", i, topics[i])] = r
	}
	walked := 0 // blocks Unpack checks by their operations
	for name, raw := range cases {
		// The codec's own form, through Unpack and UnpackedLen.
		for _, c := range []*Codec{plain, withDict} {
			stored := c.Pack(raw)
			back, err := c.Unpack(stored)
			if err != nil || !bytes.Equal(back, raw) {
				t.Fatalf("%s, dictionary %d: the codec does not round-trip: %v", name, c.ID(), err)
			}
			if got := UnpackedLen(stored); got != len(raw) {
				t.Errorf("%s, dictionary %d: UnpackedLen %d, want %d", name, c.ID(), got, len(raw))
			}
			if len(stored) == 0 || stored[0] != packedMark {
				continue
			}
			_, n := binary.Uvarint(stored[1:])
			block := stored[1+n:]
			if len(raw) > checkClaimAbove && len(raw)/checkClaimRatio > len(block) {
				walked++
			}
		}
		// Every encoder, with and without the dictionary, by opsLen itself.
		blocks := map[string][]byte{
			"Encode":            s2.Encode(nil, raw),
			"EncodeBetter":      s2.EncodeBetter(nil, raw),
			"EncodeBest":        s2.EncodeBest(nil, raw),
			"EncodeSnappy":      s2.EncodeSnappy(nil, raw),
			"Dict.Encode":       dict.Encode(nil, raw),
			"Dict.EncodeBetter": dict.EncodeBetter(nil, raw),
			"Dict.EncodeBest":   dict.EncodeBest(nil, raw),
		}
		for enc, block := range blocks {
			o, claim := ops(t, block)
			if claim != len(raw) {
				t.Fatalf("%s, %s: header %d, want %d", name, enc, claim, len(raw))
			}
			total, err := opsLen(o)
			if err != nil || total != uint64(len(raw)) {
				t.Errorf("%s, %s (%d bytes in %d): opsLen %d, %v; want %d", name, enc, len(raw), len(block), total, err, len(raw))
			}
		}
	}
	if walked < 4 {
		t.Errorf("only %d packed records had their header checked by their operations", walked)
	}
}

// A stored record whose header claims 3 GiB and whose block is a few bytes
// (bit rot, or an edit of the database file) is refused by Unpack before
// anything is allocated for it, naming the mismatch; UnpackedLen, which the
// scan cache counts memory by, gives its stored length. Before the check,
// the decoder allocated the 3 GiB, then found the block corrupt.
func TestUnpackRefusesAClaimItsOperationsDoNotMake(t *testing.T) {
	plain, err := NewCodec(nil)
	if err != nil {
		t.Fatal(err)
	}
	stored := []byte{packedMark, 0}
	stored = binary.AppendUvarint(stored, 3<<30)
	stored = append(stored, 0x0c, 'a', 'b', 'c', 'd') // a literal of 4 bytes
	if got := UnpackedLen(stored); got != len(stored) {
		t.Errorf("UnpackedLen %d, want the stored %d", got, len(stored))
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	out, err := plain.Unpack(stored)
	runtime.ReadMemStats(&after)
	if err == nil {
		t.Fatalf("Unpack gave %d bytes", len(out))
	}
	if want := "the header claims 3221225472 bytes, its operations make 4"; !strings.Contains(err.Error(), want) {
		t.Errorf("Unpack: %v; want it to say %q", err, want)
	}
	alloc := after.TotalAlloc - before.TotalAlloc
	if alloc > 4<<20 {
		t.Errorf("Unpack allocated %d bytes for a record of %d", alloc, len(stored))
	}
	t.Logf("Unpack refused the record having allocated %d bytes: %v", alloc, err)
}

// fuzzDecodeMax bounds the headers FuzzOpsLen has the decoders follow: the
// decoders write into one buffer of this size rather than allocate what a
// header claims, which would make each run cost up to 4 GiB.
const fuzzDecodeMax = 32 << 20

// FuzzOpsLen holds opsLen to what Unpack needs of it: whatever a decoder
// (s2.Decode, or a dictionary's Decode) decodes, opsLen accepts and sums to
// the decoded length, so that blockLen never refuses a good record; and
// the blocks S2's encoders make of any input are walked to the length
// their header claims.
func FuzzOpsLen(f *testing.F) {
	dict := s2.NewDict(append([]byte{0}, bytes.Repeat([]byte(`{"topic": "org.fedoraproject.prod.buildsys", "msg": {}} `), 64)...))
	if dict == nil {
		f.Fatal("the fuzz dictionary is invalid")
	}
	for _, raw := range [][]byte{
		nil, {'a'}, bytes.Repeat([]byte("a"), 1<<20), bytes.Repeat([]byte("abcdefgh"), 9000),
		[]byte(`{"topic": "org.fedoraproject.prod.buildsys.build.state.change", "msg": {"owner": "x"}}`),
	} {
		f.Add(s2.Encode(nil, raw))
		f.Add(s2.EncodeBetter(nil, raw))
		f.Add(dict.Encode(nil, raw))
	}
	f.Add(append(binary.AppendUvarint(nil, 3<<30), 0x0c, 'a', 'b', 'c', 'd'))
	f.Add(everyOperation())
	buf := make([]byte, fuzzDecodeMax)
	f.Fuzz(func(t *testing.T, data []byte) {
		claim, herr := s2.DecodedLen(data)
		if herr == nil && claim <= fuzzDecodeMax {
			_, hdr := binary.Uvarint(data)
			total, werr := opsLen(data[hdr:])
			for name, decode := range map[string]func([]byte, []byte) ([]byte, error){"s2.Decode": s2.Decode, "Dict.Decode": dict.Decode} {
				out, derr := decode(buf, data)
				if derr != nil {
					continue
				}
				if werr != nil || total != uint64(len(out)) {
					t.Fatalf("%s decodes %d bytes; opsLen gives %d, %v", name, len(out), total, werr)
				}
				if n, err := blockLen(data); err != nil || n != len(out) {
					t.Fatalf("%s decodes %d bytes; blockLen gives %d, %v", name, len(out), n, err)
				}
			}
		}
		for name, block := range map[string][]byte{
			"Encode":       s2.Encode(nil, data),
			"EncodeBetter": s2.EncodeBetter(nil, data),
			"Dict.Encode":  dict.Encode(nil, data),
		} {
			o, claim := ops(t, block)
			if total, err := opsLen(o); err != nil || total != uint64(claim) || claim != len(data) {
				t.Fatalf("%s of %d bytes: header %d, opsLen %d, %v", name, len(data), claim, total, err)
			}
		}
	})
}

// everyOperation returns an S2 block, header included, that uses every
// form of operation: literals with their length in the tag and in 1 to 4
// bytes, copies with 1-, 2- and 4-byte offsets, and repeats with each of
// the 8 length codes. S2's encoders do not make all of them (none writes a
// 4-byte literal length for a record), so they are written here.
func everyOperation() []byte {
	var ops []byte
	lit := func(tag []byte, text string) { ops = append(append(ops, tag...), text...) }
	lit([]byte{byte(8-1) << 2}, "abcdefgh")
	lit([]byte{60 << 2, 3 - 1}, "ijk")
	lit([]byte{61 << 2, 2 - 1, 0}, "lm")
	lit([]byte{62 << 2, 1 - 1, 0, 0}, "n")
	lit([]byte{63 << 2, 5 - 1, 0, 0, 0}, "opqrs")
	ops = append(ops, 1|(11-4)<<2, 19) // copy1: 11 bytes from 19 back, then repeats
	for code := byte(0); code < 8; code++ {
		ops = append(ops, 1|code<<2, 0) // repeat
		switch code {
		case 5:
			ops = append(ops, 200)
		case 6:
			ops = append(ops, 0x10, 0x02)
		case 7:
			ops = append(ops, 0x01, 0x02, 0x00)
		}
	}
	ops = append(ops, 1|(5-4)<<2|1<<5, 2)     // copy1: 5 bytes from 258 back
	ops = append(ops, 2|(64-1)<<2, 0, 1)      // copy2: 64 bytes from 256 back
	ops = append(ops, 3|(9-1)<<2, 7, 0, 1, 0) // copy4: 9 bytes from 65543 back
	// The length the operations make, as the S2 format defines each.
	n := 8 + 3 + 2 + 1 + 5 + 11 + (4 + 5 + 6 + 7 + 8 + (200 + 8) + (0x0210 + 260) + (0x0201 + 65540)) + 5 + 64 + 9
	return append(binary.AppendUvarint(nil, uint64(n)), ops...)
}

// The hand-made block that uses every operation decodes, with and without
// a dictionary, and opsLen sums it to what the decoders make.
func TestOpsLenEveryOperation(t *testing.T) {
	block := everyOperation()
	o, claim := ops(t, block)
	dict := s2.NewDict(append([]byte{0}, bytes.Repeat([]byte("statscache "), 10)...))
	for name, decode := range map[string]func([]byte, []byte) ([]byte, error){"s2.Decode": s2.Decode, "Dict.Decode": dict.Decode} {
		out, err := decode(nil, block)
		if err != nil || len(out) != claim {
			t.Fatalf("%s: %d bytes, %v; want %d", name, len(out), err, claim)
		}
	}
	if total, err := opsLen(o); err != nil || total != uint64(claim) {
		t.Errorf("opsLen %d, %v; want %d", total, err, claim)
	}
	// Cut anywhere inside an operation, the block is refused, not read
	// past its end.
	for cut := 1; cut < len(o); cut++ {
		if total, err := opsLen(o[:cut]); err == nil && total == uint64(claim) {
			t.Errorf("cut at %d of %d: opsLen accepts it whole (%d)", cut, len(o), total)
		}
	}
}
