package transform

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestValidMatchesEncodingJSON: the parser accepts exactly what json.Valid
// accepts.
func TestValidMatchesEncodingJSON(t *testing.T) {
	for _, in := range []string{
		``, ` `, `{}`, `[]`, `""`, `0`, `-0`, `01`, `1.`, `.1`, `1e`, `1e+`, `1E-2`, `-`, `--1`, `+1`,
		`1.5e300`, `tru`, `true`, `truex`, `nul`, `null`, `[1,]`, `[,1]`, `{"a":1,}`, `{,}`, `{"a"}`,
		`{"a":}`, `{"a" 1}`, `{1:1}`, `["\u12"]`, `["\u12g4"]`, `["\x"]`, `["\/"]`, "[\"\t\"]", "[\"\x7f\"]",
		"[\"\xff\"]", `["\ud800"]`, `[1] [2]`, `[1]x`, " \n\t\r[1] \n", "\v[1]", `{"a":1}}`, `[[]`,
		strings.Repeat("[", 10000) + strings.Repeat("]", 10000),
		strings.Repeat("[", 10001) + strings.Repeat("]", 10001),
		`{"data":[` + strings.Repeat("[", 9998) + strings.Repeat("]", 9998) + `]}`,
		`{"data":[` + strings.Repeat("[", 9999) + strings.Repeat("]", 9999) + `]}`,
		"\"a\x00\"", `"\"`, `"\\"`, "\"\xc3\"",
	} {
		got, want := validJSON([]byte(in)) == nil, json.Valid([]byte(in))
		if got != want {
			name := in
			if len(name) > 40 {
				name = name[:40] + "…"
			}
			t.Errorf("%q: valid %v, encoding/json says %v", name, got, want)
		}
		// The page and record readers agree too: a syntax error exactly
		// when encoding/json finds one.
		var pg wirePage
		var w wireRecord
		for _, err := range []error{(&scanDecoder{}).page([]byte(in), &pg), (&scanDecoder{}).record([]byte(in), &w)} {
			_, isSyntax := err.(*syntaxError)
			if isSyntax == want {
				t.Errorf("%.40q: reader error %v, encoding/json valid %v", in, err, want)
			}
		}
	}
}

func TestPageShapes(t *testing.T) {
	for in, want := range map[string]error{
		`{"data":[],"data":[]}`: errDataTwice,
		`{"links":{}}`:          errNoData,
		`{"data":{}}`:           errNoData,
		`[]`:                    errNotObject,
		`{"data":[]}`:           nil,
	} {
		var pg wirePage
		if err := (&scanDecoder{}).page([]byte(in), &pg); err != want {
			t.Errorf("%s: %v, want %v", in, err, want)
		}
	}
}
