package klaviyosim

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// The filter grammar (API-NOTES §4):
//
//	filter := expr { "," expr }            // comma = and
//	expr   := op "(" field { "," value } ")" | ("and"|"or"|"not") "(" expr { "," expr } ")"
//	value  := 'string' | "string" | datetime | number | true | false | null | "[" value { "," value } "]"
//
// Datetimes are unquoted: 2023-08-15, 2023-08-15T12:30:00, with a space
// instead of T, a fraction, and Z or ±HH:MM. Upper-case T and Z only.

const (
	maxFilterLen   = 8192
	maxFilterDepth = 8
	maxListItems   = 100
)

type valueKind uint8

const (
	vString valueKind = iota + 1
	vTime
	vNumber
	vBool
	vNull
	vList
)

var kindNames = [...]string{vString: "a string", vTime: "a datetime", vNumber: "a number", vBool: "a boolean", vNull: "null", vList: "a list"}

type fvalue struct {
	kind valueKind
	str  string  // vString
	sec  int64   // vTime
	nsec int32   // vTime
	num  float64 // vNumber
	b    bool    // vBool
	list []fvalue
	pos  int
}

type fexpr struct {
	op    string
	field string   // comparison operators
	args  []fvalue // values after the field
	sub   []fexpr  // and / or / not
	pos   int
}

// filterError is a parse or validation failure; pos is a byte offset.
type filterError struct {
	pos int
	msg string
}

func (e *filterError) Error() string { return fmt.Sprintf("%s (at position %d)", e.msg, e.pos) }

type fparser struct {
	s     string
	i     int
	depth int
}

// parseFilter parses the filter syntax; compileFilter checks meaning.
func parseFilter(s string) ([]fexpr, error) {
	if len(s) > maxFilterLen {
		return nil, &filterError{0, fmt.Sprintf("filter is longer than %d characters", maxFilterLen)}
	}
	p := &fparser{s: s}
	p.space()
	if p.i == len(s) {
		return nil, &filterError{0, "filter is empty"}
	}
	var out []fexpr
	for {
		e, err := p.expr()
		if err != nil {
			return nil, err
		}
		out = append(out, e)
		p.space()
		if p.i == len(s) {
			return out, nil
		}
		if s[p.i] != ',' {
			return nil, p.errf("expected ',' between expressions, found %q", p.rest())
		}
		p.i++
		p.space()
	}
}

func (p *fparser) errf(format string, args ...any) error {
	return &filterError{p.i, fmt.Sprintf(format, args...)}
}

func (p *fparser) rest() string {
	r := p.s[p.i:]
	if len(r) > 20 {
		r = r[:20] + "…"
	}
	if r == "" {
		return "end of filter"
	}
	return r
}

func (p *fparser) space() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t' || p.s[p.i] == '\n' || p.s[p.i] == '\r') {
		p.i++
	}
}

func (p *fparser) expect(c byte) error {
	p.space()
	if p.i < len(p.s) && p.s[p.i] == c {
		p.i++
		return nil
	}
	return p.errf("expected '%c', found %q", c, p.rest())
}

func (p *fparser) expr() (fexpr, error) {
	start := p.i
	for p.i < len(p.s) && (p.s[p.i] >= 'a' && p.s[p.i] <= 'z' || p.s[p.i] == '-') {
		p.i++
	}
	e := fexpr{op: p.s[start:p.i], pos: start}
	if e.op == "" {
		return e, p.errf("expected an operator such as equals(...), found %q", p.rest())
	}
	if err := p.expect('('); err != nil {
		return e, err
	}
	p.space()
	switch e.op {
	case "and", "or", "not":
		p.depth++
		if p.depth > maxFilterDepth {
			return e, p.errf("filter nests deeper than %d levels", maxFilterDepth)
		}
		for {
			p.space()
			sub, err := p.expr()
			if err != nil {
				return e, err
			}
			e.sub = append(e.sub, sub)
			p.space()
			if p.i < len(p.s) && p.s[p.i] == ',' {
				p.i++
				continue
			}
			break
		}
		p.depth--
		return e, p.expect(')')
	}
	fstart := p.i
	for p.i < len(p.s) && isFieldByte(p.s[p.i]) {
		p.i++
	}
	e.field = p.s[fstart:p.i]
	if e.field == "" {
		return e, p.errf("expected a field name, found %q", p.rest())
	}
	for {
		p.space()
		if p.i < len(p.s) && p.s[p.i] == ')' {
			p.i++
			return e, nil
		}
		if err := p.expect(','); err != nil {
			return e, p.errf("expected ',' or ')' after %s, found %q", describeLast(e), p.rest())
		}
		p.space()
		v, err := p.value(0)
		if err != nil {
			return e, err
		}
		e.args = append(e.args, v)
	}
}

