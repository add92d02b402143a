package extract

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/klaviyo-etl/klaviyo-etl/extract/klaviyosim"
)

var simStart = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
var simEnd = time.Date(2025, 7, 1, 0, 0, 0, 0, time.UTC)

func newSim(t testing.TB, cfg klaviyosim.Config) *klaviyosim.Server {
	t.Helper()
	if cfg.Start.IsZero() {
		cfg.Start, cfg.End = simStart, simEnd
	}
	s, err := klaviyosim.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// simClient is a Client on the simulator with its default key and quick
// retries; the budget is the simulator's default unless mod changes it.
func simClient(t testing.TB, s *klaviyosim.Server, mod func(*Config)) *Client {
	t.Helper()
	cfg := Config{
		BaseURL: s.URL(), APIKey: "pk_test", Revision: "2026-07-15",
		MinBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond,
		RequestTimeout: 5 * time.Second, RetryDeadline: 30 * time.Second,
	}
	if mod != nil {
		mod(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// simProfiles lists the account keyed by the cursor field.
func simProfiles(s *klaviyosim.Server, field string) []fakeProfile {
	ps := s.Profiles()
	out := make([]fakeProfile, len(ps))
	for i, p := range ps {
		at := p.Created
		if field == "updated" {
			at = p.Updated
		}
		out[i] = fakeProfile{id: p.ID, created: at.UTC()}
	}
	return out
}

// serverLog records, on the server side, when each request arrived and
// how it was answered.
type serverLog struct {
	mu      sync.Mutex
	entries []logEntry
}

type logEntry struct {
	arrived, answered time.Time
	status            int
	retryAfter        string
	query             string
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = 200
	}
	return w.ResponseWriter.Write(p)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (l *serverLog) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e := logEntry{arrived: time.Now(), query: r.URL.RawQuery}
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			e.answered, e.status, e.retryAfter = time.Now(), sw.status, w.Header().Get("Retry-After")
			l.mu.Lock()
			l.entries = append(l.entries, e)
			l.mu.Unlock()
		}()
		next.ServeHTTP(sw, r)
	})
}

func (l *serverLog) snapshot() []logEntry {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]logEntry(nil), l.entries...)
}

// sendLog is the transport under the client's own: it sees each attempt
// after the client's limiter admitted it and before it is written, and each
// response before the client acts on it. What the client does about its
// budget and about 429s shows here exactly, however late the goroutines
// carrying the requests are scheduled; at the server, arrivals add that
// jitter.
type sendLog struct {
	next    http.RoundTripper
	mu      sync.Mutex
	sends   []*sendEntry
	cursors map[string]time.Time // next cursor of a page: when the page came
}

type sendEntry struct {
	url        string
	at, done   time.Time // sent; answered or failed
	status     int
	retryAfter string
	// touched is when the client first read or closed a 429's body, which
	// it does only after acting on the 429.
	touched time.Time
}

func newSendLog() *sendLog {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	return &sendLog{next: tr, cursors: map[string]time.Time{}}
}

func (l *sendLog) RoundTrip(req *http.Request) (*http.Response, error) {
	e := &sendEntry{url: req.URL.String(), at: time.Now()}
	l.mu.Lock()
	l.sends = append(l.sends, e)
	l.mu.Unlock()
	resp, err := l.next.RoundTrip(req)
	done := time.Now()
	l.mu.Lock()
	e.done = done
	if err == nil {
		e.status, e.retryAfter = resp.StatusCode, resp.Header.Get("Retry-After")
	}
	l.mu.Unlock()
	if err != nil {
		return nil, err
	}
	switch resp.StatusCode {
	case http.StatusTooManyRequests:
		resp.Body = &touchBody{ReadCloser: resp.Body, touched: func() {
			l.mu.Lock()
			e.touched = time.Now()
			l.mu.Unlock()
		}}
	case http.StatusOK:
		resp.Body = &touchBody{ReadCloser: resp.Body, tee: &bytes.Buffer{}, closed: func(body []byte) {
			var doc struct {
				Links struct{ Next string } `json:"links"`
			}
			if json.Unmarshal(body, &doc) != nil || doc.Links.Next == "" {
				return
			}
			cur := cursorOf(doc.Links.Next)
			if cur == "" {
				return
			}
			l.mu.Lock()
			if old, ok := l.cursors[cur]; !ok || done.Before(old) {
				l.cursors[cur] = done
			}
			l.mu.Unlock()
		}}
	}
	return resp, nil
}

