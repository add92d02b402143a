package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"hash/maphash"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"

	"github.com/klaviyo-etl/klaviyo-etl/load"
	"github.com/klaviyo-etl/klaviyo-etl/schema"
)

// Defaults for Config's zero fields.
const (
	DefaultSchema  = "klaviyo"
	DefaultTarget  = "profiles"
	DefaultRetries = 5
)

// Config configures a Sink. Zero fields take the defaults named.
type Config struct {
	// Schema is the PostgreSQL schema holding the tables (DefaultSchema).
	// The run lock is per schema and database.
	Schema string
	// Target is the etl_state key this sink's State is stored under
	// (DefaultTarget).
	Target string
	// Migrate applies pending migrations in Begin; without it Begin fails
	// with ErrMigrationsPending when the schema is behind.
	Migrate bool
	// Logger receives debug events (lock, migrations, merges, retries).
	Logger zerolog.Logger
	// Retries is how many times a checkpoint is replayed on a new
	// connection after a transient failure (DefaultRetries). Replaying needs
	// the checkpoint's Arrow records, so the sink keeps a reference to each
	// written record until the Commit that makes it durable. A negative
	// value disables retries, that retention and the direct-COPY fast path.
	Retries int
}

// Sink is the PostgreSQL destination, a load.Sink. Each checkpoint (the
// Writes between two Commits) is one transaction: rows are COPYed into
// temporary staging tables and merged into the tables of record together
// with the State at Commit; Writes of profiles all new are COPYed
// straight into the tables of record instead. It holds a session-level
// advisory lock on its schema from Begin to Close.
//
// A Sink is not safe for concurrent use.
type Sink struct {
	cfg     Config
	connCfg *pgx.ConnConfig
	q       *queries
	idx     indexQueries
	lockKey int64
	log     zerolog.Logger
	backoff func(attempt int) time.Duration

	conn   *pgx.Conn
	oldPID uint32 // backend of a connection given up on, which may still hold the lock
	tx     pgx.Tx

	prev   load.State // last committed
	begun  bool
	closed bool
	failed error

	// The checkpoint in progress.
	pending    []load.Batch        // retained records, replayed after a transient failure
	seq        int64               // Writes applied in this transaction
	ids        map[uint64]written  // hashes of the profile ids written, and how the latest version was
	batchIDs   map[uint64]struct{} // scratch: the profile ids of the batch being applied
	probeIDs   []string            // scratch: the same, for the probe
	seed       maphash.Seed
	dups       bool                // a profile id came twice
	early      map[uint64]struct{} // profile ids of relationships written before any version of their profile
	relsEarly  bool                // and that profile came later
	staged     bool                // rows wait in the staging tables
	fast       bool                // direct COPY without probing first: the last direct attempt found no stored id
	allStaged  bool                // this checkpoint is replayed through staging only
	direct     int64               // batches of this checkpoint COPYed straight into the tables of record
	savepoints int                 // in this transaction
	openSP     bool                // the last direct Write's savepoint is not released yet
	clean      sanitizer

	nulTotal int64 // values sanitised in committed checkpoints
	retried  int64
	paths    pathCounts // Writes by the path they took, for the log and tests

	deferred      bool          // this session dropped the secondary indexes and has not built them again
	deferLockWait time.Duration // deferLockWait; tests lower it
	maxSavepoints int           // maxSavepoints; tests lower it
	noFastPath    bool          // benchmarks compare with and without
}

var _ load.Sink = (*Sink)(nil)

// pathCounts counts Writes by how they reached the tables.
type pathCounts struct {
	direct     int64 // COPYed straight into the tables of record
	probed     int64 // found to hold a stored profile id by the probe, and staged
	rolledBack int64 // met a stored row in a direct COPY, rolled back and staged
	downgraded int64 // checkpoints replayed through staging only
}

// written is how the latest version of a profile id in the checkpoint was
// written.
type written uint8

const (
	notWritten    written = iota
	writtenStaged         // into the staging tables
	writtenDirect         // straight into the tables of record
)