func describeLast(e fexpr) string {
	if len(e.args) == 0 {
		return "field '" + e.field + "'"
	}
	return "a value"
}

func isFieldByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '$' || c == '-'
}

func (p *fparser) value(depth int) (fvalue, error) {
	v := fvalue{pos: p.i}
	if p.i >= len(p.s) {
		return v, p.errf("expected a value, found end of filter")
	}
	switch c := p.s[p.i]; {
	case c == '"' || c == '\'':
		p.i++
		var sb strings.Builder
		for p.i < len(p.s) {
			ch := p.s[p.i]
			switch {
			case ch == '\\' && p.i+1 < len(p.s):
				sb.WriteByte(p.s[p.i+1])
				p.i += 2
			case ch == c:
				p.i++
				v.kind, v.str = vString, sb.String()
				return v, nil
			default:
				sb.WriteByte(ch)
				p.i++
			}
		}
		return v, &filterError{v.pos, "unterminated string"}
	case c == '[':
		if depth > 0 {
			return v, p.errf("lists cannot be nested")
		}
		p.i++
		v.kind = vList
		p.space()
		if p.i < len(p.s) && p.s[p.i] == ']' {
			p.i++
			return v, nil
		}
		for {
			p.space()
			item, err := p.value(depth + 1)
			if err != nil {
				return v, err
			}
			if len(v.list) == maxListItems {
				return v, &filterError{item.pos, fmt.Sprintf("a list holds at most %d values", maxListItems)}
			}
			v.list = append(v.list, item)
			p.space()
			if p.i < len(p.s) && p.s[p.i] == ',' {
				p.i++
				continue
			}
			return v, p.expect(']')
		}
	case c >= '0' && c <= '9' || c == '-':
		if isDatePrefix(p.s[p.i:]) {
			sec, nsec, n, err := scanTime(p.s[p.i:])
			if err != "" {
				return v, &filterError{p.i + n, err}
			}
			p.i += n
			v.kind, v.sec, v.nsec = vTime, sec, nsec
			return v, nil
		}
		start := p.i
		for p.i < len(p.s) && strings.IndexByte("+-.eE0123456789", p.s[p.i]) >= 0 {
			p.i++
		}
		f, err := strconv.ParseFloat(p.s[start:p.i], 64)
		if err != nil || math.IsInf(f, 0) {
			return v, &filterError{start, fmt.Sprintf("invalid number %q", p.s[start:p.i])}
		}
		v.kind, v.num = vNumber, f
		return v, nil
	default:
		start := p.i
		for p.i < len(p.s) && strings.IndexByte(",)] \t", p.s[p.i]) < 0 {
			p.i++
		}
		switch word := p.s[start:p.i]; word {
		case "true", "false":
			v.kind, v.b = vBool, word == "true"
		case "null":
			v.kind = vNull
		default:
			return v, &filterError{start, fmt.Sprintf("unexpected %q: strings must be quoted", word)}
		}
		return v, nil
	}
}

func isDatePrefix(s string) bool {
	return len(s) >= 10 && isDigits(s[0:4]) && s[4] == '-' && isDigits(s[5:7]) && s[7] == '-' && isDigits(s[8:10])
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

func atoi(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		n = n*10 + int(s[i]-'0')
	}
	return n
}

