package transform

import (
	"math"
	"strconv"

	"github.com/klaviyo-etl/klaviyo-etl/schema"
)

// Rule names one way a JSON value becomes a column value. Every value of a
// profile column is read by exactly one rule, counted in Counts.Rules; the
// lossy rules (RuleInvalidUTF8, RuleTimestampTruncated) and RuleNUL are
// counted in addition to the rule that read the value.
type Rule uint8

// The rules. A value no rule accepts is RuleUncoercible: the column is null
// and a profile_rejects row keeps the whole record.
const (
	ruleNone Rule = iota

	// RuleNull: JSON null, or the member absent, is NULL in every column.
	RuleNull
	// RuleString: a JSON string into a string column, escapes decoded.
	RuleString
	// RuleNumberText: a JSON number into a string column, as the exact
	// text received (location.zip 10001 → "10001", 1.50 → "1.50").
	RuleNumberText
	// RuleBoolText: true or false into a string column → "true", "false".
	RuleBoolText
	// RuleNumber: a JSON number into a double column, parsed from its text.
	RuleNumber
	// RuleNumericString: a string holding a decimal number into a double
	// column ("40.7128" → 40.7128); spaces around it are ignored, a leading
	// '+' is accepted, NaN and infinities are not.
	RuleNumericString
	// RuleEmptyString: "" (or spaces only) in a double or timestamp column
	// is NULL: it carries no value to lose.
	RuleEmptyString
	// RuleTimestampOffset: a date-time with Z or a ±hh:mm offset, 'T' or a
	// space between date and time, with or without a fraction, → UTC µs.
	RuleTimestampOffset
	// RuleTimestampNoOffset: a date-time without an offset is UTC.
	RuleTimestampNoOffset
	// RuleTimestampDate: a date alone is midnight UTC of that day.
	RuleTimestampDate
	// RuleTimestampTruncated (lossy): a fraction with non-zero digits past
	// microseconds is truncated; a reject row keeps the record.
	RuleTimestampTruncated
	// RuleJSON: any JSON value into a JSON column, in canonical form (see
	// doc.go): keys sorted recursively, numbers as received.
	RuleJSON
	// RuleInvalidUTF8 (lossy): invalid UTF-8 bytes or lone surrogate escapes
	// in a string are replaced by U+FFFD; a reject row keeps the record.
	RuleInvalidUTF8
	// RuleNUL: a value holding U+0000 is kept exactly (the PostgreSQL sink
	// substitutes U+FFFD, as text cannot hold it there) and counted in
	// Counts.NULValues.
	RuleNUL
	// RuleUncoercible: a value no rule reads (an object for a coordinate or
	// a string, a boolean for a timestamp, an unparseable date): NULL, and a
	// reject row.
	RuleUncoercible

	// NumRules bounds the rules, for Counts.Rules.
	NumRules
)

var ruleNames = [NumRules]string{
	ruleNone:               "none",
	RuleNull:               "null",
	RuleString:             "string",
	RuleNumberText:         "number-as-text",
	RuleBoolText:           "bool-as-text",
	RuleNumber:             "number",
	RuleNumericString:      "numeric-string",
	RuleEmptyString:        "empty-string-null",
	RuleTimestampOffset:    "timestamp-offset",
	RuleTimestampNoOffset:  "timestamp-no-offset-utc",
	RuleTimestampDate:      "timestamp-date-only",
	RuleTimestampTruncated: "timestamp-truncated",
	RuleJSON:               "json-canonical",
	RuleInvalidUTF8:        "invalid-utf8-replaced",
	RuleNUL:                "nul-kept",
	RuleUncoercible:        "uncoercible",
}

func (r Rule) String() string {
	if r < NumRules {
		return ruleNames[r]
	}
	return "rule(" + strconv.Itoa(int(r)) + ")"
}

// coerced is one column value after its rule.
type coerced struct {
	scalar
	text []byte // String and JSON columns
	why  string // the reason, when rule is RuleUncoercible
}

