package transform

import (
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow/memory"
)

// The fast paths must agree exactly with the code they stand in for; each
// test here compares one with its reference on many generated inputs.

// TestSkipFastMatchesSlow: skip (skipFast, then skipSlow for what it
// refuses) ends at the same offset with the same error as skipSlow alone,
// at any starting depth.
func TestSkipFastMatchesSlow(t *testing.T) {
	r := newRand(21)
	check := func(v []byte, depth int) {
		t.Helper()
		var fast, slow parser
		fast.reset(v, depth)
		slow.reset(v, depth)
		fast.skip()
		slow.skipSlow()
		if fast.i != slow.i || fmt.Sprint(fast.err) != fmt.Sprint(slow.err) || fast.depth != slow.depth {
			t.Fatalf("%q at depth %d: skip ends at %d (depth %d) with %v, skipSlow at %d (depth %d) with %v",
				v, depth, fast.i, fast.depth, fast.err, slow.i, slow.depth, slow.err)
		}
	}
	const chars = `"\{}[],: 0e.-+tfnu`
	for i := 0; i < 20000; i++ {
		var sb strings.Builder
		genJSON(r, &sb, 0)
		v := []byte(sb.String())
		if r.IntN(4) == 0 {
			v = append(v, []byte(`, "tail"]`)...) // a value followed by more
		}
		depth := []int{0, 0, 3, maxDepth - 2, maxDepth}[r.IntN(5)]
		check(v, depth)
		check(v[:r.IntN(len(v)+1)], depth)
		check(mutate(v, r.IntN(len(v)), byte(r.IntN(256))), depth)
		check(mutate(v, r.IntN(len(v)), chars[r.IntN(len(chars))]), depth)
	}
	for _, v := range []string{
		``, ` `, `{}`, `[]`, `{"a":1}`, `{"a" 1}`, `{"a":1,}`, `[1,]`, `[1 2]`, `{"a":[}`, `[}`, `{]`,
		`{1:2}`, `01`, `-`, `1.`, `1e`, `1e+`, `-0.5e-7`, `tru`, `truex`, `nul`, `fals`, `"\u12"`, `"\x"`,
		"\"\x01\"", `"abc`, `"abc\`, strings.Repeat("[", fastDepth) + strings.Repeat("]", fastDepth),
		strings.Repeat("[", fastDepth+1) + strings.Repeat("]", fastDepth+1),
		strings.Repeat(`{"a":`, fastDepth+5) + "1" + strings.Repeat("}", fastDepth+5),
		strings.Repeat("[", 10001) + strings.Repeat("]", 10001),
	} {
		for _, depth := range []int{0, 1, maxDepth - fastDepth, maxDepth - 1, maxDepth} {
			check([]byte(v), depth)
		}
	}
}

// stringTextRef is stringText as it was before plainText: the reference.
func stringTextRef(buf, lit []byte) (text, grown []byte, f strFlags) {
	if len(lit) < 2 {
		return nil, buf, 0
	}
	inner := lit[1 : len(lit)-1]
	simple := true
	for _, c := range inner {
		if c == '\\' || c >= utf8.RuneSelf {
			simple = false
			break
		}
	}
	if simple {
		return inner, buf, 0
	}
	start := len(buf)
	buf, f = unquote(buf, inner)
	return buf[start:], buf, f
}

// TestStringTextMatchesReference: the same text and flags for literals of
// every kind, including raw bytes no valid JSON holds.
func TestStringTextMatchesReference(t *testing.T) {
	r := newRand(22)
	pieces := []string{"a", "plain text", "é", "東京", "🟣", `\"`, `\\`, `\n`, `\u0000`, `\u00e9`, `\ud800`,
		"\xff", "\xc3", "\x00", "\x01", "\x7f", "0123456789abcdef", "\\"}
	for i := 0; i < 20000; i++ {
		var sb strings.Builder
		sb.WriteByte('"')
		for range r.IntN(8) {
			sb.WriteString(pieces[r.IntN(len(pieces))])
		}
		sb.WriteByte('"')
		lit := []byte(sb.String())
		// The buffer returned is scratch for the caller's next call; only
		// the text and the flags are the result.
		got, _, gf := stringText([]byte("buf"), lit)
		want, _, wf := stringTextRef([]byte("buf"), lit)
		if string(got) != string(want) || gf != wf {
			t.Fatalf("%q: got %q (flags %b), want %q (flags %b)", lit, got, gf, want, wf)
		}
	}
}

// TestParseDoubleMatchesStrconv: the same float64, bit for bit, and the
// same verdict as strconv.ParseFloat.
func TestParseDoubleMatchesStrconv(t *testing.T) {
	r := newRand(23)
	check := func(s string) {
		t.Helper()
		got, gerr := parseDouble([]byte(s))
		want, werr := strconv.ParseFloat(s, 64)
		if math.Float64bits(got) != math.Float64bits(want) || (gerr == nil) != (werr == nil) {
			t.Fatalf("%q: got %v (%x) %v, want %v (%x) %v", s, got, math.Float64bits(got), gerr, want, math.Float64bits(want), werr)
		}
	}
	for _, s := range []string{
		"", "-", "+", ".", "-.", "0", "-0", "+0", "-0.0", "0.", ".0", "5.", ".5", "007", "-0.000",
		"40.7128", "-74.0060", "1.5e3", "1e400", "0x1p4", "inf", "NaN", "1_000", "1.2.3", "1..2", "--1",
		"123456789012345", "1234567890123456", "0.0000000000000000000001", "0.00000000000000000000001",
		"9007199254740993", "179.999999999999", "0.1", "0.2", "0.3", "-89.9999", "999999999999999",
		"0.000000000000000000000000000000000001234", "1234567890.12345", "12345678901234.5",
	} {
		check(s)
	}
	for i := 0; i < 200000; i++ {
		var s string
		switch i % 4 {
		case 0:
			s = strconv.FormatFloat(r.Float64()*360-180, 'f', r.IntN(12), 64)
		case 1:
			s = strconv.FormatFloat(r.NormFloat64()*math.Pow(10, float64(r.IntN(30)-15)), 'f', -1, 64)
		case 2:
			s = fmt.Sprintf("%d.%0*d", r.IntN(1000)-500, r.IntN(20)+1, r.Int64N(1e15))
		default:
			var sb strings.Builder
			for range r.IntN(20) {
				sb.WriteByte("0123456789.-+e"[r.IntN(14)])
			}
			s = sb.String()
		}
		check(s)
	}
}

// TestNameTable: the lookup tables agree with the column maps for every
// name, and find nothing else.
func TestNameTable(t *testing.T) {
	for _, tc := range []struct {
		tab   *nameTable
		m     map[string]int
		extra string
	}{{&attributeNames, attributeSlots, "location"}, {&locationNames, locationSlots, ""}} {
		var probes []string
		for name, slot := range tc.m {
			if got, ok := tc.tab.lookup([]byte(name)); !ok || got != slot {
				t.Errorf("%q: %d %v, want %d", name, got, ok, slot)
			}
			probes = append(probes, name[:len(name)-1], name+"x", "x"+name, strings.ToUpper(name), name[1:])
			for k := range name {
				probes = append(probes, name[:k]+string(rune(name[k]+1))+name[k+1:])
			}
		}
		if tc.extra != "" {
			if got, ok := tc.tab.lookup([]byte(tc.extra)); !ok || got != slotLocation {
				t.Errorf("%q: %d %v, want slotLocation", tc.extra, got, ok)
			}
		}
		probes = append(probes, "", "locatio", "location_city", "id", "type", "latitude", "email")
		for _, p := range probes {
			want, wok := tc.m[p]
			if p == tc.extra && p != "" {
				want, wok = slotLocation, true
			}
			if got, ok := tc.tab.lookup([]byte(p)); ok != wok || got != want {
				t.Errorf("%q: %d %v, want %d %v", p, got, ok, want, wok)
			}
		}
	}
}

// TestConcurrentBuilders: Builders on several goroutines, sharing one
// allocator and the package's tables, give each exactly what one Builder
// gives alone (run it with -race: the package has no shared mutable
// state).
func TestConcurrentBuilders(t *testing.T) {
	r := newRand(24)
	pages := [][]byte{genPage(r, 40), genPage(r, 40), genPage(r, 40)}
	for _, p := range []string{"testdata/pages/typical.json", "testdata/pages/drift.json", "testdata/pages/relationships.json", "testdata/pages/rejects.json"} {
		body, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		pages = append(pages, body)
	}
	run := func(mem memory.Allocator) string {
		b := NewBuilder(mem, testOptions)
		defer b.Release()
		var sb strings.Builder
		for _, body := range pages {
			res, err := b.AddPage(body)
			if err != nil {
				return err.Error()
			}
			fmt.Fprintf(&sb, "%+v\n", res)
			// Add, one record at a time, must also be safe.
			var pg wirePage
			if err := (&scanDecoder{}).page(body, &pg); err != nil {
				return err.Error()
			}
			for _, raw := range pg.data[:min(3, len(pg.data))] {
				fmt.Fprintf(&sb, "%+v\n", b.Add(raw))
			}
			recs := b.Flush()
			sb.WriteString(render(recs))
			recs.Release()
		}
		fmt.Fprintf(&sb, "%+v\n", b.Counts())
		return sb.String()
	}
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	want := run(mem)
	const n = 4
	got := make([]string, n)
	var wg sync.WaitGroup
	for g := range n {
		wg.Go(func() {
			for range 3 {
				if s := run(mem); s != want {
					got[g] = s
					return
				}
			}
			got[g] = want
		})
	}
	wg.Wait()
	for g, s := range got {
		if s != want {
			t.Errorf("goroutine %d differs from the serial Builder:\n%s", g, lineDiff(want, s))
		}
	}
}
