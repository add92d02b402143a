package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/klaviyo-etl/klaviyo-etl/extract/klaviyosim"
	"github.com/klaviyo-etl/klaviyo-etl/internal/e2etest"
	"github.com/klaviyo-etl/klaviyo-etl/internal/pgtest"
)

func TestUsageErrorsExit2(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"no command", nil, nil, "no command"},
		{"unknown command", nil, []string{"export"}, "unknown command"},
		{"no key", nil, []string{"run"}, "no API key"},
		{"bad sink", map[string]string{"KLAVIYO_API_KEY": "k"}, []string{"run", "--sink", "mysql"}, "--sink"},
		{"postgres without url", map[string]string{"KLAVIYO_API_KEY": "k"}, []string{"run", "--sink", "postgres"}, "DATABASE_URL"},
		{"page size", map[string]string{"KLAVIYO_API_KEY": "k"}, []string{"run", "--page-size", "500"}, "1..100"},
		{"bad rate", map[string]string{"KLAVIYO_API_KEY": "k"}, []string{"run", "--rate-burst", "fast"}, "--rate-burst"},
		{"bad concurrency", map[string]string{"KLAVIYO_API_KEY": "k"}, []string{"run", "--concurrency", "many"}, "--concurrency"},
		{"bad since", map[string]string{"KLAVIYO_API_KEY": "k"}, []string{"run", "--since", "yesterday"}, "--since"},
		{"since after until", map[string]string{"KLAVIYO_API_KEY": "k"}, []string{"run", "--since", "2025-01-02", "--until", "2025-01-01"}, "before --until"},
		{"bad cursor", map[string]string{"KLAVIYO_API_KEY": "k"}, []string{"run", "--cursor-field", "email"}, "--cursor-field"},
		{"bad share", map[string]string{"KLAVIYO_API_KEY": "k"}, []string{"run", "--budget-share", "1.5"}, "--budget-share"},
		{"bad env number", map[string]string{"KLAVIYO_API_KEY": "k", "KLAVIYO_ETL_PAGE_SIZE": "lots"}, []string{"run"}, "KLAVIYO_ETL_PAGE_SIZE"},
		{"bad env duration", map[string]string{"KLAVIYO_API_KEY": "k", "KLAVIYO_ETL_LOOKBACK": "10"}, []string{"run"}, "KLAVIYO_ETL_LOOKBACK"},
		{"unknown flag", nil, []string{"run", "--fast"}, "flag provided but not defined"},
		{"missing key file", nil, []string{"run", "--api-key-file", "/nonexistent/key"}, "--api-key-file"},
		{"account without file", nil, []string{"run", "--account", "acme"}, "--accounts-file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := invoke(t, ctx, tt.env, tt.args...)
			if r.code != 2 {
				t.Fatalf("exit %d, want 2 (stderr %s)", r.code, r.stderr)
			}
			if !strings.Contains(r.stderr, tt.want) {
				t.Errorf("stderr %q does not mention %q", r.stderr, tt.want)
			}
		})
	}
}

func TestSecretsNeverPrinted(t *testing.T) {
	const key = "pk_secret_do_not_print_1234"
	const dbPassword = "hunter2-db-password"
	env := map[string]string{"KLAVIYO_API_KEY": key, "DATABASE_URL": "postgres://u:" + dbPassword + "@127.0.0.1:1/db"}
	help := invoke(t, context.Background(), env, "run", "-h")
	bad := invoke(t, context.Background(), env, "run", "--sink", "postgres", "--base-url", "http://127.0.0.1:1", "--retry-deadline", "1s", "--log-level", "debug")
	for _, r := range []result{help, bad} {
		for _, secret := range []string{key, dbPassword} {
			if strings.Contains(r.stdout+r.stderr, secret) {
				t.Errorf("a secret appears in the output:\n%s\n%s", r.stdout, r.stderr)
			}
		}
	}
	if bad.code != 1 {
		t.Errorf("unreachable API: exit %d, want 1 (%s)", bad.code, bad.stderr)
	}
}

func TestVersion(t *testing.T) {
	r := invoke(t, context.Background(), nil, "version")
	if r.code != 0 || !strings.Contains(r.stdout, "klaviyo-etl") || !strings.Contains(r.stdout, "go1.") {
		t.Errorf("version printed %q (exit %d)", r.stdout, r.code)
	}
}