// New returns a Sink for the database at databaseURL. It validates the
// configuration and URL; it does not connect.
func New(databaseURL string, cfg Config) (*Sink, error) {
	if cfg.Schema == "" {
		cfg.Schema = DefaultSchema
	}
	if cfg.Target == "" {
		cfg.Target = DefaultTarget
	}
	if cfg.Retries == 0 {
		cfg.Retries = DefaultRetries
	}
	if err := checkSchemaName(cfg.Schema); err != nil {
		return nil, err
	}
	connCfg, err := parseURL(databaseURL)
	if err != nil {
		return nil, err
	}
	// Session settings for merging a checkpoint (~10^5 rows): sorts and
	// hashes in memory, staging tables in local buffers rather than temp
	// files, and no JIT, which the planner, without statistics on the fresh
	// staging tables, would otherwise spend on every statement. A value the
	// URL sets wins.
	for k, v := range map[string]string{"work_mem": "64MB", "temp_buffers": "256MB", "jit": "off"} {
		if _, ok := connCfg.RuntimeParams[k]; !ok {
			connCfg.RuntimeParams[k] = v
		}
	}
	return &Sink{
		cfg:           cfg,
		connCfg:       connCfg,
		q:             buildQueries(cfg.Schema),
		idx:           buildIndexQueries(cfg.Schema),
		lockKey:       schemaLockKey(cfg.Schema),
		log:           cfg.Logger.With().Str("sink", "postgres").Str("schema", cfg.Schema).Logger(),
		backoff:       defaultBackoff,
		ids:           make(map[uint64]written),
		batchIDs:      make(map[uint64]struct{}),
		maxSavepoints: maxSavepoints,
		deferLockWait: deferLockWait,
		early:         make(map[uint64]struct{}),
		seed:          maphash.MakeSeed(),
	}, nil
}

// parseURL parses a connection URL or keyword/value string. pgx redacts
// the password from its parse errors.
func parseURL(databaseURL string) (*pgx.ConnConfig, error) {
	if databaseURL == "" {
		return nil, errors.New("postgres: no database URL")
	}
	cfg, err := pgx.ParseConfig(databaseURL)
	if err != nil {
		return nil, fmt.Errorf("postgres: database URL: %w", err)
	}
	if _, ok := cfg.RuntimeParams["application_name"]; !ok {
		cfg.RuntimeParams["application_name"] = "klaviyo-etl"
	}
	return cfg, nil
}

func checkSchemaName(name string) error {
	switch {
	case name == "":
		return errors.New("postgres: empty schema name")
	case len(name) > 63:
		// PostgreSQL would silently truncate it.
		return fmt.Errorf("postgres: schema name %q longer than 63 bytes", name)
	case strings.IndexByte(name, 0) >= 0:
		return fmt.Errorf("postgres: schema name %q holds a NUL byte", name)
	case strings.HasPrefix(strings.ToLower(name), "pg_"):
		return fmt.Errorf("postgres: schema name %q: names starting pg_ are reserved", name)
	}
	return nil
}

// schemaLockKey is the advisory lock key of a schema's run lock.
func schemaLockKey(schemaName string) int64 {
	h := fnv.New64a()
	h.Write([]byte("klaviyo-etl run lock\x00"))
	h.Write([]byte(schemaName))
	return int64(h.Sum64())
}

func defaultBackoff(attempt int) time.Duration {
	d := 200 * time.Millisecond << (attempt - 1)
	return min(d, 5*time.Second)
}

// NULReplaced is the number of values written so far whose NUL characters
// or invalid UTF-8 became U+FFFD. The same count per run is kept in
// etl_runs.nul_replaced.
func (s *Sink) NULReplaced() int64 { return s.nulTotal + s.clean.replaced }

// Retries is the number of transient failures the sink recovered from (or
// tried to) by replaying a checkpoint.
func (s *Sink) Retries() int64 { return s.retried }

// Begin connects, takes the schema's run lock (an error wrapping
// load.ErrLocked when another session holds it), applies or checks
// migrations, builds any missing secondary index, and returns the target's
// committed State. PostgreSQL itself discards what a crashed run left
// uncommitted, and releases its lock when its connection ends. On empty
// tables it drops the secondary indexes until the run ends (see the
// package documentation).
func (s *Sink) Begin(ctx context.Context) (load.State, error) {
	if s.closed {
		return load.State{}, errors.New("postgres: Begin after Close")
	}
	if s.begun {
		return load.State{}, errors.New("postgres: Begin called twice")
	}
	s.begun = true
	st, err := s.begin(ctx)
	if err != nil {
		s.release(ctx)
		s.failed = err
		return load.State{}, err
	}
	return st, nil
}

func (s *Sink) begin(ctx context.Context) (load.State, error) {
	if err := s.open(ctx); err != nil {
		return load.State{}, err
	}
	if s.cfg.Migrate {
		if err := MigrateConn(ctx, s.conn, s.cfg.Schema); err != nil {
			return load.State{}, err
		}
	} else {
		n, err := Pending(ctx, s.conn, s.cfg.Schema)
		if err != nil {
			return load.State{}, err
		}
		if n > 0 {
			return load.State{}, fmt.Errorf("schema %s lacks %d migration(s); run `klaviyo-etl migrate` or allow migrating: %w",
				pgx.Identifier{s.cfg.Schema}.Sanitize(), n, ErrMigrationsPending)
		}
	}
	// A run that dropped the secondary indexes for its backfill and died
	// left them missing.
	if n, err := restoreIndexesOn(ctx, s.conn, s.idx); err != nil {
		return load.State{}, err
	} else if n > 0 {
		s.log.Debug().Int("indexes", n).Msg("built missing secondary indexes")
	}
	st, err := readState(ctx, s.conn, s.q, s.cfg.Target)
	if err != nil {
		return load.State{}, err
	}
	s.prev = st
	if s.cfg.Retries > 0 && !s.noFastPath {
		var empty bool
		if err := s.conn.QueryRow(ctx, s.q.isEmpty).Scan(&empty); err != nil {
			return load.State{}, fmt.Errorf("check for rows: %w", describe(err))
		}
		s.fast = empty
		if empty {
			if s.deferred, err = s.deferIndexes(ctx); err != nil {
				return load.State{}, err
			}
		}
	}
	s.log.Debug().Bool("direct_copy", s.fast).Bool("indexes_deferred", s.deferred).Msg("begun")
	return st, nil
}

