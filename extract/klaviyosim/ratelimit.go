package klaviyosim

import (
	"sync"
	"time"
)

// Limit is N requests per window Per, e.g. {75, time.Second}.
type Limit struct {
	N   int
	Per time.Duration
}

func (l Limit) valid() bool { return l.N >= 0 && l.Per >= 0 && (l.N == 0) == (l.Per == 0) }

// Default budgets for Get Profiles (API-NOTES §7, revision 2026-07-15).
var (
	DefaultBurst            = Limit{75, time.Second}
	DefaultSteady           = Limit{750, time.Minute}
	DefaultPredictiveBurst  = Limit{10, time.Second}
	DefaultPredictiveSteady = Limit{150, time.Minute}
)

// window is a sliding-window log of admission times. Sliding windows are
// stricter than Klaviyo's fixed ones, so a client that passes here passes
// there too.
type window struct {
	limit Limit
	times []time.Time // admissions within the window, oldest first
	head  int
}

func (w *window) prune(now time.Time) {
	cut := now.Add(-w.limit.Per)
	for w.head < len(w.times) && !w.times[w.head].After(cut) {
		w.head++
	}
	if w.head > 1024 && w.head > len(w.times)/2 {
		w.times = append(w.times[:0], w.times[w.head:]...)
		w.head = 0
	}
}

func (w *window) count() int { return len(w.times) - w.head }

// wait is how long until one more request fits.
func (w *window) wait(now time.Time) time.Duration {
	if w.limit.N == 0 || w.count() < w.limit.N {
		return 0
	}
	oldest := w.times[len(w.times)-w.limit.N]
	return oldest.Add(w.limit.Per).Sub(now)
}

// quota is one budget: a burst and a steady window.
type quota struct{ burst, steady window }

func (q *quota) prune(now time.Time) {
	q.burst.prune(now)
	q.steady.prune(now)
}

func (q *quota) wait(now time.Time) time.Duration {
	return max(q.burst.wait(now), q.steady.wait(now))
}

func (q *quota) admit(now time.Time) {
	q.burst.times = append(q.burst.times, now)
	q.steady.times = append(q.steady.times, now)
}

// limiter holds the account's quotas. Every valid key of the account
// shares them (API-NOTES §7). Requests asking for predictive_analytics
// count against both the normal and the predictive quota.
type limiter struct {
	mu         sync.Mutex
	unlimited  bool
	normal     quota
	predictive quota
	own        quota // admissions of this API's clients only, for MaxBurst/MaxSteady
	maxBurst   int
	maxSteady  int
	limited    int64
}

func newLimiter(cfg *Config) *limiter {
	l := &limiter{unlimited: cfg.Unlimited}
	l.set(cfg.Burst, cfg.Steady, cfg.PredictiveBurst, cfg.PredictiveSteady)
	return l
}

func (l *limiter) set(burst, steady, pburst, psteady Limit) {
	l.normal.burst.limit = orDefault(burst, DefaultBurst)
	l.normal.steady.limit = orDefault(steady, DefaultSteady)
	l.predictive.burst.limit = orDefault(pburst, DefaultPredictiveBurst)
	l.predictive.steady.limit = orDefault(psteady, DefaultPredictiveSteady)
	l.own.burst.limit, l.own.steady.limit = l.normal.burst.limit, l.normal.steady.limit
}

func orDefault(l, d Limit) Limit {
	if l.N == 0 && l.Per == 0 {
		return d
	}
	return l
}

// rateHeaders are the RateLimit-* values of an admitted request.
type rateHeaders struct {
	limit, remaining, reset int
}

// admit decides on one request. If refused, retryAfter is in whole seconds.
func (l *limiter) admit(now time.Time, predictive bool) (ok bool, retryAfter int, h rateHeaders) {
	if l.unlimited {
		return true, 0, rateHeaders{}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.normal.prune(now)
	l.predictive.prune(now)
	l.own.prune(now)
	wait := l.normal.wait(now)
	if predictive {
		wait = max(wait, l.predictive.wait(now))
	}
	if wait > 0 {
		l.limited++
		return false, ceilSeconds(wait), rateHeaders{}
	}
	l.normal.admit(now)
	l.own.admit(now)
	l.maxBurst = max(l.maxBurst, l.own.burst.count())
	l.maxSteady = max(l.maxSteady, l.own.steady.count())
	q := &l.normal
	if predictive {
		l.predictive.admit(now)
		q = &l.predictive
	}
	s := &q.steady
	h = rateHeaders{limit: s.limit.N, remaining: s.limit.N - s.count(), reset: ceilSeconds(s.times[s.head].Add(s.limit.Per).Sub(now))}
	return true, 0, h
}

// consume records n admissions from another integration of the account.
func (l *limiter) consume(now time.Time, n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for range n {
		l.normal.admit(now)
	}
}

func ceilSeconds(d time.Duration) int {
	s := int((d + time.Second - 1) / time.Second)
	return max(s, 1)
}
