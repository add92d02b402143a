package klaviyosim

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"
)

// rawGet sends one request on a fresh connection (no transport retry can
// hide a reset) and reads the whole body.
func rawGet(t *testing.T, s *Server, timeout time.Duration) (*http.Response, []byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL()+"/api/profiles?page%5Bsize%5D=5", nil)
	req.Header.Set("Authorization", "Klaviyo-API-Key "+testKey)
	req.Header.Set("revision", "2026-07-15")
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

func TestFaultsObservable(t *testing.T) {
	s := newSim(t, Config{Profiles: 20, Seed: 1, HangFor: time.Minute,
		Burst: Limit{3, time.Minute}, Steady: Limit{100, time.Minute}})
	tests := []struct {
		fault Fault
		check func(t *testing.T, resp *http.Response, body []byte, err error)
	}{
		{Fault500, wantStatus(500, "error")},
		{Fault502, wantStatus(502, "bad_gateway")},
		{Fault503, wantStatus(503, "service_unavailable")},
		{Fault504, wantStatus(504, "gateway_timeout")},
		{Fault429, func(t *testing.T, resp *http.Response, body []byte, err error) {
			wantStatus(429, "throttled")(t, resp, body, err)
			if resp.Header.Get("Retry-After") != "1" || resp.Header.Get("RateLimit-Limit") != "" {
				t.Fatalf("spurious 429 headers: %v", resp.Header)
			}
		}},
		{FaultReset, func(t *testing.T, resp *http.Response, body []byte, err error) {
			if err == nil {
				t.Fatalf("reset produced a response: %d", resp.StatusCode)
			}
		}},
		{FaultTruncated, func(t *testing.T, resp *http.Response, body []byte, err error) {
			if resp == nil || !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("truncated: response %v, error %v (want unexpected EOF while reading the body)", resp != nil, err)
			}
		}},
		{FaultInvalidJSON, func(t *testing.T, resp *http.Response, body []byte, err error) {
			if err != nil || resp.StatusCode != 200 || json.Valid(body) {
				t.Fatalf("invalid_json: err %v status %v valid %v", err, resp, json.Valid(body))
			}
		}},
		{FaultHang, func(t *testing.T, resp *http.Response, body []byte, err error) { // nothing at all
			if !errors.Is(err, context.DeadlineExceeded) || resp != nil {
				t.Fatalf("hang: response %v, error %v", resp != nil, err)
			}
		}},
		{FaultHang, func(t *testing.T, resp *http.Response, body []byte, err error) { // headers, then a stalled body
			if resp == nil || err == nil {
				t.Fatalf("hang mid-body: response %v, error %v", resp != nil, err)
			}
		}},
	}
	for i, tt := range tests {
		t.Run(strconv.Itoa(i)+"/"+string(tt.fault), func(t *testing.T) {
			s.InjectFaults(tt.fault, 1)
			timeout := 20 * time.Second // only a hang should ever reach it
			if tt.fault == FaultHang {
				// Far below HangFor, yet long enough for the headers of the
				// mid-body hang to arrive on a new connection when the
				// machine is loaded.
				timeout = 2 * time.Second
			}
			resp, body, err := rawGet(t, s, timeout)
			tt.check(t, resp, body, err)
		})
	}
	c := s.Counters()
	for _, f := range AllFaults {
		want := int64(1)
		if f == FaultHang {
			want = 2
		}
		if c.Faults[f] != want {
			t.Errorf("Counters.Faults[%s] = %d, want %d", f, c.Faults[f], want)
		}
	}
	// Faults come before the budget: all three burst requests are still there.
	for i := range 3 {
		if resp, _, err := rawGet(t, s, 5*time.Second); err != nil || resp.StatusCode != 200 {
			t.Fatalf("request %d after faults: %v %v", i, resp, err)
		}
	}
	if c := s.Counters(); c.RateLimited != 0 || c.MaxBurst != 3 {
		t.Fatalf("faults used the budget: %+v", c)
	}
}

func wantStatus(status int, code string) func(*testing.T, *http.Response, []byte, error) {
	return func(t *testing.T, resp *http.Response, body []byte, err error) {
		t.Helper()
		if err != nil || resp.StatusCode != status {
			t.Fatalf("want status %d, got %v %v", status, resp, err)
		}
		var e apiErrorBody
		if json.Unmarshal(body, &e) != nil || len(e.Errors) != 1 || e.Errors[0].Code != code || e.Errors[0].Status != status {
			t.Fatalf("body %s", body)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/vnd.api+json" {
			t.Fatalf("Content-Type %q", ct)
		}
	}
}

func TestFaultRate(t *testing.T) {
	s := newSim(t, Config{Profiles: 10, Seed: 1, FaultRate: 1, Faults: []Fault{Fault503}})
	for range 5 {
		if r := do(t, s, call{}); r.status != 503 {
			t.Fatalf("status %d with fault rate 1", r.status)
		}
	}
	s.SetFaultRate(0)
	if r := do(t, s, call{}); r.status != 200 {
		t.Fatalf("status %d with fault rate 0", r.status)
	}
	s.SetFaultRate(0.5)
	got := map[int]int{}
	for range 60 {
		got[do(t, s, call{}).status]++
	}
	if got[503] == 0 || got[200] == 0 {
		t.Fatalf("fault rate 0.5 gave %v", got)
	}
	if c := s.Counters(); c.ByStatus[503] != int64(5+got[503]) || c.Requests != 66 {
		t.Fatalf("counters %+v", c)
	}
}
