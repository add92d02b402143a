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
	rule  Rule
	null  bool
	text  []byte  // String and JSON columns
	f64   float64 // Double columns
	us    int64   // Timestamp columns
	nul   bool    // holds U+0000
	lossy Rule    // ruleNone, or the lossy rule that also applied
	why   string  // the reason, when rule is RuleUncoercible
}

// coercer turns raw JSON values into column values; its buffers are reused
// from value to value, so a coerced.text is valid until the next call.
type coercer struct {
	buf   []byte
	canon canonicalizer
}

func (c *coercer) coerce(kind schema.Kind, raw []byte) coerced {
	if len(raw) == 0 || raw[0] == 'n' {
		return coerced{rule: RuleNull, null: true}
	}
	switch kind {
	case schema.Double:
		return c.double(raw)
	case schema.Timestamp:
		return c.timestamp(raw)
	case schema.JSON:
		return c.json(raw)
	default:
		return c.string(raw)
	}
}

func (c *coercer) string(raw []byte) coerced {
	switch raw[0] {
	case '"':
		text, buf, f := stringText(c.buf[:0], raw)
		c.buf = buf
		v := coerced{rule: RuleString, text: text, nul: f&flagNUL != 0}
		if f&flagReplaced != 0 {
			v.lossy = RuleInvalidUTF8
		}
		return v
	case 't', 'f':
		return coerced{rule: RuleBoolText, text: raw}
	case '{', '[':
		return uncoercible(kindOf(raw) + " where a string belongs")
	default:
		return coerced{rule: RuleNumberText, text: raw}
	}
}

func (c *coercer) double(raw []byte) coerced {
	rule := RuleNumber
	text := raw
	switch raw[0] {
	case '"':
		var f strFlags
		text, c.buf, f = stringText(c.buf[:0], raw)
		text = trimSpace(text)
		if len(text) == 0 {
			return coerced{rule: RuleEmptyString, null: true}
		}
		if f&flagReplaced != 0 || !decimalText(text) {
			return uncoercible(quoteShort(text) + " is not a decimal number")
		}
		rule = RuleNumericString
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
	default:
		return uncoercible(kindOf(raw) + " where a number or numeric string belongs")
	}
	f, err := strconv.ParseFloat(string(text), 64)
	if err != nil || math.IsInf(f, 0) {
		return uncoercible(quoteShort(text) + " is out of the range of a double")
	}
	return coerced{rule: rule, f64: f}
}

func (c *coercer) timestamp(raw []byte) coerced {
	if raw[0] != '"' {
		return uncoercible(kindOf(raw) + " where a date-time string belongs")
	}
	text, buf, f := stringText(c.buf[:0], raw)
	c.buf = buf
	text = trimSpace(text)
	if len(text) == 0 {
		return coerced{rule: RuleEmptyString, null: true}
	}
	if f&flagReplaced != 0 {
		return uncoercible(quoteShort(text) + " is not valid UTF-8")
	}
	us, rule, lossy, err := parseTimestamp(text)
	if err != nil {
		return uncoercible(quoteShort(text) + ": " + err.Error())
	}
	v := coerced{rule: rule, us: us}
	if lossy {
		v.lossy = RuleTimestampTruncated
	}
	return v
}

func (c *coercer) json(raw []byte) coerced {
	text, f, err := c.canon.canonical(c.buf[:0], raw)
	c.buf = text
	if err != nil {
		// Unreachable for a value the decoder validated.
		return uncoercible("invalid JSON: " + err.Error())
	}
	v := coerced{rule: RuleJSON, text: text, nul: f&flagNUL != 0}
	if f&flagReplaced != 0 {
		v.lossy = RuleInvalidUTF8
	}
	return v
}

func uncoercible(why string) coerced {
	return coerced{rule: RuleUncoercible, null: true, why: why}
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
