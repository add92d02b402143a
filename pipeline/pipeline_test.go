package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/rs/zerolog"

	"github.com/klaviyo-etl/klaviyo-etl/extract"
	"github.com/klaviyo-etl/klaviyo-etl/load"
)

// These tests pin the run's incremental rules with a scripted walker that
// behaves like extract.Client (pages in cursor order, Done at the last
// record's second, resumed slices re-read their boundary second) and a sink
// that keeps committed rows in memory. The real walker and sinks are
// exercised end to end in cmd/klaviyo-etl.

type rec struct {
	id     string
	cursor time.Time
}

func (r rec) raw() []byte {
	ts := r.cursor.UTC().Format("2006-01-02T15:04:05+00:00")
	return fmt.Appendf(nil, `{"type":"profile","id":%q,"attributes":{"email":"%s@example.com","created":%q,"updated":%q},"links":{"self":"x"}}`,
		r.id, r.id, ts, ts)
}

type scriptedWalker struct {
	mu       sync.Mutex
	records  []rec // sorted by cursor
	pageSize int
	// failAfter makes Walk fail after delivering that many pages (0 = never).
	failAfter int
	pages     int64
	windows   []extract.Window
}

func (w *scriptedWalker) Walk(ctx context.Context, win extract.Window, fn func(context.Context, extract.Page) error) error {
	w.mu.Lock()
	w.windows = append(w.windows, win)
	w.mu.Unlock()
	progress := append([]extract.Slice(nil), win.Slices...)
	delivered := 0
	for i, s := range win.Slices {
		if !s.Done.Before(s.End) {
			continue
		}
		var in []rec
		for _, r := range w.records {
			// greater-than(Done-1s): the boundary second is read again.
			if !r.cursor.Before(s.Done) && r.cursor.Before(s.End) {
				in = append(in, r)
			}
		}
		for len(in) > 0 || progress[i].Done.Before(s.End) {
			n := min(w.pageSize, len(in))
			page := in[:n]
			in = in[n:]
			if len(in) == 0 {
				progress[i].Done = s.End
			} else {
				progress[i].Done = page[n-1].cursor.Truncate(time.Second)
			}
			p := extract.Page{Slice: i, Progress: append([]extract.Slice(nil), progress...)}
			for _, r := range page {
				p.Records = append(p.Records, extract.Record{ID: r.id, Cursor: r.cursor, Raw: r.raw()})
			}
			if err := fn(ctx, p); err != nil {
				return err
			}
			w.mu.Lock()
			w.pages++
			w.mu.Unlock()
			delivered++
			if w.failAfter > 0 && delivered >= w.failAfter {
				return errors.New("scripted failure")
			}
		}
	}
	return nil
}

func (w *scriptedWalker) Stats() extract.Stats {
	w.mu.Lock()
	defer w.mu.Unlock()
	return extract.Stats{Pages: w.pages, Requests: w.pages}
}

// memSink keeps what was committed; staged rows vanish on Close, as after a crash.
type memSink struct {
	mu        sync.Mutex
	state     []byte
	committed []string // profile ids, in commit order
	staged    []string
	commits   int
	// crashAt makes the n-th Commit fail without committing (0 = never).
	crashAt int
	// failWriteAt makes the n-th Write fail, and every later one too, until
	// the next Begin (0 = never).
	failWriteAt int
	writes      int
}

func (s *memSink) Begin(context.Context) (load.State, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.staged = nil
	s.writes = 0
	var st load.State
	if s.state != nil {
		if err := json.Unmarshal(s.state, &st); err != nil {
			return st, err
		}
	}
	return st, nil
}

func (s *memSink) Write(_ context.Context, b load.Batch) error {
	ids := b.Profiles.Column(0).(*array.String)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writes++
	if s.failWriteAt > 0 && s.writes >= s.failWriteAt {
		s.staged = nil // what was staged is gone with the failed target
		return errWrite
	}
	for i := 0; i < ids.Len(); i++ {
		s.staged = append(s.staged, ids.Value(i))
	}
	return nil
}

func (s *memSink) Commit(_ context.Context, st load.State) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.commits++
	if s.crashAt > 0 && s.commits == s.crashAt {
		s.staged = nil
		return errors.New("crash")
	}
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	s.state = b
	s.committed = append(s.committed, s.staged...)
	s.staged = nil
	return nil
}

func (s *memSink) Close(context.Context) error { return nil }

func (s *memSink) ids() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.committed...)
}

