package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/klaviyo-etl/klaviyo-etl/extract"
	"github.com/klaviyo-etl/klaviyo-etl/internal/pgtest"
)

// Scenario names accepted by -scenarios, in the order they run.
const (
	scParquet     = "parquet"      // pipeline: simulator → Parquet
	scParquetFile = "parquet-file" // pipeline: NDJSON file → Parquet (no HTTP, no simulator)
	scPostgres    = "postgres"     // pipeline: simulator → PostgreSQL (first backfill, upserts)
	scDuckDB      = "duckdb"       // ceilings: DuckDB, pages and NDJSON records → Parquet
	scCopy        = "copy"         // ceiling: COPY (and staging + upsert) of the same rows
	scBudget      = "budget"       // budget use against a latency-bound simulator
	scMemory      = "memory"       // peak RSS of the pipeline at the smallest and largest size
)

var allScenarios = []string{scDuckDB, scParquet, scParquetFile, scCopy, scPostgres, scBudget, scMemory}

// groups are the names of the scenario families.
var groups = map[string][]string{
	"all":      allScenarios,
	"pipeline": {scParquet, scPostgres},
	"ceilings": {scDuckDB, scCopy},
}

// options are the parsed flags.
type options struct {
	scenarios   map[string]bool
	profiles    []int
	databaseURL string
	writeDoc    string
	quick       bool
	concurrency int
	cpuProfile  string
	memProfile  string
	simProcess  bool
	simCache    bool
	lean        bool
	sinkLog     bool
	gzip        bool
	budget      budgetSpec
	budgetRows  int
	repeat      int
	args        []string
}

