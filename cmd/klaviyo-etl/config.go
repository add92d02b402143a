package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/klaviyo-etl/klaviyo-etl/accounts"
	"github.com/klaviyo-etl/klaviyo-etl/extract"
	"github.com/klaviyo-etl/klaviyo-etl/schema"
)

// runConfig is everything `run` is told by flags and the environment.
type runConfig struct {
	APIKey, APIKeyFile string
	BaseURL            string
	Revision           string
	Sink               string
	Out                string
	DatabaseURL        string
	PGSchema           string
	PageSize           int
	RateBurst          string
	RateSteady         string
	Concurrency        string
	Since, Until       string
	FullRefresh        bool
	Lookback           time.Duration
	CursorField        string
	AdditionalFields   string
	Include            string
	LogLevel           string
	LogFormat          string
	Progress           string
	RequestTimeout     time.Duration
	RetryDeadline      time.Duration
	BudgetShare        float64
	DryRun             bool
	NoMigrate          bool
	MetricsFile        string
	MetricsPushURL     string
	CheckpointRows     int
	CheckpointInterval time.Duration
	Compression        string
	AccountsFile       string
	Account            string

	// derived by resolve
	burst, steady extract.Rate
	concurrency   int
	since, until  time.Time
}

const (
	defaultBaseURL  = "https://a.klaviyo.com"
	defaultRevision = "2026-07-15"
	defaultOut      = "./klaviyo-export"
)

// sinkFlags registers the flags that name a target; run, state and migrate share them.
func sinkFlags(fs *flag.FlagSet, c *runConfig, e *env) {
	getenv := e.getenv
	fs.StringVar(&c.Sink, "sink", envOr(getenv, "KLAVIYO_ETL_SINK", "parquet"), "destination: parquet or postgres [KLAVIYO_ETL_SINK]")
	fs.StringVar(&c.Out, "out", envOr(getenv, "KLAVIYO_ETL_OUT", defaultOut), "Parquet output folder [KLAVIYO_ETL_OUT]")
	fs.StringVar(&c.PGSchema, "pg-schema", envOr(getenv, "KLAVIYO_ETL_PG_SCHEMA", "klaviyo"), "PostgreSQL schema [KLAVIYO_ETL_PG_SCHEMA]")
	// The database URL may hold a password: its default is read after
	// parsing so -h never prints it.
	fs.StringVar(&c.DatabaseURL, "database-url", "", "PostgreSQL URL [DATABASE_URL]")
}

