package extract

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/url"
	"runtime"
	"sort"
	"sync"
	"time"
)

// Slice is one disjoint part [Start, End) of a window. Every record whose
// cursor is in [Start, Done) has been delivered; Done == End means the slice
// is finished.
type Slice struct {
	Start, End, Done time.Time
}

// Finished reports whether the whole slice has been delivered.
func (s Slice) Finished() bool { return !s.Done.Before(s.End) }

// Window is what one Walk reads: records whose Field ("created" or
// "updated") lies in the union of Slices. A fresh run passes one slice
// {start, end, start}; a resumed run passes its checkpointed slices.
type Window struct {
	Field  string
	Slices []Slice
}

// Record is one element of a page's data array.
type Record struct {
	// ID is data[i].id, or "" when it is missing or not a string.
	ID string
	// Cursor is attributes.<field> in UTC, or zero when it is missing or
	// unparseable. Such records are still delivered.
	Cursor time.Time
	// Raw is the element exactly as received. It aliases the page's body,
	// which a later response is read into once the page is released
	// (Page.Release): what must outlive that is to be copied.
	Raw []byte
}

// Page is one response's records, handed to Walk's callback.
type Page struct {
	Slice   int // index into Progress
	Records []Record
	Bytes   int // body size
	// Progress is every slice after this page is applied. Slices appended by
	// splits keep their index for the rest of the Walk.
	Progress []Slice

	lease lease
}

// Release hands the page's body back, for a later response to be read into.
// Call it once no record's Raw is read any more, from any goroutine; later
// calls do nothing. A page never released is garbage collected as usual.
func (p Page) Release() { p.lease.release() }

const (
	// maxStaleRestarts bounds restarts of one slice after a rejected cursor
	// that got no further than the previous restart; maxRestartsPerSecond
	// bounds all restarts at one cursor second.
	maxStaleRestarts     = 3
	maxRestartsPerSecond = 20
	maxAutoWorkers       = 64
	minSplitPages        = 4
	outBuffer            = 8
)

// Walk fetches every record of the window and calls fn for each page, one
// call at a time (never concurrently), in an order where a slice's pages
// arrive in order. Progress in the page passed to fn covers exactly the
// pages delivered so far including this one; a slice's Done is the cursor of
// its last delivered record truncated to the second (records at that second
// may still follow), or End once it is finished.
//
// Slices are walked concurrently, each following its own links.next chain;
// when one finishes, the largest remaining one is split at the midpoint of
// what is left of it, so every worker stays busy (a slice whose density so
// far says fewer than a few pages are left is not split: that would buy
// only empty pages). A resumed slice starts at its Done: records at that
// second are read again (the caller drops them by id), records before it
// are dropped and counted as OutOfSlice. An empty slice (Start == End) is
// finished already.
//
// fn returning an error stops every worker and Walk returns that error.
// Cancelling ctx stops every worker promptly. Walk returns ErrForeignNext,
// ErrCursorLoop or an *APIError (wrapped) when a slice cannot go on.
func (c *Client) Walk(ctx context.Context, win Window, fn func(ctx context.Context, p Page) error) error {
	if win.Field != "created" && win.Field != "updated" {
		return fmt.Errorf("walk: cursor field %q: must be created or updated", win.Field)
	}
	if err := checkSlices(win.Slices); err != nil {
		return fmt.Errorf("walk: %w", err)
	}
	wctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	w := &walker{c: c, field: win.Field, ctx: wctx, cancel: cancel, out: make(chan pageMsg, outBuffer)}
	pending := 0
	for _, s := range win.Slices {
		st := sliceState{Slice: s, pos: s.Done, from: s.Done}
		if s.Finished() {
			st.Done, st.fetched = s.End, true
		} else {
			pending++
		}
		w.slices = append(w.slices, st)
	}
	if pending == 0 {
		return nil
	}
	w.fixed = c.cfg.Concurrency > 0
	w.target = c.cfg.Concurrency
	if !w.fixed {
		w.target = c.autoWorkers()
		// Start small and grow while the consumer waits for pages: when
		// the budget is far above what the consumer takes, more chains
		// only compete with it for CPU and hold page bodies.
		w.target = min(w.target, autoStartWorkers())
	}
	w.blindSplits = w.target - pending
	if w.target > 1 && c.st.pages.Load() == 0 {
		// Nothing has answered this client yet: one request goes first, so
		// that a wrong key or revision is sent once, not once per chain.
		if _, _, err := c.Oldest(ctx, win.Field); err != nil {
			return fmt.Errorf("walk: %w", err)
		}
	}
	w.mu.Lock()
	for i := 0; i < w.target; i++ {
		w.spawnLocked()
	}
	w.mu.Unlock()
	go func() {
		w.wg.Wait()
		close(w.out)
	}()

	var fnErr error
	for msg := range w.out {
		if fnErr != nil || wctx.Err() != nil {
			msg.lease.release()
			continue // drain: workers are stopping
		}
		p := w.deliver(msg)
		// The consumer gets the caller's context: a failing sibling worker
		// stops the fetching, not the commit of what was delivered.
		if err := fn(ctx, p); err != nil {
			fnErr = err
			cancel(err)
		}
	}
	switch {
	case fnErr != nil:
		return fnErr
	case ctx.Err() != nil:
		return ctx.Err()
	case w.err != nil:
		return w.err
	}
	for i, s := range w.slices {
		if !s.Finished() {
			return fmt.Errorf("walk: slice %d [%s, %s) ended at %s unfinished", i, s.Start, s.End, s.Done)
		}
	}
	return nil
}