func parseOptions(args []string, stderr io.Writer) (*options, error) {
	fs := flag.NewFlagSet("klaviyo-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	scen := fs.String("scenarios", "all", "comma list of "+strings.Join(allScenarios, ", ")+" (or pipeline, ceilings, all)")
	prof := fs.String("profiles", "100000,1000000", "comma list of account sizes for the throughput scenarios")
	dbURL := fs.String("database-url", "", "PostgreSQL to use (schemas kb_* are created and dropped); default: start a throwaway cluster")
	writeDoc := fs.String("write-doc", "", "regenerate the marked section of this Markdown file (docs/performance.md)")
	quick := fs.Bool("quick", false, "small sizes and a short budget run: a smoke test, figures mean little")
	conc := fs.String("concurrency", "auto", "pipeline scenarios: time slices walked at once, N or auto")
	cpu := fs.String("cpuprofile", "", "write a CPU profile of every timed part (and of the simulator) into this folder")
	mem := fs.String("memprofile", "", "write a heap profile of every timed part, taken at its peak, into this folder")
	simProc := fs.Bool("sim-process", true, "serve the simulator from a process of its own, so the pipeline's RSS and allocations are its own")
	simCache := fs.Bool("sim-cache", true, "with -sim-process: the simulator renders every profile once before the timed run and serves copies, as an API's servers would without the client's cores (off: it generates each page as it is asked for, ~1.4 µs of CPU per profile on the cores the pipeline uses)")
	lean := fs.Bool("lean", true, "run every child but DuckDB's from a copy of this binary built without DuckDB, whose ~28 MB would count in every peak RSS (needs the go command and the module's source)")
	gzip := fs.Bool("gzip", false, "pipeline runs: let the simulator gzip its pages, as over a real network (here it caps the simulator, which shares the cores)")
	sinkLog := fs.Bool("sink-log", false, "pipeline runs: write the sinks' debug events (each checkpoint step and its duration) to stderr")
	repeat := fs.Int("repeat", 1, "run the throughput scenarios this many times; the table keeps each one's best rate and its highest peak RSS")
	budgetFor := fs.Duration("budget-duration", 42*time.Second, "how long each budget run lasts (the share is measured over whole 10s steady windows)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: klaviyo-bench [flags]\n\nMeasures klaviyo-etl against DuckDB and PostgreSQL COPY on this machine; see docs/performance.md.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, usageError{err}
	}
	if fs.NArg() > 0 {
		return nil, usagef("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	o := &options{
		scenarios:   map[string]bool{},
		databaseURL: *dbURL,
		writeDoc:    *writeDoc,
		quick:       *quick,
		cpuProfile:  *cpu,
		memProfile:  *mem,
		simProcess:  *simProc,
		simCache:    *simCache,
		lean:        *lean,
		repeat:      *repeat,
		sinkLog:     *sinkLog,
		gzip:        *gzip,
		args:        args,
		budget: budgetSpec{
			Latency:  500 * time.Millisecond,
			Burst:    extract.Rate{N: 50, Per: time.Second},
			Steady:   extract.Rate{N: 300, Per: 10 * time.Second},
			Duration: *budgetFor,
		},
		budgetRows: 200_000,
	}
	for _, s := range strings.Split(*scen, ",") {
		s = strings.TrimSpace(s)
		switch {
		case groups[s] != nil:
			for _, g := range groups[s] {
				o.scenarios[g] = true
			}
		case slices.Contains(allScenarios, s):
			o.scenarios[s] = true
		default:
			return nil, usagef("-scenarios: unknown scenario %q", s)
		}
	}
	if o.scenarios[scMemory] {
		// Memory is read from the pipeline runs.
		o.scenarios[scParquet], o.scenarios[scPostgres] = true, true
	}
	for _, s := range strings.Split(*prof, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(strings.ReplaceAll(s, "_", "")))
		if err != nil || n < 1 || n > 50_000_000 {
			return nil, usagef("-profiles: %q is not a count of profiles (1 to 50,000,000)", s)
		}
		o.profiles = append(o.profiles, n)
	}
	slices.Sort(o.profiles)
	o.profiles = slices.Compact(o.profiles)
	switch *conc {
	case "auto":
	default:
		n, err := strconv.Atoi(*conc)
		if err != nil || n < 1 || n > 1000 {
			return nil, usagef("-concurrency %q: want auto or 1..1000", *conc)
		}
		o.concurrency = n
	}
	if o.repeat < 1 || o.repeat > 20 {
		return nil, usagef("-repeat %d: want 1..20", o.repeat)
	}
	if o.budget.Duration < 2*o.budget.Steady.Per && !o.quick {
		return nil, usagef("-budget-duration %s: at least two steady windows (%s)", o.budget.Duration, 2*o.budget.Steady.Per)
	}
	if o.quick {
		if !flagSet(fs, "profiles") {
			o.profiles = []int{1000, 3000}
		}
		o.budget = budgetSpec{
			Latency: 40 * time.Millisecond,
			Burst:   extract.Rate{N: 20, Per: time.Second},
			Steady:  extract.Rate{N: 30, Per: 2 * time.Second},
			// A steady window and 1.5 s: a race-built run on a busy
			// machine may take a while to send its first request.
			Duration: 3500 * time.Millisecond,
		}
		o.budgetRows = 20_000
	}
	return o, nil
}

func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// run is the bench: it runs every scenario asked for, each in a child
// process, prints one line per scenario and, with -write-doc, the table.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	o, err := parseOptions(args, stderr)
	if err != nil {
		return err
	}
	// Children and simulators write their errors concurrently.
	stderr = &syncWriter{w: stderr}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own binary: %w", err)
	}
	tmp, err := os.MkdirTemp("", "klaviyo-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	for _, d := range []string{o.cpuProfile, o.memProfile} {
		if d != "" {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return fmt.Errorf("profile folder: %w", err)
			}
		}
	}
	b := &bench{o: o, self: self, tmp: tmp, stdout: stdout, stderr: stderr, machine: readMachine(), started: time.Now()}
	if o.scenarios[scDuckDB] && !hasDuckDB {
		return usagef("-scenarios %s: this binary was built with -tags nobenchduckdb", scDuckDB)
	}
	b.lean = b.self
	if o.lean {
		b.lean = b.leanBinary(ctx)
	}
	if o.scenarios[scPostgres] || o.scenarios[scCopy] {
		if err := b.openDatabase(ctx); err != nil {
			return err
		}
		defer b.closeDatabase(ctx)
	}
	fmt.Fprintf(stdout, "klaviyo-bench: %s\n", b.machine.summary())
	for i := range o.repeat {
		if o.repeat > 1 {
			fmt.Fprintf(stdout, "klaviyo-bench: run %d of %d\n", i+1, o.repeat)
		}
		for _, n := range o.profiles {
			if err := b.size(ctx, n); err != nil {
				return err
			}
		}
	}
	if o.scenarios[scBudget] {
		if err := b.budget(ctx); err != nil {
			return err
		}
	}
	table := best(b.rows)
	if o.repeat > 1 {
		fmt.Fprintf(stdout, "klaviyo-bench: best of %d runs\n", o.repeat)
		for _, r := range table {
			fmt.Fprintln(stdout, r.line())
		}
	}
	if o.scenarios[scMemory] {
		for _, r := range memoryRows(table, o.profiles) {
			fmt.Fprintln(stdout, r.line())
			table = append(table, r)
		}
	}
	if o.writeDoc != "" {
		if err := writeDoc(o.writeDoc, b.docSection(table)); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "klaviyo-bench: wrote the table into %s\n", o.writeDoc)
	}
	return nil
}

