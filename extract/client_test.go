package extract

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

var t0 = time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)

func oneSlice(start, end time.Time) Window {
	return Window{Field: "created", Slices: []Slice{{Start: start, End: end, Done: start}}}
}

func TestNewValidates(t *testing.T) {
	ok := Config{APIKey: testKey, Revision: "2026-07-15"}
	tests := []struct {
		name string
		mod  func(*Config)
	}{
		{"no key", func(c *Config) { c.APIKey = "" }},
		{"key with newline", func(c *Config) { c.APIKey = testKey + "\r\nX-Evil: 1" }},
		{"no revision", func(c *Config) { c.Revision = "" }},
		{"bad revision", func(c *Config) { c.Revision = "latest" }},
		{"bad base url", func(c *Config) { c.BaseURL = "ftp://x" }},
		{"base url with query", func(c *Config) { c.BaseURL = "https://a.klaviyo.com/?x=1" }},
		{"page size 0 < n", func(c *Config) { c.PageSize = 101 }},
		{"negative page size", func(c *Config) { c.PageSize = -1 }},
		{"bad rate", func(c *Config) { c.Burst = Rate{N: 0, Per: time.Second} }},
		{"share above 1", func(c *Config) { c.BudgetShare = 1.5 }},
		{"negative share", func(c *Config) { c.BudgetShare = -0.5 }},
		{"negative concurrency", func(c *Config) { c.Concurrency = -1 }},
		{"field with comma", func(c *Config) { c.Fields = []string{"email,created"} }},
		{"min above max backoff", func(c *Config) { c.MinBackoff = time.Second; c.MaxBackoff = time.Millisecond }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := ok
			tt.mod(&cfg)
			_, err := New(cfg)
			if err == nil {
				t.Fatal("accepted")
			}
			if strings.Contains(err.Error(), testKey) {
				t.Fatalf("error carries the key: %v", err)
			}
		})
	}
	c, err := New(ok)
	if err != nil {
		t.Fatal(err)
	}
	if b, s := c.Budget(); b != (Rate{75, time.Second}) || s != (Rate{750, time.Minute}) {
		t.Errorf("default budget %v %v", b, s)
	}
	share := ok
	share.BudgetShare = 0.5
	share.AdditionalFields = []string{"predictive_analytics"}
	c, err = New(share)
	if err != nil {
		t.Fatal(err)
	}
	if b, s := c.Budget(); b != (Rate{5, time.Second}) || s != (Rate{75, time.Minute}) {
		t.Errorf("half of predictive budget = %v %v", b, s)
	}
}