func cursorOf(link string) string {
	u, err := url.Parse(link)
	if err != nil {
		return ""
	}
	return u.Query().Get("page[cursor]")
}

// touchBody tells when the client first reads or closes a body, and what
// it had read when it closes it.
type touchBody struct {
	io.ReadCloser
	touched func()
	tee     *bytes.Buffer
	closed  func(body []byte)
	once    [2]sync.Once
}

func (b *touchBody) touch() {
	if b.touched != nil {
		b.once[0].Do(b.touched)
	}
}

func (b *touchBody) Read(p []byte) (int, error) {
	b.touch()
	n, err := b.ReadCloser.Read(p)
	if b.tee != nil {
		b.tee.Write(p[:n])
	}
	return n, err
}

func (b *touchBody) Close() error {
	b.touch()
	if b.closed != nil {
		b.once[1].Do(func() { b.closed(b.tee.Bytes()) })
	}
	return b.ReadCloser.Close()
}

// sleepLog is the limiter's clock, adding up how long it chose to wait.
type sleepLog struct {
	realClock
	mu    sync.Mutex
	slept time.Duration
}

func (c *sleepLog) Sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	c.slept += max(d, 0)
	c.mu.Unlock()
	return c.realClock.Sleep(ctx, d)
}

func (c *sleepLog) total() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.slept
}

// checkBudget asserts that no n+1 requests were sent within per: the
// limiter's promise, which it keeps on its own clock.
func (l *sendLog) checkBudget(t *testing.T, n int, per time.Duration) {
	t.Helper()
	l.mu.Lock()
	at := make([]time.Time, len(l.sends))
	for i, e := range l.sends {
		at[i] = e.at
	}
	l.mu.Unlock()
	sort.Slice(at, func(i, j int) bool { return at[i].Before(at[j]) })
	for i := 0; i+n < len(at); i++ {
		if d := at[i+n].Sub(at[i]); d < per {
			t.Errorf("%d requests sent within %v, budget %d/%v", n+1, d, n, per)
			return
		}
	}
}

// startedAfter is an instant a client that honours 429s starts e after:
// the end of its previous attempt, and of that one's Retry-After if it was
// a 429, and the arrival of the page whose next cursor it follows. The
// caller holds l.mu.
func (l *sendLog) startedAfter(e *sendEntry) time.Time {
	t := l.cursors[cursorOf(e.url)]
	var prev *sendEntry
	for _, f := range l.sends {
		if f.url == e.url && f.at.Before(e.at) && (prev == nil || f.at.After(prev.at)) {
			prev = f
		}
	}
	if prev != nil {
		after := prev.done
		if ra, err := strconv.Atoi(prev.retryAfter); err == nil && prev.status == http.StatusTooManyRequests {
			after = after.Add(time.Duration(ra) * time.Second)
		}
		if after.After(t) {
			t = after
		}
	}
	return t
}

