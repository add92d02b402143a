package postgres

import (
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/klaviyo-etl/klaviyo-etl/schema"
)

// Staging tables live in the session's temporary schema, created once per
// connection; ON COMMIT DELETE ROWS empties them at every checkpoint. _seq
// numbers the Write a row came in, so the newest of two versions of a
// profile within a checkpoint can be told apart, with its relationships.
const (
	stageProfiles      = "stage_profiles"
	stageRelationships = "stage_relationships"
	stageApplied       = "stage_applied"
	stageLosers        = "stage_losers"
	seqColumn          = "_seq"
)

// queries is every statement the sink runs, built once for its schema.
type queries struct {
	profiles, relationships, rejects pgx.Identifier // tables of record
	profileCols, relationshipCols    []string
	rejectCols                       []string
	stageProfileCols, stageRelCols   []string

	createStaging string

	// COPY … FROM STDIN (FORMAT binary) into each table, in schema order
	// (plus _seq for staging).
	copyProfiles, copyRels, copyRejects copyStmt
	copyStageProfiles, copyStageRels    copyStmt

	// Merge of a checkpoint's staged rows.
	dedupe      string // keep the newest version of each id in stage_profiles
	upsert      string // stage_profiles → profiles, applied ids → stage_applied
	touchRunID  string // full refresh: mark every staged id as seen by the run
	syncRels    string // applied profiles' relationships made equal to the staged ones
	pruneStaged string // staged relationships of no surviving version

	analyzeProfiles, analyzeRels string
	fullRefresh                  string // drop profiles a completed refresh did not see
	orphanRels                   string // and their relationships

	isEmpty     string
	anyStored   string // is any of the ids $1 in profiles
	upsertRun   string
	upsertState string
	readState   string
	landed      string
}