func TestRequestShape(t *testing.T) {
	f := newFakeAPI(t, profilesEvery(t0, 5, time.Second))
	c, _ := testClient(t, f.srv.URL, func(cfg *Config) {
		cfg.PageSize = 2
		cfg.Fields = []string{"email"}
		cfg.AdditionalFields = []string{"subscriptions"}
		cfg.Include = []string{"push-tokens"}
		cfg.Concurrency = 1
	})
	col := newCollector(t, f.profiles)
	start, end := t0.Add(500*time.Millisecond), t0.Add(10*time.Second)
	if err := c.Walk(context.Background(), oneSlice(start, end), col.fn); err != nil {
		t.Fatal(err)
	}
	reqs := f.requests()
	if len(reqs) != 3 {
		t.Fatalf("%d requests, want 3", len(reqs))
	}
	for i, r := range reqs {
		if got := r.Header.Get("Authorization"); got != "Klaviyo-API-Key "+testKey {
			t.Errorf("request %d: Authorization %q", i, got)
		}
		if got := r.Header.Get("revision"); got != "2026-07-15" {
			t.Errorf("request %d: revision %q", i, got)
		}
		if got := r.Header.Get("Accept"); got != "application/vnd.api+json" {
			t.Errorf("request %d: Accept %q", i, got)
		}
		if got := r.Header.Get("Accept-Encoding"); !strings.Contains(got, "gzip") {
			t.Errorf("request %d: Accept-Encoding %q", i, got)
		}
		if r.URL.Path != "/api/profiles" {
			t.Errorf("request %d: path %q", i, r.URL.Path)
		}
		q := r.URL.Query()
		want := map[string]string{
			// start 00:00:00.5 floors to 00:00:00, minus the second that
			// greater-than skips; end is whole already.
			"filter":                     "greater-than(created,2024-02-29T23:59:59Z),less-than(created,2024-03-01T00:00:10Z)",
			"sort":                       "created",
			"page[size]":                 "2",
			"fields[profile]":            "email,created",
			"additional-fields[profile]": "subscriptions",
			"include":                    "push-tokens",
		}
		for k, v := range want {
			if got := q.Get(k); got != v {
				t.Errorf("request %d: %s = %q, want %q", i, k, got, v)
			}
		}
		if i > 0 && q.Get("page[cursor]") == "" {
			t.Errorf("request %d has no page[cursor]", i)
		}
		if strings.Contains(r.URL.RawQuery, "+") || strings.Contains(r.URL.RawQuery, "(created,2024") {
			t.Errorf("request %d: filter not URL-encoded: %s", i, r.URL.RawQuery)
		}
	}
	// The record at 00:00:00 lies before the window start (00:00:00.5).
	col.checkComplete(start, end, true)
	if got := c.Stats().OutOfSlice; got != 1 {
		t.Errorf("OutOfSlice = %d, want 1", got)
	}
}

func TestNonRetryableStatuses(t *testing.T) {
	tests := []struct {
		status   int
		code     string
		detail   string
		param    string
		wantText []string
	}{
		{400, "invalid", "Invalid input.", "filter", []string{"400", "Invalid input.", "filter"}},
		{400, "invalid", "Invalid revision header: 2019-01-01", "revision", []string{"change --revision"}},
		{401, "not_authenticated", "Incorrect authentication credentials.", "", []string{"401", "profiles:read", "--api-key"}},
		{403, "permission_denied", "You do not have permission to perform this action.", "", []string{"403", "profiles:read"}},
		{404, "not_found", "Not found.", "", []string{"404", "--base-url"}},
		{410, "gone", "This revision is no longer supported.", "", []string{"410", "change --revision"}},
		{405, "method_not_allowed", "Method not allowed.", "", []string{"405"}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d %s", tt.status, tt.param), func(t *testing.T) {
			f := newFakeAPI(t, profilesEvery(t0, 5, time.Second))
			f.tamper = func(w http.ResponseWriter, r *http.Request, n int) bool {
				w.Header().Set("X-Request-Id", "req-42")
				writeJSON(w, tt.status, apiErrorBody(tt.status, tt.code, tt.detail, tt.param))
				return true
			}
			c, logs := testClient(t, f.srv.URL, func(cfg *Config) { cfg.Concurrency = 1 })
			err := c.Walk(context.Background(), oneSlice(t0, t0.Add(time.Hour)), newCollector(t, nil).fn)
			var ae *APIError
			if !errors.As(err, &ae) {
				t.Fatalf("err %v is not an *APIError", err)
			}
			if ae.Status != tt.status || ae.Code != tt.code || ae.Detail != tt.detail || ae.Parameter != tt.param || ae.RequestID != "req-42" {
				t.Errorf("APIError %+v", ae)
			}
			for _, s := range tt.wantText {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
			if n := len(f.requests()); n != 1 {
				t.Errorf("%d requests, want 1 (no retry)", n)
			}
			if strings.Contains(err.Error(), testKey) || strings.Contains(logs.String(), testKey) {
				t.Error("key leaked into the error or the log")
			}
		})
	}
}

