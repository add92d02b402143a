package postgres

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/jackc/pgx/v5"

	"github.com/klaviyo-etl/klaviyo-etl/internal/pgtest"
	"github.com/klaviyo-etl/klaviyo-etl/load"
	"github.com/klaviyo-etl/klaviyo-etl/schema"
)

// script is a sequence of runs, each of checkpoints, each of Writes, as
// rows to build records from.
type script [][][]scriptWrite

type scriptWrite struct {
	profiles, rels, rejects []row
}

// randomScript draws runs over a few profile ids, so that ids come back
// within and across checkpoints and runs, twice in one Write, with equal,
// older, newer or no updated, with relationships in their own Write, ahead
// of their profile, or for a profile written earlier — every case the
// direct path must either reproduce or leave to the merge.
func randomScript(seed uint64) script {
	rng := rand.New(rand.NewPCG(seed, 99))
	ids := []string{"p0", "p1", "p2", "p3", "p4", "p5", "p6", "p7", "p8", "p9", "pa", "pb"}
	fresh := 0
	var sc script
	for r := range 3 {
		runID := fmt.Sprintf("run-%d", r+1)
		var run [][]scriptWrite
		for c := range 3 {
			var cp []scriptWrite
			var inCheckpoint []string // ids written so far in this checkpoint
			for w := range 2 + rng.IntN(5) {
				var sw scriptWrite
				var written []string
				for i := range rng.IntN(5) {
					var id string
					switch k := rng.IntN(8); {
					case k < 3:
						// A new id, seen nowhere before: the usual case of an
						// incremental run.
						id = fmt.Sprintf("n%03d", fresh)
						fresh++
					case k < 5 && len(inCheckpoint) > 0:
						id = inCheckpoint[rng.IntN(len(inCheckpoint))]
					default:
						id = ids[rng.IntN(len(ids))]
					}
					p := row{
						"id": id, "first_name": fmt.Sprintf("r%dc%dw%di%d", r, c, w, i),
						"_run_id": runID, "_extracted_at": t0,
					}
					if rng.IntN(8) == 0 {
						p["first_name"] = p["first_name"].(string) + "\x00nul"
					}
					if k := rng.IntN(4); k > 0 {
						p["updated"] = t0.Add(time.Duration(k) * time.Minute)
					}
					sw.profiles = append(sw.profiles, p)
					written = append(written, id)
				}
				for _, id := range written {
					for _, l := range []string{"L0", "L1", "L2", "L3"} {
						if rng.IntN(3) == 0 {
							sw.rels = append(sw.rels, relationship(id, "lists", l, runID))
						}
					}
				}
				if rng.IntN(3) == 0 { // relationships of a profile not in this Write
					id := ids[rng.IntN(len(ids))]
					if len(inCheckpoint) > 0 && rng.IntN(3) > 0 {
						id = inCheckpoint[rng.IntN(len(inCheckpoint))]
					}
					sw.rels = append(sw.rels, relationship(id, "segments", fmt.Sprintf("S%d", rng.IntN(2)), runID))
				}
				inCheckpoint = append(inCheckpoint, written...)
				if rng.IntN(10) == 0 && len(sw.rels) > 0 { // the same row twice
					sw.rels = append(sw.rels, sw.rels[0])
				}
				if rng.IntN(5) == 0 {
					sw.rejects = append(sw.rejects, row{"run_id": runID, "error": "bad\x00", "raw": []byte("r"), "rejected_at": t0})
				}
				cp = append(cp, sw)
			}
			run = append(run, cp)
		}
		sc = append(sc, run)
	}
	return sc
}

