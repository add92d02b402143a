package reliability

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/klaviyo-etl/klaviyo-etl/extract/klaviyosim"
	"github.com/klaviyo-etl/klaviyo-etl/internal/e2etest"
	"github.com/klaviyo-etl/klaviyo-etl/internal/pgtest"
)

type pgParams struct {
	profiles, pageSize int
	repeat             int // times each fault hits one run
}

func pgSizes() pgParams {
	return pick(pgParams{profiles: 6000, pageSize: 50, repeat: 1}, pgParams{profiles: 50000, pageSize: 100, repeat: 3})
}

// waitFor polls cond every 50 ms until it holds; it fails t after timeout.
// exec runs one statement on url; errors are returned, not fatal. The
// statement may hold a lock for seconds (statement-timeout).
func execSQL(url, sql string, args ...any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql, args...)
	return err
}

// committedProfiles counts the profiles committed so far, -1 when the table
// cannot be read (not yet created, server down).
func committedProfiles(url string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return -1
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM `+pgx.Identifier{pgSchema, "profiles"}.Sanitize()).Scan(&n); err != nil {
		return -1
	}
	return n
}

// sinkReplays counts the checkpoints the PostgreSQL sink replayed after a
// transient failure, from the program's debug log.
func sinkReplays(rs ...result) int64 {
	var n int
	for _, r := range rs {
		n += strings.Count(r.stderr, "transient failure; replaying checkpoint")
	}
	return int64(n)
}

// pgFault breaks the server while a run is in progress; the run is pr.
type pgFault struct {
	name, desc string
	before     func(t *testing.T, srv *pgtest.Server, url string) // before the run starts
	hit        func(t *testing.T, srv *pgtest.Server, url string, pr *proc)
	after      func(t *testing.T, srv *pgtest.Server, url string) // before the rerun, when there is one
	// mustFail says the run cannot get through (the rerun completes it).
	mustFail bool
	message  string // what the failure message must contain
}

// TestPostgresFailures breaks PostgreSQL under a running export: the
// server restarted with fast and with immediate shutdown, the run's
// connection ended with pg_terminate_backend, a statement timeout, and the
// server down for longer than the sink retries. The run must get through
// (the sink replays the checkpoint on a new connection) or fail cleanly
// with exit 1 and a clear message; the next run must leave the table equal
// to the data set. The cluster is private: the other tests keep theirs.
func TestPostgresFailures(t *testing.T) {
	t.Parallel()
	p := pgSizes()
	srv := pgtest.NewServer(t)
	faults := []pgFault{
		{name: "restart-fast", desc: "PostgreSQL restarted (fast shutdown) mid-run",
			hit: func(t *testing.T, srv *pgtest.Server, url string, pr *proc) { srv.Restart(t, pgtest.Fast) }},
		{name: "restart-immediate", desc: "PostgreSQL restarted (immediate shutdown, crash recovery) mid-run",
			hit: func(t *testing.T, srv *pgtest.Server, url string, pr *proc) { srv.Restart(t, pgtest.Immediate) }},
		{name: "terminate-backend", desc: "the run's connection ended with pg_terminate_backend",
			hit: func(t *testing.T, srv *pgtest.Server, url string, pr *proc) {
				err := execSQL(url, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
					WHERE application_name = 'klaviyo-etl' AND datname = current_database()`)
				if err != nil {
					t.Errorf("terminate: %v", err)
				}
			}},
		{name: "statement-timeout", desc: "statement_timeout 2s hit (profiles locked by another session for 8 s)",
			before: func(t *testing.T, srv *pgtest.Server, url string) {
				db := dbName(t, url)
				// It bounds every statement of the run, COPY included, which
				// lasts as long as a race-built program on a busy machine
				// takes to stream its rows: only the lock may reach it.
				if err := execSQL(url, `ALTER DATABASE `+pgx.Identifier{db}.Sanitize()+` SET statement_timeout = '2s'`); err != nil {
					t.Fatal(err)
				}
			},
			hit: func(t *testing.T, srv *pgtest.Server, url string, pr *proc) {
				// Hold the table long enough for the run's next checkpoint to
				// wait on it past its statement timeout.
				err := execSQL(url, `BEGIN; SET LOCAL lock_timeout = '20s'; SET LOCAL statement_timeout = 0;
					LOCK TABLE `+pgx.Identifier{pgSchema, "profiles"}.Sanitize()+` IN ACCESS EXCLUSIVE MODE;
					SELECT pg_sleep(8); COMMIT`)
				if err != nil {
					t.Errorf("lock the table: %v", err)
				}
			},
			after: func(t *testing.T, srv *pgtest.Server, url string) {
				if err := execSQL(url, `ALTER DATABASE `+pgx.Identifier{dbName(t, url)}.Sanitize()+` RESET statement_timeout`); err != nil {
					t.Fatal(err)
				}
			},
			mustFail: true, message: "statement timeout"},
		{name: "server-down", desc: "PostgreSQL down until the run gives up",
			hit: func(t *testing.T, srv *pgtest.Server, url string, pr *proc) {
				srv.Stop(t, pgtest.Fast)
				e2etest.WaitFor(t, 2*time.Minute, "the run to give up", pr.exited)
				srv.StartAgain(t)
			},
			mustFail: true, message: "connect"},
	}
	for _, f := range faults {
		t.Run(f.name, func(t *testing.T) {
			url := srv.NewDatabase(t)
			tg := target{sink: "postgres", url: url}
			sim := newSim(t, klaviyosim.Config{Profiles: p.profiles, Seed: 31, Latency: 30 * time.Millisecond, Jitter: 0.5,
				Unlimited: true, DisableGzip: true})
			want := sim.Profiles()
			if f.before != nil {
				f.before(t, srv, url)
			}
			sp := spec{args: tg.args(append([]string{"--concurrency", "2", "--page-size", strconv.Itoa(p.pageSize),
				"--checkpoint-rows", "500", "--log-level", "debug"}, fastBudget...)...), env: tg.env(sim)}
			pr := start(t, sp)
			hits := 0
			for i := range p.repeat {
				// Strike once some checkpoints are committed, spread over the run.
				goal := p.profiles * (i + 1) / (p.repeat + 2)
				e2etest.WaitFor(t, 2*time.Minute, "committed profiles", func() bool { return committedProfiles(url) >= goal || pr.exited() })
				if pr.exited() {
					break
				}
				f.hit(t, srv, url, pr)
				hits++
			}
			first := pr.wait(t)
			runs := []result{first}
			outcome := "exit 0 (sink replayed the checkpoint), exact"
			switch {
			case hits == 0:
				t.Fatalf("the run ended before the fault: %v", first)
			case first.code == 0 && !f.mustFail:
			case first.code == 1:
				msg := first.message()
				if f.message != "" && !strings.Contains(msg, f.message) {
					t.Errorf("message %q does not name the failure (%q)", msg, f.message)
				}
				if strings.Contains(msg, "panic") || msg == "" {
					t.Errorf("unclear failure: %v", first)
				}
				if f.after != nil {
					f.after(t, srv, url)
				}
				next := run(t, sp)
				runs = append(runs, next)
				if next.code != 0 {
					t.Fatalf("the run after the failure: %v", next)
				}
				outcome = fmt.Sprintf("exit 1 (%s), rerun exact", clip(msg, 160))
			default:
				t.Fatalf("%v", first)
			}
			tl := checkExact(t, tg, want)
			record(t, figure{Case: f.desc + fmt.Sprintf(" ×%d, %d profiles", hits, p.profiles), Sink: "postgres", Runs: len(runs),
				Outcome: outcome, Lost: tl.Lost, Dups: tl.Duplicates, Retries: retriesOf(runs...) + sinkReplays(runs...),
				PeakRSS: peakRSS(runs...), Seconds: wallOf(runs...).Seconds(),
				Extra: fmt.Sprintf("%d checkpoint replays by the sink", sinkReplays(runs...))})
		})
	}
}

func dbName(t testing.TB, url string) string {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Database
}

// clip shortens s to about n bytes, keeping its start and its end (where
// the cause is).
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	head, tail := n/2, n-n/2
	return strings.ToValidUTF8(s[:head], "") + " … " + strings.ToValidUTF8(s[len(s)-tail:], "")
}
