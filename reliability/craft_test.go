package reliability

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Crafted responses: middleware for klaviyosim.Server.Use.

// pageDoc is a response body with its data elements kept byte for byte.
type pageDoc struct {
	Data  []json.RawMessage `json:"data"`
	Links map[string]any    `json:"links,omitempty"`
}

func decodePage(t testing.TB, body []byte) pageDoc {
	t.Helper()
	var p pageDoc
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatalf("decode a simulator page: %v", err)
	}
	return p
}

// encodePage writes a page; elements are written as they are (json.Marshal
// would compact them, and some crafted ones are not valid on their own).
func encodePage(p pageDoc) []byte {
	var b bytes.Buffer
	b.WriteString(`{"data":[`)
	for i, e := range p.Data {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(e)
	}
	b.WriteString(`]`)
	if p.Links != nil {
		links, _ := json.Marshal(p.Links)
		b.WriteString(`,"links":`)
		b.Write(links)
	}
	b.WriteString(`}`)
	return b.Bytes()
}

// nextCursor is page[cursor] of a page's links.next, "" at the end.
func nextCursor(p pageDoc) string {
	s, _ := p.Links["next"].(string)
	if s == "" {
		return ""
	}
	u, err := url.Parse(s)
	if err != nil {
		return ""
	}
	return u.Query().Get("page[cursor]")
}

// withCursor is the simulator's own next link with page[cursor] replaced.
func withCursor(base string, cursor string) string {
	return base + "/api/profiles?page%5Bcursor%5D=" + url.QueryEscape(cursor)
}

// isProbe reports whether r is the one-profile request a first run sends to
// find the oldest profile (extract.Client.Oldest) before it walks.
func isProbe(r *http.Request) bool {
	q := r.URL.Query()
	return q.Get("page[size]") == "1" && q.Get("page[cursor]") == "" && q.Get("filter") == ""
}

// editPages lets the simulator answer every request and passes each 200
// body (uncompressed) of the walk through edit, with the request's sequence
// number (from 1). The oldest-profile probe is answered untouched and not
// numbered.
func editPages(edit func(n int, r *http.Request, body []byte) []byte) func(http.Handler) http.Handler {
	var seq atomic.Int64
	var mu sync.Mutex // edits run one at a time, so they may share state
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if isProbe(r) {
				next.ServeHTTP(w, r)
				return
			}
			r.Header.Del("Accept-Encoding")
			rec := httptest.NewRecorder()
			next.ServeHTTP(rec, r)
			body := rec.Body.Bytes()
			n := int(seq.Add(1))
			if rec.Code == http.StatusOK {
				mu.Lock()
				body = edit(n, r, body)
				mu.Unlock()
			}
			for k, v := range rec.Header() {
				if k != "Content-Length" {
					w.Header()[k] = v
				}
			}
			w.Header().Set("Content-Length", fmt.Sprint(len(body)))
			w.WriteHeader(rec.Code)
			w.Write(body)
		})
	}
}

// emptyPage is a page with no records and no next page.
var emptyPage = []byte(`{"data":[],"links":{"self":"x","next":null}}`)

// servePage answers every request of the walk with body (the simulator's
// data is not used), and the oldest-profile probe with an empty page, so
// that the window starts at the epoch and holds every crafted record.
func servePage(body []byte) func(http.Handler) http.Handler {
	return func(http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body := body
			if isProbe(r) {
				body = emptyPage
			}
			w.Header().Set("Content-Type", "application/vnd.api+json")
			w.Header().Set("Content-Length", fmt.Sprint(len(body)))
			w.WriteHeader(http.StatusOK)
			w.Write(body)
		})
	}
}

// elementsOf returns the data elements of a crafted page as served.
func elementsOf(body []byte) [][]byte {
	var p struct {
		Data []json.RawMessage `json:"data"`
	}
	if json.Unmarshal(body, &p) != nil {
		return nil
	}
	out := make([][]byte, len(p.Data))
	for i, e := range p.Data {
		out[i] = e
	}
	return out
}

// account checks that every element of a crafted page is in the output:
// as a profile row (by id), as reject rows holding it byte for byte, or
// counted as outside the window. It returns the elements not found.
func account(t testing.TB, tg target, elems [][]byte, r result) (lost int, rejects []rejectRow) {
	t.Helper()
	ids := map[string]int{}
	for _, p := range readProfiles(t, tg) {
		ids[p.ID]++
	}
	rejects = readRejects(t, tg)
	raws := map[string]bool{}
	for _, rj := range rejects {
		raws[string(rj.Raw)] = true
		if rj.Error == "" {
			t.Errorf("reject row without a reason: %q", rj.Raw)
		}
	}
	outside := 0
	for i, e := range elems {
		if raws[string(e)] {
			continue
		}
		if id := elementID(e); id != "" && ids[storedID(tg, id)] > 0 {
			continue
		}
		if outsideWindow(e) {
			outside++
			continue
		}
		lost++
		if lost <= 5 {
			t.Errorf("element %d silently lost: %s", i, clip(string(e), 300))
		}
	}
	// Reject rows must hold records as received, nothing else.
	known := map[string]bool{}
	for _, e := range elems {
		known[string(e)] = true
	}
	for _, rj := range rejects {
		if !known[string(rj.Raw)] {
			t.Errorf("reject row's raw is not a record as received: %s", clip(string(rj.Raw), 300))
		}
	}
	if outside > 0 && (r.summary == nil || r.summary.OutOfWindow < int64(outside)) {
		t.Errorf("%d records outside the window, but the summary counts %v", outside, r.summary)
	}
	return lost, rejects
}

// duplicates counts extra rows of ids that appear more than once.
func duplicates(rows []row) int {
	n := 0
	seen := map[string]bool{}
	for _, r := range rows {
		if seen[r.ID] {
			n++
		}
		seen[r.ID] = true
	}
	return n
}

// storedID is id as the sink stores it: PostgreSQL text holds no NUL and
// no invalid UTF-8, which the sink replaces with U+FFFD.
func storedID(tg target, id string) string {
	if tg.sink != "postgres" {
		return id
	}
	return strings.ReplaceAll(strings.ToValidUTF8(id, "\uFFFD"), "\x00", "\uFFFD")
}

func elementID(e []byte) string {
	var v struct {
		ID any `json:"id"`
	}
	if json.Unmarshal(e, &v) != nil {
		return ""
	}
	s, _ := v.ID.(string)
	return s
}

// outsideWindow reports whether an element's created lies outside every
// window a run can ask for (before 1970 or after 2900).
func outsideWindow(e []byte) bool {
	var v struct {
		Attributes struct {
			Created any `json:"created"`
		} `json:"attributes"`
	}
	if json.Unmarshal(e, &v) != nil {
		return false
	}
	s, _ := v.Attributes.Created.(string)
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02"} {
		if tm, err := time.Parse(layout, s); err == nil {
			return tm.Year() < 1970 || tm.Year() > 2900
		}
	}
	return false
}

// counter counts requests a foreign host receives.
type counter struct {
	mu sync.Mutex
	n  int
	h  []http.Header
}

func (c *counter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	c.n++
	c.h = append(c.h, r.Header.Clone())
	c.mu.Unlock()
	w.WriteHeader(http.StatusTeapot)
}
