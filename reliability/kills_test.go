package reliability

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/klaviyo-etl/klaviyo-etl/extract/klaviyosim"
	"github.com/klaviyo-etl/klaviyo-etl/internal/e2etest"
	"github.com/klaviyo-etl/klaviyo-etl/pipeline"
)

type killParams struct {
	profiles       int
	pageSize       int
	checkpointRows int
	trials, chain  int // SIGKILL: trials × kills in a row per trial
	terms          int // SIGTERM/SIGINT trials
}

func killSizes() killParams {
	return pick(
		killParams{profiles: 2000, pageSize: 25, checkpointRows: 200, trials: 2, chain: 3, terms: 2},
		killParams{profiles: 50000, pageSize: 100, checkpointRows: 2000, trials: 10, chain: 5, terms: 20},
	)
}

func (p killParams) sim(t testing.TB) *klaviyosim.Server {
	return newSim(t, klaviyosim.Config{Profiles: p.profiles, Seed: 21, Latency: 50 * time.Millisecond, Jitter: 0.5,
		Unlimited: true, DisableGzip: true})
}

func (p killParams) args(tg target) []string {
	return tg.args(append([]string{"--concurrency", "4", "--page-size", strconv.Itoa(p.pageSize),
		"--checkpoint-rows", strconv.Itoa(p.checkpointRows),
		"--log-level", "warn"}, fastBudget...)...)
}

// TestKills kills exports with SIGKILL at random instants, in chains (a
// killed run's resume is killed again), then lets a normal run finish: the
// output must be the data set exactly, with no duplicate and no debris.
// Then it interrupts exports with SIGTERM and SIGINT: the program must exit
// 143 or 130 within 10 s, with exactly the profiles its summary counts
// committed, and the next run must complete the export.
func TestKills(t *testing.T) {
	t.Parallel()
	p := killSizes()
	var wg sync.WaitGroup
	for i, sink := range sinks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.Run(sink, func(t *testing.T) {
				sim := p.sim(t)
				want := sim.Profiles()
				rng := rand.New(rand.NewPCG(uint64(i)+1, 2026))
				t.Run("SIGKILL", func(t *testing.T) { sigkillChains(t, p, sim, want, sink, rng) })
				t.Run("SIGTERM", func(t *testing.T) { sigterms(t, p, sim, want, sink, rng) })
			})
		}()
	}
	wg.Wait()
}

