package klaviyosim

import (
	"cmp"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// expectedOrder sorts the data set the way the API documents: by the sort
// key, ties by id, "-" reversing the whole order.
func expectedOrder(ps []Profile, sort string) []string {
	desc := strings.HasPrefix(sort, "-")
	field := strings.TrimPrefix(sort, "-")
	ps = slices.Clone(ps)
	slices.SortFunc(ps, func(a, b Profile) int {
		var c int
		switch field {
		case "created":
			c = a.Created.Compare(b.Created)
		case "updated":
			c = a.Updated.Compare(b.Updated)
		case "email":
			c = cmp.Compare(a.Email.Value, b.Email.Value)
		}
		if c == 0 {
			c = cmp.Compare(a.ID, b.ID)
		}
		if desc {
			c = -c
		}
		return c
	})
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.ID
	}
	return out
}

func TestWalkEverySortKey(t *testing.T) {
	s := newSim(t, Config{Profiles: 5000, Seed: 7})
	all := s.Profiles()
	for _, sort := range []string{"created", "-created", "updated", "-updated", "id", "-id", "email", "-email"} {
		t.Run(sort, func(t *testing.T) {
			got := ids(walk(t, s, call{query: q("sort", sort, "page[size]", "100", "fields[profile]", lean)}))
			if len(got) != 5000 {
				t.Fatalf("walked %d records, want 5000", len(got))
			}
			seen := map[string]bool{}
			for _, id := range got {
				if seen[id] {
					t.Fatalf("id %s seen twice", id)
				}
				seen[id] = true
			}
			if want := expectedOrder(all, sort); !slices.Equal(got, want) {
				t.Fatalf("order differs from sort=%s", sort)
			}
		})
	}
}

func TestDefaultPageSizeAndNoSort(t *testing.T) {
	s := newSim(t, Config{Profiles: 45, Seed: 1})
	p := getPage(t, s, call{})
	if len(p.Data) != 20 {
		t.Fatalf("default page has %d records, want 20", len(p.Data))
	}
	if p.Links.Prev != "" {
		t.Fatalf("first page has links.prev %q", p.Links.Prev)
	}
	got := walk(t, s, call{})
	if want := expectedOrder(s.Profiles(), "id"); !slices.Equal(ids(got), want) {
		t.Fatal("without sort the walk is not in id order")
	}
}

func TestTiesAcrossPageBoundaries(t *testing.T) {
	s := newSim(t, Config{Profiles: 1500, Seed: 3})
	// One bulk import of 250 profiles in a single second, plus the generator's own ties.
	at := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	s.AddProfiles(250, at)
	all := s.Profiles()
	bySecond := map[int64]int{}
	for _, p := range all {
		bySecond[p.Created.Unix()]++
	}
	groups := 0
	for _, n := range bySecond {
		if n >= 5 {
			groups++
		}
	}
	if groups < 3 {
		t.Fatalf("only %d created seconds shared by >= 5 profiles; want bulk-import ties", groups)
	}
	for _, size := range []string{"3", "7", "100"} {
		for _, sort := range []string{"created", "-created"} {
			t.Run(sort+"/"+size, func(t *testing.T) {
				got := ids(walk(t, s, call{query: q("sort", sort, "page[size]", size, "fields[profile]", lean)}))
				if want := expectedOrder(all, sort); !slices.Equal(got, want) {
					t.Fatalf("walk of %d differs from the expected %d", len(got), len(want))
				}
			})
		}
	}
	// A window that starts and ends inside the tie.
	got := walk(t, s, call{query: q("sort", "created", "page[size]", "9",
		"filter", fmt.Sprintf("greater-than(created,%s),less-than(created,%s)", rfc(at.Add(-time.Second)), rfc(at.Add(time.Second))))})
	if len(got) != bySecond[at.Unix()] {
		t.Fatalf("window over the tie returned %d, want %d", len(got), bySecond[at.Unix()])
	}
}

func TestPrevLinksWalkBack(t *testing.T) {
	s := newSim(t, Config{Profiles: 230, Seed: 5})
	for _, sort := range []string{"created", "-updated", "email"} {
		t.Run(sort, func(t *testing.T) {
			var forward [][]string
			c := call{query: q("sort", sort, "page[size]", "25")}
			var last wirePage
			for {
				p := getPage(t, s, c)
				var page []string
				for _, raw := range p.Data {
					page = append(page, decodeRecord(t, raw).ID)
				}
				forward = append(forward, page)
				if len(forward) > 1 && p.Links.Prev == "" {
					t.Fatal("a page after the first has no links.prev")
				}
				last = p
				if p.Links.Next == "" {
					break
				}
				c = call{url: p.Links.Next}
			}
			for i := len(forward) - 2; i >= 0; i-- {
				p := getPage(t, s, call{url: last.Links.Prev})
				var page []string
				for _, raw := range p.Data {
					page = append(page, decodeRecord(t, raw).ID)
				}
				if !slices.Equal(page, forward[i]) {
					t.Fatalf("prev page %d differs from the forward page", i)
				}
				if (i == 0) != (p.Links.Prev == "") {
					t.Fatalf("page %d: links.prev = %q", i, p.Links.Prev)
				}
				if p.Links.Next == "" {
					t.Fatalf("page %d reached by prev has no next", i)
				}
				last = p
			}
		})
	}
}

