package main

import (
	"context"
	"math/rand/v2"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/klaviyo-etl/klaviyo-etl/extract/klaviyosim"
	"github.com/klaviyo-etl/klaviyo-etl/internal/e2etest"
	"github.com/klaviyo-etl/klaviyo-etl/internal/pgtest"
)

func pgEnv(sim *klaviyosim.Server, url string) map[string]string {
	env := simEnv(sim)
	env["DATABASE_URL"] = url
	return env
}

// TestPostgresEndToEnd loads a simulated account into PostgreSQL with faults
// on, compares the table field by field, then edits and adds profiles and
// checks that an updated-cursor run brings the table exactly in line.
func TestPostgresEndToEnd(t *testing.T) {
	url := pgtest.NewDatabase(t)
	sim, err := klaviyosim.NewServer(klaviyosim.Config{
		Profiles: 2000, Seed: 3, Latency: 2 * time.Millisecond, Jitter: 0.5, FaultRate: 0.05,
		Faults:    []klaviyosim.Fault{klaviyosim.Fault502, klaviyosim.Fault504, klaviyosim.FaultReset, klaviyosim.FaultTruncated},
		Unlimited: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	ctx := context.Background()
	args := []string{"run", "--sink", "postgres", "--pg-schema", "acme", "--cursor-field", "updated",
		"--rate-burst", "500/1s", "--rate-steady", "30000/1m", "--checkpoint-rows", "600", "--log-level", "warn", "--progress", "never"}
	first := invoke(t, ctx, pgEnv(sim, url), args...)
	if first.code != 0 {
		t.Fatalf("first run exited %d: %s", first.code, first.stderr)
	}
	e2etest.CompareProfiles(t, e2etest.ReadPostgresProfiles(t, url, "acme"), sim.Profiles())

	// Edit some profiles and add others, inside the next window.
	all := sim.Profiles()
	var edited []string
	for i := 0; i < len(all); i += 37 {
		edited = append(edited, all[i].ID)
	}
	at := time.Now().Add(-20 * time.Second).Truncate(time.Second)
	sim.UpdateProfiles(edited, at)
	sim.AddProfiles(150, at.Add(time.Second))
	second := invoke(t, ctx, pgEnv(sim, url), args...)
	if second.code != 0 {
		t.Fatalf("second run exited %d: %s", second.code, second.stderr)
	}
	if got, want := summaryOf(t, second)["profiles"].(float64), float64(len(edited)+150); got != want {
		t.Errorf("second run wrote %v profiles, want %v (edited + added)", got, want)
	}
	e2etest.CompareProfiles(t, e2etest.ReadPostgresProfiles(t, url, "acme"), sim.Profiles())

	st := invoke(t, ctx, map[string]string{"DATABASE_URL": url}, "state", "--sink", "postgres", "--pg-schema", "acme")
	if st.code != 0 || !strings.Contains(st.stdout, `"updated"`) {
		t.Errorf("state printed %q (exit %d, %s)", st.stdout, st.code, st.stderr)
	}
}

// TestPostgresKilledRunsConverge kills runs with SIGKILL at random instants;
// a final run must leave the table equal to the data set.
func TestPostgresKilledRunsConverge(t *testing.T) {
	url := pgtest.NewDatabase(t)
	sim, err := klaviyosim.NewServer(klaviyosim.Config{Profiles: 10000, Seed: 13, Latency: 40 * time.Millisecond, Jitter: 0.5, Unlimited: true})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	args := []string{"run", "--sink", "postgres", "--concurrency", "2", "--rate-burst", "1000/1s", "--rate-steady", "60000/1m",
		"--checkpoint-rows", "250", "--log-level", "error", "--progress", "never"}
	rng := rand.New(rand.NewPCG(3, 4))
	kills := 0
	for i := 0; i < 8; i++ {
		cmd := startSubprocess(t, pgEnv(sim, url), args...)
		time.Sleep(time.Duration(100+rng.IntN(700)) * time.Millisecond)
		_ = cmd.Process.Signal(syscall.SIGKILL)
		if err := cmd.Wait(); err != nil && cmd.ProcessState.Sys().(syscall.WaitStatus).Signaled() {
			kills++
		}
	}
	if kills == 0 {
		t.Fatal("no run was killed mid-export; the test proves nothing")
	}
	final := invoke(t, context.Background(), pgEnv(sim, url), args...)
	if final.code != 0 {
		t.Fatalf("final run exited %d: %s", final.code, final.stderr)
	}
	e2etest.CompareProfiles(t, e2etest.ReadPostgresProfiles(t, url, "klaviyo"), sim.Profiles())
	t.Logf("%d of 8 runs killed mid-export", kills)
}

// TestConcurrentRunsOneExits3 starts a slow run and a second one on the same
// schema: the second must exit 3 at once with a clear message.
func TestConcurrentRunsOneExits3(t *testing.T) {
	url := pgtest.NewDatabase(t)
	sim, err := klaviyosim.NewServer(klaviyosim.Config{Profiles: 3000, Seed: 1, Latency: 300 * time.Millisecond, Unlimited: true})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	args := []string{"run", "--sink", "postgres", "--concurrency", "1", "--log-level", "error", "--progress", "never"}
	first := startSubprocess(t, pgEnv(sim, url), args...)
	defer func() {
		_ = first.Process.Signal(syscall.SIGKILL)
		_ = first.Wait()
	}()
	// Wait until the first run holds the lock: its run is in etl_state.
	ctx := context.Background()
	e2etest.WaitFor(t, 30*time.Second, "the first run to start", func() bool {
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			return false
		}
		defer conn.Close(ctx)
		var n int
		err = conn.QueryRow(ctx, `SELECT count(*) FROM klaviyo.etl_state WHERE state ? 'run'`).Scan(&n)
		return err == nil && n > 0
	})
	second := invoke(t, ctx, pgEnv(sim, url), args...)
	if second.code != 3 {
		t.Fatalf("second run exited %d, want 3: %s", second.code, second.stderr)
	}
	if !strings.Contains(second.stderr, "lock") {
		t.Errorf("message %q does not say another run holds the lock", second.stderr)
	}
}
