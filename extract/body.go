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
	data []byte
	pool *sync.Pool
	// gen counts the releases: a lease is good while gen is what it was
	// when the lease was taken.
	gen atomic.Uint64
}

// lease is one response's hold on a body. The zero lease holds nothing.
type lease struct {
	body *body
	gen  uint64
}

// takeBody leases an empty buffer for one response, from the pool when it
// has one.
func (c *Client) takeBody() lease {
	b, ok := c.bodies.Get().(*body)
	if !ok {
		b = &body{pool: &c.bodies}
	}
	b.data = b.data[:0]
	return lease{body: b, gen: b.gen.Load()}
}

// release hands the body back. Only the first release of a lease counts: a
// copy of a Page released twice, or released after its body went to
// another response, does nothing.
func (l lease) release() {
	b := l.body
	if b == nil || !b.gen.CompareAndSwap(l.gen, l.gen+1) {
		return
	}
	if cap(b.data) > maxPooledBody {
		b.data = nil
	}
	b.pool.Put(b)
}