func TestLinksCarryTheQuery(t *testing.T) {
	s := newSim(t, Config{Profiles: 50, Seed: 1})
	query := q("sort", "-created", "page[size]", "10", "fields[profile]", "email,created",
		"filter", "greater-than(created,2020-01-01T00:00:00Z)", "additional-fields[profile]", "subscriptions")
	p := getPage(t, s, call{query: query})
	next, err := url.Parse(p.Links.Next)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(p.Links.Next, s.URL()+"/api/profiles?") || !strings.HasPrefix(p.Links.Self, s.URL()+"/api/profiles?") {
		t.Fatalf("links not absolute on the server's host: %+v", p.Links)
	}
	for k := range query {
		if next.Query().Get(k) != query.Get(k) {
			t.Errorf("links.next %s = %q, want %q", k, next.Query().Get(k), query.Get(k))
		}
	}
	cur := next.Query().Get("page[cursor]")
	if cur == "" {
		t.Fatal("links.next has no page[cursor]")
	}
	// Old revisions used the trailing-slash path; links follow the request.
	p = getPage(t, s, call{path: "/api/profiles/", revision: "2023-02-22", query: q("page[size]", "10")})
	if !strings.HasPrefix(p.Links.Next, s.URL()+"/api/profiles/?") {
		t.Fatalf("links.next %q does not keep the request path", p.Links.Next)
	}
}

func TestWalkUnderConcurrentChanges(t *testing.T) {
	s := newSim(t, Config{Profiles: 2000, Seed: 11})
	before := s.Profiles()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			s.AddProfiles(3, before[i%len(before)].Created) // ties with existing profiles
			s.UpdateProfiles([]string{before[(i*37)%len(before)].ID, before[(i*91)%len(before)].ID}, time.Now())
			time.Sleep(5 * time.Millisecond)
		}
	}()
	for _, sort := range []string{"created", "-created", "id"} {
		got := walk(t, s, call{query: q("sort", sort, "page[size]", "50", "fields[profile]", lean)})
		seen := map[string]int{}
		for _, r := range got {
			seen[r.ID]++
		}
		for id, n := range seen {
			if n != 1 {
				t.Errorf("sort=%s: %s seen %d times", sort, id, n)
			}
		}
		for _, p := range before {
			if seen[p.ID] != 1 {
				t.Fatalf("sort=%s: profile %s that existed before the walk was missed", sort, p.ID)
			}
		}
	}
	close(stop)
	wg.Wait()
}

func TestAddAndUpdateProfilesVisible(t *testing.T) {
	s := newSim(t, Config{Profiles: 100, Seed: 2})
	at := time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC)
	added := s.AddProfiles(12, at)
	if len(added) != 12 {
		t.Fatalf("AddProfiles returned %d", len(added))
	}
	win := fmt.Sprintf("greater-than(created,%s),less-than(created,%s)", rfc(at.Add(-time.Second)), rfc(at.Add(time.Second)))
	got := walk(t, s, call{query: q("sort", "created", "filter", win)})
	var want []string
	for _, p := range added {
		if !p.Created.Equal(at) || !p.Updated.Equal(at) {
			t.Fatalf("added profile created %v updated %v, want %v", p.Created, p.Updated, at)
		}
		want = append(want, p.ID)
	}
	slices.Sort(want)
	if !slices.Equal(ids(got), want) {
		t.Fatalf("window walk %v, want %v", ids(got), want)
	}

	spread := s.AddProfiles(5, time.Time{})
	if spread[0].Created.Equal(spread[4].Created) || time.Since(spread[4].Created) > time.Minute {
		t.Fatalf("zero time should spread over the last seconds: %v .. %v", spread[0].Created, spread[4].Created)
	}

	old := s.Profiles()[:20]
	var upd []string
	for _, p := range old {
		upd = append(upd, p.ID)
	}
	when := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
	s.UpdateProfiles(upd, when)
	got = walk(t, s, call{query: q("sort", "updated", "filter", "greater-than(updated,2026-11-24T23:59:59Z),less-than(updated,2026-11-25T00:00:01Z)")})
	if !slices.Equal(ids(got), upd) { // ties on updated are ordered by id, as upd is
		t.Fatalf("updated walk %v, want %v", ids(got), upd)
	}
	changed := 0
	now := s.Profiles()
	for i, p := range old {
		n := now[slices.IndexFunc(now, func(x Profile) bool { return x.ID == p.ID })]
		if !n.Updated.Equal(when) || !n.Created.Equal(p.Created) || n.Email != p.Email {
			t.Fatalf("profile %d after update: created %v updated %v email %v", i, n.Created, n.Updated, n.Email)
		}
		if string(n.Properties) != string(p.Properties) || n.Organization != p.Organization || n.Title != p.Title {
			changed++
		}
	}
	if changed < len(old)/2 {
		t.Fatalf("only %d of %d updated profiles changed attributes", changed, len(old))
	}
}

func TestDeterministicFromSeed(t *testing.T) {
	a, err := New(Config{Profiles: 500, Seed: 42})
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(Config{Profiles: 500, Seed: 42})
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(Config{Profiles: 500, Seed: 43})
	if err != nil {
		t.Fatal(err)
	}
	pa, pb, pc := a.Profiles(), b.Profiles(), c.Profiles()
	opts := RenderOptions{AdditionalFields: []string{"subscriptions", "predictive_analytics"}}
	for i := range pa {
		if string(pa[i].JSON("2026-07-15", opts)) != string(pb[i].JSON("2026-07-15", opts)) {
			t.Fatalf("profile %d differs between two servers with the same seed", i)
		}
	}
	if pa[0].ID == pc[0].ID {
		t.Fatal("another seed gave the same first profile")
	}
}
