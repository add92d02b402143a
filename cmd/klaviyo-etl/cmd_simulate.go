package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/klaviyo-etl/klaviyo-etl/extract"
	"github.com/klaviyo-etl/klaviyo-etl/extract/klaviyosim"
)

func cmdSimulate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("simulate", stderr)
	e := &env{getenv: getenv}
	addr := fs.String("addr", envOr(getenv, "KLAVIYO_SIM_ADDR", "127.0.0.1:8080"), "listen address [KLAVIYO_SIM_ADDR]")
	key := fs.String("api-key", envOr(getenv, "KLAVIYO_SIM_API_KEY", "pk_test"), "the API key the simulator accepts [KLAVIYO_SIM_API_KEY]")
	profiles := fs.Int("profiles", e.int("KLAVIYO_SIM_PROFILES", 10_000), "synthetic profiles [KLAVIYO_SIM_PROFILES]")
	seed := fs.Int64("seed", int64(e.int("KLAVIYO_SIM_SEED", 1)), "data set seed [KLAVIYO_SIM_SEED]")
	latency := fs.Duration("latency", e.duration("KLAVIYO_SIM_LATENCY", 0), "added latency per request, ±20% [KLAVIYO_SIM_LATENCY]")
	burst := fs.String("rate-burst", getenv("KLAVIYO_SIM_RATE_BURST"), "burst limit N/DUR (default 75/1s) [KLAVIYO_SIM_RATE_BURST]")
	steady := fs.String("rate-steady", getenv("KLAVIYO_SIM_RATE_STEADY"), "steady limit N/DUR (default 750/1m) [KLAVIYO_SIM_RATE_STEADY]")
	faultRate := fs.Float64("fault-rate", e.float("KLAVIYO_SIM_FAULT_RATE", 0), "share of requests answered with a fault, 0..1 [KLAVIYO_SIM_FAULT_RATE]")
	unlimited := fs.Bool("unlimited", false, "no rate limits at all")
	printUsage(fs, stderr, "klaviyo-etl simulate [flags]")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := e.err(); err != nil {
		return err
	}
	cfg := klaviyosim.Config{
		Profiles:  *profiles,
		Seed:      *seed,
		APIKey:    *key,
		Latency:   *latency,
		Jitter:    0.2,
		FaultRate: *faultRate,
		Unlimited: *unlimited,
	}
	var err error
	if cfg.Burst, err = parseSimLimit(*burst); err != nil {
		return usagef("--rate-burst: %w", err)
	}
	if cfg.Steady, err = parseSimLimit(*steady); err != nil {
		return usagef("--rate-steady: %w", err)
	}
	if *faultRate < 0 || *faultRate > 1 {
		return usagef("--fault-rate %v: want 0..1", *faultRate)
	}
	sim, err := klaviyosim.New(cfg)
	if err != nil {
		return usageError{fmt.Errorf("simulator: %w", err)}
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{Handler: sim.Handler(), ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(stdout, "simulated Klaviyo API with %d profiles at http://%s/api/profiles (API key %q); Ctrl-C stops it\n",
		*profiles, ln.Addr(), *key)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("shutdown: %w", err)
	}
	sim.Close()
	fmt.Fprintln(stdout, "simulator stopped")
	// A clean stop on a signal is what the operator asked for.
	return nil
}

// parseSimLimit reads N/DUR with the same parser as run's budget flags.
func parseSimLimit(s string) (klaviyosim.Limit, error) {
	if s == "" {
		return klaviyosim.Limit{}, nil
	}
	r, err := extract.ParseRate(s)
	if err != nil {
		return klaviyosim.Limit{}, err
	}
	return klaviyosim.Limit{N: r.N, Per: r.Per}, nil
}
