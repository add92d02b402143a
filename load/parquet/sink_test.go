package parquet

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	pqschema "github.com/apache/arrow-go/v18/parquet/schema"
	"github.com/rs/zerolog"

	"github.com/klaviyo-etl/klaviyo-etl/load"
	"github.com/klaviyo-etl/klaviyo-etl/load/sinktest"
	"github.com/klaviyo-etl/klaviyo-etl/schema"
)

func TestConformance(t *testing.T) {
	sinktest.Run(t, sinktest.Harness{
		NewTarget: func(t *testing.T) sinktest.Target {
			dir := filepath.Join(t.TempDir(), "out")
			return sinktest.Target{
				Open: func(t *testing.T) load.Sink { return newSink(t, dir, Config{}) },
				Read: func(t *testing.T) sinktest.Rows { return readRows(t, dir) },
			}
		},
	})
}

func newSink(t *testing.T, dir string, cfg Config) *Sink {
	t.Helper()
	cfg.Logger = zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.DebugLevel)
	s, err := New(dir, cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

// readRows reads the live set the way a reader of record does: the files
// _state.json lists, with arrow-go's own reader.
func readRows(t *testing.T, dir string) sinktest.Rows {
	t.Helper()
	files, err := LiveFiles(dir)
	if err != nil {
		t.Fatalf("LiveFiles: %v", err)
	}
	var rows sinktest.Rows
	for _, path := range files[schema.Profiles.Name] {
		readFile(t, path, func(rec arrow.RecordBatch) error {
			r, err := sinktest.ProfileRowsFrom(rec)
			rows.Profiles = append(rows.Profiles, r...)
			return err
		})
	}
	for _, path := range files[schema.ProfileRelationships.Name] {
		readFile(t, path, func(rec arrow.RecordBatch) error {
			r, err := sinktest.RelationshipRowsFrom(rec)
			rows.Relationships = append(rows.Relationships, r...)
			return err
		})
	}
	for _, path := range files[schema.ProfileRejects.Name] {
		readFile(t, path, func(rec arrow.RecordBatch) error {
			r, err := sinktest.RejectRowsFrom(rec)
			rows.Rejects = append(rows.Rejects, r...)
			return err
		})
	}
	return rows
}

func readFile(t *testing.T, path string, each func(arrow.RecordBatch) error) {
	t.Helper()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	rdr, err := file.OpenParquetFile(path, false)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	defer rdr.Close()
	fr, err := pqarrow.NewFileReader(rdr, pqarrow.ArrowReadProperties{BatchSize: 1 << 16}, mem)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	tbl, err := fr.ReadTable(t.Context())
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	defer tbl.Release()
	tr := array.NewTableReader(tbl, 1<<16)
	defer tr.Release()
	for tr.Next() {
		if err := each(tr.RecordBatch()); err != nil {
			t.Fatalf("read %s: %v", path, err)
		}
	}
}

var fileNameRE = regexp.MustCompile(`^g\d{6}-r\d{8}T\d{6}Z-[0-9a-z]{1,8}-s\d{6}\.parquet$`)

// listTree returns every entry under dir, folder relative, sorted.
func listTree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != dir {
			rel, _ := filepath.Rel(dir, p)
			if d.IsDir() {
				rel += "/"
			}
			out = append(out, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

func readStateDoc(t *testing.T, dir string) stateFile {
	t.Helper()
	sf, ok, err := readStateFile(dir)
	if err != nil || !ok {
		t.Fatalf("read state file: ok=%v err=%v", ok, err)
	}
	return sf
}

func runState(gen int, id string, fullRefresh bool, profiles int64) load.State {
	live := gen
	if fullRefresh {
		live = gen - 1
	}
	return load.State{
		SchemaVersion: schema.Version,
		Generation:    live,
		Run: &load.Run{ID: id, Generation: gen, FullRefresh: fullRefresh, Status: "running", Revision: "2026-07-15",
			StartedAt: time.Date(2026, 7, 20, 9, 30, 15, 0, time.UTC), Stats: load.Stats{Profiles: profiles}},
	}
}

func finished(st load.State, status string) load.State {
	r := *st.Run
	r.Status = status
	if status == "succeeded" {
		st.Generation = r.Generation
	}
	st.Run, st.LastRun = nil, &r
	return st
}

func profiles(mem memory.Allocator, first, n int, runID string) arrow.RecordBatch {
	return sinktest.GenerateProfiles(mem, first, n, runID, time.Date(2026, 7, 20, 9, 31, 0, 0, time.UTC))
}

func mustBegin(t *testing.T, s *Sink) load.State {
	t.Helper()
	st, err := s.Begin(t.Context())
	if err != nil {
		t.Fatalf("Begin: %v", err)
	}
	return st
}

func mustWrite(t *testing.T, s *Sink, b load.Batch) {
	t.Helper()
	defer func() {
		for _, r := range []arrow.RecordBatch{b.Profiles, b.Relationships, b.Rejects} {
			if r != nil {
				r.Release()
			}
		}
	}()
	if err := s.Write(t.Context(), b); err != nil {
		t.Fatalf("Write: %v", err)
	}
}

func mustCommit(t *testing.T, s *Sink, st load.State) {
	t.Helper()
	if err := s.Commit(t.Context(), st); err != nil {
		t.Fatalf("Commit: %v", err)
	}
}

func mustClose(t *testing.T, s *Sink) {
	t.Helper()
	if err := s.Close(t.Context()); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func TestLayoutAndFileMetadata(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	dir := filepath.Join(t.TempDir(), "out")
	s := newSink(t, dir, Config{RowGroupRows: 100, Revision: "2026-07-15"})
	mustBegin(t, s)
	mustCommit(t, s, runState(0, "01J3RUNIDXYZ", false, 0))
	for i := 0; i < 5; i++ { // 250 rows in batches of 50: row groups of 100, 100, 50
		mustWrite(t, s, load.Batch{
			Profiles:      profiles(mem, i*50, 50, "01J3RUNIDXYZ"),
			Relationships: sinktest.Relationships(mem, sinktest.RelationshipRow{ProfileID: "p", Relationship: "lists", RelatedType: "list", RelatedID: "L", RunID: "r"}),
		})
	}
	mustCommit(t, s, runState(0, "01J3RUNIDXYZ", false, 250))
	mustWrite(t, s, load.Batch{Profiles: profiles(mem, 250, 10, "01J3RUNIDXYZ")})
	mustCommit(t, s, runState(0, "01J3RUNIDXYZ", false, 260))
	mustWrite(t, s, load.Batch{Profiles: profiles(mem, 260, 10, "01J3RUNIDXYZ")}) // never committed
	mustClose(t, s)

	want := []string{
		"_state.json",
		"profile_rejects/",
		"profile_relationships/",
		"profile_relationships/g000000-r20260720T093015Z-01j3runi-s000001.parquet",
		"profiles/",
		"profiles/g000000-r20260720T093015Z-01j3runi-s000001.parquet",
		"profiles/g000000-r20260720T093015Z-01j3runi-s000002.parquet",
	}
	if got := listTree(t, dir); !slices.Equal(got, want) {
		t.Fatalf("output folder:\n got  %q\n want %q", got, want)
	}
	for _, p := range want {
		if strings.HasSuffix(p, ".parquet") && !fileNameRE.MatchString(filepath.Base(p)) {
			t.Errorf("file name %s does not match %s", p, fileNameRE)
		}
	}

	rdr, err := file.OpenParquetFile(filepath.Join(dir, want[5]), false)
	if err != nil {
		t.Fatal(err)
	}
	defer rdr.Close()
	md := rdr.MetaData()
	if md.NumRows != 250 || md.NumRowGroups() != 3 {
		t.Errorf("rows %d in %d row groups, want 250 in 3", md.NumRows, md.NumRowGroups())
	}
	kv := map[string]string{}
	for i, k := range md.KeyValueMetadata().Keys() {
		kv[k] = md.KeyValueMetadata().Values()[i]
	}
	for k, v := range map[string]string{
		"klaviyo_etl.schema_version": "1",
		"klaviyo_etl.table":          "profiles",
		MetaRevision:                 "2026-07-15",
		MetaRunID:                    "01J3RUNIDXYZ",
		MetaGeneration:               "0",
	} {
		if kv[k] != v {
			t.Errorf("metadata %s = %q, want %q", k, kv[k], v)
		}
	}
	if kv["ARROW:schema"] == "" {
		t.Error("no ARROW:schema in the file metadata")
	}
	sc := md.Schema
	for i := 0; i < sc.NumColumns(); i++ {
		col := sc.Column(i)
		c := schema.Profiles.Columns[i]
		if col.Name() != c.Name {
			t.Fatalf("column %d is %s, want %s", i, col.Name(), c.Name)
		}
		var want pqschema.LogicalType
		switch c.Kind {
		case schema.JSON:
			want = pqschema.JSONLogicalType{}
		case schema.String:
			want = pqschema.StringLogicalType{}
		case schema.Timestamp:
			want = pqschema.NewTimestampLogicalType(true, pqschema.TimeUnitMicros)
		default:
			continue
		}
		if !col.LogicalType().Equals(want) {
			t.Errorf("column %s has logical type %s, want %s", c.Name, col.LogicalType(), want)
		}
		if nullable := col.SchemaNode().RepetitionType() != parquet.Repetitions.Required; nullable != c.Nullable {
			t.Errorf("column %s nullable=%v, want %v", c.Name, nullable, c.Nullable)
		}
	}

	// The rows read back equal the rows written, column by column.
	exp := profiles(mem, 0, 250, "01J3RUNIDXYZ")
	defer exp.Release()
	fr, err := pqarrow.NewFileReader(rdr, pqarrow.ArrowReadProperties{}, mem)
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := fr.ReadTable(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer tbl.Release()
	for i := 0; i < int(exp.NumCols()); i++ {
		g, err := array.Concatenate(tbl.Column(i).Data().Chunks(), mem)
		if err != nil {
			t.Fatal(err)
		}
		e := exp.Column(i)
		if ext, ok := e.(array.ExtensionArray); ok {
			// arrow-go reads the JSON logical type back as binary.
			s, b := ext.Storage().(*array.String), g.(*array.Binary)
			for j := 0; j < s.Len(); j++ {
				if s.IsNull(j) != b.IsNull(j) || s.Value(j) != string(b.Value(j)) {
					t.Errorf("column %s row %d differs after the round trip", exp.ColumnName(i), j)
					break
				}
			}
		} else if !array.Equal(e, g) {
			t.Errorf("column %s differs after the round trip: %s vs %s", exp.ColumnName(i), e.DataType(), g.DataType())
		}
		g.Release()
	}
}

func TestBeginRemovesDebris(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	dir := filepath.Join(t.TempDir(), "out")
	s := newSink(t, dir, Config{})
	mustBegin(t, s)
	st := runState(0, "run1", false, 10)
	mustCommit(t, s, st)
	mustWrite(t, s, load.Batch{Profiles: profiles(mem, 0, 10, "run1")})
	mustCommit(t, s, st)
	committed := listTree(t, dir)
	stateBefore, _ := os.ReadFile(filepath.Join(dir, StateFile))

	// A crash mid-checkpoint: a partial file open, a file renamed but not
	// listed, a state file half replaced, and the lock released by the
	// kernel rather than by Close.
	mustWrite(t, s, load.Batch{Profiles: profiles(mem, 10, 10, "run1")})
	renamed := filepath.Join(dir, "profiles", "g000000-r20260720T093015Z-run1-s000002.parquet")
	writeFile(t, renamed, "PAR1")
	writeFile(t, filepath.Join(dir, "profile_rejects", ".tmp-g000000-r20260720T093015Z-run1-s000002.parquet.partial"), "PAR1")
	writeFile(t, filepath.Join(dir, stateTempName), `{"format":1`)
	// Things the sink did not write are left alone.
	writeFile(t, filepath.Join(dir, "profiles", "README.txt"), "mine")
	if err := os.Mkdir(filepath.Join(dir, "profiles", "old"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := s.lock.Close(); err != nil { // what the kernel does when the process dies
		t.Fatal(err)
	}

	s2 := newSink(t, dir, Config{})
	got := mustBegin(t, s2)
	defer mustClose(t, s2)
	stJSON, _ := json.Marshal(st)
	gotJSON, _ := json.Marshal(got)
	if !bytes.Equal(stJSON, gotJSON) {
		t.Errorf("Begin after crash: state %s, want %s", gotJSON, stJSON)
	}
	want := append(slices.Clone(committed), "profiles/README.txt", "profiles/old/")
	sort.Strings(want)
	if got := listTree(t, dir); !slices.Equal(got, want) {
		t.Errorf("after Begin:\n got  %q\n want %q", got, want)
	}
	if after, _ := os.ReadFile(filepath.Join(dir, StateFile)); !bytes.Equal(after, stateBefore) {
		t.Error("Begin changed the state file")
	}
	if n := len(readRows(t, dir).Profiles); n != 10 {
		t.Errorf("%d profiles readable, want 10", n)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestBeginFailsOnMissingListedFile(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	dir := filepath.Join(t.TempDir(), "out")
	s := newSink(t, dir, Config{})
	mustBegin(t, s)
	mustCommit(t, s, runState(0, "run1", false, 0))
	mustWrite(t, s, load.Batch{Profiles: profiles(mem, 0, 10, "run1")})
	mustCommit(t, s, runState(0, "run1", false, 10))
	mustClose(t, s)
	live, _ := LiveFiles(dir)
	if err := os.Remove(live["profiles"][0]); err != nil {
		t.Fatal(err)
	}
	s = newSink(t, dir, Config{})
	if _, err := s.Begin(t.Context()); err == nil || !strings.Contains(err.Error(), StateFile) {
		t.Errorf("Begin with a listed file missing: got %v, want an error naming %s", err, StateFile)
	}
	mustClose(t, s)
	// The failed Begin released the lock.
	s = newSink(t, dir, Config{})
	if _, err := s.Begin(t.Context()); errors.Is(err, load.ErrLocked) {
		t.Errorf("lock still held after a failed Begin: %v", err)
	}
	mustClose(t, s)
}

func TestFullRefreshFiles(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	dir := filepath.Join(t.TempDir(), "out")
	ctx := t.Context()

	count := func() int { return len(readRows(t, dir).Profiles) }
	globbed := func() int {
		m, _ := filepath.Glob(filepath.Join(dir, "profiles", "*.parquet"))
		return len(m)
	}

	// Generation 0: two checkpoints.
	s := newSink(t, dir, Config{})
	mustBegin(t, s)
	st := runState(0, "run1", false, 0)
	mustCommit(t, s, st)
	for i := 0; i < 2; i++ {
		mustWrite(t, s, load.Batch{Profiles: profiles(mem, i*10, 10, "run1")})
		mustCommit(t, s, st)
	}
	mustCommit(t, s, finished(st, "succeeded"))
	gen0 := readStateDoc(t, dir).Files["profiles"]
	if len(gen0) != 2 || count() != 20 {
		t.Fatalf("generation 0: %d files, %d rows", len(gen0), count())
	}

	// A refresh (generation 1) that fails: its files stay pending, readers
	// of record keep seeing generation 0, a glob sees both.
	refresh := runState(1, "run2", true, 0)
	mustCommit(t, s, refresh)
	mustWrite(t, s, load.Batch{Profiles: profiles(mem, 100, 5, "run2")})
	mustCommit(t, s, refresh)
	mustCommit(t, s, finished(refresh, "failed"))
	sf := readStateDoc(t, dir)
	if sf.Pending == nil || sf.Pending.Generation != 1 || len(sf.Pending.Files["profiles"]) != 1 {
		t.Fatalf("pending after a failed refresh: %+v", sf.Pending)
	}
	if !strings.HasPrefix(sf.Pending.Files["profiles"][0], "g000001-") {
		t.Errorf("refresh file %s not named for generation 1", sf.Pending.Files["profiles"][0])
	}
	if count() != 20 || globbed() != 3 {
		t.Errorf("after a failed refresh: %d rows of record, %d files globbed; want 20 and 3", count(), globbed())
	}

	// Another refresh run of the same generation starts over: the failed
	// run's files are dropped.
	refresh2 := runState(1, "run3", true, 0)
	mustCommit(t, s, refresh2)
	if sf := readStateDoc(t, dir); sf.Pending == nil || sf.Pending.RunID != "run3" || len(sf.Pending.Files["profiles"]) != 0 {
		t.Fatalf("pending after a new refresh run: %+v", sf.Pending)
	}
	if globbed() != 2 {
		t.Errorf("%d files globbed, want the 2 of generation 0", globbed())
	}
	mustWrite(t, s, load.Batch{Profiles: profiles(mem, 200, 7, "run3")})
	mustCommit(t, s, refresh2)
	mustWrite(t, s, load.Batch{Profiles: profiles(mem, 300, 8, "run3")})
	mustCommit(t, s, finished(refresh2, "succeeded"))
	sf = readStateDoc(t, dir)
	if sf.Pending != nil || sf.Generation != 1 || len(sf.Files["profiles"]) != 2 {
		t.Fatalf("after the refresh succeeded: generation %d, pending %+v, files %v", sf.Generation, sf.Pending, sf.Files)
	}
	if count() != 15 || globbed() != 2 {
		t.Errorf("after the refresh: %d rows of record, %d files globbed; want 15 and 2", count(), globbed())
	}

	// An incremental run of the live generation after an unfinished refresh
	// abandons the refresh.
	mustCommit(t, s, runState(2, "run4", true, 0))
	mustWrite(t, s, load.Batch{Profiles: profiles(mem, 400, 3, "run4")})
	mustCommit(t, s, finished(runState(2, "run4", true, 0), "interrupted"))
	if globbed() != 3 {
		t.Fatalf("%d files globbed, want 3", globbed())
	}
	mustCommit(t, s, runState(1, "run5", false, 0))
	if sf := readStateDoc(t, dir); sf.Pending != nil || globbed() != 2 || count() != 15 {
		t.Errorf("abandoned refresh: pending %+v, %d files, %d rows", sf.Pending, globbed(), count())
	}

	// A run older than the live generation is refused.
	if err := s.Commit(ctx, runState(0, "run6", false, 0)); err == nil {
		t.Error("Commit of a generation-0 run over generation 1: no error")
	}
	mustClose(t, s)
}

func TestRefreshOfEmptyTarget(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	dir := filepath.Join(t.TempDir(), "out")
	s := newSink(t, dir, Config{})
	mustBegin(t, s)
	st := runState(1, "run1", true, 0)
	mustCommit(t, s, st)
	mustWrite(t, s, load.Batch{Profiles: profiles(mem, 0, 4, "run1")})
	mustCommit(t, s, st)
	if sf := readStateDoc(t, dir); sf.Pending == nil || sf.Generation != 0 || len(readRows(t, dir).Profiles) != 0 {
		t.Fatalf("refresh of an empty target under way: generation %d, pending %+v", sf.Generation, sf.Pending)
	}
	// It fails; the next run is an incremental one of generation 0, which
	// the refresh's files must not hold up.
	mustCommit(t, s, finished(st, "failed"))
	mustCommit(t, s, runState(0, "run2", false, 0))
	mustWrite(t, s, load.Batch{Profiles: profiles(mem, 10, 3, "run2")})
	mustCommit(t, s, runState(0, "run2", false, 3))
	mustClose(t, s)
	if sf := readStateDoc(t, dir); sf.Pending != nil || sf.Generation != 0 || len(readRows(t, dir).Profiles) != 3 {
		t.Errorf("after the failed refresh: generation %d, pending %+v", sf.Generation, sf.Pending)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "profiles", "*")); len(m) != 1 {
		t.Errorf("profiles folder holds %q, want the one file of run2", m)
	}
}

func TestFailuresLeaveStateIntact(t *testing.T) {
	cases := []struct {
		name string
		// breakIt damages dir after a first commit; the sink then writes
		// a batch and commits.
		breakIt  func(t *testing.T, s *Sink, dir string)
		failsAt  string // "write" or "commit"
		leftover []string
	}{
		{
			name: "table folder replaced by a file",
			breakIt: func(t *testing.T, s *Sink, dir string) {
				p := filepath.Join(dir, "profiles")
				if err := os.RemoveAll(p); err != nil {
					t.Fatal(err)
				}
				writeFile(t, p, "not a folder")
			},
			failsAt: "write",
		},
		{
			name: "disk full",
			breakIt: func(t *testing.T, s *Sink, dir string) {
				s.create = func(string, int, os.FileMode) (*os.File, error) {
					return os.OpenFile("/dev/full", os.O_WRONLY, 0)
				}
			},
			failsAt: "commit",
		},
		{
			name: "state file cannot be replaced",
			breakIt: func(t *testing.T, s *Sink, dir string) {
				if err := os.Mkdir(filepath.Join(dir, stateTempName), 0o755); err != nil {
					t.Fatal(err)
				}
			},
			failsAt: "commit",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			dir := filepath.Join(t.TempDir(), "out")
			s := newSink(t, dir, Config{})
			mustBegin(t, s)
			mustCommit(t, s, runState(0, "run1", false, 0))
			mustWrite(t, s, load.Batch{Profiles: profiles(mem, 0, 10, "run1")})
			st1 := runState(0, "run1", false, 10)
			mustCommit(t, s, st1)
			before, _ := os.ReadFile(filepath.Join(dir, StateFile))
			filesBefore, _ := filepath.Glob(filepath.Join(dir, "*", "*"))

			c.breakIt(t, s, dir)
			rec := profiles(mem, 10, 5000, "run1")
			werr := s.Write(t.Context(), load.Batch{Profiles: rec})
			rec.Release()
			cerr := s.Commit(t.Context(), runState(0, "run1", false, 5010))
			switch {
			case c.failsAt == "write" && werr == nil:
				t.Fatal("Write succeeded")
			case c.failsAt == "commit" && werr != nil:
				t.Fatalf("Write: %v", werr)
			case cerr == nil:
				t.Fatal("Commit succeeded")
			}
			t.Logf("write: %v; commit: %v", werr, cerr)
			if after, _ := os.ReadFile(filepath.Join(dir, StateFile)); !bytes.Equal(after, before) {
				t.Errorf("state file changed:\n%s", after)
			}
			if err := s.Write(t.Context(), load.Batch{}); err == nil {
				t.Error("Write after a failure: no error")
			}
			mustClose(t, s)
			filesAfter, _ := filepath.Glob(filepath.Join(dir, "*", "*"))
			for _, f := range filesAfter {
				if !slices.Contains(filesBefore, f) && !strings.HasSuffix(f, "profiles") && !strings.HasSuffix(f, stateTempName) {
					t.Errorf("left behind: %s", f)
				}
			}
			st, err := ReadState(dir)
			if err != nil {
				t.Fatal(err)
			}
			if st.Run.Stats.Profiles != 10 {
				t.Errorf("ReadState after the failure: %d profiles, want 10", st.Run.Stats.Profiles)
			}
		})
	}
}

func TestBeginOnUnusableFolder(t *testing.T) {
	root := t.TempDir()
	cases := []struct {
		name  string
		setup func(t *testing.T) string
	}{
		{"output is a file", func(t *testing.T) string {
			p := filepath.Join(root, "file")
			writeFile(t, p, "x")
			return p
		}},
		{"table folder is a file", func(t *testing.T) string {
			p := filepath.Join(root, "tablefile")
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			writeFile(t, filepath.Join(p, "profile_relationships"), "x")
			return p
		}},
		{"state file is not JSON", func(t *testing.T) string {
			p := filepath.Join(root, "badstate")
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			writeFile(t, filepath.Join(p, StateFile), "{")
			return p
		}},
		{"state file of another format", func(t *testing.T) string {
			p := filepath.Join(root, "format2")
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			writeFile(t, filepath.Join(p, StateFile), `{"format":2,"state":{}}`)
			return p
		}},
		{"state file naming a path outside its folder", func(t *testing.T) string {
			p := filepath.Join(root, "escape")
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			writeFile(t, filepath.Join(p, StateFile), `{"format":1,"state":{},"files":{"profiles":["../../x.parquet"]}}`)
			return p
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := c.setup(t)
			before := listTree(t, filepath.Dir(dir))
			s := newSink(t, dir, Config{})
			if _, err := s.Begin(t.Context()); err == nil {
				t.Fatal("Begin succeeded")
			} else {
				t.Log(err)
			}
			mustClose(t, s)
			if after := listTree(t, filepath.Dir(dir)); !slices.Equal(before, after) && c.name != "table folder is a file" {
				t.Errorf("Begin changed the folder:\n before %q\n after  %q", before, after)
			}
		})
	}
}

func TestReadState(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	dir := filepath.Join(t.TempDir(), "out")
	if st, err := ReadState(dir); err != nil || st.Run != nil || st.Generation != 0 {
		t.Fatalf("ReadState of a missing folder: %+v, %v", st, err)
	}
	s := newSink(t, dir, Config{})
	mustBegin(t, s)
	st := runState(0, "run1", false, 42)
	st.Cursors = map[string]*load.Cursor{"created": {End: time.Date(2026, 1, 2, 3, 4, 5, 6, time.FixedZone("", -5*3600)), Seen: map[string]int64{"a": 1}}}
	mustCommit(t, s, st)
	// Read while the sink holds the lock.
	got, err := ReadState(dir)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := json.Marshal(got)
	b, _ := json.Marshal(st)
	if !bytes.Equal(a, b) {
		t.Errorf("ReadState: %s, want %s", a, b)
	}
	mustClose(t, s)
}

func TestNewValidates(t *testing.T) {
	cases := []struct {
		name string
		dir  string
		cfg  Config
		ok   bool
	}{
		{"defaults", "out", Config{}, true},
		{"snappy", "out", Config{Compression: "snappy"}, true},
		{"zstd level", "out", Config{Compression: "ZSTD", CompressionLevel: 3}, true},
		{"none", "out", Config{Compression: "none"}, true},
		{"unknown codec", "out", Config{Compression: "lzo"}, false},
		{"negative row groups", "out", Config{RowGroupRows: -1}, false},
		{"no folder", "", Config{}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := New(c.dir, c.cfg)
			if (err == nil) != c.ok {
				t.Errorf("New: err=%v, want ok=%v", err, c.ok)
			}
		})
	}
}

func TestWriteRejectsForeignSchema(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	dir := filepath.Join(t.TempDir(), "out")
	s := newSink(t, dir, Config{})
	mustBegin(t, s)
	mustCommit(t, s, runState(0, "run1", false, 0))
	// A relationships record handed over as profiles.
	rec := sinktest.Relationships(mem, sinktest.RelationshipRow{ProfileID: "p", Relationship: "lists", RelatedType: "list", RelatedID: "L", RunID: "r"})
	err := s.Write(t.Context(), load.Batch{Profiles: rec})
	rec.Release()
	if err == nil {
		t.Fatal("Write of a foreign schema: no error")
	}
	// Nothing was written, so the sink goes on.
	mustWrite(t, s, load.Batch{Profiles: profiles(mem, 0, 3, "run1")})
	mustCommit(t, s, runState(0, "run1", false, 3))
	mustClose(t, s)
	if n := len(readRows(t, dir).Profiles); n != 3 {
		t.Errorf("%d rows, want 3", n)
	}
}

func TestLifecycleMisuse(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out")
	ctx := context.Background()
	s := newSink(t, dir, Config{})
	if err := s.Write(ctx, load.Batch{}); err == nil {
		t.Error("Write before Begin: no error")
	}
	if err := s.Commit(ctx, load.State{}); err == nil {
		t.Error("Commit before Begin: no error")
	}
	mustBegin(t, s)
	if _, err := s.Begin(ctx); err == nil {
		t.Error("second Begin on one Sink: no error")
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := s.Commit(cctx, load.State{}); !errors.Is(err, context.Canceled) {
		t.Errorf("Commit with a canceled context: %v", err)
	}
	mustClose(t, s)
	mustClose(t, s) // a second Close does nothing
	if err := s.Commit(ctx, load.State{}); err == nil {
		t.Error("Commit after Close: no error")
	}
}

// TestWriteDoesNotRetainRecords overwrites a record's memory right after
// Write returns: what is committed must still be what was written.
func TestWriteDoesNotRetainRecords(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	dir := filepath.Join(t.TempDir(), "out")
	s := newSink(t, dir, Config{RowGroupRows: 1000})
	mustBegin(t, s)
	mustCommit(t, s, runState(0, "run1", false, 0))
	for i := 0; i < 3; i++ { // the last row group is still open at Commit
		rec := profiles(mem, i*400, 400, "run1")
		if err := s.Write(t.Context(), load.Batch{Profiles: rec}); err != nil {
			t.Fatal(err)
		}
		for _, col := range rec.Columns() {
			for _, buf := range col.Data().Buffers() {
				if buf != nil {
					b := buf.Bytes()
					for j := range b {
						b[j] = 0xAA
					}
				}
			}
		}
		rec.Release()
	}
	mustCommit(t, s, runState(0, "run1", false, 1200))
	mustClose(t, s)

	want := profiles(mem, 0, 1200, "run1")
	defer want.Release()
	wantRows, err := sinktest.ProfileRowsFrom(want)
	if err != nil {
		t.Fatal(err)
	}
	got := readRows(t, dir).Profiles
	if len(got) != len(wantRows) {
		t.Fatalf("%d rows, want %d", len(got), len(wantRows))
	}
	for i := range got {
		g, _ := json.Marshal(got[i])
		w, _ := json.Marshal(wantRows[i])
		if !bytes.Equal(g, w) {
			t.Fatalf("row %d:\n got  %s\n want %s", i, g, w)
		}
	}
}
