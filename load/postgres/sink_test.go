package postgres

import (
	"bytes"
	"context"
	"errors"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/klaviyo-etl/klaviyo-etl/internal/pgtest"
	"github.com/klaviyo-etl/klaviyo-etl/load"
	"github.com/klaviyo-etl/klaviyo-etl/schema"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

var t0 = time.Date(2025, 3, 14, 15, 9, 26, 535897000, time.UTC)

// newSink returns a begun sink on url with the test's cleanup closing it.
func newSink(t *testing.T, url string, cfg Config) *Sink {
	t.Helper()
	s, err := New(url, cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.backoff = func(int) time.Duration { return 10 * time.Millisecond }
	t.Cleanup(func() { s.Close(context.WithoutCancel(t.Context())) })
	return s
}

// begin returns a begun, migrated sink whose run runID is committed.
func begin(t *testing.T, url string, cfg Config, runID string) (*Sink, load.State) {
	t.Helper()
	cfg.Migrate = true
	s := newSink(t, url, cfg)
	st, err := s.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if runID != "" {
		st.Run = &load.Run{ID: runID, CursorField: "created", Status: "running", StartedAt: t0}
		if err := s.Commit(t.Context(), st); err != nil {
			t.Fatal(err)
		}
	}
	return s, st
}

func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.WithoutCancel(t.Context())) })
	return conn
}

