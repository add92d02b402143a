// Package sinktest is the conformance suite every load.Sink runs, and the
// Arrow record builders tests and benchmarks share.
//
// A sink's test calls Run with a Harness: a way to make a fresh target,
// open a Sink on it and read back what a reader of record sees, plus the
// two ways sinks may legitimately differ (Upserts, ReplacesNUL):
//
//	func TestConformance(t *testing.T) {
//		sinktest.Run(t, sinktest.Harness{
//			NewTarget: func(t *testing.T) sinktest.Target {
//				dir := t.TempDir()
//				return sinktest.Target{
//					Open: func(t *testing.T) load.Sink { … New(dir, Config{}) … },
//					Read: func(t *testing.T) sinktest.Rows { … },
//				}
//			},
//		})
//	}
//
// The suite checks the lifecycle of load.Sink: the zero State of a new
// target; rows and State durable together at Commit and only then; nothing
// of an uncommitted checkpoint surviving Close; the lock; nil and empty
// records; bytes kept exactly; re-written profiles (replaced or appended);
// and a full refresh replacing the previous generation only when it
// succeeds. States are compared as JSON, exactly.
//
// Records built here (Profiles, Relationships, Rejects, GenerateProfiles)
// are in the Arrow schemas of package schema. ProfileRow carries one
// column of each kind, not all of them. The package does no I/O of its own
// and is imported only by tests.
package sinktest