// open connects, takes the run lock and creates the staging tables.
func (s *Sink) open(ctx context.Context) error {
	conn, err := pgx.ConnectConfig(ctx, s.connCfg)
	if err != nil {
		return fmt.Errorf("connect: %w", describe(err))
	}
	err = func() error {
		if enc := conn.PgConn().ParameterStatus("server_encoding"); enc != "UTF8" {
			return fmt.Errorf("database encoding is %s; klaviyo-etl needs a UTF8 database", enc)
		}
		// A backend whose client died (a run killed with SIGKILL in the
		// middle of a statement) then notices within a second and gives up
		// the run lock. PostgreSQL 14 added the setting; older servers
		// simply lack it.
		_, _ = conn.Exec(ctx, `SET client_connection_check_interval = '1s'`)
		if err := lock(ctx, conn, s.cfg.Schema, s.lockKey, s.oldPID, s.log); err != nil {
			return err
		}
		if _, err := conn.Exec(ctx, s.q.createStaging); err != nil {
			return fmt.Errorf("create staging tables: %w", describe(err))
		}
		return nil
	}()
	if err != nil {
		closeQuietly(ctx, conn)
		return err
	}
	s.conn = conn
	s.oldPID = 0
	return nil
}

// Write adds b's rows to the open checkpoint, starting its transaction if
// needed. Rows become visible and durable only at the next Commit.
func (s *Sink) Write(ctx context.Context, b load.Batch) error {
	if err := s.ready(); err != nil {
		return err
	}
	if err := checkBatch(b); err != nil {
		return err
	}
	if b.Rows() == 0 {
		return nil
	}
	if s.cfg.Retries > 0 {
		for _, r := range records(b) {
			r.Retain()
		}
		s.pending = append(s.pending, b)
	}
	err := s.apply(ctx, b)
	if errors.Is(err, errDowngrade) {
		err = s.replay(ctx)
	}
	if err != nil {
		err = s.recover(ctx, err, "", nil)
	}
	if err != nil {
		return s.fail(ctx, fmt.Errorf("write: %w", err))
	}
	return nil
}

// errDowngrade ends a checkpoint whose direct COPYs cannot be kept exact
// (see apply): the checkpoint is replayed, all of it through staging.
var errDowngrade = errors.New("checkpoint needs staging")

// maxSavepoints bounds the subtransactions of one checkpoint: past 64, a
// transaction's subtransactions overflow PostgreSQL's per-backend cache and
// slow every other session's snapshots down. Direct batches beyond it are
// probed first and COPYed without a savepoint.
const maxSavepoints = 32

// apply writes one batch into the open transaction: straight into the
// tables of record when that is exact (applyDirect), into the staging
// tables otherwise.
func (s *Sink) apply(ctx context.Context, b load.Batch) error {
	if err := s.ensureTx(ctx); err != nil {
		return err
	}
	s.seq++
	done := false
	if s.cfg.Retries > 0 && !s.noFastPath && !s.allStaged {
		var err error
		if done, err = s.applyDirect(ctx, b); err != nil {
			return err
		}
	}
	if !done {
		if err := s.applyStaged(ctx, b); err != nil {
			return err
		}
	}
	// Rejects are only ever appended.
	return s.copy(ctx, s.q.copyRejects, schema.ProfileRejects, b.Rejects)
}