func (s *memSink) loadState(t *testing.T) load.State {
	t.Helper()
	var st load.State
	if err := json.Unmarshal(s.state, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// records makes n profiles over [from, from+span), many sharing a second.
func records(prefix string, n int, from time.Time, span time.Duration) []rec {
	out := make([]rec, n)
	for i := range out {
		// groups of 7 profiles on the same second
		at := from.Add(time.Duration(i/7) * span / time.Duration(n/7+1)).Truncate(time.Second)
		out[i] = rec{id: fmt.Sprintf("%s%05d", prefix, i), cursor: at}
	}
	return out
}

func sortRecs(rs []rec) {
	sort.SliceStable(rs, func(i, j int) bool {
		if !rs[i].cursor.Equal(rs[j].cursor) {
			return rs[i].cursor.Before(rs[j].cursor)
		}
		return rs[i].id < rs[j].id
	})
}

func testConfig(t *testing.T, now time.Time) Config {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	t.Cleanup(func() { mem.AssertSize(t, 0) })
	return Config{
		Now:            func() time.Time { return now },
		Allocator:      mem,
		Logger:         zerolog.Nop(),
		BatchRows:      40,
		CheckpointRows: 100,
	}
}

func assertExactlyOnce(t *testing.T, got []string, want []rec) {
	t.Helper()
	count := map[string]int{}
	for _, id := range got {
		count[id]++
	}
	for _, r := range want {
		if count[r.id] != 1 {
			t.Errorf("profile %s written %d times, want once", r.id, count[r.id])
		}
		delete(count, r.id)
	}
	for id, n := range count {
		t.Errorf("unexpected profile %s written %d times", id, n)
	}
}

func TestFirstRunThenIncremental(t *testing.T) {
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := base.Add(48 * time.Hour)
	all := records("a", 500, base, 24*time.Hour)
	w := &scriptedWalker{records: all, pageSize: 30}
	sink := &memSink{}
	sum, err := Run(context.Background(), w, sink, testConfig(t, now))
	if err != nil {
		t.Fatal(err)
	}
	assertExactlyOnce(t, sink.ids(), all)
	if sum.Profiles != 500 || sum.Status != StatusSucceeded {
		t.Errorf("summary profiles=%d status=%s", sum.Profiles, sum.Status)
	}
	st := sink.loadState(t)
	if st.Run != nil || st.Cursors["created"] == nil || !st.Cursors["created"].End.Equal(now.Add(-5*time.Second)) {
		t.Fatalf("state after first run: %+v", st)
	}

	// New profiles arrive, some of them late inside the lookback, beside
	// profiles the first run already loaded at the same seconds.
	firstEnd := now.Add(-5 * time.Second)
	tailOld := records("t", 20, firstEnd.Add(-3*time.Minute), time.Minute)
	sink2 := sink // same target
	sink2.committed = append(sink2.committed, idsOf(tailOld)...)
	st.Cursors["created"].Seen = map[string]int64{}
	for _, r := range tailOld {
		st.Cursors["created"].Seen[r.id] = r.cursor.Unix()
	}
	b, _ := json.Marshal(st)
	sink.state = b
	late := records("l", 15, firstEnd.Add(-2*time.Minute), time.Minute)
	fresh := records("n", 40, firstEnd.Add(time.Minute), time.Hour)
	w2recs := append(append(append([]rec(nil), tailOld...), late...), fresh...)
	sortRecs(w2recs)
	now2 := now.Add(3 * time.Hour)
	w2 := &scriptedWalker{records: append(append([]rec(nil), all...), w2recs...), pageSize: 30}
	sortRecs(w2.records)
	sum2, err := Run(context.Background(), w2, sink, testConfig(t, now2))
	if err != nil {
		t.Fatal(err)
	}
	wantAll := append(append(append(append([]rec(nil), all...), tailOld...), late...), fresh...)
	assertExactlyOnce(t, sink.ids(), wantAll)
	if sum2.Profiles != int64(len(late)+len(fresh)) {
		t.Errorf("second run wrote %d profiles, want %d", sum2.Profiles, len(late)+len(fresh))
	}
	if sum2.Duplicates != int64(len(tailOld)) {
		t.Errorf("second run skipped %d duplicates, want %d", sum2.Duplicates, len(tailOld))
	}
	if got := w2.windows[0].Slices[0].Start; !got.Equal(firstEnd.Add(-10 * time.Minute)) {
		t.Errorf("second window starts %v, want committed end minus lookback", got)
	}
}

func idsOf(rs []rec) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.id
	}
	return out
}

