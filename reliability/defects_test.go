package reliability

// Regression tests for the defects the campaign found (docs/dev/defects.md):
// each reproduced a defect before its fix and runs in CI so it stays fixed.
//
//	go test ./reliability -run TestDefect -v

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/klaviyo-etl/klaviyo-etl/extract/klaviyosim"
	"github.com/klaviyo-etl/klaviyo-etl/internal/e2etest"
)

// D1: a record nested deeper than the parsers' 10,000 levels makes its
// whole page unreadable; the page is retried until the retry deadline
// (10 minutes by default) and every later run fails at it, so the export
// never gets past that record. It should become a reject row (raw kept)
// while the rest of the page and of the export loads.
func TestDefectDeepRecordBlocksExport(t *testing.T) {
	for _, sink := range sinks {
		t.Run(sink, func(t *testing.T) {
			deep := `{"type":"profile","id":"too-deep","attributes":{"created":"2024-01-02T03:04:06Z","properties":{"p":` + nested(20000) + `}}}`
			flat := `{"type":"profile","id":"flat","attributes":{"created":"2024-01-02T03:04:05Z"}}`
			body := []byte(`{"data":[` + flat + `,` + deep + `],"links":{"next":null}}`)
			sim := newSim(t, klaviyosim.Config{Seed: 1, Unlimited: true})
			sim.Use(servePage(body))
			tg := newTarget(t, sink)
			r := run(t, spec{args: craftedArgs(tg), env: tg.env(sim)})
			if r.code != 0 {
				t.Fatalf("a page with one record nested 20,000 deep: %v; want exit 0 with that record rejected", r)
			}
			lost, _ := account(t, tg, [][]byte{[]byte(flat), []byte(deep)}, r)
			record(t, figure{Case: "D1: a record nested 20,000 deep", Sink: sink, Runs: 1, Outcome: "exit 0", Lost: lost,
				PeakRSS: peakRSS(r), Seconds: r.wall.Seconds()})
		})
	}
}

// D2: the Parquet output holds a profile version twice when a page carries
// the same record twice (PostgreSQL upserts, so it has one row).
func TestDefectParquetDuplicateInPage(t *testing.T) {
	f := duplicateInPage(t, "parquet")
	f.Case, f.Sink = "D2: the same record twice in one page", "parquet"
	record(t, f)
}

// D3: a record whose created lies after the window, in the middle of a
// page, ends its slice's chain: apply() takes it for the end of sorted
// data, marks the slice finished and the rest of the slice is never read.
// The run exits 0 and commits the window as done: 350 of 450 profiles are
// lost for good.
func TestDefectStrayFutureRecordEndsSlice(t *testing.T) {
	for _, sink := range sinks {
		t.Run(sink, func(t *testing.T) {
			f, _ := injectStray(t, sink, "2999-01-01T00:00:00Z")
			f.Case, f.Sink = "D3: a record created after the window inside page 1", sink
			record(t, f)
		})
	}
}

// D4: when a walker fails (a links.next loop, a foreign next host, a page
// given up on) while the pipeline commits a checkpoint, the walk's context
// is cancelled under the commit: the run reports "commit checkpoint: …:
// context canceled" instead of the cause, and, its sink now failed,
// commits nothing of what it read since the previous checkpoint.
func TestDefectWalkErrorReportedAsContextCanceled(t *testing.T) {
	for _, sink := range sinks {
		t.Run(sink, func(t *testing.T) {
			hidden := 0
			const tries = 10
			var msgs []string
			for range tries {
				sim := newSim(t, klaviyosim.Config{Profiles: 900, Seed: 11, Unlimited: true, DisableGzip: true})
				useNextLoop(t, sim)
				tg := newTarget(t, sink)
				// A checkpoint after every page: the loop is found while one
				// is being committed.
				r := run(t, spec{args: craftedArgs(tg, "--checkpoint-rows", "1"), env: tg.env(sim)})
				if r.code != 1 {
					t.Fatalf("%v", r)
				}
				if !strings.Contains(r.message(), "loop") {
					hidden++
					msgs = append(msgs, r.message())
				}
			}
			if hidden > 0 {
				t.Errorf("%d of %d runs reported another error than the loop: %q", hidden, tries, msgs)
			}
			record(t, figure{Case: "D4: links.next loop found during a checkpoint", Sink: sink, Runs: tries,
				Outcome: fmt.Sprintf("%d of %d messages hid the loop", hidden, tries)})
		})
	}
}

// D5: a GET whose reused connection is reset is retried by net/http's
// Transport itself, below the client's limiter and counters: the request
// is sent again without passing the rate budget, and the run's requests
// and retries (summary, metrics) miss it.
func TestDefectTransportRetriesUncounted(t *testing.T) {
	sim := newSim(t, klaviyosim.Config{Profiles: 2000, Seed: 81, Unlimited: true, FaultRate: 0.3,
		Faults: []klaviyosim.Fault{klaviyosim.FaultReset}, DisableGzip: true})
	tg := newTarget(t, "parquet")
	r := run(t, spec{args: tg.args(append([]string{"--concurrency", "2", "--page-size", "20", "--log-level", "warn"}, fastBudget...)...),
		env: tg.env(sim)})
	if r.code != 0 {
		t.Fatalf("%v", r)
	}
	ctr := sim.Counters()
	if r.summary.Requests != ctr.Requests {
		t.Errorf("the run counts %d requests and %d retries; the API received %d requests, %d of them reset",
			r.summary.Requests, r.summary.Retries, ctr.Requests, ctr.Faults[klaviyosim.FaultReset])
	}
	record(t, figure{Case: "D5: connection resets retried by net/http", Sink: "parquet", Runs: 1,
		Outcome: fmt.Sprintf("run counted %d requests, %d retries; API received %d requests, %d resets",
			r.summary.Requests, r.summary.Retries, ctr.Requests, ctr.Faults[klaviyosim.FaultReset])})
}

