package main

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/klaviyo-etl/klaviyo-etl/pipeline"
)

func showProgress(mode string, w io.Writer) bool {
	switch mode {
	case "always":
		return true
	case "never":
		return false
	default:
		return isTerminal(w)
	}
}

// progressLine redraws one status line in place on a terminal.
type progressLine struct {
	mu sync.Mutex
	w  io.Writer
	// steady is the steady budget in requests per second, to show budget use.
	steady float64
}

func newProgressLine(w io.Writer, steadyPerSecond float64) *progressLine {
	return &progressLine{w: w, steady: steadyPerSecond}
}

func (p *progressLine) update(pr pipeline.Progress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	rate := 0.0
	if s := pr.Elapsed.Seconds(); s > 0 {
		rate = float64(pr.Profiles) / s
	}
	eta := "–"
	if pr.ETA > 0 {
		eta = pr.ETA.Round(time.Second).String()
	}
	budget := 0.0
	if p.steady > 0 {
		budget = 100 * pr.RequestsPerSecond / p.steady
	}
	fmt.Fprintf(p.w, "\r\033[K%5.1f%% of window  %d pages  %d profiles  %.0f/s  budget %3.0f%% (%.1f req/s)  429s %d  retries %d  ETA %s",
		pr.Fraction*100, pr.Pages, pr.Profiles, rate, budget, pr.RequestsPerSecond, pr.RateLimited, pr.Retries, eta)
	if pr.Done {
		fmt.Fprintln(p.w)
	}
}
