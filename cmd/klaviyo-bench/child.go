package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"time"
)

// childFlag is the hidden first argument that makes the binary run one
// scenario as a child of the bench (the test binary honours it too, from
// TestMain): each scenario gets a process of its own, so its peak RSS is
// its own and no heap or goroutine of one scenario slows the next.
const childFlag = "-child"

// Child kinds.
const (
	kindSim      = "sim"      // serve the simulator until stdin closes
	kindDump     = "dump"     // write the simulator's pages and records to files, one per line
	kindPipeline = "pipeline" // pipeline.Run from the simulator (or a file) into a sink
	kindDuckDB   = "duckdb"   // DuckDB: pages or records → flattened Parquet
	kindCopy     = "copy"     // pgx CopyFrom ceilings
	kindBudget   = "budget"   // rate budget use against a latency-bound simulator
)

// childSpec is what the parent asks a child to do, passed as JSON after
// childFlag.
type childSpec struct {
	Kind     string `json:"kind"`
	Profiles int    `json:"profiles"`
	Seed     int64  `json:"seed"`
	// Sink is parquet or postgres (pipeline).
	Sink string `json:"sink,omitempty"`
	// SimURL is a simulator served by a sim child; empty means one in the
	// child's own process.
	SimURL string `json:"sim_url,omitempty"`
	// Records is the NDJSON file of records (dump writes it; duckdb, copy
	// and a file pipeline read it).
	Records string `json:"records,omitempty"`
	// Pages is the file of the pages as served, one per line (dump writes
	// it; duckdb reads it when Format is "pages").
	Pages       string     `json:"pages,omitempty"`
	Format      string     `json:"format,omitempty"` // duckdb: "pages" or "records"
	Dir         string     `json:"dir,omitempty"`    // scratch folder of the child
	DatabaseURL string     `json:"database_url,omitempty"`
	Schema      string     `json:"schema,omitempty"`
	Since       time.Time  `json:"since,omitzero"`
	Concurrency int        `json:"concurrency,omitempty"` // 0 = auto
	CPUProfile  string     `json:"cpu_profile,omitempty"`
	MemProfile  string     `json:"mem_profile,omitempty"`
	SinkLog     bool       `json:"sink_log,omitempty"`     // the sink's debug events to stderr
	Gzip        bool       `json:"gzip,omitempty"`         // the simulator compresses pages
	NoSimCache  bool       `json:"no_sim_cache,omitempty"` // a sim child generates every page as asked
	Budget      budgetSpec `json:"budget,omitzero"`
}

// measurement is one timed figure a child reports.
type measurement struct {
	Name        string  `json:"name"`
	Rows        int64   `json:"rows"` // profiles written, converted or copied
	Seconds     float64 `json:"seconds"`
	JSONBytes   int64   `json:"json_bytes"`
	Mallocs     uint64  `json:"mallocs"` // Go heap allocations in the timed part; 0 when not measured
	OutBytes    int64   `json:"out_bytes,omitempty"`
	Requests    int64   `json:"requests,omitempty"`
	RateLimited int64   `json:"rate_limited,omitempty"`
	// Budget: share of the steady window used over the measured span, and
	// how long that span was.
	SteadyShare float64 `json:"steady_share,omitempty"`
	SpanSeconds float64 `json:"span_seconds,omitempty"`
	InFlightMax int64   `json:"in_flight_max,omitempty"`
	Rejects     int64   `json:"rejects,omitempty"`
	AllocsValid bool    `json:"allocs_valid,omitempty"`
	// Pipeline stages (see stages): seconds the page callback ran (the
	// runner busy), and seconds in the sink's Write and Commit in all.
	Busy       float64 `json:"busy,omitempty"`
	SinkWrite  float64 `json:"sink_write,omitempty"`
	SinkCommit float64 `json:"sink_commit,omitempty"`
}

// childReport is the last line a child writes on stdout, completed by the
// spawner with the child's peak RSS.
type childReport struct {
	Measurements []measurement `json:"measurements"`
	// HWM is the child's own VmHWM (/proc/self/status) at its end: a
	// cross-check of PeakRSS.
	HWM int64 `json:"hwm,omitempty"`
	// PeakRSS is Rusage.Maxrss of the child as its spawner waited for it.
	PeakRSS int64 `json:"peak_rss,omitempty"`
}

