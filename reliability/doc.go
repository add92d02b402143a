// Package reliability is klaviyo-etl's reliability campaign: a test suite
// that attacks the real program the way production will and measures what
// happens. It holds no code used by the program; everything is in its
// _test.go files, and the figures it produced are in docs/reliability.md.
//
// The suite builds cmd/klaviyo-etl once (with -race when the tests run with
// -race) and runs that binary as a subprocess against the in-process
// simulator (extract/klaviyosim, with crafted responses served through
// Server.Use) and a real PostgreSQL (internal/pgtest). Every case compares
// the output with the simulator's data set exactly: every profile once,
// every compared column equal, nothing else; Parquet outputs also hold
// nothing but _state.json and the files it lists.
//
// The cases:
//
//   - TestAPIFaults: each fault kind the simulator injects (500, 502, 503,
//     504, reset, truncated body, invalid JSON, hang, spurious 429) at 1%, 10%
//     and 30% of requests, into both sinks; retries and time lost against a
//     clean run are reported. TestRetryDeadline: a run that gives up exits 1
//     with a clear message and the next run completes the export.
//   - TestKills: SIGKILL at random instants (chains of kills, each resumed by
//     the next run) and SIGTERM/SIGINT (exit 143/130 within 10 s, what was
//     complete committed), both sinks.
//   - TestPostgresFailures: server restarted with fast and immediate
//     shutdown, pg_terminate_backend, a statement timeout and a server down
//     for longer than the sink retries, on a private cluster.
//     TestParquetOutputFailures: an output folder made unwritable or full
//     mid-run.
//   - TestBadInput: the fuzz corpora of the page decoder (transform,
//     extract) and of filter and cursor handling, a page of 100 records
//     each broken differently, a 5 MB properties object, deep nesting,
//     invalid UTF-8, NUL characters, duplicate ids, records outside the
//     window, empty pages with links.next, a links.next loop and a foreign
//     links.next host.
//   - TestAuthAndRevision: 401, 403, an unsupported revision and a 410.
//   - TestSoak: profiles through each sink with 5% faults and 200 ms latency,
//     memory sampled.
//
// Every test has a short variant, run by CI (`go test -race ./...`), and a
// long one, run on demand:
//
//	go test ./reliability -long -timeout 3h -v          # or RELIABILITY_LONG=1
//	go test ./reliability -run 'TestAPIFaults/postgres/503/rate10' -long -v
//	go test ./reliability -long -report /tmp/figures.jsonl   # figures as JSON lines
//
// With -report (or RELIABILITY_REPORT) each case appends one JSON line of
// figures (runs, outcome, lost, duplicates, retries, time lost, peak RSS,
// the command that reproduces it) and TestMain renders them as a Markdown
// table next to it (figures.jsonl.md).
//
// Tests that reproduce defects not yet fixed carry the build tag
// `defects`, so CI does not build them; docs/dev/defects.md lists them:
//
//	go test -tags defects ./reliability -run TestDefect -v
//
// The package does not test the packages' internals (their own tests do)
// and changes nothing outside its temporary directories and the databases
// pgtest gives it.
package reliability
