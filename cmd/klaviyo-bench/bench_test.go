package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klaviyo-etl/klaviyo-etl/internal/pgtest"
)

// TestMain lets the test binary serve as the bench's children and
// spawners, as the bench binary does.
func TestMain(m *testing.M) {
	switch {
	case len(os.Args) == 3 && os.Args[1] == childFlag:
		os.Exit(childMain(context.Background(), os.Args[2], os.Stdin, os.Stdout, os.Stderr))
	case len(os.Args) == 4 && os.Args[1] == spawnFlag:
		os.Exit(spawnMain(context.Background(), os.Args[2], os.Args[3], os.Stdout, os.Stderr))
	}
	pgtest.Main(m)
}

// TestQuickRun runs every scenario with -quick end to end (each in child
// processes of the test binary, against a pgtest database) and checks the
// lines printed and the section written into an existing document.
func TestQuickRun(t *testing.T) {
	url := pgtest.NewDatabase(t)
	// A race-enabled child sleeps a second at exit by default; the quick
	// run starts dozens of them. A race in a child still fails it (exit
	// code 66), and with it the run.
	t.Setenv("GORACE", strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	doc := filepath.Join(t.TempDir(), "performance.md")
	before := "# Performance\n\nProse before.\n\n" + docBegin + "\nold table\n" + docEnd + "\n\nProse after.\n"
	if err := os.WriteFile(doc, []byte(before), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	args := []string{"-quick", "-lean=false", "-database-url", url, "-write-doc", doc}
	if err := run(context.Background(), args, func(string) string { return "" }, &stdout, &stderr); err != nil {
		t.Fatalf("run: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	out := stdout.String()

	// One line per scenario and size (1,000 and 3,000 profiles), two
	// budget runs, two memory comparisons.
	want := map[string]int{
		"ceiling: DuckDB, pages file":                      2,
		"ceiling: DuckDB, NDJSON records file":             2,
		"klaviyo-etl: simulator → Parquet":                 2,
		"klaviyo-etl: NDJSON records file → Parquet":       2,
		"ceiling: COPY into an empty profiles table":       2,
		"context: COPY into a table without key":           2,
		"ceiling: COPY to staging + INSERT … ON CONFLICT,": 4,
		"klaviyo-etl: simulator → PostgreSQL, first":       2,
		"klaviyo-etl: simulator → PostgreSQL, incremental": 4,
		"budget:": 2,
		"memory:": 2,
	}
	for prefix, n := range want {
		got := 0
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(l, prefix) {
				got++
				if !strings.HasPrefix(l, "memory:") && !strings.Contains(l, " profiles/s ") {
					t.Errorf("line without a rate: %q", l)
				}
			}
		}
		if got != n {
			t.Errorf("%d lines start with %q, want %d\n%s", got, prefix, n, out)
		}
	}
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, " 0 profiles/s") || strings.Contains(l, "peak RSS 0 MB") {
			t.Errorf("a figure is missing: %q", l)
		}
	}
	if !strings.Contains(out, "--concurrency auto") || !strings.Contains(out, "--concurrency 1") {
		t.Errorf("budget lines missing:\n%s", out)
	}

	got, err := os.ReadFile(doc)
	if err != nil {
		t.Fatal(err)
	}
	text := string(got)
	if !strings.HasPrefix(text, "# Performance\n\nProse before.\n\n"+docBegin) || !strings.HasSuffix(text, docEnd+"\n\nProse after.\n") {
		t.Errorf("the text around the section changed:\n%s", text)
	}
	if strings.Contains(text, "old table") {
		t.Error("the old section is still there")
	}
	if strings.Contains(text, url) || strings.Contains(text, "127.0.0.1") {
		t.Error("the database URL is in the document")
	}
	rows := 0
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, "| ") && !strings.HasPrefix(l, "| scenario ") {
			rows++
			if strings.Count(l, " | ") != 7 {
				t.Errorf("row without 8 cells: %q", l)
			}
		}
	}
	if rows != 26 {
		t.Errorf("%d table rows, want 26:\n%s", rows, text)
	}
}