// applyDirect COPYs b's profiles and relationships straight into the
// tables of record when that gives what the merge would, and reports
// whether it did. That holds when every profile of b is new: not written
// earlier in the checkpoint, not twice in b, not in the table (which the
// primary key enforces: a COPY meeting a stored id fails); and when every
// relationship row belongs to a profile written directly, in b or as the
// latest version earlier in the checkpoint. A later version of such a
// profile, staged, is merged over the direct one as over any stored
// version, which the merge's rules order exactly as it orders versions
// within a checkpoint.
//
// The COPYs run under a savepoint, so a batch meeting a stored id is rolled
// back alone and staged instead. After that, the next batches are probed
// (one indexed lookup of their ids) before any COPY, until one proves new.
func (s *Sink) applyDirect(ctx context.Context, b load.Batch) (bool, error) {
	if !nonEmpty(b.Profiles) && !nonEmpty(b.Relationships) {
		return true, nil
	}
	if !s.directCandidate(b) {
		return false, nil
	}
	savepoint := s.savepoints < s.maxSavepoints
	if nonEmpty(b.Profiles) && (!s.fast || !savepoint) {
		known, err := s.anyStored(ctx, b.Profiles)
		if err != nil {
			return false, err
		}
		if known {
			s.fast = false
			s.paths.probed++
			return false, nil
		}
	}
	// The savepoint statements travel in the COPY's own query: a round trip
	// each would leave the server idle between Writes. The previous direct
	// Write's savepoint is released here rather than after its COPY, for
	// the same reason; released or not, it is committed with the checkpoint.
	var prefix string
	if savepoint {
		if s.openSP {
			prefix = "RELEASE SAVEPOINT direct_copy; "
		}
		prefix += "SAVEPOINT direct_copy; "
		s.savepoints++
	}
	replaced := s.clean.replaced
	err := s.copyWith(ctx, prefix, s.q.copyProfiles, schema.Profiles, b.Profiles)
	if err == nil && savepoint {
		s.openSP = true
	}
	if err == nil {
		err = s.copy(ctx, s.q.copyRels, schema.ProfileRelationships, b.Relationships)
	}
	if err != nil {
		if sqlState(err) != "23505" { // unique_violation: a row already there
			return false, err
		}
		if !savepoint {
			return false, fmt.Errorf("%w: %w", errDowngrade, err)
		}
		// Rolled back to, a savepoint stays; released, it nests no later one.
		if _, err := s.tx.Exec(ctx, "ROLLBACK TO SAVEPOINT direct_copy; RELEASE SAVEPOINT direct_copy"); err != nil {
			return false, fmt.Errorf("roll back to savepoint: %w", err)
		}
		s.openSP = false
		s.clean.replaced = replaced // the staged COPY counts them again
		s.fast = false
		s.paths.rolledBack++
		s.log.Debug().Int64("write", s.seq).Msg("direct COPY met a stored row; staging the batch")
		return false, nil
	}
	s.fast = true
	s.direct++
	s.paths.direct++
	for h := range s.batchIDs {
		s.ids[h] = writtenDirect
	}
	return true, nil
}

// directCandidate reports whether b may go straight into the tables of
// record as far as the checkpoint itself tells (see applyDirect), leaving
// b's profile ids in s.batchIDs.
func (s *Sink) directCandidate(b load.Batch) bool {
	clear(s.batchIDs)
	if nonEmpty(b.Profiles) {
		ids := b.Profiles.Column(0).(*array.String)
		for i := range ids.Len() {
			h := maphash.String(s.seed, ids.Value(i))
			if _, seen := s.ids[h]; seen {
				return false
			}
			if _, dup := s.batchIDs[h]; dup {
				return false
			}
			s.batchIDs[h] = struct{}{}
		}
	}
	if nonEmpty(b.Relationships) {
		ids := b.Relationships.Column(0).(*array.String)
		for i := range ids.Len() {
			h := maphash.String(s.seed, ids.Value(i))
			if _, ok := s.batchIDs[h]; !ok && s.ids[h] != writtenDirect {
				return false
			}
		}
	}
	return true
}

// anyStored reports whether any profile id of rec is in the profiles table.
func (s *Sink) anyStored(ctx context.Context, rec arrow.RecordBatch) (bool, error) {
	ids := rec.Column(0).(*array.String)
	s.probeIDs = s.probeIDs[:0]
	for i := range ids.Len() {
		s.probeIDs = append(s.probeIDs, ids.Value(i))
	}
	var known bool
	err := s.tx.QueryRow(ctx, s.q.anyStored, s.probeIDs).Scan(&known)
	clear(s.probeIDs) // the strings point into the record
	if err != nil {
		return false, fmt.Errorf("look for stored profiles: %w", err)
	}
	return known, nil
}

// applyStaged COPYs b's profiles and relationships into the staging tables,
// merged at Commit.
func (s *Sink) applyStaged(ctx context.Context, b load.Batch) error {
	if nonEmpty(b.Profiles) {
		s.noteIDs(b.Profiles)
	}
	if nonEmpty(b.Relationships) && !s.noteRelIDs(b.Relationships) {
		// A relationship row of a profile whose latest version went
		// straight into the tables: the merge would drop it.
		return errDowngrade
	}
	if nonEmpty(b.Profiles) {
		if err := s.copy(ctx, s.q.copyStageProfiles, schema.Profiles, b.Profiles); err != nil {
			return err
		}
		s.staged = true
	}
	return s.copy(ctx, s.q.copyStageRels, schema.ProfileRelationships, b.Relationships)
}

