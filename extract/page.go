package extract

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/klaviyo-etl/klaviyo-etl/internal/jsonscan"
)

// pageDoc is a decoded response body: the data elements exactly as received
// with the two values Walk needs from each, and links.next.
type pageDoc struct {
	records []Record
	next    string // "" when links.next is absent, null or empty
	lease   lease  // the body records alias, once it is read
}

// parsePage validates the whole body as JSON and picks out data[] and
// links.next in one pass, without building a tree: id and
// attributes.<field> are all a record is read for; Raw aliases body.
func parsePage(body []byte, field string) (pageDoc, error) {
	var doc pageDoc
	s := scanner{b: body}
	s.ws()
	if s.i >= len(s.b) || s.b[s.i] != '{' {
		return doc, s.fail("response is not a JSON object")
	}
	sawData := false
	err := s.object(func(key []byte) error {
		switch string(key) {
		case "data":
			sawData = true
			return s.data(&doc, field)
		case "links":
			return s.links(&doc)
		}
		return s.skip()
	})
	if err != nil {
		return pageDoc{}, err
	}
	s.ws()
	if s.i != len(s.b) {
		return pageDoc{}, s.fail("data after the top-level value")
	}
	if !sawData {
		return pageDoc{}, s.fail("response has no data member")
	}
	return doc, nil
}

// syntaxError is a body that is not valid JSON or not a page.
type syntaxError struct {
	off int
	msg string
}

func (e *syntaxError) Error() string {
	return fmt.Sprintf("invalid page body at byte %d: %s", e.off, e.msg)
}

const maxDepth = 10000

type scanner struct {
	b     []byte
	i     int
	depth int
	key   []byte // scratch for keys with escapes
	stack []byte // open brackets of the value skip is in
}

func (s *scanner) fail(msg string) error { return &syntaxError{off: s.i, msg: msg} }

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) data(doc *pageDoc, field string) error {
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == 'n' {
		return s.skip() // data: null reads as an empty page
	}
	if s.i >= len(s.b) || s.b[s.i] != '[' {
		return s.fail("data is not an array")
	}
	s.i++
	doc.records = doc.records[:0]
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == ']' {
		s.i++
		return nil
	}
	for {
		s.ws()
		start := s.i
		var rec Record
		if s.i < len(s.b) && s.b[s.i] == '{' {
			if err := s.element(&rec, field); err != nil {
				return err
			}
		} else if err := s.skip(); err != nil {
			return err
		}
		rec.Raw = s.b[start:s.i:s.i]
		doc.records = append(doc.records, rec)
		s.ws()
		if s.i >= len(s.b) {
			return s.fail("unterminated data array")
		}
		switch s.b[s.i] {
		case ',':
			s.i++
		case ']':
			s.i++
			return nil
		default:
			return s.fail("expected , or ] in data array")
		}
	}
}

func (s *scanner) element(rec *Record, field string) error {
	return s.object(func(key []byte) error {
		switch string(key) {
		case "id":
			v, ok, err := s.stringValue()
			if err != nil {
				return err
			}
			if ok {
				rec.ID = v
			}
			return nil
		case "attributes":
			s.ws()
			if s.i >= len(s.b) || s.b[s.i] != '{' {
				return s.skip()
			}
			return s.object(func(key []byte) error {
				if string(key) != field {
					return s.skip()
				}
				s.ws()
				if s.i >= len(s.b) || s.b[s.i] != '"' {
					rec.Cursor = time.Time{}
					return s.skip()
				}
				start := s.i
				a, b, esc, err := s.str()
				if err != nil {
					return err
				}
				raw := s.b[a:b]
				if esc {
					var v string
					if json.Unmarshal(s.b[start:s.i], &v) != nil {
						return s.fail("invalid string")
					}
					raw = []byte(v)
				}
				rec.Cursor, _ = parseTimestamp(raw)
				return nil
			})
		}
		return s.skip()
	})
}

func (s *scanner) links(doc *pageDoc) error {
	s.ws()
	if s.i >= len(s.b) || s.b[s.i] != '{' {
		return s.skip()
	}
	return s.object(func(key []byte) error {
		if string(key) != "next" {
			return s.skip()
		}
		v, _, err := s.stringValue()
		doc.next = v
		return err
	})
}