// play runs sc into schemaName, one sink per run as separate runs would.
func play(t *testing.T, url, schemaName string, sc script, setup func(*Sink)) pathCounts {
	t.Helper()
	mem := newAllocator(t)
	var paths pathCounts
	for r, run := range sc {
		runID := fmt.Sprintf("run-%d", r+1)
		s, st := begin(t, url, Config{Schema: schemaName}, runID)
		setup(s)
		for _, cp := range run {
			for _, w := range cp {
				var b load.Batch
				if len(w.profiles) > 0 {
					b.Profiles = record(t, mem, schema.Profiles, w.profiles...)
				}
				if len(w.rels) > 0 {
					b.Relationships = record(t, mem, schema.ProfileRelationships, w.rels...)
				}
				if len(w.rejects) > 0 {
					b.Rejects = record(t, mem, schema.ProfileRejects, w.rejects...)
				}
				write(t, s, b)
			}
			if err := s.Commit(t.Context(), st); err != nil {
				t.Fatal(err)
			}
		}
		st.LastRun, st.Run = st.Run, nil
		st.LastRun.Status = "succeeded"
		if err := s.Commit(t.Context(), st); err != nil {
			t.Fatal(err)
		}
		paths.direct += s.paths.direct
		paths.probed += s.paths.probed
		paths.rolledBack += s.paths.rolledBack
		paths.downgraded += s.paths.downgraded
		if err := s.Close(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	return paths
}

// dump returns every row a reader of schemaName sees, as sorted lines.
func dump(t *testing.T, conn *pgx.Conn, schemaName string) []string {
	t.Helper()
	var lines []string
	for _, q := range []string{
		`SELECT 'profile ' || id || ' ' || coalesce(first_name, '-') || ' ' || coalesce((updated AT TIME ZONE 'UTC')::text, '-') || ' ' || _run_id FROM %s.profiles`,
		`SELECT 'rel ' || profile_id || ' ' || relationship || ' ' || related_type || ' ' || related_id || ' ' || _run_id FROM %s.profile_relationships`,
		`SELECT 'rejects ' || run_id || ' ' || count(*) FROM %s.profile_rejects GROUP BY run_id`,
		`SELECT 'run ' || run_id || ' nul ' || nul_replaced FROM %s.etl_runs`,
	} {
		rows, err := conn.Query(t.Context(), fmt.Sprintf(q, schemaName))
		if err != nil {
			t.Fatal(err)
		}
		got, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, got...)
	}
	slices.Sort(lines)
	return lines
}

// TestDirectMatchesStaged plays random scripts twice into empty schemas:
// through staging and the merge only, and with direct COPY wherever the
// sink takes it (with the usual savepoints, and with a single savepoint
// per checkpoint, so that later direct Writes are probed and COPYed
// without one). Readers must see the same rows either way.
func TestDirectMatchesStaged(t *testing.T) {
	url := pgtest.NewDatabase(t)
	conn := connect(t, url)
	var total pathCounts
	for seed := range uint64(8) {
		sc := randomScript(seed)
		want := func() []string {
			name := fmt.Sprintf("s%d_staged", seed)
			play(t, url, name, sc, func(s *Sink) { s.noFastPath = true })
			return dump(t, conn, name)
		}()
		for _, v := range []struct {
			name       string
			savepoints int
		}{{"direct", maxSavepoints}, {"one_savepoint", 1}} {
			t.Run(fmt.Sprintf("seed %d %s", seed, v.name), func(t *testing.T) {
				name := fmt.Sprintf("s%d_%s", seed, v.name)
				paths := play(t, url, name, sc, func(s *Sink) { s.maxSavepoints = v.savepoints })
				got := dump(t, conn, name)
				if !slices.Equal(got, want) {
					t.Errorf("rows differ from the staged load:\n%s", lineDiff(want, got))
				}
				total.direct += paths.direct
				total.probed += paths.probed
				total.rolledBack += paths.rolledBack
				total.downgraded += paths.downgraded
			})
		}
	}
	// The scripts must have taken every path, or they prove little.
	if total.direct == 0 || total.probed == 0 || total.rolledBack == 0 || total.downgraded == 0 {
		t.Errorf("paths taken: %+v, want each at least once", total)
	}
	t.Logf("paths taken: %+v", total)
}

func lineDiff(want, got []string) string {
	var b strings.Builder
	for _, l := range want {
		if !slices.Contains(got, l) {
			b.WriteString("- " + l + "\n")
		}
	}
	for _, l := range got {
		if !slices.Contains(want, l) {
			b.WriteString("+ " + l + "\n")
		}
	}
	return b.String()
}

// TestDirectCopyIncremental: in an incremental run, a Write of new
// profiles goes straight into the tables of record; one holding a stored
// profile is staged and merged, alone, its NUL count unchanged.
func TestDirectCopyIncremental(t *testing.T) {
	url := pgtest.NewDatabase(t)
	mem := newAllocator(t)
	conn := connect(t, url)
	s1, st1 := begin(t, url, Config{}, "run-1")
	write(t, s1, load.Batch{
		Profiles:      record(t, mem, schema.Profiles, profile("old", t0, "run-1"), profile("old2", t0, "run-1")),
		Relationships: record(t, mem, schema.ProfileRelationships, relationship("old", "lists", "L0", "run-1")),
	})
	if err := s1.Commit(t.Context(), st1); err != nil {
		t.Fatal(err)
	}
	s1.Close(t.Context())

	s, st := begin(t, url, Config{}, "run-2")
	if s.fast {
		t.Fatal("tables not empty at Begin: want the first Write probed")
	}
	withNUL := profile("b", t0, "run-2")
	withNUL["first_name"] = "x\x00"
	write(t, s, load.Batch{ // probed: new, direct
		Profiles:      record(t, mem, schema.Profiles, profile("a", t0, "run-2")),
		Relationships: record(t, mem, schema.ProfileRelationships, relationship("a", "lists", "L1", "run-2")),
	})
	write(t, s, load.Batch{ // not probed: meets old, rolled back, staged
		Profiles:      record(t, mem, schema.Profiles, withNUL, profile("old", t0.Add(time.Hour), "run-2")),
		Relationships: record(t, mem, schema.ProfileRelationships, relationship("old", "lists", "L2", "run-2")),
	})
	write(t, s, load.Batch{ // probed: old2 is stored, staged without a COPY attempt
		Profiles: record(t, mem, schema.Profiles, profile("old2", t0.Add(2*time.Hour), "run-2")),
	})
	write(t, s, load.Batch{ // probed: new, direct
		Profiles: record(t, mem, schema.Profiles, profile("c", t0, "run-2")),
	})
	want := pathCounts{direct: 2, probed: 1, rolledBack: 1}
	if s.paths != want {
		t.Errorf("paths %+v, want %+v", s.paths, want)
	}
	if got := s.NULReplaced(); got != 1 {
		t.Errorf("NULReplaced = %d, want 1 (counted once though COPYed twice)", got)
	}
	if err := s.Commit(t.Context(), st); err != nil {
		t.Fatal(err)
	}
	if got, want := dump(t, conn, "klaviyo"), []string{
		"profile a - 2025-03-14 15:09:26.535897 run-2",
		"profile b x\uFFFD 2025-03-14 15:09:26.535897 run-2",
		"profile c - 2025-03-14 15:09:26.535897 run-2",
		"profile old - 2025-03-14 16:09:26.535897 run-2",
		"profile old2 - 2025-03-14 17:09:26.535897 run-2",
		"rel a lists list L1 run-2",
		"rel old lists list L2 run-2",
		"run run-1 nul 0",
		"run run-2 nul 1",
	}; !slices.Equal(got, want) {
		t.Errorf("rows:\n%s", lineDiff(want, got))
	}
}

// BenchmarkLoadNew is an incremental run of new profiles into tables
// holding another account's: through direct COPY, and through staging and
// the merge as before.
func BenchmarkLoadNew(b *testing.B) {
	for _, v := range []struct {
		name   string
		noFast bool
	}{{"direct", false}, {"staged", true}} {
		b.Run(v.name, func(b *testing.B) {
			for range b.N {
				url := pgtest.NewDatabase(b)
				mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
				other := newGenerator(mem, "run-0", 0)
				other.rng = rand.New(rand.NewPCG(7, 8))
				other.start = time.Date(2017, 1, 1, 0, 0, 0, 0, time.UTC)
				prefill(b, url, other, 1_000)
				measureLoad(b, url, mem, newGenerator(mem, "run-1", 0), v.noFast)
			}
		})
	}
}

// prefill commits n profiles of g in one checkpoint.
func prefill(b *testing.B, url string, g *generator, n int) {
	ctx := context.Background()
	s, err := New(url, Config{Migrate: true})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close(ctx)
	st, err := s.Begin(ctx)
	if err != nil {
		b.Fatal(err)
	}
	batch := g.batch(n)
	defer release(batch)
	if err := s.Write(ctx, batch); err != nil {
		b.Fatal(err)
	}
	st.LastRun = &load.Run{ID: g.runID, CursorField: "created", Status: "succeeded"}
	if err := s.Commit(ctx, st); err != nil {
		b.Fatal(err)
	}
}