func TestWrongKeyIs401(t *testing.T) {
	f := newFakeAPI(t, nil)
	c, _ := testClient(t, f.srv.URL, func(cfg *Config) { cfg.APIKey = "pk_wrong_key_value" })
	err := c.Probe(context.Background())
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != 401 {
		t.Fatalf("err = %v", err)
	}
	if strings.Contains(err.Error(), "pk_wrong_key_value") {
		t.Fatal("key in error")
	}
}

// flaky answers the first n requests with a fault, then serves normally.
func flaky(n int, fault func(w http.ResponseWriter, r *http.Request)) func(http.ResponseWriter, *http.Request, int) bool {
	return func(w http.ResponseWriter, r *http.Request, i int) bool {
		if i > n {
			return false
		}
		fault(w, r)
		return true
	}
}

func TestRetryableFaults(t *testing.T) {
	status := func(code int) func(http.ResponseWriter, *http.Request) {
		return func(w http.ResponseWriter, r *http.Request) {
			if code == 429 {
				w.Header().Set("Retry-After", "0")
			}
			writeJSON(w, code, apiErrorBody(code, "error", "try again", ""))
		}
	}
	hijack := func(write string) func(http.ResponseWriter, *http.Request) {
		return func(w http.ResponseWriter, r *http.Request) {
			conn, buf, err := w.(http.Hijacker).Hijack()
			if err != nil {
				panic(err)
			}
			buf.WriteString(write)
			buf.Flush()
			if tc, ok := conn.(*net.TCPConn); ok {
				tc.SetLinger(0) // RST, not FIN
			}
			conn.Close()
		}
	}
	tests := []struct {
		name  string
		fault func(http.ResponseWriter, *http.Request)
	}{
		{"429", status(429)},
		{"500", status(500)},
		{"502", status(502)},
		{"503", status(503)},
		{"504", status(504)},
		{"524", status(524)},
		{"connection reset", hijack("")},
		{"truncated body", hijack("HTTP/1.1 200 OK\r\nContent-Type: application/vnd.api+json\r\nContent-Length: 500\r\n\r\n{\"data\":[{\"id\":\"x\"")},
		{"truncated chunked body", hijack("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n{\"data\":[{\"id\":\"x")},
		{"invalid json", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, `{"data":[{"id":"x",}]}`) }},
		{"html 200", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, `<html>maintenance</html>`) }},
		{"hung response", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(200)
			w.Write([]byte(`{"data":[`))
			w.(http.Flusher).Flush()
			<-r.Context().Done() // until the client abandons it
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			all := profilesEvery(t0, 7, time.Second)
			f := newFakeAPI(t, all)
			f.tamper = flaky(3, tt.fault)
			c, logs := testClient(t, f.srv.URL, func(cfg *Config) {
				cfg.PageSize = 3
				cfg.Concurrency = 1
				if tt.name == "hung response" {
					// Only the hang needs a short timeout to be abandoned.
					// The other attempts of this case must end within it
					// too, or one more is retried and Retries is off: a
					// second leaves room for a loaded machine.
					cfg.RequestTimeout = time.Second
				}
			})
			col := newCollector(t, all)
			if err := c.Walk(context.Background(), oneSlice(t0, t0.Add(time.Hour)), col.fn); err != nil {
				t.Fatal(err)
			}
			col.checkComplete(t0, t0.Add(time.Hour), true)
			st := c.Stats()
			if st.Retries != 3 {
				t.Errorf("Retries = %d, want 3", st.Retries)
			}
			if st.Pages != 3 {
				t.Errorf("Pages = %d, want 3", st.Pages)
			}
			if strings.Contains(logs.String(), testKey) {
				t.Error("key in log")
			}
		})
	}
}