func count(t *testing.T, conn *pgx.Conn, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := conn.QueryRow(t.Context(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

func write(t *testing.T, s *Sink, b load.Batch) {
	t.Helper()
	defer func() {
		for _, r := range records(b) {
			r.Release()
		}
	}()
	if err := s.Write(t.Context(), b); err != nil {
		t.Fatal(err)
	}
}

func TestWriteCommitReadBack(t *testing.T) {
	url := pgtest.NewDatabase(t)
	mem := newAllocator(t)
	s, st := begin(t, url, Config{}, "run-1")

	lat, lon := 48.8566, -0.0
	full := row{
		"id": "01HZX", "email": "nul\x00@example.com", "phone_number": "+33 1 23 45 67 89",
		"external_id": "ext-1", "anonymous_id": "anon", "first_name": "Zoë", "last_name": "bad\xffutf8",
		"organization": "O'Reilly \"quoted\"", "locale": "fr-FR", "title": "", "image": "https://x/y.png",
		"created": t0.Add(-48 * time.Hour), "updated": t0, "last_event_date": time.Date(1970, 1, 1, 0, 0, 0, 1000, time.UTC),
		"location_address1": "1 rue\tde\nla Paix", "location_city": "Paris", "location_country": "France",
		"location_region": "IDF", "location_zip": "75002", "location_timezone": "Europe/Paris", "location_ip": "127.0.0.1",
		"location_latitude": lat, "location_longitude": lon,
		"properties":           `{"a": [1, 2.5, "x\u0000y", "\\u0000 stays", null], "b": {"c": true}}`,
		"subscriptions":        `{"email": {"marketing": {"consent": "SUBSCRIBED"}}}`,
		"predictive_analytics": `null`,
		"_run_id":              "run-1", "_extracted_at": t0.Add(time.Second),
	}
	sparse := row{"id": "01HZY", "_run_id": "run-1", "_extracted_at": t0}
	raw := []byte("{\"id\":\x00\xff\xfe}")
	write(t, s, load.Batch{
		Profiles:      record(t, mem, schema.Profiles, full, sparse),
		Relationships: record(t, mem, schema.ProfileRelationships, relationship("01HZX", "lists", "L1", "run-1")),
		Rejects: record(t, mem, schema.ProfileRejects, row{
			"run_id": "run-1", "profile_id": "01HZZ", "field": "attributes.created", "error": "bad time\x00",
			"raw": raw, "rejected_at": t0,
		}, row{"run_id": "run-1", "error": "whole record", "raw": []byte{}, "rejected_at": t0}),
	})
	if got := s.NULReplaced(); got != 4 {
		t.Errorf("NULReplaced after write = %d, want 4 (email, last_name, properties, reject error)", got)
	}
	st.Run.Stats.Profiles = 2
	if err := s.Commit(t.Context(), st); err != nil {
		t.Fatal(err)
	}

	conn := connect(t, url)
	type profileRow struct {
		Email, FirstName, LastName, Org, Title *string
		Created, Updated, LastEvent            *time.Time
		Lat, Lon                               *float64
		Props, Subs, Pred                      *string
		RunID                                  string
		Extracted                              time.Time
	}
	read := func(id string) profileRow {
		var p profileRow
		err := conn.QueryRow(t.Context(), `SELECT email, first_name, last_name, organization, title, created, updated,
			last_event_date, location_latitude, location_longitude, properties::text, subscriptions::text,
			predictive_analytics::text, _run_id, _extracted_at FROM klaviyo.profiles WHERE id = $1`, id).Scan(
			&p.Email, &p.FirstName, &p.LastName, &p.Org, &p.Title, &p.Created, &p.Updated, &p.LastEvent,
			&p.Lat, &p.Lon, &p.Props, &p.Subs, &p.Pred, &p.RunID, &p.Extracted)
		if err != nil {
			t.Fatalf("read %s: %v", id, err)
		}
		return p
	}
	p := read("01HZX")
	str := func(s *string) string {
		if s == nil {
			return "<NULL>"
		}
		return *s
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"email NUL", str(p.Email), "nul\uFFFD@example.com"},
		{"first_name", str(p.FirstName), "Zoë"},
		{"last_name invalid UTF-8", str(p.LastName), "bad\uFFFDutf8"},
		{"organization", str(p.Org), `O'Reilly "quoted"`},
		{"empty string stays empty", str(p.Title), ""},
		{"created", p.Created.UTC(), t0.Add(-48 * time.Hour)},
		{"updated microseconds", p.Updated.UTC(), t0},
		{"last_event_date", p.LastEvent.UTC(), time.Date(1970, 1, 1, 0, 0, 0, 1000, time.UTC)},
		{"latitude", *p.Lat, lat},
		{"longitude", *p.Lon, lon},
		{"properties", str(p.Props), "{\"a\": [1, 2.5, \"x\uFFFDy\", \"\\\\u0000 stays\", null], \"b\": {\"c\": true}}"},
		{"subscriptions", str(p.Subs), `{"email": {"marketing": {"consent": "SUBSCRIBED"}}}`},
		{"JSON null is not SQL NULL", str(p.Pred), "null"},
		{"_run_id", p.RunID, "run-1"},
		{"_extracted_at", p.Extracted.UTC(), t0.Add(time.Second)},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s: got %#v, want %#v", c.name, c.got, c.want)
		}
	}
	q := read("01HZY")
	if q.Email != nil || q.Created != nil || q.Lat != nil || q.Props != nil {
		t.Errorf("sparse row: NULL columns came back set: %+v", q)
	}

	var gotRaw []byte
	var rerr string
	if err := conn.QueryRow(t.Context(), `SELECT raw, error FROM klaviyo.profile_rejects WHERE profile_id = '01HZZ'`).Scan(&gotRaw, &rerr); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(gotRaw, raw) {
		t.Errorf("raw = %q, want %q byte for byte", gotRaw, raw)
	}
	if rerr != "bad time\uFFFD" {
		t.Errorf("reject error = %q", rerr)
	}
	if n := count(t, conn, `SELECT count(*) FROM klaviyo.profile_rejects WHERE profile_id IS NULL AND raw = ''::bytea`); n != 1 {
		t.Errorf("empty raw stored %d times, want 1 (not NULL)", n)
	}
	if n := count(t, conn, `SELECT count(*) FROM klaviyo.profile_lists WHERE profile_id = '01HZX' AND list_id = 'L1'`); n != 1 {
		t.Errorf("profile_lists has %d rows for the list, want 1", n)
	}
	if n := count(t, conn, `SELECT nul_replaced FROM klaviyo.etl_runs WHERE run_id = 'run-1'`); n != 4 {
		t.Errorf("etl_runs.nul_replaced = %d, want 4", n)
	}
	if n := count(t, conn, `SELECT profiles FROM klaviyo.etl_runs WHERE run_id = 'run-1'`); n != 2 {
		t.Errorf("etl_runs.profiles = %d, want 2", n)
	}
}

func TestUncommittedWritesVanish(t *testing.T) {
	tests := []struct {
		name string
		end  func(t *testing.T, s *Sink, admin *pgx.Conn)
	}{
		{"close", func(t *testing.T, s *Sink, _ *pgx.Conn) {
			if err := s.Close(t.Context()); err != nil {
				t.Fatal(err)
			}
		}},
		{"killed connection", func(t *testing.T, s *Sink, admin *pgx.Conn) {
			if _, err := admin.Exec(t.Context(), `SELECT pg_terminate_backend($1)`, s.conn.PgConn().PID()); err != nil {
				t.Fatal(err)
			}
			s.Close(t.Context())
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url := pgtest.NewDatabase(t)
			mem := newAllocator(t)
			s, st := begin(t, url, Config{}, "run-1")
			write(t, s, load.Batch{Profiles: record(t, mem, schema.Profiles, profile("a", t0, "run-1"))})
			committed := st
			write(t, s, load.Batch{Profiles: record(t, mem, schema.Profiles, profile("b", t0, "run-1"))})
			if err := s.Commit(t.Context(), committed); err != nil {
				t.Fatal(err)
			}
			write(t, s, load.Batch{
				Profiles:      record(t, mem, schema.Profiles, profile("c", t0, "run-1")),
				Relationships: record(t, mem, schema.ProfileRelationships, relationship("c", "lists", "L", "run-1")),
				Rejects:       record(t, mem, schema.ProfileRejects, row{"run_id": "run-1", "error": "e", "raw": []byte("x"), "rejected_at": t0}),
			})
			admin := connect(t, url)
			tt.end(t, s, admin)

			if n := count(t, admin, `SELECT count(*) FROM klaviyo.profiles`); n != 2 {
				t.Errorf("%d profiles, want the 2 committed", n)
			}
			if n := count(t, admin, `SELECT count(*) FROM klaviyo.profile_relationships`) + count(t, admin, `SELECT count(*) FROM klaviyo.profile_rejects`); n != 0 {
				t.Errorf("%d uncommitted relationship/reject rows survived", n)
			}
			s2, got := begin(t, url, Config{}, "")
			defer s2.Close(t.Context())
			if !reflect.DeepEqual(got, committed) {
				t.Errorf("state after %s = %+v, want the committed %+v", tt.name, got, committed)
			}
		})
	}
}

func TestUpsertKeepsNewer(t *testing.T) {
	older, newer := t0.Add(-time.Hour), t0.Add(time.Hour)
	tests := []struct {
		name             string
		stored, incoming *time.Time
		wantApplied      bool
	}{
		{"newer replaces", &t0, &newer, true},
		{"equal replaces", &t0, &t0, true},
		{"older kept out", &t0, &older, false},
		{"dated replaces undated", nil, &older, true},
		{"undated does not replace dated", &t0, nil, false},
		{"undated replaces undated", nil, nil, true},
	}
	url := pgtest.NewDatabase(t)
	mem := newAllocator(t)
	mk := func(id string, updated *time.Time, name, runID string) row {
		r := row{"id": id, "first_name": name, "_run_id": runID, "_extracted_at": t0}
		if updated != nil {
			r["updated"] = *updated
		}
		return r
	}
	// Run 1 stores, run 2 brings the incoming versions: separate sinks, so
	// run 2 goes through the merge as an incremental run would.
	s1, _ := begin(t, url, Config{}, "run-1")
	var first, second []row
	var rels1, rels2 []row
	for _, tt := range tests {
		first = append(first, mk(tt.name, tt.stored, "stored", "run-1"))
		second = append(second, mk(tt.name, tt.incoming, "incoming", "run-2"))
		rels1 = append(rels1, relationship(tt.name, "lists", "old", "run-1"))
		rels2 = append(rels2, relationship(tt.name, "lists", "new", "run-2"))
	}
	write(t, s1, load.Batch{Profiles: record(t, mem, schema.Profiles, first...), Relationships: record(t, mem, schema.ProfileRelationships, rels1...)})
	if err := s1.Commit(t.Context(), load.State{LastRun: &load.Run{ID: "run-1", Status: "succeeded"}}); err != nil {
		t.Fatal(err)
	}
	s1.Close(t.Context())

	s2, _ := begin(t, url, Config{}, "run-2")
	write(t, s2, load.Batch{Profiles: record(t, mem, schema.Profiles, second...), Relationships: record(t, mem, schema.ProfileRelationships, rels2...)})
	if err := s2.Commit(t.Context(), load.State{LastRun: &load.Run{ID: "run-2", Status: "succeeded"}}); err != nil {
		t.Fatal(err)
	}
	conn := connect(t, url)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var name string
			var list string
			if err := conn.QueryRow(t.Context(), `SELECT p.first_name, string_agg(r.related_id, ',')
				FROM klaviyo.profiles p LEFT JOIN klaviyo.profile_relationships r ON r.profile_id = p.id
				WHERE p.id = $1 GROUP BY p.first_name`, tt.name).Scan(&name, &list); err != nil {
				t.Fatal(err)
			}
			want, wantList := "stored", "old"
			if tt.wantApplied {
				want, wantList = "incoming", "new"
			}
			if name != want || list != wantList {
				t.Errorf("got version %q with lists %q, want %q with %q", name, list, want, wantList)
			}
		})
	}
}