// noteIDs records the staged profile ids, noting whether any came twice,
// or after relationships of its own. (A hash collision only costs the
// general merge where the simple one would do.)
func (s *Sink) noteIDs(rec arrow.RecordBatch) {
	ids := rec.Column(0).(*array.String)
	for i := range ids.Len() {
		h := maphash.String(s.seed, ids.Value(i))
		if _, dup := s.ids[h]; dup {
			s.dups = true
		}
		if _, early := s.early[h]; early {
			s.relsEarly = true
		}
		s.ids[h] = writtenStaged
	}
}

// noteRelIDs notes relationships whose profile has not been written yet in
// this checkpoint. It reports false when one belongs to a profile whose
// latest version was written directly.
func (s *Sink) noteRelIDs(rec arrow.RecordBatch) bool {
	ids := rec.Column(0).(*array.String)
	for i := range ids.Len() {
		h := maphash.String(s.seed, ids.Value(i))
		switch s.ids[h] {
		case notWritten:
			s.early[h] = struct{}{}
		case writtenDirect:
			return false
		}
	}
	return true
}

// copy streams rec, a record of table t, with a binary COPY.
func (s *Sink) copy(ctx context.Context, stmt copyStmt, t *schema.Table, rec arrow.RecordBatch) error {
	return s.copyWith(ctx, "", stmt, t, rec)
}

// copyWith is copy with statements run before the COPY in the same query
// (prefix, each ending in "; "); with no rows to copy they run alone.
func (s *Sink) copyWith(ctx context.Context, prefix string, stmt copyStmt, t *schema.Table, rec arrow.RecordBatch) error {
	if !nonEmpty(rec) {
		if prefix != "" {
			if _, err := s.tx.Exec(ctx, strings.TrimSuffix(prefix, "; ")); err != nil {
				return fmt.Errorf("%s: %w", strings.TrimSuffix(prefix, "; "), err)
			}
		}
		return nil
	}
	src, err := newCopyStream(t, rec, stmt.seq, s.seq, &s.clean)
	if err != nil {
		return err
	}
	tag, err := s.tx.Conn().PgConn().CopyFrom(ctx, src, prefix+stmt.sql)
	src.close()
	if err != nil {
		return fmt.Errorf("copy %s into %s: %w", t.Name, stmt.table, err)
	}
	if n := tag.RowsAffected(); n != rec.NumRows() {
		return fmt.Errorf("copy %s into %s: %d rows copied of %d", t.Name, stmt.table, n, rec.NumRows())
	}
	return nil
}

// Commit makes the checkpoint's rows and st durable in one transaction:
// staged profiles are merged by id (the incoming version wins unless it is
// older), the relationships of the profiles applied are replaced, rejects
// appended, etl_runs and etl_state written. When st ends a successful full
// refresh, profiles that refresh did not see are deleted with their
// relationships in the same transaction.
func (s *Sink) Commit(ctx context.Context, st load.State) error {
	if err := s.ready(); err != nil {
		return err
	}
	js, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("commit: encode state: %w", err)
	}
	// jsonb holds no \u0000; a NUL in, say, Run.Error becomes U+FFFD.
	var z sanitizer
	stateJSON := z.json(string(js))
	var token [16]byte
	rand.Read(token[:])
	commitID := hex.EncodeToString(token[:])

	finish := func(ctx context.Context) error { return s.finish(ctx, st, stateJSON, commitID) }
	start := time.Now()
	err = finish(ctx)
	if err != nil {
		err = s.recover(ctx, err, commitID, finish)
	}
	if err != nil {
		return s.fail(ctx, fmt.Errorf("commit: %w", err))
	}
	s.log.Debug().Int64("writes", s.seq).Int64("direct_writes", s.direct).Bool("merged", s.staged).
		Dur("took", time.Since(start)).Msg("committed")
	s.prev = st
	s.nulTotal += s.clean.replaced
	s.releasePending()
	s.resetCheckpoint()
	s.allStaged = false
	if st.Run == nil {
		s.deferred = false
	}
	return nil
}

