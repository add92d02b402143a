package transform

import (
	"fmt"
	"strconv"

	"github.com/klaviyo-etl/klaviyo-etl/internal/jsonscan"
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
	swarLo = jsonscan.Ones
	swarHi = jsonscan.Highs
)

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
	// Most tokens follow one another without white space: one comparison
	// settles it.
	if p.i < len(p.d) && p.d[p.i] > ' ' {
		return
	}
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
	if p.d[start] == '"' {
		// Most values are strings: no need for skip's machinery.
		if end, ok := scanString(p.d, start); ok {
			p.i = end
			return p.d[start:end]
		}
	}
	p.skip()
	if p.err != nil {
		return nil
	}
	return p.d[start:p.i]
}

// skip reads one value, validating it, and discards it. skipFast reads
// what it can; whatever it refuses (an error, or nesting deeper than it
// tracks) is read again by skipSlow, which alone decides errors and their
// offsets, so skip accepts exactly what skipSlow accepts and fails alike.
func (p *parser) skip() {
	if p.err == nil {
		if end, ok := skipFast(p.d, p.i, maxDepth-p.depth); ok {
			p.i = end
			return
		}
	}
	p.skipSlow()
}

// skipSlow is skip one token at a time; it recurses into itself only, so a
// value skipFast refused costs one more pass, never one per level.
func (p *parser) skipSlow() {
	switch c := p.peek(); c {
	case '{':
		for more := p.openObject(); more; more = p.nextMember() {
			p.key()
			p.skipSlow()
		}
	case '[':
		for more := p.openArray(); more; more = p.nextElement() {
			p.skipSlow()
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
		i = jsonscan.StringStop(d, i)
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
	end, ok := scanNumber(p.d, p.i)
	p.i = end
	if !ok {
		p.fail("bad number")
	}
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

// isSpace reports JSON white space.
func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// skipWS returns the index of the first byte at or after i that is not
// white space.
func skipWS(d []byte, i int) int {
	for i < len(d) && d[i] <= ' ' && isSpace(d[i]) {
		i++
	}
	return i
}

// fastDepth is the deepest nesting skipFast tracks (in the bits of
// skipFast's stack); deeper values go to skipSlow.
const fastDepth = 256

// skipFast reads the value at d[i:] (after white space) as skipSlow would,
// without its per-token bookkeeping, and returns the index after it. It
// opens at most room levels of arrays and objects. ok is false for
// anything it does not accept, which skipSlow then reads: an error, or
// nesting deeper than room or fastDepth.
func skipFast(d []byte, i, room int) (end int, ok bool) {
	var (
		inObject [fastDepth / 64]uint64 // by depth: an object (1) or an array (0)
		depth    int
		limit    = min(room, fastDepth)
	)
value:
	i = skipWS(d, i)
	if i >= len(d) {
		return 0, false
	}
	switch c := d[i]; c {
	case '"':
		if i, ok = scanString(d, i); !ok {
			return 0, false
		}
	case '{':
		if depth >= limit {
			return 0, false
		}
		inObject[depth>>6] |= 1 << (depth & 63)
		depth++
		i = skipWS(d, i+1)
		if i < len(d) && d[i] == '}' {
			i++
			depth--
			break
		}
		goto key
	case '[':
		if depth >= limit {
			return 0, false
		}
		inObject[depth>>6] &^= 1 << (depth & 63)
		depth++
		i = skipWS(d, i+1)
		if i < len(d) && d[i] == ']' {
			i++
			depth--
			break
		}
		goto value
	case 't':
		if len(d)-i < 4 || string(d[i:i+4]) != "true" {
			return 0, false
		}
		i += 4
	case 'f':
		if len(d)-i < 5 || string(d[i:i+5]) != "false" {
			return 0, false
		}
		i += 5
	case 'n':
		if len(d)-i < 4 || string(d[i:i+4]) != "null" {
			return 0, false
		}
		i += 4
	default:
		if i, ok = scanNumber(d, i); !ok {
			return 0, false
		}
	}
after:
	if depth == 0 {
		return i, true
	}
	i = skipWS(d, i)
	if i >= len(d) {
		return 0, false
	}
	switch d[i] {
	case ',':
		i++
		if inObject[(depth-1)>>6]&(1<<((depth-1)&63)) != 0 {
			goto key
		}
		goto value
	case '}':
		if inObject[(depth-1)>>6]&(1<<((depth-1)&63)) == 0 {
			return 0, false
		}
	case ']':
		if inObject[(depth-1)>>6]&(1<<((depth-1)&63)) != 0 {
			return 0, false
		}
	default:
		return 0, false
	}
	i++
	depth--
	goto after
key:
	i = skipWS(d, i)
	if i >= len(d) || d[i] != '"' {
		return 0, false
	}
	if i, ok = scanString(d, i); !ok {
		return 0, false
	}
	i = skipWS(d, i)
	if i >= len(d) || d[i] != ':' {
		return 0, false
	}
	i++
	goto value
}

// scanString returns the index after the string literal starting at d[i]
// (its opening quote), or ok false where parser.str would fail.
func scanString(d []byte, i int) (end int, ok bool) {
	i++
	for {
		i = jsonscan.StringStop(d, i)
		if i >= len(d) {
			return 0, false
		}
		switch strClass[d[i]] {
		case strQuote:
			return i + 1, true
		case strControl:
			return 0, false
		case strEscape:
			if i+1 >= len(d) {
				return 0, false
			}
			switch d[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(d) || !isHex(d[i+2]) || !isHex(d[i+3]) || !isHex(d[i+4]) || !isHex(d[i+5]) {
					return 0, false
				}
				i += 6
			default:
				return 0, false
			}
		}
	}
}

// scanNumber returns the index after the number starting at d[i], or ok
// false and the index where it is malformed (including no number at all).
func scanNumber(d []byte, i int) (end int, ok bool) {
	if i < len(d) && d[i] == '-' {
		i++
	}
	switch {
	case i < len(d) && d[i] == '0':
		i++
	case i < len(d) && d[i] >= '1' && d[i] <= '9':
		i++
		for i < len(d) && isDigit(d[i]) {
			i++
		}
	default:
		return i, false
	}
	if i < len(d) && d[i] == '.' {
		i++
		if i >= len(d) || !isDigit(d[i]) {
			return i, false
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
			return i, false
		}
		for i < len(d) && isDigit(d[i]) {
			i++
		}
	}
	return i, true
}
