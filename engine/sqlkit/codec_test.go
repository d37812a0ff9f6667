package sqlkit

import (
	"bytes"
	"fmt"
	"testing"
)

// UnpackedLen reads a stored record's unpacked length from its header,
// without unpacking it, for every form Pack stores: compressed with or
// without a dictionary, and kept as received.
func TestUnpackedLen(t *testing.T) {
	var records [][]byte
	var topics []string
	for i := 0; i < DictMinRecords; i++ {
		records = append(records, []byte(fmt.Sprintf(`{"topic": "org.fedoraproject.prod.t%d", "msg": {"user": "u%d", "text": %q}}`, i%5, i, bytes.Repeat([]byte("fedora "), i))))
		topics = append(topics, fmt.Sprintf("t%d", i%5))
	}
	plain, withDict := testCodecs(t, records, topics)
	cases := map[string][]byte{
		"long, no dictionary":  bytes.Repeat([]byte(`{"a": 1}`), 1000),
		"long, dictionary":     records[DictMinRecords-1],
		"short, kept as is":    []byte(`{}`),
		"starts with the mark": {packedMark, 'x'},
		"empty":                {},
	}
	for name, raw := range cases {
		for _, c := range []*Codec{plain, withDict} {
			stored := c.Pack(raw)
			back, err := c.Unpack(stored)
			if err != nil || !bytes.Equal(back, raw) {
				t.Fatalf("%s: the codec does not round-trip: %v", name, err)
			}
			if got := UnpackedLen(stored); got != len(raw) {
				t.Errorf("%s (stored in %d bytes): UnpackedLen %d, want %d", name, len(stored), got, len(raw))
			}
		}
	}
	// A damaged header gives the stored length, not a guess.
	for _, stored := range [][]byte{{packedMark}, {packedMark, 0x80}, {packedMark, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}} {
		if got := UnpackedLen(stored); got != len(stored) {
			t.Errorf("damaged %x: UnpackedLen %d, want the stored %d", stored, got, len(stored))
		}
	}
}

// testCodecs returns a codec without a dictionary and one with a
// dictionary made of records.
func testCodecs(t testing.TB, records [][]byte, topics []string) (plain, withDict *Codec) {
	t.Helper()
	plain, err := NewCodec(nil)
	if err != nil {
		t.Fatal(err)
	}
	withDict, err = plain.With(1, DictContent(records, topics))
	if err != nil {
		t.Fatal(err)
	}
	return plain, withDict
}