// bench is one invocation's state.
type bench struct {
	o          *options
	self       string // runs the DuckDB child
	lean       string // runs every other child (see leanBinary)
	leanFailed bool
	tmp        string
	stdout     io.Writer
	stderr     io.Writer
	machine    machine
	started    time.Time

	dbURL   string
	pg      *pgtest.Server
	schemas []string // created, dropped at the end

	rows []row // every measurement, repeats included, in order
}

func (b *bench) openDatabase(ctx context.Context) error {
	if b.o.databaseURL != "" {
		b.dbURL = b.o.databaseURL
		return nil
	}
	pg, err := pgtest.StartLocal()
	if err != nil {
		return fmt.Errorf("start PostgreSQL (or pass -database-url): %w", err)
	}
	b.pg, b.dbURL = pg, pg.URL("postgres")
	b.machine.postgres = pg.Version()
	return nil
}

func (b *bench) closeDatabase(ctx context.Context) {
	b.dropSchemas(ctx)
	if b.pg != nil {
		if err := b.pg.Close(); err != nil {
			fmt.Fprintf(b.stderr, "klaviyo-bench: stopping PostgreSQL: %v\n", err)
		}
	}
}

// dropSchemas drops the schemas the bench created so far: each size
// starts with a database as empty as it found it. It runs after an
// interruption too.
func (b *bench) dropSchemas(ctx context.Context) {
	if len(b.schemas) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, b.dbURL)
	if err != nil {
		fmt.Fprintf(b.stderr, "klaviyo-bench: dropping the bench's schemas: %v\n", err)
		return
	}
	defer conn.Close(ctx)
	for _, s := range b.schemas {
		if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{s}.Sanitize()+" CASCADE"); err != nil {
			fmt.Fprintf(b.stderr, "klaviyo-bench: drop schema %s: %v\n", s, err)
		}
	}
	b.schemas = nil
}

// checkpoint has PostgreSQL write out its dirty buffers before a timed
// part, so that none starts while the server is still flushing what the
// previous one wrote (gigabytes at 1,000,000 profiles). Best effort: a
// -database-url role without the right to CHECKPOINT just goes on.
func (b *bench) checkpoint(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, b.dbURL)
	if err != nil {
		return
	}
	defer conn.Close(ctx)
	settle(ctx, conn)
}

// schema returns a new schema name for one scenario.
func (b *bench) schema(what string, n int) string {
	var r [3]byte
	rand.Read(r[:])
	s := fmt.Sprintf("kb_%s_%d_%s", what, n, hex.EncodeToString(r[:]))
	b.schemas = append(b.schemas, s, s+"_upsert")
	return s
}

