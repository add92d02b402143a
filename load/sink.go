package load

import (
	"context"
	"errors"

	"github.com/apache/arrow-go/v18/arrow"
)

// Sink is a destination. Its lifecycle:
//
//  1. Begin takes the target's run lock (ErrLocked when another run holds it),
//     removes what a crashed run left behind, and returns the last committed
//     State (the zero State on a new target).
//  2. Commit with the State of the starting run (State.Run set) before the
//     first Write, so the sink knows the run and generation it writes for.
//  3. Write stages rows. They are neither durable nor visible to readers
//     until the next Commit.
//  4. Commit makes every Write since the previous Commit durable together
//     with the State passed. After a crash, Begin returns the last committed
//     State and nothing written after it survives.
//  5. Close releases the lock and discards anything written and not
//     committed. It must be called once, whatever happened before.
//
// A Sink may Retain a Batch's records until the next Commit or Close (the
// PostgreSQL sink does, to replay a checkpoint after a transient failure);
// the caller releases its own reference once Write returns.
type Sink interface {
	Begin(ctx context.Context) (State, error)
	Write(ctx context.Context, b Batch) error
	Commit(ctx context.Context, st State) error
	Close(ctx context.Context) error
}

// ErrLocked is returned by Sink.Begin when another run holds the target.
var ErrLocked = errors.New("another run holds the lock for this target")

// Batch is a set of rows for the three tables of package schema, each in
// its table's Arrow schema. A nil record means no rows for that table.
type Batch struct {
	Profiles      arrow.RecordBatch
	Relationships arrow.RecordBatch
	Rejects       arrow.RecordBatch
}

// Rows returns the number of rows in the batch, across tables.
func (b Batch) Rows() int64 {
	var n int64
	for _, r := range []arrow.RecordBatch{b.Profiles, b.Relationships, b.Rejects} {
		if r != nil {
			n += r.NumRows()
		}
	}
	return n
}
