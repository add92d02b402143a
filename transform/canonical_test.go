package transform

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
)

// genJSON writes a random JSON value built to reach every branch of the
// canonicalizer: white space anywhere, members in and out of order and
// repeated, strings with every escape (canonical or not), non-ASCII,
// invalid UTF-8, lone surrogates and U+0000, and numbers in every form.
func genJSON(r *rand.Rand, sb *strings.Builder, depth int) {
	ws := func() {
		if r.IntN(6) == 0 {
			sb.WriteString([]string{" ", "\n", "\t", "\r", "  \n\t"}[r.IntN(5)])
		}
	}
	ws()
	k := r.IntN(10)
	if depth > 5 {
		k = 4 + r.IntN(6)
	}
	switch k {
	case 0, 1:
		sb.WriteByte('{')
		n := r.IntN(6)
		names := make([]string, n)
		for i := range names {
			names[i] = genString(r, true)
		}
		if r.IntN(2) == 0 {
			// Sorted as canonical text sorts them, mostly: the fast path
			// must copy these as they are.
			sortByCanonical(names)
		}
		for i, name := range names {
			if i > 0 {
				ws()
				sb.WriteByte(',')
			}
			ws()
			sb.WriteString(name)
			ws()
			sb.WriteByte(':')
			genJSON(r, sb, depth+1)
		}
		ws()
		sb.WriteByte('}')
	case 2, 3:
		sb.WriteByte('[')
		for i := range r.IntN(5) {
			if i > 0 {
				ws()
				sb.WriteByte(',')
			}
			genJSON(r, sb, depth+1)
		}
		ws()
		sb.WriteByte(']')
	case 4, 5, 6:
		sb.WriteString(genString(r, false))
	case 7, 8:
		sb.WriteString([]string{"0", "-0", "1.50", "-12.5e+3", "1E-2", "12345678901234567890123", "0.0", "7", "-0.000", "3e7"}[r.IntN(10)])
	default:
		sb.WriteString([]string{"true", "false", "null"}[r.IntN(3)])
	}
	ws()
}

// genString returns a JSON string literal; names are drawn from a small
// set so that objects often repeat one.
func genString(r *rand.Rand, name bool) string {
	if name && r.IntN(3) > 0 {
		return []string{`"a"`, `"b"`, `"ab"`, `"B"`, `"$source"`, `"é"`, `"a\u0062"`, `"\u00e9"`, `"a\"b"`, `"a\\b"`, `"\u0000"`, `"a\nb"`, `"a\/b"`, `""`}[r.IntN(14)]
	}
	pieces := []string{
		"plain", "x", " ", "é", "東京", "🟣", `\"`, `\\`, `\/`, `\b`, `\f`, `\n`, `\r`, `\t`,
		`\u0000`, `\u0001`, `\u001f`, `\u001F`, `\u0008`, `\u000a`, `\u000b`, `\u0020`, `\u00e9`, `\u00E9`,
		`\u007f`, `\u2028`, `\ud83d\ude00`, `\ud800`, `\udc00x`, "\xff", "\xc3", "\xed\xa0\x80", "\x7f",
		"abcdefghijklmnop", "ünïcode key 🎉 and more text",
	}
	var sb strings.Builder
	sb.WriteByte('"')
	for range r.IntN(5) {
		sb.WriteString(pieces[r.IntN(len(pieces))])
	}
	sb.WriteByte('"')
	return sb.String()
}

// sortByCanonical sorts JSON string literals by their canonical text.
func sortByCanonical(lits []string) {
	var c canonicalizer
	key := func(s string) string {
		out, _, _ := c.canonicalSlow(nil, []byte(s))
		return string(out)
	}
	for i := 1; i < len(lits); i++ {
		for j := i; j > 0 && key(lits[j-1]) > key(lits[j]); j-- {
			lits[j-1], lits[j] = lits[j], lits[j-1]
		}
	}
}

// checkCanonicalAgree fails unless canonical (fast path first) and
// canonicalSlow give the same bytes, flags and error for v, appended to a
// non-empty dst.
func checkCanonicalAgree(t *testing.T, fast, slow *canonicalizer, v []byte) (out []byte, err error) {
	t.Helper()
	prefix := []byte("prefix:")
	got, gf, gerr := fast.canonical(append([]byte(nil), prefix...), v)
	want, wf, werr := slow.canonicalSlow(append([]byte(nil), prefix...), v)
	if fmt.Sprint(gerr) != fmt.Sprint(werr) || (gerr == nil && (!bytes.Equal(got, want) || gf != wf)) {
		t.Fatalf("%q:\nfast %q flags %b err %v\nslow %q flags %b err %v", v, got, gf, gerr, want, wf, werr)
	}
	if (werr == nil) != json.Valid(v) {
		t.Fatalf("%q: error %v, json.Valid %v", v, werr, json.Valid(v))
	}
	if werr != nil {
		return nil, werr
	}
	return want[len(prefix):], nil
}