// killPoint waits for a random instant of pr's export and returns a
// description of it: one time in ten a moment of its start-up (connect,
// migrate, state), otherwise the moment the simulator has served a random
// share of what was left to export when the run started, plus up to 40 ms,
// so instants fall anywhere between and inside pages and checkpoints. It
// returns false if the run ended first. Instants are set by progress, not
// by the clock, so they land mid-export however slow the machine is. sig is
// the signal to come: for SIGTERM and SIGINT a start-up instant counts from
// the run's first file or socket, since until main has called signal.Notify
// they kill the program like any other.
func killPoint(pr *proc, tg target, sim *klaviyosim.Server, servedAtStart int64, left int, sig syscall.Signal, rng *rand.Rand) (string, bool) {
	if rng.IntN(10) == 0 {
		d := time.Duration(rng.Int64N(int64(200 * time.Millisecond)))
		from := "start"
		if sig == syscall.SIGTERM || sig == syscall.SIGINT {
			if !awaitRunFile(pr, tg, 30*time.Second) {
				if pr.exited() {
					return "", false
				}
				from = "start (no file or socket of the run's open within 30s)"
			} else {
				from = "its first file or socket"
			}
		}
		time.Sleep(d)
		return fmt.Sprintf("%s after %s", d.Round(time.Millisecond), from), !pr.exited()
	}
	share := 0.02 + 0.96*rng.Float64()
	// Drawn before the wait, which may end early: every call draws the
	// same, so later instants do not depend on how this run went.
	jitter := time.Duration(rng.Int64N(int64(40 * time.Millisecond)))
	goal := servedAtStart + int64(share*float64(left))
	for sim.Counters().ProfilesServed < goal {
		if pr.exited() {
			return "", false
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(jitter)
	return fmt.Sprintf("%.0f%% of the rest served", share*100), !pr.exited()
}

// awaitRunFile waits until the program holds a socket (to the API or to
// PostgreSQL) or a file of tg's output folder, which it opens only after
// main has installed its signal handler, and reports false if it exited or
// timeout passed first. SigCgt in /proc cannot tell: the Go runtime catches
// SIGTERM and SIGINT from its start, only to die of them until Notify.
func awaitRunFile(pr *proc, tg target, timeout time.Duration) bool {
	fds := filepath.Join("/proc", strconv.Itoa(pr.cmd.Process.Pid), "fd")
	deadline := time.Now().Add(timeout)
	for !pr.exited() && time.Now().Before(deadline) {
		ents, _ := os.ReadDir(fds)
		for _, e := range ents {
			l, err := os.Readlink(filepath.Join(fds, e.Name()))
			if err == nil && (strings.HasPrefix(l, "socket:") ||
				tg.out != "" && (l == tg.out || strings.HasPrefix(l, tg.out+string(filepath.Separator)))) {
				return true
			}
		}
		time.Sleep(time.Millisecond)
	}
	return false
}

func sigkillChains(t *testing.T, p killParams, sim *klaviyosim.Server, want []klaviyosim.Profile, sink string, rng *rand.Rand) {
	var all []result
	killed, finished, locked := 0, 0, 0
	var worst tally
	for trial := range p.trials {
		tg := newTarget(t, sink)
		sp := spec{args: p.args(tg), env: tg.env(sim)}
		for range p.chain {
			left := len(want) - len(readProfiles(t, tg))
			pr := start(t, sp)
			at, _ := killPoint(pr, tg, sim, sim.Counters().ProfilesServed, left, syscall.SIGKILL, rng)
			pr.signal(syscall.SIGKILL)
			r := pr.wait(t)
			all = append(all, r)
			switch {
			case r.killed():
				killed++
			case r.code == 0:
				finished++
			case r.code == 3:
				// The previous run's PostgreSQL backend had not yet noticed
				// its client was gone, and still held the lock.
				locked++
			default:
				t.Errorf("trial %d: a run killed at %s exited %v", trial, at, r)
			}
		}
		rs := runUntilDone(t, sp)
		all = append(all, rs...)
		locked += len(rs) - 1
		if last := rs[len(rs)-1]; last.code != 0 {
			t.Fatalf("trial %d: the run after the kills: %v", trial, last)
		}
		tl := checkExact(t, tg, want)
		worst.Lost += tl.Lost
		worst.Duplicates += tl.Duplicates
		if st := readState(t, tg); st.Run != nil {
			t.Errorf("trial %d: a run is still in the state after a successful run: %+v", trial, st.Run)
		}
	}
	kills := p.trials * p.chain
	if killed < kills*3/4 {
		t.Errorf("only %d of %d kills landed mid-export: the test proves little", killed, kills)
	}
	record(t, figure{
		Case: fmt.Sprintf("SIGKILL at %d random instants (%d chains of %d kills, each resumed), %d profiles", kills, p.trials, p.chain, p.profiles),
		Sink: sink, Runs: len(all),
		Outcome: fmt.Sprintf("%d kills mid-export, %d runs had finished; every chain's next normal run exact, no debris", killed, finished),
		Lost:    worst.Lost, Dups: worst.Duplicates, Retries: retriesOf(all...), PeakRSS: peakRSS(all...),
		Seconds: wallOf(all...).Seconds(),
		Extra:   fmt.Sprintf("%d runs exited 3 (lock still held by a killed run's backend)", locked),
	})
}

func sigterms(t *testing.T, p killParams, sim *klaviyosim.Server, want []klaviyosim.Profile, sink string, rng *rand.Rand) {
	var all []result
	var slowest time.Duration
	interrupted, finished := 0, 0
	var lost, dups int
	for trial := range p.terms {
		sig, code := syscall.SIGTERM, 143
		if trial%2 == 1 {
			sig, code = syscall.SIGINT, 130
		}
		tg := newTarget(t, sink)
		sp := spec{args: p.args(tg), env: tg.env(sim)}
		pr := start(t, sp)
		at, _ := killPoint(pr, tg, sim, sim.Counters().ProfilesServed, len(want), sig, rng)
		sent := time.Now()
		pr.signal(sig)
		r := pr.wait(t)
		took := time.Since(sent)
		all = append(all, r)
		if r.code == 0 {
			finished++
			continue
		}
		interrupted++
		slowest = max(slowest, took)
		if r.code != code {
			t.Errorf("trial %d: %s at %s: %v, want exit %d", trial, sig, at, r, code)
		}
		if took > 10*time.Second {
			t.Errorf("trial %d: exited %s after %s, want within 10s", trial, took, sig)
		}
		// What is committed is exact, and it is everything the run counted.
		if r.summary != nil {
			tl := e2etest.Compare(readProfiles(t, tg), want, true)
			if r.summary.Status != pipeline.StatusInterrupted || int64(tl.Got) != r.summary.Profiles ||
				tl.Duplicates+tl.Differ+tl.Unexpected > 0 {
				t.Errorf("trial %d: %s at %s: status %q, %d profiles counted; output %v",
					trial, sig, at, r.summary.Status, r.summary.Profiles, tl)
			}
		}
		if sink == "parquet" {
			if d := parquetDebris(t, tg.out); len(d) > 0 {
				t.Errorf("trial %d: debris after %s: %v", trial, sig, d)
			}
		}
		next := run(t, sp)
		all = append(all, next)
		if next.code != 0 {
			t.Fatalf("trial %d: the run after %s: %v", trial, sig, next)
		}
		tl := checkExact(t, tg, want)
		lost += tl.Lost
		dups += tl.Duplicates
	}
	if interrupted == 0 {
		t.Fatal("every run finished before its signal: the test proves nothing")
	}
	record(t, figure{
		Case: fmt.Sprintf("SIGTERM/SIGINT at %d random instants, %d profiles", p.terms, p.profiles), Sink: sink, Runs: len(all),
		Outcome: fmt.Sprintf("%d interrupted: exit 143/130 within %s (slowest), status interrupted, committed rows exact and = the summary's count; %d had finished; every rerun exact",
			interrupted, slowest.Round(time.Millisecond), finished),
		Lost: lost, Dups: dups, Retries: retriesOf(all...), PeakRSS: peakRSS(all...), Seconds: wallOf(all...).Seconds(),
	})
}
