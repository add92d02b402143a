package transform

import (
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/klaviyo-etl/klaviyo-etl/schema"
)

func ts(s string) int64 {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t.UnixMicro()
}

// TestRules has a case (or several) for every coercion rule: the raw JSON
// value, the column kind, and what must come out.
func TestRules(t *testing.T) {
	type want struct {
		rule  Rule
		null  bool
		text  string
		f64   float64
		us    int64
		nul   bool
		lossy Rule
	}
	cases := []struct {
		name string
		kind schema.Kind
		raw  string
		want want
	}{
		// RuleNull
		{"null string", schema.String, `null`, want{rule: RuleNull, null: true}},
		{"absent string", schema.String, ``, want{rule: RuleNull, null: true}},
		{"null double", schema.Double, `null`, want{rule: RuleNull, null: true}},
		{"null timestamp", schema.Timestamp, `null`, want{rule: RuleNull, null: true}},
		{"null json", schema.JSON, `null`, want{rule: RuleNull, null: true}},
		// RuleString
		{"plain", schema.String, `"sarah.mason@klaviyo-demo.com"`, want{rule: RuleString, text: "sarah.mason@klaviyo-demo.com"}},
		{"escapes", schema.String, `"a\"b\\c\/d\n\u00e9\ud83d\ude00"`, want{rule: RuleString, text: "a\"b\\c/d\né😀"}},
		{"utf8", schema.String, `"Zoë 東京"`, want{rule: RuleString, text: "Zoë 東京"}},
		{"empty", schema.String, `""`, want{rule: RuleString, text: ""}},
		// RuleNumberText
		{"zip as integer", schema.String, `10001`, want{rule: RuleNumberText, text: "10001"}},
		{"number text kept exactly", schema.String, `1.50e+3`, want{rule: RuleNumberText, text: "1.50e+3"}},
		{"big integer", schema.String, `12345678901234567890123`, want{rule: RuleNumberText, text: "12345678901234567890123"}},
		{"negative", schema.String, `-0`, want{rule: RuleNumberText, text: "-0"}},
		// RuleBoolText
		{"true", schema.String, `true`, want{rule: RuleBoolText, text: "true"}},
		{"false", schema.String, `false`, want{rule: RuleBoolText, text: "false"}},
		// RuleNumber
		{"latitude number", schema.Double, `40.7128`, want{rule: RuleNumber, f64: 40.7128}},
		{"longitude negative", schema.Double, `-74.006`, want{rule: RuleNumber, f64: -74.006}},
		{"exponent", schema.Double, `4.07128e1`, want{rule: RuleNumber, f64: 40.7128}},
		{"integer", schema.Double, `0`, want{rule: RuleNumber, f64: 0}},
		// RuleNumericString
		{"latitude string", schema.Double, `"40.7128"`, want{rule: RuleNumericString, f64: 40.7128}},
		{"longitude string", schema.Double, `"74.0060"`, want{rule: RuleNumericString, f64: 74.006}},
		{"spaces and plus", schema.Double, `" +12.5 "`, want{rule: RuleNumericString, f64: 12.5}},
		{"leading point", schema.Double, `".5"`, want{rule: RuleNumericString, f64: 0.5}},
		{"trailing point", schema.Double, `"5."`, want{rule: RuleNumericString, f64: 5}},
		// RuleEmptyString
		{"empty coordinate", schema.Double, `""`, want{rule: RuleEmptyString, null: true}},
		{"blank coordinate", schema.Double, `"  "`, want{rule: RuleEmptyString, null: true}},
		{"empty timestamp", schema.Timestamp, `""`, want{rule: RuleEmptyString, null: true}},
		// RuleTimestampOffset
		{"offset", schema.Timestamp, `"2023-06-05T14:49:54+00:00"`, want{rule: RuleTimestampOffset, us: ts("2023-06-05T14:49:54Z")}},
		{"zulu", schema.Timestamp, `"2023-06-05T14:49:54Z"`, want{rule: RuleTimestampOffset, us: ts("2023-06-05T14:49:54Z")}},
		{"fraction", schema.Timestamp, `"2003-06-16T23:46:17.908Z"`, want{rule: RuleTimestampOffset, us: ts("2003-06-16T23:46:17.908Z")}},
		{"microseconds", schema.Timestamp, `"2022-11-08T00:00:00.123456+00:00"`, want{rule: RuleTimestampOffset, us: ts("2022-11-08T00:00:00.123456Z")}},
		{"space separator", schema.Timestamp, `"2023-08-14 15:50:46+00:00"`, want{rule: RuleTimestampOffset, us: ts("2023-08-14T15:50:46Z")}},
		{"positive offset", schema.Timestamp, `"2023-08-14T17:50:46+02:00"`, want{rule: RuleTimestampOffset, us: ts("2023-08-14T15:50:46Z")}},
		{"negative offset no colon", schema.Timestamp, `"2023-08-14T10:20:46-0530"`, want{rule: RuleTimestampOffset, us: ts("2023-08-14T15:50:46Z")}},
		{"hour offset", schema.Timestamp, `"2023-08-14T10:50:46-05"`, want{rule: RuleTimestampOffset, us: ts("2023-08-14T15:50:46Z")}},
		{"before 1970", schema.Timestamp, `"1956-09-18T00:57:37.396Z"`, want{rule: RuleTimestampOffset, us: ts("1956-09-18T00:57:37.396Z")}},
		{"escaped", schema.Timestamp, `"2023-06-05T14:49:54\u002B00:00"`, want{rule: RuleTimestampOffset, us: ts("2023-06-05T14:49:54Z")}},
		// RuleTimestampNoOffset
		{"no offset", schema.Timestamp, `"2022-11-08T00:00:00"`, want{rule: RuleTimestampNoOffset, us: ts("2022-11-08T00:00:00Z")}},
		{"no offset fraction", schema.Timestamp, `"2022-11-08 01:02:03.5"`, want{rule: RuleTimestampNoOffset, us: ts("2022-11-08T01:02:03.5Z")}},
		// RuleTimestampDate
		{"date only", schema.Timestamp, `"2022-11-08"`, want{rule: RuleTimestampDate, us: ts("2022-11-08T00:00:00Z")}},
		{"leap day", schema.Timestamp, `"2024-02-29"`, want{rule: RuleTimestampDate, us: ts("2024-02-29T00:00:00Z")}},
		// RuleTimestampTruncated
		{"nanoseconds", schema.Timestamp, `"2023-06-05T14:49:54.123456789Z"`, want{rule: RuleTimestampOffset, us: ts("2023-06-05T14:49:54.123456Z"), lossy: RuleTimestampTruncated}},
		{"nanoseconds before 1970", schema.Timestamp, `"1969-12-31T23:59:59.9999999Z"`, want{rule: RuleTimestampOffset, us: -1, lossy: RuleTimestampTruncated}},
		{"zero nanoseconds are not lost", schema.Timestamp, `"2023-06-05T14:49:54.123456000Z"`, want{rule: RuleTimestampOffset, us: ts("2023-06-05T14:49:54.123456Z")}},
		// RuleJSON
		{"keys sorted", schema.JSON, `{"b":1,"a":{"d":[3,{"z":1,"y":2}],"c":null}}`, want{rule: RuleJSON, text: `{"a":{"c":null,"d":[3,{"y":2,"z":1}]},"b":1}`}},
		{"numbers verbatim", schema.JSON, `{"clv": 1.50, "n": 12345678901234567890123, "e": 1E+2, "z": -0.0}`, want{rule: RuleJSON, text: `{"clv":1.50,"e":1E+2,"n":12345678901234567890123,"z":-0.0}`}},
		{"white space dropped", schema.JSON, " [ 1 ,\n\t\"a b\" , true ] ", want{rule: RuleJSON, text: `[1,"a b",true]`}},
		{"escapes normalized", schema.JSON, `{"k\u0041":"\u00e9\/\"\u001f\t"}`, want{rule: RuleJSON, text: `{"kA":"é/\"\u001f\t"}`}},
		{"every escape form", schema.JSON, `["\b\f\n\r\t\\\"\u0001\u007f\u2028"]`, want{rule: RuleJSON, text: "[\"\\b\\f\\n\\r\\t\\\\\\\"\\u0001\x7f\u2028\"]"}},
		{"double_optin string kept", schema.JSON, `{"double_optin":"True"}`, want{rule: RuleJSON, text: `{"double_optin":"True"}`}},
		{"duplicate keys kept in order", schema.JSON, `{"b":1,"a":2,"b":3}`, want{rule: RuleJSON, text: `{"a":2,"b":1,"b":3}`}},
		{"empty object", schema.JSON, `{}`, want{rule: RuleJSON, text: `{}`}},
		{"scalar", schema.JSON, `"x"`, want{rule: RuleJSON, text: `"x"`}},
		// RuleInvalidUTF8
		{"invalid byte", schema.String, "\"a\xffb\"", want{rule: RuleString, text: "a\uFFFDb", lossy: RuleInvalidUTF8}},
		{"lone surrogate", schema.String, `"a\ud800b"`, want{rule: RuleString, text: "a\uFFFDb", lossy: RuleInvalidUTF8}},
		{"reversed surrogates", schema.String, `"\udc00\ud800"`, want{rule: RuleString, text: "\uFFFD\uFFFD", lossy: RuleInvalidUTF8}},
		{"surrogate encoded as UTF-8", schema.String, "\"\xed\xa0\x80\"", want{rule: RuleString, text: "\uFFFD\uFFFD\uFFFD", lossy: RuleInvalidUTF8}},
		{"invalid in json", schema.JSON, "{\"k\xff\":\"\\udfff\"}", want{rule: RuleJSON, text: `{"k` + "\uFFFD" + `":"` + "\uFFFD" + `"}`, lossy: RuleInvalidUTF8}},
		// RuleNUL
		{"nul in string", schema.String, `"a\u0000b"`, want{rule: RuleString, text: "a\x00b", nul: true}},
		{"nul in json", schema.JSON, `{"k":"\u0000"}`, want{rule: RuleJSON, text: `{"k":"\u0000"}`, nul: true}},
		// RuleUncoercible
		{"object as coordinate", schema.Double, `{"value":"<Error>"}`, want{rule: RuleUncoercible, null: true}},
		{"bool as coordinate", schema.Double, `true`, want{rule: RuleUncoercible, null: true}},
		{"word as coordinate", schema.Double, `"north"`, want{rule: RuleUncoercible, null: true}},
		{"NaN as coordinate", schema.Double, `"NaN"`, want{rule: RuleUncoercible, null: true}},
		{"infinity as coordinate", schema.Double, `"Inf"`, want{rule: RuleUncoercible, null: true}},
		{"hex as coordinate", schema.Double, `"0x1p4"`, want{rule: RuleUncoercible, null: true}},
		{"long word as coordinate", schema.Double, `"` + strings.Repeat("north", 50) + `"`, want{rule: RuleUncoercible, null: true}},
		{"comma decimal", schema.Double, `"40,7128"`, want{rule: RuleUncoercible, null: true}},
		{"overflow", schema.Double, `1e400`, want{rule: RuleUncoercible, null: true}},
		{"object as string", schema.String, `{"a":1}`, want{rule: RuleUncoercible, null: true}},
		{"array as string", schema.String, `["a"]`, want{rule: RuleUncoercible, null: true}},
		{"garbage date", schema.Timestamp, `"yesterday"`, want{rule: RuleUncoercible, null: true}},
		{"month 13", schema.Timestamp, `"2023-13-01T00:00:00Z"`, want{rule: RuleUncoercible, null: true}},
		{"feb 29 not leap", schema.Timestamp, `"2023-02-29"`, want{rule: RuleUncoercible, null: true}},
		{"hour 24", schema.Timestamp, `"2023-01-01T24:00:00Z"`, want{rule: RuleUncoercible, null: true}},
		{"leap second", schema.Timestamp, `"2016-12-31T23:59:60Z"`, want{rule: RuleUncoercible, null: true}},
		{"trailing junk", schema.Timestamp, `"2023-01-01T00:00:00Zx"`, want{rule: RuleUncoercible, null: true}},
		{"empty fraction", schema.Timestamp, `"2023-01-01T00:00:00.Z"`, want{rule: RuleUncoercible, null: true}},
		{"no seconds", schema.Timestamp, `"2023-01-01T00:00"`, want{rule: RuleUncoercible, null: true}},
		{"epoch number", schema.Timestamp, `1686000000`, want{rule: RuleUncoercible, null: true}},
		{"object as timestamp", schema.Timestamp, `{}`, want{rule: RuleUncoercible, null: true}},
		{"invalid UTF-8 timestamp", schema.Timestamp, "\"2023-01-01\xff\"", want{rule: RuleUncoercible, null: true}},
	}
	seen := map[Rule]bool{}
	var c coercer
	for _, tc := range cases {
		t.Run(tc.want.rule.String()+"/"+tc.name, func(t *testing.T) {
			got := c.coerce(tc.kind, []byte(tc.raw))
			seen[got.rule], seen[got.lossy] = true, true
			if got.nul {
				seen[RuleNUL] = true
			}
			w := tc.want
			if got.rule != w.rule || got.null != w.null || got.nul != w.nul || got.lossy != w.lossy {
				t.Fatalf("got rule %v null %v nul %v lossy %v (why %q), want rule %v null %v nul %v lossy %v",
					got.rule, got.null, got.nul, got.lossy, got.why, w.rule, w.null, w.nul, w.lossy)
			}
			if got.rule == RuleUncoercible && got.why == "" {
				t.Error("uncoercible value without a reason")
			}
			if w.null {
				return
			}
			switch tc.kind {
			case schema.Double:
				if got.f64 != w.f64 {
					t.Errorf("got %v, want %v", got.f64, w.f64)
				}
			case schema.Timestamp:
				if got.us != w.us {
					t.Errorf("got %v, want %v", time.UnixMicro(got.us).UTC(), time.UnixMicro(w.us).UTC())
				}
			default:
				if string(got.text) != w.text {
					t.Errorf("got %q, want %q", got.text, w.text)
				}
			}
		})
	}
	for r := RuleNull; r < NumRules; r++ {
		if !seen[r] {
			t.Errorf("no case exercises %v", r)
		}
	}
}