func TestRelationshipsReplaced(t *testing.T) {
	url := pgtest.NewDatabase(t)
	mem := newAllocator(t)
	conn := connect(t, url)
	lists := func(id string) []string {
		rows, err := conn.Query(t.Context(), `SELECT relationship || ':' || related_id FROM klaviyo.profile_relationships WHERE profile_id = $1 ORDER BY 1`, id)
		if err != nil {
			t.Fatal(err)
		}
		got, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	s, st := begin(t, url, Config{}, "run-1")
	write(t, s, load.Batch{
		Profiles: record(t, mem, schema.Profiles, profile("a", t0, "run-1"), profile("b", t0, "run-1")),
		Relationships: record(t, mem, schema.ProfileRelationships,
			relationship("a", "lists", "L1", "run-1"), relationship("a", "lists", "L2", "run-1"),
			relationship("a", "segments", "S1", "run-1"), relationship("b", "lists", "L1", "run-1")),
	})
	if err := s.Commit(t.Context(), st); err != nil {
		t.Fatal(err)
	}
	// Relationships of c ahead of c: they belong to no version written in
	// this checkpoint, so c's own replace them.
	write(t, s, load.Batch{Relationships: record(t, mem, schema.ProfileRelationships, relationship("c", "lists", "early", "run-1"))})
	write(t, s, load.Batch{
		Profiles:      record(t, mem, schema.Profiles, profile("c", t0, "run-1")),
		Relationships: record(t, mem, schema.ProfileRelationships, relationship("c", "lists", "C1", "run-1")),
	})
	// A new version of a: its relationships are exactly the new ones; b is
	// untouched.
	write(t, s, load.Batch{
		Profiles:      record(t, mem, schema.Profiles, profile("a", t0.Add(time.Minute), "run-1")),
		Relationships: record(t, mem, schema.ProfileRelationships, relationship("a", "lists", "L3", "run-1")),
	})
	// A version of b with no relationships at all clears them.
	write(t, s, load.Batch{Profiles: record(t, mem, schema.Profiles, profile("b", t0.Add(time.Minute), "run-1"))})
	if err := s.Commit(t.Context(), st); err != nil {
		t.Fatal(err)
	}
	// A later run re-reads a with one membership kept and one new: the kept
	// row is not rewritten, so it still names the run that recorded it.
	write(t, s, load.Batch{
		Profiles: record(t, mem, schema.Profiles, profile("a", t0.Add(2*time.Minute), "run-2")),
		Relationships: record(t, mem, schema.ProfileRelationships,
			relationship("a", "lists", "L3", "run-2"), relationship("a", "lists", "L4", "run-2")),
	})
	if err := s.Commit(t.Context(), st); err != nil {
		t.Fatal(err)
	}
	if n := count(t, conn, `SELECT count(*) FROM klaviyo.profile_relationships WHERE profile_id = 'a' AND
		((related_id = 'L3' AND _run_id = 'run-1') OR (related_id = 'L4' AND _run_id = 'run-2'))`); n != 2 {
		t.Errorf("a's relationships after run-2: want L3 from run-1 kept and L4 from run-2 added")
	}
	write(t, s, load.Batch{
		Profiles:      record(t, mem, schema.Profiles, profile("a", t0.Add(3*time.Minute), "run-2")),
		Relationships: record(t, mem, schema.ProfileRelationships, relationship("a", "lists", "L3", "run-2")),
	})
	if err := s.Commit(t.Context(), st); err != nil {
		t.Fatal(err)
	}
	if got, want := lists("a"), []string{"lists:L3"}; !slices.Equal(got, want) {
		t.Errorf("a: %v, want %v", got, want)
	}
	if got := lists("b"); len(got) != 0 {
		t.Errorf("b: %v, want none", got)
	}
	if got, want := lists("c"), []string{"lists:C1"}; !slices.Equal(got, want) {
		t.Errorf("c: %v, want %v", got, want)
	}
	if n := count(t, conn, `SELECT count(*) FROM klaviyo.profile_segments`); n != 0 {
		t.Errorf("profile_segments has %d rows, want 0", n)
	}
}

func TestVersionsWithinOneCheckpoint(t *testing.T) {
	url := pgtest.NewDatabase(t)
	mem := newAllocator(t)
	conn := connect(t, url)
	for _, fast := range []bool{true, false} {
		name := map[bool]string{true: "first load", false: "incremental"}[fast]
		t.Run(name, func(t *testing.T) {
			schemaName := "s_" + map[bool]string{true: "fast", false: "merge"}[fast]
			s, st := begin(t, url, Config{Schema: schemaName}, "run-1")
			if !fast {
				write(t, s, load.Batch{
					Profiles:      record(t, mem, schema.Profiles, profile("z", t0, "run-1")),
					Relationships: record(t, mem, schema.ProfileRelationships, relationship("z", "lists", "Zold", "run-1")),
				})
				if err := s.Commit(t.Context(), st); err != nil {
					t.Fatal(err)
				}
			}
			// Relationships ahead of any version of z in this checkpoint
			// belong to the stored version, which z's new one replaces.
			write(t, s, load.Batch{Relationships: record(t, mem, schema.ProfileRelationships, relationship("z", "lists", "Zearly", "run-1"))})
			// Write 1: x v1 with L1; write 2: x v3 (newest) with L3; write 3:
			// x v2 (out of order) with L2; write 4: relationships only, for
			// the v2 just written. v3 wins, with exactly its L3.
			write(t, s, load.Batch{
				Profiles: record(t, mem, schema.Profiles, profile("x", t0.Add(1*time.Minute), "run-1"), profile("y", t0, "run-1"),
					profile("z", t0.Add(time.Minute), "run-1")),
				Relationships: record(t, mem, schema.ProfileRelationships, relationship("x", "lists", "L1", "run-1"),
					relationship("y", "lists", "Y", "run-1"), relationship("z", "lists", "Znew", "run-1")),
			})
			write(t, s, load.Batch{
				Profiles:      record(t, mem, schema.Profiles, profile("x", t0.Add(3*time.Minute), "run-1")),
				Relationships: record(t, mem, schema.ProfileRelationships, relationship("x", "lists", "L3", "run-1")),
			})
			write(t, s, load.Batch{
				Profiles:      record(t, mem, schema.Profiles, profile("x", t0.Add(2*time.Minute), "run-1")),
				Relationships: record(t, mem, schema.ProfileRelationships, relationship("x", "lists", "L2", "run-1")),
			})
			write(t, s, load.Batch{Relationships: record(t, mem, schema.ProfileRelationships, relationship("x", "lists", "L2b", "run-1"))})
			if err := s.Commit(t.Context(), st); err != nil {
				t.Fatal(err)
			}
			var updated time.Time
			var lists string
			if err := conn.QueryRow(t.Context(), `SELECT p.updated, string_agg(r.related_id, ',' ORDER BY r.related_id)
				FROM `+schemaName+`.profiles p JOIN `+schemaName+`.profile_relationships r ON r.profile_id = p.id
				WHERE p.id = 'x' GROUP BY p.updated`).Scan(&updated, &lists); err != nil {
				t.Fatal(err)
			}
			if !updated.Equal(t0.Add(3*time.Minute)) || lists != "L3" {
				t.Errorf("x: updated %v with lists %s, want %v with L3", updated, lists, t0.Add(3*time.Minute))
			}
			if n := count(t, conn, `SELECT count(*) FROM `+schemaName+`.profile_relationships WHERE profile_id = 'y'`); n != 1 {
				t.Errorf("y has %d relationships, want 1", n)
			}
			if n := count(t, conn, `SELECT count(*) FROM `+schemaName+`.profile_relationships WHERE profile_id = 'z' AND related_id = 'Znew'`); n != 1 ||
				count(t, conn, `SELECT count(*) FROM `+schemaName+`.profile_relationships WHERE profile_id = 'z'`) != 1 {
				t.Errorf("z's relationships are not exactly its new version's")
			}
		})
	}
}

func TestDirectCopyFallsBackOnKnownID(t *testing.T) {
	url := pgtest.NewDatabase(t)
	mem := newAllocator(t)
	conn := connect(t, url)
	s, st := begin(t, url, Config{}, "run-1")
	if !s.fast {
		t.Fatal("empty tables: want direct COPY")
	}
	write(t, s, load.Batch{Profiles: record(t, mem, schema.Profiles, profile("a", t0, "run-1"), profile("b", t0, "run-1"))})
	if err := s.Commit(t.Context(), st); err != nil {
		t.Fatal(err)
	}
	// a again, in a later checkpoint: the table's key refuses the direct
	// COPY and the checkpoint is replayed through the merge.
	write(t, s, load.Batch{Profiles: record(t, mem, schema.Profiles, profile("c", t0, "run-1"))})
	write(t, s, load.Batch{Profiles: record(t, mem, schema.Profiles, profile("a", t0.Add(time.Hour), "run-1"))})
	if s.fast {
		t.Error("still direct after a known id")
	}
	if err := s.Commit(t.Context(), st); err != nil {
		t.Fatal(err)
	}
	if n := count(t, conn, `SELECT count(*) FROM klaviyo.profiles`); n != 3 {
		t.Errorf("%d profiles, want 3", n)
	}
	if n := count(t, conn, `SELECT count(*) FROM klaviyo.profiles WHERE id = 'a' AND updated = $1`, t0.Add(time.Hour)); n != 1 {
		t.Error("a not updated by the replayed checkpoint")
	}
}

// TestDirectWritesAroundARollback: direct Writes leave their savepoint
// open until the next one's query releases it. Two direct Writes, a third
// that meets a stored id (rolled back to its own savepoint and staged),
// then a direct one again: every row lands, the stored id is merged, and
// nothing of the first two is rolled back with the third.
func TestDirectWritesAroundARollback(t *testing.T) {
	url := pgtest.NewDatabase(t)
	mem := newAllocator(t)
	conn := connect(t, url)
	s, st := begin(t, url, Config{}, "run-1")
	write(t, s, load.Batch{Profiles: record(t, mem, schema.Profiles, profile("stored", t0, "run-1"))})
	if err := s.Commit(t.Context(), st); err != nil {
		t.Fatal(err)
	}

	write(t, s, load.Batch{Profiles: record(t, mem, schema.Profiles, profile("w1", t0, "run-1"))})
	write(t, s, load.Batch{Profiles: record(t, mem, schema.Profiles, profile("w2", t0, "run-1"))})
	if !s.openSP {
		t.Fatal("a direct Write's savepoint should stay open for the next query to release")
	}
	write(t, s, load.Batch{Profiles: record(t, mem, schema.Profiles, profile("w3", t0, "run-1"), profile("stored", t0.Add(time.Hour), "run-1"))})
	if s.openSP || s.paths.rolledBack != 1 {
		t.Fatalf("the Write meeting a stored id: open savepoint %v, %d rolled back; want none open, 1", s.openSP, s.paths.rolledBack)
	}
	// No longer fast: the next Write is probed, then goes direct.
	write(t, s, load.Batch{Profiles: record(t, mem, schema.Profiles, profile("w4", t0, "run-1"))})
	if s.direct != 3 {
		t.Errorf("%d direct Writes in the checkpoint, want 3 (w1, w2, w4)", s.direct)
	}
	if err := s.Commit(t.Context(), st); err != nil {
		t.Fatal(err)
	}
	if n := count(t, conn, `SELECT count(*) FROM klaviyo.profiles`); n != 5 {
		t.Errorf("%d profiles, want 5", n)
	}
	if n := count(t, conn, `SELECT count(*) FROM klaviyo.profiles WHERE id = 'stored' AND updated = $1`, t0.Add(time.Hour)); n != 1 {
		t.Error("the stored profile was not merged")
	}
	if err := s.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
}

func TestLock(t *testing.T) {
	url := pgtest.NewDatabase(t)
	s1, _ := begin(t, url, Config{}, "")

	s2 := newSink(t, url, Config{Migrate: true})
	_, err := s2.Begin(t.Context())
	if !errors.Is(err, load.ErrLocked) {
		t.Fatalf("second Begin on the schema: %v, want ErrLocked", err)
	}
	if err := s2.Write(t.Context(), load.Batch{}); err == nil {
		t.Error("Write after a failed Begin succeeded")
	}
	if err := Migrate(t.Context(), url, DefaultSchema); !errors.Is(err, load.ErrLocked) {
		t.Errorf("migrate during a run: %v, want ErrLocked", err)
	}

	other, _ := begin(t, url, Config{Schema: "other"}, "")
	other.Close(t.Context())

	// The holder's backend dies: PostgreSQL releases its session lock.
	admin := connect(t, url)
	if _, err := admin.Exec(t.Context(), `SELECT pg_terminate_backend($1)`, s1.conn.PgConn().PID()); err != nil {
		t.Fatal(err)
	}
	s3 := newSink(t, url, Config{})
	var begun bool
	for range 100 { // termination is asynchronous
		if _, err = s3.Begin(t.Context()); !errors.Is(err, load.ErrLocked) {
			begun = true
			break
		}
		s3 = newSink(t, url, Config{})
		time.Sleep(20 * time.Millisecond)
	}
	if !begun || err != nil {
		t.Fatalf("Begin after the holder died: %v", err)
	}
	s3.Close(t.Context())

	// A sink reconnecting after losing its connection ends its own previous
	// backend if that still holds the lock (a half-open connection), but
	// no one else's.
	s4, _ := begin(t, url, Config{}, "")
	stale := s4.conn.PgConn().PID()
	s6 := newSink(t, url, Config{})
	s6.oldPID = stale + 1
	if err := s6.open(t.Context()); !errors.Is(err, load.ErrLocked) {
		t.Fatalf("reconnect while another backend holds the lock: %v, want ErrLocked", err)
	}
	s6.oldPID = stale
	if err := s6.open(t.Context()); err != nil {
		t.Fatalf("reconnect while its own old backend holds the lock: %v", err)
	}
	if err := s4.conn.Ping(t.Context()); err == nil {
		t.Error("the old backend survived")
	}
	s6.release(t.Context())
	s4.Close(t.Context())

	// And Close releases it at once.
	s5, _ := begin(t, url, Config{}, "")
	s5.Close(t.Context())
}

func TestTransientFailureReplaysCheckpoint(t *testing.T) {
	tests := []struct {
		name    string
		killAt  string // "write" between two Writes, "commit" before Commit
		retries int
		wantErr bool
	}{
		{"killed between writes", "write", 0, false},
		{"killed before commit", "commit", 0, false},
		{"retries disabled", "commit", -1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url := pgtest.NewDatabase(t)
			mem := newAllocator(t)
			admin := connect(t, url)
			kill := func(s *Sink) {
				t.Helper()
				pid := s.conn.PgConn().PID()
				if _, err := admin.Exec(t.Context(), `SELECT pg_terminate_backend($1)`, pid); err != nil {
					t.Fatal(err)
				}
			}
			s, st := begin(t, url, Config{Retries: tt.retries}, "run-1")
			// One committed checkpoint first, so the retried one merges.
			write(t, s, load.Batch{Profiles: record(t, mem, schema.Profiles, profile("a", t0, "run-1"))})
			if err := s.Commit(t.Context(), st); err != nil {
				t.Fatal(err)
			}
			write(t, s, load.Batch{
				Profiles:      record(t, mem, schema.Profiles, profile("a", t0.Add(time.Hour), "run-1"), profile("b", t0, "run-1")),
				Relationships: record(t, mem, schema.ProfileRelationships, relationship("b", "lists", "L", "run-1")),
				Rejects:       record(t, mem, schema.ProfileRejects, row{"run_id": "run-1", "error": "\x00", "raw": []byte("r"), "rejected_at": t0}),
			})
			if tt.killAt == "write" {
				kill(s)
				write(t, s, load.Batch{Profiles: record(t, mem, schema.Profiles, profile("c", t0, "run-1"))})
			} else {
				write(t, s, load.Batch{Profiles: record(t, mem, schema.Profiles, profile("c", t0, "run-1"))})
				kill(s)
			}
			st.Run.Stats.Profiles = 4
			err := s.Commit(t.Context(), st)
			if tt.wantErr {
				if err == nil {
					t.Fatal("commit on a killed connection succeeded without retries")
				}
				if n := count(t, admin, `SELECT count(*) FROM klaviyo.profiles`); n != 1 {
					t.Errorf("%d profiles after a failed commit, want 1", n)
				}
				return
			}
			if err != nil {
				t.Fatalf("commit: %v", err)
			}
			if s.Retries() == 0 {
				t.Error("no retry recorded")
			}
			if n := count(t, admin, `SELECT count(*) FROM klaviyo.profiles`); n != 3 {
				t.Errorf("%d profiles, want 3", n)
			}
			if n := count(t, admin, `SELECT count(*) FROM klaviyo.profiles WHERE id = 'a' AND updated = $1`, t0.Add(time.Hour)); n != 1 {
				t.Error("a not updated")
			}
			if n := count(t, admin, `SELECT count(*) FROM klaviyo.profile_relationships`); n != 1 {
				t.Errorf("%d relationships, want 1", n)
			}
			if n := count(t, admin, `SELECT count(*) FROM klaviyo.profile_rejects`); n != 1 {
				t.Errorf("%d rejects, want exactly 1 after the replay", n)
			}
			if n := count(t, admin, `SELECT nul_replaced FROM klaviyo.etl_runs WHERE run_id = 'run-1'`); n != 1 {
				t.Errorf("nul_replaced = %d after the replay, want 1", n)
			}
			// The sink holds the lock again on its new connection.
			s2 := newSink(t, url, Config{})
			if _, err := s2.Begin(t.Context()); !errors.Is(err, load.ErrLocked) {
				t.Errorf("Begin beside the recovered sink: %v, want ErrLocked", err)
			}
		})
	}
}

