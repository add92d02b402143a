// Command klaviyo-bench measures klaviyo-etl against the ceilings of the
// same machine and writes the figures into docs/performance.md.
//
// Usage:
//
//	go run ./cmd/klaviyo-bench [flags]
//	go run ./cmd/klaviyo-bench -write-doc docs/performance.md   # the published table
//	go run ./cmd/klaviyo-bench -quick                           # a smoke test, seconds
//
// Scenarios (-scenarios, a comma list; default all), each printing one
// line of figures (profiles/s, MB/s of JSON, Go allocations per profile,
// peak RSS, the ratio to its ceiling and whether the target is met):
//
//	duckdb        ceilings: DuckDB (github.com/duckdb/duckdb-go/v2) converts
//	              the simulator's pages (one JSON document per line), and
//	              its records (NDJSON), into one zstd Parquet file of
//	              schema.Profiles' columns; only its COPY statement is timed
//	parquet       klaviyo-etl: the simulator → Parquet, wired as
//	              cmd/klaviyo-etl wires it (target: ≥ 2× DuckDB on the pages)
//	parquet-file  klaviyo-etl reading the NDJSON records instead of HTTP:
//	              the pipeline without the simulator, on DuckDB's input
//	copy          ceilings: pgx CopyFrom of the same rows (built from the
//	              same Arrow records) into an empty profiles table, and
//	              COPY to staging + INSERT … ON CONFLICT DO UPDATE for new
//	              and for existing rows
//	postgres      klaviyo-etl: the simulator → PostgreSQL: a first
//	              backfill into empty tables (target ≥ 90% of COPY), the
//	              same account again (every row existing) and an account
//	              into tables holding another one (new rows), both through
//	              staging and the merge (target ≥ 60% of COPY)
//	budget        a simulator answering in 500ms ±20% with a 50/1s burst
//	              and a 300/10s steady budget, --concurrency auto beside
//	              --concurrency 1: share of the steady budget used and 429s
//	              provoked over whole steady windows of a 42 s run (target
//	              ≥ 95% and none)
//	memory        peak RSS of the Parquet and PostgreSQL runs at the
//	              smallest and largest -profiles (target ≤ 200 MB, and
//	              within 10% of the smallest)
//
// pipeline names parquet,postgres; ceilings names duckdb,copy.
//
// Every scenario runs in a child process (this binary again, with a
// hidden -child argument), so its peak RSS (Rusage.Maxrss) and
// allocations are its own; a small spawner process sits between the bench
// and each child, because a process started by Go (vfork) starts with its
// parent's peak RSS in Rusage.Maxrss. The children run a copy of the bench
// built without DuckDB (-tags nobenchduckdb), except DuckDB's: linking
// DuckDB adds ~28 MB to every process. The throughput scenarios serve the
// simulator from a process of its own (-sim-process), unlimited, without
// latency and without gzip (compressing every page on the same 2 cores
// would cap the simulator itself), on synthetic accounts of -profiles
// profiles (default 100,000 and 1,000,000) of ~1.6 KB of JSON each, read in
// pages of 100.
//
// PostgreSQL is the -database-url given (schemas kb_* are created and
// dropped), or a throwaway cluster from internal/pgtest.StartLocal, the one
// the tests use (the machine's binaries, as the postgres user when running
// as root; fsync and full_page_writes off).
//
// Flags:
//
//	-scenarios LIST     scenarios to run (default all)
//	-profiles LIST      account sizes (default 100000,1000000)
//	-database-url URL   PostgreSQL to use instead of a throwaway cluster
//	-write-doc FILE     regenerate the section between the klaviyo-bench
//	                    markers of FILE (appended when absent)
//	-quick              1,000 and 3,000 profiles and a 3.5 s budget run
//	-concurrency N|auto time slices of the throughput runs (default auto)
//	-cpuprofile DIR     CPU profile of every timed part and simulator
//	-memprofile DIR     heap profile of every pipeline run at its peak
//	-sim-process=false  serve the simulator inside the pipeline's process
//	-lean=false         run every child from this binary (DuckDB linked in)
//	-repeat N           run the throughput scenarios N times, keep the best
//	-sink-log           the sinks' debug events (checkpoint steps) to stderr
//	-gzip               let the simulator gzip its pages in the pipeline runs
//	-budget-duration D  length of each budget run (default 42s)
//
// A target not met is reported, not an error: the exit code is 0 when
// every scenario ran, 1 when one failed, 2 for a usage mistake.
//
// It does not: measure over a real network, run scenarios in parallel, or
// compare figures across machines.
package main
