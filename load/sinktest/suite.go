package sinktest

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/klaviyo-etl/klaviyo-etl/load"
	"github.com/klaviyo-etl/klaviyo-etl/schema"
)

// Harness is what a sink's test gives Run.
type Harness struct {
	// NewTarget returns a new, empty target (an output folder, a database
	// schema). Each case of the suite uses its own.
	NewTarget func(t *testing.T) Target
	// Upserts says the sink keeps one row per profile id, a re-written
	// profile replacing its row and its relationship rows (PostgreSQL).
	// Otherwise every write appends (Parquet), the run having removed what
	// it must not write twice.
	Upserts bool
	// ReplacesNUL says the sink stores text columns with every U+0000
	// replaced by NULReplacement (PostgreSQL text cannot hold NUL). Byte
	// columns are kept exactly either way.
	ReplacesNUL    bool
	NULReplacement string
}

// Target is one destination the suite writes to and reads from.
type Target struct {
	// Open returns a new Sink on the target, as a new process would open
	// it. The suite calls Begin and Close on it.
	Open func(t *testing.T) load.Sink
	// Read returns what a reader of record sees now: the committed rows,
	// read without the run's lock, possibly while a Sink is open. Order does
	// not matter.
	Read func(t *testing.T) Rows
}

// Rows is the content of a target's tables.
type Rows struct {
	Profiles      []ProfileRow
	Relationships []RelationshipRow
	Rejects       []RejectRow
}

// Run runs the conformance suite: every case is a subtest on a fresh
// target.
func Run(t *testing.T, h Harness) {
	if h.NewTarget == nil {
		t.Fatal("sinktest: Harness.NewTarget is nil")
	}
	cases := []struct {
		name string
		run  func(t *testing.T, h Harness, tg Target)
	}{
		{"EmptyTargetBeginsWithZeroState", testEmptyTarget},
		{"CommitMakesRowsAndStateDurable", testCommitDurable},
		{"CloseDiscardsUncommittedWrites", testCloseDiscards},
		{"CrashAfterCommitKeepsOnlyCommitted", testCrashAfterCommit},
		{"SecondBeginIsLocked", testLocked},
		{"NilAndEmptyRecords", testNilRecords},
		{"BytesAndNULKept", testBytesAndNUL},
		{"RewrittenProfile", testRewrittenProfile},
		{"FullRefreshSwitchesAtTheEnd", testFullRefresh},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.run(t, h, h.NewTarget(t))
		})
	}
}

// session is one opened Sink. Close is registered as a cleanup, so a
// failing case still releases the target.
type session struct {
	t      *testing.T
	s      load.Sink
	closed bool
}

func open(t *testing.T, tg Target) *session {
	t.Helper()
	ss := &session{t: t, s: tg.Open(t)}
	t.Cleanup(func() {
		if !ss.closed {
			_ = ss.s.Close(t.Context())
		}
	})
	return ss
}

func (ss *session) begin() load.State {
	ss.t.Helper()
	st, err := ss.s.Begin(ss.t.Context())
	if err != nil {
		ss.t.Fatalf("Begin: %v", err)
	}
	return st
}

func (ss *session) write(b load.Batch) {
	ss.t.Helper()
	err := ss.s.Write(ss.t.Context(), b)
	for _, r := range []arrow.RecordBatch{b.Profiles, b.Relationships, b.Rejects} {
		if r != nil {
			r.Release()
		}
	}
	if err != nil {
		ss.t.Fatalf("Write: %v", err)
	}
}

func (ss *session) commit(st load.State) {
	ss.t.Helper()
	if err := ss.s.Commit(ss.t.Context(), st); err != nil {
		ss.t.Fatalf("Commit: %v", err)
	}
}

func (ss *session) close() {
	ss.t.Helper()
	ss.closed = true
	if err := ss.s.Close(ss.t.Context()); err != nil {
		ss.t.Fatalf("Close: %v", err)
	}
}

// checkedMem returns an allocator that fails the test if a record the suite
// built is not released, by the suite or by a sink holding on to it.
func checkedMem(t *testing.T) memory.Allocator {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	t.Cleanup(func() { mem.AssertSize(t, 0) })
	return mem
}

