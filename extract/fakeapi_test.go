package extract

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

const testKey = "pk_secret_0123456789abcdef"

// fakeProfile is one profile of fakeAPI.
type fakeProfile struct {
	id      string
	created time.Time
}

// fakeAPI is a minimal Get Profiles for tests that craft responses: filters
// on created, sort=created, page[size], and page[cursor] as an offset. tamper
// may answer a request itself (it gets the 1-based request number).
type fakeAPI struct {
	t        *testing.T
	srv      *httptest.Server
	mu       sync.Mutex
	profiles []fakeProfile
	reqs     []*http.Request
	tamper   func(w http.ResponseWriter, r *http.Request, n int) bool
	nextLink func(r *http.Request, cursor string) string // default: same host, page[cursor] only
}

func newFakeAPI(t *testing.T, profiles []fakeProfile) *fakeAPI {
	f := &fakeAPI{t: t, profiles: append([]fakeProfile(nil), profiles...)}
	sort.Slice(f.profiles, func(i, j int) bool {
		a, b := f.profiles[i], f.profiles[j]
		if !a.created.Equal(b.created) {
			return a.created.Before(b.created)
		}
		return a.id < b.id
	})
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

// profilesEvery makes n profiles from start, per apart, sharing seconds
// when per < 1s.
func profilesEvery(start time.Time, n int, per time.Duration) []fakeProfile {
	out := make([]fakeProfile, n)
	for i := range out {
		out[i] = fakeProfile{id: fmt.Sprintf("p%06d", i), created: start.Add(time.Duration(i) * per).Truncate(time.Second)}
	}
	return out
}

func (f *fakeAPI) requests() []*http.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*http.Request(nil), f.reqs...)
}

var filterRE = regexp.MustCompile(`(greater-than|less-than)\((created|updated),([0-9TZ:-]+)\)(,|$)`)

func writeJSON(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/vnd.api+json")
	w.WriteHeader(status)
	w.Write([]byte(body))
}

func apiErrorBody(status int, code, detail, param string) string {
	src := ""
	if param != "" {
		src = fmt.Sprintf(`,"source":{"parameter":%q}`, param)
	}
	return fmt.Sprintf(`{"errors":[{"id":"e1","status":%d,"code":%q,"title":"Error","detail":%q%s}]}`, status, code, detail, src)
}

func (f *fakeAPI) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.reqs = append(f.reqs, r.Clone(context.Background()))
	n := len(f.reqs)
	tamper := f.tamper
	f.mu.Unlock()
	if r.Header.Get("Authorization") != "Klaviyo-API-Key "+testKey {
		writeJSON(w, 401, apiErrorBody(401, "not_authenticated", "Missing or invalid private key.", ""))
		return
	}
	if tamper != nil && tamper(w, r, n) {
		return
	}
	q := r.URL.Query()
	var lo, hi time.Time
	if fs := q.Get("filter"); fs != "" {
		ms := filterRE.FindAllStringSubmatch(fs, -1)
		if len(ms) == 0 || len(filterRE.ReplaceAllString(fs, "")) != 0 {
			writeJSON(w, 400, apiErrorBody(400, "invalid", "bad filter "+fs, "filter"))
			return
		}
		for _, m := range ms {
			v, err := time.Parse(time.RFC3339, m[3])
			if err != nil {
				writeJSON(w, 400, apiErrorBody(400, "invalid", "bad time", "filter"))
				return
			}
			if m[1] == "greater-than" {
				lo = v
			} else {
				hi = v
			}
		}
	}
	size, _ := strconv.Atoi(q.Get("page[size]"))
	if size < 1 || size > 100 {
		size = 20
	}
	f.mu.Lock()
	var match []fakeProfile
	for _, p := range f.profiles {
		if (lo.IsZero() || p.created.After(lo)) && (hi.IsZero() || p.created.Before(hi)) {
			match = append(match, p)
		}
	}
	f.mu.Unlock()
	off := 0
	if c := q.Get("page[cursor]"); c != "" {
		v, err := strconv.Atoi(strings.TrimPrefix(c, "off"))
		if err != nil || !strings.HasPrefix(c, "off") {
			writeJSON(w, 400, apiErrorBody(400, "invalid", "Invalid page cursor.", "page[cursor]"))
			return
		}
		off = v
	}
	end := min(off+size, len(match))
	var b bytes.Buffer
	b.WriteString(`{"data":[`)
	for i := off; i < end; i++ {
		if i > off {
			b.WriteByte(',')
		}
		p := match[i]
		fmt.Fprintf(&b, `{"type":"profile","id":%q,"attributes":{"email":"%s@example.com","created":%q,"updated":%q},"links":{"self":"x"}}`,
			p.id, p.id, p.created.Format("2006-01-02T15:04:05.999999999-07:00"), p.created.Format("2006-01-02T15:04:05.999999999-07:00"))
	}
	b.WriteString(`],"links":{"self":"s"`)
	if end < len(match) {
		cur := "off" + strconv.Itoa(end)
		link := "http://" + r.Host + "/api/profiles?page%5Bcursor%5D=" + cur + "&filter=evil&page%5Bsize%5D=1"
		if f.nextLink != nil {
			link = f.nextLink(r, cur)
		}
		fmt.Fprintf(&b, `,"next":%q`, link)
	}
	b.WriteString(`}}`)
	writeJSON(w, 200, b.String())
}