// checkSlices rejects empty, inverted and overlapping slices.
func checkSlices(slices []Slice) error {
	idx := make([]int, len(slices))
	for i, s := range slices {
		idx[i] = i
		if s.Start.IsZero() || s.End.IsZero() {
			// Zero would be year 1: the caller picks a start before the
			// account's first profile instead.
			return fmt.Errorf("slice %d: start and end must be set", i)
		}
		if s.End.Before(s.Start) {
			return fmt.Errorf("slice %d [%s, %s): end before start", i, s.Start, s.End)
		}
		if s.Done.Before(s.Start) || s.Done.After(s.End) {
			return fmt.Errorf("slice %d: done %s outside [%s, %s]", i, s.Done, s.Start, s.End)
		}
	}
	sort.Slice(idx, func(a, b int) bool { return slices[idx[a]].Start.Before(slices[idx[b]].Start) })
	for k := 1; k < len(idx); k++ {
		if slices[idx[k]].Start.Before(slices[idx[k-1]].End) {
			return fmt.Errorf("slices %d and %d overlap", idx[k-1], idx[k])
		}
	}
	return nil
}

// autoStartWorkers is how many chains --concurrency auto starts with at
// most; maybeGrow adds more while pages are not arriving fast enough.
func autoStartWorkers() int { return 2 * runtime.GOMAXPROCS(0) }

// autoWorkers is how many chains keep the steady budget busy: requests per
// second times the time one takes, with headroom for latency spread.
func (c *Client) autoWorkers() int {
	n := int(math.Ceil(c.steady.perSecond()*c.observedLatency().Seconds()*1.25)) + 1
	return max(1, min(n, maxAutoWorkers, c.burst.N))
}

type walker struct {
	c      *Client
	field  string
	ctx    context.Context
	cancel context.CancelCauseFunc
	out    chan pageMsg
	wg     sync.WaitGroup

	mu      sync.Mutex
	slices  []sliceState
	running int
	fixed   bool
	target  int
	err     error
	// blindSplits is how many splits of slices not yet heard from remain
	// for the initial fan-out.
	blindSplits int
}

type sliceState struct {
	Slice // Done is what has been delivered
	// pos is the fetch position: the cursor of the newest record fetched,
	// truncated to the second (at least the Done the chain started from).
	pos time.Time
	// from is where the current chain started; fetchedRecs counts records
	// it brought in, atPos those of them at the pos second, for the density
	// estimate (a bulk import on one second says nothing about the rest).
	from        time.Time
	pages       int64
	fetchedRecs int64
	atPos       int64
	busy        bool // a worker walks it
	fetched     bool // its chain has ended; Done becomes End on delivery
}

type pageMsg struct {
	slice   int
	records []Record
	bytes   int
	done    time.Time
	lease   lease
}

func (w *walker) spawnLocked() {
	w.running++
	w.wg.Add(1)
	go w.work()
}

func (w *walker) fail(err error) {
	w.mu.Lock()
	if w.err == nil {
		w.err = err
	}
	w.mu.Unlock()
	w.cancel(err)
}

func (w *walker) work() {
	defer w.wg.Done()
	for {
		idx, ok := w.acquire()
		if !ok {
			return
		}
		if err := w.walkSlice(idx); err != nil {
			w.fail(err)
			return
		}
	}
}

// acquire hands a worker a slice: one nobody walks, or a new one split off
// the largest remaining. It returns false when the worker should stop.
func (w *walker) acquire() (int, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ctx.Err() != nil || (!w.fixed && w.running > 1 && w.running > w.target*5/4+1) {
		w.running--
		return 0, false
	}
	for i := range w.slices {
		if s := &w.slices[i]; !s.busy && !s.fetched {
			s.busy = true
			return i, true
		}
	}
	if i, ok := w.splitLocked(); ok {
		return i, true
	}
	w.running--
	return 0, false
}

