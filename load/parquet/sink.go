package parquet

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/rs/zerolog"

	"github.com/klaviyo-etl/klaviyo-etl/load"
	"github.com/klaviyo-etl/klaviyo-etl/schema"
)

// Defaults chosen by BenchmarkWrite (see the package documentation).
const (
	DefaultCompression  = "zstd"
	DefaultRowGroupRows = 64 * 1024
	defaultZstdLevel    = 1
)

// Config configures a Sink. Zero fields take the documented defaults.
type Config struct {
	// Compression is the codec of every column: "zstd" (default), "snappy",
	// "gzip", "brotli", "lz4" (LZ4_RAW) or "none".
	Compression string
	// CompressionLevel is the codec's level; 0 means the codec's default,
	// for zstd level 1, the fastest. zstd levels map onto four speeds: 1–2,
	// 3–5, 6–9 and 10 and above.
	CompressionLevel int
	// RowGroupRows is the number of rows per row group (default
	// DefaultRowGroupRows). A table's open row group is what a Sink holds
	// in memory, so this bounds memory too.
	RowGroupRows int64
	// Revision is the Klaviyo API revision, written into every file's
	// metadata. Empty means the revision of the run's State.
	Revision string
	Logger   zerolog.Logger
}

// Sink writes the tables of package schema as Parquet files under one
// output folder; see the package documentation for the layout. It
// implements load.Sink. Its methods may be called from several goroutines;
// they run one at a time.
type Sink struct {
	dir        string
	cfg        Config
	log        zerolog.Logger
	props      *parquet.WriterProperties
	arrowProps pqarrow.ArrowWriterProperties
	schemas    map[string]*arrow.Schema

	mu       sync.Mutex
	lock     *os.File // the output folder, flocked; nil before Begin and after Close
	began    bool
	closed   bool
	failed   error     // a Write or Commit failed part way: nothing more is accepted
	sf       stateFile // as last committed
	run      *runInfo  // the run of the last committed State, nil between runs
	openedAt time.Time
	writers  map[string]*tableWriter // this checkpoint's files, by table
	create   createFunc
}

// runInfo is what a Sink keeps of the committed State's Run: the caller's
// State is not retained.
type runInfo struct {
	id         string
	revision   string
	generation int
	startedAt  time.Time
}

var _ load.Sink = (*Sink)(nil)

// New returns a Sink writing under dir, which is created by Begin if
// missing. New does no I/O.
func New(dir string, cfg Config) (*Sink, error) {
	if dir == "" {
		return nil, errors.New("parquet sink: output folder is empty")
	}
	codec, level, err := codecOf(cfg.Compression, cfg.CompressionLevel)
	if err != nil {
		return nil, fmt.Errorf("parquet sink: %w", err)
	}
	switch {
	case cfg.RowGroupRows < 0:
		return nil, fmt.Errorf("parquet sink: row group rows %d is negative", cfg.RowGroupRows)
	case cfg.RowGroupRows == 0:
		cfg.RowGroupRows = DefaultRowGroupRows
	}
	s := &Sink{
		dir:        filepath.Clean(dir),
		cfg:        cfg,
		log:        cfg.Logger.With().Str("sink", "parquet").Logger(),
		props:      writerProperties(codec, level, cfg.RowGroupRows),
		arrowProps: pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema()),
		schemas:    make(map[string]*arrow.Schema, len(schema.Tables)),
		writers:    make(map[string]*tableWriter),
		create:     os.OpenFile,
	}
	for _, t := range schema.Tables {
		s.schemas[t.Name] = t.ArrowSchema()
	}
	return s, nil
}

func codecOf(name string, level int) (compress.Compression, int, error) {
	var codec compress.Compression
	switch strings.ToLower(name) {
	case "", "zstd":
		codec = compress.Codecs.Zstd
		if level == 0 {
			level = defaultZstdLevel
		}
	case "snappy":
		codec = compress.Codecs.Snappy
	case "gzip":
		codec = compress.Codecs.Gzip
	case "brotli":
		codec = compress.Codecs.Brotli
	case "lz4", "lz4_raw":
		codec = compress.Codecs.Lz4Raw
	case "none", "uncompressed":
		codec = compress.Codecs.Uncompressed
	default:
		return 0, 0, fmt.Errorf("unknown compression %q", name)
	}
	if level == 0 {
		level = compress.DefaultCompressionLevel
	}
	return codec, level, nil
}

