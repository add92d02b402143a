package metrics

import (
	"context"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var sampleRun = Run{
	Target:         "./out/acme",
	Status:         "succeeded",
	CursorField:    "created",
	Profiles:       12345,
	Relationships:  10,
	Rejects:        3,
	RejectedWhole:  1,
	Duplicates:     7,
	Pages:          124,
	Requests:       130,
	RequestsByCode: map[string]int64{"200": 124, "503": 4, "429": 2},
	RateLimited:    2,
	Retries:        6,
	NULValues:      1,
	Duration:       90 * time.Second,
	WindowEnd:      time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC),
	Lag:            95 * time.Second,
}

// samples parses "name{labels} value" lines into name{labels} → value.
func samples(t *testing.T, text string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
		if strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			t.Fatalf("malformed sample line %q", line)
		}
		out[line[:i]] = line[i+1:]
	}
	return out
}

func TestTextHoldsEveryFigure(t *testing.T) {
	text := string(sampleRun.Text())
	if !strings.HasSuffix(text, "# EOF\n") {
		t.Fatalf("OpenMetrics text must end with # EOF")
	}
	got := samples(t, text)
	l := `{target="./out/acme",cursor_field="created"`
	want := map[string]string{
		"klaviyo_etl_profiles" + l + "}":                        "12345",
		"klaviyo_etl_rejects" + l + "}":                         "3",
		"klaviyo_etl_pages" + l + "}":                           "124",
		"klaviyo_etl_rate_limited" + l + "}":                    "2",
		"klaviyo_etl_retries" + l + "}":                         "6",
		"klaviyo_etl_duration_seconds" + l + "}":                "90",
		"klaviyo_etl_lag_seconds" + l + "}":                     "95",
		"klaviyo_etl_window_end_timestamp_seconds" + l + "}":    "1795946400",
		"klaviyo_etl_requests_by_status" + l + `,status="503"}`: "4",
		"klaviyo_etl_last_run_success" + l + "}":                "1",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
}

func TestWriteFileIsAtomicAndComplete(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "klaviyo_etl.prom")
	if err := WriteFile(path, sampleRun); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != string(sampleRun.Text()) {
		t.Errorf("file content differs from Text()")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("folder holds %d entries, want only the metrics file", len(entries))
	}
}

func TestPushToARealEndpoint(t *testing.T) {
	var mu sync.Mutex
	var method, path, ctype, body string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		method, path, ctype, body = r.Method, r.URL.Path, r.Header.Get("Content-Type"), string(b)
		mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	if err := Push(context.Background(), srv.Client(), srv.URL, sampleRun); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if method != http.MethodPut {
		t.Errorf("method %s, want PUT (replace the group)", method)
	}
	wantPath := "/metrics/job/klaviyo_etl/target@base64/" + base64.RawURLEncoding.EncodeToString([]byte("./out/acme"))
	if path != wantPath {
		t.Errorf("path %s, want %s", path, wantPath)
	}
	if !strings.HasPrefix(ctype, "text/plain") {
		t.Errorf("content type %q", ctype)
	}
	if strings.Contains(body, "# EOF") || strings.Contains(body, `target="`) {
		t.Errorf("pushed body must drop # EOF and the grouping label:\n%s", body)
	}
	got := samples(t, body)
	if v := got[`klaviyo_etl_profiles{cursor_field="created"}`]; v != "12345" {
		t.Errorf("pushed profiles = %q, want 12345", v)
	}
}

func TestPushReportsServerErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "bad metric", http.StatusBadRequest)
	}))
	defer srv.Close()
	err := Push(context.Background(), srv.Client(), srv.URL, sampleRun)
	if err == nil || !strings.Contains(err.Error(), "bad metric") {
		t.Fatalf("err = %v, want the gateway's message", err)
	}
	if err := Push(context.Background(), nil, "ftp://x", sampleRun); err == nil {
		t.Fatal("a non-HTTP URL must be refused")
	}
}
