package pipeline

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/rs/zerolog"

	"github.com/klaviyo-etl/klaviyo-etl/extract"
	"github.com/klaviyo-etl/klaviyo-etl/load"
	"github.com/klaviyo-etl/klaviyo-etl/schema"
	"github.com/klaviyo-etl/klaviyo-etl/transform"
)

// Walker reads every record of a window; *extract.Client is one.
type Walker interface {
	Walk(ctx context.Context, w extract.Window, fn func(context.Context, extract.Page) error) error
	Stats() extract.Stats
}

// Run statuses stored in load.Run.Status.
const (
	StatusRunning     = "running"
	StatusSucceeded   = "succeeded"
	StatusFailed      = "failed"
	StatusInterrupted = "interrupted"
)

// Config is one run's settings. Zero fields mean the documented defaults.
type Config struct {
	// CursorField is schema.CursorCreated (default) or schema.CursorUpdated.
	CursorField string
	Revision    string
	// Since and Until bound the window of a new run; zero means the
	// incremental default (committed end minus Lookback, and now minus
	// EndMargin).
	Since, Until time.Time
	Lookback     time.Duration // default 10m
	EndMargin    time.Duration // default 5s: Klaviyo rejects bounds too close to now
	FullRefresh  bool
	// BatchRows is how many profiles are transformed before their rows are
	// handed to the sink (default 10,000); CheckpointRows and
	// CheckpointInterval say how often rows and state are committed
	// (defaults 100,000 rows, 30s), whichever comes first.
	BatchRows          int
	CheckpointRows     int
	CheckpointInterval time.Duration
	Now                func() time.Time
	Allocator          memory.Allocator
	Logger             zerolog.Logger
	// Progress, when set, is called from a separate goroutine every
	// ProgressInterval (default 1s) and once at the end.
	Progress         func(Progress)
	ProgressInterval time.Duration
	// Transformers is how many goroutines transform records (default
	// GOMAXPROCS).
	Transformers int
}

