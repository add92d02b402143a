package pipeline

import (
	"time"

	"github.com/klaviyo-etl/klaviyo-etl/load"
)

// Summary is what a run reports when it ends: the command prints it as one
// JSON line and the metrics are derived from it.
type Summary struct {
	RunID       string        `json:"run_id"`
	Status      string        `json:"status"`
	Resumed     bool          `json:"resumed"`
	CursorField string        `json:"cursor_field"`
	FullRefresh bool          `json:"full_refresh,omitempty"`
	WindowStart time.Time     `json:"window_start"`
	WindowEnd   time.Time     `json:"window_end"`
	Duration    time.Duration `json:"-"`
	Seconds     float64       `json:"duration_seconds"`
	// Lag is how far the committed window end trails the end of the run.
	LagSeconds float64 `json:"lag_seconds"`
	load.Stats
	ProfilesPerSecond float64 `json:"profiles_per_second"`
	Error             string  `json:"error,omitempty"`
}

func (r *runner) summary() Summary {
	if r.run == nil {
		return Summary{}
	}
	now := r.cfg.Now()
	s := Summary{
		RunID:       r.run.ID,
		Status:      r.run.Status,
		Resumed:     r.resumed,
		CursorField: r.run.CursorField,
		FullRefresh: r.run.FullRefresh,
		WindowStart: r.run.Start,
		WindowEnd:   r.run.End,
		Duration:    now.Sub(r.started),
		Stats:       r.run.Stats,
		Error:       r.run.Error,
	}
	s.Seconds = s.Duration.Seconds()
	s.LagSeconds = now.Sub(r.run.End).Seconds()
	if s.Seconds > 0 {
		// This attempt's rate: committed stats of earlier attempts excluded.
		s.ProfilesPerSecond = float64(s.Profiles-r.base.Profiles) / s.Seconds
	}
	return s
}

// Progress is a live view of a run for a progress line.
type Progress struct {
	Elapsed     time.Duration
	Pages       int64
	Profiles    int64
	Requests    int64
	RateLimited int64
	Retries     int64
	// Fraction is how far through the window in time the run is (0..1),
	// summed over slices.
	Fraction float64
	// ETA extrapolates Fraction; zero when unknown.
	ETA time.Duration
	// RequestsPerSecond over the last interval, for budget use.
	RequestsPerSecond float64
	Done              bool
}

// startProgress runs the reporter until the returned func is called.
func (r *runner) startProgress() (stop func()) {
	if r.cfg.Progress == nil {
		return func() {}
	}
	quit := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(r.cfg.ProgressInterval)
		defer t.Stop()
		var lastReq int64
		lastAt := r.cfg.Now()
		for {
			select {
			case <-quit:
				p := r.progress(&lastReq, &lastAt)
				p.Done = true
				r.cfg.Progress(p)
				return
			case <-t.C:
				r.cfg.Progress(r.progress(&lastReq, &lastAt))
			}
		}
	}()
	return func() { close(quit); <-finished }
}

func (r *runner) progress(lastReq *int64, lastAt *time.Time) Progress {
	es := r.walker.Stats()
	now := r.cfg.Now()
	r.mu.Lock()
	slices := r.slices
	r.mu.Unlock()
	p := Progress{
		Elapsed:     now.Sub(r.started),
		Pages:       es.Pages,
		Requests:    es.Requests,
		RateLimited: es.RateLimited,
		Retries:     es.Retries,
	}
	p.Profiles = es.Records
	var total, done time.Duration
	for _, s := range slices {
		total += s.End.Sub(s.Start)
		d := s.Done.Sub(s.Start)
		if d > s.End.Sub(s.Start) {
			d = s.End.Sub(s.Start)
		}
		if d > 0 {
			done += d
		}
	}
	if total > 0 {
		p.Fraction = float64(done) / float64(total)
	}
	if p.Fraction > 0.001 && p.Fraction < 1 {
		p.ETA = time.Duration(float64(p.Elapsed) * (1 - p.Fraction) / p.Fraction)
	}
	if dt := now.Sub(*lastAt).Seconds(); dt > 0 {
		p.RequestsPerSecond = float64(es.Requests-*lastReq) / dt
	}
	*lastReq, *lastAt = es.Requests, now
	return p
}