// checkHonoured asserts that no request the client could only start after
// acting on a 429 went out while the 429's Retry-After ran: the refused one
// again, or one whose previous attempt or page ended later (startedAfter).
// What else goes out then was admitted before, one request per other worker
// at most: others bounds it (< 0: no bound). It returns how many 429s came.
func (l *sendLog) checkHonoured(t *testing.T, others int) int {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	n429 := 0
	for _, e := range l.sends {
		if e.status != http.StatusTooManyRequests {
			continue
		}
		n429++
		ra, err := strconv.Atoi(e.retryAfter)
		if err != nil {
			t.Fatalf("429 without Retry-After: %q", e.retryAfter)
		}
		if e.touched.IsZero() {
			t.Fatal("the body of a 429 was never read nor closed")
		}
		// From when the client has surely acted on it (the limiter's pause
		// comes before the body) to when its Retry-After ends, counted from
		// when it came (the client counts from a little later).
		until := e.done.Add(time.Duration(ra) * time.Second)
		n := 0
		for _, f := range l.sends {
			if !f.at.After(e.touched) || !f.at.Before(until) {
				continue
			}
			if after := l.startedAfter(f); after.After(e.touched) {
				t.Errorf("request sent %v after a 429 with Retry-After %ds, but the client was to start it no earlier than %v after the 429, having acted on it",
					f.at.Sub(e.done), ra, after.Sub(e.done))
			} else {
				n++
			}
		}
		if others >= 0 && n > others {
			t.Errorf("%d requests sent during a 429's Retry-After of %ds, want at most the %d admitted before it", n, ra, others)
		}
	}
	return n429
}

func TestSimWalkComplete(t *testing.T) {
	tests := []struct {
		name        string
		field       string
		concurrency int
		pageSize    int
		start, end  time.Time
	}{
		{"created, one chain", "created", 1, 100, simStart, simEnd},
		{"created, four slices", "created", 4, 100, simStart, simEnd},
		{"created, auto", "created", 0, 100, simStart, simEnd},
		{"created, auto, small pages, partial window", "created", 0, 37, simStart.Add(10 * 24 * time.Hour), simStart.Add(1000*time.Hour + time.Second)},
		{"updated, auto", "updated", 0, 100, simStart, simEnd.Add(365 * 24 * time.Hour)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Each walk has the account's budget to itself.
			s := newSim(t, klaviyosim.Config{Profiles: 4000, Seed: 7})
			// Bulk imports: hundreds of profiles on one second, across page
			// boundaries, and at a slice edge.
			s.AddProfiles(450, simStart.Add(1000*time.Hour))
			s.AddProfiles(120, simStart.Add(24*time.Hour))
			s.AddProfiles(30, simStart)
			all := simProfiles(s, tt.field)
			c := simClient(t, s, func(cfg *Config) { cfg.Concurrency = tt.concurrency; cfg.PageSize = tt.pageSize })
			col := newCollector(t, all)
			win := Window{Field: tt.field, Slices: []Slice{{Start: tt.start, End: tt.end, Done: tt.start}}}
			if err := c.Walk(context.Background(), win, col.fn); err != nil {
				t.Fatal(err)
			}
			col.checkComplete(tt.start, tt.end, true)
			for i, sl := range col.last {
				if !sl.Finished() {
					t.Errorf("slice %d unfinished: %+v", i, sl)
				}
			}
			st := c.Stats()
			if st.OutOfSlice != 0 {
				t.Errorf("OutOfSlice = %d on a fresh walk of whole seconds", st.OutOfSlice)
			}
			if tt.concurrency != 1 && st.Splits == 0 {
				t.Error("no splits with concurrency")
			}
			if st.RateLimited != 0 || st.Contended != 0 || st.InFlightMax > int64(max(tt.concurrency, maxAutoWorkers)) {
				t.Errorf("stats %+v", st)
			}
		})
	}
}

func TestSimResumeFromProgress(t *testing.T) {
	s := newSim(t, klaviyosim.Config{Profiles: 3000, Seed: 11, Unlimited: true})
	s.AddProfiles(250, simStart.Add(500*time.Hour))
	all := simProfiles(s, "created")
	for _, stopAt := range []int{1, 7, 20} {
		t.Run(fmt.Sprint("stop at page ", stopAt), func(t *testing.T) {
			c := simClient(t, s, func(cfg *Config) { cfg.Concurrency = 3; cfg.PageSize = 50 })
			first := newCollector(t, all)
			first.stopAt = stopAt
			err := c.Walk(context.Background(), oneSliceField("created", simStart, simEnd), first.fn)
			if !errors.Is(err, errStop) {
				t.Fatalf("err = %v", err)
			}
			checkpoint := first.last
			// Resume from the checkpoint with a fresh client; the second
			// collector starts with what the first delivered.
			c2 := simClient(t, s, func(cfg *Config) { cfg.Concurrency = 3; cfg.PageSize = 50 })
			second := newCollector(t, all)
			for id, n := range first.ids {
				second.ids[id] = n
			}
			if err := c2.Walk(context.Background(), Window{Field: "created", Slices: checkpoint}, second.fn); err != nil {
				t.Fatal(err)
			}
			second.checkComplete(simStart, simEnd, false)
			// Only records at a slice's Done second may be read twice.
			doneSecs := map[time.Time]bool{}
			for _, sl := range checkpoint {
				doneSecs[sl.Done] = true
			}
			for _, p := range all {
				if second.ids[p.id] > 1 && !doneSecs[p.created] {
					t.Errorf("%s (%v) read twice but not at a Done second", p.id, p.created)
				}
			}
		})
	}
}