func TestCommitOutcomeLostWithConnection(t *testing.T) {
	// The COMMIT landed but its answer was lost: recovery must find the
	// commit id and not apply the checkpoint twice (rejects would double).
	url := pgtest.NewDatabase(t)
	mem := newAllocator(t)
	admin := connect(t, url)
	s, st := begin(t, url, Config{}, "run-1")
	write(t, s, load.Batch{Rejects: record(t, mem, schema.ProfileRejects, row{"run_id": "run-1", "error": "e", "raw": []byte("r"), "rejected_at": t0})})
	js := `{"schema_version":0,"generation":0,"run":{"id":"run-1","cursor_field":"created","generation":0,"start":"0001-01-01T00:00:00Z","end":"0001-01-01T00:00:00Z","started_at":"2025-03-14T15:09:26.535897Z","status":"running","stats":{"requests":0,"pages":0,"retries":0,"rate_limited":0,"records":0,"profiles":0,"relationships":0,"rejects":0,"rejected_records":0,"duplicates":0,"out_of_window":0,"nul_values":0,"bytes":0}}}`
	if err := s.finish(t.Context(), st, js, "landed-id"); err != nil {
		t.Fatal(err)
	}
	// Pretend the answer never came: the checkpoint is still retained.
	s.tx = nil
	if _, err := admin.Exec(t.Context(), `SELECT pg_terminate_backend($1)`, s.conn.PgConn().PID()); err != nil {
		t.Fatal(err)
	}
	cause := &pgconn.PgError{Code: "57P01", Message: "terminating connection due to administrator command"}
	if err := s.recover(t.Context(), cause, "landed-id", func(ctx context.Context) error { return s.finish(ctx, st, js, "landed-id") }); err != nil {
		t.Fatal(err)
	}
	if n := count(t, admin, `SELECT count(*) FROM klaviyo.profile_rejects`); n != 1 {
		t.Errorf("%d rejects, want 1: a landed commit was replayed", n)
	}
	s.releasePending()
	s.resetCheckpoint()
}

