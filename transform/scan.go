package transform

import (
	"encoding/binary"
	"fmt"
	"strconv"
)

// maxDepth is the deepest nesting of arrays and objects accepted, the same
// limit encoding/json applies, so a document is valid here exactly when
// json.Valid accepts it.
const maxDepth = 10000

// syntaxError is a JSON syntax error at a byte offset of the input.
type syntaxError struct {
	off int
	msg string
}

func (e *syntaxError) Error() string {
	return "invalid JSON at offset " + strconv.Itoa(e.off) + ": " + e.msg
}

// byte classes for the string fast path: strPlain bytes need no attention
// (bytes >= 0x80 included: invalid UTF-8 is valid JSON text, and decoding
// replaces it).
const (
	strPlain = iota
	strQuote
	strEscape
	strControl
)

var strClass = func() (t [256]uint8) {
	for c := 0; c < 0x20; c++ {
		t[c] = strControl
	}
	t['"'] = strQuote
	t['\\'] = strEscape
	return t
}()

const (
	swarLo = 0x0101010101010101
	swarHi = 0x8080808080808080
)

// special reports whether any of the 8 bytes in w is '"', '\\' or a control
// character (the classic "has zero byte" and "has byte less than" tricks).
func special(w uint64) bool {
	q := w ^ (swarLo * '"')
	b := w ^ (swarLo * '\\')
	return ((q-swarLo)&^q|(b-swarLo)&^b|(w-swarLo*0x20)&^w)&swarHi != 0
}

// parser is a strict, allocation-free JSON reader over one input. Errors
// are sticky: after the first, every method is a no-op that reports
// failure, so loops over members and elements always end.
type parser struct {
	d     []byte
	i     int
	depth int
	err   error
}

func (p *parser) reset(d []byte, depth int) {
	p.d, p.i, p.depth, p.err = d, 0, depth, nil
}

func (p *parser) fail(msg string) {
	if p.err == nil {
		p.err = &syntaxError{off: p.i, msg: msg}
	}
}

func (p *parser) failf(format string, args ...any) {
	if p.err == nil {
		p.err = &syntaxError{off: p.i, msg: fmt.Sprintf(format, args...)}
	}
}

func (p *parser) ws() {
	for p.i < len(p.d) {
		switch p.d[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// peek returns the next non-space byte, or 0 at the end of input.
func (p *parser) peek() byte {
	p.ws()
	if p.err != nil || p.i >= len(p.d) {
		return 0
	}
	return p.d[p.i]
}

// end checks that only white space remains.
func (p *parser) end() {
	p.ws()
	if p.err == nil && p.i != len(p.d) {
		p.fail("data after the top-level value")
	}
}

// openObject consumes '{' and reports whether a member follows.
func (p *parser) openObject() bool {
	return p.open('{', '}')
}

// openArray consumes '[' and reports whether an element follows.
func (p *parser) openArray() bool {
	return p.open('[', ']')
}

func (p *parser) open(o, c byte) bool {
	if p.peek() != o {
		p.failf("want %q", o)
		return false
	}
	p.depth++
	if p.depth > maxDepth {
		p.fail("nesting too deep")
		return false
	}
	p.i++
	if p.peek() == c {
		p.i++
		p.depth--
		return false
	}
	return p.err == nil
}

// nextMember consumes ',' (another member follows: true) or '}' (false).
func (p *parser) nextMember() bool { return p.next('}') }

// nextElement consumes ',' (another element follows: true) or ']' (false).
func (p *parser) nextElement() bool { return p.next(']') }

func (p *parser) next(c byte) bool {
	switch p.peek() {
	case ',':
		p.i++
		return true
	case c:
		p.i++
		p.depth--
		return false
	default:
		p.failf("want ',' or %q", c)
		return false
	}
}

// key reads a member name and the ':' after it. It returns the name as it
// appears between the quotes (escapes not decoded) and whether it holds an
// escape.
func (p *parser) key() (name []byte, escaped bool) {
	if p.peek() != '"' {
		p.fail("want a member name")
		return nil, false
	}
	start := p.i
	escaped = p.str()
	if p.err != nil {
		return nil, false
	}
	name = p.d[start+1 : p.i-1]
	if p.peek() != ':' {
		p.fail("want ':'")
		return nil, false
	}
	p.i++
	return name, escaped
}

// value skips one value and returns its text.
func (p *parser) value() []byte {
	if p.peek() == 0 {
		p.fail("want a value")
		return nil
	}
	start := p.i
	p.skip()
	if p.err != nil {
		return nil
	}
	return p.d[start:p.i]
}

// skip reads one value, validating it, and discards it.
func (p *parser) skip() {
	switch c := p.peek(); c {
	case '{':
		for more := p.openObject(); more; more = p.nextMember() {
			p.key()
			p.skip()
		}
	case '[':
		for more := p.openArray(); more; more = p.nextElement() {
			p.skip()
		}
	case '"':
		p.str()
	case 't':
		p.literal("true")
	case 'f':
		p.literal("false")
	case 'n':
		p.literal("null")
	case 0:
		p.fail("want a value")
	default:
		if c == '-' || (c >= '0' && c <= '9') {
			p.number()
			return
		}
		p.failf("unexpected %q", c)
	}
}

func (p *parser) literal(lit string) {
	if len(p.d)-p.i < len(lit) || string(p.d[p.i:p.i+len(lit)]) != lit {
		p.fail("bad literal")
		return
	}
	p.i += len(lit)
}

// str reads a string starting at its opening quote and reports whether it
// holds an escape.
func (p *parser) str() (escaped bool) {
	d := p.d
	i := p.i + 1
	for {
		for i+8 <= len(d) && !special(binary.LittleEndian.Uint64(d[i:])) {
			i += 8
		}
		for i < len(d) && strClass[d[i]] == strPlain {
			i++
		}
		if i >= len(d) {
			p.i = i
			p.fail("unterminated string")
			return
		}
		switch strClass[d[i]] {
		case strQuote:
			p.i = i + 1
			return
		case strControl:
			p.i = i
			p.fail("control character in string")
			return
		case strEscape:
			escaped = true
			if i+1 >= len(d) {
				p.i = i
				p.fail("unterminated string")
				return
			}
			switch d[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(d) || !isHex(d[i+2]) || !isHex(d[i+3]) || !isHex(d[i+4]) || !isHex(d[i+5]) {
					p.i = i
					p.fail(`bad \u escape`)
					return
				}
				i += 6
			default:
				p.i = i
				p.fail("bad escape")
				return
			}
		}
	}
}

func (p *parser) number() {
	d := p.d
	i := p.i
	if i < len(d) && d[i] == '-' {
		i++
	}
	switch {
	case i < len(d) && d[i] == '0':
		i++
	case i < len(d) && d[i] >= '1' && d[i] <= '9':
		for i < len(d) && isDigit(d[i]) {
			i++
		}
	default:
		p.i = i
		p.fail("bad number")
		return
	}
	if i < len(d) && d[i] == '.' {
		i++
		if i >= len(d) || !isDigit(d[i]) {
			p.i = i
			p.fail("bad number")
			return
		}
		for i < len(d) && isDigit(d[i]) {
			i++
		}
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		if i >= len(d) || !isDigit(d[i]) {
			p.i = i
			p.fail("bad number")
			return
		}
		for i < len(d) && isDigit(d[i]) {
			i++
		}
	}
	p.i = i
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

// validJSON reports whether d is exactly one JSON value, with the same
// verdict as json.Valid.
func validJSON(d []byte) error {
	var p parser
	p.reset(d, 0)
	p.skip()
	p.end()
	return p.err
}
