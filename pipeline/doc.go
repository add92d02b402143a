// Package pipeline runs one export: it decides the window from the sink's
// committed State, walks it with the extractor, turns pages into Arrow rows
// with package transform, streams them into the sink, and commits rows and
// State together at checkpoints, so a run killed at any instant resumes from
// its last checkpoint and never writes the same profile version twice.
//
// The incremental rules (see DESIGN.md, "Incremental semantics"):
//
//   - A run reads the window [start, end) of its cursor field. end is the
//     run's start time minus a few seconds, or --until. start is the committed
//     end of the previous run minus the lookback, --since, or the Unix epoch
//     on a new target.
//   - Each slice of the window is checkpointed as "everything before Done is
//     loaded". Profiles at Done's second may be read again after a resume,
//     and so may profiles inside the lookback; both are recognised by id and
//     cursor value (Run.Seen, Cursor.Seen) and skipped.
//   - A full refresh writes a new generation and switches to it in the final
//     commit.
//
// Work is spread over goroutines: the walker's workers fetch and validate
// pages; the runner, on the walker's callback, de-duplicates and hands
// records to GOMAXPROCS transformers (one transform.Builder each); a writer
// goroutine calls the sink, so encoding or COPY overlaps the transform. At a
// checkpoint the runner waits for both, then commits. Calls into the sink
// never overlap.
//
// It does not know HTTP, JSON or storage formats: those are the extractor's,
// the transformer's and the sink's.
package pipeline