// TestParseTimestampMatchesTime checks random instants in every offset form
// against the standard library's reading of the same text.
func TestParseTimestampMatchesTime(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	layouts := []string{
		"2006-01-02T15:04:05Z07:00",
		"2006-01-02T15:04:05.999999Z07:00",
		"2006-01-02T15:04:05.000000-07:00",
		"2006-01-02 15:04:05.999-07:00",
	}
	for i := 0; i < 20000; i++ {
		sec := r.Int64N(2*253402300799) - 253402300799/2 // years ~ -... clamp below
		inst := time.Unix(sec, r.Int64N(1e9)/1000*1000)
		if inst.Year() < 1 || inst.Year() > 9999 {
			continue
		}
		zone := time.FixedZone("", (r.IntN(27*60)-13*60)*60)
		s := inst.In(zone).Format(layouts[i%len(layouts)])
		want, err := time.Parse(strings.Replace(layouts[i%len(layouts)], " ", "T", 1), strings.Replace(s, " ", "T", 1))
		if err != nil {
			t.Fatalf("time.Parse(%q): %v", s, err)
		}
		got, _, _, err := parseTimestamp([]byte(s))
		if err != nil {
			t.Fatalf("parseTimestamp(%q): %v", s, err)
		}
		if got != want.UnixMicro() {
			t.Fatalf("parseTimestamp(%q) = %v, want %v", s, time.UnixMicro(got).UTC(), want.UTC())
		}
	}
}

// TestUnquoteMatchesEncodingJSON checks string decoding, including invalid
// UTF-8 and surrogates, against encoding/json.
func TestUnquoteMatchesEncodingJSON(t *testing.T) {
	for _, lit := range []string{
		`""`, `"abc"`, `"\u00e9"`, `"\ud83d\ude00"`, `"\ud83d"`, `"\ude00"`, `"\ud83d\u0041"`,
		`"\ud83dx"`, `"\ud83d\ud83d\ude00"`, "\"\xff\xfe\"", "\"\xe2\x82\"", "\"\xf0\x9f\x98\x80\"",
		`"\b\f\n\r\t\"\\\/"`, `"\u0000\u001f\u007f"`, "\"\xed\xbf\xbf\"", `"\uFFFD"`,
	} {
		var want string
		if err := json.Unmarshal([]byte(lit), &want); err != nil {
			t.Fatalf("%q: %v", lit, err)
		}
		got, _, _ := stringText(nil, []byte(lit))
		if string(got) != want {
			t.Errorf("stringText(%q) = %q, want %q", lit, got, want)
		}
	}
}
