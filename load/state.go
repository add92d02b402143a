package load

import "time"

// State is everything a target remembers between runs. It is written as
// JSON (the Parquet sink's _state.json, the PostgreSQL sink's etl_state), so
// field names are part of the on-disk format: add fields, never rename.
type State struct {
	SchemaVersion int `json:"schema_version"`
	// Generation counts full refreshes. Rows written for a generation older
	// than the current one are dropped when a refresh completes.
	Generation int `json:"generation"`
	// Cursors is keyed by cursor field ("created", "updated").
	Cursors map[string]*Cursor `json:"cursors,omitempty"`
	// Run is the run in progress, or nil between runs.
	Run *Run `json:"run,omitempty"`
	// LastRun is the most recent run that ended, successfully or not.
	LastRun *Run `json:"last_run,omitempty"`
}

// Cursor is the committed high-water mark of one cursor field.
type Cursor struct {
	// End is the end of the last completed window: every profile whose
	// cursor is before End has been loaded.
	End time.Time `json:"end"`
	// Seen maps id to cursor value (Unix seconds) for profiles already
	// loaded whose cursor lies inside the lookback before End, so a later run
	// that reads that overlap again does not write the same version twice.
	Seen map[string]int64 `json:"seen,omitempty"`
}

// Run is one run's window and progress. A run killed at any instant resumes
// from its last committed Run.
type Run struct {
	ID          string    `json:"id"`
	CursorField string    `json:"cursor_field"`
	Revision    string    `json:"revision,omitempty"`
	Generation  int       `json:"generation"`
	FullRefresh bool      `json:"full_refresh,omitempty"`
	Start       time.Time `json:"start"` // window start, inclusive
	End         time.Time `json:"end"`   // window end, exclusive
	StartedAt   time.Time `json:"started_at"`
	EndedAt     time.Time `json:"ended_at,omitzero"`
	// Status is "running", "succeeded", "failed" or "interrupted".
	Status string  `json:"status"`
	Error  string  `json:"error,omitempty"`
	Slices []Slice `json:"slices,omitempty"`
	// Seen maps id to cursor value (Unix seconds) for profiles this run has
	// loaded at a slice's current boundary second or inside the lookback
	// before End.
	Seen  map[string]int64 `json:"seen,omitempty"`
	Stats Stats            `json:"stats"`
}

// Slice is one disjoint part [Start, End) of a run's window. Everything in
// [Start, Done) has been loaded.
type Slice struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	Done  time.Time `json:"done"`
}

// Finished reports whether the whole slice has been loaded.
func (s Slice) Finished() bool { return !s.Done.Before(s.End) }

// Stats are a run's counters, cumulative across resumes of the same run.
type Stats struct {
	Requests       int64            `json:"requests"`
	RequestsByCode map[string]int64 `json:"requests_by_status,omitempty"`
	Pages          int64            `json:"pages"`
	Retries        int64            `json:"retries"`
	RateLimited    int64            `json:"rate_limited"` // 429s received
	Records        int64            `json:"records"`      // records received
	Profiles       int64            `json:"profiles"`     // profile rows written
	Relationships  int64            `json:"relationships"`
	Rejects        int64            `json:"rejects"`          // reject rows written
	RejectedWhole  int64            `json:"rejected_records"` // records not loaded at all
	Duplicates     int64            `json:"duplicates"`       // versions already loaded, skipped
	OutOfWindow    int64            `json:"out_of_window"`    // records outside the requested window, dropped
	NULValues      int64            `json:"nul_values"`       // string values holding U+0000
	Bytes          int64            `json:"bytes"`            // response bytes decoded
}