func TestReplaceSection(t *testing.T) {
	section := docBegin + "\nnew\n" + docEnd + "\n"
	tests := []struct {
		name, doc, want string
		err             bool
	}{
		{name: "no markers: appended", doc: "# P\n\ntext\n", want: "# P\n\ntext\n\n" + section},
		{name: "replaced in place", doc: "a\n" + docBegin + "\nold\n" + docEnd + "\nb\n", want: "a\n" + section + "b\n"},
		{name: "older marker text", doc: "a\n<!-- klaviyo-bench:begin -->\nold\n" + docEnd + "\nb\n", want: "a\n" + section + "b\n"},
		{name: "end only", doc: "a\n" + docEnd + "\n", err: true},
		{name: "end before begin", doc: docEnd + "\n" + docBegin + "\n", err: true},
		{name: "two sections", doc: docBegin + "\n" + docEnd + "\n" + docBegin + "\n" + docEnd + "\n", err: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := replaceSection([]byte(tt.doc), section)
			if tt.err {
				if err == nil {
					t.Fatalf("no error; got %q", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("got\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
}

func TestParseOptions(t *testing.T) {
	tests := []struct {
		name      string
		args      []string
		scenarios []string
		profiles  []int
		usage     bool
	}{
		{name: "defaults", args: nil, scenarios: allScenarios, profiles: []int{100_000, 1_000_000}},
		{name: "groups", args: []string{"-scenarios", "ceilings,budget"}, scenarios: []string{scDuckDB, scCopy, scBudget}, profiles: []int{100_000, 1_000_000}},
		{name: "memory needs the pipelines", args: []string{"-scenarios", "memory"}, scenarios: []string{scMemory, scParquet, scPostgres}, profiles: []int{100_000, 1_000_000}},
		{name: "sizes sorted, deduplicated", args: []string{"-scenarios", "parquet", "-profiles", "5000,1_000,5000"}, scenarios: []string{scParquet}, profiles: []int{1000, 5000}},
		{name: "quick sizes", args: []string{"-quick", "-scenarios", "duckdb"}, scenarios: []string{scDuckDB}, profiles: []int{1000, 3000}},
		{name: "quick keeps explicit sizes", args: []string{"-quick", "-scenarios", "duckdb", "-profiles", "10"}, scenarios: []string{scDuckDB}, profiles: []int{10}},
		{name: "unknown scenario", args: []string{"-scenarios", "parquet,nope"}, usage: true},
		{name: "bad size", args: []string{"-profiles", "1e6"}, usage: true},
		{name: "zero size", args: []string{"-profiles", "0"}, usage: true},
		{name: "bad concurrency", args: []string{"-concurrency", "many"}, usage: true},
		{name: "no runs", args: []string{"-repeat", "0"}, usage: true},
		{name: "short budget run", args: []string{"-budget-duration", "5s"}, usage: true},
		{name: "stray argument", args: []string{"extra"}, usage: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseOptions(tt.args, io.Discard)
			if tt.usage {
				if !errors.As(err, new(usageError)) {
					t.Fatalf("err = %v, want a usage error", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(o.scenarios) != len(tt.scenarios) {
				t.Errorf("scenarios %v, want %v", o.scenarios, tt.scenarios)
			}
			for _, s := range tt.scenarios {
				if !o.scenarios[s] {
					t.Errorf("scenario %s not selected: %v", s, o.scenarios)
				}
			}
			if !equalInts(o.profiles, tt.profiles) {
				t.Errorf("profiles %v, want %v", o.profiles, tt.profiles)
			}
		})
	}
	if _, err := parseOptions([]string{"-h"}, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v", err)
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestTargets(t *testing.T) {
	tests := []struct {
		name     string
		r        row
		has, met bool
	}{
		{name: "parquet at 2× DuckDB", r: row{ratio: 2.0, ratioTo: "DuckDB", want: 2}, has: true, met: true},
		{name: "parquet below 2×", r: row{ratio: 1.99, ratioTo: "DuckDB", want: 2}, has: true},
		{name: "no ceiling measured", r: row{want: 0.9}},
		{name: "informational ratio", r: row{ratio: 0.5, ratioTo: "COPY"}},
		{name: "memory flat", r: row{mem: true, rssLo: 100e6, rss: 109e6}, has: true, met: true},
		{name: "memory grew 11%", r: row{mem: true, rssLo: 100e6, rss: 111e6}, has: true},
		{name: "memory over 200 MB", r: row{mem: true, rssLo: 195e6, rss: 201e6}, has: true},
		{name: "budget used", r: row{budget: true, want: 0.95, m: measurement{SteadyShare: 0.96}}, has: true, met: true},
		{name: "budget with a 429", r: row{budget: true, want: 0.95, m: measurement{SteadyShare: 0.99, RateLimited: 1}}, has: true},
		{name: "budget underused", r: row{budget: true, want: 0.95, m: measurement{SteadyShare: 0.94}}, has: true},
		{name: "budget without target", r: row{budget: true, m: measurement{SteadyShare: 0.1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			has, met := tt.r.met()
			if has != tt.has || met != tt.met {
				t.Errorf("met() = %v, %v; want %v, %v", has, met, tt.has, tt.met)
			}
		})
	}
}

// TestRatioText: a ratio that rounds to its target but misses it (or
// meets it) is shown with a decimal, so the row never reads "60%" beside
// "no".
func TestRatioText(t *testing.T) {
	tests := []struct {
		r    row
		want string
	}{
		{row{ratio: 0.5962, ratioTo: "COPY", want: 0.6}, "59.6% of COPY"},
		{row{ratio: 0.6041, ratioTo: "COPY", want: 0.6}, "60.4% of COPY"},
		{row{ratio: 0.8512, ratioTo: "COPY", want: 0.9}, "85% of COPY"},
		{row{ratio: 151848.0 / 168807, ratioTo: "COPY", want: 0.9}, "89.95% of COPY"},
		{row{ratio: 0.9, ratioTo: "COPY", want: 0.9}, "90.0% of COPY"},
		{row{mem: true, rss: 174e6, rssLo: 153e6}, "+13.7%"},
		{row{mem: true, rss: 110_099_000, rssLo: 100e6}, "+10.1%"},
		{row{mem: true, rss: 109_996_000, rssLo: 100e6}, "+10.0%"},
		{row{mem: true, rss: 110_040_000, rssLo: 100e6}, "+10.04%"},
		{row{mem: true, rss: 85e6, rssLo: 90e6}, "-5.6%"},
		{row{mem: true, rss: 110e6, rssLo: 100e6}, "+10.0%"},
		{row{ratio: 0.5962, ratioTo: "COPY"}, "60% of COPY"},
		{row{ratio: 0.86, ratioTo: "DuckDB", want: 2}, "86% of DuckDB"},
		{row{ratio: 2.19, ratioTo: "COPY"}, "2.19× COPY"},
	}
	for _, tt := range tests {
		if got := tt.r.ratioText(); got != tt.want {
			t.Errorf("ratio %v, target %v: %q, want %q", tt.r.ratio, tt.r.want, got, tt.want)
		}
	}
}

func TestCommandHidesTheDatabaseURL(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"-database-url", "postgres://u:secret@h/db", "-quick"}, "go run ./cmd/klaviyo-bench -database-url 'postgres://…' -quick"},
		{[]string{"--database-url=postgres://u:secret@h/db"}, "go run ./cmd/klaviyo-bench -database-url='postgres://…'"},
		{[]string{"-scenarios", "a b"}, "go run ./cmd/klaviyo-bench -scenarios 'a b'"},
	}
	for _, tt := range tests {
		b := &bench{o: &options{args: tt.args}}
		if got := b.command(); got != tt.want {
			t.Errorf("command(%q) = %q, want %q", tt.args, got, tt.want)
		}
	}
}

func TestThousands(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 1234567: "1,234,567", -1234: "-1,234"} {
		if got := thousands(n); got != want {
			t.Errorf("thousands(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestBestOfRepeats(t *testing.T) {
	rate := func(rows int64, secs float64) measurement { return measurement{Rows: rows, Seconds: secs} }
	rows := []row{
		{Scenario: "duck", n: 10, m: rate(100, 1), is: ceilDuckDB, rss: 50},
		{Scenario: "pq", n: 10, m: rate(100, 2), vs: ceilDuckDB, want: 2, memLabel: "Parquet", rss: 80},
		{Scenario: "duck", n: 20, m: rate(200, 1), is: ceilDuckDB, rss: 60},
		{Scenario: "pq", n: 20, m: rate(200, 4), vs: ceilDuckDB, want: 2, memLabel: "Parquet", rss: 85},
		// second run: DuckDB faster at 10, the pipeline faster at 20 with
		// a lower peak RSS
		{Scenario: "duck", n: 10, m: rate(100, 0.5), is: ceilDuckDB, rss: 40},
		{Scenario: "pq", n: 10, m: rate(100, 2.5), vs: ceilDuckDB, want: 2, memLabel: "Parquet", rss: 90},
		{Scenario: "duck", n: 20, m: rate(200, 2), is: ceilDuckDB, rss: 60},
		{Scenario: "pq", n: 20, m: rate(200, 0.25), vs: ceilDuckDB, want: 2, memLabel: "Parquet", rss: 70},
	}
	got := best(rows)
	if len(got) != 4 {
		t.Fatalf("%d rows, want 4", len(got))
	}
	want := []struct {
		scenario string
		n        int
		rate     float64
		rss      int64
		ratio    float64
	}{
		{"duck", 10, 200, 50, 0},
		{"pq", 10, 50, 90, 0.25},
		{"duck", 20, 200, 60, 0},
		{"pq", 20, 800, 85, 4},
	}
	for i, w := range want {
		g := got[i]
		if g.Scenario != w.scenario || g.n != w.n || g.m.rate() != w.rate || g.rss != w.rss || g.ratio != w.ratio {
			t.Errorf("row %d = %s %d rate %v rss %d ratio %v; want %+v", i, g.Scenario, g.n, g.m.rate(), g.rss, g.ratio, w)
		}
	}
	mem := memoryRows(got, []int{10, 20})
	if len(mem) != 1 || mem[0].rssLo != 90 || mem[0].rss != 85 || !mem[0].mem {
		t.Fatalf("memory rows %+v", mem)
	}
	if has, ok := mem[0].met(); !has || !ok {
		t.Errorf("85 B after 90 B: met() = %v, %v", has, ok)
	}
	if memoryRows(got, []int{10}) != nil {
		t.Error("memory rows from one size")
	}
}
