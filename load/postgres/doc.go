// Package postgres is the PostgreSQL destination of klaviyo-etl: Sink, a
// load.Sink, plus Migrate, Pending and ReadState for the migrate and state
// commands.
//
//	s, err := postgres.New(os.Getenv("DATABASE_URL"), postgres.Config{Schema: "klaviyo", Migrate: true, Logger: log})
//	if err != nil { … }
//	defer s.Close(ctx)
//	st, err := s.Begin(ctx) // errors.Is(err, load.ErrLocked): another run holds the schema
//	st.Run = run
//	err = s.Commit(ctx, st) // before the first Write
//	err = s.Write(ctx, batch) // any number of times
//	err = s.Commit(ctx, st)   // rows and st durable together
//
// Tables. Everything lives in one schema (Config.Schema, default klaviyo),
// created by the versioned SQL of package migrations, applied with tern
// under its advisory lock; the version table is that schema's own, so
// schemas migrate independently. Begin applies pending migrations when
// Config.Migrate is set and otherwise fails with ErrMigrationsPending.
// Identifiers are always quoted.
//
// Lock. Begin takes a session-level advisory lock keyed by the schema
// (pg_try_advisory_lock), so one run at a time loads a schema in a
// database; a second gets an error wrapping load.ErrLocked naming the
// holder's backend. Close releases it; if the process dies, PostgreSQL
// releases it with the session.
//
// Checkpoints. The Writes between two Commits form one transaction. Each
// Arrow record is streamed by COPY (pgx CopyFrom over a CopyFromSource
// that reads the Arrow arrays row by row) into temporary staging tables.
// Commit merges them in the same transaction: one row per profile id (the
// newest updated among the checkpoint's versions), upserted so that an
// incoming version replaces the stored one unless it is older; the
// relationships of exactly the profiles applied are made equal to the
// staged ones (a membership kept from the stored version is left as it is,
// _run_id included; one dropped is deleted; one new is inserted with the
// incoming _run_id); rejects are appended; the run goes to etl_runs and the
// State, as JSON, to etl_state — then COMMIT. A crash at any point leaves
// the previous commit as it was. When a Commit ends a successful full
// refresh (State.Run nil, LastRun a succeeded full refresh that was
// running), the profiles that refresh did not see are deleted with their
// relationships in that same transaction.
//
// First backfill. When the tables are empty at Begin, checkpoints COPY
// straight into the tables of record, which is as fast as a plain COPY. It
// is exact because every id of such a checkpoint is new: the sink checks
// ids within the checkpoint itself, and the tables' keys refuse any id an
// earlier one stored. On the first id it cannot prove new, the
// checkpoint's transaction is rolled back and replayed through staging,
// which the session then keeps using.
//
// Text. PostgreSQL holds neither U+0000 in text nor \u0000 in jsonb, and
// no invalid UTF-8: such characters become U+FFFD (the raw bytea column of
// profile_rejects keeps every byte). The values changed are counted in
// NULReplaced and per run in etl_runs.nul_replaced.
//
// Failures. Until a Commit succeeds, the sink keeps a reference to the
// checkpoint's Arrow records (released at that Commit or at Close). A
// transient failure — connection lost or refused, server shutting down or
// starting, serialization failure, deadlock — makes it reconnect, take the
// lock again (ending its own previous backend if that still holds it), and
// replay the checkpoint, up to Config.Retries times with backoff. A COMMIT
// whose outcome was lost with the connection is recognised by the commit id
// stored with the state, so it is never applied twice. Any other error
// fails the Write or Commit with its SQLSTATE and the table, column or
// constraint it names, and the sink refuses further Writes until Close.
//
// The package does not parse JSON (jsonb does), does not decide what a
// State means (it stores the run's verbatim) and retries nothing but the
// transient failures above.
package postgres