// size runs the throughput scenarios for an account of n profiles.
func (b *bench) size(ctx context.Context, n int) error {
	o := b.o
	dir := filepath.Join(b.tmp, strconv.Itoa(n))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	defer b.dropSchemas(ctx)
	records, pages := filepath.Join(dir, "records.ndjson"), filepath.Join(dir, "pages.ndjson")
	if o.scenarios[scDuckDB] || o.scenarios[scCopy] || o.scenarios[scParquetFile] {
		if _, err := b.child(ctx, childSpec{Kind: kindDump, Profiles: n, Seed: 1, Records: records, Pages: pages}); err != nil {
			return fmt.Errorf("dump %d records: %w", n, err)
		}
	}
	if o.scenarios[scDuckDB] {
		for _, d := range []struct{ format, scenario, is string }{
			{"pages", "ceiling: DuckDB, pages file → Parquet (zstd)", ceilDuckDB},
			{"records", "ceiling: DuckDB, NDJSON records file → Parquet (zstd)", ceilDuckDBRecords},
		} {
			spec := childSpec{Kind: kindDuckDB, Profiles: n, Records: records, Pages: pages, Format: d.format,
				Dir: b.scratch(dir), CPUProfile: b.profile(n, "duckdb-"+d.format)}
			r, err := b.child(ctx, spec)
			if err != nil {
				return fmt.Errorf("duckdb %s, %d profiles: %w", d.format, n, err)
			}
			os.RemoveAll(spec.Dir)
			b.add(row{Scenario: d.scenario, n: n, m: r.ms[0], rss: r.rss, is: d.is})
		}
	}
	if o.scenarios[scParquet] {
		r, err := b.pipeline(ctx, childSpec{Kind: kindPipeline, Sink: "parquet", Profiles: n, Seed: 1, Dir: b.scratch(dir)}, "parquet")
		if err != nil {
			return fmt.Errorf("parquet pipeline, %d profiles: %w", n, err)
		}
		b.add(row{Scenario: "klaviyo-etl: simulator → Parquet", n: n, m: r.ms[0], rss: r.rss, vs: ceilDuckDB, want: 2, memLabel: "Parquet"})
	}
	if o.scenarios[scParquetFile] {
		r, err := b.child(ctx, childSpec{Kind: kindPipeline, Sink: "parquet", Profiles: n, Records: records, Dir: b.scratch(dir), CPUProfile: b.profile(n, "parquet-file")})
		if err != nil {
			return fmt.Errorf("parquet pipeline from a file, %d profiles: %w", n, err)
		}
		b.add(row{Scenario: "klaviyo-etl: NDJSON records file → Parquet (no HTTP)", n: n, m: r.ms[0], rss: r.rss, vs: ceilDuckDBRecords})
	}
	if o.scenarios[scCopy] {
		b.checkpoint(ctx)
		r, err := b.child(ctx, childSpec{Kind: kindCopy, Profiles: n, Records: records, DatabaseURL: b.dbURL, Schema: b.schema("copy", n), CPUProfile: b.profile(n, "copy")})
		if err != nil {
			return fmt.Errorf("copy ceilings, %d profiles: %w", n, err)
		}
		for _, m := range r.ms {
			switch m.Name {
			case "copy":
				b.add(row{Scenario: "ceiling: COPY into an empty profiles table", n: n, m: m, rss: r.rss, is: ceilCopy})
			case "copy-bare":
				b.add(row{Scenario: "context: COPY into a table without key or indexes", n: n, m: m, rss: r.rss, vs: ceilCopy})
			case "copy-upsert-new":
				b.add(row{Scenario: "ceiling: COPY to staging + INSERT … ON CONFLICT, new rows", n: n, m: m, rss: r.rss, vs: ceilCopy})
			case "copy-upsert-existing":
				b.add(row{Scenario: "ceiling: COPY to staging + INSERT … ON CONFLICT, rows existing", n: n, m: m, rss: r.rss, vs: ceilCopy})
			}
		}
	}
	if o.scenarios[scPostgres] {
		first := b.schema("pg", n)
		spec := childSpec{Kind: kindPipeline, Sink: "postgres", Profiles: n, Seed: 1, DatabaseURL: b.dbURL, Schema: first}
		b.checkpoint(ctx)
		r, err := b.pipeline(ctx, spec, "postgres-first")
		if err != nil {
			return fmt.Errorf("postgres pipeline, %d profiles: %w", n, err)
		}
		b.add(row{Scenario: "klaviyo-etl: simulator → PostgreSQL, first backfill (empty tables)", n: n, m: r.ms[0], rss: r.rss, vs: ceilCopy, want: 0.9, memLabel: "PostgreSQL (first backfill)"})

		// The same account read again: every row exists, and goes
		// through staging and the merge.
		spec.Since = since
		b.checkpoint(ctx)
		r, err = b.pipeline(ctx, spec, "postgres-existing")
		if err != nil {
			return fmt.Errorf("postgres pipeline again, %d profiles: %w", n, err)
		}
		b.add(row{Scenario: "klaviyo-etl: simulator → PostgreSQL, incremental, every row existing", n: n, m: r.ms[0], rss: r.rss, vs: ceilCopy, want: 0.6})

		// New rows into tables that already hold others (another
		// account's 1,000 profiles): staging and the merge as well.
		other := b.schema("pgnew", n)
		seedRows := min(1000, n)
		if _, err := b.pipeline(ctx, childSpec{Kind: kindPipeline, Sink: "postgres", Profiles: seedRows, Seed: 2, DatabaseURL: b.dbURL, Schema: other}, ""); err != nil {
			return fmt.Errorf("postgres pipeline, seeding: %w", err)
		}
		spec = childSpec{Kind: kindPipeline, Sink: "postgres", Profiles: n, Seed: 1, DatabaseURL: b.dbURL, Schema: other, Since: since}
		b.checkpoint(ctx)
		r, err = b.pipeline(ctx, spec, "postgres-new")
		if err != nil {
			return fmt.Errorf("postgres pipeline, new rows, %d profiles: %w", n, err)
		}
		b.add(row{Scenario: "klaviyo-etl: simulator → PostgreSQL, incremental, new rows", n: n, m: r.ms[0], rss: r.rss, vs: ceilCopy, want: 0.6})
	}
	return nil
}