// noDictionary lists the columns whose values are nearly all distinct, or
// distinct enough that a dictionary saves little: building one costs time
// (arrow-go's memo table allocates per value) and saves nothing.
var noDictionary = map[string][]string{
	schema.Profiles.Name: {"id", "email", "phone_number", "external_id", "anonymous_id",
		"last_name", "organization", "image", "location_address1", "location_address2", "location_zip",
		"location_ip", "location_latitude", "location_longitude",
		"created", "updated", "last_event_date", "properties", "subscriptions", "predictive_analytics"},
	schema.ProfileRejects.Name: {"raw"},
}

// noStatistics lists the columns whose min/max no query prunes by.
var noStatistics = []string{"properties", "subscriptions", "predictive_analytics", "raw"}

func writerProperties(codec compress.Compression, level int, rowGroupRows int64) *parquet.WriterProperties {
	opts := []parquet.WriterProperty{
		parquet.WithCompression(codec),
		parquet.WithCompressionLevel(level),
		parquet.WithMaxRowGroupLength(rowGroupRows),
	}
	// One set of properties serves all three tables, keyed by column name;
	// no name listed appears in another table with other needs.
	for _, cols := range noDictionary {
		for _, c := range cols {
			opts = append(opts, parquet.WithDictionaryFor(c, false))
		}
	}
	for _, c := range noStatistics {
		opts = append(opts, parquet.WithStatsFor(c, false))
	}
	return parquet.NewWriterProperties(opts...)
}

// Begin locks the output folder (load.ErrLocked when another process
// holds it), creates it and its table folders if missing, removes every
// file a crashed run left in the table folders (temporary files and files
// the state file does not list) and returns the last committed State.
func (s *Sink) Begin(ctx context.Context) (load.State, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return load.State{}, errors.New("parquet sink: begin after close")
	case s.began:
		return load.State{}, errors.New("parquet sink: begin called twice")
	}
	if err := ctx.Err(); err != nil {
		return load.State{}, fmt.Errorf("parquet sink: begin: %w", err)
	}
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return load.State{}, fmt.Errorf("parquet sink: create output folder: %w", err)
	}
	lock, err := lockDir(s.dir)
	if err != nil {
		return load.State{}, fmt.Errorf("parquet sink: %w", err)
	}
	sf, found, err := readStateFile(s.dir)
	if err == nil {
		err = s.prepare(sf)
	}
	if err != nil {
		_ = lock.Close()
		return load.State{}, fmt.Errorf("parquet sink: %w", err)
	}
	s.lock, s.began, s.sf, s.openedAt = lock, true, sf, time.Now().UTC()
	s.run = runOf(sf.State.Run)
	s.log.Debug().Str("dir", s.dir).Bool("state_found", found).Int("generation", sf.Generation).
		Bool("refresh_pending", sf.Pending != nil).Msg("parquet sink ready")
	return sf.State, nil
}

// prepare creates the table folders and removes what a crashed run left.
func (s *Sink) prepare(sf stateFile) error {
	listed := sf.listed()
	for _, t := range schema.Tables {
		dir := filepath.Join(s.dir, t.Name)
		if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("create table folder: %w", err)
		}
		entries, err := os.ReadDir(dir)
		if err != nil {
			return fmt.Errorf("read table folder: %w", err)
		}
		removed := 0
		for _, e := range entries {
			name := e.Name()
			// Only names this package writes are removed: anything else in
			// the folder was put there by someone else.
			if listed[filepath.Join(t.Name, name)] || !e.Type().IsRegular() ||
				!(strings.HasPrefix(name, tempPrefix) || strings.HasSuffix(name, fileSuffix)) {
				continue
			}
			if err := os.Remove(filepath.Join(dir, name)); err != nil {
				return fmt.Errorf("remove debris: %w", err)
			}
			removed++
			s.log.Debug().Str("file", filepath.Join(t.Name, name)).Msg("removed file of an uncommitted checkpoint")
		}
		if removed > 0 {
			if err := syncDir(dir); err != nil {
				return err
			}
		}
	}
	for rel := range listed {
		if _, err := os.Stat(filepath.Join(s.dir, rel)); err != nil {
			return fmt.Errorf("file listed in %s: %w", StateFile, err)
		}
	}
	if err := os.Remove(filepath.Join(s.dir, stateTempName)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove debris: %w", err)
	}
	return nil
}

