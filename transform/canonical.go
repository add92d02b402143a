package transform

import (
	"bytes"
	"encoding/binary"
	"math/bits"
	"slices"
	"unicode/utf8"

	"github.com/klaviyo-etl/klaviyo-etl/internal/jsonscan"
)

// canonicalizer rewrites one JSON value into canonical text, so that equal
// values are equal bytes whatever order or spacing they arrived in:
//   - no insignificant white space;
//   - object members sorted by name, recursively (byte order of the names'
//     canonical encoding, which is UTF-8 byte order for every name without
//     quotes, backslashes or control characters); members with the same
//     name are all kept, in the order received;
//   - strings re-encoded with the fewest escapes ('"', '\\' and control
//     characters only), invalid UTF-8 and lone surrogates replaced by U+FFFD;
//   - numbers and literals copied verbatim: 1.50 stays 1.50 and
//     12345678901234567890 is never rounded through float64.
//
// It validates as it goes; its buffers are reused across values.
type canonicalizer struct {
	p       parser
	out     []byte
	tmp     []byte
	members []memberSpan
	flags   strFlags

	// canonFast's input and the start of the run of it not yet copied to
	// out: input byte j >= run lands at out position len(out)+j-run.
	in  []byte
	run int
}

// memberSpan locates one member in out: its text is out[start:end] and its
// quoted name out[start:keyEnd].
type memberSpan struct{ start, keyEnd, end int }

// canonical appends the canonical text of the JSON value v to dst.
//
// The fast path (canonFast) reads v once and copies it in runs, rewriting
// only what is not canonical already, so a canonical value is validated
// and copied in one piece. Anything it does not accept (invalid JSON, very
// deep nesting) is done again by canonicalSlow, the reference, which also
// decides every error: the result is the same bytes, flags and error either
// way (TestCanonicalFastMatchesSlow, FuzzCanonical).
func (c *canonicalizer) canonical(dst, v []byte) ([]byte, strFlags, error) {
	if out, f, ok := c.canonFast(dst, v); ok {
		return out, f, nil
	}
	return c.canonicalSlow(dst, v)
}

// canonicalSlow is canonical rebuilding the value token by token.
func (c *canonicalizer) canonicalSlow(dst, v []byte) ([]byte, strFlags, error) {
	c.p.reset(v, 0)
	c.out = dst
	c.flags = 0
	c.members = c.members[:0]
	c.value()
	c.p.end()
	out := c.out
	c.out = nil
	return out, c.flags, c.p.err
}

func (c *canonicalizer) value() {
	p := &c.p
	switch p.peek() {
	case '{':
		c.out = append(c.out, '{')
		base := len(c.members)
		for more := p.openObject(); more; more = p.nextMember() {
			if len(c.members) > base {
				c.out = append(c.out, ',')
			}
			start := len(c.out)
			if p.peek() != '"' {
				p.fail("want a member name")
				return
			}
			lit := p.i
			escaped := p.str()
			if p.err != nil {
				return
			}
			c.str(p.d[lit:p.i], escaped)
			keyEnd := len(c.out)
			if p.peek() != ':' {
				p.fail("want ':'")
				return
			}
			p.i++
			c.out = append(c.out, ':')
			c.value()
			c.members = append(c.members, memberSpan{start: start, keyEnd: keyEnd, end: len(c.out)})
		}
		if p.err != nil {
			return
		}
		c.sortMembers(base)
		c.members = c.members[:base]
		c.out = append(c.out, '}')
	case '[':
		c.out = append(c.out, '[')
		first := true
		for more := p.openArray(); more; more = p.nextElement() {
			if !first {
				c.out = append(c.out, ',')
			}
			first = false
			c.value()
		}
		c.out = append(c.out, ']')
	case '"':
		lit := p.i
		escaped := p.str()
		if p.err == nil {
			c.str(p.d[lit:p.i], escaped)
		}
	default:
		// Numbers and literals: verbatim, after skip has validated them.
		start := p.i
		p.skip()
		if p.err == nil {
			c.out = append(c.out, p.d[start:p.i]...)
		}
	}
}