// scratch returns a new empty folder under dir.
func (b *bench) scratch(dir string) string {
	d, err := os.MkdirTemp(dir, "run-")
	if err != nil {
		return dir
	}
	return d
}

// profile is the CPU profile path of a scenario, "" without -cpuprofile.
func (b *bench) profile(n int, name string) string {
	if b.o.cpuProfile == "" {
		return ""
	}
	return filepath.Join(b.o.cpuProfile, fmt.Sprintf("%d-%s.pprof", n, name))
}

// memProfile is the heap profile path of a scenario, "" without
// -memprofile.
func (b *bench) memProfile(n int, name string) string {
	if b.o.memProfile == "" {
		return ""
	}
	return filepath.Join(b.o.memProfile, fmt.Sprintf("%d-%s.heap.pprof", n, name))
}

// pipeline runs a pipeline child, serving the simulator from a sim child
// of its own unless -sim-process=false. An empty name runs it untimed
// (setup): no profile is written.
func (b *bench) pipeline(ctx context.Context, spec childSpec, name string) (childRun, error) {
	spec.Concurrency = b.o.concurrency
	spec.SinkLog = b.o.sinkLog
	spec.Gzip = b.o.gzip
	if name != "" {
		spec.CPUProfile = b.profile(spec.Profiles, name)
		spec.MemProfile = b.memProfile(spec.Profiles, name)
	}
	if !b.o.simProcess {
		return b.child(ctx, spec)
	}
	simSpec := childSpec{Kind: kindSim, Profiles: spec.Profiles, Seed: spec.Seed, Gzip: spec.Gzip, NoSimCache: !b.o.simCache}
	if name != "" {
		simSpec.CPUProfile = b.profile(spec.Profiles, name+"-sim")
	}
	sim, err := b.startSim(ctx, simSpec)
	if err != nil {
		return childRun{}, err
	}
	spec.SimURL = sim.url
	r, err := b.child(ctx, spec)
	if serr := sim.stop(); serr != nil && err == nil {
		err = serr
	}
	return r, err
}

