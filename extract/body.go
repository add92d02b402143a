package extract

import (
	"sync"
	"sync/atomic"
)

// maxPooledBody is the largest body buffer kept for reuse: pages of 100
// profiles take a few hundred KiB, and a rare huge page should not stay
// resident after it is done.
const maxPooledBody = 4 << 20

// body is a response body that a delivered page may hand back (Page.Release)
// for a later response to be read into. A run reads a body's worth of bytes
// for every 100 profiles; allocated afresh each time, those bodies are half
// of what the garbage collector has to keep up with.
type body struct {
	b    []byte
	pool *sync.Pool
	live atomic.Bool // between take and the first release
}

// takeBody returns a buffer for one response, empty, from the pool when it
// has one.
func (c *Client) takeBody() *body {
	b, ok := c.bodies.Get().(*body)
	if !ok {
		b = &body{pool: &c.bodies}
	}
	b.b = b.b[:0]
	b.live.Store(true)
	return b
}

// release hands b back. Only the first call of a take counts, so copies of
// a Page may each release it; a nil body is a page without one.
func (b *body) release() {
	if b == nil || !b.live.CompareAndSwap(true, false) {
		return
	}
	if cap(b.b) > maxPooledBody {
		b.b = nil
	}
	b.pool.Put(b)
}