// D6: a first run starts its window at the created time of the profile
// the oldest-profile probe (sort=created, page[size]=1) returns, trusting
// it. When that record's created lies after the window's end (a stray, as
// in D3), the window is empty: the run reads nothing, exits 0 and commits
// the cursor at its end, so every existing profile is skipped for good.
func TestDefectStrayOldestEmptiesFirstRun(t *testing.T) {
	for _, sink := range sinks {
		t.Run(sink, func(t *testing.T) {
			sim := newSim(t, klaviyosim.Config{Profiles: 450, Seed: 7, Unlimited: true, DisableGzip: true})
			stray := []byte(`{"data":[` + string(strayRecord("stray", "2999-01-01T00:00:00Z")) + `],"links":{"self":"x","next":null}}`)
			sim.Use(func(next http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if isProbe(r) {
						servePage(stray)(nil).ServeHTTP(w, withoutProbe(r))
						return
					}
					next.ServeHTTP(w, r)
				})
			})
			tg := newTarget(t, sink)
			r := run(t, spec{args: craftedArgs(tg), env: tg.env(sim)})
			if r.code != 0 {
				t.Fatalf("%v", r)
			}
			tl := checkExact(t, tg, sim.Profiles())
			record(t, figure{Case: "D6: the oldest-profile probe answered with a record created in 2999", Sink: sink, Runs: 1,
				Outcome: fmt.Sprintf("exit 0, window %s – %s", r.summary.WindowStart.Format(time.RFC3339), r.summary.WindowEnd.Format(time.RFC3339)),
				Lost:    tl.Lost, Dups: tl.Duplicates, PeakRSS: peakRSS(r), Seconds: r.wall.Seconds()})
		})
	}
}

// withoutProbe makes servePage serve its body rather than the empty page.
func withoutProbe(r *http.Request) *http.Request {
	r2 := r.Clone(r.Context())
	r2.URL.RawQuery = "page%5Bsize%5D=100"
	return r2
}

// D7: SIGTERM or SIGINT that lands while a checkpoint is being written or
// committed cancels that checkpoint's sink I/O: the sink fails, the run
// ends with status "failed" (exit 143/130 all the same, saying "committed
// what was complete"), and nothing read since the previous checkpoint is
// committed, although the summary counts it. No record is lost (the next
// run reads them again), but the interrupt is not the clean checkpoint the
// contract promises.
func TestDefectInterruptDuringCheckpoint(t *testing.T) {
	for _, sink := range sinks {
		t.Run(sink, func(t *testing.T) {
			sim := newSim(t, klaviyosim.Config{Profiles: 3000, Seed: 21, Latency: 10 * time.Millisecond, Unlimited: true, DisableGzip: true})
			want := sim.Profiles()
			// Parquet checkpoints are short: it takes more tries to land in one.
			bad, tries := 0, map[string]int{"parquet": 30, "postgres": 10}[sink]
			var msgs []string
			for i := range tries {
				sig, code := syscall.SIGTERM, 143
				if i%2 == 1 {
					sig, code = syscall.SIGINT, 130
				}
				tg := newTarget(t, sink)
				// A checkpoint after every page; the signal is sent the
				// moment one is seen in progress.
				pr := start(t, spec{args: craftedArgs(tg, "--checkpoint-rows", "1", "--concurrency", "4"), env: tg.env(sim)})
				e2etest.WaitFor(t, time.Minute, "a checkpoint in progress", func() bool {
					return pr.exited() || (len(readProfiles(t, tg)) > 0 && checkpointing(tg))
				})
				pr.signal(sig)
				r := pr.wait(t)
				if r.code == 0 || r.summary == nil {
					continue // finished first, or stopped before its run began
				}
				var counted int64
				status := ""
				if r.summary != nil {
					counted, status = r.summary.Profiles, r.summary.Status
				}
				got := e2etest.Compare(readProfiles(t, tg), want, true).Got
				if r.code != code || status != "interrupted" || int64(got) != counted {
					bad++
					msgs = append(msgs, fmt.Sprintf("exit %d, status %q, %d profiles counted, %d committed", r.code, status, counted, got))
				}
			}
			if bad > 0 {
				t.Errorf("%d of %d interrupts during a checkpoint did not commit what was complete: %q", bad, tries, msgs)
			}
			record(t, figure{Case: "D7: SIGTERM/SIGINT during a checkpoint", Sink: sink, Runs: tries,
				Outcome: fmt.Sprintf("%d of %d runs ended failed with their last checkpoint uncommitted", bad, tries)})
		})
	}
}

// checkpointing reports whether the program is writing a checkpoint: a
// Parquet file being written, or a PostgreSQL statement of the program
// running.
func checkpointing(tg target) bool {
	if tg.sink == "parquet" {
		m, _ := filepath.Glob(filepath.Join(tg.out, "profiles", ".tmp-*"))
		return len(m) > 0
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, tg.url)
	if err != nil {
		return false
	}
	defer conn.Close(ctx)
	var n int
	conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE application_name = 'klaviyo-etl'
		AND datname = current_database() AND state IN ('active', 'idle in transaction')`).Scan(&n)
	return n > 0
}
