package klaviyosim

import (
	"net/http"
	"net/url"
	"testing"
)

// BenchmarkRenderPage100 renders one page of 100 profiles (the hot path of
// a full export); bytes/op is the page size.
func BenchmarkRenderPage100(b *testing.B) {
	s, err := New(Config{Profiles: 100_000, Seed: 1, Unlimited: true})
	if err != nil {
		b.Fatal(err)
	}
	rev, _ := parseRevision(newestRevision)
	v := url.Values{"sort": {"created"}, "page[size]": {"100"}}
	pq, e := s.parseQuery(v, rev, "http://127.0.0.1:8080")
	if e != nil {
		b.Fatal(e.detail)
	}
	res := s.runQuery(pq)
	buf := s.renderPage(nil, pq, res, "http://127.0.0.1:8080/api/profiles", v.Encode())
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		buf = s.renderPage(buf[:0], pq, res, "http://127.0.0.1:8080/api/profiles", v.Encode())
	}
}

// BenchmarkServePage100 is one whole request through the handler (cursor
// decode, keyset search, render, write) on a 1M-profile account, without
// the network and without gzip.
func BenchmarkServePage100(b *testing.B) {
	s, err := New(Config{Profiles: 1_000_000, Seed: 1, Unlimited: true})
	if err != nil {
		b.Fatal(err)
	}
	h := s.Handler()
	first, _ := http.NewRequest(http.MethodGet, "http://sim/api/profiles?sort=created&page%5Bsize%5D=100", nil)
	first.Header.Set("Authorization", "Klaviyo-API-Key pk_test")
	first.Header.Set("revision", "2026-07-15")
	// A request from the middle of the walk, with a cursor.
	rev, _ := parseRevision(newestRevision)
	pq, _ := s.parseQuery(url.Values{"sort": {"created"}, "page[size]": {"100"}}, rev, "http://sim")
	s.mu.RLock()
	mid := keyOf(&s.recs[s.order(sortCreated)[500_000]], sortCreated, new([]byte))
	s.mu.RUnlock()
	_ = pq
	req := first.Clone(first.Context())
	req.URL.RawQuery = url.Values{"sort": {"created"}, "page[size]": {"100"}, "page[cursor]": {s.codec.encode(mid)}}.Encode()
	w := &discardWriter{h: http.Header{}}
	h.ServeHTTP(w, req)
	if w.status != 200 {
		b.Fatalf("status %d", w.status)
	}
	b.SetBytes(int64(w.n))
	b.ReportAllocs()
	for b.Loop() {
		clear(w.h)
		h.ServeHTTP(w, req)
	}
}

func BenchmarkNew1M(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := New(Config{Profiles: 1_000_000, Seed: 1}); err != nil {
			b.Fatal(err)
		}
	}
}

type discardWriter struct {
	h      http.Header
	status int
	n      int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) WriteHeader(status int)      { w.status = status }
func (w *discardWriter) Write(p []byte) (int, error) { w.n = len(p); return len(p), nil }
