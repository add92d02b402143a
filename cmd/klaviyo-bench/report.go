package main

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// Ceilings a row can be, or be compared with.
const (
	ceilDuckDB        = "DuckDB"          // on the pages
	ceilDuckDBRecords = "DuckDB (NDJSON)" // on the records
	ceilCopy          = "COPY"
)

// row is one line of output and of the table.
type row struct {
	Scenario string
	n        int // profiles in the account
	m        measurement
	rss      int64 // peak RSS of the child, bytes

	is   string  // the ceiling this row measures, if any
	vs   string  // the ceiling this row is compared with, if any
	want float64 // target ratio to vs (or budget share); 0 = no target

	ratio   float64 // to ratioTo's best rate at the same size; set by setRatio
	ratioTo string

	budget bool

	memLabel string // the sink, for the memory comparison of this row's scenario

	mem          bool // a memory comparison
	memLo, memHi int
	rssLo        int64
}

// setRatio compares r with the best rate of its ceiling at its size among
// rows.
func (r *row) setRatio(rows []row) {
	if r.vs == "" {
		return
	}
	var c float64
	for _, o := range rows {
		if o.is == r.vs && o.n == r.n {
			c = max(c, o.m.rate())
		}
	}
	if c > 0 {
		r.ratio, r.ratioTo = r.m.rate()/c, r.vs
	}
}

// best keeps, of rows of the same scenario and size, the one with the
// best rate, with the highest peak RSS of them all, in first-seen order,
// and sets the ratios again from the best ceilings.
func best(rows []row) []row {
	var out []row
	at := map[string]int{}
	for _, r := range rows {
		key := fmt.Sprintf("%s\x00%d", r.Scenario, r.n)
		i, seen := at[key]
		if !seen {
			at[key] = len(out)
			out = append(out, r)
			continue
		}
		rss := max(out[i].rss, r.rss)
		if r.m.rate() > out[i].m.rate() {
			out[i] = r
		}
		out[i].rss = rss
	}
	for i := range out {
		out[i].setRatio(out)
	}
	return out
}

// memoryRows compares the peak RSS of the pipeline runs at the smallest
// and the largest size.
func memoryRows(rows []row, sizes []int) []row {
	if len(sizes) < 2 {
		return nil
	}
	lo, hi := sizes[0], sizes[len(sizes)-1]
	var out []row
	for _, a := range rows {
		if a.memLabel == "" || a.n != lo {
			continue
		}
		for _, z := range rows {
			if z.Scenario == a.Scenario && z.n == hi {
				out = append(out, row{Scenario: "memory: klaviyo-etl → " + a.memLabel, mem: true,
					memLo: lo, memHi: hi, rssLo: a.rss, rss: z.rss})
			}
		}
	}
	return out
}

// Memory targets: peak RSS at the largest size.
const (
	maxRSS      = 200e6
	maxRSSDrift = 0.10
)

func (m measurement) rate() float64 {
	if m.Seconds <= 0 {
		return 0
	}
	return float64(m.Rows) / m.Seconds
}

func (m measurement) mbps() float64 {
	if m.Seconds <= 0 {
		return 0
	}
	return float64(m.JSONBytes) / 1e6 / m.Seconds
}

func (m measurement) allocs() (float64, bool) {
	if !m.AllocsValid || m.Rows == 0 {
		return 0, false
	}
	return float64(m.Mallocs) / float64(m.Rows), true
}

// met reports whether the row has a target and meets it.
func (r row) met() (has, ok bool) {
	switch {
	case r.mem:
		return true, r.rss <= maxRSS && float64(r.rss) <= float64(r.rssLo)*(1+maxRSSDrift)
	case r.budget:
		if r.want == 0 {
			return false, false
		}
		return true, r.m.SteadyShare >= r.want && r.m.RateLimited == 0
	case r.want > 0 && r.ratioTo != "":
		return true, r.ratio >= r.want
	}
	return false, false
}

func yesNo(ok bool) string {
	if ok {
		return "yes"
	}
	return "**no**"
}

// target describes the row's target.
func (r row) target() string {
	switch {
	case r.mem:
		return fmt.Sprintf("≤ %.0f MB and ≤ +%.0f%%", maxRSS/1e6, maxRSSDrift*100)
	case r.budget:
		if r.want == 0 {
			return ""
		}
		return fmt.Sprintf("≥ %.0f%% and no 429", r.want*100)
	case r.want >= 1:
		return fmt.Sprintf("≥ %.0f× %s", r.want, r.ratioTo)
	case r.want > 0:
		return fmt.Sprintf("≥ %.0f%% of %s", r.want*100, r.ratioTo)
	}
	return ""
}

