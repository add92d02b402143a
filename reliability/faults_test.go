package reliability

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klaviyo-etl/klaviyo-etl/extract/klaviyosim"
	"github.com/klaviyo-etl/klaviyo-etl/internal/e2etest"
)

// newSim starts a simulator for t.
func newSim(t testing.TB, cfg klaviyosim.Config) *klaviyosim.Server {
	t.Helper()
	sim, err := klaviyosim.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	return sim
}

// parallel runs fn for every name as subtests of t, at most n at once
// (t.Parallel would cap them at GOMAXPROCS, and these cases mostly wait).
func parallel(t *testing.T, n int, names []string, fn func(t *testing.T, i int)) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, n)
	for i, name := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			t.Run(name, func(t *testing.T) { fn(t, i) })
		}()
	}
	wg.Wait()
}

// faultParams are the sizes of the fault matrix.
type faultParams struct {
	profiles, pageSize, concurrency int
	latency                         time.Duration
	timeout                         string // --request-timeout: what a hang costs
	parallel                        int
}

func faultSizes() faultParams {
	return pick(
		faultParams{profiles: 300, pageSize: 20, concurrency: 4, latency: 5 * time.Millisecond, timeout: "1s", parallel: 10},
		faultParams{profiles: 20000, pageSize: 50, concurrency: 8, latency: 20 * time.Millisecond, timeout: "2s", parallel: 8},
	)
}

func (p faultParams) args(tg target) []string {
	return tg.args(append([]string{"--concurrency", strconv.Itoa(p.concurrency), "--page-size", strconv.Itoa(p.pageSize),
		"--checkpoint-rows", "500", "--request-timeout", p.timeout, "--log-level", "warn"}, fastBudget...)...)
}

func (p faultParams) sim(t testing.TB, seed int64, rate float64, kind klaviyosim.Fault) *klaviyosim.Server {
	cfg := klaviyosim.Config{Profiles: p.profiles, Seed: seed, Latency: p.latency, Jitter: 0.5, Unlimited: true,
		FaultRate: rate, DisableGzip: true}
	if kind != "" {
		cfg.Faults = []klaviyosim.Fault{kind}
	}
	return newSim(t, cfg)
}

var faultRates = []float64{0.01, 0.10, 0.30}

// TestAPIFaults exports through every fault kind of the simulator at 1%,
// 10% and 30% of requests, into both sinks. The output must be the data set
// exactly; a run that gives up at its retry deadline must exit 1 with a
// clear message and the next run must complete the export. Each case also
// gets one fault of its kind on its first request, so that every case
// exercises its fault even where the rate times the requests is below one.
func TestAPIFaults(t *testing.T) {
	t.Parallel()
	p := faultSizes()
	var wg sync.WaitGroup
	for _, sink := range sinks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.Run(sink, func(t *testing.T) { faultMatrix(t, sink, p) })
		}()
	}
	wg.Wait()
}

func faultMatrix(t *testing.T, sink string, p faultParams) {
	// The clean run every case's time lost is measured against.
	sim := p.sim(t, 1, 0, "")
	tg := newTarget(t, sink)
	base := run(t, spec{args: p.args(tg), env: tg.env(sim)})
	if base.code != 0 {
		t.Fatalf("clean run: %v", base)
	}
	checkExact(t, tg, sim.Profiles())
	t.Logf("clean run: %s, %d requests", base.wall.Round(time.Millisecond), sim.Counters().Requests)

	type fcase struct {
		kind klaviyosim.Fault
		rate float64
	}
	var cases []fcase
	var names []string
	for _, kind := range klaviyosim.AllFaults {
		for _, rate := range faultRates {
			cases = append(cases, fcase{kind, rate})
			names = append(names, fmt.Sprintf("%s/rate%02.0f", kind, rate*100))
		}
	}
	parallel(t, p.parallel, names, func(t *testing.T, i int) {
		c := cases[i]
		sim := p.sim(t, 1, c.rate, c.kind)
		sim.InjectFaults(c.kind, 1)
		tg := newTarget(t, sink)
		sp := spec{args: p.args(tg), env: tg.env(sim)}
		first := run(t, sp)
		runs := []result{first}
		outcome := "exit 0, exact"
		switch {
		case first.code == 0:
		case first.code == 1 && strings.Contains(first.message(), "giving up"):
			// Allowed: the run gave up at its retry deadline. The next one,
			// on a healthy API, must complete the export.
			sim.SetFaultRate(0)
			second := run(t, sp)
			runs = append(runs, second)
			if second.code != 0 {
				t.Fatalf("rerun after giving up: %v", second)
			}
			outcome = "exit 1 (" + first.message() + "), rerun exact"
		default:
			t.Fatalf("run failed: %v", first)
		}
		tl := checkExact(t, tg, sim.Profiles())
		ctr := sim.Counters()
		if ctr.Faults[c.kind] == 0 {
			t.Errorf("no %s fault was served: the case proves nothing", c.kind)
		}
		if retriesOf(runs...) == 0 {
			t.Errorf("no retries although %d %s faults were served", ctr.Faults[c.kind], c.kind)
		}
		record(t, figure{
			Case: fmt.Sprintf("API fault %s at %.0f%% of requests", c.kind, c.rate*100), Sink: sink,
			Runs: len(runs), Outcome: outcome, Lost: tl.Lost, Dups: tl.Duplicates,
			Retries: retriesOf(runs...), TimeLost: (wallOf(runs...) - base.wall).Seconds(),
			PeakRSS: peakRSS(runs...), Seconds: wallOf(runs...).Seconds(),
			Extra: fmt.Sprintf("%d faults served in %d requests, %d profiles", ctr.Faults[c.kind], ctr.Requests, p.profiles),
		})
	})
}