func buildQueries(schemaName string) *queries {
	s := pgx.Identifier{schemaName}.Sanitize()
	q := &queries{
		profiles:         pgx.Identifier{schemaName, schema.Profiles.Name},
		relationships:    pgx.Identifier{schemaName, schema.ProfileRelationships.Name},
		rejects:          pgx.Identifier{schemaName, schema.ProfileRejects.Name},
		profileCols:      schema.Profiles.Names(),
		relationshipCols: schema.ProfileRelationships.Names(),
		rejectCols:       schema.ProfileRejects.Names(),
	}
	q.stageProfileCols = append(append([]string{}, q.profileCols...), seqColumn)
	q.stageRelCols = append(append([]string{}, q.relationshipCols...), seqColumn)

	profiles := q.profiles.Sanitize()
	rels := q.relationships.Sanitize()
	pcols := quoteList(q.profileCols)
	rcols := quoteList(q.relationshipCols)
	stageP := "pg_temp." + stageProfiles
	stageR := "pg_temp." + stageRelationships
	stageA := "pg_temp." + stageApplied
	stageL := "pg_temp." + stageLosers

	q.copyProfiles = newCopyStmt(q.profiles, q.profileCols)
	q.copyRels = newCopyStmt(q.relationships, q.relationshipCols)
	q.copyRejects = newCopyStmt(q.rejects, q.rejectCols)
	q.copyStageProfiles = newCopyStmt(pgx.Identifier{"pg_temp", stageProfiles}, q.stageProfileCols)
	q.copyStageRels = newCopyStmt(pgx.Identifier{"pg_temp", stageRelationships}, q.stageRelCols)

	q.createStaging = createTemp(stageProfiles, schema.Profiles) +
		createTemp(stageRelationships, schema.ProfileRelationships) +
		"CREATE TEMP TABLE IF NOT EXISTS " + stageApplied + " (id text NOT NULL) ON COMMIT DELETE ROWS;" +
		"CREATE TEMP TABLE IF NOT EXISTS " + stageLosers + " (id text NOT NULL, " + seqColumn + " bigint NOT NULL) ON COMMIT DELETE ROWS;"

	// Newest updated wins; a NULL updated loses to any date; between equal
	// ones the later Write wins, and within one Write the later row. The
	// losers' Writes are remembered: relationships written with a loser
	// belong to it, not to the winner.
	q.dedupe = `WITH ranked AS (
  SELECT ctid AS c, row_number() OVER (PARTITION BY id ORDER BY updated DESC NULLS LAST, ` + seqColumn + ` DESC, ctid DESC) AS n
  FROM ` + stageP + `),
gone AS (
  DELETE FROM ` + stageP + ` s USING ranked d WHERE s.ctid = d.c AND d.n > 1
  RETURNING s.id, s.` + seqColumn + `)
INSERT INTO ` + stageL + ` (id, ` + seqColumn + `) SELECT id, ` + seqColumn + ` FROM gone`

	var set []string
	for _, c := range q.profileCols {
		if c != "id" {
			set = append(set, quoteIdent(c)+" = EXCLUDED."+quoteIdent(c))
		}
	}
	// An incoming version replaces the stored one unless it is older: equal
	// timestamps replace (a re-read), and a stored row without updated is
	// always replaced, while an incoming one without updated never replaces
	// a dated one.
	q.upsert = `WITH applied AS (
  INSERT INTO ` + profiles + ` AS p (` + pcols + `)
  SELECT ` + pcols + ` FROM ` + stageP + `
  ON CONFLICT (id) DO UPDATE SET ` + strings.Join(set, ", ") + `
  WHERE p.updated IS NULL OR EXCLUDED.updated >= p.updated
  RETURNING p.id)
INSERT INTO ` + stageA + ` (id) SELECT id FROM applied`

	q.touchRunID = `UPDATE ` + profiles + ` p SET _run_id = $1 FROM ` + stageP + ` s
WHERE p.id = s.id AND p._run_id <> $1`

	// A relationship row belongs to the version of its profile written in
	// the same Write or the latest earlier one of the checkpoint, and is
	// applied when that version is; a row with no such version is dropped. In the usual checkpoint each profile comes once, with its
	// relationships in the same Write: the applied profiles' rows are then
	// made equal to the staged ones by difference, which leaves unchanged
	// memberships (and their _run_id) untouched instead of deleting and
	// inserting them again.
	var rsel []string
	for _, c := range q.relationshipCols {
		rsel = append(rsel, "r."+quoteIdent(c))
	}
	// One pass: the stored rows of the applied profiles, fully joined with
	// their staged rows; stored rows without a staged twin are deleted,
	// staged rows without a stored twin inserted. The two sets of keys are
	// disjoint, so deleting and inserting in one statement is safe; ON
	// CONFLICT only absorbs rows staged twice.
	q.syncRels = `WITH cur AS (
  SELECT t.profile_id, t.relationship, t.related_type, t.related_id
  FROM ` + rels + ` t JOIN ` + stageA + ` a ON t.profile_id = a.id),
new AS (
  SELECT ` + strings.Join(rsel, ", ") + `
  FROM ` + stageR + ` r JOIN ` + stageA + ` a ON a.id = r.profile_id),
diff AS (
  SELECT cur.profile_id AS old_profile_id, cur.relationship AS old_relationship,
    cur.related_type AS old_related_type, cur.related_id AS old_related_id, new.*
  FROM cur FULL JOIN new ON cur.profile_id = new.profile_id AND cur.relationship = new.relationship
    AND cur.related_type = new.related_type AND cur.related_id = new.related_id
  WHERE cur.profile_id IS NULL OR new.profile_id IS NULL),
gone AS (
  DELETE FROM ` + rels + ` t USING diff d
  WHERE d.profile_id IS NULL AND t.profile_id = d.old_profile_id AND t.relationship = d.old_relationship
    AND t.related_type = d.old_related_type AND t.related_id = d.old_related_id)
INSERT INTO ` + rels + ` (` + rcols + `)
SELECT ` + rcols + ` FROM diff WHERE old_profile_id IS NULL
ON CONFLICT DO NOTHING`

	// When a profile came twice, or relationships came ahead of their
	// profile, the staged relationships that belong to no surviving version
	// (a loser's, or rows before any version) are dropped first.
	q.pruneStaged = `DELETE FROM ` + stageR + ` r WHERE NOT EXISTS (
  SELECT 1 FROM ` + stageP + ` sp
  WHERE sp.id = r.profile_id AND r.` + seqColumn + ` >= sp.` + seqColumn + `
    AND NOT EXISTS (
      SELECT 1 FROM ` + stageL + ` l
      WHERE l.id = r.profile_id AND l.` + seqColumn + ` > sp.` + seqColumn + ` AND l.` + seqColumn + ` <= r.` + seqColumn + `))`

	// The staging tables have no statistics until analysed, and the
	// planner's guesses without them favour scanning the whole
	// relationships table; sampling the join columns costs a few tens of
	// milliseconds.
	q.analyzeProfiles = `ANALYZE ` + stageP + ` (id)`
	q.analyzeRels = `ANALYZE ` + stageR + ` (profile_id, relationship, related_type, related_id), ` + stageA + ` (id)`

	q.fullRefresh = `DELETE FROM ` + profiles + ` WHERE _run_id <> $1`
	q.orphanRels = `DELETE FROM ` + rels + ` r WHERE NOT EXISTS (SELECT 1 FROM ` + profiles + ` p WHERE p.id = r.profile_id)`

	q.isEmpty = `SELECT NOT EXISTS (SELECT 1 FROM ` + profiles + `) AND NOT EXISTS (SELECT 1 FROM ` + rels + `)`

	q.anyStored = `SELECT EXISTS (SELECT 1 FROM ` + profiles + ` WHERE id = ANY($1::text[]))`

	runs := s + ".etl_runs"
	runCols := []string{"run_id", "target", "started_at", "ended_at", "status", "cursor_field", "full_refresh",
		"window_start", "window_end", "records", "profiles", "relationships", "rejects", "rejected_records",
		"pages", "requests", "retries", "rate_limited", "duplicates", "nul_replaced", "error"}
	var ph, upd []string
	for i, c := range runCols {
		ph = append(ph, "$"+strconv.Itoa(i+1))
		switch c {
		case "run_id":
		case "nul_replaced":
			// The sink's own count, per commit: accumulated here so that it
			// survives resumes of the run.
			upd = append(upd, c+" = "+runs+"."+c+" + EXCLUDED."+c)
		default:
			upd = append(upd, c+" = EXCLUDED."+c)
		}
	}
	q.upsertRun = `INSERT INTO ` + runs + ` (` + strings.Join(runCols, ", ") + `, updated_at)
VALUES (` + strings.Join(ph, ", ") + `, now())
ON CONFLICT (run_id) DO UPDATE SET ` + strings.Join(upd, ", ") + `, updated_at = now()`

	state := s + ".etl_state"
	q.upsertState = `INSERT INTO ` + state + ` (key, state, schema_version, window_end_created, window_end_updated, commit_id, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, now())
ON CONFLICT (key) DO UPDATE SET state = EXCLUDED.state, schema_version = EXCLUDED.schema_version,
  window_end_created = EXCLUDED.window_end_created, window_end_updated = EXCLUDED.window_end_updated,
  commit_id = EXCLUDED.commit_id, updated_at = now()`
	q.readState = `SELECT state::text FROM ` + state + ` WHERE key = $1`
	q.landed = `SELECT EXISTS (SELECT 1 FROM ` + state + ` WHERE key = $1 AND commit_id = $2)`
	return q
}