// ratioText is the ratio column.
func (r row) ratioText() string {
	switch {
	case r.mem:
		drift := float64(r.rss-r.rssLo) * 100 / float64(r.rssLo)
		s := sideOf(drift, func(v float64) bool { return v <= maxRSSDrift*100 }, 1) + "%"
		if drift >= 0 {
			s = "+" + s
		}
		return s
	case r.budget:
		return fmt.Sprintf("%.1f%% of the steady budget, %d × 429", r.m.SteadyShare*100, r.m.RateLimited)
	case r.ratioTo == "":
		return ""
	case r.ratio >= 1.5:
		return fmt.Sprintf("%.2f× %s", r.ratio, r.ratioTo)
	case r.want > 0 && math.Abs(r.ratio-r.want) < 0.005:
		// Rounded to a whole percent it would read as the target itself.
		return sideOf(r.ratio*100, func(v float64) bool { return v >= r.want*100 }, 1) + "% of " + r.ratioTo
	default:
		return fmt.Sprintf("%.0f%% of %s", r.ratio*100, r.ratioTo)
	}
}

// sideOf formats v with prec decimals, or more when fewer would round it
// onto the other side of its target, met saying which side v is on: 89.95
// against "≥ 90" reads "89.95", never "90.0".
func sideOf(v float64, met func(float64) bool, prec int) string {
	for ; ; prec++ {
		s := strconv.FormatFloat(v, 'f', prec, 64)
		if r, _ := strconv.ParseFloat(s, 64); met(r) == met(v) || prec >= 6 {
			return s
		}
	}
}

func mb(b int64) string { return fmt.Sprintf("%.0f MB", float64(b)/1e6) }

// line is the row as one line of text.
func (r row) line() string {
	var b strings.Builder
	if r.mem {
		fmt.Fprintf(&b, "%-40s peak RSS %s at %d profiles, %s at %d (%s)", r.Scenario, mb(r.rssLo), r.memLo, mb(r.rss), r.memHi, r.ratioText())
	} else {
		fmt.Fprintf(&b, "%-40s %8d profiles %7.2fs %8.0f profiles/s %6.1f MB/s", r.Scenario, r.m.Rows, r.m.Seconds, r.m.rate(), r.m.mbps())
		if a, ok := r.m.allocs(); ok {
			fmt.Fprintf(&b, " %6.1f allocs/profile", a)
		}
		fmt.Fprintf(&b, " peak RSS %s", mb(r.rss))
		if r.budget {
			fmt.Fprintf(&b, "; %d requests, at most %d in flight; %s over %.0fs", r.m.Requests, r.m.InFlightMax, r.ratioText(), r.m.SpanSeconds)
		} else if t := r.ratioText(); t != "" {
			fmt.Fprintf(&b, "; %s", t)
		}
		if r.m.OutBytes > 0 {
			fmt.Fprintf(&b, "; Parquet %s", mb(r.m.OutBytes))
		}
		if r.m.Busy > 0 && !r.budget {
			// Where the time went: the runner's share of the wall time
			// (it waits for the transformers and the sink at checkpoints),
			// and the sink's Write (beside the transform) and Commit.
			fmt.Fprintf(&b, "; runner busy %.0f%%, sink write %.1fs, commit %.1fs",
				100*r.m.Busy/r.m.Seconds, r.m.SinkWrite, r.m.SinkCommit)
		}
	}
	if has, ok := r.met(); has {
		fmt.Fprintf(&b, "; target %s: %s", r.target(), strings.Trim(yesNo(ok), "*"))
	}
	return b.String()
}

// cells is the row in the table's columns.
func (r row) cells() []string {
	target := ""
	if has, ok := r.met(); has {
		target = r.target() + ": " + yesNo(ok)
	}
	if r.mem {
		return []string{r.Scenario, fmt.Sprintf("%s → %s", thousands(int64(r.memLo)), thousands(int64(r.memHi))), "", "", "",
			fmt.Sprintf("%s → %s", mb(r.rssLo), mb(r.rss)), r.ratioText(), target}
	}
	allocs := "n/a"
	if a, ok := r.m.allocs(); ok {
		allocs = fmt.Sprintf("%.1f", a)
	}
	return []string{r.Scenario, thousands(r.m.Rows), thousands(int64(r.m.rate() + 0.5)), fmt.Sprintf("%.1f", r.m.mbps()),
		allocs, mb(r.rss), r.ratioText(), target}
}

func thousands(n int64) string {
	s := fmt.Sprint(n)
	var out []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 && s[i-1] != '-' {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	return string(out)
}

// machine describes where the figures were measured.
type machine struct {
	cpus     int
	model    string
	goVer    string
	load     string
	postgres string
}

func readMachine() machine {
	m := machine{cpus: runtime.NumCPU(), goVer: runtime.Version(), model: "unknown CPU"}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.model = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) >= 3 {
			m.load = strings.Join(f[:3], " ")
		}
	}
	return m
}