var (
	t0 = time.Date(2026, 7, 20, 9, 30, 0, 0, time.UTC)
	// A zone other than UTC and nanoseconds: the State must come back as
	// it went in, not normalised.
	berlin = time.FixedZone("", 2*3600)
)

// runState returns the State of a run in progress after done slices of
// work, every field of load.State filled.
func runState(gen int, runID string, fullRefresh bool, done int) load.State {
	liveGen := gen
	if fullRefresh {
		liveGen = gen - 1
	}
	start := t0.Add(-30 * 24 * time.Hour)
	end := t0.Add(-5 * time.Second)
	return load.State{
		SchemaVersion: schema.Version,
		Generation:    liveGen,
		Cursors: map[string]*load.Cursor{
			schema.CursorCreated: {
				End:  start.Add(123456789 * time.Nanosecond),
				Seen: map[string]int64{"01J0SEEN000000000000000001": start.Unix() - 1, "01J0SEEN000000000000000002": start.Unix() - 2},
			},
		},
		Run: &load.Run{
			ID:          runID,
			CursorField: schema.CursorCreated,
			Revision:    "2026-07-15",
			Generation:  gen,
			FullRefresh: fullRefresh,
			Start:       start,
			End:         end,
			StartedAt:   t0.In(berlin).Add(987654321 * time.Nanosecond),
			Status:      "running",
			Slices: []load.Slice{
				{Start: start, End: start.Add(15 * 24 * time.Hour), Done: start.Add(time.Duration(done) * time.Hour)},
				{Start: start.Add(15 * 24 * time.Hour), End: end, Done: start.Add(15 * 24 * time.Hour)},
			},
			Seen: map[string]int64{"01J0RUN0000000000000000001": end.Unix() - 7},
			Stats: load.Stats{
				Requests:       int64(10 + done),
				RequestsByCode: map[string]int64{"200": int64(9 + done), "429": 1},
				Pages:          int64(9 + done),
				Records:        int64(900 + 100*done),
				Profiles:       int64(890 + 100*done),
				Bytes:          int64(1 << 20),
				NULValues:      1,
			},
		},
	}
}

// endState returns the State after the run of runState ends with status.
func endState(st load.State, status string) load.State {
	r := *st.Run
	r.Status = status
	r.EndedAt = t0.Add(time.Hour)
	if status != "succeeded" {
		r.Error = "klaviyo: 503 Service Unavailable after 5 attempts"
	} else {
		st.Generation = r.Generation
	}
	st.Cursors = map[string]*load.Cursor{
		schema.CursorCreated: {End: r.End, Seen: map[string]int64{"01J0RUN0000000000000000001": r.End.Unix() - 7}},
	}
	st.Run, st.LastRun = nil, &r
	return st
}

func requireState(t *testing.T, got, want load.State) {
	t.Helper()
	g, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	w, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	if string(g) != string(w) {
		t.Fatalf("state:\n got  %s\n want %s", g, w)
	}
}

func profile(id, runID string, n int) ProfileRow {
	created := t0.Add(-time.Duration(n) * time.Hour).Add(time.Duration(n) * time.Microsecond)
	return ProfileRow{
		ID:          id,
		Email:       Ptr(strings.ToLower(id) + "@example.com"),
		FirstName:   Ptr("Ada " + strconv.Itoa(n)),
		Created:     &created,
		Updated:     Ptr(created.Add(time.Duration(n) * time.Minute)),
		Latitude:    Ptr(42.3601 + float64(n)/1e6),
		Properties:  Ptr(fmt.Sprintf(`{"n":%d,"tags":["a","b"],"nested":{"ok":true,"v":null}}`, n)),
		RunID:       runID,
		ExtractedAt: t0.Add(time.Duration(n) * time.Second),
	}
}