func TestResumeAfterCrashesIsExact(t *testing.T) {
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := base.Add(48 * time.Hour)
	all := records("p", 1000, base, 2*time.Hour)
	sink := &memSink{}
	// Crash at the 3rd commit of several attempts, then finish.
	for attempt := 0; attempt < 4; attempt++ {
		sink.commits = 0
		sink.crashAt = 3
		w := &scriptedWalker{records: all, pageSize: 23}
		_, err := Run(context.Background(), w, sink, testConfig(t, now.Add(time.Duration(attempt)*time.Minute)))
		if err == nil {
			t.Fatalf("attempt %d: want the injected crash", attempt)
		}
	}
	sink.crashAt = 0
	w := &scriptedWalker{records: all, pageSize: 23}
	sum, err := Run(context.Background(), w, sink, testConfig(t, now.Add(time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	if !sum.Resumed {
		t.Error("final run did not resume the crashed one")
	}
	assertExactlyOnce(t, sink.ids(), all)
	st := sink.loadState(t)
	// The resumed run keeps the window of the run that started it.
	if got := st.Cursors["created"].End; !got.Equal(now.Add(-5 * time.Second)) {
		t.Errorf("committed end %v, want the first attempt's window end", got)
	}
}

func TestWalkErrorCommitsWhatIsComplete(t *testing.T) {
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := base.Add(48 * time.Hour)
	all := records("f", 300, base, time.Hour)
	sink := &memSink{}
	w := &scriptedWalker{records: all, pageSize: 25, failAfter: 5}
	sum, err := Run(context.Background(), w, sink, testConfig(t, now))
	if err == nil || sum.Status != StatusFailed {
		t.Fatalf("err=%v status=%s, want a failed run", err, sum.Status)
	}
	if got := len(sink.ids()); got != 125 {
		t.Errorf("committed %d profiles, want the 125 delivered", got)
	}
	st := sink.loadState(t)
	if st.Run == nil || st.Run.Status != StatusFailed || st.LastRun == nil {
		t.Fatalf("failed run not kept for resume: %+v", st.Run)
	}
	w2 := &scriptedWalker{records: all, pageSize: 25}
	if _, err := Run(context.Background(), w2, sink, testConfig(t, now.Add(time.Minute))); err != nil {
		t.Fatal(err)
	}
	assertExactlyOnce(t, sink.ids(), all)
}

var errWrite = errors.New("disk full")

// TestWriteErrorStopsTheRun: a Write failing on the writer goroutine, while
// transformers still have pages, stops the run with that error, commits
// nothing after it, and the next run loads exactly what is missing.
func TestWriteErrorStopsTheRun(t *testing.T) {
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := base.Add(48 * time.Hour)
	all := records("w", 2000, base, 3*time.Hour)
	sink := &memSink{failWriteAt: 12}
	cfg := testConfig(t, now)
	cfg.Transformers = 3
	w := &scriptedWalker{records: all, pageSize: 20}
	_, err := Run(context.Background(), w, sink, cfg)
	if !errors.Is(err, errWrite) {
		t.Fatalf("err = %v, want the write error", err)
	}
	committed := len(sink.ids())
	if committed == 0 || committed >= len(all) {
		t.Fatalf("%d of %d committed before the failure", committed, len(all))
	}
	sink.failWriteAt = 0
	w2 := &scriptedWalker{records: all, pageSize: 20}
	if _, err := Run(context.Background(), w2, sink, testConfig(t, now.Add(time.Minute))); err != nil {
		t.Fatal(err)
	}
	assertExactlyOnce(t, sink.ids(), all)
}

func TestConfigValidation(t *testing.T) {
	for _, c := range []Config{
		{CursorField: "email"},
		{Lookback: -time.Second},
		{Since: time.Unix(100, 0), Until: time.Unix(50, 0)},
	} {
		if err := c.defaults(); err == nil {
			t.Errorf("config %+v accepted", c)
		}
	}
}

// dupWalker delivers one page that carries a record twice.
type dupWalker struct{ scriptedWalker }

func (w *dupWalker) Walk(ctx context.Context, win extract.Window, fn func(context.Context, extract.Page) error) error {
	a := rec{id: "a", cursor: win.Slices[0].Start.Add(time.Hour)}
	b := rec{id: "b", cursor: win.Slices[0].Start.Add(2 * time.Hour)}
	prog := []extract.Slice{{Start: win.Slices[0].Start, End: win.Slices[0].End, Done: win.Slices[0].End}}
	return fn(ctx, extract.Page{Slice: 0, Progress: prog, Records: []extract.Record{
		{ID: a.id, Cursor: a.cursor, Raw: a.raw()},
		{ID: b.id, Cursor: b.cursor, Raw: b.raw()},
		{ID: a.id, Cursor: a.cursor, Raw: a.raw()},
	}})
}

func TestRepeatedRecordWrittenOnce(t *testing.T) {
	now := time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)
	cfg := testConfig(t, now)
	cfg.Since = now.Add(-24 * time.Hour)
	sink := &memSink{}
	sum, err := Run(context.Background(), &dupWalker{}, sink, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got := sink.ids(); len(got) != 2 {
		t.Errorf("wrote %v, want a and b once each", got)
	}
	if sum.Duplicates != 1 {
		t.Errorf("duplicates = %d, want 1", sum.Duplicates)
	}
}
