package extract

import (
	"context"
	"math/rand/v2"
	"sort"
	"sync"
	"testing"
	"time"
)

// fakeClock advances only when someone sleeps on it.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (f *fakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.t
}

func (f *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	f.advanceTo(f.Now().Add(d))
	return ctx.Err()
}

func (f *fakeClock) advanceTo(t time.Time) {
	f.mu.Lock()
	if t.After(f.t) {
		f.t = t
	}
	f.mu.Unlock()
}

// admitNow waits for admission and writes the request at once.
func admitNow(l *limiter, ctx context.Context) (time.Time, error) {
	at, seq, err := l.wait(ctx)
	if err == nil {
		l.wrote(seq, at)
	}
	return at, err
}

// maxInWindow returns the most admissions in any half-open interval of
// length per.
func maxInWindow(times []time.Time, per time.Duration) int {
	ts := append([]time.Time(nil), times...)
	sort.Slice(ts, func(i, j int) bool { return ts[i].Before(ts[j]) })
	best, j := 0, 0
	for i := range ts {
		for ts[i].Sub(ts[j]) >= per {
			j++
		}
		best = max(best, i-j+1)
	}
	return best
}

func TestLimiterNeverExceedsEitherWindow(t *testing.T) {
	tests := []struct {
		name          string
		burst, steady Rate
		share         float64
		gap           time.Duration // mean gap between demands
		n             int
	}{
		{"klaviyo default, flood", Rate{75, time.Second}, Rate{750, time.Minute}, 1, 0, 3000},
		{"klaviyo default, random", Rate{75, time.Second}, Rate{750, time.Minute}, 1, 50 * time.Millisecond, 3000},
		{"predictive", Rate{10, time.Second}, Rate{150, time.Minute}, 1, 10 * time.Millisecond, 1000},
		{"bench scale", Rate{50, time.Second}, Rate{300, 10 * time.Second}, 1, 20 * time.Millisecond, 2000},
		{"half share", Rate{75, time.Second}, Rate{750, time.Minute}, 0.5, 5 * time.Millisecond, 2000},
		{"tiny", Rate{1, time.Second}, Rate{3, 10 * time.Second}, 1, 300 * time.Millisecond, 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newFakeClock()
			b, s := tt.burst.scale(tt.share), tt.steady.scale(tt.share)
			l := newLimiter(b, s, tt.share, clk)
			rng := rand.New(rand.NewPCG(1, 2))
			demand := clk.Now()
			var admitted []time.Time
			for i := 0; i < tt.n; i++ {
				if tt.gap > 0 {
					demand = demand.Add(time.Duration(rng.ExpFloat64() * float64(tt.gap)))
				}
				clk.advanceTo(demand)
				at, err := admitNow(l, context.Background())
				if err != nil {
					t.Fatal(err)
				}
				if at.Before(demand) {
					t.Fatalf("admitted at %v before demand %v", at, demand)
				}
				admitted = append(admitted, at)
			}
			if got := maxInWindow(admitted, b.Per); got > b.N {
				t.Errorf("burst window: %d requests in %v, limit %d", got, b.Per, b.N)
			}
			if got := maxInWindow(admitted, s.Per); got > s.N {
				t.Errorf("steady window: %d requests in %v, limit %d", got, s.Per, s.N)
			}
			// A flood must get (nearly) the whole steady budget: the margin
			// is the only loss.
			if tt.gap == 0 {
				span := admitted[len(admitted)-1].Sub(admitted[0])
				rate := float64(len(admitted)-1) / span.Seconds()
				if want := s.perSecond() * 0.95; rate < want {
					t.Errorf("flood admitted %.2f/s, want at least %.2f/s", rate, want)
				}
			}
		})
	}
}

