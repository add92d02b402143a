package postgres

import (
	"strings"
	"unicode/utf8"
)

// sanitizer makes strings storable in PostgreSQL, which holds neither U+0000
// in text nor \u0000 in jsonb, and rejects invalid UTF-8: each becomes
// U+FFFD. It counts the values it changed. It does not parse JSON: it only
// tells escapes from the bytes around them.
type sanitizer struct {
	replaced int64 // values changed
}

// text returns s fit for a text column.
func (z *sanitizer) text(s string) string {
	if strings.IndexByte(s, 0) < 0 && utf8.ValidString(s) {
		return s
	}
	z.replaced++
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

// json returns s fit for a jsonb column: raw NUL bytes and invalid UTF-8
// become U+FFFD, and the escape \u0000 becomes \ufffd. A backslash that is
// itself escaped (\\u0000) is left alone.
func (z *sanitizer) json(s string) string {
	if strings.IndexByte(s, 0) < 0 && !strings.Contains(s, `\u0000`) && utf8.ValidString(s) {
		return s
	}
	out := replaceNULEscapes(strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD"))
	if out != s {
		z.replaced++
	}
	return out
}

// replaceNULEscapes turns every \u0000 escape of JSON text s into \ufffd.
func replaceNULEscapes(s string) string {
	if !strings.Contains(s, `\u0000`) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' || i+1 >= len(s) {
			b.WriteByte(c)
			continue
		}
		if s[i+1] == 'u' && strings.HasPrefix(s[i+2:], "0000") {
			b.WriteString(`\ufffd`)
			i += 5
			continue
		}
		// Any other escape: copy both bytes so an escaped backslash is not
		// taken for the start of the next escape.
		b.WriteByte(c)
		b.WriteByte(s[i+1])
		i++
	}
	return b.String()
}