// TestCanonicalFastMatchesSlow: the fast path gives exactly what the
// token-by-token canonicalizer gives, for valid values of every shape,
// for their canonical forms (which it must copy through itself), and for
// broken ones (which it must hand over).
func TestCanonicalFastMatchesSlow(t *testing.T) {
	r := newRand(11)
	var fast, slow canonicalizer
	fastHits := 0
	for i := 0; i < 20000; i++ {
		var sb strings.Builder
		genJSON(r, &sb, 0)
		v := []byte(sb.String())
		out, err := checkCanonicalAgree(t, &fast, &slow, v)
		if err != nil {
			t.Fatalf("generated %q is invalid: %v", v, err)
		}
		// Canonical text is a fixed point, and the fast path alone
		// produces it.
		again, f, ok := fast.canonFast(nil, out)
		if !ok || !bytes.Equal(again, out) {
			t.Fatalf("canonical %q: fast path ok %v gave %q", out, ok, again)
		}
		if _, wf, _ := slow.canonicalSlow(nil, out); f != wf {
			t.Fatalf("canonical %q: fast flags %b, slow %b", out, f, wf)
		}
		if _, _, ok := fast.canonFast(nil, v); ok {
			fastHits++
		}
		// Broken variants: cut, a byte changed, a byte dropped.
		for _, bad := range [][]byte{
			v[:r.IntN(len(v)+1)],
			mutate(v, r.IntN(len(v)), byte(r.IntN(256))),
			append(append([]byte(nil), v[:len(v)/2]...), v[len(v)/2+1:]...),
		} {
			checkCanonicalAgree(t, &fast, &slow, bad)
		}
	}
	if fastHits < 19000 {
		t.Errorf("fast path took only %d of 20000 valid values", fastHits)
	}
	for _, v := range []string{
		``, ` `, `{}`, `[]`, `""`, ` {"b":1 , "a":[ ]} `, `{"a":1,"a":0}`, `{"b":1,"a":2,"b":3}`,
		`"\u0000"`, `"\u0000\u001f\u000b"`, `"\u000A"`, `"\u001F"`, `"\/"`, "\"\xff\"", `"\ud800"`,
		`{"\u0062":1,"a":2}`, `{"a\"":1,"a":2}`, `{"a\\":1,"a":2}`, `{"a\n":1,"a":2}`,
		`{"é":1,"z":2}`, `{"z":{"y":{"x":1,"w":2},"v":3},"u":[{"t":1,"s":2}]}`,
		strings.Repeat("[", canonFastDepth+1) + strings.Repeat("]", canonFastDepth+1),
		strings.Repeat(`{"b":1,"a":`, 600) + "0" + strings.Repeat("}", 600),
		strings.Repeat("[", 10001) + strings.Repeat("]", 10001),
		`{"k":` + strings.Repeat(`"x",`, 40) + `1}`,
		`{` + strings.Repeat(`"z":1,"y":2,`, 40) + `"a":0}`,
		`1 2`, `{"a":1}x`, `tru`, `nul`, `-`, `01`, `1.`, `{"a"}`, `{"a":}`, `[1,]`, `{,}`,
	} {
		checkCanonicalAgree(t, &fast, &slow, []byte(v))
	}
}

func mutate(v []byte, i int, c byte) []byte {
	if len(v) == 0 {
		return v
	}
	m := append([]byte(nil), v...)
	m[i] = c
	return m
}

// FuzzCanonical cross-checks canonical (fast path first) against
// canonicalSlow on arbitrary bytes, and both against json.Valid.
func FuzzCanonical(f *testing.F) {
	r := newRand(12)
	for range 50 {
		var sb strings.Builder
		genJSON(r, &sb, 0)
		f.Add([]byte(sb.String()))
	}
	f.Add([]byte(`{"b":1,"a":{"d":[3,{"z":1,"y":2}],"c":null}}`))
	f.Add([]byte(`{"k\u0041":"\u00e9\/\"\u001f\t"}`))
	f.Fuzz(func(t *testing.T, v []byte) {
		// As a JSON column, canonicalized by the decoder or the coercer:
		// the same rows, or the same error.
		body := []byte(`{"data":[{"type":"profile","id":"p","attributes":{"properties":` + string(v) + `}}]}`)
		if got, want := renderWith(t, body, &scanDecoder{}), renderWith(t, body, &coerceJSONDecoder{}); got != want {
			t.Fatalf("in-pass canonical JSON differs from the coercer's:\n%s", lineDiff(want, got))
		}
		var fast, slow canonicalizer
		out, err := checkCanonicalAgree(t, &fast, &slow, v)
		if err != nil {
			return
		}
		if again, _, ok := fast.canonFast(nil, out); !ok || !bytes.Equal(again, out) {
			// Only nesting beyond canonFastDepth may leave the fast path.
			if ok || validJSONDepth(out) <= canonFastDepth {
				t.Fatalf("canonical %q: fast path ok %v gave %q", out, ok, again)
			}
		}
	})
}