func (m machine) summary() string {
	s := fmt.Sprintf("%d CPUs (%s), %s %s/%s", m.cpus, m.model, m.goVer, runtime.GOOS, runtime.GOARCH)
	if m.load != "" {
		s += ", load average " + m.load
	}
	return s
}

// Markers of the generated section of docs/performance.md.
const (
	docBegin = "<!-- klaviyo-bench:begin (generated by klaviyo-bench -write-doc; edit outside the markers) -->"
	docEnd   = "<!-- klaviyo-bench:end -->"
)

// docSection is the generated part of docs/performance.md.
func (b *bench) docSection(table []row) string {
	var s strings.Builder
	s.WriteString(docBegin + "\n")
	fmt.Fprintf(&s, "Measured %s on %d CPUs (%s), %s, %s/%s", b.started.UTC().Format("2006-01-02 15:04 MST"),
		b.machine.cpus, b.machine.model, b.machine.goVer, runtime.GOOS, runtime.GOARCH)
	if b.machine.postgres != "" {
		fmt.Fprintf(&s, ", %s", b.machine.postgres)
	}
	if b.machine.load != "" {
		fmt.Fprintf(&s, "; load average %s when the run started", b.machine.load)
	}
	s.WriteString(".")
	if b.o.repeat > 1 {
		fmt.Fprintf(&s, " Throughput rows are the best of %d runs, with the highest peak RSS of the %d.", b.o.repeat, b.o.repeat)
	}
	if hasDuckDB && (b.leanFailed || !b.o.lean) {
		s.WriteString(" Every process linked DuckDB, which adds ~28 MB to each peak RSS.")
	}
	s.WriteString("\n\n```sh\n" + b.command() + "\n```\n\n")
	s.WriteString("| scenario | profiles | profiles/s | MB/s of JSON | allocs/profile | peak RSS | ratio to ceiling | target met? |\n")
	s.WriteString("|---|--:|--:|--:|--:|--:|---|---|\n")
	for _, r := range table {
		cells := r.cells()
		for i := range cells {
			cells[i] = strings.ReplaceAll(cells[i], "|", `\|`)
		}
		s.WriteString("| " + strings.Join(cells, " | ") + " |\n")
	}
	s.WriteString(docEnd + "\n")
	return s.String()
}

// command is how to reproduce the run, with a database URL (which may
// hold a password) left out.
func (b *bench) command() string {
	parts := []string{"go", "run", "./cmd/klaviyo-bench"}
	args := b.o.args
	for i := 0; i < len(args); i++ {
		a := args[i]
		name := strings.TrimLeft(a, "-")
		switch {
		case name == "database-url":
			parts = append(parts, a, "'postgres://…'")
			i++
			continue
		case strings.HasPrefix(name, "database-url="):
			parts = append(parts, "-database-url='postgres://…'")
			continue
		}
		if strings.ContainsAny(a, " '\"$") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		parts = append(parts, a)
	}
	return strings.Join(parts, " ")
}

// writeDoc replaces the marked section of the Markdown file at path,
// appends it when the file has no markers, or creates the file.
func writeDoc(path, section string) error {
	old, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return os.WriteFile(path, []byte("# Performance\n\n"+section), 0o644)
	}
	if err != nil {
		return fmt.Errorf("-write-doc: %w", err)
	}
	out, err := replaceSection(old, section)
	if err != nil {
		return fmt.Errorf("-write-doc %s: %w", path, err)
	}
	tmp := path + ".tmp-" + fmt.Sprint(time.Now().UnixNano())
	if err := os.WriteFile(tmp, out, 0o644); err != nil {
		return fmt.Errorf("-write-doc: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("-write-doc: %w", err)
	}
	return nil
}

// replaceSection puts section in place of the one between the markers
// (markers included), or appends it when there is none.
func replaceSection(doc []byte, section string) ([]byte, error) {
	beginLine := []byte("<!-- klaviyo-bench:begin")
	i := bytes.Index(doc, beginLine)
	j := bytes.Index(doc, []byte(docEnd))
	switch {
	case i < 0 && j < 0:
		out := bytes.TrimRight(doc, "\n")
		return append(append(out, "\n\n"...), section...), nil
	case i < 0 || j < 0 || j < i:
		return nil, errors.New("the klaviyo-bench markers are unbalanced; fix them by hand")
	}
	if bytes.Count(doc, beginLine) > 1 || bytes.Count(doc, []byte(docEnd)) > 1 {
		return nil, errors.New("more than one klaviyo-bench section")
	}
	end := j + len(docEnd)
	if end < len(doc) && doc[end] == '\n' {
		end++
	}
	out := append([]byte{}, doc[:i]...)
	out = append(out, section...)
	return append(out, doc[end:]...), nil
}