// finish merges the checkpoint, writes the run log and state, and commits.
func (s *Sink) finish(ctx context.Context, st load.State, stateJSON, commitID string) error {
	if err := s.ensureTx(ctx); err != nil {
		return err
	}
	exec := func(what, sql string, args ...any) error {
		start := time.Now()
		tag, err := s.tx.Exec(ctx, sql, args...)
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		s.log.Debug().Str("step", what).Int64("rows", tag.RowsAffected()).Dur("took", time.Since(start)).Msg("commit step")
		return nil
	}
	if s.staged {
		if s.dups {
			if err := exec("dedupe staged profiles", s.q.dedupe); err != nil {
				return err
			}
		}
		if s.dups || s.relsEarly {
			if err := exec("drop relationships of superseded versions", s.q.pruneStaged); err != nil {
				return err
			}
		}
		if err := exec("merge profiles", s.q.upsert); err != nil {
			return err
		}
		if run := s.prev.Run; run != nil && run.FullRefresh {
			// A version older than the stored one is not applied, but the
			// refresh has seen the profile: it must survive the refresh.
			if err := exec("analyze staged profiles", s.q.analyzeProfiles); err != nil {
				return err
			}
			if err := exec("mark profiles seen", s.q.touchRunID, run.ID); err != nil {
				return err
			}
		}
		if err := exec("analyze staged relationships", s.q.analyzeRels); err != nil {
			return err
		}
		if err := exec("sync relationships", s.q.syncRels); err != nil {
			return err
		}
	}
	if last := st.LastRun; st.Run == nil && last != nil && last.FullRefresh && last.Status == "succeeded" &&
		s.prev.Run != nil && s.prev.Run.ID == last.ID {
		if err := exec("delete profiles the full refresh did not see", s.q.fullRefresh, last.ID); err != nil {
			return err
		}
		if err := exec("delete their relationships", s.q.orphanRels); err != nil {
			return err
		}
	}
	if st.Run == nil && s.deferred {
		// The backfill is over: its indexes come back with its last rows.
		start := time.Now()
		n, err := restoreIndexes(ctx, s.tx, s.idx)
		if err != nil {
			return err
		}
		s.log.Debug().Int("indexes", n).Dur("took", time.Since(start)).Msg("built secondary indexes")
	}
	// The sink's NUL count goes to the run whose rows these are.
	counted := st.Run
	if counted == nil {
		counted = st.LastRun
	}
	for _, run := range []*load.Run{st.Run, st.LastRun} {
		if run == nil || (run == st.LastRun && st.Run != nil && st.Run.ID == run.ID) {
			continue
		}
		var nul int64
		if run == counted {
			nul = s.clean.replaced
		}
		if err := exec("record run "+run.ID, s.q.upsertRun, runArgs(s.cfg.Target, run, nul)...); err != nil {
			return err
		}
	}
	var endCreated, endUpdated *time.Time
	if c := st.Cursors[schema.CursorCreated]; c != nil {
		endCreated = nullTime(c.End)
	}
	if c := st.Cursors[schema.CursorUpdated]; c != nil {
		endUpdated = nullTime(c.End)
	}
	if err := exec("write state", s.q.upsertState, s.cfg.Target, stateJSON, st.SchemaVersion, endCreated, endUpdated, commitID); err != nil {
		return err
	}
	err := s.tx.Commit(ctx)
	s.tx = nil
	if err != nil {
		return fmt.Errorf("commit transaction: %w", err)
	}
	return nil
}

func runArgs(target string, r *load.Run, nul int64) []any {
	// Run fields are free text to PostgreSQL, which refuses NUL.
	var z sanitizer
	var errText *string
	if r.Error != "" {
		e := z.text(r.Error)
		errText = &e
	}
	st := r.Stats
	return []any{
		z.text(r.ID), target, nullTime(r.StartedAt), nullTime(r.EndedAt), z.text(r.Status), z.text(r.CursorField), r.FullRefresh,
		nullTime(r.Start), nullTime(r.End), st.Records, st.Profiles, st.Relationships, st.Rejects, st.RejectedWhole,
		st.Pages, st.Requests, st.Retries, st.RateLimited, st.Duplicates, nul, errText,
	}
}

func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// recover handles a failure of the checkpoint's transaction: when it is
// transient, it reconnects (taking the lock again) and replays the
// checkpoint, then runs then (Commit's finish), a bounded number of times
// with backoff. A Commit passes its commit id: when a COMMIT's outcome was
// lost with the connection, the state row tells whether it landed.
func (s *Sink) recover(ctx context.Context, cause error, commitID string, then func(context.Context) error) error {
	for attempt := 1; ; attempt++ {
		if !s.transient(ctx, cause) {
			return cause
		}
		if s.cfg.Retries < 0 {
			return fmt.Errorf("%w (retries disabled)", cause)
		}
		if attempt > s.cfg.Retries {
			return fmt.Errorf("gave up after %d attempts: %w", attempt, cause)
		}
		s.retried++
		wait := s.backoff(attempt)
		s.log.Debug().Err(cause).Int("attempt", attempt).Dur("wait", wait).Msg("transient failure; replaying checkpoint")
		s.drop(ctx)
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (while waiting to retry after: %v)", ctx.Err(), cause)
		case <-time.After(wait):
		}
		err := s.open(ctx)
		if err == nil && commitID != "" {
			var landed bool
			if err = s.conn.QueryRow(ctx, s.q.landed, s.cfg.Target, commitID).Scan(&landed); err == nil && landed {
				return nil
			}
		}
		if err == nil {
			err = s.replay(ctx)
		}
		if err == nil && then != nil {
			err = then(ctx)
		}
		if err == nil {
			return nil
		}
		cause = err
	}
}