// testClient is a Client on f with fast retries and a generous budget.
func testClient(t *testing.T, baseURL string, mod func(*Config)) (*Client, *bytes.Buffer) {
	t.Helper()
	var logs bytes.Buffer
	cfg := Config{
		BaseURL: baseURL, APIKey: testKey, Revision: "2026-07-15",
		Burst: Rate{1000, time.Second}, Steady: Rate{100000, time.Minute},
		MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond,
		RetryDeadline: 10 * time.Second, RequestTimeout: 5 * time.Second,
		Logger: zerolog.New(&syncWriter{w: &logs}).Level(zerolog.TraceLevel),
	}
	if mod != nil {
		mod(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c, &logs
}

type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// collector gathers a Walk's pages and checks the callback contract as they
// arrive.
type collector struct {
	t        *testing.T
	all      []fakeProfile // the account, for the checkpoint property
	ids      map[string]int
	pages    int
	last     []Slice
	inCall   bool
	lastDone map[int]time.Time
	stopAt   int // return errStop at this page (0 = never)
}

var errStop = fmt.Errorf("stop requested by test")

func newCollector(t *testing.T, all []fakeProfile) *collector {
	return &collector{t: t, all: all, ids: map[string]int{}, lastDone: map[int]time.Time{}}
}

func (c *collector) fn(ctx context.Context, p Page) error {
	if c.inCall {
		c.t.Error("callback called concurrently")
	}
	c.inCall = true
	defer func() { c.inCall = false }()
	c.pages++
	for _, r := range p.Records {
		c.ids[r.ID]++
	}
	if p.Slice < 0 || p.Slice >= len(p.Progress) {
		c.t.Fatalf("page slice %d outside progress of %d", p.Slice, len(p.Progress))
	}
	if d := p.Progress[p.Slice].Done; d.Before(c.lastDone[p.Slice]) {
		c.t.Errorf("slice %d went back from %v to %v", p.Slice, c.lastDone[p.Slice], d)
	}
	c.lastDone[p.Slice] = p.Progress[p.Slice].Done
	// The checkpoint property: everything below each slice's Done has been
	// delivered by the time the page carrying that Done arrives.
	for i, s := range p.Progress {
		for _, q := range c.all {
			if !q.created.Before(s.Start) && q.created.Before(s.Done) && c.ids[q.id] == 0 {
				c.t.Fatalf("page %d: slice %d [%v,%v) done %v but %s (%v) not delivered", c.pages, i, s.Start, s.End, s.Done, q.id, q.created)
			}
		}
	}
	c.last = p.Progress
	if c.stopAt > 0 && c.pages >= c.stopAt {
		return errStop
	}
	return nil
}

// checkComplete asserts that every profile in [start, end) was delivered
// (exactly once when dupFree) and nothing else.
func (c *collector) checkComplete(start, end time.Time, dupFree bool) {
	c.t.Helper()
	want := 0
	for _, p := range c.all {
		in := !p.created.Before(start) && p.created.Before(end)
		switch {
		case in:
			want++
			if c.ids[p.id] == 0 {
				c.t.Errorf("missing %s (%v)", p.id, p.created)
			} else if dupFree && c.ids[p.id] > 1 {
				c.t.Errorf("%s delivered %d times", p.id, c.ids[p.id])
			}
		case c.ids[p.id] > 0:
			c.t.Errorf("%s (%v) outside the window delivered", p.id, p.created)
		}
	}
	if len(c.ids) != want {
		c.t.Errorf("%d distinct ids delivered, want %d", len(c.ids), want)
	}
}
