package extract

import (
	"context"
	"sync"
	"time"
)

// clock is the limiter's view of time, replaced by a fake in tests.
type clock interface {
	Now() time.Time
	Sleep(ctx context.Context, d time.Duration) error
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// window remembers when recent requests started, oldest first, so the
// earliest moment the next one may start is the N-th newest of them plus the
// window length: at most N starts fall in any interval of that length. A
// request counts as "now" until it has been written to the connection, then
// from that moment: a request held up by a dial reaches the server late, and
// the window must count it where the server does. It keeps 2N entries, so
// RateLimit-Remaining can be compared with what we sent over a whole server
// window even while more requests are in flight.
type window struct {
	rate    Rate
	span    time.Duration // rate.Per plus a margin for network jitter
	ring    []stamp       // sorted by t, oldest at head; grown up to keep
	keep    int           // 2N of the configured rate
	head    int
	n       int
	pending int // entries not written yet
}

type stamp struct {
	seq     uint64
	t       time.Time // admission, then write time
	written bool
}

func newWindow(r Rate) *window {
	// Even counted from the write, requests reach the server after delays
	// that vary; a margin on our side keeps the server's count (at arrival)
	// within the limit. It costs 0.2% of a 1m window.
	margin := min(r.Per/10, 100*time.Millisecond)
	// The ring grows as requests come: a budget no run reaches (300,000/1m
	// in the bench) would otherwise hold 24 MB that the collector counts as
	// live heap, for a window that never fills.
	return &window{rate: r, span: r.Per + margin, ring: make([]stamp, min(2*r.N, 256)), keep: 2 * r.N}
}

func (w *window) at(i int) *stamp { return &w.ring[(w.head+i)%len(w.ring)] }

// earliest is when the oldest of the N newest requests leaves the window;
// requests not written yet may go out any moment, so they count as newest.
func (w *window) earliest(now time.Time) time.Time {
	if w.pending >= w.rate.N {
		return now.Add(min(w.span, 20*time.Millisecond)) // look again soon: one will go out
	}
	// walk is O(N) per admission; while the budget is far from
	// reached two O(1) looks settle it. Fewer than N entries cannot hold N
	// written ones; and the entry N-pending from the newest is, the ring
	// being sorted, no older than the one the walk would find, so once it
	// has left the window that one has too.
	if w.n < w.rate.N || !w.at(w.n-(w.rate.N-w.pending)).t.Add(w.span).After(now) {
		return time.Time{}
	}
	return w.walk()
}

// walk finds, newest first, the written entry that is the N-th newest with
// the pending ones counted ahead of it, and returns when it leaves the
// window (zero when there is none).
func (w *window) walk() time.Time {
	c := w.pending
	for i := w.n - 1; i >= 0; i-- {
		if st := w.at(i); st.written {
			if c++; c == w.rate.N {
				return st.t.Add(w.span)
			}
		}
	}
	return time.Time{}
}

func (w *window) add(seq uint64, t time.Time) {
	if w.n == len(w.ring) && len(w.ring) < w.keep {
		ring := make([]stamp, min(2*len(w.ring), w.keep))
		for i := range w.n {
			ring[i] = *w.at(i)
		}
		w.ring, w.head = ring, 0
	}
	if w.n == len(w.ring) {
		if !w.at(0).written {
			w.pending--
		}
		w.head = (w.head + 1) % len(w.ring) // forget the oldest
		w.n--
	}
	*w.at(w.n) = stamp{seq: seq, t: t}
	w.n++
	w.pending++
	// Requests written after this admission may already sit later.
	for i := w.n - 1; i > 0 && w.at(i-1).t.After(w.at(i).t); i-- {
		*w.at(i - 1), *w.at(i) = *w.at(i), *w.at(i - 1)
	}
}

// wrote records that request seq went out at t (or, if it never did, was
// given up at t).
func (w *window) wrote(seq uint64, t time.Time) {
	for i := w.n - 1; i >= 0; i-- {
		st := w.at(i)
		if st.seq != seq {
			continue
		}
		if st.written {
			return
		}
		st.written = true
		w.pending--
		if !t.After(st.t) {
			return
		}
		st.t = t
		for ; i+1 < w.n && w.at(i).t.After(w.at(i+1).t); i++ {
			*w.at(i), *w.at(i + 1) = *w.at(i + 1), *w.at(i)
		}
		return
	}
}

// count returns how many requests lie in [from, to].
func (w *window) count(from, to time.Time) int {
	c := 0
	for i := 0; i < w.n; i++ {
		if t := w.at(i).t; !t.Before(from) && !t.After(to) {
			c++
		}
	}
	return c
}

// resize lowers the limit to n; the history is kept.
func (w *window) resize(n int) {
	if n < w.rate.N {
		w.rate.N = n
	}
}

// limiter admits a request only when starting it now keeps both windows
// within their limits, holds every request back while a 429's Retry-After
// runs, and paces requests to what the server's RateLimit-Remaining says is
// left when someone else is spending the same budget.
type limiter struct {
	clock  clock
	mu     sync.Mutex
	burst  *window
	steady *window
	share  float64

	pausedUntil time.Time
	seq         uint64 // of the last admission

	// Contention pacing from RateLimit-* headers: until capUntil, at most
	// capLeft more requests, spaced capGap apart.
	capUntil  time.Time
	capLeft   int
	capGap    time.Duration
	lastAdmit time.Time
	// Contended counts header observations that showed another consumer.
	contended int64
}

func newLimiter(burst, steady Rate, share float64, c clock) *limiter {
	return &limiter{clock: c, burst: newWindow(burst), steady: newWindow(steady), share: share}
}

// earliest returns the first instant at or after now when a request may
// start. The caller holds mu.
func (l *limiter) earliest(now time.Time) time.Time {
	t := now
	for _, c := range []time.Time{l.burst.earliest(now), l.steady.earliest(now), l.pausedUntil} {
		if c.After(t) {
			t = c
		}
	}
	if now.Before(l.capUntil) {
		if l.capLeft <= 0 {
			if l.capUntil.After(t) {
				t = l.capUntil
			}
		} else if g := l.lastAdmit.Add(l.capGap); g.After(t) && g.Before(l.capUntil) {
			t = g
		}
	}
	return t
}

// tryAdmit admits a request now if the budget allows it, returning its
// ticket for wrote; otherwise it returns the instant worth trying again. The
// clock is read under the lock so admissions are recorded in time order.
func (l *limiter) tryAdmit() (time.Time, uint64, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.clock.Now()
	t := l.earliest(now)
	if t.After(now) {
		return t, 0, false
	}
	l.seq++
	l.burst.add(l.seq, now)
	l.steady.add(l.seq, now)
	l.lastAdmit = now
	if now.Before(l.capUntil) {
		l.capLeft--
	}
	return now, l.seq, true
}

// wait blocks until a request may start and admits it, returning the
// admission time and the ticket to pass to wrote.
func (l *limiter) wait(ctx context.Context) (time.Time, uint64, error) {
	for {
		if err := ctx.Err(); err != nil {
			return time.Time{}, 0, err
		}
		t, seq, ok := l.tryAdmit()
		if ok {
			return t, seq, nil
		}
		if err := l.clock.Sleep(ctx, t.Sub(l.clock.Now())); err != nil {
			return time.Time{}, 0, err
		}
	}
}

// wrote records that the request with this ticket went out at t; called
// again when the attempt ends, it settles a request that never went out.
func (l *limiter) wrote(seq uint64, t time.Time) {
	l.mu.Lock()
	l.burst.wrote(seq, t)
	l.steady.wrote(seq, t)
	l.mu.Unlock()
}

// pause holds every request back until until (a 429's Retry-After).
func (l *limiter) pause(until time.Time) {
	l.mu.Lock()
	if until.After(l.pausedUntil) {
		l.pausedUntil = until
	}
	l.mu.Unlock()
}

// observe takes the RateLimit-* headers of a response (steady window:
// limit, remaining, seconds to reset) to the request admitted at sent,
// received at now. It returns how many requests of the server's window it
// attributes to someone else, and whether that made it pace itself.
func (l *limiter) observe(now, sent time.Time, limit, remaining int, reset time.Duration) (others int, paced bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if limit > 0 && limit < l.steady.rate.N {
		// The account's steady limit is lower than configured: believe the
		// server, keeping our share of it.
		l.steady.resize(Rate{N: limit}.scale(l.share).N)
	}
	if limit <= 0 || remaining < 0 || reset <= 0 {
		return 0, false
	}
	// Requests started since this one was sent are not in its Remaining yet.
	after := l.steady.count(sent.Add(time.Nanosecond), now)
	// Ours in the server's window as it was when it answered: the headers
	// were computed on arrival (about sent), not when the body got here.
	// Widen by a second because Reset is whole seconds: that undercounts
	// others rather than overcounts them.
	windowStart := sent.Add(reset - l.steady.rate.Per - time.Second)
	ours := l.steady.count(windowStart, sent)
	// Ours sent after this one may have overtaken it on the way (a slower
	// dial, scheduling) and be in its count: assume they all did, so only
	// someone else's spending is taken for it.
	others = (limit - remaining) - ours - after
	if others <= max(2, limit/50) {
		return others, false
	}
	l.contended++
	until := now.Add(reset)
	left := remaining - after
	l.capUntil = until
	l.capLeft = left
	if left > 0 {
		l.capGap = reset / time.Duration(left)
	} else {
		l.capGap = 0
	}
	return others, true
}