func runFlags(fs *flag.FlagSet, c *runConfig, e *env) {
	getenv := e.getenv
	sinkFlags(fs, c, e)
	fs.StringVar(&c.APIKey, "api-key", "", "Klaviyo private API key [KLAVIYO_API_KEY]; prefer --api-key-file")
	fs.StringVar(&c.APIKeyFile, "api-key-file", getenv("KLAVIYO_API_KEY_FILE"), "file holding the API key [KLAVIYO_API_KEY_FILE]")
	fs.StringVar(&c.BaseURL, "base-url", envOr(getenv, "KLAVIYO_BASE_URL", defaultBaseURL), "Klaviyo API base URL [KLAVIYO_BASE_URL]")
	fs.StringVar(&c.Revision, "revision", envOr(getenv, "KLAVIYO_REVISION", defaultRevision), "Klaviyo API revision [KLAVIYO_REVISION]")
	fs.IntVar(&c.PageSize, "page-size", e.int("KLAVIYO_ETL_PAGE_SIZE", 100), "profiles per page, 1..100 [KLAVIYO_ETL_PAGE_SIZE]")
	fs.StringVar(&c.RateBurst, "rate-burst", getenv("KLAVIYO_ETL_RATE_BURST"), "burst budget N/DUR (default: the revision's, e.g. 75/1s) [KLAVIYO_ETL_RATE_BURST]")
	fs.StringVar(&c.RateSteady, "rate-steady", getenv("KLAVIYO_ETL_RATE_STEADY"), "steady budget N/DUR (default: the revision's, e.g. 750/1m) [KLAVIYO_ETL_RATE_STEADY]")
	fs.StringVar(&c.Concurrency, "concurrency", envOr(getenv, "KLAVIYO_ETL_CONCURRENCY", "auto"), "time slices walked at once: N or auto [KLAVIYO_ETL_CONCURRENCY]")
	fs.StringVar(&c.Since, "since", getenv("KLAVIYO_ETL_SINCE"), "first run: start of the window (RFC 3339 or YYYY-MM-DD) [KLAVIYO_ETL_SINCE]")
	fs.StringVar(&c.Until, "until", getenv("KLAVIYO_ETL_UNTIL"), "end of the window (default: now minus a few seconds) [KLAVIYO_ETL_UNTIL]")
	fs.BoolVar(&c.FullRefresh, "full-refresh", e.bool("KLAVIYO_ETL_FULL_REFRESH"), "start over into a new generation [KLAVIYO_ETL_FULL_REFRESH]")
	fs.DurationVar(&c.Lookback, "lookback", e.duration("KLAVIYO_ETL_LOOKBACK", 10*time.Minute), "re-read this much before the committed end [KLAVIYO_ETL_LOOKBACK]")
	fs.StringVar(&c.CursorField, "cursor-field", envOr(getenv, "KLAVIYO_ETL_CURSOR_FIELD", schema.CursorCreated), "created (new profiles) or updated (new and edited) [KLAVIYO_ETL_CURSOR_FIELD]")
	fs.StringVar(&c.AdditionalFields, "additional-fields", getenv("KLAVIYO_ETL_ADDITIONAL_FIELDS"), "comma list: subscriptions, predictive_analytics [KLAVIYO_ETL_ADDITIONAL_FIELDS]")
	fs.StringVar(&c.Include, "include", getenv("KLAVIYO_ETL_INCLUDE"), "comma list of relationships to include, e.g. lists,segments (revisions 2025-04-15..2025-10-15) [KLAVIYO_ETL_INCLUDE]")
	fs.StringVar(&c.LogLevel, "log-level", envOr(getenv, "KLAVIYO_ETL_LOG_LEVEL", "info"), "debug, info, warn, error [KLAVIYO_ETL_LOG_LEVEL]")
	fs.StringVar(&c.LogFormat, "log-format", envOr(getenv, "KLAVIYO_ETL_LOG_FORMAT", "auto"), "json, console or auto [KLAVIYO_ETL_LOG_FORMAT]")
	fs.StringVar(&c.Progress, "progress", envOr(getenv, "KLAVIYO_ETL_PROGRESS", "auto"), "live progress line: auto, always, never [KLAVIYO_ETL_PROGRESS]")
	fs.DurationVar(&c.RequestTimeout, "request-timeout", e.duration("KLAVIYO_ETL_REQUEST_TIMEOUT", 30*time.Second), "abandon and retry a request after this long [KLAVIYO_ETL_REQUEST_TIMEOUT]")
	fs.DurationVar(&c.RetryDeadline, "retry-deadline", e.duration("KLAVIYO_ETL_RETRY_DEADLINE", 10*time.Minute), "give up on a page after retrying this long [KLAVIYO_ETL_RETRY_DEADLINE]")
	fs.Float64Var(&c.BudgetShare, "budget-share", e.float("KLAVIYO_ETL_BUDGET_SHARE", 1), "share of the account's rate budget to use, (0,1] [KLAVIYO_ETL_BUDGET_SHARE]")
	fs.BoolVar(&c.DryRun, "dry-run", e.bool("KLAVIYO_ETL_DRY_RUN"), "check configuration, key and target, write nothing [KLAVIYO_ETL_DRY_RUN]")
	fs.BoolVar(&c.NoMigrate, "no-migrate", e.bool("KLAVIYO_ETL_NO_MIGRATE"), "postgres: do not apply pending migrations [KLAVIYO_ETL_NO_MIGRATE]")
	fs.StringVar(&c.MetricsFile, "metrics-file", getenv("KLAVIYO_ETL_METRICS_FILE"), "write OpenMetrics text here at the end (node_exporter textfile) [KLAVIYO_ETL_METRICS_FILE]")
	fs.StringVar(&c.MetricsPushURL, "metrics-push-url", getenv("KLAVIYO_ETL_METRICS_PUSH_URL"), "Prometheus Pushgateway URL to push to at the end [KLAVIYO_ETL_METRICS_PUSH_URL]")
	fs.IntVar(&c.CheckpointRows, "checkpoint-rows", e.int("KLAVIYO_ETL_CHECKPOINT_ROWS", 100_000), "commit at least every N profiles [KLAVIYO_ETL_CHECKPOINT_ROWS]")
	fs.DurationVar(&c.CheckpointInterval, "checkpoint-interval", e.duration("KLAVIYO_ETL_CHECKPOINT_INTERVAL", 30*time.Second), "commit at least this often [KLAVIYO_ETL_CHECKPOINT_INTERVAL]")
	fs.StringVar(&c.AccountsFile, "accounts-file", getenv("KLAVIYO_ETL_ACCOUNTS_FILE"), "accounts file for a fan-out: the entry at JOB_COMPLETION_INDEX (or --account) sets the key file, target and budget share [KLAVIYO_ETL_ACCOUNTS_FILE]")
	fs.StringVar(&c.Account, "account", getenv("KLAVIYO_ETL_ACCOUNT"), "with --accounts-file: the account to run by name instead of by JOB_COMPLETION_INDEX [KLAVIYO_ETL_ACCOUNT]")
	fs.StringVar(&c.Compression, "compression", envOr(getenv, "KLAVIYO_ETL_COMPRESSION", "zstd"), "parquet: zstd, snappy, gzip or none [KLAVIYO_ETL_COMPRESSION]")
}