func oneSliceField(field string, start, end time.Time) Window {
	return Window{Field: field, Slices: []Slice{{Start: start, End: end, Done: start}}}
}

func TestSimRetryableFaults(t *testing.T) {
	for _, kind := range klaviyosim.AllFaults {
		t.Run(string(kind), func(t *testing.T) {
			s := newSim(t, klaviyosim.Config{Profiles: 600, Seed: 3, HangFor: time.Minute})
			all := simProfiles(s, "created")
			s.InjectFaults(kind, 3)
			c := simClient(t, s, func(cfg *Config) {
				cfg.Concurrency = 2
				cfg.RequestTimeout = 300 * time.Millisecond // a hang is abandoned
			})
			col := newCollector(t, all)
			if err := c.Walk(context.Background(), oneSliceField("created", simStart, simEnd), col.fn); err != nil {
				t.Fatal(err)
			}
			col.checkComplete(simStart, simEnd, true)
			if got := s.Counters().Faults[kind]; got != 3 {
				t.Errorf("server injected %d faults, want 3", got)
			}
			if st := c.Stats(); st.Retries < 3 {
				t.Errorf("Retries = %d, want at least 3", st.Retries)
			}
		})
	}
	t.Run("random faults", func(t *testing.T) {
		s := newSim(t, klaviyosim.Config{Profiles: 3000, Seed: 5, FaultRate: 0.25, Faults: []klaviyosim.Fault{
			klaviyosim.Fault500, klaviyosim.Fault502, klaviyosim.Fault503, klaviyosim.Fault504,
			klaviyosim.FaultReset, klaviyosim.FaultTruncated, klaviyosim.FaultInvalidJSON,
		}})
		all := simProfiles(s, "created")
		c := simClient(t, s, func(cfg *Config) { cfg.PageSize = 50 })
		col := newCollector(t, all)
		if err := c.Walk(context.Background(), oneSliceField("created", simStart, simEnd), col.fn); err != nil {
			t.Fatal(err)
		}
		col.checkComplete(simStart, simEnd, true)
		if st := c.Stats(); st.Retries == 0 {
			t.Error("no retries at a 25% fault rate")
		}
	})
}