// scanTime reads a datetime at the start of s and returns it with the number
// of bytes consumed, or a message and the offset of the problem.
func scanTime(s string) (sec int64, nsec int32, n int, msg string) {
	y, mo, d := atoi(s[0:4]), atoi(s[5:7]), atoi(s[8:10])
	n = 10
	var hh, mm, ss, ns int
	if n+3 <= len(s) && (s[n] == 'T' || s[n] == ' ') && isDigits(s[n+1:n+3]) {
		n++
		if n+5 > len(s) || !isDigits(s[n:n+2]) || s[n+2] != ':' || !isDigits(s[n+3:n+5]) {
			return 0, 0, n, "invalid time of day in datetime"
		}
		hh, mm = atoi(s[n:n+2]), atoi(s[n+3:n+5])
		n += 5
		if n+3 <= len(s) && s[n] == ':' && isDigits(s[n+1:n+3]) {
			ss = atoi(s[n+1 : n+3])
			n += 3
			if n < len(s) && s[n] == '.' {
				n++
				start := n
				for n < len(s) && s[n] >= '0' && s[n] <= '9' {
					n++
				}
				frac := s[start:n]
				if frac == "" || len(frac) > 9 {
					return 0, 0, n, "invalid fraction of a second in datetime"
				}
				ns = atoi(frac)
				for range 9 - len(frac) {
					ns *= 10
				}
			}
		}
	}
	offset := 0
	if n < len(s) {
		switch s[n] {
		case 'Z':
			n++
		case '+', '-':
			sign := 1
			if s[n] == '-' {
				sign = -1
			}
			z := s[n+1:]
			switch {
			case len(z) >= 5 && isDigits(z[0:2]) && z[2] == ':' && isDigits(z[3:5]):
				offset = sign * (atoi(z[0:2])*3600 + atoi(z[3:5])*60)
				n += 6
			case len(z) >= 4 && isDigits(z[0:4]):
				offset = sign * (atoi(z[0:2])*3600 + atoi(z[2:4])*60)
				n += 5
			default:
				return 0, 0, n, "invalid UTC offset in datetime"
			}
		case ' ':
			if n+1 < len(s) && s[n+1] >= '0' && s[n+1] <= '9' {
				return 0, 0, n, "invalid datetime: a space before a UTC offset (a '+' in a query string decodes to a space: URL-encode the filter or use Z)"
			}
		}
	}
	if n < len(s) && strings.IndexByte(",)] \t", s[n]) < 0 {
		return 0, 0, n, fmt.Sprintf("invalid datetime: unexpected %q", s[n:n+1])
	}
	if mo < 1 || mo > 12 || d < 1 || hh > 23 || mm > 59 || ss > 59 || offset > 18*3600 || offset < -18*3600 {
		return 0, 0, 0, "invalid datetime: value out of range"
	}
	t := time.Date(y, time.Month(mo), d, hh, mm, ss, ns, time.UTC)
	if t.Day() != d {
		return 0, 0, 0, "invalid datetime: no such day"
	}
	return t.Unix() - int64(offset), int32(ns), n, ""
}

// filterSpec is a compiled filter: every constraint is ANDed.
type filterSpec struct {
	created, updated                 bounds
	ids, emails, phones, externalIDs strSet
	none                             bool // can match nothing (e.g. _kx)
}

// bounds is an inclusive range of unix seconds.
type bounds struct{ lo, hi int64 }

func allTime() bounds { return bounds{math.MinInt64, math.MaxInt64} }

func (b bounds) has(v int64) bool { return v >= b.lo && v <= b.hi }

func (b bounds) bounded() bool { return b.lo != math.MinInt64 || b.hi != math.MaxInt64 }

type strSet struct {
	on   bool
	vals []string
}

func (s *strSet) constrain(vals []string) {
	if !s.on {
		s.on, s.vals = true, vals
		return
	}
	var keep []string
	for _, v := range s.vals {
		if contains(vals, v) {
			keep = append(keep, v)
		}
	}
	s.vals = keep
}

func (s *strSet) match(v []byte, ok bool) bool {
	if !s.on {
		return true
	}
	if !ok {
		return false
	}
	for _, x := range s.vals {
		if x == string(v) {
			return true
		}
	}
	return false
}

var (
	stringFieldOps = []string{"any", "equals"}
	timeFieldOps   = []string{"greater-than", "less-than"}
	knownOps       = []string{"equals", "any", "greater-than", "less-than", "greater-or-equal", "less-or-equal",
		"contains", "contains-any", "contains-all", "starts-with", "ends-with", "has", "and", "or", "not"}
)

// compileFilter checks the parsed filter against what Get Profiles accepts
// and turns it into constraints.
func compileFilter(exprs []fexpr) (*filterSpec, error) {
	f := &filterSpec{created: allTime(), updated: allTime()}
	for _, e := range exprs {
		if err := f.add(e); err != nil {
			return nil, err
		}
	}
	return f, nil
}