// transient reports whether err may pass on a new connection.
func (s *Sink) transient(ctx context.Context, err error) bool {
	if transient(ctx, err) {
		return true
	}
	// Whatever else broke the connection (and was not PostgreSQL refusing a
	// statement) is a lost connection too.
	return ctx.Err() == nil && sqlState(err) == "" && s.conn != nil && s.conn.IsClosed()
}

// replay starts the checkpoint over in a new transaction from the retained
// batches, through staging once a direct COPY met an id it could not
// prove new.
func (s *Sink) replay(ctx context.Context) error {
	for {
		s.rollback(ctx)
		s.resetCheckpoint()
		var err error
		for _, b := range s.pending {
			if err = s.apply(ctx, b); err != nil {
				break
			}
		}
		if errors.Is(err, errDowngrade) && !s.allStaged {
			s.log.Debug().Err(err).Msg("direct COPY cannot stay exact; replaying the checkpoint through staging")
			s.allStaged = true
			s.paths.downgraded++
			continue
		}
		return err
	}
}

func (s *Sink) ensureTx(ctx context.Context) error {
	if s.tx != nil {
		return nil
	}
	if s.conn == nil {
		return errors.New("not connected")
	}
	tx, err := s.conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	s.tx = tx
	return nil
}

func (s *Sink) rollback(ctx context.Context) {
	if s.tx != nil {
		s.tx.Rollback(ctx)
		s.tx = nil
	}
}

func (s *Sink) resetCheckpoint() {
	s.seq = 0
	s.direct = 0
	s.savepoints = 0
	s.openSP = false
	clear(s.ids)
	s.dups = false
	clear(s.early)
	s.relsEarly = false
	s.staged = false
	s.clean.replaced = 0
}

func (s *Sink) releasePending() {
	for _, b := range s.pending {
		for _, r := range records(b) {
			r.Release()
		}
	}
	s.pending = nil
}

// drop abandons the connection, remembering its backend so that a
// reconnect can end it if it still holds the lock.
func (s *Sink) drop(ctx context.Context) {
	s.tx = nil
	if s.conn == nil {
		return
	}
	s.oldPID = s.conn.PgConn().PID()
	closeQuietly(ctx, s.conn)
	s.conn = nil
}

func closeQuietly(ctx context.Context, conn *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	conn.Close(ctx)
}

// fail makes err sticky: the transaction is gone, so every later Write and
// Commit fails too, until Close.
func (s *Sink) fail(ctx context.Context, err error) error {
	err = describe(err)
	s.failed = err
	s.rollback(ctx)
	return err
}

func (s *Sink) ready() error {
	switch {
	case s.closed:
		return errors.New("postgres: sink closed")
	case !s.begun:
		return errors.New("postgres: Begin not called")
	case s.failed != nil:
		return fmt.Errorf("postgres: sink failed earlier: %w", s.failed)
	}
	return nil
}

// Close discards whatever was written and not committed, releases the lock
// and disconnects. Retained records are released. When a first backfill
// dropped the secondary indexes and no Commit built them again, Close
// builds them first, even when ctx is done.
func (s *Sink) Close(ctx context.Context) error {
	if s.closed {
		return nil
	}
	s.closed = true
	s.log.Debug().Int64("direct", s.paths.direct).Int64("probed_stored", s.paths.probed).
		Int64("rolled_back", s.paths.rolledBack).Int64("checkpoints_downgraded", s.paths.downgraded).
		Msg("writes by path")
	s.releasePending()
	if s.conn == nil {
		return nil
	}
	var restoreErr error
	if s.deferred && !s.conn.IsClosed() {
		restoreErr = s.restoreAtClose(ctx)
	}
	if err := errors.Join(restoreErr, s.release(ctx)); err != nil {
		return fmt.Errorf("postgres: close: %w", err)
	}
	return nil
}

// restoreAtClose builds the secondary indexes a backfill dropped when its
// run ended without a Commit doing it (failed or interrupted): even when
// ctx is cancelled, since readers need them. If it cannot, the next Begin
// or migrate does.
func (s *Sink) restoreAtClose(ctx context.Context) error {
	ctx = context.WithoutCancel(ctx)
	s.rollback(ctx)
	if _, err := restoreIndexesOn(ctx, s.conn, s.idx); err != nil {
		return fmt.Errorf("build secondary indexes: %w", err)
	}
	s.deferred = false
	return nil
}

// release rolls back, unlocks and disconnects. The explicit unlock makes the
// lock free when release returns; ending the session would free it too, but
// only once the server has noticed.
func (s *Sink) release(ctx context.Context) error {
	s.tx = nil
	if s.conn == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	conn := s.conn
	s.conn = nil
	if !conn.IsClosed() {
		// Out of any transaction first: an aborted one would refuse the
		// unlock.
		conn.Exec(ctx, "ROLLBACK")
		conn.Exec(ctx, `SELECT pg_advisory_unlock_all()`)
	}
	return conn.Close(ctx)
}