// newerVersion returns p as a later read finds it: same id and created,
// later updated, an attribute changed. A sink that upserts may keep the
// version with the greater updated, so the rewrite must be newer.
func newerVersion(p ProfileRow, runID string) ProfileRow {
	v := p
	v.Updated = Ptr(p.Updated.Add(36 * time.Hour))
	v.Email = Ptr("changed." + *p.Email)
	v.Properties = Ptr(`{"changed":true}`)
	v.RunID = runID
	v.ExtractedAt = p.ExtractedAt.Add(48 * time.Hour)
	return v
}

func rel(profileID, relationship, relatedID, runID string) RelationshipRow {
	return RelationshipRow{ProfileID: profileID, Relationship: relationship, RelatedType: strings.TrimSuffix(relationship, "s"),
		RelatedID: relatedID, RunID: runID}
}

func reject(runID, profileID, errText string, raw []byte) RejectRow {
	return RejectRow{RunID: runID, ProfileID: Ptr(profileID), Field: Ptr("attributes.location.latitude"),
		Error: errText, Raw: raw, RejectedAt: t0.Add(time.Minute)}
}

// batch builds a Batch; nil slices give nil records.
func batch(mem memory.Allocator, ps []ProfileRow, rs []RelationshipRow, js []RejectRow) load.Batch {
	var b load.Batch
	if ps != nil {
		b.Profiles = Profiles(mem, ps...)
	}
	if rs != nil {
		b.Relationships = Relationships(mem, rs...)
	}
	if js != nil {
		b.Rejects = Rejects(mem, js...)
	}
	return b
}

// requireRows compares what the target shows with want, in any order.
func requireRows(t *testing.T, h Harness, tg Target, want Rows) {
	t.Helper()
	got := tg.Read(t)
	requireSame(t, "profiles", canonAll(h, got.Profiles, canonProfile), canonAll(h, want.Profiles, canonProfile))
	requireSame(t, "profile_relationships", canonAll(h, got.Relationships, canonRel), canonAll(h, want.Relationships, canonRel))
	requireSame(t, "profile_rejects", canonAll(h, got.Rejects, canonReject), canonAll(h, want.Rejects, canonReject))
}

func requireSame(t *testing.T, table string, got, want []string) {
	t.Helper()
	if slices.Equal(got, want) {
		return
	}
	t.Errorf("%s: got %d rows, want %d", table, len(got), len(want))
	for _, g := range got {
		if !slices.Contains(want, g) {
			t.Errorf("%s: unexpected row %s", table, g)
		}
	}
	for _, w := range want {
		if !slices.Contains(got, w) {
			t.Errorf("%s: missing row %s", table, w)
		}
	}
	t.FailNow()
}

// canonAll renders rows so that equal rows render equally whatever store
// they went through, and sorts them.
func canonAll[R any](h Harness, rows []R, canon func(Harness, R) string) []string {
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = canon(h, r)
	}
	slices.Sort(out)
	return out
}

func canonProfile(h Harness, r ProfileRow) string {
	return fmt.Sprintf("id=%q email=%s first_name=%s created=%s updated=%s latitude=%s properties=%s _run_id=%q _extracted_at=%s",
		r.ID, canonStr(h, r.Email), canonStr(h, r.FirstName), canonTime(r.Created), canonTime(r.Updated),
		canonFloat(r.Latitude), canonJSON(r.Properties), r.RunID, canonTime(&r.ExtractedAt))
}

func canonRel(h Harness, r RelationshipRow) string {
	return fmt.Sprintf("profile_id=%q relationship=%q related_type=%q related_id=%q _run_id=%q",
		r.ProfileID, r.Relationship, r.RelatedType, r.RelatedID, r.RunID)
}

func canonReject(h Harness, r RejectRow) string {
	return fmt.Sprintf("run_id=%q profile_id=%s field=%s error=%s raw=%q rejected_at=%s",
		r.RunID, canonStr(h, r.ProfileID), canonStr(h, r.Field), canonStr(h, &r.Error), r.Raw, canonTime(&r.RejectedAt))
}

// canonStr applies the sink's NUL replacement; a value read back has none
// left, so replacing again is harmless.
func canonStr(h Harness, s *string) string {
	if s == nil {
		return "NULL"
	}
	v := *s
	if h.ReplacesNUL {
		v = strings.ReplaceAll(v, "\x00", h.NULReplacement)
	}
	return strconv.Quote(v)
}