func (c *canonicalizer) str(lit []byte, escaped bool) {
	// Without escapes a valid JSON string holds no '"', '\\' or control
	// character, so if it is valid UTF-8 it is already canonical.
	if !escaped && utf8.Valid(lit) {
		c.out = append(c.out, lit...)
		return
	}
	var (
		text []byte
		f    strFlags
	)
	text, c.tmp, f = stringText(c.tmp[:0], lit)
	c.flags |= f
	c.out = appendQuoted(c.out, text)
}

// sortMembers puts the members from base on in name order, rewriting their
// bytes in out.
func (c *canonicalizer) sortMembers(base int) {
	ms := c.members[base:]
	if len(ms) < 2 {
		return
	}
	name := func(m memberSpan) []byte { return c.out[m.start+1 : m.keyEnd-1] }
	cmp := func(a, b memberSpan) int { return bytes.Compare(name(a), name(b)) }
	if slices.IsSortedFunc(ms, cmp) {
		return
	}
	lo, hi := ms[0].start, ms[len(ms)-1].end
	slices.SortStableFunc(ms, cmp)
	c.tmp = c.tmp[:0]
	for k, m := range ms {
		if k > 0 {
			c.tmp = append(c.tmp, ',')
		}
		c.tmp = append(c.tmp, c.out[m.start:m.end]...)
	}
	copy(c.out[lo:hi], c.tmp)
}

// reorder is sortMembers for canonFast, which already knows the members
// are out of order.
func (c *canonicalizer) reorder(base int) {
	ms, out := c.members[base:], c.out
	name := func(m memberSpan) []byte { return out[m.start+1 : m.keyEnd-1] }
	lo, hi := ms[0].start, ms[len(ms)-1].end
	if len(ms) <= 32 {
		// Insertion sort: stable, without the indirect calls of
		// slices.SortStableFunc, for the few members objects usually have.
		// Names are compared by their first 8 bytes as a number first
		// (zero-padded, big-endian: the same order), and in full on a tie.
		var keys [32]uint64
		for k, m := range ms {
			keys[k] = namePrefix(name(m))
		}
		for k := 1; k < len(ms); k++ {
			m, key, j := ms[k], keys[k], k
			for j > 0 && (keys[j-1] > key || keys[j-1] == key && bytes.Compare(name(ms[j-1]), name(m)) > 0) {
				ms[j], keys[j] = ms[j-1], keys[j-1]
				j--
			}
			ms[j], keys[j] = m, key
		}
	} else {
		slices.SortStableFunc(ms, func(a, b memberSpan) int { return bytes.Compare(name(a), name(b)) })
	}
	// Local slices: no write barrier per append.
	tmp := c.tmp[:0]
	for k, m := range ms {
		if k > 0 {
			tmp = append(tmp, ',')
		}
		tmp = append(tmp, out[m.start:m.end]...)
	}
	copy(out[lo:hi], tmp)
	c.tmp = tmp
}

// namePrefix returns the first 8 bytes of name, zero-padded, big-endian:
// a < b as numbers implies a < b as bytes.
func namePrefix(name []byte) uint64 {
	if len(name) >= 8 {
		return binary.BigEndian.Uint64(name)
	}
	var k uint64
	for i, c := range name {
		k |= uint64(c) << (56 - 8*i)
	}
	return k
}

// canonFastDepth bounds the nesting canonFast recurses into; deeper values
// go to canonicalSlow.
const canonFastDepth = 512