// splitPoint returns the whole second halfway through what is left of a
// slice, if there is one strictly inside it and the slice's density so far
// says the rest holds a few pages: splitting a sparse tail only buys empty
// pages, and a split just ahead of a page in flight drops what that page
// brings from beyond it.
func (w *walker) splitPoint(s *sliceState) (time.Time, bool) {
	if !s.busy || s.fetched {
		return time.Time{}, false
	}
	mid := s.pos.Add(s.End.Sub(s.pos) / 2).Truncate(time.Second)
	if !mid.After(s.pos) || !mid.Before(s.End) {
		return time.Time{}, false
	}
	if s.pages == 0 {
		// Nothing known about it yet: split blindly only to fan out at the
		// start, not again and again while its first page is held up.
		return mid, w.blindSplits > 0
	}
	read := s.pos.Sub(s.from)
	if read <= 0 {
		// Still on its first second: a long tie says nothing about the
		// rest, an empty start says it is sparse.
		return mid, s.fetchedRecs > 0
	}
	page := w.c.cfg.PageSize
	expected := float64(s.fetchedRecs-s.atPos) * float64(s.End.Sub(s.pos)) / float64(read)
	return mid, expected >= float64(minSplitPages*page)
}

func (w *walker) splitLocked() (int, bool) {
	best, bestLeft := -1, time.Duration(0)
	for i := range w.slices {
		s := &w.slices[i]
		if _, ok := w.splitPoint(s); ok && s.End.Sub(s.pos) > bestLeft {
			best, bestLeft = i, s.End.Sub(s.pos)
		}
	}
	if best < 0 {
		return 0, false
	}
	s := &w.slices[best]
	mid, _ := w.splitPoint(s)
	if s.pages == 0 {
		w.blindSplits--
	}
	end := s.End
	s.End = mid
	w.slices = append(w.slices, sliceState{Slice: Slice{Start: mid, End: end, Done: mid}, pos: mid, from: mid, busy: true})
	w.c.st.splits.Add(1)
	w.c.log.Debug().Int("slice", best).Int("new", len(w.slices)-1).Time("pos", s.pos).Time("at", mid).Time("end", end).
		Int64("fetched", s.fetchedRecs).Msg("split slice")
	return len(w.slices) - 1, true
}

// maybeGrow starts another worker when the observed latency says more
// chains are needed to keep the steady budget busy.
func (w *walker) maybeGrow() {
	if w.fixed {
		return
	}
	t := w.c.autoWorkers()
	w.mu.Lock()
	defer w.mu.Unlock()
	w.target = t
	if w.running >= t || w.ctx.Err() != nil {
		return
	}
	for i := range w.slices {
		if s := &w.slices[i]; !s.busy && !s.fetched {
			w.spawnLocked()
			return
		}
	}
	for i := range w.slices {
		if _, ok := w.splitPoint(&w.slices[i]); ok {
			w.spawnLocked()
			return
		}
	}
}

// span names the part of the window a chain reads, for errors a user reads.
func (w *walker) span(from, end time.Time) string {
	return fmt.Sprintf("profiles %s in [%s, %s)", w.field, from.UTC().Format(time.RFC3339), end.UTC().Format(time.RFC3339))
}

// walkSlice follows one slice's links.next chain to its end.
func (w *walker) walkSlice(idx int) error {
	c := w.c
	w.mu.Lock()
	from, reqEnd := w.slices[idx].pos, w.slices[idx].End
	w.mu.Unlock()
	cursor := ""
	seen := map[string]struct{}{}
	// A restart is stale when the chain got no further (in pages, without
	// reaching a new second) than before the previous one: a tie too long
	// for the cursor's lifetime would otherwise be re-read forever.
	stale, depth, lastDepth, sinceAdvance := 0, 0, -1, 0
	for {
		q := c.query(w.field, from, reqEnd, cursor)
		doc, size, err := c.fetch(w.ctx, q, w.field)
		if err != nil {
			var ae *APIError
			if cursor != "" && errors.As(err, &ae) && ae.cursorRejected() && w.ctx.Err() == nil {
				if depth > lastDepth {
					stale = 0
				} else {
					stale++
				}
				sinceAdvance++
				lastDepth, depth = max(lastDepth, depth), 0
				if stale >= maxStaleRestarts || sinceAdvance > maxRestartsPerSecond {
					return fmt.Errorf("%s: cursor rejected %d times without progress: %w", w.span(from, reqEnd), sinceAdvance, err)
				}
				c.st.cursorRestarts.Add(1)
				w.mu.Lock()
				from, reqEnd = w.slices[idx].pos, w.slices[idx].End
				w.mu.Unlock()
				c.log.Debug().Int("slice", idx).Time("from", from).Str("detail", ae.Detail).Msg("cursor rejected: restarting slice")
				cursor = ""
				clear(seen)
				continue
			}
			return fmt.Errorf("%s: %w", w.span(from, reqEnd), err)
		}
		next := ""
		if doc.next != "" {
			if next, err = c.nextCursor(doc.next); err != nil {
				doc.lease.release()
				return fmt.Errorf("%s: %w", w.span(from, reqEnd), err)
			}
		}
		msg, finished, advanced := w.apply(idx, doc.records, size, reqEnd, next == "")
		msg.lease = doc.lease
		depth++
		if advanced {
			clear(seen)
			stale, depth, lastDepth, sinceAdvance = 0, 0, -1, 0
		}
		if !finished {
			if _, dup := seen[next]; dup {
				msg.lease.release()
				return fmt.Errorf("%s: %w", w.span(from, reqEnd), ErrCursorLoop)
			}
			seen[next] = struct{}{}
		}
		// Pages waiting for the consumer say fetching is not what the run
		// waits for, and more chains would not help.
		starved := len(w.out) == 0
		select {
		case w.out <- msg:
		case <-w.ctx.Done():
			msg.lease.release()
			return nil
		}
		if starved {
			w.maybeGrow()
		}
		if finished {
			w.mu.Lock()
			w.slices[idx].busy = false
			w.mu.Unlock()
			return nil
		}
		cursor = next
	}
}

