// Package jsonscan holds the byte-level tricks the JSON readers of extract
// and transform share: finding, eight bytes at a time, where a string
// literal's text needs attention. It parses nothing itself.
package jsonscan

import (
	"encoding/binary"
	"math/bits"
)

// Ones and Highs are the SWAR masks: 0x01 and 0x80 in each byte of a word.
const (
	Ones  = 0x0101010101010101
	Highs = 0x8080808080808080
)

// SpecialBits sets the top bit of each of the 8 bytes in w that is '"',
// '\\' or a control character (the classic "has zero byte" and "has byte
// less than" tricks). Bytes above the first such byte may be flagged wrongly
// (by a borrow), never below, so the lowest set bit marks the first special
// byte exactly.
func SpecialBits(w uint64) uint64 {
	// Flipping bit 1 maps '"' (0x22) to 0x20 and the control characters
	// onto themselves, so one "byte < 0x21" test finds both.
	x := w ^ (Ones * 0x02)
	b := w ^ (Ones * '\\')
	return ((x-Ones*0x21)&^x | (b-Ones)&^b) & Highs
}

// StringStop returns the index of the first '"', '\\' or control byte in d
// at or after i, or len(d): where a string literal's text needs attention.
func StringStop(d []byte, i int) int {
	// Two words per turn: one branch per 16 bytes of plain text.
	for i+16 <= len(d) {
		w := d[i : i+16 : i+16]
		a := SpecialBits(binary.LittleEndian.Uint64(w))
		b := SpecialBits(binary.LittleEndian.Uint64(w[8:]))
		if a|b != 0 {
			if a != 0 {
				return i + bits.TrailingZeros64(a)>>3
			}
			return i + 8 + bits.TrailingZeros64(b)>>3
		}
		i += 16
	}
	for i+8 <= len(d) {
		if m := SpecialBits(binary.LittleEndian.Uint64(d[i:])); m != 0 {
			return i + bits.TrailingZeros64(m)>>3
		}
		i += 8
	}
	for i < len(d) && d[i] >= 0x20 && d[i] != '"' && d[i] != '\\' {
		i++
	}
	return i
}