// canonFast is canonical in one pass over v: bytes already canonical stay
// in the pending run and are copied in bulk; white space is dropped, a
// string not in canonical form is re-encoded, and an object whose members
// are out of order is sorted in out. Member positions are recorded as
// output positions (pos), valid whether or not the run has been copied
// yet. ok is false, and dst is returned unchanged, for anything it does
// not accept; canonicalSlow then decides.
func (c *canonicalizer) canonFast(dst, v []byte) (out []byte, f strFlags, ok bool) {
	c.in, c.out, c.run, c.flags = v, dst, 0, 0
	c.members = c.members[:0]
	i := c.space(0)
	i, ok = c.fastValue(i, 0)
	if ok {
		i = c.space(i)
		ok = i == len(v)
	}
	if ok {
		c.flush(len(v))
		out, f = c.out, c.flags
	}
	c.in, c.out = nil, nil
	if !ok {
		return dst, 0, false
	}
	return out, f, true
}

// canonValue is canonFast for the value that starts at d[i] (its first
// byte, not white space) and may be followed by anything: the decoder
// canonicalizes JSON columns as it reads them, in the same pass. It
// returns the index after the value. For the bytes v = d[i:end] the result
// is canonical(dst, v)'s; ok is false where canonFast would refuse v.
func (c *canonicalizer) canonValue(dst, d []byte, i int) (out []byte, f strFlags, end int, ok bool) {
	c.in, c.out, c.run, c.flags = d, dst, i, 0
	c.members = c.members[:0]
	end, ok = c.fastValue(i, 0)
	if ok {
		c.flush(end)
		out, f = c.out, c.flags
	}
	c.in, c.out = nil, nil
	if !ok {
		return dst, 0, 0, false
	}
	return out, f, end, true
}

// pos is the output position of input byte i (i >= run).
func (c *canonicalizer) pos(i int) int { return len(c.out) + i - c.run }

// at returns the output bytes [lo, hi): already in out, or still in the
// pending run. A span never straddles the two: runs are cut only between
// tokens, and a key is one token.
func (c *canonicalizer) at(lo, hi int) []byte {
	if lo < len(c.out) {
		return c.out[lo:hi]
	}
	d := c.run - len(c.out)
	return c.in[lo+d : hi+d]
}

// flush copies the pending run up to input byte i into out.
func (c *canonicalizer) flush(i int) {
	c.out = append(c.out, c.in[c.run:i]...)
	c.run = i
}

// space skips white space at input byte i, leaving it out of the output.
// Canonical input has none: one comparison, inlined, settles it.
func (c *canonicalizer) space(i int) int {
	if i < len(c.in) && c.in[i] <= ' ' {
		return c.dropSpace(i)
	}
	return i
}

func (c *canonicalizer) dropSpace(i int) int {
	if !isSpace(c.in[i]) {
		return i
	}
	c.flush(i)
	i = skipWS(c.in, i)
	c.run = i
	return i
}

func (c *canonicalizer) fastValue(i, depth int) (int, bool) {
	d := c.in
	if i >= len(d) {
		return i, false
	}
	switch d[i] {
	case '{':
		return c.fastObject(i, depth)
	case '[':
		return c.fastArray(i, depth)
	case '"':
		return c.fastString(i)
	case 't':
		return i + 4, len(d)-i >= 4 && string(d[i:i+4]) == "true"
	case 'f':
		return i + 5, len(d)-i >= 5 && string(d[i:i+5]) == "false"
	case 'n':
		return i + 4, len(d)-i >= 4 && string(d[i:i+4]) == "null"
	default:
		return scanNumber(d, i)
	}
}

