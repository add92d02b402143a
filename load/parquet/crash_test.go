package parquet

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/klaviyo-etl/klaviyo-etl/load"
	"github.com/klaviyo-etl/klaviyo-etl/load/sinktest"
	"github.com/klaviyo-etl/klaviyo-etl/schema"
)

const crashDirEnv = "KLAVIYO_ETL_PARQUET_CRASH_DIR"

func TestMain(m *testing.M) {
	if dir := os.Getenv(crashDirEnv); dir != "" {
		if err := crashChild(dir); err != nil {
			fmt.Fprintln(os.Stderr, "crash child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// bookKey is where the crash child keeps, inside the State it commits, how
// many rows the live and the pending set should hold.
const bookKey = "test-book"

// crashChild runs load after load against dir until it is killed: runs of
// a few checkpoints, every third one a full refresh, each State recording
// how many rows the files it commits should hold.
func crashChild(dir string) error {
	ctx := context.Background()
	s, err := New(dir, Config{RowGroupRows: 64})
	if err != nil {
		return err
	}
	st, err := s.Begin(ctx)
	if err != nil {
		return err
	}
	book := map[string]int64{"live": 0, "pending": 0, "runs": 0}
	if c := st.Cursors[bookKey]; c != nil {
		book = maps.Clone(c.Seen)
	}
	commit := func() error {
		st.Cursors = map[string]*load.Cursor{bookKey: {Seen: maps.Clone(book)}}
		if err := s.Commit(ctx, st); err != nil {
			return err
		}
		fmt.Println("committed")
		return nil
	}
	mem := memory.NewGoAllocator()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	for iter := 0; iter < 1000; iter++ { // bounded in case the parent dies
		if st.Run == nil {
			book["runs"]++
			refresh := book["runs"]%3 == 0
			gen := st.Generation
			if refresh {
				gen++
				book["pending"] = 0
			}
			st.Run = &load.Run{ID: fmt.Sprintf("run%d", book["runs"]), Generation: gen, FullRefresh: refresh,
				Status: "running", StartedAt: time.Now().UTC()}
			if err := commit(); err != nil {
				return err
			}
		}
		for range 3 {
			n := 1 + rng.IntN(300)
			first := int(book["live"]+book["pending"]) * 7
			recs := []arrow.RecordBatch{
				sinktest.GenerateProfiles(mem, first, n, st.Run.ID, time.Now()),
				relationshipsFor(mem, first, n, st.Run.ID),
			}
			err := s.Write(ctx, load.Batch{Profiles: recs[0], Relationships: recs[1]})
			recs[0].Release()
			recs[1].Release()
			if err != nil {
				return err
			}
			if st.Run.FullRefresh {
				book["pending"] += int64(n)
			} else {
				book["live"] += int64(n)
			}
			if err := commit(); err != nil {
				return err
			}
		}
		r := *st.Run
		r.Status = "succeeded"
		if r.FullRefresh {
			book["live"], book["pending"] = book["pending"], 0
			st.Generation = r.Generation
		}
		st.Run, st.LastRun = nil, &r
		if err := commit(); err != nil {
			return err
		}
	}
	return s.Close(ctx)
}

func relationshipsFor(mem memory.Allocator, first, n int, runID string) arrow.RecordBatch {
	rows := make([]sinktest.RelationshipRow, n)
	for i := range rows {
		rows[i] = sinktest.RelationshipRow{ProfileID: fmt.Sprint(first + i), Relationship: "lists", RelatedType: "list",
			RelatedID: "Y6nRLr", RunID: runID}
	}
	return sinktest.Relationships(mem, rows...)
}

// TestKilledProcess kills a process writing to the sink at arbitrary
// points (SIGKILL: no Close, no deferred code) and checks after each kill
// that the next Begin gets the lock, removes the debris, and finds files
// holding exactly the rows the committed State accounts for, in the live
// and in the pending set.
func TestKilledProcess(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "out")
	rng := rand.New(rand.NewPCG(7, 7))
	sawPending := false
	for kill := 0; kill < 12; kill++ {
		cmd := exec.Command(exe)
		cmd.Env = append(os.Environ(), crashDirEnv+"="+dir)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		commits := 1 + rng.IntN(10)
		sc := bufio.NewScanner(out)
		for i := 0; i < commits && sc.Scan(); i++ {
		}
		time.Sleep(time.Duration(rng.IntN(3000)) * time.Microsecond)
		_ = cmd.Process.Kill()
		werr := cmd.Wait()
		var exit *exec.ExitError
		if !errors.As(werr, &exit) || exit.ExitCode() != -1 {
			t.Fatalf("child ended on its own (%v) before being killed: %s", werr, stderr.String())
		}

		s := newSink(t, dir, Config{})
		st, err := s.Begin(t.Context())
		if err != nil {
			t.Fatalf("kill %d: Begin: %v", kill, err)
		}
		book := st.Cursors[bookKey].Seen
		sf := readStateDoc(t, dir)
		if got := int64(len(readRows(t, dir).Profiles)); got != book["live"] {
			t.Fatalf("kill %d: %d live profiles, the committed State says %d", kill, got, book["live"])
		}
		if got := int64(len(readRows(t, dir).Relationships)); got != book["live"] {
			t.Fatalf("kill %d: %d live relationships, the committed State says %d", kill, got, book["live"])
		}
		var pending int64
		if sf.Pending != nil {
			sawPending = true
			for _, n := range sf.Pending.Files[schema.Profiles.Name] {
				readFile(t, filepath.Join(dir, schema.Profiles.Name, n), func(rec arrow.RecordBatch) error {
					pending += rec.NumRows()
					return nil
				})
			}
		}
		if pending != book["pending"] {
			t.Fatalf("kill %d: %d pending profiles, the committed State says %d", kill, pending, book["pending"])
		}
		listed := sf.listed()
		for _, p := range listTree(t, dir) {
			if !strings.HasSuffix(p, "/") && p != StateFile && !listed[p] {
				t.Errorf("kill %d: %s left after Begin", kill, p)
			}
		}
		mustClose(t, s)
	}
	if !sawPending {
		t.Log("no kill landed during a full refresh")
	}
}