// TestRetryDeadline makes every request fail until the run gives up at its
// --retry-deadline, from the first request (the oldest-profile probe) or
// from the middle of the export on: the run must exit 1 with a message
// naming the failure, keep what it committed (and advance no cursor), and
// the next run must complete the export.
func TestRetryDeadline(t *testing.T) {
	t.Parallel()
	var names []string
	type dcase struct {
		kind klaviyosim.Fault
		sink string
		mid  bool
	}
	var cases []dcase
	for _, kind := range []klaviyosim.Fault{klaviyosim.Fault503, klaviyosim.FaultReset} {
		for _, when := range []string{"from-start", "mid-run"} {
			for _, sink := range sinks {
				cases = append(cases, dcase{kind, sink, when == "mid-run"})
				names = append(names, string(kind)+"/"+when+"/"+sink)
			}
		}
	}
	parallel(t, 8, names, func(t *testing.T, i int) {
		c := cases[i]
		profiles := pick(2000, 20000)
		sim := newSim(t, klaviyosim.Config{Profiles: profiles, Seed: 2, Latency: 30 * time.Millisecond, Jitter: 0.5,
			Unlimited: true, DisableGzip: true, Faults: []klaviyosim.Fault{c.kind}})
		tg := newTarget(t, c.sink)
		sp := spec{args: tg.args(append([]string{"--concurrency", "2", "--page-size", "50", "--checkpoint-rows", "200",
			"--retry-deadline", "3s", "--log-level", "warn"}, fastBudget...)...), env: tg.env(sim)}
		when := "from the first request"
		if !c.mid {
			sim.SetFaultRate(1)
		} else {
			// The simulator turns the faults on itself, once it has served
			// a quarter of the profiles: a test waiting to see them
			// committed may act after a fast run has finished. The run
			// commits what it got at checkpoints and in its last commit.
			var once sync.Once
			sim.Use(func(next http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if sim.Counters().ProfilesServed >= int64(profiles/4) {
						once.Do(func() { sim.SetFaultRate(1) })
					}
					next.ServeHTTP(w, r)
				})
			})
			when = "once a quarter of the profiles were served"
		}
		pr := start(t, sp)
		first := pr.wait(t)
		if first.code != 1 {
			t.Fatalf("with every request failing %s: %v, want exit 1", when, first)
		}
		msg := first.message()
		if !strings.Contains(msg, "giving up after") {
			t.Errorf("message %q does not say the run gave up", msg)
		}
		if first.wall > 2*time.Minute {
			t.Errorf("gave up after %s with a 3s retry deadline", first.wall)
		}
		if st := readState(t, tg); st.Cursors["created"] != nil {
			t.Errorf("a failed run advanced the cursor: %+v", st.Cursors["created"])
		}
		kept := e2etest.Compare(readProfiles(t, tg), sim.Profiles(), true)
		if kept.Duplicates+kept.Differ+kept.Unexpected > 0 {
			t.Errorf("what the failed run committed: %v", kept)
		}
		if c.mid && kept.Got == 0 {
			t.Errorf("the run failing mid-export kept nothing of the %d profiles served before the faults", profiles/4)
		}
		sim.SetFaultRate(0)
		second := run(t, sp)
		if second.code != 0 {
			t.Fatalf("rerun on a healthy API: %v", second)
		}
		tl := checkExact(t, tg, sim.Profiles())
		record(t, figure{
			Case: fmt.Sprintf("every request fails (%s) %s, --retry-deadline 3s, %d profiles", c.kind, when, profiles), Sink: c.sink, Runs: 2,
			Outcome: fmt.Sprintf("exit 1 after %.1f s: %q; %d profiles committed before it kept; rerun exact", first.wall.Seconds(), clip(msg, 200), kept.Got),
			Lost:    tl.Lost, Dups: tl.Duplicates, Retries: retriesOf(first, second),
			PeakRSS: peakRSS(first, second), Seconds: wallOf(first, second).Seconds(),
		})
	})
}
