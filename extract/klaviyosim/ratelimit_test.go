package klaviyosim

import (
	"strconv"
	"testing"
	"time"
)

func TestRateLimitTightLoop(t *testing.T) {
	s := newSim(t, Config{Profiles: 10, Seed: 1, Burst: Limit{5, time.Minute}, Steady: Limit{100, time.Hour}})
	var statuses []int
	for i := range 8 {
		r := do(t, s, call{query: q("page[size]", "1")})
		statuses = append(statuses, r.status)
		switch {
		case i < 5:
			if r.status != 200 {
				t.Fatalf("request %d: status %d", i, r.status)
			}
			if r.header.Get("RateLimit-Limit") != "100" || r.header.Get("RateLimit-Remaining") != strconv.Itoa(99-i) {
				t.Fatalf("request %d: RateLimit-Limit %q Remaining %q", i, r.header.Get("RateLimit-Limit"), r.header.Get("RateLimit-Remaining"))
			}
			if reset, err := strconv.Atoi(r.header.Get("RateLimit-Reset")); err != nil || reset < 1 || reset > 3600 {
				t.Fatalf("RateLimit-Reset %q", r.header.Get("RateLimit-Reset"))
			}
		default:
			if r.status != 429 {
				t.Fatalf("request %d: status %d, want 429", i, r.status)
			}
			ra, err := strconv.Atoi(r.header.Get("Retry-After"))
			if err != nil || ra < 1 || ra > 60 {
				t.Fatalf("Retry-After %q", r.header.Get("Retry-After"))
			}
			if r.header.Get("RateLimit-Limit") != "" || r.header.Get("RateLimit-Remaining") != "" {
				t.Fatal("429 carries RateLimit headers")
			}
			if e := decodeError(t, r).Errors[0]; e.Code != "throttled" {
				t.Fatalf("code %q", e.Code)
			}
		}
	}
	c := s.Counters()
	if c.MaxBurst != 5 || c.MaxSteady != 5 || c.RateLimited != 3 || c.ByStatus[429] != 3 || c.ByStatus[200] != 5 {
		t.Fatalf("counters %+v", c)
	}
	// Raising the limit admits requests again.
	s.SetRateLimits(Limit{10, time.Minute}, Limit{100, time.Hour})
	if r := do(t, s, call{}); r.status != 200 {
		t.Fatalf("after SetRateLimits: %d", r.status)
	}
}

func TestPredictiveBudget(t *testing.T) {
	s := newSim(t, Config{Profiles: 10, Seed: 1, Burst: Limit{20, time.Minute}, Steady: Limit{100, time.Hour},
		PredictiveBurst: Limit{2, time.Minute}, PredictiveSteady: Limit{30, time.Hour}})
	pa := q("additional-fields[profile]", "predictive_analytics")
	for i := range 2 {
		r := do(t, s, call{query: pa})
		if r.status != 200 || r.header.Get("RateLimit-Limit") != "30" {
			t.Fatalf("predictive request %d: %d, limit %q", i, r.status, r.header.Get("RateLimit-Limit"))
		}
	}
	if r := do(t, s, call{query: pa}); r.status != 429 {
		t.Fatalf("third predictive request: %d, want 429", r.status)
	}
	r := do(t, s, call{})
	if r.status != 200 || r.header.Get("RateLimit-Limit") != "100" || r.header.Get("RateLimit-Remaining") != "97" {
		t.Fatalf("normal request after predictive ones: %d %v", r.status, r.header)
	}
}

func TestConsumeBudgetShowsInRemaining(t *testing.T) {
	s := newSim(t, Config{Profiles: 10, Seed: 1, Burst: Limit{50, time.Minute}, Steady: Limit{100, time.Hour}})
	s.ConsumeBudget(40)
	r := do(t, s, call{})
	if r.header.Get("RateLimit-Remaining") != "59" {
		t.Fatalf("Remaining %q after another integration used 40", r.header.Get("RateLimit-Remaining"))
	}
	if c := s.Counters(); c.MaxBurst != 1 {
		t.Fatalf("MaxBurst %d counts the other integration", c.MaxBurst)
	}
	s.ConsumeBudget(9)
	if r := do(t, s, call{}); r.status != 429 {
		t.Fatalf("status %d with the burst used up by another integration", r.status)
	}
}

func TestUnlimitedHasNoHeaders(t *testing.T) {
	s := newSim(t, Config{Profiles: 10, Seed: 1, Unlimited: true})
	for range 200 {
		r := do(t, s, call{query: q("page[size]", "1")})
		if r.status != 200 || r.header.Get("RateLimit-Limit") != "" {
			t.Fatalf("unlimited: %d %v", r.status, r.header)
		}
	}
}

func TestWindowSlides(t *testing.T) {
	// Unit test of the window arithmetic on a synthetic clock.
	l := newLimiter(&Config{Burst: Limit{3, time.Second}, Steady: Limit{10, time.Minute}})
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 3 {
		if ok, _, _ := l.admit(t0.Add(time.Duration(i)*100*time.Millisecond), false); !ok {
			t.Fatalf("request %d refused", i)
		}
	}
	ok, retry, _ := l.admit(t0.Add(900*time.Millisecond), false)
	if ok || retry != 1 {
		t.Fatalf("4th in the same second: ok %v retry %d", ok, retry)
	}
	if ok, _, _ := l.admit(t0.Add(1001*time.Millisecond), false); !ok {
		t.Fatal("refused after the first request left the window")
	}
	// 1.05 s: the window (0.05, 1.05] holds 0.1, 0.2, 1.001 — full.
	if ok, _, _ := l.admit(t0.Add(1050*time.Millisecond), false); ok {
		t.Fatal("admitted a 4th request within a sliding second")
	}
	if l.maxBurst != 3 {
		t.Fatalf("maxBurst %d", l.maxBurst)
	}
}