func (c *Config) defaults() error {
	switch c.CursorField {
	case "":
		c.CursorField = schema.CursorCreated
	case schema.CursorCreated, schema.CursorUpdated:
	default:
		return fmt.Errorf("cursor field %q: want %s or %s", c.CursorField, schema.CursorCreated, schema.CursorUpdated)
	}
	if c.Lookback == 0 {
		c.Lookback = 10 * time.Minute
	}
	if c.Lookback < 0 {
		return errors.New("lookback must not be negative")
	}
	if c.EndMargin == 0 {
		c.EndMargin = 5 * time.Second
	}
	if c.BatchRows <= 0 {
		c.BatchRows = 10_000
	}
	if c.CheckpointRows <= 0 {
		c.CheckpointRows = 100_000
	}
	if c.CheckpointInterval <= 0 {
		c.CheckpointInterval = 30 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Allocator == nil {
		c.Allocator = memory.NewGoAllocator()
	}
	if c.ProgressInterval <= 0 {
		c.ProgressInterval = time.Second
	}
	if c.Transformers <= 0 {
		c.Transformers = runtime.GOMAXPROCS(0)
	}
	if !c.Since.IsZero() && !c.Until.IsZero() && !c.Since.Before(c.Until) {
		return fmt.Errorf("--since %s is not before --until %s", c.Since.Format(time.RFC3339), c.Until.Format(time.RFC3339))
	}
	return nil
}

// epoch is where a first run starts when --since is not given.
var epoch = time.Unix(0, 0).UTC()

// Run exports one window into sink and returns the run's summary. The sink
// is begun and closed here. When ctx is cancelled, Run commits what is
// complete and returns an error wrapping ctx.Err().
func Run(ctx context.Context, w Walker, sink load.Sink, cfg Config) (Summary, error) {
	if err := cfg.defaults(); err != nil {
		return Summary{}, err
	}
	st, err := sink.Begin(ctx)
	if err != nil {
		return Summary{}, fmt.Errorf("begin: %w", err)
	}
	r := &runner{cfg: cfg, walker: w, sink: sink, st: st, log: cfg.Logger}
	sum, runErr := r.execute(ctx)
	if cerr := sink.Close(context.WithoutCancel(ctx)); cerr != nil && runErr == nil {
		runErr = fmt.Errorf("close sink: %w", cerr)
	}
	return sum, runErr
}

type runner struct {
	cfg    Config
	walker Walker
	sink   load.Sink
	log    zerolog.Logger

	st  load.State
	run *load.Run
	// seen holds versions loaded by earlier runs inside the lookback; never
	// modified during the run.
	seen map[string]int64

	tf     *transformers
	writer *writer
	base   load.Stats // stats committed by earlier attempts of this run
	dups   int64
	// queued counts records handed to the transformers since the last
	// checkpoint; only the runner's goroutine touches it.
	queued int

	// sinkFailed is set once a Write or Commit failed: what was staged may
	// be lost, so no later commit may claim the progress that covered it.
	sinkFailed bool

	lastCommit time.Time
	started    time.Time
	resumed    bool

	mu     sync.Mutex // guards what the progress reporter reads
	slices []extract.Slice
}

func (r *runner) execute(ctx context.Context) (Summary, error) {
	r.started = r.cfg.Now()
	if err := r.prepare(ctx); err != nil {
		return Summary{}, err
	}
	if !r.run.Start.Before(r.run.End) {
		// Nothing to read: the window is empty. Record the run and move on.
		r.run.Slices = nil
		return r.finish(ctx, ctx, nil)
	}
	if err := r.sink.Commit(ctx, r.st); err != nil {
		return Summary{}, fmt.Errorf("commit run start: %w", err)
	}
	r.lastCommit = r.cfg.Now()
	r.log.Debug().Str("run_id", r.run.ID).Time("window_start", r.run.Start).Time("window_end", r.run.End).
		Bool("resumed", r.resumed).Msg("window")

	// Sink calls get a context of their own that outlives an interruption
	// by sinkGrace: a checkpoint being committed when SIGTERM arrives is
	// finished, and so is the final commit of what is complete, while the
	// walk stops at once. A target that hangs still cannot hold the exit.
	sctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	defer stop()
	defer context.AfterFunc(ctx, func() { time.AfterFunc(sinkGrace, stop) })()

	r.writer = newWriter(r.sink)
	defer r.writer.close()
	opts := transform.Options{RunID: r.run.ID, ExtractedAt: r.started.UTC()}
	r.tf = newTransformers(sctx, r.cfg.Transformers, r.cfg.BatchRows, r.cfg.Allocator, opts, r.writer)
	defer r.tf.close()

	stopProgress := r.startProgress()
	win := extract.Window{Field: r.run.CursorField, Slices: toExtract(r.run.Slices)}
	walkErr := r.walker.Walk(ctx, win, func(_ context.Context, p extract.Page) error { return r.page(sctx, p) })
	stopProgress()
	return r.finish(ctx, sctx, walkErr)
}

// sinkGrace is how long sink calls may go on after the run is interrupted.
const sinkGrace = 8 * time.Second

// prepare decides the run: resume the one in the state, or start a new one.
func (r *runner) prepare(ctx context.Context) error {
	now := r.cfg.Now().UTC()
	if r.st.Cursors == nil {
		r.st.Cursors = map[string]*load.Cursor{}
	}
	r.st.SchemaVersion = schema.Version
	if prev := r.st.Run; prev != nil && r.resumable(prev) {
		r.run = prev
		r.run.Status = StatusRunning
		r.run.Error = ""
		r.base = prev.Stats
		r.resumed = true
		if r.run.Seen == nil {
			r.run.Seen = map[string]int64{}
		}
		r.seen = r.overlapSeen()
		return nil
	}
	if prev := r.st.Run; prev != nil {
		r.log.Info().Str("run_id", prev.ID).Msg("abandoning the unfinished run in the state: this run reads a different cursor field or starts over")
	}
	full := r.cfg.FullRefresh
	end := now.Add(-r.cfg.EndMargin).Truncate(time.Second)
	if !r.cfg.Until.IsZero() && r.cfg.Until.Before(end) {
		end = r.cfg.Until.UTC()
	}
	start := epoch
	cur := r.st.Cursors[r.cfg.CursorField]
	switch {
	case !r.cfg.Since.IsZero():
		start = r.cfg.Since.UTC()
	case cur != nil && !full:
		start = cur.End.Add(-r.cfg.Lookback)
	default:
		// A first run: start at the oldest profile rather than the epoch,
		// so slices and progress cover where the profiles are.
		if o, ok := r.walker.(interface {
			Oldest(ctx context.Context, field string) (time.Time, bool, error)
		}); ok {
			oldest, found, err := o.Oldest(ctx, r.cfg.CursorField)
			if err != nil {
				return fmt.Errorf("find the oldest profile: %w", err)
			}
			// A stray record from the future must not empty the window.
			if found && oldest.After(start) && oldest.Before(end) {
				start = oldest.UTC().Truncate(time.Second)
			}
		}
	}
	if start.After(end) {
		start = end
	}
	gen := r.st.Generation
	if full {
		gen++
	}
	r.run = &load.Run{
		ID:          newRunID(now),
		CursorField: r.cfg.CursorField,
		Revision:    r.cfg.Revision,
		Generation:  gen,
		FullRefresh: full,
		Start:       start,
		End:         end,
		StartedAt:   now,
		Status:      StatusRunning,
		Slices:      []load.Slice{{Start: start, End: end, Done: start}},
		Seen:        map[string]int64{},
	}
	r.st.Run = r.run
	r.seen = r.overlapSeen()
	return nil
}

// resumable says whether an unfinished run in the state is continued rather
// than abandoned. An unfinished full refresh is always finished first.
func (r *runner) resumable(prev *load.Run) bool {
	if prev.FullRefresh {
		return true
	}
	return !r.cfg.FullRefresh && prev.CursorField == r.cfg.CursorField
}

// overlapSeen returns the versions earlier runs loaded that this run may read
// again. A full refresh writes a new generation and skips nothing from
// earlier ones.
func (r *runner) overlapSeen() map[string]int64 {
	if r.run.FullRefresh {
		return nil
	}
	if c := r.st.Cursors[r.run.CursorField]; c != nil {
		return c.Seen
	}
	return nil
}

// page handles one delivered page: de-duplicate, hand the records to the
// transformers, and checkpoint when due. The walker calls it one page at a
// time.
func (r *runner) page(ctx context.Context, p extract.Page) error {
	job := make([][]byte, 0, len(p.Records))
	for _, rec := range p.Records {
		if rec.ID != "" && !rec.Cursor.IsZero() {
			v := rec.Cursor.Unix()
			if sv, ok := r.run.Seen[rec.ID]; ok && sv == v {
				r.dups++
				continue
			}
			if sv, ok := r.seen[rec.ID]; ok && sv == v {
				r.dups++
				continue
			}
			// Remember every version until the next checkpoint (a page may
			// repeat a record); pruneSeen then keeps only what a resume or
			// the next run could read again.
			r.run.Seen[rec.ID] = v
		}
		job = append(job, rec.Raw)
	}
	if len(job) == 0 {
		p.Release()
	} else {
		if err := r.tf.add(ctx, job, p.Release); err != nil {
			p.Release()
			r.sinkFailed = true
			return fmt.Errorf("sink: %w", err)
		}
		r.queued += len(job)
	}
	r.mu.Lock()
	r.slices = p.Progress
	r.mu.Unlock()
	r.run.Slices = fromExtract(p.Progress)

	if r.queued >= r.cfg.CheckpointRows || r.cfg.Now().Sub(r.lastCommit) >= r.cfg.CheckpointInterval {
		return r.checkpoint(ctx)
	}
	return nil
}

// flush waits until every record handed over is transformed and written.
func (r *runner) flush() error {
	err := r.tf.flush()
	if err == nil {
		err = r.writer.drain()
	}
	if err != nil {
		r.sinkFailed = true
		return fmt.Errorf("sink: %w", err)
	}
	return nil
}

// checkpoint makes every row handed over so far durable together with the
// progress that covers them.
func (r *runner) checkpoint(ctx context.Context) error {
	if err := r.flush(); err != nil {
		return err
	}
	r.pruneSeen()
	r.run.Stats = r.stats()
	if err := r.sink.Commit(ctx, r.st); err != nil {
		r.sinkFailed = true
		return fmt.Errorf("checkpoint: %w", err)
	}
	r.queued = 0
	r.lastCommit = r.cfg.Now()
	return nil
}

// pruneSeen drops ids that no resume and no later run can read again: those
// below their slice's checkpoint and outside the lookback tail. Few survive,
// so it copies them into a new map rather than deleting the rest.
func (r *runner) pruneSeen() {
	tail := r.run.End.Add(-r.cfg.Lookback).Unix()
	bounds := make([][3]int64, len(r.run.Slices))
	for i, s := range r.run.Slices {
		bounds[i] = [3]int64{s.Start.Unix(), s.End.Unix(), s.Done.Unix()}
	}
	keep := make(map[string]int64)
	for id, v := range r.run.Seen {
		if v >= tail || !belowDone(bounds, v) {
			keep[id] = v
		}
	}
	r.run.Seen = keep
}

// belowDone reports whether v lies in a slice [start, end) below its done.
func belowDone(bounds [][3]int64, v int64) bool {
	for _, b := range bounds {
		if v >= b[0] && v < b[1] {
			return v < b[2]
		}
	}
	return false
}

// finish commits the end of the run: on success the new high-water mark, on
// failure or interruption what is complete, so the next run resumes.
func (r *runner) finish(ctx, sctx context.Context, walkErr error) (Summary, error) {
	cctx := sctx
	if r.sinkFailed {
		r.run.Status = StatusFailed
		return r.summary(), walkErr
	}
	if r.tf != nil {
		if err := r.flush(); err != nil {
			return r.summary(), errors.Join(walkErr, err)
		}
	}
	r.pruneSeen()
	r.run.Stats = r.stats()
	now := r.cfg.Now().UTC()
	switch {
	case walkErr == nil:
		r.run.Status = StatusSucceeded
		r.run.EndedAt = now
		r.succeed()
	case ctx.Err() != nil:
		r.run.Status = StatusInterrupted
		r.run.Error = walkErr.Error()
		r.run.EndedAt = now
		r.st.LastRun = r.run
	default:
		r.run.Status = StatusFailed
		r.run.Error = walkErr.Error()
		r.run.EndedAt = now
		r.st.LastRun = r.run
	}
	if err := r.sink.Commit(cctx, r.st); err != nil {
		return r.summary(), errors.Join(walkErr, fmt.Errorf("commit: %w", err))
	}
	return r.summary(), walkErr
}

// succeed moves the completed run into the committed cursor.
func (r *runner) succeed() {
	run := r.run
	tail := run.End.Add(-r.cfg.Lookback).Unix()
	seen := map[string]int64{}
	if prev := r.overlapSeen(); prev != nil {
		for id, v := range prev {
			if v >= tail {
				seen[id] = v
			}
		}
	}
	for id, v := range run.Seen {
		if v >= tail && v < run.End.Unix() {
			seen[id] = v
		}
	}
	cur := &load.Cursor{End: run.End, Seen: seen}
	if run.FullRefresh {
		r.st.Generation = run.Generation
		r.st.Cursors = map[string]*load.Cursor{run.CursorField: cur}
	} else if old := r.st.Cursors[run.CursorField]; old == nil || !run.End.Before(old.End) {
		r.st.Cursors[run.CursorField] = cur
	}
	run.Seen = nil
	run.Slices = nil
	r.st.LastRun = run
	r.st.Run = nil
}

// stats adds this attempt's counters to those committed by earlier ones.
func (r *runner) stats() load.Stats {
	s := r.base
	es := r.walker.Stats()
	s.Requests += es.Requests
	if len(es.ByStatus) > 0 {
		m := make(map[string]int64, len(s.RequestsByCode)+len(es.ByStatus))
		for k, v := range s.RequestsByCode {
			m[k] = v
		}
		for code, n := range es.ByStatus {
			m[strconv.Itoa(code)] += n
		}
		s.RequestsByCode = m
	}
	s.Pages += es.Pages
	s.Retries += es.Retries
	s.RateLimited += es.RateLimited
	s.OutOfWindow += es.OutOfSlice
	s.Bytes += es.Bytes
	s.Duplicates += r.dups
	if r.tf != nil {
		c := r.tf.counts()
		s.Records += c.Records + r.dups
		s.Profiles += c.Loaded + c.LoadedWithRejects
		s.Relationships += c.Relationships
		s.Rejects += c.RejectRows
		s.RejectedWhole += c.RejectedWhole
		s.NULValues += c.NULValues
	}
	return s
}

func newRunID(now time.Time) string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return now.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])
}

func toExtract(in []load.Slice) []extract.Slice {
	out := make([]extract.Slice, len(in))
	for i, s := range in {
		out[i] = extract.Slice{Start: s.Start, End: s.End, Done: s.Done}
	}
	return out
}

func fromExtract(in []extract.Slice) []load.Slice {
	out := make([]load.Slice, len(in))
	for i, s := range in {
		out[i] = load.Slice{Start: s.Start, End: s.End, Done: s.Done}
	}
	return out
}