func TestStateRoundTrip(t *testing.T) {
	url := pgtest.NewDatabase(t)
	s, st := begin(t, url, Config{}, "")
	if !reflect.DeepEqual(st, load.State{}) {
		t.Fatalf("new target: state %+v, want zero", st)
	}
	want := load.State{
		SchemaVersion: schema.Version,
		Generation:    3,
		Cursors: map[string]*load.Cursor{
			schema.CursorCreated: {End: t0, Seen: map[string]int64{"01A": 1700000000, "01B": 1700000001}},
			schema.CursorUpdated: {End: t0.Add(-time.Hour)},
		},
		Run: &load.Run{
			ID: "run-9", CursorField: "created", Revision: "2026-07-15", Generation: 3, FullRefresh: true,
			Start: t0.Add(-24 * time.Hour), End: t0, StartedAt: t0.Add(time.Second), Status: "running",
			Error:  "nul \x00 inside", // jsonb cannot hold U+0000; stored as U+FFFD
			Slices: []load.Slice{{Start: t0.Add(-24 * time.Hour), End: t0, Done: t0.Add(-time.Hour)}},
			Seen:   map[string]int64{"01C": 1700000002},
			Stats: load.Stats{Requests: 10, RequestsByCode: map[string]int64{"200": 9, "429": 1}, Pages: 9,
				Retries: 1, RateLimited: 1, Records: 900, Profiles: 899, Relationships: 1000, Rejects: 2,
				RejectedWhole: 1, Duplicates: 3, OutOfWindow: 4, NULValues: 5, Bytes: 1 << 40},
		},
		LastRun: &load.Run{ID: "run-8", CursorField: "updated", Status: "failed", Error: "boom",
			StartedAt: t0.Add(-48 * time.Hour), EndedAt: t0.Add(-47 * time.Hour)},
	}
	if err := s.Commit(t.Context(), want); err != nil {
		t.Fatal(err)
	}
	s.Close(t.Context())
	want.Run.Error = "nul \uFFFD inside"

	got, err := ReadState(t.Context(), url, DefaultSchema)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ReadState:\n got %+v\nwant %+v", got, want)
	}
	s2, got2 := begin(t, url, Config{}, "")
	s2.Close(t.Context())
	if !reflect.DeepEqual(got2, want) {
		t.Errorf("Begin:\n got %+v\nwant %+v", got2, want)
	}

	conn := connect(t, url)
	var endCreated, endUpdated time.Time
	var version int
	if err := conn.QueryRow(t.Context(), `SELECT window_end_created, window_end_updated, schema_version FROM klaviyo.etl_state WHERE key = $1`,
		DefaultTarget).Scan(&endCreated, &endUpdated, &version); err != nil {
		t.Fatal(err)
	}
	if !endCreated.Equal(t0) || !endUpdated.Equal(t0.Add(-time.Hour)) || version != schema.Version {
		t.Errorf("readable columns: %v %v %d", endCreated, endUpdated, version)
	}
	var runs int
	if err := conn.QueryRow(t.Context(), `SELECT count(*) FROM klaviyo.etl_runs WHERE (run_id = 'run-9' AND status = 'running' AND full_refresh
		AND requests = 10 AND profiles = 899 AND ended_at IS NULL) OR (run_id = 'run-8' AND status = 'failed' AND error = 'boom')`).Scan(&runs); err != nil {
		t.Fatal(err)
	}
	if runs != 2 {
		t.Errorf("etl_runs: %d of the 2 runs as committed", runs)
	}

	// Another schema has its own state.
	empty, err := ReadState(t.Context(), url, "never_migrated")
	if err != nil || !reflect.DeepEqual(empty, load.State{}) {
		t.Errorf("state of an unmigrated schema: %+v, %v", empty, err)
	}
}