func canonTime(t *time.Time) string {
	if t == nil {
		return "NULL"
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func canonFloat(f *float64) string {
	if f == nil {
		return "NULL"
	}
	return strconv.FormatFloat(*f, 'g', -1, 64)
}

// canonJSON compares JSON by value: jsonb reorders keys and adds spaces.
func canonJSON(s *string) string {
	if s == nil {
		return "NULL"
	}
	var v any
	if err := json.Unmarshal([]byte(*s), &v); err != nil {
		return "invalid JSON " + strconv.Quote(*s)
	}
	b, _ := json.Marshal(v) // maps marshal with sorted keys
	return string(b)
}

func testEmptyTarget(t *testing.T, h Harness, tg Target) {
	ss := open(t, tg)
	requireState(t, ss.begin(), load.State{})
	requireRows(t, h, tg, Rows{})
	ss.close()

	// Begin and Close alone change nothing.
	ss = open(t, tg)
	requireState(t, ss.begin(), load.State{})
	ss.close()
	requireRows(t, h, tg, Rows{})
}

func testCommitDurable(t *testing.T, h Harness, tg Target) {
	mem := checkedMem(t)
	ps := []ProfileRow{profile("01J0A0000000000000000000P1", "run-1", 1), profile("01J0A0000000000000000000P2", "run-1", 2)}
	ps[1].Email, ps[1].FirstName, ps[1].Created, ps[1].Latitude, ps[1].Properties = nil, nil, nil, nil, nil
	rs := []RelationshipRow{
		rel(ps[0].ID, "lists", "Y6nRLr", "run-1"),
		rel(ps[0].ID, "segments", "Xk2pQa", "run-1"),
		rel(ps[1].ID, "lists", "Y6nRLr", "run-1"),
	}
	js := []RejectRow{reject("run-1", ps[0].ID, "latitude: not a number", []byte(`{"id":"01J0A0000000000000000000P1"}`))}
	want := Rows{Profiles: ps, Relationships: rs, Rejects: js}

	ss := open(t, tg)
	ss.begin()
	st0 := runState(0, "run-1", false, 0)
	ss.commit(st0)
	ss.write(batch(mem, ps, rs, js))
	requireRows(t, h, tg, Rows{}) // written, not committed: invisible
	st1 := runState(0, "run-1", false, 1)
	ss.commit(st1)
	requireRows(t, h, tg, want) // visible while the sink is still open
	ss.close()
	requireRows(t, h, tg, want)

	ss = open(t, tg)
	requireState(t, ss.begin(), st1)
	st2 := endState(st1, "succeeded")
	ss.commit(st2)
	ss.close()

	ss = open(t, tg)
	requireState(t, ss.begin(), st2)
	ss.close()
	requireRows(t, h, tg, want)
}

func testCloseDiscards(t *testing.T, h Harness, tg Target) {
	mem := checkedMem(t)
	ss := open(t, tg)
	ss.begin()
	st0 := runState(0, "run-1", false, 0)
	ss.commit(st0)
	ss.write(batch(mem,
		[]ProfileRow{profile("01J0B0000000000000000000P1", "run-1", 1)},
		[]RelationshipRow{rel("01J0B0000000000000000000P1", "lists", "L1", "run-1")},
		[]RejectRow{reject("run-1", "01J0B0000000000000000000P1", "bad", []byte("{"))}))
	ss.close()
	requireRows(t, h, tg, Rows{})

	ss = open(t, tg)
	requireState(t, ss.begin(), st0)
	ss.close()
	requireRows(t, h, tg, Rows{})
}

func testCrashAfterCommit(t *testing.T, h Harness, tg Target) {
	mem := checkedMem(t)
	p1, p2, p3 := profile("01J0C0000000000000000000P1", "run-1", 1), profile("01J0C0000000000000000000P2", "run-1", 2),
		profile("01J0C0000000000000000000P3", "run-2", 3)
	r1, r2 := rel(p1.ID, "lists", "L1", "run-1"), rel(p2.ID, "lists", "L1", "run-1")

	ss := open(t, tg)
	ss.begin()
	ss.commit(runState(0, "run-1", false, 0))
	ss.write(batch(mem, []ProfileRow{p1}, []RelationshipRow{r1}, nil))
	st1 := runState(0, "run-1", false, 1)
	ss.commit(st1)
	ss.write(batch(mem, []ProfileRow{p2}, []RelationshipRow{r2}, nil))
	ss.close() // as if killed: the second write was never committed
	first := Rows{Profiles: []ProfileRow{p1}, Relationships: []RelationshipRow{r1}}
	requireRows(t, h, tg, first)

	// The resumed run picks up from st1 and writes on top of it.
	ss = open(t, tg)
	requireState(t, ss.begin(), st1)
	requireRows(t, h, tg, first)
	ss.commit(st1)
	ss.write(batch(mem, []ProfileRow{p2, p3}, []RelationshipRow{r2}, nil))
	st2 := runState(0, "run-1", false, 2)
	ss.commit(st2)
	ss.close()
	requireRows(t, h, tg, Rows{Profiles: []ProfileRow{p1, p2, p3}, Relationships: []RelationshipRow{r1, r2}})

	ss = open(t, tg)
	requireState(t, ss.begin(), st2)
	ss.close()
}

func testLocked(t *testing.T, h Harness, tg Target) {
	mem := checkedMem(t)
	first := open(t, tg)
	first.begin()
	st := runState(0, "run-1", false, 0)
	first.commit(st)

	second := open(t, tg)
	_, err := second.s.Begin(t.Context())
	if !errors.Is(err, load.ErrLocked) {
		t.Fatalf("second Begin: got %v, want an error wrapping load.ErrLocked", err)
	}
	second.close()

	// The holder is unaffected by the refused Begin and its Close.
	p := profile("01J0D0000000000000000000P1", "run-1", 1)
	first.write(batch(mem, []ProfileRow{p}, nil, nil))
	st1 := runState(0, "run-1", false, 1)
	first.commit(st1)
	first.close()

	third := open(t, tg)
	requireState(t, third.begin(), st1)
	third.close()
	requireRows(t, h, tg, Rows{Profiles: []ProfileRow{p}})
}

func testNilRecords(t *testing.T, h Harness, tg Target) {
	mem := checkedMem(t)
	p1, p2 := profile("01J0E0000000000000000000P1", "run-1", 1), profile("01J0E0000000000000000000P2", "run-1", 2)
	r1 := rel(p1.ID, "segments", "S1", "run-1")
	j1 := reject("run-1", "01J0E0000000000000000000P9", "missing id", []byte(`{"type":"profile"}`))

	ss := open(t, tg)
	ss.begin()
	ss.commit(runState(0, "run-1", false, 0))
	ss.write(load.Batch{})
	ss.write(batch(mem, []ProfileRow{p1}, nil, nil))
	ss.write(batch(mem, nil, nil, []RejectRow{j1}))
	ss.write(batch(mem, []ProfileRow{}, []RelationshipRow{}, []RejectRow{})) // zero-row records
	ss.write(batch(mem, nil, []RelationshipRow{r1}, nil))
	ss.commit(runState(0, "run-1", false, 1))
	// A checkpoint where only one table has rows.
	ss.write(batch(mem, []ProfileRow{p2}, []RelationshipRow{}, nil))
	ss.commit(runState(0, "run-1", false, 2))
	// A checkpoint without rows.
	ss.write(load.Batch{})
	st3 := runState(0, "run-1", false, 3)
	ss.commit(st3)
	ss.close()

	requireRows(t, h, tg, Rows{Profiles: []ProfileRow{p1, p2}, Relationships: []RelationshipRow{r1}, Rejects: []RejectRow{j1}})
	ss = open(t, tg)
	requireState(t, ss.begin(), st3)
	ss.close()
}

func testBytesAndNUL(t *testing.T, h Harness, tg Target) {
	mem := checkedMem(t)
	raws := [][]byte{
		{'{', '"', 'a', '"', ':', '"', 0, '"', '}'}, // NUL
		{0xff, 0xfe, 0x00, 0x80, 'x', 0xc3},         // not UTF-8
		{},                                          // empty, not NULL
		[]byte(`{"id":"01J0F0000000000000000000P1","attributes":{"first_name":"Zoë \u0000"}}`),
	}
	js := make([]RejectRow, len(raws))
	for i, raw := range raws {
		js[i] = reject("run-1", fmt.Sprintf("01J0F00000000000000000000%d", i), fmt.Sprintf("reject %d: bad\x00value", i), raw)
	}
	js[2].ProfileID, js[2].Field = nil, nil
	p := profile("01J0F0000000000000000000P1", "run-1", 1)
	p.FirstName = Ptr("Zoë \x00 Ünïcødé 🎉")

	ss := open(t, tg)
	ss.begin()
	ss.commit(runState(0, "run-1", false, 0))
	ss.write(batch(mem, []ProfileRow{p}, nil, js))
	ss.commit(runState(0, "run-1", false, 1))
	ss.close()

	got := tg.Read(t)
	for i, raw := range raws {
		j := slices.IndexFunc(got.Rejects, func(r RejectRow) bool { return canonReject(h, r) == canonReject(h, js[i]) })
		if j < 0 {
			t.Errorf("reject %d (raw %q) not read back exactly", i, raw)
		}
	}
	// The canonical comparison applies the replacement to both sides, so
	// check on its own that it happened (or did not).
	text := []string{}
	for _, r := range got.Rejects {
		text = append(text, r.Error)
	}
	for _, p := range got.Profiles {
		if p.FirstName != nil {
			text = append(text, *p.FirstName)
		}
	}
	for _, s := range text {
		if h.ReplacesNUL && strings.Contains(s, "\x00") {
			t.Errorf("text %q still holds NUL though the harness says the sink replaces it", s)
		}
		if !h.ReplacesNUL && !strings.Contains(s, "\x00") {
			t.Errorf("text %q lost its NUL", s)
		}
	}
	requireRows(t, h, tg, Rows{Profiles: []ProfileRow{p}, Rejects: js})
}

func testRewrittenProfile(t *testing.T, h Harness, tg Target) {
	mem := checkedMem(t)
	const id = "01J0G0000000000000000000P1"
	v1 := profile(id, "run-1", 1)
	v2 := newerVersion(v1, "run-2")
	other := profile("01J0G0000000000000000000P2", "run-1", 3)
	r1 := rel(id, "lists", "L1", "run-1")
	r2 := rel(id, "lists", "L2", "run-2")
	rOther := rel(other.ID, "lists", "L1", "run-1")

	ss := open(t, tg)
	ss.begin()
	ss.commit(runState(0, "run-1", false, 0))
	ss.write(batch(mem, []ProfileRow{v1, other}, []RelationshipRow{r1, rOther}, nil))
	ss.commit(endState(runState(0, "run-1", false, 1), "succeeded"))
	ss.close()

	ss = open(t, tg)
	ss.begin()
	ss.commit(runState(0, "run-2", false, 0))
	ss.write(batch(mem, []ProfileRow{v2}, []RelationshipRow{r2}, nil))
	ss.commit(endState(runState(0, "run-2", false, 1), "succeeded"))
	ss.close()

	if h.Upserts {
		requireRows(t, h, tg, Rows{Profiles: []ProfileRow{v2, other}, Relationships: []RelationshipRow{r2, rOther}})
	} else {
		requireRows(t, h, tg, Rows{Profiles: []ProfileRow{v1, v2, other}, Relationships: []RelationshipRow{r1, r2, rOther}})
	}
}

func testFullRefresh(t *testing.T, h Harness, tg Target) {
	mem := checkedMem(t)
	old1, old2 := profile("01J0H0000000000000000000P1", "run-1", 1), profile("01J0H0000000000000000000P2", "run-1", 2)
	oldRels := []RelationshipRow{rel(old1.ID, "lists", "L1", "run-1"), rel(old2.ID, "lists", "L1", "run-1")}
	old := Rows{Profiles: []ProfileRow{old1, old2}, Relationships: oldRels}

	ss := open(t, tg)
	ss.begin()
	ss.commit(runState(0, "run-1", false, 0))
	ss.write(batch(mem, old.Profiles, old.Relationships, nil))
	ss.commit(runState(0, "run-1", false, 1))
	done := endState(runState(0, "run-1", false, 1), "succeeded")
	ss.commit(done)
	ss.close()
	requireRows(t, h, tg, old)

	// A full refresh (generation 1) re-reads everything: old2 comes back
	// changed, old1 is gone from the account, new3 and new4 are new.
	new2 := newerVersion(old2, "run-2")
	new3 := profile("01J0H0000000000000000000P3", "run-2", 13)
	new4 := profile("01J0H0000000000000000000P4", "run-2", 14)
	newRel := rel(new2.ID, "segments", "S9", "run-2")
	ss = open(t, tg)
	requireState(t, ss.begin(), done)
	ss.commit(runState(1, "run-2", true, 0))
	ss.write(batch(mem, []ProfileRow{new2, new3}, []RelationshipRow{newRel}, nil))
	mid := runState(1, "run-2", true, 1)
	ss.commit(mid)
	requireMidRefresh(t, h, tg, old, Rows{Profiles: []ProfileRow{new2, new3}, Relationships: []RelationshipRow{newRel}})
	ss.close() // interrupted

	ss = open(t, tg)
	requireState(t, ss.begin(), mid)
	requireMidRefresh(t, h, tg, old, Rows{Profiles: []ProfileRow{new2, new3}, Relationships: []RelationshipRow{newRel}})
	ss.commit(mid) // the resumed run
	ss.write(batch(mem, []ProfileRow{new4}, nil, nil))
	last := runState(1, "run-2", true, 2)
	ss.commit(last)
	final := endState(last, "succeeded")
	ss.commit(final)
	requireRows(t, h, tg, Rows{Profiles: []ProfileRow{new2, new3, new4}, Relationships: []RelationshipRow{newRel}})
	ss.close()

	ss = open(t, tg)
	requireState(t, ss.begin(), final)
	ss.close()
	requireRows(t, h, tg, Rows{Profiles: []ProfileRow{new2, new3, new4}, Relationships: []RelationshipRow{newRel}})
}

// requireMidRefresh checks what readers see while a refresh is committed but
// not finished. A sink that appends shows exactly the previous generation.
// One that upserts may already show the refresh's rows, but every previous
// row the refresh has not rewritten must still be there unchanged.
func requireMidRefresh(t *testing.T, h Harness, tg Target, old, refresh Rows) {
	t.Helper()
	if !h.Upserts {
		requireRows(t, h, tg, old)
		return
	}
	got := tg.Read(t)
	rewritten := make(map[string]bool)
	for _, p := range refresh.Profiles {
		rewritten[p.ID] = true
	}
	allowed := func(rows ...[]ProfileRow) []string {
		return canonAll(h, slices.Concat(rows...), canonProfile)
	}(old.Profiles, refresh.Profiles)
	for _, g := range canonAll(h, got.Profiles, canonProfile) {
		if !slices.Contains(allowed, g) {
			t.Errorf("profiles: row %s is of neither generation", g)
		}
	}
	gotIDs := make(map[string]int)
	for _, p := range got.Profiles {
		gotIDs[p.ID]++
	}
	for _, p := range old.Profiles {
		if gotIDs[p.ID] != 1 {
			t.Errorf("profiles: id %s shows %d times during the refresh, want once", p.ID, gotIDs[p.ID])
		}
		if !rewritten[p.ID] && !slices.Contains(canonAll(h, got.Profiles, canonProfile), canonProfile(h, p)) {
			t.Errorf("profiles: %s, not rewritten by the refresh, changed or disappeared before it finished", p.ID)
		}
	}
	gotRels := canonAll(h, got.Relationships, canonRel)
	for _, r := range old.Relationships {
		if !rewritten[r.ProfileID] && !slices.Contains(gotRels, canonRel(h, r)) {
			t.Errorf("profile_relationships: %s disappeared before the refresh finished", canonRel(h, r))
		}
	}
	if t.Failed() {
		t.FailNow()
	}
}