// scalar is a column value but its text: what coercer.value writes for
// every column, free of pointers so that writing it costs no GC write
// barrier (returning all of coerced by value cost as much as reading most
// strings; writing it through a pointer, barriers as much while the
// collector runs).
type scalar struct {
	rule  Rule
	lossy Rule // ruleNone, or the lossy rule that also applied
	null  bool
	nul   bool    // holds U+0000
	f64   float64 // Double columns
	us    int64   // Timestamp columns
}

// coercer turns raw JSON values into column values; its buffers are reused
// from value to value, so a coerced.text is valid until the next call.
type coercer struct {
	buf   []byte
	canon canonicalizer
	why   string // the reason of the last RuleUncoercible
}

func (c *coercer) coerce(kind schema.Kind, raw []byte) coerced {
	var v coerced
	v.text = c.value(&v.scalar, kind, raw)
	if v.rule == RuleUncoercible {
		v.why = c.why
	}
	return v
}

// value is coerce for Builder.add: it writes all but the text into *v and
// returns the text; the reason of a RuleUncoercible is c.why.
func (c *coercer) value(v *scalar, kind schema.Kind, raw []byte) []byte {
	*v = scalar{}
	if len(raw) == 0 || raw[0] == 'n' {
		v.rule, v.null = RuleNull, true
		return nil
	}
	switch kind {
	case schema.Double:
		return c.double(v, raw)
	case schema.Timestamp:
		return c.timestamp(v, raw)
	case schema.JSON:
		return c.json(v, raw)
	default:
		return c.string(v, raw)
	}
}

// uncoercible makes v RuleUncoercible for the reason why.
func (c *coercer) uncoercible(v *scalar, why string) []byte {
	*v = scalar{rule: RuleUncoercible, null: true}
	c.why = why
	return nil
}

// text decodes the string literal raw into c.buf when it needs decoding.
func (c *coercer) text(raw []byte) ([]byte, strFlags) {
	text, buf, f := stringText(c.buf[:0], raw)
	if cap(buf) > cap(c.buf) {
		c.buf = buf // grown; storing it every time would be a write barrier every time
	}
	return text, f
}

func (c *coercer) string(v *scalar, raw []byte) []byte {
	switch raw[0] {
	case '"':
		text, f := c.text(raw)
		v.rule, v.nul = RuleString, f&flagNUL != 0
		if f&flagReplaced != 0 {
			v.lossy = RuleInvalidUTF8
		}
		return text
	case 't', 'f':
		v.rule = RuleBoolText
		return raw
	case '{', '[':
		return c.uncoercible(v, kindOf(raw)+" where a string belongs")
	default:
		v.rule = RuleNumberText
		return raw
	}
}

func (c *coercer) double(v *scalar, raw []byte) []byte {
	rule := RuleNumber
	text := raw
	switch raw[0] {
	case '"':
		var f strFlags
		text, f = c.text(raw)
		text = trimSpace(text)
		if len(text) == 0 {
			v.rule, v.null = RuleEmptyString, true
			return nil
		}
		if f&flagReplaced != 0 || !decimalText(text) {
			return c.uncoercible(v, quoteShort(text)+" is not a decimal number")
		}
		rule = RuleNumericString
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
	default:
		return c.uncoercible(v, kindOf(raw)+" where a number or numeric string belongs")
	}
	f, err := parseDouble(text)
	if err != nil || math.IsInf(f, 0) {
		return c.uncoercible(v, quoteShort(text)+" is out of the range of a double")
	}
	v.rule, v.f64 = rule, f
	return nil
}

func (c *coercer) timestamp(v *scalar, raw []byte) []byte {
	if raw[0] != '"' {
		return c.uncoercible(v, kindOf(raw)+" where a date-time string belongs")
	}
	text, f := c.text(raw)
	text = trimSpace(text)
	if len(text) == 0 {
		v.rule, v.null = RuleEmptyString, true
		return nil
	}
	if f&flagReplaced != 0 {
		return c.uncoercible(v, quoteShort(text)+" is not valid UTF-8")
	}
	us, rule, lossy, err := parseTimestamp(text)
	if err != nil {
		return c.uncoercible(v, quoteShort(text)+": "+err.Error())
	}
	v.rule, v.us = rule, us
	if lossy {
		v.lossy = RuleTimestampTruncated
	}
	return nil
}

