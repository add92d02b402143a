package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/klaviyo-etl/klaviyo-etl/extract/klaviyosim"
)

// cmdDemo shows the whole job without a server or a key: it serves a
// simulated account in-process, exports it to Parquet, adds profiles, and
// exports again to show the incremental step.
func cmdDemo(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fset := newFlagSet("demo", stderr)
	out := fset.String("out", "./klaviyo-export-demo", "output folder (replaced if it holds an earlier demo)")
	profiles := fset.Int("profiles", 3000, "profiles in the simulated account")
	added := fset.Int("added", 250, "profiles added before the second run")
	seed := fset.Int64("seed", 1, "data set seed")
	latency := fset.Duration("latency", 150*time.Millisecond, "simulated response time, ±20%")
	logFormat := fset.String("log-format", "auto", "json, console or auto")
	logLevel := fset.String("log-level", "warn", "debug, info, warn, error")
	printUsage(fset, stderr, "klaviyo-etl demo [flags]")
	if err := parseFlags(fset, args); err != nil {
		return err
	}
	if *profiles < 1 || *added < 0 {
		return usagef("--profiles must be positive and --added not negative")
	}
	if err := clearDemoFolder(*out); err != nil {
		return err
	}
	log, err := newLogger(stderr, *logLevel, *logFormat)
	if err != nil {
		return err
	}
	sim, err := klaviyosim.NewServer(klaviyosim.Config{Profiles: *profiles, Seed: *seed, Latency: *latency, Jitter: 0.2})
	if err != nil {
		return fmt.Errorf("simulator: %w", err)
	}
	defer sim.Close()

	var c runConfig
	noEnv := func(string) string { return "" }
	runFlags(newFlagSet("run", io.Discard), &c, &env{getenv: noEnv})
	c.APIKey, c.BaseURL, c.Out = "pk_test", sim.URL(), *out
	if err := c.resolve(noEnv); err != nil {
		return err
	}

	fmt.Fprintf(stdout, "1/3  Simulated Klaviyo account with %d profiles at %s (revision %s, budget 75/1s and 750/1m, %v latency).\n",
		*profiles, sim.URL(), c.Revision, *latency)
	fmt.Fprintf(stdout, "     First run: every profile into %s\n", *out)
	first, err := exportOnce(ctx, &c, log, stdout, stderr)
	if err != nil {
		return err
	}
	// New sign-ups arrive; the next run reads only from the committed end
	// minus the lookback, so it fetches just these.
	sim.AddProfiles(*added, time.Now().Add(-10*time.Second).Truncate(time.Second))
	fmt.Fprintf(stdout, "2/3  %d profiles added to the account. Second run: incremental\n", *added)
	second, err := exportOnce(ctx, &c, log, stdout, stderr)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "3/3  First run wrote %d profiles in %.1fs (%d requests, %d 429s); the second wrote %d new ones in %.1fs.\n",
		first.Profiles, first.Seconds, first.Requests, first.RateLimited, second.Profiles, second.Seconds)
	files, err := listParquet(*out)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\nFiles in %s:\n", *out)
	for _, f := range files {
		fmt.Fprintf(stdout, "  %s\n", f)
	}
	abs, _ := filepath.Abs(*out)
	fmt.Fprintf(stdout, `
Look at it with DuckDB (https://duckdb.org):
  duckdb -c "SELECT count(*) AS profiles, count(DISTINCT id) AS ids, min(created), max(created) FROM read_parquet('%[1]s/profiles/*.parquet')"
  duckdb -c "SELECT location_country, count(*) FROM read_parquet('%[1]s/profiles/*.parquet') GROUP BY 1 ORDER BY 2 DESC LIMIT 5"
or pandas:  pandas.read_parquet('%[1]s/profiles')
State:      klaviyo-etl state --out %[1]s
`, abs)
	return nil
}

// clearDemoFolder removes an earlier demo's output, and refuses to touch a
// folder that holds anything else.
func clearDemoFolder(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("demo output: %w", err)
	}
	if len(entries) == 0 {
		return nil
	}
	if _, err := os.Stat(filepath.Join(dir, "_state.json")); err != nil {
		return usagef("%s exists and is not an earlier demo's output; choose another --out", dir)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove earlier demo output: %w", err)
	}
	return nil
}

func listParquet(dir string) ([]string, error) {
	var files []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(dir, path)
			info, err := d.Info()
			if err != nil {
				return err
			}
			files = append(files, fmt.Sprintf("%-70s %8d bytes", rel, info.Size()))
		}
		return nil
	})
	sort.Strings(files)
	return files, err
}
