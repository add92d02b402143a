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
// Arrow record is streamed by a binary COPY, encoded row by row straight
// from the Arrow buffers, into temporary staging tables (or, see Direct
// COPY, into the tables of record). Commit merges the staged rows in the
// same transaction: one row per profile id (the newest updated among the
// checkpoint's versions), upserted so that an incoming version replaces
// the stored one unless it is older; the
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
// Direct COPY. A Write whose profiles are all new COPYs them and their
// relationships straight into the tables of record, which is as fast as a
// plain COPY: a first backfill into empty tables, and the new profiles an
// incremental run reads, skip staging and the merge. It is exact because
// the merge would insert exactly those rows. The sink checks, within the
// checkpoint, that no profile id came before (staged or direct), twice in
// the Write, or has relationship rows in the Write that belong to a version
// it did not write directly; the primary key refuses any id already
// stored. The COPYs run under a savepoint, set (and the previous direct
// Write's released) in the COPY's own query, so that a direct Write costs
// one round trip: a Write meeting a stored id is rolled back alone and
// staged; the following Writes are then first probed
// with one indexed lookup of their ids (SELECT … WHERE id = ANY(…)), and
// go direct again once one proves new. When the tables are empty at Begin
// the first Write is not probed. A later version of a profile written
// directly is staged and merged over it, which the merge's rules (newest
// updated, then later Write) order exactly as within a checkpoint. Rare
// shapes the direct rows cannot follow (relationship rows, in a staged
// Write, of a profile whose latest version went direct; a stored row met
// by a direct COPY past the checkpoint's 32 savepoints, which are bounded
// to keep PostgreSQL's subtransaction cache from overflowing) roll the
// checkpoint's transaction back and replay it through staging only, from
// the retained records: Config.Retries < 0 turns direct COPY off.
// Relationship rows are assumed to belong to stored profiles, as the sink
// keeps them: a profile deleted by hand without its relationship rows, then
// read again as new, keeps those rows beside its new ones.
//
// First backfill. When both tables of record are empty at Begin, the sink
// drops their secondary indexes (profiles' on created, updated and email;
// profile_relationships' on relationship and related_id; the primary keys
// stay), since building them once at the end costs less than maintaining
// them row by row, and builds them again inside the Commit that ends the
// run (State.Run nil), or in Close when the run ends otherwise (failed,
// interrupted). Until then readers see the committed rows without those
// indexes: queries filtering on those columns scan the tables. If the
// process dies first, the next Begin builds whichever is missing before
// anything else, and so does Migrate (klaviyo-etl migrate); one dropped by
// hand comes back the same way. Dropping them needs an instant without
// readers of the two tables: when readers hold them for a second, the
// backfill keeps them.
//
// Text. PostgreSQL holds neither U+0000 in text nor \u0000 in jsonb, and
// no invalid UTF-8: such characters become U+FFFD (the raw bytea column of
// profile_rejects keeps every byte). The values changed are counted in
// NULReplaced and per run in etl_runs.nul_replaced. A column whose whole
// Arrow data buffer is clean is not checked value by value. Timestamps
// outside PostgreSQL's range (4714 BC to 294276 AD) fail the Write with
// SQLSTATE 22008, as PostgreSQL refuses them.
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