func runOf(r *load.Run) *runInfo {
	if r == nil {
		return nil
	}
	return &runInfo{id: r.ID, revision: r.Revision, generation: r.Generation, startedAt: r.StartedAt}
}

func (s *Sink) usable() error {
	switch {
	case s.closed:
		return errors.New("parquet sink: closed")
	case !s.began:
		return errors.New("parquet sink: not begun")
	case s.failed != nil:
		return fmt.Errorf("parquet sink: unusable after an earlier failure: %w", s.failed)
	}
	return nil
}

// Write appends the batch's rows to this checkpoint's files, one per table,
// opened on a table's first rows. Rows reach the disk a row group at a time
// and stay invisible until Commit. After a Write error the Sink accepts
// nothing but Close.
func (s *Sink) Write(ctx context.Context, b load.Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usable(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("parquet sink: write: %w", err)
	}
	recs := [...]struct {
		t *schema.Table
		r arrow.RecordBatch
	}{{schema.Profiles, b.Profiles}, {schema.ProfileRelationships, b.Relationships}, {schema.ProfileRejects, b.Rejects}}
	for _, x := range recs {
		if x.r != nil && !x.r.Schema().Equal(s.schemas[x.t.Name]) {
			return fmt.Errorf("parquet sink: %s record does not have the table's schema: %s", x.t.Name, x.r.Schema())
		}
	}
	for _, x := range recs {
		if x.r == nil || x.r.NumRows() == 0 {
			continue
		}
		w, err := s.writer(x.t)
		if err == nil {
			err = w.write(x.r)
		}
		if err != nil {
			s.failed = err
			return fmt.Errorf("parquet sink: %w", err)
		}
	}
	return nil
}

// writeGeneration is the generation rows written now belong to: the
// committed run's, or the live one between runs.
func (s *Sink) writeGeneration() int {
	if s.run != nil {
		return s.run.generation
	}
	return s.sf.Generation
}

func (s *Sink) runID() string {
	if s.run != nil {
		return s.run.id
	}
	return ""
}

func (s *Sink) writer(t *schema.Table) (*tableWriter, error) {
	if w := s.writers[t.Name]; w != nil {
		return w, nil
	}
	gen := s.writeGeneration()
	start, id, rev := s.openedAt, "", s.cfg.Revision
	if s.run != nil {
		id = s.run.id
		if !s.run.startedAt.IsZero() {
			start = s.run.startedAt
		}
		if rev == "" {
			rev = s.run.revision
		}
	}
	name := fileName(gen, start, id, s.sf.Sequence+1)
	w, err := openTableWriter(s.create, s.dir, t, s.schemas[t.Name], name,
		fileMeta{revision: rev, runID: id, generation: strconv.Itoa(gen)}, s.props, s.arrowProps)
	if err != nil {
		return nil, err
	}
	s.writers[t.Name] = w
	return w, nil
}

// Commit finishes this checkpoint's files (footer, fsync, final name,
// folder fsync) and then replaces the state file with one listing them and
// holding st. Files of a full refresh are listed as pending until the
// Commit whose State ends the refresh successfully (Run nil, LastRun of the
// refresh's generation with Status "succeeded"), which makes them the live
// set; the previous generation's files are removed once that is durable.
// After a Commit error the state file is as before and the Sink accepts
// nothing but Close.
func (s *Sink) Commit(ctx context.Context, st load.State) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usable(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("parquet sink: commit: %w", err)
	}
	if st.Run != nil && st.Run.Generation < s.sf.Generation {
		return fmt.Errorf("parquet sink: run generation %d is older than the output's generation %d", st.Run.Generation, s.sf.Generation)
	}

	written, err := s.finishWriters()
	if err != nil {
		s.failed = err
		return fmt.Errorf("parquet sink: commit: %w", err)
	}

	next := s.sf.clone()
	next.State = st
	var obsolete []string
	if len(written) > 0 {
		next.Sequence++
		set, drop, err := next.place(s.writeGeneration(), s.runID())
		if err != nil {
			s.discard(written)
			s.failed = err
			return fmt.Errorf("parquet sink: commit: %w", err)
		}
		obsolete = append(obsolete, drop...)
		for table, name := range written {
			set[table] = append(set[table], name)
		}
	}
	if st.Run != nil {
		_, drop, err := next.place(st.Run.Generation, st.Run.ID)
		if err != nil {
			s.discard(written)
			s.failed = err
			return fmt.Errorf("parquet sink: commit: %w", err)
		}
		obsolete = append(obsolete, drop...)
	} else if p := next.Pending; p != nil && st.LastRun != nil &&
		st.LastRun.Status == "succeeded" && st.LastRun.Generation == p.Generation {
		obsolete = append(obsolete, relPaths(next.Files)...)
		next.Generation, next.Files, next.Pending = p.Generation, p.Files, nil
		s.log.Debug().Int("generation", next.Generation).Msg("full refresh complete: its files are now the live set")
	}

	if err := writeStateFile(s.dir, next); err != nil {
		s.discard(written)
		s.failed = err
		return fmt.Errorf("parquet sink: commit: %w", err)
	}
	s.sf = next
	s.run = runOf(st.Run)
	s.log.Debug().Int("files", len(written)).Int("sequence", next.Sequence).Msg("checkpoint committed")
	s.removeObsolete(obsolete)
	return nil
}