// apply filters a fetched page against the slice as it is now (a split may
// have moved its End) and advances the fetch position.
func (w *walker) apply(idx int, recs []Record, size int, reqEnd time.Time, last bool) (msg pageMsg, finished, advanced bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := &w.slices[idx]
	end, floor := s.End, s.pos
	kept := recs[:0]
	cut := false
	var newest time.Time
	var out, over int64
	// The request asked for less-than(ceil(reqEnd)): what the server may
	// legitimately send ends there.
	served := ceilSecond(reqEnd)
	for i, r := range recs {
		switch {
		case r.Cursor.IsZero():
		case !r.Cursor.Before(end) && r.Cursor.Before(served):
			// Inside what was asked for but past a split: sorted ascending,
			// the rest of this chain belongs to the slice split off.
			cut = true
			over++
			continue
		case !r.Cursor.Before(end):
			// Outside what the request's own filter allowed: a stray, not
			// a sign that the data ends here, unless the page ends with it.
			out++
			if i == len(recs)-1 {
				cut = true
			}
			continue
		case r.Cursor.Before(floor):
			out++
			continue
		default:
			if r.Cursor.After(newest) {
				newest = r.Cursor
			}
		}
		kept = append(kept, r)
	}
	w.c.st.outOfSlice.Add(out)
	w.c.st.overfetched.Add(over)
	s.pages++
	s.fetchedRecs += int64(len(kept))
	if !newest.IsZero() {
		if p := newest.Truncate(time.Second); p.After(s.pos) {
			s.pos, advanced = p, true
			s.atPos = 0
		}
	}
	for _, r := range kept {
		if !r.Cursor.IsZero() && r.Cursor.Truncate(time.Second).Equal(s.pos) {
			s.atPos++
		}
	}
	finished = cut || last
	done := s.pos
	if finished {
		s.fetched = true
		done = end
	}
	return pageMsg{slice: idx, records: kept, bytes: size, done: done}, finished, advanced
}

// deliver applies a page to the delivered progress and snapshots it.
func (w *walker) deliver(msg pageMsg) Page {
	w.mu.Lock()
	s := &w.slices[msg.slice]
	if msg.done.After(s.Done) {
		s.Done = msg.done
	}
	prog := make([]Slice, len(w.slices))
	for i := range w.slices {
		prog[i] = w.slices[i].Slice
	}
	w.mu.Unlock()
	w.c.st.records.Add(int64(len(msg.records)))
	return Page{Slice: msg.slice, Records: msg.records, Bytes: msg.bytes, Progress: prog, lease: msg.lease}
}

// nextCursor takes page[cursor] from a links.next URL, refusing links to
// another origin: the request is rebuilt with our own parameters and sent
// only to the base URL.
func (c *Client) nextCursor(link string) (string, error) {
	u, err := url.Parse(link)
	if err != nil {
		return "", fmt.Errorf("links.next: %w", err)
	}
	u = c.base.ResolveReference(u)
	if !c.sameOrigin(u) {
		return "", fmt.Errorf("%w: %s://%s", ErrForeignNext, u.Scheme, u.Host)
	}
	cur := u.Query().Get("page[cursor]")
	if cur == "" {
		return "", errors.New("links.next has no page[cursor]")
	}
	return cur, nil
}