func TestFullRefreshDropsUnseenProfiles(t *testing.T) {
	url := pgtest.NewDatabase(t)
	mem := newAllocator(t)
	conn := connect(t, url)
	s, st := begin(t, url, Config{}, "run-1")
	write(t, s, load.Batch{
		Profiles: record(t, mem, schema.Profiles, profile("kept", t0, "run-1"), profile("gone", t0, "run-1"), profile("stale", t0.Add(time.Hour), "run-1")),
		Relationships: record(t, mem, schema.ProfileRelationships, relationship("kept", "lists", "L", "run-1"),
			relationship("gone", "lists", "L", "run-1"), relationship("stale", "lists", "L", "run-1")),
	})
	st.LastRun, st.Run = &load.Run{ID: "run-1", Status: "succeeded"}, nil
	if err := s.Commit(t.Context(), st); err != nil {
		t.Fatal(err)
	}
	st.Run = &load.Run{ID: "run-2", FullRefresh: true, Status: "running"}
	if err := s.Commit(t.Context(), st); err != nil {
		t.Fatal(err)
	}
	// The refresh sees kept (same version) and stale (an older version
	// than stored, which is not applied but was seen), not gone.
	write(t, s, load.Batch{Profiles: record(t, mem, schema.Profiles, profile("kept", t0, "run-2"), profile("stale", t0, "run-2"))})
	if n := count(t, conn, `SELECT count(*) FROM klaviyo.profiles`); n != 3 {
		t.Fatalf("%d profiles before the refresh ends, want 3", n)
	}
	st.LastRun, st.Run = &load.Run{ID: "run-2", FullRefresh: true, Status: "succeeded"}, nil
	if err := s.Commit(t.Context(), st); err != nil {
		t.Fatal(err)
	}
	rows, _ := conn.Query(t.Context(), `SELECT id FROM klaviyo.profiles ORDER BY id`)
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"kept", "stale"}; !slices.Equal(ids, want) {
		t.Errorf("profiles after the refresh: %v, want %v", ids, want)
	}
	if n := count(t, conn, `SELECT count(*) FROM klaviyo.profile_relationships WHERE profile_id = 'gone'`); n != 0 {
		t.Errorf("%d relationships of a deleted profile left", n)
	}
	if n := count(t, conn, `SELECT count(*) FROM klaviyo.profiles WHERE id = 'stale' AND updated = $1`, t0.Add(time.Hour)); n != 1 {
		t.Error("the stored, newer version of stale was replaced by an older one")
	}
}