// stringValue reads any value; a string comes back decoded with ok true.
func (s *scanner) stringValue() (string, bool, error) {
	s.ws()
	if s.i >= len(s.b) || s.b[s.i] != '"' {
		return "", false, s.skip()
	}
	start := s.i
	a, b, esc, err := s.str()
	if err != nil {
		return "", false, err
	}
	if !esc {
		return string(s.b[a:b]), true, nil
	}
	var v string
	if json.Unmarshal(s.b[start:s.i], &v) != nil {
		return "", false, s.fail("invalid string")
	}
	return v, true, nil
}

// object reads {…} at s.i; fn is called with each key and must consume its
// value.
func (s *scanner) object(fn func(key []byte) error) error {
	s.depth++
	if s.depth > maxDepth {
		return s.fail("nested too deeply")
	}
	s.i++ // '{'
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == '}' {
		s.i++
		s.depth--
		return nil
	}
	for {
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != '"' {
			return s.fail("expected object key")
		}
		start := s.i
		a, b, esc, err := s.str()
		if err != nil {
			return err
		}
		key := s.b[a:b]
		if esc {
			var k string
			if json.Unmarshal(s.b[start:s.i], &k) != nil {
				return s.fail("invalid key")
			}
			s.key = append(s.key[:0], k...)
			key = s.key
		}
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != ':' {
			return s.fail("expected : after object key")
		}
		s.i++
		if err := fn(key); err != nil {
			return err
		}
		s.ws()
		if s.i >= len(s.b) {
			return s.fail("unterminated object")
		}
		switch s.b[s.i] {
		case ',':
			s.i++
		case '}':
			s.i++
			s.depth--
			return nil
		default:
			return s.fail("expected , or } in object")
		}
	}
}

// skip validates and passes over one value nobody reads. It keeps its own
// stack of open brackets instead of recursing: a record nested a million
// levels deep is read like any other (the transform rejects it, raw bytes
// kept) rather than making its whole page unreadable.
func (s *scanner) skip() error {
	stack := s.stack[:0]
	defer func() { s.stack = stack[:0] }()
	for {
		// A value starts here.
		s.ws()
		if s.i >= len(s.b) {
			return s.fail("unexpected end of input")
		}
		opened := false
		switch c := s.b[s.i]; {
		case c == '{' || c == '[':
			closer := byte('}')
			if c == '[' {
				closer = ']'
			}
			s.i++
			s.ws()
			if s.i < len(s.b) && s.b[s.i] == closer {
				s.i++
				break
			}
			stack = append(stack, c)
			if c == '{' {
				if err := s.keyColon(); err != nil {
					return err
				}
			}
			opened = true
		case c == '"':
			if _, _, _, err := s.str(); err != nil {
				return err
			}
		case c == 't':
			if err := s.literal("true"); err != nil {
				return err
			}
		case c == 'f':
			if err := s.literal("false"); err != nil {
				return err
			}
		case c == 'n':
			if err := s.literal("null"); err != nil {
				return err
			}
		case c == '-' || c >= '0' && c <= '9':
			if err := s.number(); err != nil {
				return err
			}
		default:
			return s.fail("unexpected character")
		}
		if opened {
			continue
		}
		// A value ended: close what it completes, or move to the next
		// element of the innermost open container.
		for next := false; !next; {
			if len(stack) == 0 {
				return nil
			}
			s.ws()
			if s.i >= len(s.b) {
				return s.fail("unterminated object or array")
			}
			top := stack[len(stack)-1]
			switch c := s.b[s.i]; {
			case c == ',':
				s.i++
				if top == '{' {
					if err := s.keyColon(); err != nil {
						return err
					}
				}
				next = true
			case top == '{' && c == '}', top == '[' && c == ']':
				s.i++
				stack = stack[:len(stack)-1]
			case top == '{':
				return s.fail("expected , or } in object")
			default:
				return s.fail("expected , or ] in array")
			}
		}
	}
}

// keyColon reads an object key and the colon after it.
func (s *scanner) keyColon() error {
	s.ws()
	if s.i >= len(s.b) || s.b[s.i] != '"' {
		return s.fail("expected object key")
	}
	if _, _, _, err := s.str(); err != nil {
		return err
	}
	s.ws()
	if s.i >= len(s.b) || s.b[s.i] != ':' {
		return s.fail("expected : after object key")
	}
	s.i++
	return nil
}

func (s *scanner) literal(lit string) error {
	if len(s.b)-s.i < len(lit) || string(s.b[s.i:s.i+len(lit)]) != lit {
		return s.fail("invalid literal")
	}
	s.i += len(lit)
	return nil
}