func (c *canonicalizer) fastObject(i, depth int) (int, bool) {
	if depth >= canonFastDepth {
		return i, false
	}
	d := c.in
	i = c.space(i + 1)
	if i < len(d) && d[i] == '}' {
		return i + 1, true
	}
	base := len(c.members)
	sorted := true
	for {
		if i >= len(d) || d[i] != '"' {
			return i, false
		}
		start := c.pos(i)
		var ok bool
		if i, ok = c.fastString(i); !ok {
			return i, false
		}
		keyEnd := c.pos(i)
		if sorted && len(c.members) > base {
			prev := c.members[len(c.members)-1]
			sorted = bytes.Compare(c.at(prev.start+1, prev.keyEnd-1), c.at(start+1, keyEnd-1)) <= 0
		}
		i = c.space(i)
		if i >= len(d) || d[i] != ':' {
			return i, false
		}
		i = c.space(i + 1)
		if i, ok = c.fastValue(i, depth+1); !ok {
			return i, false
		}
		c.members = append(c.members, memberSpan{start: start, keyEnd: keyEnd, end: c.pos(i)})
		i = c.space(i)
		if i >= len(d) {
			return i, false
		}
		switch d[i] {
		case ',':
			i = c.space(i + 1)
		case '}':
			if !sorted {
				c.flush(i)
				c.reorder(base)
			}
			c.members = c.members[:base]
			return i + 1, true
		default:
			return i, false
		}
	}
}

func (c *canonicalizer) fastArray(i, depth int) (int, bool) {
	if depth >= canonFastDepth {
		return i, false
	}
	d := c.in
	i = c.space(i + 1)
	if i < len(d) && d[i] == ']' {
		return i + 1, true
	}
	for {
		var ok bool
		if i, ok = c.fastValue(i, depth+1); !ok {
			return i, false
		}
		i = c.space(i)
		if i >= len(d) {
			return i, false
		}
		switch d[i] {
		case ',':
			i = c.space(i + 1)
		case ']':
			return i + 1, true
		default:
			return i, false
		}
	}
}

// fastString reads the string literal at input byte i. A literal already
// in canonical form (valid UTF-8; escapes only \", \\, \b, \f, \n, \r, \t
// and lowercase \u00xx for the other control characters) stays in the run;
// any other is re-encoded into out exactly as canonicalSlow does.
func (c *canonicalizer) fastString(i int) (int, bool) {
	d := c.in
	start := i
	j := i + 1
	var high uint64 // OR of the bytes read: its top bit set means non-ASCII
	canon, nul := true, false
	for {
		for j+8 <= len(d) {
			w := binary.LittleEndian.Uint64(d[j:])
			if m := jsonscan.SpecialBits(w); m != 0 {
				k := bits.TrailingZeros64(m) >> 3
				high |= w & (1<<(8*k) - 1) // the bytes before the special one
				j += k
				break
			}
			high |= w
			j += 8
		}
		if j+8 > len(d) {
			for j < len(d) && strClass[d[j]] == strPlain {
				high |= uint64(d[j])
				j++
			}
		}
		if j >= len(d) {
			return j, false
		}
		switch strClass[d[j]] {
		case strQuote:
			end := j + 1
			if canon && high&swarHi != 0 {
				canon = utf8.Valid(d[start+1 : j])
			}
			if canon {
				if nul {
					c.flags |= flagNUL
				}
				return end, true
			}
			c.flush(start)
			var (
				text []byte
				f    strFlags
			)
			text, c.tmp, f = stringText(c.tmp[:0], d[start:end])
			c.flags |= f
			c.out = appendQuoted(c.out, text)
			c.run = end
			return end, true
		case strControl:
			return j, false
		}
		// strEscape
		if j+1 >= len(d) {
			return j, false
		}
		switch d[j+1] {
		case '"', '\\', 'b', 'f', 'n', 'r', 't':
			j += 2
		case '/':
			canon = false
			j += 2
		case 'u':
			if j+6 > len(d) || !isHex(d[j+2]) || !isHex(d[j+3]) || !isHex(d[j+4]) || !isHex(d[j+5]) {
				return j, false
			}
			switch h, l := d[j+4], d[j+5]; {
			case d[j+2] != '0' || d[j+3] != '0' || (h != '0' && h != '1') || (l >= 'A' && l <= 'F'):
				canon = false // not a control character, or not lowercase
			case h == '0' && (l == '8' || l == '9' || l == 'a' || l == 'c' || l == 'd'):
				canon = false // \b \t \n \f \r have short forms
			case h == '0' && l == '0':
				nul = true
			}
			j += 6
		default:
			return j, false
		}
	}
}
