package main

import (
	"context"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/klaviyo-etl/klaviyo-etl/extract/klaviyosim"
	"github.com/klaviyo-etl/klaviyo-etl/internal/e2etest"
)

func simEnv(sim *klaviyosim.Server) map[string]string {
	return map[string]string{"KLAVIYO_API_KEY": "pk_test", "KLAVIYO_BASE_URL": sim.URL()}
}

// TestParquetEndToEnd exports a simulated account with latency, ties on the
// same second and faults, checks the files value by value, then adds
// profiles and checks that exactly those are added.
func TestParquetEndToEnd(t *testing.T) {
	sim, err := klaviyosim.NewServer(klaviyosim.Config{
		Profiles:  2500,
		Seed:      7,
		Latency:   3 * time.Millisecond,
		Jitter:    0.5,
		FaultRate: 0.08,
		Faults: []klaviyosim.Fault{klaviyosim.Fault500, klaviyosim.Fault503, klaviyosim.FaultReset,
			klaviyosim.FaultTruncated, klaviyosim.FaultInvalidJSON, klaviyosim.Fault429},
		Burst:  klaviyosim.Limit{N: 200, Per: time.Second},
		Steady: klaviyosim.Limit{N: 5000, Per: time.Minute},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	out := filepath.Join(t.TempDir(), "export")
	ctx := context.Background()
	args := []string{"run", "--out", out, "--rate-burst", "200/1s", "--rate-steady", "5000/1m",
		"--checkpoint-rows", "700", "--log-level", "warn", "--progress", "never"}

	first := invoke(t, ctx, simEnv(sim), args...)
	if first.code != 0 {
		t.Fatalf("first run exited %d: %s", first.code, first.stderr)
	}
	sum := summaryOf(t, first)
	if sum["retries"].(float64) == 0 {
		t.Errorf("no retries with 8%% faults: the faults did not reach the client")
	}
	e2etest.CompareProfiles(t, e2etest.ReadParquetProfiles(t, out), sim.Profiles())
	e2etest.AssertNoDebris(t, out)

	// New sign-ups, some on one second, inside the next window.
	added := sim.AddProfiles(120, time.Now().Add(-20*time.Second).Truncate(time.Second))
	second := invoke(t, ctx, simEnv(sim), args...)
	if second.code != 0 {
		t.Fatalf("second run exited %d: %s", second.code, second.stderr)
	}
	if got := summaryOf(t, second)["profiles"].(float64); got != float64(len(added)) {
		t.Errorf("second run wrote %v profiles, want the %d added", got, len(added))
	}
	e2etest.CompareProfiles(t, e2etest.ReadParquetProfiles(t, out), sim.Profiles())
	e2etest.AssertNoDebris(t, out)

	// The state command shows the committed window.
	st := invoke(t, ctx, nil, "state", "--out", out)
	if st.code != 0 || !containsAll(st.stdout, `"cursors"`, `"created"`, `"last_run"`) {
		t.Errorf("state printed %q (exit %d)", st.stdout, st.code)
	}
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !contains(s, sub) {
			return false
		}
	}
	return true
}

func contains(s, sub string) bool { return len(sub) == 0 || indexOf(s, sub) >= 0 }

func indexOf(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}

// startSubprocess runs the program (this test binary standing in for it)
// with args against env.
func startSubprocess(t *testing.T, env map[string]string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = []string{"KLAVIYO_ETL_TEST_AS_MAIN=1", "PATH=" + os.Getenv("PATH")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd
}

// TestParquetKilledRunsConverge kills the exporting process with SIGKILL at
// random instants, then lets a run finish: the output must be exactly the
// data set, once, with no debris.
func TestParquetKilledRunsConverge(t *testing.T) {
	sim, err := klaviyosim.NewServer(klaviyosim.Config{Profiles: 10000, Seed: 11, Latency: 40 * time.Millisecond, Jitter: 0.5, Unlimited: true})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	out := filepath.Join(t.TempDir(), "export")
	args := []string{"run", "--out", out, "--concurrency", "2", "--rate-burst", "1000/1s", "--rate-steady", "60000/1m",
		"--checkpoint-rows", "250", "--log-level", "error", "--progress", "never"}
	rng := rand.New(rand.NewPCG(1, 2))
	kills := 0
	for i := 0; i < 8; i++ {
		cmd := startSubprocess(t, simEnv(sim), args...)
		time.Sleep(time.Duration(100+rng.IntN(700)) * time.Millisecond)
		_ = cmd.Process.Signal(syscall.SIGKILL)
		err := cmd.Wait()
		if ee, ok := err.(*exec.ExitError); ok && ee.Sys().(syscall.WaitStatus).Signaled() {
			kills++
		}
	}
	if kills == 0 {
		t.Fatal("no run was killed: the export finished before every kill; the test proves nothing")
	}
	final := invoke(t, context.Background(), simEnv(sim), args...)
	if final.code != 0 {
		t.Fatalf("final run exited %d: %s", final.code, final.stderr)
	}
	e2etest.CompareProfiles(t, e2etest.ReadParquetProfiles(t, out), sim.Profiles())
	e2etest.AssertNoDebris(t, out)
	t.Logf("%d of 8 runs killed mid-export", kills)
}

// TestSIGTERMCommitsAndExits143 checks the graceful path: a terminated run
// commits what is complete, exits 143, and the next run completes it.
func TestSIGTERMCommitsAndExits143(t *testing.T) {
	sim, err := klaviyosim.NewServer(klaviyosim.Config{Profiles: 5000, Seed: 5, Latency: 100 * time.Millisecond, Unlimited: true})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	out := filepath.Join(t.TempDir(), "export")
	args := []string{"run", "--out", out, "--concurrency", "1", "--checkpoint-rows", "200", "--log-level", "error", "--progress", "never"}
	cmd := startSubprocess(t, simEnv(sim), args...)
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	// Served pages prove that main has installed its handler and give the
	// run something to commit; at 100 ms a page, the other 46 are far from
	// done when the signal goes.
	e2etest.WaitFor(t, 30*time.Second, "400 profiles served before SIGTERM", func() bool { return sim.Counters().ProfilesServed >= 400 })
	start := time.Now()
	_ = cmd.Process.Signal(syscall.SIGTERM)
	err = cmd.Wait()
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("SIGTERM took %v to exit, want under 10s", took)
	}
	if code := cmd.ProcessState.ExitCode(); code != 143 {
		t.Fatalf("exit code %d (%v), want 143", code, err)
	}
	partial := e2etest.ReadParquetProfiles(t, out)
	if len(partial) == 0 || len(partial) >= 5000 {
		t.Errorf("interrupted run committed %d profiles, want some but not all", len(partial))
	}
	final := invoke(t, context.Background(), simEnv(sim), args...)
	if final.code != 0 {
		t.Fatalf("final run exited %d: %s", final.code, final.stderr)
	}
	e2etest.CompareProfiles(t, e2etest.ReadParquetProfiles(t, out), sim.Profiles())
	e2etest.AssertNoDebris(t, out)
}