// childRun is what one child reported.
type childRun struct {
	ms  []measurement
	rss int64 // peak RSS (Rusage.Maxrss), bytes
}

// child runs one child process to its end, through a spawner (see
// spawnFlag).
func (b *bench) child(ctx context.Context, spec childSpec) (childRun, error) {
	arg, err := json.Marshal(spec)
	if err != nil {
		return childRun{}, err
	}
	bin := b.lean
	if spec.Kind == kindDuckDB {
		bin = b.self
	}
	cmd := exec.CommandContext(ctx, b.lean, spawnFlag, bin, string(arg))
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = b.stderr
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 30 * time.Second
	if err := cmd.Run(); err != nil {
		return childRun{}, fmt.Errorf("child %s: %w", spec.Kind, err)
	}
	line := bytes.TrimSpace(out.Bytes())
	if i := bytes.LastIndexByte(line, '\n'); i >= 0 {
		line = line[i+1:]
	}
	var rep childReport
	if err := json.Unmarshal(line, &rep); err != nil {
		return childRun{}, fmt.Errorf("child %s: its report: %w", spec.Kind, err)
	}
	if rep.HWM > 0 && float64(rep.PeakRSS) > float64(rep.HWM)*1.05+4e6 {
		fmt.Fprintf(b.stderr, "klaviyo-bench: child %s: Rusage.Maxrss %s is above its own VmHWM %s\n", spec.Kind, mb(rep.PeakRSS), mb(rep.HWM))
	}
	return childRun{ms: rep.Measurements, rss: rep.PeakRSS}, nil
}

// simChild is a running sim child.
type simChild struct {
	url   string
	cmd   *exec.Cmd
	stdin io.WriteCloser
}

func (b *bench) startSim(ctx context.Context, spec childSpec) (*simChild, error) {
	arg, _ := json.Marshal(spec)
	cmd := exec.CommandContext(ctx, b.lean, childFlag, string(arg))
	cmd.Stderr = b.stderr
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 15 * time.Second
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("simulator child: %w", err)
	}
	s := &simChild{cmd: cmd, stdin: stdin}
	line, err := bufio.NewReader(stdout).ReadBytes('\n')
	var addr simAddr
	if err == nil {
		err = json.Unmarshal(line, &addr)
	}
	if err != nil || addr.URL == "" {
		s.stop()
		return nil, fmt.Errorf("simulator child did not start: %v", err)
	}
	s.url = addr.URL
	return s, nil
}

// stop closes the sim child's stdin, which ends it, and waits for it.
func (s *simChild) stop() error {
	s.stdin.Close()
	if err := s.cmd.Wait(); err != nil {
		return fmt.Errorf("simulator child: %w", err)
	}
	return nil
}

// budget runs the budget scenario with --concurrency auto and 1.
func (b *bench) budget(ctx context.Context) error {
	for _, c := range []int{0, 1} {
		spec := childSpec{Kind: kindBudget, Profiles: b.o.budgetRows, Seed: 1, Dir: b.scratch(b.tmp), Concurrency: c, Budget: b.o.budget}
		r, err := b.child(ctx, spec)
		if err != nil {
			return fmt.Errorf("budget, concurrency %d: %w", c, err)
		}
		os.RemoveAll(spec.Dir)
		name := "auto"
		if c > 0 {
			name = strconv.Itoa(c)
		}
		bs := b.o.budget
		rw := row{
			Scenario: fmt.Sprintf("budget: %s ±20%% latency, %s burst, %s steady, --concurrency %s", bs.Latency, bs.Burst, bs.Steady, name),
			n:        b.o.budgetRows, m: r.ms[0], rss: r.rss, budget: true,
		}
		if c == 0 {
			rw.want = 0.95
		}
		b.add(rw)
	}
	return nil
}

// add prints a measurement and keeps it. Its ratio is to the best
// ceiling measured so far at its size.
func (b *bench) add(r row) {
	r.setRatio(b.rows)
	b.rows = append(b.rows, r)
	fmt.Fprintln(b.stdout, r.line())
}

// syncWriter serialises writes from several goroutines.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
