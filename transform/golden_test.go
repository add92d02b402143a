package transform

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

var testOptions = Options{RunID: "run-1", ExtractedAt: time.Date(2026, 7, 20, 10, 0, 0, 123456000, time.UTC)}

// transformPage runs one page through a fresh Builder using dec and
// returns its rendering: the page result, the counts and every row.
func transformPage(t testing.TB, body []byte, dec recordDecoder) string {
	t.Helper()
	out, err := transformWith(t, body, dec)
	if err != nil {
		t.Fatalf("AddPage: %v", err)
	}
	return out
}

// transformWith is transformPage returning AddPage's error instead of
// failing on it.
func transformWith(t testing.TB, body []byte, dec recordDecoder) (string, error) {
	t.Helper()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	b := NewBuilder(mem, testOptions)
	defer b.Release()
	b.dec = dec
	res, err := b.AddPage(body)
	if err != nil {
		return "", err
	}
	recs := b.Flush()
	defer recs.Release()
	c := b.Counts()
	var rules []string
	for r, n := range c.Rules {
		if n > 0 {
			rules = append(rules, fmt.Sprintf("%v=%d", Rule(r), n))
		}
	}
	return fmt.Sprintf("page: %+v\ncounts: records=%d loaded=%d loaded-with-rejects=%d rejected-whole=%d reject-rows=%d relationships=%d nul-values=%d duplicate-relationships=%d unknown-fields=%d\nrules: %s\n",
		res, c.Records, c.Loaded, c.LoadedWithRejects, c.RejectedWhole, c.RejectRows, c.Relationships, c.NULValues,
		c.DuplicateRelationships, c.UnknownFields, strings.Join(rules, " ")) + render(recs), nil
}

// TestGolden transforms each hand-written page in testdata/pages and
// compares the rows with testdata/golden/<page>.golden (go test -update
// rewrites them).
func TestGolden(t *testing.T) {
	pages, err := filepath.Glob("testdata/pages/*.json")
	if err != nil || len(pages) == 0 {
		t.Fatalf("no pages: %v", err)
	}
	for _, page := range pages {
		name := strings.TrimSuffix(filepath.Base(page), ".json")
		t.Run(name, func(t *testing.T) {
			body, err := os.ReadFile(page)
			if err != nil {
				t.Fatal(err)
			}
			got := transformPage(t, body, &scanDecoder{})
			golden := filepath.Join("testdata", "golden", name+".golden")
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update)", err)
			}
			if got != string(want) {
				t.Errorf("rows differ from %s (go test -update rewrites it):\n%s", golden, lineDiff(string(want), got))
			}
		})
	}
}

// TestDecodersAgree checks scanDecoder against encoding/json and
// goccy/go-json behind the same seam: the same rows. Rows are compared per
// table as sorted lines, since the libraries read relationships through a
// map. rejects.json is left
// out: it holds duplicate members, which only the scanner reports.
func TestDecodersAgree(t *testing.T) {
	pages := []string{"testdata/pages/typical.json", "testdata/pages/drift.json", "testdata/pages/relationships.json", "../testdata/seed-get-profiles.json"}
	bodies := [][]byte{genPage(newRand(7), 50)}
	for _, p := range pages {
		body, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		bodies = append(bodies, body)
	}
	for i, body := range bodies {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			scan := rowsOnly(transformPage(t, body, &scanDecoder{}))
			for _, lib := range []libDecoder{stdDecoder, goccyDecoder} {
				if got := rowsOnly(transformPage(t, body, lib)); got != scan {
					t.Errorf("scan and %s differ:\n%s", lib.name, lineDiff(got, scan))
				}
			}
		})
	}
}

// rowsOnly keeps the table sections of a rendering, their lines sorted.
func rowsOnly(s string) string {
	lines := strings.Split(s, "\n")
	for len(lines) > 0 && !strings.HasPrefix(lines[0], "# ") {
		lines = lines[1:]
	}
	var out []string
	var section []string
	flush := func() { slices.Sort(section); out = append(out, section...); section = nil }
	for _, l := range lines {
		if strings.HasPrefix(l, "# ") {
			flush()
			out = append(out, l)
			continue
		}
		section = append(section, l)
	}
	flush()
	return strings.Join(out, "\n")
}

// lineDiff shows the first lines that differ.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var buf bytes.Buffer
	shown := 0
	for i := 0; i < len(w) || i < len(g); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			fmt.Fprintf(&buf, "line %d:\n- %s\n+ %s\n", i+1, wl, gl)
			if shown++; shown == 5 {
				break
			}
		}
	}
	return buf.String()
}
