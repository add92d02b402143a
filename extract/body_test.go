package extract

import (
	"bytes"
	"context"
	"encoding/json"
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
			if p.body != nil {
				arrays[unsafe.SliceData(p.body.b)] = true
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
	if buffers >= pages/2 {
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
