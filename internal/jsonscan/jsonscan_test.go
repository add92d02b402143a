package jsonscan

import (
	"encoding/binary"
	"math/bits"
	"math/rand/v2"
	"testing"
)

func isSpecial(c byte) bool { return c == '"' || c == '\\' || c < 0x20 }

// TestSpecialBits: the first byte flagged is exactly the first '"', '\\'
// or control byte, for words of every byte.
func TestSpecialBits(t *testing.T) {
	r := rand.New(rand.NewPCG(25, 25))
	var w [8]byte
	for i := 0; i < 1_000_000; i++ {
		for k := range w {
			if r.IntN(3) == 0 {
				w[k] = byte(r.IntN(256))
			} else {
				const interesting = `"\ a~` + "\x00\x1f\x20\x21\x7f\x80\xff\x02\x5d\x5b\xa2\xdc"
				w[k] = interesting[r.IntN(len(interesting))]
			}
		}
		m := SpecialBits(binary.LittleEndian.Uint64(w[:]))
		first := 8
		for k := range w {
			if isSpecial(w[k]) {
				first = k
				break
			}
		}
		got := 8
		if m != 0 {
			got = bits.TrailingZeros64(m) >> 3
		}
		if got != first || (m&Highs != m) {
			t.Fatalf("% x: first special byte %d, SpecialBits says %d (%#x)", w, first, got, m)
		}
	}
}

// TestStringStop agrees with a byte loop at every start, over texts of
// every length (the word loop and the tail both run).
func TestStringStop(t *testing.T) {
	r := rand.New(rand.NewPCG(26, 26))
	const alphabet = "ab~\x7f\x80\xff\"\\\x00\x1f "
	for n := 0; n < 40; n++ {
		for range 200 {
			d := make([]byte, n)
			for k := range d {
				if r.IntN(6) == 0 {
					d[k] = alphabet[r.IntN(len(alphabet))]
				} else {
					d[k] = 'x'
				}
			}
			for i := 0; i <= n; i++ {
				want := i
				for want < n && !isSpecial(d[want]) {
					want++
				}
				if got := StringStop(d, i); got != want {
					t.Fatalf("StringStop(%q, %d) = %d, want %d", d, i, got, want)
				}
			}
		}
	}
}
