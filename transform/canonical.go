package transform

import (
	"bytes"
	"slices"
	"unicode/utf8"
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
}

// memberSpan locates one member in out: its text is out[start:end] and its
// quoted name out[start:keyEnd].
type memberSpan struct{ start, keyEnd, end int }

// canonical appends the canonical text of the JSON value v to dst.
func (c *canonicalizer) canonical(dst, v []byte) ([]byte, strFlags, error) {
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