func (c *coercer) json(v *scalar, raw []byte) []byte {
	text, f, err := c.canon.canonical(c.buf[:0], raw)
	if cap(text) > cap(c.buf) {
		c.buf = text
	}
	if err != nil {
		// Unreachable for a value the decoder validated.
		return c.uncoercible(v, "invalid JSON: "+err.Error())
	}
	return c.canonicalJSON(v, text, f)
}

// canonicalJSON is json for a value already in canonical form, text, whose
// canonicalization reported f: the decoder's (wireRecord.json).
func (c *coercer) canonicalJSON(v *scalar, text []byte, f strFlags) []byte {
	*v = scalar{}
	v.rule, v.nul = RuleJSON, f&flagNUL != 0
	if f&flagReplaced != 0 {
		v.lossy = RuleInvalidUTF8
	}
	return text
}

// parseDouble is strconv.ParseFloat(string(text), 64), bit for bit. The
// usual coordinate (up to 15 significant digits, a small exponent) is read
// here: its digits and the power of ten are exact float64 values, so one
// multiplication or division, rounded once, gives the correctly rounded
// result, which is what ParseFloat returns. Anything else goes to
// ParseFloat.
func parseDouble(text []byte) (float64, error) {
	i, neg := 0, false
	if i < len(text) && (text[i] == '-' || text[i] == '+') {
		neg = text[i] == '-'
		i++
	}
	var mant uint64
	seen, digits, exp, point := 0, 0, 0, false // seen: digits read; digits: from the first non-zero one
	for ; i < len(text); i++ {
		switch c := text[i]; {
		case c >= '0' && c <= '9':
			seen++
			if digits > 0 || c != '0' {
				digits++
			}
			mant = mant*10 + uint64(c-'0')
			if point {
				exp--
			}
		case c == '.' && !point:
			point = true
		default:
			return strconv.ParseFloat(string(text), 64)
		}
	}
	if seen == 0 || digits > 15 || exp < -22 {
		return strconv.ParseFloat(string(text), 64)
	}
	f := float64(mant)
	if exp < 0 {
		f /= float64pow10[-exp]
	}
	if neg {
		f = -f
	}
	return f, nil
}

var float64pow10 = [...]float64{
	1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9,
	1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19,
	1e20, 1e21, 1e22,
}

// decimalText reports whether s is a decimal number: optional sign, digits
// with an optional point (at least one digit), optional exponent. It keeps
// out what strconv.ParseFloat also reads but a coordinate never is: inf,
// nan, hexadecimal, underscores.
func decimalText(s []byte) bool {
	i := 0
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		i++
	}
	digits := 0
	for i < len(s) && isDigit(s[i]) {
		i++
		digits++
	}
	if i < len(s) && s[i] == '.' {
		i++
		for i < len(s) && isDigit(s[i]) {
			i++
			digits++
		}
	}
	if digits == 0 {
		return false
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if i >= len(s) || !isDigit(s[i]) {
			return false
		}
		for i < len(s) && isDigit(s[i]) {
			i++
		}
	}
	return i == len(s)
}

func trimSpace(s []byte) []byte {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t' || s[0] == '\n' || s[0] == '\r') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t' || s[len(s)-1] == '\n' || s[len(s)-1] == '\r') {
		s = s[:len(s)-1]
	}
	return s
}

// kindOf names the JSON type of a raw value, for messages.
func kindOf(raw []byte) string {
	if len(raw) == 0 {
		return "nothing"
	}
	switch raw[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	default:
		return "a number"
	}
}

// quoteShort quotes the start of b for a message: always valid UTF-8 (the
// error column is text), never long.
func quoteShort(b []byte) string {
	const limit = 64
	if len(b) > limit {
		return strconv.Quote(string(b[:limit])) + "…"
	}
	return strconv.Quote(string(b))
}