// lockGrace is how long Begin waits for a run lock held by another session
// before reporting load.ErrLocked: long enough for the backend of a killed
// run to notice, short enough that a second concurrent run fails fast.
const lockGrace = 3 * time.Second

// lock takes the schema's run lock on conn. If the lock is
// held by ownOld, the backend of this sink's previous, broken connection,
// that backend is terminated and the lock awaited briefly.
func lock(ctx context.Context, conn *pgx.Conn, schemaName string, key int64, ownOld uint32, log zerolog.Logger) error {
	deadline := time.Now().Add(30 * time.Second)
	grace := time.Now().Add(lockGrace)
	terminated := false
	for {
		var ok bool
		if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, key).Scan(&ok); err != nil {
			return fmt.Errorf("take run lock: %w", describe(err))
		}
		if ok {
			return nil
		}
		var pid int64
		var app string
		var since *time.Time
		err := conn.QueryRow(ctx, `SELECT l.pid, coalesce(a.application_name, ''), a.backend_start
FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND l.classid::bigint = $1 AND l.objid::bigint = $2`,
			int64(uint64(key)>>32), int64(uint32(uint64(key)))).Scan(&pid, &app, &since)
		if errors.Is(err, pgx.ErrNoRows) {
			if time.Now().After(deadline) {
				return fmt.Errorf("schema %s: %w", pgx.Identifier{schemaName}.Sanitize(), load.ErrLocked)
			}
			// Released in between: try again.
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(10 * time.Millisecond):
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("find run lock holder: %w", describe(err))
		}
		if (ownOld == 0 || uint32(pid) != ownOld) && time.Now().Before(grace) {
			// The holder may be the backend of a run that was just killed:
			// PostgreSQL ends it as soon as it notices its client is gone.
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		if ownOld == 0 || uint32(pid) != ownOld || time.Now().After(deadline) {
			holder := fmt.Sprintf("backend pid %d", pid)
			if app != "" {
				holder += " (" + app + ")"
			}
			if since != nil {
				holder += " connected since " + since.UTC().Format(time.RFC3339)
			}
			return fmt.Errorf("schema %s is held by %s: %w", pgx.Identifier{schemaName}.Sanitize(), holder, load.ErrLocked)
		}
		if !terminated {
			log.Debug().Int64("pid", pid).Msg("ending this sink's previous backend, which still holds the lock")
			conn.Exec(ctx, `SELECT pg_terminate_backend($1)`, pid)
			terminated = true
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// tryLock takes the run lock for a one-off command (migrate).
func tryLock(ctx context.Context, conn *pgx.Conn, schemaName string) error {
	return lock(ctx, conn, schemaName, schemaLockKey(schemaName), 0, zerolog.Nop())
}

func records(b load.Batch) []arrow.RecordBatch {
	var rs []arrow.RecordBatch
	for _, r := range []arrow.RecordBatch{b.Profiles, b.Relationships, b.Rejects} {
		if r != nil {
			rs = append(rs, r)
		}
	}
	return rs
}

func nonEmpty(r arrow.RecordBatch) bool { return r != nil && r.NumRows() > 0 }

// checkBatch verifies that every record has its table's columns, in order,
// with the Arrow types of package schema, and no NULL where the table has
// NOT NULL.
func checkBatch(b load.Batch) error {
	for _, p := range []struct {
		t   *schema.Table
		rec arrow.RecordBatch
	}{{schema.Profiles, b.Profiles}, {schema.ProfileRelationships, b.Relationships}, {schema.ProfileRejects, b.Rejects}} {
		if p.rec == nil {
			continue
		}
		if err := checkRecord(p.t, p.rec); err != nil {
			return err
		}
	}
	return nil
}

func checkRecord(t *schema.Table, rec arrow.RecordBatch) error {
	sc := rec.Schema()
	if sc.NumFields() != len(t.Columns) {
		return fmt.Errorf("postgres: %s record has %d columns, want %d", t.Name, sc.NumFields(), len(t.Columns))
	}
	for i, c := range t.Columns {
		f := sc.Field(i)
		if f.Name != c.Name || !arrow.TypeEqual(f.Type, c.ArrowType()) {
			return fmt.Errorf("postgres: %s column %d is %s %s, want %s %s", t.Name, i, f.Name, f.Type, c.Name, c.ArrowType())
		}
		if !c.Nullable && rec.Column(i).NullN() > 0 {
			return fmt.Errorf("postgres: %s.%s: %d NULLs in a NOT NULL column", t.Name, c.Name, rec.Column(i).NullN())
		}
	}
	return nil
}
