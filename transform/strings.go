package transform

import (
	"bytes"
	"encoding/binary"
	"unicode/utf16"
	"unicode/utf8"
)

// strFlags describes what decoding a JSON string found.
type strFlags uint8

const (
	// flagReplaced: invalid UTF-8 bytes or lone surrogate escapes were
	// replaced by U+FFFD, so the decoded text differs from what was sent.
	flagReplaced strFlags = 1 << iota
	// flagNUL: the decoded text holds U+0000.
	flagNUL
)

// stringText returns the decoded text of the JSON string literal lit
// (quotes included). When lit needs no decoding the result aliases lit;
// otherwise it is decoded into buf, which is returned grown for reuse.
// Invalid UTF-8 becomes U+FFFD, one per invalid byte, as encoding/json does.
func stringText(buf, lit []byte) (text, grown []byte, f strFlags) {
	if len(lit) < 2 {
		return nil, buf, 0
	}
	inner := lit[1 : len(lit)-1]
	if plainText(inner) {
		return inner, buf, 0
	}
	start := len(buf)
	buf, f = unquote(buf, inner)
	return buf[start:], buf, f
}

// plainText reports whether s, the content of a JSON string, is its own
// decoded text, without flags: no escape, and either ASCII or valid UTF-8
// without U+0000 (which unquote flags; valid JSON never holds it raw).
func plainText(s []byte) bool {
	i := 0
	for ; i+8 <= len(s); i += 8 {
		w := binary.LittleEndian.Uint64(s[i:])
		b := w ^ (swarLo * '\\')
		if (w|(b-swarLo)&^b)&swarHi != 0 {
			goto careful
		}
	}
	for ; i < len(s); i++ {
		if s[i] == '\\' || s[i] >= utf8.RuneSelf {
			goto careful
		}
	}
	return true
careful:
	// s[:i] is ASCII without a backslash; without a backslash, rest holds a
	// byte >= 0x80, so unquote would decode s and flag a NUL.
	rest := s[i:]
	return bytes.IndexByte(rest, '\\') < 0 && utf8.Valid(rest) && bytes.IndexByte(s, 0) < 0
}

// unquote appends the decoded content of a JSON string (without its quotes,
// already validated by the parser) to dst.
func unquote(dst, s []byte) ([]byte, strFlags) {
	var f strFlags
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '\\' && i+1 < len(s):
			switch s[i+1] {
			case 'b':
				dst = append(dst, '\b')
			case 'f':
				dst = append(dst, '\f')
			case 'n':
				dst = append(dst, '\n')
			case 'r':
				dst = append(dst, '\r')
			case 't':
				dst = append(dst, '\t')
			case 'u':
				r, ok := hex4(s, i+2)
				if !ok {
					// Unreachable after validation; keep the bytes rather
					// than guess.
					dst = append(dst, s[i:i+2]...)
					break
				}
				i += 6
				if utf16.IsSurrogate(r) {
					if r2, ok := hex4(s, i+2); ok && i+1 < len(s) && s[i] == '\\' && s[i+1] == 'u' {
						if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
							dst = utf8.AppendRune(dst, dec)
							i += 6
							continue
						}
					}
					r = utf8.RuneError
					f |= flagReplaced
				}
				if r == 0 {
					f |= flagNUL
				}
				dst = utf8.AppendRune(dst, r)
				continue
			default: // '"', '\\', '/'
				dst = append(dst, s[i+1])
			}
			i += 2
		case c < utf8.RuneSelf:
			if c == 0 {
				f |= flagNUL
			}
			dst = append(dst, c)
			i++
		default:
			r, size := utf8.DecodeRune(s[i:])
			if r == utf8.RuneError && size == 1 {
				dst = utf8.AppendRune(dst, utf8.RuneError)
				f |= flagReplaced
			} else {
				dst = append(dst, s[i:i+size]...)
			}
			i += size
		}
	}
	return dst, f
}

func hex4(s []byte, i int) (rune, bool) {
	if i+4 > len(s) {
		return 0, false
	}
	var r rune
	for _, c := range s[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

const hexDigits = "0123456789abcdef"

// appendQuoted appends text as a JSON string in canonical form: only '"',
// '\\' and control characters are escaped, with the short escapes where
// JSON has them; text must be valid UTF-8.
func appendQuoted(dst, text []byte) []byte {
	dst = append(dst, '"')
	start := 0
	for i, c := range text {
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		dst = append(dst, text[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\b':
			dst = append(dst, '\\', 'b')
		case '\f':
			dst = append(dst, '\\', 'f')
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		start = i + 1
	}
	dst = append(dst, text[start:]...)
	return append(dst, '"')
}