func TestSimNonRetryable(t *testing.T) {
	gone := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, 410, apiErrorBody(410, "gone", "This API revision is no longer available.", ""))
		})
	}
	tests := []struct {
		name     string
		sim      klaviyosim.Config
		mw       func(http.Handler) http.Handler
		mod      func(*Config)
		status   int
		wantText string
	}{
		{name: "unknown key", mod: func(c *Config) { c.APIKey = "pk_other" }, status: 401, wantText: "profiles:read"},
		{name: "key without scope", sim: klaviyosim.Config{NoScopeKey: "pk_noscope"}, mod: func(c *Config) { c.APIKey = "pk_noscope" }, status: 403, wantText: "profiles:read"},
		{name: "unknown revision", mod: func(c *Config) { c.Revision = "2019-01-01" }, status: 400, wantText: "--revision"},
		{name: "wrong base path", mod: func(c *Config) { c.BaseURL += "/v1" }, status: 404, wantText: "--base-url"},
		{name: "bad field", mod: func(c *Config) { c.AdditionalFields = []string{"nonsense"} }, status: 400},
		{name: "retired revision", mw: gone, status: 410, wantText: "--revision"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.sim
			cfg.Profiles = 50
			s := newSim(t, cfg)
			var log serverLog
			s.Use(log.middleware)
			if tt.mw != nil {
				s.Use(tt.mw)
			}
			c := simClient(t, s, func(cfg *Config) {
				cfg.Concurrency = 1
				if tt.mod != nil {
					tt.mod(cfg)
				}
			})
			err := c.Walk(context.Background(), oneSliceField("created", simStart, simEnd), newCollector(t, nil).fn)
			var ae *APIError
			if !errors.As(err, &ae) || ae.Status != tt.status {
				t.Fatalf("err = %v, want *APIError %d", err, tt.status)
			}
			if !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("error %q does not mention %q", err, tt.wantText)
			}
			if ae.Code == "" || ae.Detail == "" {
				t.Errorf("APIError lacks the body's code/detail: %+v", ae)
			}
			if n := len(log.snapshot()); n != 1 {
				t.Errorf("%d requests, want 1", n)
			}
			if strings.Contains(err.Error(), "pk_") {
				t.Errorf("error carries a key: %v", err)
			}
			if perr := c.Probe(context.Background()); !errors.As(perr, &ae) || ae.Status != tt.status {
				t.Errorf("Probe: %v", perr)
			}
		})
	}
}

// bufferingWriter lets a middleware rewrite a response body.
type bufferingWriter struct {
	http.ResponseWriter
	status int
	buf    bytes.Buffer
}

func (w *bufferingWriter) WriteHeader(code int)        { w.status = code }
func (w *bufferingWriter) Write(p []byte) (int, error) { return w.buf.Write(p) }

func rewriteBody(fn func(r *http.Request, body []byte) []byte) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			r.Header.Del("Accept-Encoding") // keep the body readable
			bw := &bufferingWriter{ResponseWriter: w, status: 200}
			next.ServeHTTP(bw, r)
			body := fn(r, bw.buf.Bytes())
			w.Header().Del("Content-Length")
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
			w.WriteHeader(bw.status)
			w.Write(body)
		})
	}
}

func TestSimForeignNext(t *testing.T) {
	var foreign atomic.Int64
	var sawKey atomic.Bool
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		foreign.Add(1)
		if strings.Contains(r.Header.Get("Authorization"), "pk_test") {
			sawKey.Store(true)
		}
		writeJSON(w, 200, `{"data":[]}`)
	}))
	defer other.Close()
	s := newSim(t, klaviyosim.Config{Profiles: 500})
	s.Use(rewriteBody(func(r *http.Request, body []byte) []byte {
		return bytes.ReplaceAll(body, []byte(`"next":"`+s.URL()), []byte(`"next":"`+other.URL))
	}))
	c := simClient(t, s, func(cfg *Config) { cfg.Concurrency = 2 })
	err := c.Walk(context.Background(), oneSliceField("created", simStart, simEnd), newCollector(t, nil).fn)
	if !errors.Is(err, ErrForeignNext) {
		t.Fatalf("err = %v, want ErrForeignNext", err)
	}
	if foreign.Load() != 0 || sawKey.Load() {
		t.Fatalf("foreign server got %d requests (key seen: %v)", foreign.Load(), sawKey.Load())
	}
}