func TestRetryDeadline(t *testing.T) {
	f := newFakeAPI(t, nil)
	f.tamper = func(w http.ResponseWriter, r *http.Request, n int) bool {
		writeJSON(w, 503, apiErrorBody(503, "unavailable", "down for "+testKey, ""))
		return true
	}
	// The deadline is checked after each attempt: it must outlast the first
	// one (a dial, the handler, the 503) on a loaded machine, or the fetch
	// gives up without a retry. With backoffs of 1-5 ms a second still
	// holds many.
	c, _ := testClient(t, f.srv.URL, func(cfg *Config) { cfg.RetryDeadline = time.Second })
	err := c.Probe(context.Background())
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != 503 {
		t.Fatalf("err = %v, want a 503 *APIError", err)
	}
	if !strings.Contains(err.Error(), "giving up after") || strings.Contains(err.Error(), testKey) {
		t.Errorf("error %q", err)
	}
	if n := len(f.requests()); n < 2 {
		t.Errorf("%d requests: no retry before the deadline", n)
	}
}

func TestForeignNextRefused(t *testing.T) {
	var foreign atomic.Int64
	var foreignAuth atomic.Value
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		foreign.Add(1)
		foreignAuth.Store(r.Header.Get("Authorization"))
		writeJSON(w, 200, `{"data":[]}`)
	}))
	defer other.Close()
	for _, tc := range []struct{ name, link string }{
		{"other host", other.URL + "/api/profiles?page%5Bcursor%5D=off2"},
		{"other scheme", strings.Replace(other.URL, "http://", "https://", 1) + "/api/profiles?page%5Bcursor%5D=off2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeAPI(t, profilesEvery(t0, 5, time.Second))
			f.nextLink = func(r *http.Request, cursor string) string { return tc.link }
			c, _ := testClient(t, f.srv.URL, func(cfg *Config) { cfg.PageSize = 2 })
			err := c.Walk(context.Background(), oneSlice(t0, t0.Add(time.Hour)), newCollector(t, nil).fn)
			if !errors.Is(err, ErrForeignNext) {
				t.Fatalf("err = %v, want ErrForeignNext", err)
			}
			if foreign.Load() != 0 {
				t.Fatalf("foreign host got %d requests (Authorization %v)", foreign.Load(), foreignAuth.Load())
			}
		})
	}
	t.Run("redirect", func(t *testing.T) {
		f := newFakeAPI(t, nil)
		f.tamper = func(w http.ResponseWriter, r *http.Request, n int) bool {
			http.Redirect(w, r, other.URL+"/api/profiles", http.StatusFound)
			return true
		}
		c, _ := testClient(t, f.srv.URL, nil)
		if err := c.Probe(context.Background()); !errors.Is(err, ErrForeignNext) {
			t.Fatalf("err = %v", err)
		}
		if foreign.Load() != 0 {
			t.Fatal("redirect followed to a foreign host")
		}
	})
}

func TestCursorLoop(t *testing.T) {
	all := profilesEvery(t0, 10, time.Second)
	tests := []struct {
		name string
		next func(r *http.Request, cursor string) string
	}{
		{"same cursor forever", func(r *http.Request, _ string) string {
			return "http://" + r.Host + "/api/profiles?page%5Bcursor%5D=off2"
		}},
		{"two cursors in turn", func(r *http.Request, _ string) string {
			if r.URL.Query().Get("page[cursor]") == "off2" {
				return "http://" + r.Host + "/api/profiles?page%5Bcursor%5D=off4"
			}
			return "http://" + r.Host + "/api/profiles?page%5Bcursor%5D=off2"
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeAPI(t, all)
			f.nextLink = tt.next
			c, _ := testClient(t, f.srv.URL, func(cfg *Config) { cfg.PageSize = 2; cfg.Concurrency = 1 })
			err := c.Walk(context.Background(), oneSlice(t0, t0.Add(time.Hour)), newCollector(t, all).fn)
			if !errors.Is(err, ErrCursorLoop) {
				t.Fatalf("err = %v, want ErrCursorLoop", err)
			}
			if n := len(f.requests()); n > 8 {
				t.Errorf("%d requests before the loop was noticed", n)
			}
		})
	}
}