func (s *scanner) number() error {
	b, i := s.b, s.i
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	default:
		s.i = i
		return s.fail("invalid number")
	}
	if i < len(b) && b[i] == '.' {
		i++
		d := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == d {
			s.i = i
			return s.fail("invalid number")
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		d := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == d {
			s.i = i
			return s.fail("invalid number")
		}
	}
	s.i = i
	return nil
}

// str reads a string at s.i (which is '"') and returns the span of its
// contents and whether it holds escapes.
func (s *scanner) str() (start, end int, esc bool, err error) {
	b := s.b
	i := s.i + 1
	start = i
	for i < len(b) {
		if i = jsonscan.StringStop(b, i); i >= len(b) {
			break
		}
		c := b[i]
		switch {
		case c == '"':
			s.i = i + 1
			return start, i, esc, nil
		case c == '\\':
			esc = true
			if i+1 >= len(b) {
				s.i = i
				return 0, 0, false, s.fail("unterminated string")
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) || !isHex(b[i+2]) || !isHex(b[i+3]) || !isHex(b[i+4]) || !isHex(b[i+5]) {
					s.i = i
					return 0, 0, false, s.fail("invalid \\u escape")
				}
				i += 6
			default:
				s.i = i
				return 0, 0, false, s.fail("invalid escape")
			}
		case c < 0x20:
			s.i = i
			return 0, 0, false, s.fail("control character in string")
		default:
			i++
		}
	}
	s.i = i
	return 0, 0, false, s.fail("unterminated string")
}

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

// parseTimestamp reads the timestamps Klaviyo sends (API-NOTES §6):
// "YYYY-MM-DD", then 'T' or ' ', "HH:MM[:SS]", an optional fraction and an
// optional "Z" or ±HH[:MM] offset; no offset means UTC. The result is UTC.
func parseTimestamp(b []byte) (time.Time, bool) {
	if len(b) < 10 || b[4] != '-' || b[7] != '-' {
		return time.Time{}, false
	}
	year, ok1 := digits(b[0:4])
	month, ok2 := digits(b[5:7])
	day, ok3 := digits(b[8:10])
	if !ok1 || !ok2 || !ok3 || month < 1 || month > 12 || day < 1 || day > daysIn(year, month) {
		return time.Time{}, false
	}
	var hour, minute, sec, nsec int
	var offset int // seconds east of UTC
	rest := b[10:]
	if len(rest) > 0 {
		if rest[0] != 'T' && rest[0] != 't' && rest[0] != ' ' {
			return time.Time{}, false
		}
		rest = rest[1:]
		if len(rest) < 5 || rest[2] != ':' {
			return time.Time{}, false
		}
		var ok1, ok2 bool
		hour, ok1 = digits(rest[0:2])
		minute, ok2 = digits(rest[3:5])
		if !ok1 || !ok2 || hour > 23 || minute > 59 {
			return time.Time{}, false
		}
		rest = rest[5:]
		if len(rest) > 0 && rest[0] == ':' {
			if len(rest) < 3 {
				return time.Time{}, false
			}
			var ok bool
			sec, ok = digits(rest[1:3])
			if !ok || sec > 60 {
				return time.Time{}, false
			}
			rest = rest[3:]
			if len(rest) > 0 && (rest[0] == '.' || rest[0] == ',') {
				i := 1
				scale := 100000000
				for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
					nsec += int(rest[i]-'0') * scale
					scale /= 10
					i++
				}
				if i == 1 {
					return time.Time{}, false
				}
				rest = rest[i:]
			}
		}
		switch {
		case len(rest) == 0:
		case len(rest) == 1 && (rest[0] == 'Z' || rest[0] == 'z'):
		case rest[0] == '+' || rest[0] == '-':
			z := rest[1:]
			var oh, om int
			var ok1, ok2 bool
			switch {
			case len(z) == 2:
				oh, ok1 = digits(z)
				ok2 = true
			case len(z) == 4:
				oh, ok1 = digits(z[0:2])
				om, ok2 = digits(z[2:4])
			case len(z) == 5 && z[2] == ':':
				oh, ok1 = digits(z[0:2])
				om, ok2 = digits(z[3:5])
			}
			if !ok1 || !ok2 || oh > 23 || om > 59 {
				return time.Time{}, false
			}
			offset = oh*3600 + om*60
			if rest[0] == '-' {
				offset = -offset
			}
		default:
			return time.Time{}, false
		}
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, nsec, time.UTC)
	if offset != 0 {
		t = t.Add(-time.Duration(offset) * time.Second)
	}
	return t, true
}

func digits(b []byte) (int, bool) {
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

func daysIn(year, month int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}