func TestBeginChecksMigrations(t *testing.T) {
	url := pgtest.NewDatabase(t)
	s := newSink(t, url, Config{})
	if _, err := s.Begin(t.Context()); !errors.Is(err, ErrMigrationsPending) {
		t.Fatalf("Begin without migrating: %v, want ErrMigrationsPending", err)
	}
	if err := Migrate(t.Context(), url, DefaultSchema); err != nil {
		t.Fatal(err)
	}
	s2 := newSink(t, url, Config{})
	if _, err := s2.Begin(t.Context()); err != nil {
		t.Fatalf("Begin after migrate: %v", err)
	}
}

func TestErrorsNameTheObject(t *testing.T) {
	url := pgtest.NewDatabase(t)
	mem := newAllocator(t)
	s, st := begin(t, url, Config{}, "run-1")
	bad := profile("a", t0, "run-1")
	bad["properties"] = `{"unterminated": `
	b := load.Batch{Profiles: record(t, mem, schema.Profiles, bad)}
	defer b.Profiles.Release()
	err := s.Write(t.Context(), b)
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "22P02" {
		t.Fatalf("bad JSON: %v, want SQLSTATE 22P02", err)
	}
	for _, want := range []string{"22P02", "properties", "profiles"} {
		if !bytes.Contains([]byte(err.Error()), []byte(want)) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
	if err := s.Commit(t.Context(), st); err == nil {
		t.Error("Commit after a failed Write succeeded")
	}
}

func TestNewValidates(t *testing.T) {
	tests := []struct {
		name, url string
		cfg       Config
	}{
		{"no url", "", Config{}},
		{"bad url", "postgres://u:secret@host:notaport/db", Config{}},
		{"reserved schema", "postgres://localhost/db", Config{Schema: "pg_mine"}},
		{"long schema", "postgres://localhost/db", Config{Schema: string(make([]byte, 64))}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.url, tt.cfg)
			if err == nil {
				t.Fatal("no error")
			}
			if bytes.Contains([]byte(err.Error()), []byte("secret")) {
				t.Errorf("error shows the password: %v", err)
			}
		})
	}
}