// childMain runs one child and writes its report as one JSON line on
// stdout. It returns the process exit code.
func childMain(ctx context.Context, arg string, stdin io.Reader, stdout, stderr io.Writer) int {
	var spec childSpec
	if err := json.Unmarshal([]byte(arg), &spec); err != nil {
		fmt.Fprintf(stderr, "klaviyo-bench child: spec: %v\n", err)
		return 2
	}
	ms, err := runChild(ctx, spec, stdin, stdout)
	if err != nil {
		fmt.Fprintf(stderr, "klaviyo-bench child %s: %v\n", spec.Kind, err)
		return 1
	}
	if spec.Kind == kindSim {
		return 0
	}
	line, err := json.Marshal(childReport{Measurements: ms, HWM: ownHWM()})
	if err != nil {
		fmt.Fprintf(stderr, "klaviyo-bench child %s: %v\n", spec.Kind, err)
		return 1
	}
	fmt.Fprintf(stdout, "%s\n", line)
	return 0
}

// spawnFlag is the hidden first argument of the spawner, the process
// between the bench and each child (bin -spawn childBin spec). Go starts
// processes with vfork, and Linux then records the parent's peak RSS as
// the child's starting Rusage.Maxrss: a child of the bench would report
// at least the bench's own peak. The spawner, small and fresh from exec,
// is the child's parent instead; it reports the child's Maxrss.
const spawnFlag = "-spawn"

// spawnMain runs bin as a child with spec, and writes the child's report
// with its peak RSS as one JSON line on stdout.
func spawnMain(ctx context.Context, bin, spec string, stdout, stderr io.Writer) int {
	cmd := exec.CommandContext(ctx, bin, childFlag, spec)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, stderr
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 15 * time.Second
	if err := cmd.Run(); err != nil {
		fmt.Fprintf(stderr, "klaviyo-bench: child: %v\n", err)
		return 1
	}
	var rep childReport
	line := bytes.TrimSpace(out.Bytes())
	if i := bytes.LastIndexByte(line, '\n'); i >= 0 {
		line = line[i+1:]
	}
	if err := json.Unmarshal(line, &rep); err != nil {
		fmt.Fprintf(stderr, "klaviyo-bench: child report %q: %v\n", line, err)
		return 1
	}
	rep.PeakRSS = peakRSS(cmd.ProcessState)
	b, _ := json.Marshal(rep)
	fmt.Fprintf(stdout, "%s\n", b)
	return 0
}

func runChild(ctx context.Context, spec childSpec, stdin io.Reader, stdout io.Writer) ([]measurement, error) {
	switch spec.Kind {
	case kindSim:
		return nil, serveSim(ctx, spec, stdin, stdout)
	case kindDump:
		return nil, dumpRecords(ctx, spec)
	case kindPipeline:
		return runPipeline(ctx, spec)
	case kindDuckDB:
		return runDuckDB(ctx, spec)
	case kindCopy:
		return runCopy(ctx, spec)
	case kindBudget:
		return runBudget(ctx, spec)
	}
	return nil, fmt.Errorf("unknown child kind %q", spec.Kind)
}

// timed runs fn between a GC and two reads of the allocation counter,
// under a CPU profile when one is asked for.
func timed(spec childSpec, m *measurement, fn func() error) error {
	if spec.CPUProfile != "" {
		f, err := os.Create(spec.CPUProfile)
		if err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	if spec.MemProfile != "" {
		stop := sampleHeap(spec.MemProfile)
		defer stop()
	}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	err := fn()
	m.Seconds = time.Since(start).Seconds()
	runtime.ReadMemStats(&after)
	m.Mallocs = after.Mallocs - before.Mallocs
	m.AllocsValid = true
	return err
}

// sampleHeap writes a heap profile to path whenever the heap in use is
// larger than at the previous sample (every 250ms), so that the file ends
// up describing the heap at its peak; stop ends the sampling.
func sampleHeap(path string) (stop func()) {
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		var peak uint64
		for {
			select {
			case <-quit:
				return
			case <-t.C:
			}
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse <= peak {
				continue
			}
			peak = ms.HeapInuse
			if f, err := os.Create(path); err == nil {
				pprof.Lookup("heap").WriteTo(f, 0)
				f.Close()
			}
		}
	}()
	return func() { close(quit); <-done }
}