func TestEmptyPagesWithNextAreFollowed(t *testing.T) {
	all := profilesEvery(t0, 4, time.Second)
	f := newFakeAPI(t, all)
	// Three empty pages, each with a next link, before the data.
	next := map[string]string{"": "e1", "e1": "e2", "e2": "e3", "e3": "off0"}
	f.tamper = func(w http.ResponseWriter, r *http.Request, n int) bool {
		nx, ok := next[r.URL.Query().Get("page[cursor]")]
		if !ok {
			return false
		}
		writeJSON(w, 200, fmt.Sprintf(`{"data":[],"links":{"next":"http://%s/api/profiles?page%%5Bcursor%%5D=%s"}}`, r.Host, nx))
		return true
	}
	c, _ := testClient(t, f.srv.URL, func(cfg *Config) { cfg.Concurrency = 1 })
	col := newCollector(t, all)
	if err := c.Walk(context.Background(), oneSlice(t0, t0.Add(time.Hour)), col.fn); err != nil {
		t.Fatal(err)
	}
	col.checkComplete(t0, t0.Add(time.Hour), true)
	if n := len(f.requests()); n != 5 {
		t.Errorf("%d requests, want 5", n)
	}
}

func TestCursorRestart(t *testing.T) {
	all := profilesEvery(t0, 40, 300*time.Millisecond) // several per second
	t.Run("expired once", func(t *testing.T) {
		f := newFakeAPI(t, all)
		var rejected atomic.Bool
		f.tamper = func(w http.ResponseWriter, r *http.Request, n int) bool {
			if r.URL.Query().Get("page[cursor]") == "off10" && !rejected.Swap(true) {
				writeJSON(w, 400, apiErrorBody(400, "invalid", "The page cursor has expired.", ""))
				return true
			}
			return false
		}
		c, _ := testClient(t, f.srv.URL, func(cfg *Config) { cfg.PageSize = 5; cfg.Concurrency = 1 })
		col := newCollector(t, all)
		if err := c.Walk(context.Background(), oneSlice(t0, t0.Add(time.Hour)), col.fn); err != nil {
			t.Fatal(err)
		}
		col.checkComplete(t0, t0.Add(time.Hour), false)
		if st := c.Stats(); st.CursorRestarts != 1 {
			t.Errorf("CursorRestarts = %d", st.CursorRestarts)
		}
		// Re-read only at the second it restarted from.
		dups := 0
		for _, n := range col.ids {
			dups += n - 1
		}
		if dups > 4 {
			t.Errorf("%d duplicates after one restart", dups)
		}
	})
	rejectAll := func(w http.ResponseWriter, r *http.Request, n int) bool {
		if r.URL.Query().Get("page[cursor]") != "" {
			writeJSON(w, 400, apiErrorBody(400, "invalid", "Invalid cursor.", "page[cursor]"))
			return true
		}
		return false
	}
	t.Run("every cursor rejected, progress each time", func(t *testing.T) {
		f := newFakeAPI(t, all)
		f.tamper = rejectAll
		c, _ := testClient(t, f.srv.URL, func(cfg *Config) { cfg.PageSize = 5; cfg.Concurrency = 1 })
		col := newCollector(t, all)
		if err := c.Walk(context.Background(), oneSlice(t0, t0.Add(time.Hour)), col.fn); err != nil {
			t.Fatal(err)
		}
		col.checkComplete(t0, t0.Add(time.Hour), false)
	})
	t.Run("every cursor rejected, no progress", func(t *testing.T) {
		ties := profilesEvery(t0, 30, 0) // all in one second
		f := newFakeAPI(t, ties)
		f.tamper = rejectAll
		c, _ := testClient(t, f.srv.URL, func(cfg *Config) { cfg.PageSize = 5; cfg.Concurrency = 1 })
		err := c.Walk(context.Background(), oneSlice(t0, t0.Add(time.Hour)), newCollector(t, ties).fn)
		var ae *APIError
		if !errors.As(err, &ae) || ae.Parameter != "page[cursor]" {
			t.Fatalf("err = %v", err)
		}
		if n := c.Stats().CursorRestarts; n != maxStaleRestarts {
			t.Errorf("CursorRestarts = %d, want %d", n, maxStaleRestarts)
		}
	})
}

