// Package load holds the contract every destination of klaviyo-etl meets:
// the Sink interface, the State a sink persists atomically with rows, and the
// Batch of Arrow records a run hands over. The destinations live in
// load/parquet and load/postgres; load/sinktest is the conformance suite both
// run.
//
// The State's meaning (windows, slices, overlap ids) belongs to the run that
// writes it; a sink stores it verbatim and returns it unchanged, and
// guarantees only durability: rows written before a Commit and the State
// passed to it become durable together, or not at all.
//
// This package does no I/O.
package load