func TestLimiterConcurrentWaiters(t *testing.T) {
	clk := newFakeClock()
	b, s := Rate{5, time.Second}, Rate{20, 10 * time.Second}
	l := newLimiter(b, s, 1, clk)
	var mu sync.Mutex
	var admitted []time.Time
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 25; i++ {
				at, err := admitNow(l, context.Background())
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				admitted = append(admitted, at)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if got := maxInWindow(admitted, b.Per); got > b.N {
		t.Errorf("burst window: %d in %v, limit %d", got, b.Per, b.N)
	}
	if got := maxInWindow(admitted, s.Per); got > s.N {
		t.Errorf("steady window: %d in %v, limit %d", got, s.Per, s.N)
	}
}

func TestLimiterPause(t *testing.T) {
	clk := newFakeClock()
	l := newLimiter(Rate{75, time.Second}, Rate{750, time.Minute}, 1, clk)
	start := clk.Now()
	if _, err := admitNow(l, context.Background()); err != nil {
		t.Fatal(err)
	}
	l.pause(start.Add(3 * time.Second))
	l.pause(start.Add(2 * time.Second)) // an earlier end never shortens a pause
	at, err := admitNow(l, context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if want := start.Add(3 * time.Second); !at.Equal(want) {
		t.Errorf("admitted at +%v, want +3s", at.Sub(start))
	}
}

func TestLimiterCancelled(t *testing.T) {
	clk := newFakeClock()
	l := newLimiter(Rate{1, time.Second}, Rate{1, time.Minute}, 1, clk)
	if _, err := admitNow(l, context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := admitNow(l, ctx); err == nil {
		t.Fatal("wait on a cancelled context succeeded")
	}
}

func TestLimiterObserve(t *testing.T) {
	tests := []struct {
		name                   string
		ours                   int // requests we sent in the last seconds
		limit, remaining       int
		reset                  time.Duration
		wantContended          bool
		wantMaxUntilReset      int // admissions allowed before reset (if contended)
		wantSteadyAfterResized int
	}{
		{name: "alone", ours: 100, limit: 750, remaining: 650, reset: 30 * time.Second},
		{name: "someone else spends 400", ours: 100, limit: 750, remaining: 250, reset: 30 * time.Second,
			wantContended: true, wantMaxUntilReset: 250},
		{name: "budget gone", ours: 10, limit: 750, remaining: 0, reset: 5 * time.Second,
			wantContended: true, wantMaxUntilReset: 0},
		{name: "server limit lower", ours: 10, limit: 100, remaining: 90, reset: 30 * time.Second, wantSteadyAfterResized: 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newFakeClock()
			l := newLimiter(Rate{750, time.Second}, Rate{750, time.Minute}, 1, clk)
			var last time.Time
			for i := 0; i < tt.ours; i++ {
				clk.advanceTo(clk.Now().Add(10 * time.Millisecond))
				last, _ = admitNow(l, context.Background())
			}
			clk.advanceTo(clk.Now().Add(200 * time.Millisecond))
			now := clk.Now()
			l.observe(now, last, tt.limit, tt.remaining, tt.reset)
			if tt.wantSteadyAfterResized > 0 && l.steady.rate.N != tt.wantSteadyAfterResized {
				t.Errorf("steady limit %d, want %d", l.steady.rate.N, tt.wantSteadyAfterResized)
			}
			if got := l.contended > 0; got != tt.wantContended {
				t.Fatalf("contended = %v, want %v", got, tt.wantContended)
			}
			if !tt.wantContended {
				return
			}
			n := 0
			reset := now.Add(tt.reset)
			for {
				at, _ := admitNow(l, context.Background())
				if !at.Before(reset) {
					break
				}
				n++
			}
			if n > tt.wantMaxUntilReset {
				t.Errorf("%d admissions before reset, server had %d left", n, tt.wantMaxUntilReset)
			}
			if tt.wantMaxUntilReset > 10 && n < tt.wantMaxUntilReset*9/10 {
				t.Errorf("%d admissions before reset: pacing wasted the %d left", n, tt.wantMaxUntilReset)
			}
		})
	}
}

func TestLimiterCountsLateWrites(t *testing.T) {
	// Some requests wait for a new connection before they go out. The server
	// counts them when they arrive: windows measured on write times must hold
	// too, and a request that is never written must not hold its slot.
	clk := newFakeClock()
	b, s := Rate{10, time.Second}, Rate{40, 5 * time.Second}
	l := newLimiter(b, s, 1, clk)
	rng := rand.New(rand.NewPCG(3, 4))
	type write struct {
		seq uint64
		at  time.Time
	}
	var pending []write
	var written []time.Time
	flush := func(upTo time.Time) {
		keep := pending[:0]
		for _, w := range pending {
			if w.at.After(upTo) {
				keep = append(keep, w)
				continue
			}
			l.wrote(w.seq, w.at)
			written = append(written, w.at)
		}
		pending = keep
	}
	for i := 0; i < 600; i++ {
		for {
			flush(clk.Now())
			at, seq, ok := l.tryAdmit()
			if ok {
				delay := time.Duration(rng.IntN(5)) * time.Millisecond
				if rng.IntN(4) == 0 {
					delay = time.Duration(200+rng.IntN(600)) * time.Millisecond // a dial
				}
				if rng.IntN(50) == 0 {
					l.wrote(seq, at.Add(time.Millisecond)) // failed before writing: settled
					break
				}
				pending = append(pending, write{seq, at.Add(delay)})
				break
			}
			next := at
			for _, w := range pending {
				if w.at.Before(next) {
					next = w.at
				}
			}
			clk.advanceTo(next)
		}
	}
	clk.advanceTo(clk.Now().Add(time.Hour))
	flush(clk.Now())
	if got := maxInWindow(written, b.Per); got > b.N {
		t.Errorf("burst window on write times: %d in %v, limit %d", got, b.Per, b.N)
	}
	if got := maxInWindow(written, s.Per); got > s.N {
		t.Errorf("steady window on write times: %d in %v, limit %d", got, s.Per, s.N)
	}
	if l.burst.pending != 0 || l.steady.pending != 0 {
		t.Errorf("pending %d/%d after every request settled", l.burst.pending, l.steady.pending)
	}
}

// earliestByWalk is window.earliest without its shortcuts.
func earliestByWalk(w *window, now time.Time) time.Time {
	if w.pending >= w.rate.N {
		return w.earliest(now) // no shortcut is taken on this branch
	}
	return w.walk()
}

// TestWindowEarliestShortcuts: the O(1) answers of earliest admit exactly
// when the full walk does, through bursts, idle gaps, late writes and
// requests never written.
func TestWindowEarliestShortcuts(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	notAfter := func(a, now time.Time) time.Time {
		if a.After(now) {
			return a
		}
		return now
	}
	for _, r := range []Rate{{1, time.Second}, {3, time.Second}, {10, time.Second}, {50, 10 * time.Second}} {
		w := newWindow(r)
		now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		var seq uint64
		var open []uint64
		shortcuts := 0
		for step := 0; step < 20000; step++ {
			switch k := rng.IntN(10); {
			case k < 4 && len(open) < r.N:
				seq++
				w.add(seq, now)
				open = append(open, seq)
			case k < 8 && len(open) > 0:
				i := rng.IntN(len(open))
				w.wrote(open[i], now.Add(time.Duration(rng.IntN(3))*time.Millisecond))
				open = append(open[:i], open[i+1:]...)
			default:
				gap := time.Duration(rng.IntN(20)) * time.Millisecond
				if rng.IntN(50) == 0 {
					gap = time.Duration(rng.Int64N(int64(3 * r.Per)))
				}
				now = now.Add(gap)
			}
			got, want := notAfter(w.earliest(now), now), notAfter(earliestByWalk(w, now), now)
			if !got.Equal(want) {
				t.Fatalf("rate %v, step %d: earliest %v, the full walk %v", r, step, got.Sub(now), want.Sub(now))
			}
			if w.earliest(now).IsZero() && !earliestByWalk(w, now).IsZero() {
				shortcuts++
			}
		}
		if shortcuts == 0 {
			t.Errorf("rate %v: no shortcut taken; the test does not exercise them", r)
		}
	}
}

// TestWindowGrowsLikeAFullRing: a window whose ring grows as requests come
// answers every question as one allocated at its full 2N from the start,
// before, during and after its growth and once it forgets the oldest.
func TestWindowGrowsLikeAFullRing(t *testing.T) {
	r := Rate{600, 10 * time.Second}
	grown := newWindow(r)
	full := newWindow(r)
	full.ring = make([]stamp, 2*r.N)
	if len(grown.ring) >= 2*r.N {
		t.Fatalf("ring starts at %d entries; the test needs it to grow", len(grown.ring))
	}
	rng := rand.New(rand.NewPCG(11, 11))
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var seq uint64
	var open []uint64
	for step := 0; step < 6*r.N; step++ {
		switch k := rng.IntN(10); {
		case k < 5 && len(open) < r.N/2:
			seq++
			grown.add(seq, now)
			full.add(seq, now)
			open = append(open, seq)
		case k < 9 && len(open) > 0:
			i := rng.IntN(len(open))
			at := now.Add(time.Duration(rng.IntN(300)) * time.Millisecond)
			grown.wrote(open[i], at)
			full.wrote(open[i], at)
			open = append(open[:i], open[i+1:]...)
		default:
			now = now.Add(time.Duration(rng.IntN(40)) * time.Millisecond)
		}
		if g, f := grown.earliest(now), full.earliest(now); !g.Equal(f) {
			t.Fatalf("step %d (ring %d): earliest %v, full ring %v", step, len(grown.ring), g, f)
		}
		from := now.Add(-time.Duration(rng.Int64N(int64(2 * r.Per))))
		if g, f := grown.count(from, now), full.count(from, now); g != f {
			t.Fatalf("step %d (ring %d): count %d, full ring %d", step, len(grown.ring), g, f)
		}
	}
	if len(grown.ring) != 2*r.N || grown.n != full.n {
		t.Errorf("ring of %d holding %d after %d requests; want %d holding %d", len(grown.ring), grown.n, seq, 2*r.N, full.n)
	}
}
