package reliability

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// figure is one row of docs/reliability.md.
type figure struct {
	Test     string  `json:"test"`    // t.Name(): what -run selects
	Case     string  `json:"case"`    // human description
	Sink     string  `json:"sink"`    // parquet, postgres or -
	Mode     string  `json:"mode"`    // short or long
	Runs     int     `json:"runs"`    // program invocations
	Outcome  string  `json:"outcome"` // what happened
	Lost     int     `json:"lost"`
	Dups     int     `json:"duplicates"`
	Retries  int64   `json:"retries"`         // HTTP retries (and sink replays where noted)
	TimeLost float64 `json:"time_lost_s"`     // seconds against a clean run, when measured
	PeakRSS  float64 `json:"peak_rss_mb"`     // max over the runs of the case
	Seconds  float64 `json:"seconds"`         // wall time of the case's runs
	Extra    string  `json:"extra,omitempty"` // anything else worth a column
	Passed   bool    `json:"passed"`
	Recorded string  `json:"recorded"`
}

var report struct {
	mu sync.Mutex
}

func reportPath() string {
	if *reportFlag != "" {
		return *reportFlag
	}
	return os.Getenv("RELIABILITY_REPORT")
}

// record logs f and, with -report, appends it to the report file. Call it
// deferred or at the end of the case, after the checks, so Passed is
// known.
func record(t testing.TB, f figure) {
	t.Helper()
	f.Test = t.Name()
	f.Mode = mode()
	f.Passed = !t.Failed()
	f.Recorded = time.Now().UTC().Format(time.RFC3339)
	b, _ := json.Marshal(f)
	t.Logf("figure: %s", b)
	path := reportPath()
	if path == "" {
		return
	}
	report.mu.Lock()
	defer report.mu.Unlock()
	fh, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Errorf("report: %v", err)
		return
	}
	defer fh.Close()
	fh.Write(append(b, '\n'))
}

// rssMB converts KiB to MiB.
func rssMB(kb int64) float64 { return float64(kb) / 1024 }

// peakRSS is the largest maxRSS of rs, in MiB.
func peakRSS(rs ...result) float64 {
	var m int64
	for _, r := range rs {
		m = max(m, r.maxRSSKB)
	}
	return rssMB(m)
}

// retriesOf sums the HTTP retries the runs reported.
func retriesOf(rs ...result) int64 {
	var n int64
	for _, r := range rs {
		if r.summary != nil {
			n += r.summary.Retries
		}
	}
	return n
}

func wallOf(rs ...result) time.Duration {
	var d time.Duration
	for _, r := range rs {
		d += r.wall
	}
	return d
}

// runCommand is how a reader reruns the case of test name.
func runCommand(name, mode string) string {
	parts := strings.Split(name, "/")
	for i, p := range parts {
		parts[i] = "^" + regexp.QuoteMeta(p) + "$"
	}
	cmd := fmt.Sprintf("go test ./reliability -run '%s' -v", strings.Join(parts, "/"))
	if mode == "long" {
		cmd = strings.Replace(cmd, "go test", "go test -timeout 3h", 1) + " -long"
	}
	return cmd
}

// renderReport renders the JSON lines at path as a Markdown table in
// path + ".md".
func renderReport(path string) error {
	fh, err := os.Open(path)
	if err != nil {
		return err
	}
	defer fh.Close()
	var figs []figure
	sc := bufio.NewScanner(fh)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var f figure
		if json.Unmarshal(sc.Bytes(), &f) == nil {
			figs = append(figs, f)
		}
	}
	sort.SliceStable(figs, func(i, j int) bool { return figs[i].Test < figs[j].Test })
	var b strings.Builder
	b.WriteString("| case | sink | runs | outcome | lost | dup | retries | time lost | peak RSS | command |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|\n")
	for _, f := range figs {
		outcome := f.Outcome
		if !f.Passed {
			outcome = "**FAILED**: " + outcome
		}
		if f.Extra != "" {
			outcome += "; " + f.Extra
		}
		lost := "—"
		switch {
		case f.TimeLost >= 0.5:
			lost = fmt.Sprintf("%.1f s", f.TimeLost)
		case f.TimeLost != 0:
			lost = "< 0.5 s" // within the noise of the clean run
		}
		fmt.Fprintf(&b, "| %s | %s | %d | %s | %d | %d | %d | %s | %.0f MB | `%s` |\n",
			f.Case, f.Sink, f.Runs, strings.ReplaceAll(outcome, "|", "\\|"), f.Lost, f.Dups, f.Retries, lost, f.PeakRSS,
			runCommand(f.Test, f.Mode))
	}
	return os.WriteFile(path+".md", []byte(b.String()), 0o644)
}
