package metrics

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Run is what a finished run reports; every field becomes a metric.
type Run struct {
	Target         string // sink target, a label: the Parquet folder or the PostgreSQL schema
	Status         string // succeeded, failed, interrupted
	CursorField    string
	Profiles       int64
	Relationships  int64
	Rejects        int64
	RejectedWhole  int64
	Duplicates     int64
	Pages          int64
	Requests       int64
	RequestsByCode map[string]int64
	RateLimited    int64
	Retries        int64
	NULValues      int64
	Duration       time.Duration
	WindowEnd      time.Time
	// Lag is how far the committed window end trails the end of the run.
	Lag time.Duration
}

type metric struct {
	name, help, typ string
	samples         []sample
}

type sample struct {
	labels string
	value  float64
}

func (r Run) metrics() []metric {
	g := func(name, help string, v float64) metric {
		return metric{name: name, help: help, typ: "gauge", samples: []sample{{value: v}}}
	}
	byCode := metric{name: "klaviyo_etl_requests_by_status", help: "HTTP requests of the last run by response status.", typ: "gauge"}
	codes := make([]string, 0, len(r.RequestsByCode))
	for c := range r.RequestsByCode {
		codes = append(codes, c)
	}
	sort.Strings(codes)
	for _, c := range codes {
		byCode.samples = append(byCode.samples, sample{labels: `status="` + escape(c) + `"`, value: float64(r.RequestsByCode[c])})
	}
	succeeded := 0.0
	if r.Status == "succeeded" {
		succeeded = 1
	}
	ms := []metric{
		g("klaviyo_etl_last_run_success", "1 when the last run succeeded, else 0.", succeeded),
		g("klaviyo_etl_last_run_timestamp_seconds", "When the last run ended, Unix seconds.", float64(r.WindowEnd.Add(r.Lag).Unix())),
		g("klaviyo_etl_profiles", "Profile rows written by the last run.", float64(r.Profiles)),
		g("klaviyo_etl_relationships", "Relationship rows written by the last run.", float64(r.Relationships)),
		g("klaviyo_etl_rejects", "Reject rows written by the last run.", float64(r.Rejects)),
		g("klaviyo_etl_rejected_records", "Records the last run could not load at all (kept in profile_rejects).", float64(r.RejectedWhole)),
		g("klaviyo_etl_duplicates", "Profile versions read again and skipped by the last run.", float64(r.Duplicates)),
		g("klaviyo_etl_pages", "Pages read by the last run.", float64(r.Pages)),
		g("klaviyo_etl_requests", "HTTP requests sent by the last run.", float64(r.Requests)),
		byCode,
		g("klaviyo_etl_rate_limited", "429 responses received by the last run.", float64(r.RateLimited)),
		g("klaviyo_etl_retries", "Requests retried by the last run.", float64(r.Retries)),
		g("klaviyo_etl_nul_values", "String values holding U+0000 seen by the last run.", float64(r.NULValues)),
		g("klaviyo_etl_duration_seconds", "Duration of the last run.", r.Duration.Seconds()),
		g("klaviyo_etl_window_end_timestamp_seconds", "Committed window end of the last run, Unix seconds.", float64(r.WindowEnd.Unix())),
		g("klaviyo_etl_lag_seconds", "How far the committed window end trails the end of the last run.", r.Lag.Seconds()),
	}
	return ms
}

// Text renders the metrics in the OpenMetrics text format, ending in # EOF.
func (r Run) Text() []byte {
	var b bytes.Buffer
	base := `target="` + escape(r.Target) + `",cursor_field="` + escape(r.CursorField) + `"`
	for _, m := range r.metrics() {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n", m.name, m.help, m.name, m.typ)
		for _, s := range m.samples {
			labels := base
			if s.labels != "" {
				labels += "," + s.labels
			}
			fmt.Fprintf(&b, "%s{%s} %s\n", m.name, labels, strconv.FormatFloat(s.value, 'f', -1, 64))
		}
	}
	b.WriteString("# EOF\n")
	return b.Bytes()
}

// WriteFile writes the metrics atomically (temporary file, then rename), so
// node_exporter never reads half a file.
func WriteFile(path string, r Run) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("metrics file: %w", err)
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(r.Text()); err != nil {
		f.Close()
		return fmt.Errorf("metrics file: %w", err)
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return fmt.Errorf("metrics file: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("metrics file: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("metrics file: %w", err)
	}
	return nil
}

// Push replaces the metrics of job klaviyo_etl (grouped by target) on a
// Pushgateway at base, e.g. http://pushgateway:9091.
func Push(ctx context.Context, client *http.Client, base string, r Run) error {
	u, err := url.Parse(strings.TrimRight(base, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("metrics push url %q: want http(s)://host:port", base)
	}
	target := r.Target
	if target == "" {
		target = "default"
	}
	// Targets are folders or schema names: base64url keeps slashes out of
	// the grouping path.
	u = u.JoinPath("metrics", "job", "klaviyo_etl", "target@base64", base64.RawURLEncoding.EncodeToString([]byte(target)))
	// The Pushgateway's text parser predates OpenMetrics' # EOF line and
	// labels given in the path must not repeat in the body.
	body := strings.TrimSuffix(string(r.Text()), "# EOF\n")
	body = strings.ReplaceAll(body, `target="`+escape(r.Target)+`",`, "")
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, u.String(), strings.NewReader(body))
	if err != nil {
		return fmt.Errorf("metrics push: %w", err)
	}
	req.Header.Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("metrics push to %s: %w", u.Redacted(), err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("metrics push to %s: %s: %s", u.Redacted(), resp.Status, strings.TrimSpace(string(msg)))
	}
	return nil
}

func escape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s)
}