// resolveSecrets fills the values that must not appear as flag defaults.
func (c *runConfig) resolveSecrets(getenv func(string) string) error {
	if c.DatabaseURL == "" {
		c.DatabaseURL = getenv("DATABASE_URL")
	}
	if c.APIKey == "" && c.AccountsFile == "" {
		// An account of --accounts-file always uses its own key file.
		c.APIKey = getenv("KLAVIYO_API_KEY")
	}
	if c.APIKey == "" && c.APIKeyFile != "" {
		b, err := os.ReadFile(c.APIKeyFile)
		if err != nil {
			return usagef("--api-key-file: %w", err)
		}
		c.APIKey = strings.TrimSpace(string(b))
		if c.APIKey == "" {
			return usagef("--api-key-file %s is empty", c.APIKeyFile)
		}
	}
	return nil
}

// resolve validates the flags and derives typed values.
func (c *runConfig) resolve(getenv func(string) string) error {
	if err := c.applyAccount(getenv); err != nil {
		return err
	}
	if err := c.resolveSecrets(getenv); err != nil {
		return err
	}
	if c.APIKey == "" {
		return usagef("no API key: set KLAVIYO_API_KEY, --api-key-file or --api-key (try `klaviyo-etl demo` to see the job work without one)")
	}
	if err := c.checkSink(); err != nil {
		return err
	}
	if c.PageSize < 1 || c.PageSize > 100 {
		return usagef("--page-size %d: Klaviyo accepts 1..100", c.PageSize)
	}
	var err error
	if c.RateBurst != "" {
		if c.burst, err = extract.ParseRate(c.RateBurst); err != nil {
			return usagef("--rate-burst: %w", err)
		}
	}
	if c.RateSteady != "" {
		if c.steady, err = extract.ParseRate(c.RateSteady); err != nil {
			return usagef("--rate-steady: %w", err)
		}
	}
	switch c.Concurrency {
	case "", "auto":
		c.concurrency = 0
	default:
		n, err := strconv.Atoi(c.Concurrency)
		if err != nil || n < 1 || n > 256 {
			return usagef("--concurrency %q: want auto or a number from 1 to 256", c.Concurrency)
		}
		c.concurrency = n
	}
	if c.since, err = parseTime(c.Since); err != nil {
		return usagef("--since: %w", err)
	}
	if c.until, err = parseTime(c.Until); err != nil {
		return usagef("--until: %w", err)
	}
	if !c.since.IsZero() && !c.until.IsZero() && !c.since.Before(c.until) {
		return usagef("--since must be before --until")
	}
	if c.Lookback < 0 {
		return usagef("--lookback must not be negative")
	}
	if c.CursorField != schema.CursorCreated && c.CursorField != schema.CursorUpdated {
		return usagef("--cursor-field %q: want created or updated", c.CursorField)
	}
	if !(c.BudgetShare > 0 && c.BudgetShare <= 1) {
		return usagef("--budget-share %v: want a number in (0, 1]", c.BudgetShare)
	}
	if c.RequestTimeout <= 0 {
		return usagef("--request-timeout must be positive")
	}
	if c.CheckpointRows < 1 {
		return usagef("--checkpoint-rows must be positive")
	}
	if c.CheckpointInterval <= 0 {
		return usagef("--checkpoint-interval must be positive")
	}
	switch c.Progress {
	case "auto", "always", "never":
	default:
		return usagef("--progress %q: want auto, always or never", c.Progress)
	}
	return nil
}

