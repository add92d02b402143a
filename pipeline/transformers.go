package pipeline

import (
	"context"
	"sync"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/klaviyo-etl/klaviyo-etl/transform"
)

// transformers turn records into rows on several goroutines, one
// transform.Builder each. The transform is most of the CPU a run spends and
// records are independent of one another, so it scales with the cores; the
// runner keeps what depends on order (deduplication, progress, checkpoints)
// and hands over only the records to load.
//
// Row order across batches is not the order of delivery. Nothing depends on
// it: every sink resolves two versions of a profile by their own fields.
type transformers struct {
	in      chan job
	out     *writer
	ctx     context.Context // the sink context the writer's calls get
	builder []*transform.Builder
	batch   int // rows a builder holds before its batch goes to the writer

	pending sync.WaitGroup // jobs handed over and not yet transformed
	stopped sync.WaitGroup // worker goroutines

	mu  sync.Mutex
	err error // the first write error; later jobs are dropped
}

func newTransformers(ctx context.Context, n, batchRows int, mem memory.Allocator, opts transform.Options, out *writer) *transformers {
	n = max(1, n)
	t := &transformers{
		in:    make(chan job, 2*n),
		out:   out,
		ctx:   ctx,
		batch: max(1, batchRows/n),
	}
	for range n {
		b := transform.NewBuilder(mem, opts)
		t.builder = append(t.builder, b)
		t.stopped.Add(1)
		go t.work(b)
	}
	return t
}

func (t *transformers) work(b *transform.Builder) {
	defer t.stopped.Done()
	for j := range t.in {
		ok := t.failed() == nil
		if ok {
			for _, raw := range j.raws {
				b.Add(raw)
			}
		}
		// The rows hold copies: the records' memory can serve another page.
		j.done()
		if ok && b.Rows() >= t.batch {
			t.flushOne(b)
		}
		t.pending.Done()
	}
}

// job is records to transform, and what to call once they are read.
type job struct {
	raws [][]byte
	done func()
}

// add hands records over; it blocks while every worker is busy and the
// queue is full, which is what slows the fetching down to the transform's
// pace. done is called once raws are no longer read (not when add fails).
func (t *transformers) add(ctx context.Context, raws [][]byte, done func()) error {
	if err := t.failed(); err != nil {
		return err
	}
	t.pending.Add(1)
	select {
	case t.in <- job{raws, done}:
		return nil
	case <-ctx.Done():
		t.pending.Done()
		return ctx.Err()
	}
}

// flush waits for every job handed over, then hands each builder's rows to
// the writer. The workers are idle while it runs.
func (t *transformers) flush() error {
	t.pending.Wait()
	for _, b := range t.builder {
		if t.failed() != nil {
			break
		}
		t.flushOne(b)
	}
	return t.failed()
}

func (t *transformers) flushOne(b *transform.Builder) {
	recs := b.Flush()
	if recs.Profiles.NumRows()+recs.Relationships.NumRows()+recs.Rejects.NumRows() == 0 {
		recs.Release()
		return
	}
	if err := t.out.write(t.ctx, recs); err != nil {
		t.mu.Lock()
		if t.err == nil {
			t.err = err
		}
		t.mu.Unlock()
	}
}

func (t *transformers) failed() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.err
}

// counts adds up every builder's counters. Call it only while the workers
// are idle (after flush).
func (t *transformers) counts() transform.Counts {
	var c transform.Counts
	for _, b := range t.builder {
		c.Add(b.Counts())
	}
	return c
}

// close stops the workers and releases the builders.
func (t *transformers) close() {
	close(t.in)
	t.stopped.Wait()
	for _, b := range t.builder {
		b.Release()
	}
}
