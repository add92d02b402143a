package pipeline

import (
	"context"
	"sync"

	"github.com/klaviyo-etl/klaviyo-etl/load"
	"github.com/klaviyo-etl/klaviyo-etl/transform"
)

// writer hands batches to the sink on a goroutine of its own, so encoding
// Parquet or COPYing into PostgreSQL overlaps the transform of the next
// pages. At most one batch waits while another is written, so memory stays
// bounded. Calls into the sink never overlap: drain waits for every Write
// before the runner commits.
type writer struct {
	sink load.Sink
	in   chan writeReq
	wg   sync.WaitGroup // batches handed over and not yet written
	done chan struct{}

	mu  sync.Mutex
	err error // the first Write error; later batches are released unwritten
}

type writeReq struct {
	ctx  context.Context
	recs transform.Records
}

func newWriter(sink load.Sink) *writer {
	w := &writer{sink: sink, in: make(chan writeReq, 1), done: make(chan struct{})}
	go w.loop()
	return w
}

func (w *writer) loop() {
	defer close(w.done)
	for req := range w.in {
		if w.failed() == nil {
			b := load.Batch{Profiles: req.recs.Profiles, Relationships: req.recs.Relationships, Rejects: req.recs.Rejects}
			if err := w.sink.Write(req.ctx, b); err != nil {
				w.mu.Lock()
				w.err = err
				w.mu.Unlock()
			}
		}
		req.recs.Release()
		w.wg.Done()
	}
}

// write queues a batch; it blocks while the queue is full. The writer
// releases the records.
func (w *writer) write(ctx context.Context, recs transform.Records) error {
	if err := w.failed(); err != nil {
		recs.Release()
		return err
	}
	w.wg.Add(1)
	select {
	case w.in <- writeReq{ctx: ctx, recs: recs}:
		return nil
	case <-ctx.Done():
		w.wg.Done()
		recs.Release()
		return ctx.Err()
	}
}

// drain waits until every queued batch is written and returns the first
// Write error.
func (w *writer) drain() error {
	w.wg.Wait()
	return w.failed()
}

func (w *writer) failed() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// close stops the goroutine after the queue is drained.
func (w *writer) close() {
	close(w.in)
	<-w.done
}
