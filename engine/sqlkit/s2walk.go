package sqlkit

import (
	"errors"
	"fmt"
)

// An S2 block is a uvarint, the decoded length, then operations. The
// decoders (s2.Decode, (*s2.Dict).Decode) allocate the decoded length
// before reading a single operation, so a damaged stored record whose
// header claims 3 GiB made the daemon allocate 3 GiB each time a model
// read it, only to be told the block is corrupt. opsLen reads the
// operations without producing their output and sums the bytes they would
// produce, so that a header can be checked against them first.
//
// The operations, by the low two bits of their first byte (format facts
// from the S2 README and the Snappy format description it extends):
//
//	00 literal: the high 6 bits n; n < 60 gives n+1 bytes, and
//	   60 to 63 say the length-1 follows in 1 to 4 little-endian bytes;
//	   the literal bytes follow.
//	01 copy, 2 bytes: length 4 + bits 2-4, offset bits 5-7 and the next
//	   byte. Offset 0 is S2's repeat (the last offset again), whose 3
//	   length bits 0-4 give 4 to 8 bytes and 5, 6, 7 say the length
//	   follows in 1, 2 or 3 little-endian bytes, plus 8, 260, 65540.
//	10 copy, 3 bytes: length 1 + the high 6 bits, a 2-byte offset.
//	11 copy, 5 bytes: length 1 + the high 6 bits, a 4-byte offset.
//
// opsLen checks only what it must to be sure of the sum: that every
// operation and literal lies within the block. Offsets are not checked
// (they depend on the dictionary and on the output so far): opsLen must
// never refuse a block that a decoder decodes, and it may accept blocks
// that a decoder then refuses, at no more cost than the header claims.
// FuzzOpsLen holds it to that.
func opsLen(ops []byte) (uint64, error) {
	var total uint64
	for s := 0; s < len(ops); {
		tag := ops[s]
		var n uint64
		switch tag & 3 {
		case 0:
			n = uint64(tag >> 2)
			s++
			if n >= 60 {
				k := int(n) - 59 // bytes of length that follow
				v, err := littleEndian(ops, s, k)
				if err != nil {
					return 0, fmt.Errorf("literal at %d: %w", s-1, err)
				}
				n, s = v, s+k
			}
			n++
			if n > uint64(len(ops)-s) {
				return 0, fmt.Errorf("literal at %d: %d bytes, %d left in the block", s-1, n, len(ops)-s)
			}
			s += int(n)
		case 1:
			if len(ops)-s < 2 {
				return 0, fmt.Errorf("copy at %d: cut short", s)
			}
			code := uint64(tag>>2) & 7
			repeat := tag&0xe0 == 0 && ops[s+1] == 0
			s += 2
			n = code + 4
			if repeat && code >= 5 {
				k := int(code) - 4 // 1, 2 or 3 bytes of length
				v, err := littleEndian(ops, s, k)
				if err != nil {
					return 0, fmt.Errorf("repeat at %d: %w", s-2, err)
				}
				s += k
				n = v + [...]uint64{8, 260, 65540}[k-1]
			}
		case 2:
			if len(ops)-s < 3 {
				return 0, fmt.Errorf("copy at %d: cut short", s)
			}
			n = 1 + uint64(tag>>2)
			s += 3
		case 3:
			if len(ops)-s < 5 {
				return 0, fmt.Errorf("copy at %d: cut short", s)
			}
			n = 1 + uint64(tag>>2)
			s += 5
		}
		// No operation gives more than 2^32 bytes and a block has fewer
		// operations than bytes, so this does not overflow.
		total += n
	}
	return total, nil
}

// littleEndian reads k (1 to 4) little-endian bytes at b[s:].
func littleEndian(b []byte, s, k int) (uint64, error) {
	if len(b)-s < k {
		return 0, errors.New("cut short")
	}
	var v uint64
	for i := k - 1; i >= 0; i-- {
		v = v<<8 | uint64(b[s+i])
	}
	return v, nil
}