func TestSimInvalidCursorRestarts(t *testing.T) {
	tests := []struct {
		name        string
		concurrency int
		every       int64 // mangle every n-th request that carries a cursor
		wantErr     bool
	}{
		// The 300-profile tie takes 8 pages: a rejection every 10th cursor
		// lets a restarted chain through it, every 6th never does.
		{"one chain, restarts get through the tie", 1, 10, false},
		{"one chain, tie longer than the cursor lasts", 1, 6, true},
		{"three chains", 3, 25, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSim(t, klaviyosim.Config{Profiles: 2000, Seed: 9, Unlimited: true})
			s.AddProfiles(300, simStart.Add(100*time.Hour))
			all := simProfiles(s, "created")
			// The simulator rejects a mangled cursor as Klaviyo rejects an
			// expired one: 400, source.parameter page[cursor].
			var n atomic.Int64
			s.Use(func(next http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					q := r.URL.Query()
					if q.Get("page[cursor]") != "" && n.Add(1)%tt.every == 0 {
						q.Set("page[cursor]", "expired"+q.Get("page[cursor]")[:4])
						r.URL.RawQuery = q.Encode()
					}
					next.ServeHTTP(w, r)
				})
			})
			c := simClient(t, s, func(cfg *Config) { cfg.Concurrency = tt.concurrency; cfg.PageSize = 40 })
			col := newCollector(t, all)
			err := c.Walk(context.Background(), oneSliceField("created", simStart, simEnd), col.fn)
			st := c.Stats()
			if tt.wantErr {
				var ae *APIError
				if !errors.As(err, &ae) || ae.Parameter != "page[cursor]" {
					t.Fatalf("err = %v", err)
				}
				if st.CursorRestarts == 0 || st.CursorRestarts > maxRestartsPerSecond {
					t.Errorf("CursorRestarts = %d", st.CursorRestarts)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			col.checkComplete(simStart, simEnd, false)
			if st.CursorRestarts == 0 {
				t.Fatal("no restarts")
			}
			if got := s.Counters().ByStatus[400]; got != st.CursorRestarts {
				t.Errorf("server sent %d 400s, client restarted %d times", got, st.CursorRestarts)
			}
		})
	}
}

func TestSim429Honoured(t *testing.T) {
	t.Run("storm of spurious 429s, one chain", func(t *testing.T) {
		s := newSim(t, klaviyosim.Config{Profiles: 300})
		var log serverLog
		s.Use(log.middleware)
		s.InjectFaults(klaviyosim.Fault429, 3)
		sleeps := &sleepLog{}
		c := simClient(t, s, func(cfg *Config) { cfg.Concurrency = 1; cfg.clock = sleeps })
		col := newCollector(t, simProfiles(s, "created"))
		if err := c.Walk(context.Background(), oneSliceField("created", simStart, simEnd), col.fn); err != nil {
			t.Fatal(err)
		}
		// With one chain no request is on the wire when a 429 comes: none
		// may arrive while its Retry-After runs.
		entries := log.snapshot()
		n429 := 0
		for _, e := range entries {
			if e.status != 429 {
				continue
			}
			n429++
			ra, err := strconv.Atoi(e.retryAfter)
			if err != nil {
				t.Fatalf("429 without Retry-After: %q", e.retryAfter)
			}
			until := e.answered.Add(time.Duration(ra) * time.Second)
			for _, f := range entries {
				if f.arrived.After(e.answered) && f.arrived.Before(until) {
					t.Errorf("request arrived %v after a 429 with Retry-After %ds", f.arrived.Sub(e.answered), ra)
				}
			}
		}
		if n429 != 3 {
			t.Errorf("%d 429s seen, want 3", n429)
		}
		// Nor may the client wait longer than it was told. That is read off
		// the waits it chose: when the next request goes out on a loaded
		// machine says as much about the machine. A chain this far within
		// its budget waits for nothing else.
		if got := sleeps.total(); got > 3*time.Second {
			t.Errorf("waited %v in all for three 429s with Retry-After 1s", got)
		}
		if st := c.Stats(); st.RateLimited != 3 {
			t.Errorf("RateLimited = %d", st.RateLimited)
		}
	})
	t.Run("budget smaller than configured, many workers", func(t *testing.T) {
		// The client believes in a budget four times the account's: the
		// server's 429s must hold every worker back.
		s := newSim(t, klaviyosim.Config{Profiles: 120, Burst: klaviyosim.Limit{N: 3, Per: time.Second}, Steady: klaviyosim.Limit{N: 10, Per: time.Second}})
		// Seen from the client's side: requests the other workers had
		// already started when a 429 came may reach the server any time
		// after it, as late as the machine schedules them.
		sends := newSendLog()
		const workers = 3
		c := simClient(t, s, func(cfg *Config) {
			cfg.Concurrency = workers
			cfg.PageSize = 30
			cfg.Burst, cfg.Steady = Rate{40, time.Second}, Rate{40, time.Second}
			cfg.HTTPClient = &http.Client{Transport: sends}
		})
		col := newCollector(t, simProfiles(s, "created"))
		if err := c.Walk(context.Background(), oneSliceField("created", simStart, simEnd), col.fn); err != nil {
			t.Fatal(err)
		}
		col.checkComplete(simStart, simEnd, true)
		if n := sends.checkHonoured(t, workers-1); n == 0 {
			t.Error("no 429 provoked: the test proves nothing")
		}
	})
}

