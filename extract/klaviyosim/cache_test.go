package klaviyosim

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
	"time"
)

// TestCachedPagesEqualRendered walks the same account on a server that
// caches records and on one that does not, with several sparse fieldsets,
// before and after updates: every body must be byte-for-byte the same
// (links aside, which name each server's own address), and the second walk
// of the caching server must come from its cache.
func TestCachedPagesEqualRendered(t *testing.T) {
	cfg := Config{Profiles: 700, Seed: 7}
	plain := newSim(t, cfg)
	cfg.CacheRecords = true
	cached := newSim(t, cfg)

	queries := []url.Values{
		q("page[size]", "100"),
		q("page[size]", "37", "sort", "-updated", "fields[profile]", "email,created,location.city,properties"),
		q("additional-fields[profile]", "subscriptions,predictive_analytics", "fields[profile]", "subscriptions.email,updated"),
		q("include", "push-tokens", "page[size]", "50"), // never cached
	}
	compare := func(pass string) {
		t.Helper()
		for _, qv := range queries {
			want := walkBodies(t, plain, qv)
			got := walkBodies(t, cached, qv)
			if !bytes.Equal(got, want) {
				t.Fatalf("%s, %s: cached server's pages differ from rendered ones", pass, qv.Encode())
			}
		}
	}
	compare("first walk")
	hits := cachedRecords(cached)
	if hits != 3*cfg.Profiles {
		t.Fatalf("cache holds %d records after the first walk, want %d (three cacheable fieldsets)", hits, 3*cfg.Profiles)
	}
	compare("second walk, from the cache")

	var ids []string
	for i, p := range plain.Profiles() {
		if i%9 == 0 {
			ids = append(ids, p.ID)
		}
	}
	at := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
	plain.UpdateProfiles(ids, at)
	cached.UpdateProfiles(ids, at)
	compare("after updates")
}

// walkBodies follows links.next from /api/profiles?qv and returns every
// body, with the server's address replaced by BASE.
func walkBodies(t *testing.T, s *Server, qv url.Values) []byte {
	t.Helper()
	var all []byte
	c := call{query: qv}
	for pages := 0; ; pages++ {
		if pages > 1000 {
			t.Fatal("links.next does not end")
		}
		r := do(t, s, c)
		if r.status != http.StatusOK {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
		all = append(all, bytes.ReplaceAll(r.body, []byte(s.URL()), []byte("BASE"))...)
		var p wirePage
		if err := json.Unmarshal(r.body, &p); err != nil {
			t.Fatalf("decode page: %v", err)
		}
		if p.Links.Next == "" {
			return all
		}
		c = call{url: p.Links.Next}
	}
}

func cachedRecords(s *Server) int {
	s.cache.mu.RLock()
	defer s.cache.mu.RUnlock()
	n := 0
	for _, set := range s.cache.specs {
		for _, e := range set.slots {
			if e.n != 0 {
				n++
			}
		}
	}
	return n
}