func (c *runConfig) checkSink() error {
	switch c.Sink {
	case "parquet":
		if c.Out == "" {
			return usagef("--out must not be empty")
		}
	case "postgres":
		if c.DatabaseURL == "" {
			return usagef("--sink postgres needs --database-url or DATABASE_URL")
		}
		if c.PGSchema == "" {
			return usagef("--pg-schema must not be empty")
		}
	default:
		return usagef("--sink %q: want parquet or postgres", c.Sink)
	}
	return nil
}

// parseTime accepts RFC 3339 or a date; times without a zone are UTC.
func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a time (want RFC 3339, e.g. 2024-01-31T00:00:00Z, or 2024-01-31)", s)
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// env reads typed defaults from the environment and remembers the values
// that do not parse, so a typo in a CronJob's env fails the run instead of
// silently falling back to a default.
type env struct {
	getenv func(string) string
	errs   []error
}

func (e *env) str(key, def string) string { return envOr(e.getenv, key, def) }

func (e *env) bad(key, v, want string) {
	e.errs = append(e.errs, fmt.Errorf("%s=%q: want %s", key, v, want))
}

func (e *env) int(key string, def int) int {
	v := e.getenv(key)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		e.bad(key, v, "an integer")
		return def
	}
	return n
}

func (e *env) float(key string, def float64) float64 {
	v := e.getenv(key)
	if v == "" {
		return def
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		e.bad(key, v, "a number")
		return def
	}
	return f
}

func (e *env) bool(key string) bool {
	v := e.getenv(key)
	if v == "" {
		return false
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		e.bad(key, v, "true or false")
	}
	return b
}

func (e *env) duration(key string, def time.Duration) time.Duration {
	v := e.getenv(key)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		e.bad(key, v, "a duration such as 30s or 10m")
		return def
	}
	return d
}

// err returns the environment errors found, as a usage error.
func (e *env) err() error {
	if len(e.errs) == 0 {
		return nil
	}
	return usageError{errors.Join(e.errs...)}
}

// printDefaults keeps `run -h` readable.
func printUsage(fs *flag.FlagSet, w io.Writer, synopsis string) {
	fs.Usage = func() {
		fmt.Fprintf(w, "Usage: %s\n\nFlags (each also read from the environment variable in brackets):\n", synopsis)
		fs.PrintDefaults()
	}
}

// applyAccount picks this process's entry of --accounts-file: the one named
// by --account, or the one at the Indexed Job's JOB_COMPLETION_INDEX. The
// entry's key file, target and budget share replace the flags'.
func (c *runConfig) applyAccount(getenv func(string) string) error {
	if c.AccountsFile == "" {
		if c.Account != "" {
			return usagef("--account needs --accounts-file")
		}
		return nil
	}
	f, err := accounts.Load(c.AccountsFile)
	if err != nil {
		return usageError{err}
	}
	var a accounts.Account
	if c.Account != "" {
		a, err = f.Named(c.Account)
	} else {
		var i int
		if i, err = accounts.IndexFromEnv(getenv); err == nil {
			a, err = f.Pick(i)
		}
	}
	if err != nil {
		return usageError{err}
	}
	c.Account = a.Name
	c.APIKey, c.APIKeyFile = "", a.APIKeyFile
	switch c.Sink {
	case "postgres":
		if a.PGSchema == "" {
			return usagef("account %s has no pg_schema for --sink postgres", a.Name)
		}
		c.PGSchema = a.PGSchema
	default:
		if a.Out == "" {
			return usagef("account %s has no out folder for --sink parquet", a.Name)
		}
		c.Out = a.Out
	}
	if a.BudgetShare > 0 {
		c.BudgetShare = a.BudgetShare
	}
	if a.BaseURL != "" {
		c.BaseURL = a.BaseURL
	}
	if a.Revision != "" {
		c.Revision = a.Revision
	}
	return nil
}