func TestSimBudgetRespected(t *testing.T) {
	burst, steady := klaviyosim.Limit{N: 20, Per: 500 * time.Millisecond}, klaviyosim.Limit{N: 40, Per: time.Second}
	s := newSim(t, klaviyosim.Config{Profiles: 2200, Seed: 2, Burst: burst, Steady: steady})
	sends := newSendLog()
	c := simClient(t, s, func(cfg *Config) {
		cfg.PageSize = 20
		cfg.Burst, cfg.Steady = Rate{burst.N, burst.Per}, Rate{steady.N, steady.Per}
		cfg.HTTPClient = &http.Client{Transport: sends}
	})
	col := newCollector(t, simProfiles(s, "created"))
	if err := c.Walk(context.Background(), oneSliceField("created", simStart, simEnd), col.fn); err != nil {
		t.Fatal(err)
	}
	col.checkComplete(simStart, simEnd, true)
	// The budget is checked where the client sends. The server counts
	// arrivals, which a descheduled goroutine can bunch up past the
	// client's margin: a 429 for that is no fault of the client's, as long
	// as it is honoured.
	sends.checkBudget(t, burst.N, burst.Per)
	sends.checkBudget(t, steady.N, steady.Per)
	sends.checkHonoured(t, -1)
	ctr := s.Counters()
	if ctr.MaxBurst > burst.N || ctr.MaxSteady > steady.N {
		t.Errorf("server admitted max burst %d/%d, max steady %d/%d", ctr.MaxBurst, burst.N, ctr.MaxSteady, steady.N)
	}
	if ctr.Requests < int64(2*steady.N) {
		t.Errorf("only %d requests: the budget was never tested", ctr.Requests)
	}
}

func TestSimSharedBudget(t *testing.T) {
	// Another integration spends two thirds of the steady budget while we
	// walk; RateLimit-Remaining shows it, and the client paces itself to
	// what is left instead of running into 429s.
	burst, steady := klaviyosim.Limit{N: 60, Per: time.Second}, klaviyosim.Limit{N: 60, Per: time.Second}
	s := newSim(t, klaviyosim.Config{Profiles: 800, Seed: 4, Burst: burst, Steady: steady})
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		tick := time.NewTicker(25 * time.Millisecond) // 40/s of the 60/s
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				s.ConsumeBudget(1)
			}
		}
	}()
	time.Sleep(500 * time.Millisecond) // let the other integration get going
	c := simClient(t, s, func(cfg *Config) {
		cfg.Concurrency = 2
		cfg.PageSize = 25
		cfg.Burst, cfg.Steady = Rate{burst.N, burst.Per}, Rate{steady.N, steady.Per}
	})
	col := newCollector(t, simProfiles(s, "created"))
	if err := c.Walk(context.Background(), oneSliceField("created", simStart, simEnd), col.fn); err != nil {
		t.Fatal(err)
	}
	col.checkComplete(simStart, simEnd, true)
	st := c.Stats()
	if st.Contended == 0 {
		t.Error("the other consumer went unnoticed")
	}
	if st.RateLimited != 0 {
		t.Errorf("%d 429s provoked", st.RateLimited)
	}
}