// copyStmt is a binary COPY into one table.
type copyStmt struct {
	table string // quoted, for errors
	sql   string
	seq   bool // the staging tables' trailing _seq column
}

func newCopyStmt(table pgx.Identifier, cols []string) copyStmt {
	return copyStmt{
		table: table.Sanitize(),
		sql:   "COPY " + table.Sanitize() + " (" + quoteList(cols) + ") FROM STDIN (FORMAT binary)",
		seq:   cols[len(cols)-1] == seqColumn,
	}
}

// createTemp declares a staging table with t's columns, types and
// nullability, plus _seq.
func createTemp(name string, t *schema.Table) string {
	var b strings.Builder
	b.WriteString("CREATE TEMP TABLE IF NOT EXISTS " + name + " (")
	for _, c := range t.Columns {
		b.WriteString(quoteIdent(c.Name) + " " + c.PostgresType())
		if !c.Nullable {
			b.WriteString(" NOT NULL")
		}
		b.WriteString(", ")
	}
	b.WriteString(seqColumn + " bigint NOT NULL) ON COMMIT DELETE ROWS;")
	return b.String()
}

func quoteIdent(s string) string { return pgx.Identifier{s}.Sanitize() }

func quoteList(cols []string) string {
	q := make([]string, len(cols))
	for i, c := range cols {
		q[i] = quoteIdent(c)
	}
	return strings.Join(q, ", ")
}