// validJSONDepth returns the deepest nesting of arrays and objects in the
// valid JSON text v.
func validJSONDepth(v []byte) int {
	depth, deepest, inString := 0, 0, false
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case inString && c == '\\':
			i++
		case c == '"':
			inString = !inString
		case inString:
		case c == '{' || c == '[':
			depth++
			deepest = max(deepest, depth)
		case c == '}' || c == ']':
			depth--
		}
	}
	return deepest
}

// coerceJSONDecoder is scanDecoder with the canonical JSON it makes while
// reading dropped, so that the coercer canonicalizes JSON columns itself:
// the reference for the decoder's in-pass canonicalization.
type coerceJSONDecoder struct{ scanDecoder }

func (d *coerceJSONDecoder) page(body []byte, pg *wirePage) error {
	err := d.scanDecoder.page(body, pg)
	for i := range pg.data {
		pg.recs[i].json = pg.recs[i].json[:0]
	}
	return err
}

func (d *coerceJSONDecoder) record(raw []byte, w *wireRecord) error {
	err := d.scanDecoder.record(raw, w)
	w.json = w.json[:0]
	return err
}

// renderWith transforms body with dec and renders everything: result,
// counts and rows, or the error.
func renderWith(t *testing.T, body []byte, dec recordDecoder) string {
	t.Helper()
	out, err := transformWith(t, body, dec)
	if err != nil {
		return "error: " + err.Error()
	}
	return out
}

// jsonColumnsPage puts values into the JSON columns of a page's records,
// some twice, some null, beside a string attribute.
func jsonColumnsPage(r *rand.Rand, values []string) []byte {
	var sb strings.Builder
	sb.WriteString(`{"data":[`)
	for i, v := range values {
		if i > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, `{"type":"profile","id":"p%d","attributes":{"email":"e%d"`, i, i)
		for _, name := range []string{"properties", "subscriptions", "predictive_analytics"} {
			switch r.IntN(6) {
			case 0: // absent
			case 1:
				fmt.Fprintf(&sb, `,%q:null`, name)
			case 2: // twice: the last one counts
				fmt.Fprintf(&sb, `,%q:%s,%q: %s`, name, v, name, values[r.IntN(len(values))])
			default:
				fmt.Fprintf(&sb, `,%q: %s`, name, v)
			}
		}
		sb.WriteString(`}}`)
	}
	sb.WriteString(`]}`)
	return []byte(sb.String())
}

// TestDecoderJSONMatchesCoercer: canonicalizing JSON columns while reading
// gives exactly the rows, counts and rejects of canonicalizing them in the
// coercer.
func TestDecoderJSONMatchesCoercer(t *testing.T) {
	r := newRand(13)
	var bodies [][]byte
	for _, p := range []string{"testdata/pages/typical.json", "testdata/pages/drift.json", "testdata/pages/rejects.json", "../testdata/seed-get-profiles.json"} {
		body, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		bodies = append(bodies, body)
	}
	bodies = append(bodies, genPage(r, 30))
	deep := strings.Repeat(`{"b":[`, canonFastDepth) + `"\u00e9"` + strings.Repeat(`]}`, canonFastDepth)
	for range 200 {
		values := make([]string, 10)
		for k := range values {
			var sb strings.Builder
			genJSON(r, &sb, 0)
			values[k] = sb.String()
		}
		values[r.IntN(len(values))] = deep
		bodies = append(bodies, jsonColumnsPage(r, values))
	}
	// A member given twice: the last value counts, whichever way each is
	// read.
	for _, pair := range [][2]string{{`{"a":1}`, `null`}, {`{"a":1}`, deep}, {deep, `{"b":2,"a":1}`}, {`null`, ` ["\u0000"]`}} {
		bodies = append(bodies, []byte(`{"data":[{"type":"profile","id":"p","attributes":{"properties":`+pair[0]+`,"properties":`+pair[1]+`}}]}`))
	}
	for i, body := range bodies {
		got, want := renderWith(t, body, &scanDecoder{}), renderWith(t, body, &coerceJSONDecoder{})
		if got != want {
			t.Fatalf("page %d: in-pass canonical JSON differs from the coercer's:\n%s", i, lineDiff(want, got))
		}
	}
}
