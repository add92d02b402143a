package extract

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestWalkWindowValidation(t *testing.T) {
	f := newFakeAPI(t, profilesEvery(t0, 5, time.Second))
	c, _ := testClient(t, f.srv.URL, nil)
	h := t0.Add(time.Hour)
	tests := []struct {
		name    string
		win     Window
		wantErr string
	}{
		{"bad field", Window{Field: "email", Slices: []Slice{{t0, h, t0}}}, "cursor field"},
		{"zero start", Window{Field: "created", Slices: []Slice{{time.Time{}, h, time.Time{}}}}, "must be set"},
		{"end before start", Window{Field: "created", Slices: []Slice{{h, t0, h}}}, "end before start"},
		{"done outside", Window{Field: "created", Slices: []Slice{{t0, h, h.Add(time.Second)}}}, "outside"},
		{"overlap", Window{Field: "created", Slices: []Slice{{t0.Add(time.Minute), h, t0.Add(time.Minute)}, {t0, t0.Add(2 * time.Minute), t0}}}, "overlap"},
		{"no slices", Window{Field: "created"}, ""},
		{"empty slice", Window{Field: "created", Slices: []Slice{{t0, t0, t0}}}, ""},
		{"all finished", Window{Field: "updated", Slices: []Slice{{t0, h, h}, {h, h.Add(time.Hour), h.Add(time.Hour)}}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls := 0
			err := c.Walk(context.Background(), tt.win, func(context.Context, Page) error { calls++; return nil })
			if tt.wantErr == "" {
				if err != nil || calls != 0 {
					t.Fatalf("err %v, %d calls", err, calls)
				}
			} else if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
			if n := len(f.requests()); n != 0 {
				t.Fatalf("%d requests", n)
			}
		})
	}
}

// checkCover asserts that the final progress tiles [start, end) exactly and
// is finished.
func checkCover(t *testing.T, prog []Slice, start, end time.Time) {
	t.Helper()
	ps := append([]Slice(nil), prog...)
	sort.Slice(ps, func(i, j int) bool { return ps[i].Start.Before(ps[j].Start) })
	at := start
	for _, s := range ps {
		if !s.Start.Equal(at) {
			t.Fatalf("progress has a gap or overlap at %v: %+v", at, ps)
		}
		if !s.Finished() {
			t.Errorf("slice %+v unfinished", s)
		}
		at = s.End
	}
	if !at.Equal(end) {
		t.Fatalf("progress ends at %v, want %v", at, end)
	}
}

func TestWalkSkewedData(t *testing.T) {
	// A year-long window whose profiles all sit in its last two hours, many
	// per second: splits must follow the data so every worker stays busy.
	end := t0.Add(365 * 24 * time.Hour)
	all := profilesEvery(end.Add(-2*time.Hour), 3000, 2*time.Second+300*time.Millisecond)
	all = append(all, profilesEvery(end.Add(-time.Hour), 500, 0)...) // one bulk import
	for i := range all[3000:] {
		all[3000+i].id = "bulk" + all[3000+i].id
	}
	for _, conc := range []int{1, 3, 8} {
		t.Run(fmt.Sprint("concurrency ", conc), func(t *testing.T) {
			f := newFakeAPI(t, all)
			// The first wave waits in the handler until every worker has
			// sent its request, so InFlightMax shows conc however the
			// machine schedules the workers. For a client that never has
			// conc in flight, the wave goes after 3 s (before its 5 s
			// request timeout) and the check below fails. The probe
			// (page[size]=1) goes alone and is not held.
			var waiting atomic.Int64
			wave := make(chan struct{})
			release := sync.OnceFunc(func() { close(wave) })
			f.tamper = func(_ http.ResponseWriter, r *http.Request, _ int) bool {
				if conc > 1 && r.URL.Query().Get("page[size]") != "1" {
					if waiting.Add(1) >= int64(conc) {
						release()
					}
					select {
					case <-wave:
					case <-time.After(3 * time.Second):
						release()
					}
				}
				time.Sleep(2 * time.Millisecond) // a little latency, as any server has
				return false
			}
			c, _ := testClient(t, f.srv.URL, func(cfg *Config) { cfg.Concurrency = conc; cfg.PageSize = 50 })
			col := newCollector(t, all)
			if err := c.Walk(context.Background(), oneSlice(t0, end), col.fn); err != nil {
				t.Fatal(err)
			}
			col.checkComplete(t0, end, true)
			checkCover(t, col.last, t0, end)
			st := c.Stats()
			if conc > 1 && st.InFlightMax < int64(conc) {
				t.Errorf("at most %d requests in flight with %d workers", st.InFlightMax, conc)
			}
			// Pages beyond the minimum: partial last pages of slices and the
			// empty slices found on the way to the data.
			minPages := int64(len(all)+49) / 50
			if st.Pages > minPages+int64(conc)*40 {
				t.Errorf("%d pages for %d minimum", st.Pages, minPages)
			}
			if st.OutOfSlice != 0 {
				t.Errorf("OutOfSlice = %d", st.OutOfSlice)
			}
		})
	}
}

func TestWalkResumedSliceDropsDelivered(t *testing.T) {
	// Checkpoint Done = 00:00:10: records before it were delivered; those
	// at 00:00:10 are read again, the ones before are dropped and counted.
	all := make([]fakeProfile, 40) // two per second, at .0 and .5
	for i := range all {
		all[i] = fakeProfile{id: fmt.Sprintf("p%02d", i), created: t0.Add(time.Duration(i) * 500 * time.Millisecond)}
	}
	f := newFakeAPI(t, all)
	c, _ := testClient(t, f.srv.URL, func(cfg *Config) { cfg.Concurrency = 1 })
	done := t0.Add(10 * time.Second)
	end := t0.Add(time.Minute)
	col := newCollector(t, nil)
	if err := c.Walk(context.Background(), Window{Field: "created", Slices: []Slice{{t0, end, done}}}, col.fn); err != nil {
		t.Fatal(err)
	}
	q := f.requests()[0].URL.Query().Get("filter")
	if want := "greater-than(created,2024-03-01T00:00:09Z),less-than(created,2024-03-01T00:01:00Z)"; q != want {
		t.Errorf("filter %q, want %q", q, want)
	}
	for _, p := range all {
		delivered := col.ids[p.id] > 0
		if want := !p.created.Before(done); delivered != want {
			t.Errorf("%s at %v delivered = %v", p.id, p.created, delivered)
		}
	}
	if st := c.Stats(); st.OutOfSlice != 1 {
		t.Errorf("OutOfSlice = %d, want 1 (the record at 00:00:09.5)", st.OutOfSlice)
	}
}