func TestKeyRedactedFromEchoes(t *testing.T) {
	f := newFakeAPI(t, nil)
	f.tamper = func(w http.ResponseWriter, r *http.Request, n int) bool {
		w.Header().Set("X-Request-Id", r.Header.Get("Authorization"))
		writeJSON(w, 400, apiErrorBody(400, "invalid", "bad key "+testKey, "x "+testKey))
		return true
	}
	c, logs := testClient(t, f.srv.URL, nil)
	err := c.Probe(context.Background())
	if err == nil {
		t.Fatal("no error")
	}
	if strings.Contains(err.Error(), testKey) || strings.Contains(fmt.Sprintf("%+v", err), testKey) || strings.Contains(logs.String(), testKey) {
		t.Fatalf("key leaked: %v", err)
	}
}

func TestCallbackErrorStopsWalk(t *testing.T) {
	all := profilesEvery(t0, 500, time.Second)
	f := newFakeAPI(t, all)
	c, _ := testClient(t, f.srv.URL, func(cfg *Config) { cfg.PageSize = 10; cfg.Concurrency = 4 })
	col := newCollector(t, all)
	col.stopAt = 3
	err := c.Walk(context.Background(), oneSlice(t0, t0.Add(time.Hour)), col.fn)
	if !errors.Is(err, errStop) {
		t.Fatalf("err = %v", err)
	}
	if col.pages != 3 {
		t.Errorf("callback called %d times after returning an error at 3", col.pages)
	}
	n := len(f.requests())
	if n > 3+4+8+4 {
		t.Errorf("%d requests: workers went on after the callback failed", n)
	}
}

func TestCancelStopsWorkers(t *testing.T) {
	all := profilesEvery(t0, 1000, time.Second)
	f := newFakeAPI(t, all)
	var inHandler atomic.Int64
	f.tamper = func(w http.ResponseWriter, r *http.Request, n int) bool {
		if n <= 2 {
			return false
		}
		inHandler.Add(1)
		defer inHandler.Add(-1)
		<-r.Context().Done() // hang until the client goes away
		return true
	}
	c, _ := testClient(t, f.srv.URL, func(cfg *Config) { cfg.PageSize = 10; cfg.Concurrency = 6; cfg.RequestTimeout = time.Hour })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	pages := 0
	go func() {
		done <- c.Walk(ctx, oneSlice(t0, t0.Add(time.Hour)), func(ctx context.Context, p Page) error {
			pages++
			return nil
		})
	}()
	// Wait until workers hang in requests, then cancel.
	for inHandler.Load() < 4 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	if n := c.st.inFlight.Load(); n != 0 {
		t.Errorf("%d requests still in flight after Walk returned", n)
	}
	// Counted where requests are sent: one already on its way when Walk
	// returned may still reach the server afterwards, and that is no leak.
	before := c.Stats().Requests
	time.Sleep(20 * time.Millisecond)
	if after := c.Stats().Requests; after != before {
		t.Errorf("%d requests sent after Walk returned", after-before)
	}
}

func TestProbe(t *testing.T) {
	f := newFakeAPI(t, profilesEvery(t0, 3, time.Second))
	c, _ := testClient(t, f.srv.URL, nil)
	if err := c.Probe(context.Background()); err != nil {
		t.Fatal(err)
	}
	reqs := f.requests()
	if len(reqs) != 1 || reqs[0].URL.Query().Get("page[size]") != "1" || reqs[0].URL.Query().Get("filter") != "" {
		t.Fatalf("probe requests: %v", reqs)
	}
}