func (f *filterSpec) add(e fexpr) error {
	fail := func(format string, args ...any) error { return &filterError{e.pos, fmt.Sprintf(format, args...)} }
	switch e.op {
	case "and":
		for _, s := range e.sub {
			if err := f.add(s); err != nil {
				return err
			}
		}
		return nil
	case "or", "not":
		return fail("operator '%s' is not supported by this endpoint", e.op)
	}
	if !contains(knownOps, e.op) {
		return fail("'%s' is not a valid filter operator", e.op)
	}
	var allowed []string
	switch e.field {
	case "id", "email", "phone_number", "external_id":
		allowed = stringFieldOps
	case "created", "updated":
		allowed = timeFieldOps
	case "_kx":
		allowed = []string{"equals"}
	case "subscriptions.email.marketing.suppression.timestamp", "subscriptions.email.marketing.list_suppressions.timestamp",
		"subscriptions.email.marketing.suppression.reason", "subscriptions.email.marketing.list_suppressions.reason",
		"subscriptions.email.marketing.list_suppressions.list_id":
		return fail("filtering on '%s' is not implemented by klaviyosim", e.field)
	default:
		return fail("'%s' is not a valid field for filtering profiles", e.field)
	}
	if !contains(allowed, e.op) {
		return fail("operator '%s' is not allowed for field '%s' (allowed: %s)", e.op, e.field, strings.Join(allowed, ", "))
	}
	if len(e.args) != 1 {
		return fail("operator '%s' takes a field and exactly one value, got %d values", e.op, len(e.args))
	}
	v := e.args[0]
	switch e.op {
	case "equals":
		if v.kind != vString {
			return fail("'%s' expects a quoted string, got %s", e.field, kindNames[v.kind])
		}
		f.strings(e.field).constrain([]string{v.str})
		if e.field == "_kx" {
			f.none = true
		}
	case "any":
		if v.kind != vList {
			return fail("any() expects a list such as [\"a\",\"b\"], got %s", kindNames[v.kind])
		}
		if len(v.list) == 0 {
			return fail("any() needs at least one value")
		}
		vals := make([]string, 0, len(v.list))
		for _, item := range v.list {
			if item.kind != vString {
				return fail("'%s' expects quoted strings, got %s", e.field, kindNames[item.kind])
			}
			vals = append(vals, item.str)
		}
		f.strings(e.field).constrain(vals)
	case "greater-than", "less-than":
		if v.kind != vTime {
			return fail("'%s' expects an unquoted datetime such as 2023-06-05T14:49:54Z, got %s", e.field, kindNames[v.kind])
		}
		b := &f.created
		if e.field == "updated" {
			b = &f.updated
		}
		// Stored values are whole seconds: t > s.n ⇔ t ≥ s+1; t < s.n ⇔ t ≤ s-1, or ≤ s when n > 0.
		if e.op == "greater-than" {
			if v.sec != math.MaxInt64 {
				b.lo = max(b.lo, v.sec+1)
			}
		} else {
			hi := v.sec
			if v.nsec == 0 {
				hi--
			}
			b.hi = min(b.hi, hi)
		}
	}
	return nil
}

func (f *filterSpec) strings(field string) *strSet {
	switch field {
	case "id":
		return &f.ids
	case "email":
		return &f.emails
	case "phone_number":
		return &f.phones
	case "external_id":
		return &f.externalIDs
	}
	return &strSet{} // _kx: matched by nothing here
}

// empty reports whether the filter can match nothing at all.
func (f *filterSpec) empty() bool {
	return f.none || f.created.lo > f.created.hi || f.updated.lo > f.updated.hi ||
		(f.ids.on && len(f.ids.vals) == 0) || (f.emails.on && len(f.emails.vals) == 0) ||
		(f.phones.on && len(f.phones.vals) == 0) || (f.externalIDs.on && len(f.externalIDs.vals) == 0)
}

// match checks one record; scratch is reused for generated values.
func (f *filterSpec) match(rec *record, scratch *[]byte) bool {
	if !f.created.has(rec.created) || !f.updated.has(rec.updated) {
		return false
	}
	if f.ids.on && !f.ids.match(rec.id[:], true) {
		return false
	}
	for _, c := range [...]struct {
		set *strSet
		gen func([]byte, *record) ([]byte, bool)
	}{{&f.emails, appendEmail}, {&f.phones, appendPhone}, {&f.externalIDs, appendExternalID}} {
		if !c.set.on {
			continue
		}
		b, ok := c.gen((*scratch)[:0], rec)
		*scratch = b
		if !c.set.match(b, ok) {
			return false
		}
	}
	return true
}