// TestIndexedJobFanOut runs an Indexed-Job-style fan-out locally: three
// simulated accounts in one accounts file, three runs with
// JOB_COMPLETION_INDEX 0..2 into three schemas, one of them on a quarter of
// the budget.
func TestIndexedJobFanOut(t *testing.T) {
	url := pgtest.NewDatabase(t)
	dir := t.TempDir()
	var sims []*klaviyosim.Server
	var entries []string
	for i := 0; i < 3; i++ {
		key := fmt.Sprintf("pk_account_%d", i)
		sim, err := klaviyosim.NewServer(klaviyosim.Config{Profiles: 600 + 100*i, Seed: int64(100 + i), APIKey: key,
			Burst: klaviyosim.Limit{N: 1000, Per: time.Second}, Steady: klaviyosim.Limit{N: 100000, Per: time.Minute}})
		if err != nil {
			t.Fatal(err)
		}
		defer sim.Close()
		sims = append(sims, sim)
		keyFile := filepath.Join(dir, fmt.Sprintf("key-%d", i))
		if err := os.WriteFile(keyFile, []byte(key+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		share := ""
		if i == 1 {
			share = ", budget_share: 0.25"
		}
		entries = append(entries, fmt.Sprintf("  - {name: shop-%d, api_key_file: %s, pg_schema: shop_%d, base_url: %q%s}", i, keyFile, i, sim.URL(), share))
	}
	accountsFile := filepath.Join(dir, "accounts.yaml")
	if err := os.WriteFile(accountsFile, []byte("accounts:\n"+strings.Join(entries, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		env := map[string]string{"DATABASE_URL": url, "JOB_COMPLETION_INDEX": fmt.Sprint(i)}
		r := invoke(t, context.Background(), env, "run", "--sink", "postgres", "--accounts-file", accountsFile,
			"--page-size", "10", "--rate-burst", "80/1s", "--rate-steady", "4800/1m", "--log-level", "warn", "--progress", "never")
		if r.code != 0 {
			t.Fatalf("index %d exited %d: %s", i, r.code, r.stderr)
		}
	}
	// Account 1 writes at most 20 requests in any 1.1 s; the simulator
	// counts them as they arrive, in 1 s. One that reaches the handler over
	// 100 ms late (the process starved of CPU) shares a second with the
	// next 20. A stall delays only the requests in flight, one per chain,
	// two chains per core at the start; the share left unapplied, on either
	// window, would add dozens.
	const paced = 20 + 4
	for i, sim := range sims {
		schemaName := fmt.Sprintf("shop_%d", i)
		e2etest.CompareProfiles(t, e2etest.ReadPostgresProfiles(t, url, schemaName), sim.Profiles())
		c := sim.Counters()
		t.Logf("account %d: %d requests, at most %d in one second", i, c.Requests, c.MaxBurst)
		if i == 1 && c.MaxBurst > paced {
			t.Errorf("account 1 (budget share 0.25 of 80/1s) reached %d requests in a second, want at most 20 (%d with arrival delays)", c.MaxBurst, paced)
		}
		if i != 1 && c.MaxBurst <= paced {
			t.Errorf("account %d (full budget) peaked at %d requests/s: the fan-out did not use its budget, so the share test proves nothing", i, c.MaxBurst)
		}
	}
	// The schemas are independent: each holds only its account's profiles.
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	for i := 0; i < 3; i++ {
		var n int
		q := fmt.Sprintf(`SELECT count(*) FROM shop_%d.etl_runs WHERE status = 'succeeded'`, i)
		if err := conn.QueryRow(context.Background(), q).Scan(&n); err != nil || n != 1 {
			t.Errorf("schema shop_%d: %d succeeded runs (%v), want 1", i, n, err)
		}
	}
}

// TestDryRunWritesNothing checks the key with one request and the target
// without writing to it, for both sinks.
func TestDryRunWritesNothing(t *testing.T) {
	sim, err := klaviyosim.NewServer(klaviyosim.Config{Profiles: 50, Seed: 2, Unlimited: true})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	ctx := context.Background()
	out := filepath.Join(t.TempDir(), "export")
	r := invoke(t, ctx, simEnv(sim), "run", "--dry-run", "--out", out)
	if r.code != 0 || !strings.Contains(r.stdout, "dry run ok") {
		t.Fatalf("parquet dry run exited %d: %s %s", r.code, r.stdout, r.stderr)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("dry run created %s", out)
	}
	if got := sim.Counters().Requests; got != 1 {
		t.Errorf("dry run sent %d requests, want 1", got)
	}

	url := pgtest.NewDatabase(t)
	r = invoke(t, ctx, pgEnv(sim, url), "run", "--dry-run", "--sink", "postgres")
	if r.code != 0 || !strings.Contains(r.stdout, "migrations pending") {
		t.Fatalf("postgres dry run exited %d: %s %s", r.code, r.stdout, r.stderr)
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var schemas int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_namespace WHERE nspname = 'klaviyo'`).Scan(&schemas); err != nil || schemas != 0 {
		t.Errorf("dry run created the schema (%d, %v)", schemas, err)
	}

	bad := map[string]string{"KLAVIYO_API_KEY": "pk_wrong", "KLAVIYO_BASE_URL": sim.URL()}
	r = invoke(t, ctx, bad, "run", "--dry-run", "--out", out)
	if r.code != 1 || !strings.Contains(r.stderr, "401") {
		t.Errorf("dry run with a wrong key exited %d: %s", r.code, r.stderr)
	}
}

// TestMetricsMatchTheSummary writes and pushes the metrics of a run and
// checks them against the run's summary line.
func TestMetricsMatchTheSummary(t *testing.T) {
	sim, err := klaviyosim.NewServer(klaviyosim.Config{Profiles: 700, Seed: 4, Unlimited: true, FaultRate: 0.1,
		Faults: []klaviyosim.Fault{klaviyosim.Fault503}})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	var mu sync.Mutex
	var pushed, pushPath string
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		pushed, pushPath = string(b), r.Method+" "+r.URL.Path
		mu.Unlock()
	}))
	defer gw.Close()
	dir := t.TempDir()
	file := filepath.Join(dir, "klaviyo_etl.prom")
	r := invoke(t, context.Background(), simEnv(sim), "run", "--out", filepath.Join(dir, "export"),
		"--metrics-file", file, "--metrics-push-url", gw.URL, "--rate-burst", "500/1s", "--rate-steady", "30000/1m", "--log-level", "warn")
	if r.code != 0 {
		t.Fatalf("run exited %d: %s", r.code, r.stderr)
	}
	sum := summaryOf(t, r)
	written, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.HasPrefix(pushPath, "PUT /metrics/job/klaviyo_etl/") {
		t.Errorf("pushed to %q", pushPath)
	}
	for _, m := range []struct{ metric, field string }{
		{"klaviyo_etl_profiles", "profiles"},
		{"klaviyo_etl_rejects", "rejects"},
		{"klaviyo_etl_pages", "pages"},
		{"klaviyo_etl_requests", "requests"},
		{"klaviyo_etl_retries", "retries"},
		{"klaviyo_etl_rate_limited", "rate_limited"},
		{"klaviyo_etl_duplicates", "duplicates"},
	} {
		want := fmt.Sprint(sum[m.field])
		for name, text := range map[string]string{"file": string(written), "push": pushed} {
			if got := metricValue(text, m.metric+"{"); got != want {
				t.Errorf("%s: %s = %q, summary %s = %s", name, m.metric, got, m.field, want)
			}
		}
	}
	if sum["retries"].(float64) == 0 {
		t.Error("no retries with 10% faults: the retries figure is not exercised")
	}
	wantEnd, _ := time.Parse(time.RFC3339, sum["window_end"].(string))
	if got := metricValue(string(written), "klaviyo_etl_window_end_timestamp_seconds{"); got != fmt.Sprint(wantEnd.Unix()) {
		t.Errorf("window end metric %s, summary %s", got, sum["window_end"])
	}
}

// metricValue returns the value of the first sample whose line starts with prefix.
func metricValue(text, prefix string) string {
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, prefix) {
			return line[strings.LastIndexByte(line, ' ')+1:]
		}
	}
	return ""
}
