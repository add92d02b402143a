package extract

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"sort"
	"testing"
	"unsafe"

	"github.com/klaviyo-etl/klaviyo-etl/extract/klaviyosim"
)

// TestReleasedBodiesAreReused: released pages' bodies are read into again,
// and every record delivered is still exactly what the server sent.
func TestReleasedBodiesAreReused(t *testing.T) {
	s := newSim(t, klaviyosim.Config{Profiles: 6000, Seed: 5, Unlimited: true})
	walk := func(release bool) (map[string][]byte, int, int) {
		c := simClient(t, s, func(cfg *Config) { cfg.Concurrency = 2 })
		raws := map[string][]byte{}
		arrays := map[*byte]bool{}
		pages := 0
		err := c.Walk(context.Background(), oneSliceField("created", simStart, simEnd), func(_ context.Context, p Page) error {
			pages++
			if p.lease.body != nil {
				arrays[unsafe.SliceData(p.lease.body.data)] = true
			}
			for _, r := range p.Records {
				var el struct{ ID string }
				if err := json.Unmarshal(r.Raw, &el); err != nil || el.ID != r.ID {
					t.Fatalf("record %q: Raw %.80q does not hold its id (%v)", r.ID, r.Raw, err)
				}
				raws[r.ID] = bytes.Clone(r.Raw)
			}
			if release {
				p.Release()
				p.Release() // a second call does nothing
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return raws, pages, len(arrays)
	}
	kept, pages, fresh := walk(false)
	reused, _, buffers := walk(true)
	if fresh != pages {
		t.Errorf("without Release: %d bodies for %d pages", fresh, pages)
	}
	// Under the race detector sync.Pool drops a quarter of what it is
	// given, and a collection may empty it: only "some" is certain.
	if buffers >= pages {
		t.Errorf("with Release: %d bodies for %d pages; released bodies are not read into again", buffers, pages)
	}
	if len(kept) != 6000 || len(reused) != len(kept) {
		t.Fatalf("records: %d without Release, %d with; want 6000", len(kept), len(reused))
	}
	ids := make([]string, 0, len(kept))
	for id := range kept {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		if !bytes.Equal(kept[id], reused[id]) {
			t.Fatalf("record %s differs once bodies are reused", id)
		}
	}
	t.Logf("%d pages: %d bodies without Release, %d with", pages, fresh, buffers)
}

// TestReadBodyOneBuffer: a body of known length is read into one buffer,
// never copied into a larger one on the way.
func TestReadBodyOneBuffer(t *testing.T) {
	for _, n := range []int{0, 1, 511, 512, 100_000, 163_740, 165_000} {
		payload := bytes.Repeat([]byte{'x'}, n)
		resp := &http.Response{ContentLength: int64(n), Body: io.NopCloser(bytes.NewReader(payload))}
		got, err := readBody(resp, nil)
		if err != nil || !bytes.Equal(got, payload) {
			t.Fatalf("%d bytes: read %d, %v", n, len(got), err)
		}
		// Allocation size classes round up by less than a quarter; a copy
		// into a larger buffer doubles.
		if n >= 4096 && cap(got) > n+n/4+bytes.MinRead {
			t.Errorf("%d bytes: buffer of %d; the body was copied into a larger one", n, cap(got))
		}
		again, err := readBody(&http.Response{ContentLength: int64(n), Body: io.NopCloser(bytes.NewReader(payload))}, got)
		if err != nil || !bytes.Equal(again, payload) || (n > 0 && unsafe.SliceData(again) != unsafe.SliceData(got)) {
			t.Errorf("%d bytes: reading into a buffer large enough did not reuse it", n)
		}
	}
}

// TestStaleReleaseKeepsTheNewOwner: releasing a page again after its body
// went to another response leaves that response's body alone.
func TestStaleReleaseKeepsTheNewOwner(t *testing.T) {
	c := &Client{}
	first := c.takeBody()
	first.body.data = append(first.body.data, "first"...)
	first.release()
	var second lease
	for range 100 { // the pool may drop a Put; keep trying until the body comes back
		if second = c.takeBody(); second.body == first.body {
			break
		}
		first = second
		first.release()
	}
	if second.body != first.body {
		t.Fatal("sync.Pool never returned the released body in 100 takes")
	}
	second.body.data = append(second.body.data, "second"...)
	first.release() // stale: its body now belongs to second
	for range 100 {
		if l := c.takeBody(); l.body == second.body {
			t.Fatalf("a stale release put the second owner's body back in the pool")
		}
	}
	if string(second.body.data) != "second" {
		t.Errorf("second owner's body holds %q", second.body.data)
	}
}