// finishWriters finishes this checkpoint's files and returns their names by
// table. On error none of them stays.
func (s *Sink) finishWriters() (map[string]string, error) {
	written := make(map[string]string, len(s.writers))
	var err error
	for _, t := range schema.Tables {
		w := s.writers[t.Name]
		if w == nil {
			continue
		}
		if err == nil {
			if err = w.finish(); err == nil {
				written[t.Name] = filepath.Base(w.final)
			}
		} else {
			_ = w.abort()
		}
	}
	s.writers = make(map[string]*tableWriter)
	if err == nil {
		for table := range written {
			if err = syncDir(filepath.Join(s.dir, table)); err != nil {
				break
			}
		}
	}
	if err != nil {
		s.discard(written)
		return nil, err
	}
	return written, nil
}

// discard removes finished files that will not be listed. Begin would
// remove them anyway; this keeps the folder clean when the process lives on.
func (s *Sink) discard(written map[string]string) {
	for table, name := range written {
		if err := os.Remove(filepath.Join(s.dir, table, name)); err != nil {
			s.log.Debug().Err(err).Msg("remove unlisted file")
		}
	}
}

// place returns the file set that files of generation gen written by run
// runID go into, and the files (folder relative) a switch of generation or
// of refresh run makes obsolete.
func (sf *stateFile) place(gen int, runID string) (map[string][]string, []string, error) {
	switch {
	case gen < sf.Generation:
		return nil, nil, fmt.Errorf("generation %d is older than the output's generation %d", gen, sf.Generation)
	case gen == sf.Generation:
		// A run of the live generation abandons an unfinished refresh.
		var drop []string
		if sf.Pending != nil {
			drop = relPaths(sf.Pending.Files)
			sf.Pending = nil
		}
		return sf.Files, drop, nil
	}
	var drop []string
	if sf.Pending != nil && (sf.Pending.Generation != gen || sf.Pending.RunID != runID) {
		drop = relPaths(sf.Pending.Files)
		sf.Pending = nil
	}
	if sf.Pending == nil {
		sf.Pending = &pendingFiles{Generation: gen, RunID: runID, Files: emptyFileSet()}
	}
	return sf.Pending.Files, drop, nil
}

func relPaths(set map[string][]string) []string {
	var out []string
	for table, names := range set {
		for _, n := range names {
			out = append(out, filepath.Join(table, n))
		}
	}
	return out
}

// removeObsolete removes files the committed state file no longer lists.
// A failure is harmless: the next Begin removes unlisted files.
func (s *Sink) removeObsolete(rel []string) {
	dirs := make(map[string]bool)
	for _, r := range rel {
		if err := os.Remove(filepath.Join(s.dir, r)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			s.log.Debug().Err(err).Msg("remove file of a replaced generation")
			continue
		}
		dirs[filepath.Dir(r)] = true
	}
	for d := range dirs {
		if err := syncDir(filepath.Join(s.dir, d)); err != nil {
			s.log.Debug().Err(err).Msg("sync table folder")
		}
	}
	if len(rel) > 0 {
		s.log.Debug().Int("files", len(rel)).Msg("removed files no longer listed")
	}
}

// Close removes this checkpoint's unfinished files and releases the lock.
// Calls after the first do nothing.
func (s *Sink) Close(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	var errs []error
	for _, t := range schema.Tables {
		if w := s.writers[t.Name]; w != nil {
			errs = append(errs, w.abort())
		}
	}
	s.writers = nil
	if s.lock != nil {
		errs = append(errs, s.lock.Close())
		s.lock = nil
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("parquet sink: close: %w", err)
	}
	return nil
}