func TestSimCancelStopsPromptly(t *testing.T) {
	s := newSim(t, klaviyosim.Config{Profiles: 20000, Seed: 1, Latency: 300 * time.Millisecond})
	c := simClient(t, s, func(cfg *Config) { cfg.Concurrency = 8 })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- c.Walk(ctx, oneSliceField("created", simStart, simEnd), func(ctx context.Context, p Page) error {
			cancel() // cancel once the workers are busy
			return nil
		})
	}()
	err := <-done
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	if n := c.st.inFlight.Load(); n != 0 {
		t.Errorf("%d requests still in flight after Walk returned", n)
	}
	before := c.Stats().Requests
	time.Sleep(50 * time.Millisecond)
	if after := c.Stats().Requests; after != before {
		t.Errorf("%d requests after Walk returned", after-before)
	}
}

// dialCounter counts TCP connections, to see keep-alive at work.
type dialCounter struct{ n atomic.Int64 }

func (d *dialCounter) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	d.n.Add(1)
	var nd net.Dialer
	return nd.DialContext(ctx, network, addr)
}

func TestSimKeepAliveAndGzip(t *testing.T) {
	s := newSim(t, klaviyosim.Config{Profiles: 3000})
	var gz atomic.Int64
	s.Use(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
				gz.Add(1)
			}
			next.ServeHTTP(w, r)
		})
	})
	var dc dialCounter
	tr := &http.Transport{DialContext: dc.dial, MaxIdleConnsPerHost: 16}
	c := simClient(t, s, func(cfg *Config) { cfg.Concurrency = 1; cfg.HTTPClient = &http.Client{Transport: tr} })
	col := newCollector(t, simProfiles(s, "created"))
	if err := c.Walk(context.Background(), oneSliceField("created", simStart, simEnd), col.fn); err != nil {
		t.Fatal(err)
	}
	col.checkComplete(simStart, simEnd, true)
	reqs := s.Counters().Requests
	if dc.n.Load() != 1 {
		t.Errorf("%d connections for %d requests on one chain", dc.n.Load(), reqs)
	}
	if gz.Load() != reqs {
		t.Errorf("%d of %d requests accepted gzip", gz.Load(), reqs)
	}
}

func TestSimOldRevision(t *testing.T) {
	// Revisions before 2024-10-15 name the path with a trailing slash and
	// have lower default budgets.
	for _, rev := range []string{"2023-02-22", "2024-07-15"} {
		t.Run(rev, func(t *testing.T) {
			s := newSim(t, klaviyosim.Config{Profiles: 400, Seed: 8})
			var log serverLog
			s.Use(log.middleware)
			c := simClient(t, s, func(cfg *Config) { cfg.Revision = rev; cfg.Concurrency = 2 })
			col := newCollector(t, simProfiles(s, "created"))
			if err := c.Walk(context.Background(), oneSliceField("created", simStart, simEnd), col.fn); err != nil {
				t.Fatal(err)
			}
			col.checkComplete(simStart, simEnd, true)
			wantBurst, _ := DefaultBudget(rev, nil)
			if b, _ := c.Budget(); b != wantBurst {
				t.Errorf("burst %v, want %v", b, wantBurst)
			}
			if ctr := s.Counters(); ctr.RateLimited != 0 {
				t.Errorf("%d 429s", ctr.RateLimited)
			}
		})
	}
}

// BenchmarkWalkThroughput walks an unlimited simulator without latency:
// the client's own cost per profile (HTTP, gzip, decode, slicing), with the
// simulator rendering on the same machine.
func BenchmarkWalkThroughput(b *testing.B) {
	s := newSim(b, klaviyosim.Config{Profiles: 100_000, Seed: 1, Unlimited: true})
	b.ResetTimer()
	var records int64
	for i := 0; i < b.N; i++ {
		c := simClient(b, s, func(cfg *Config) {
			cfg.Concurrency = 4
			cfg.Burst, cfg.Steady = Rate{100000, time.Second}, Rate{100000, time.Second}
		})
		err := c.Walk(context.Background(), oneSliceField("created", simStart, simEnd), func(ctx context.Context, p Page) error {
			records += int64(len(p.Records))
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(records)/b.Elapsed().Seconds(), "profiles/s")
}