func TestWriteRejectsMismatchedRecords(t *testing.T) {
	url := pgtest.NewDatabase(t)
	mem := newAllocator(t)
	s, _ := begin(t, url, Config{}, "run-1")
	tests := []struct {
		name string
		b    load.Batch
	}{
		{"relationships as profiles", load.Batch{Profiles: record(t, mem, schema.ProfileRelationships, relationship("a", "lists", "L", "r"))}},
		{"NULL id", load.Batch{Profiles: record(t, mem, schema.Profiles, row{"_run_id": "r", "_extracted_at": t0})}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				for _, r := range records(tt.b) {
					r.Release()
				}
			}()
			if err := s.Write(t.Context(), tt.b); err == nil {
				t.Error("accepted")
			}
		})
	}
}

func TestServerRestartDuringCheckpoint(t *testing.T) {
	srv := pgtest.NewServer(t)
	url := srv.NewDatabase(t)
	for _, mode := range []pgtest.ShutdownMode{pgtest.Fast, pgtest.Immediate} {
		t.Run(mode.String(), func(t *testing.T) {
			mem := newAllocator(t)
			schemaName := "s_" + mode.String()
			s, st := begin(t, url, Config{Schema: schemaName, Retries: 10}, "run-1")
			s.backoff = func(attempt int) time.Duration { return time.Duration(attempt) * 100 * time.Millisecond }
			write(t, s, load.Batch{Profiles: record(t, mem, schema.Profiles, profile("a", t0, "run-1"), profile("b", t0, "run-1"))})
			srv.Restart(t, mode)
			write(t, s, load.Batch{Profiles: record(t, mem, schema.Profiles, profile("c", t0, "run-1"))})
			if err := s.Commit(t.Context(), st); err != nil {
				t.Fatalf("commit across a %s restart: %v", mode, err)
			}
			s.Close(t.Context())
			conn := connect(t, url)
			if n := count(t, conn, `SELECT count(*) FROM `+schemaName+`.profiles`); n != 3 {
				t.Errorf("%d profiles after the restart, want 3", n)
			}
		})
	}
}

func TestCancelledWriteLeavesNothing(t *testing.T) {
	url := pgtest.NewDatabase(t)
	mem := newAllocator(t)
	s, st := begin(t, url, Config{}, "run-1")
	write(t, s, load.Batch{Profiles: record(t, mem, schema.Profiles, profile("a", t0, "run-1"))})
	if err := s.Commit(t.Context(), st); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	b := load.Batch{Profiles: record(t, mem, schema.Profiles, profile("b", t0, "run-1"))}
	err := s.Write(ctx, b)
	b.Profiles.Release()
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Write with a cancelled context: %v, want context.Canceled", err)
	}
	if s.Retries() != 0 {
		t.Error("a cancelled write was retried")
	}
	if err := s.Close(ctx); err != nil {
		t.Errorf("Close with a cancelled context: %v", err)
	}
	conn := connect(t, url)
	if n := count(t, conn, `SELECT count(*) FROM klaviyo.profiles`); n != 1 {
		t.Errorf("%d profiles, want the 1 committed", n)
	}
	// The lock is free at once.
	s2, _ := begin(t, url, Config{}, "")
	s2.Close(t.Context())
}
