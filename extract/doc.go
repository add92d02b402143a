// Package extract reads profiles from Klaviyo's Get Profiles endpoint
// (GET /api/profiles) as fast as the account's rate budget allows, and no
// faster.
//
// A Client sends every request with the private key
// (Authorization: Klaviyo-API-Key …), the pinned revision header and
// Accept: application/vnd.api+json, over keep-alive connections with
// transparent gzip. Every attempt first passes a limiter that holds both of
// the account's windows (burst, e.g. 75/1s, and steady, e.g. 750/1m) as
// sliding windows, so no request starts that would exceed either one however
// the server aligns its fixed windows; a request counts from the moment it
// was written to the connection (a slow dial delays it at the server too),
// plus a small margin for network jitter. A 429 pauses every request until its
// Retry-After has passed; RateLimit-Remaining showing that someone else is
// spending the same budget makes the client pace itself to what is left.
// BudgetShare leaves part of the budget to other integrations.
//
// A fetch is request, full body read and JSON decode: 429, 408, 500, 502,
// 503, 504, 524, transport errors, truncated bodies and bodies that are not a
// JSON:API page are retried as a whole, with capped, jittered exponential
// backoff, until RetryDeadline. 400, 401, 403, 404, 410 and other client
// errors are returned at once as *APIError, whose message says what to
// change (--api-key and the profiles:read scope, --revision, --base-url).
// The key is never written to a log, an error or a panic; links.next is
// followed only to the base URL's scheme and host (ErrForeignNext), and only
// its page[cursor] is taken: requests are rebuilt with our own parameters,
// as Klaviyo's SDKs do.
//
// Walk reads a Window of the cursor field (created or updated) as disjoint
// time slices walked concurrently, each along its own links.next chain with
// filter=greater-than(field,START-1s),less-than(field,END) and sort=field.
// Concurrency 0 keeps steady rate × observed latency requests in flight,
// starting from at most 2 × GOMAXPROCS chains and adding one only while the
// consumer waits for pages (a budget far above what the consumer takes buys
// nothing but CPU competition); a client nothing has answered yet sends one
// request before fanning out, so a revoked key is sent once. When a slice
// ends, the largest remaining one is split at the middle of
// what is left, so skewed data keeps every worker busy. Pages reach the
// callback one at a time, a slice's in order, with a snapshot of every
// slice's progress ("everything below Done is delivered"), so the caller can
// checkpoint after any page and resume later from the snapshot. A rejected
// page[cursor] restarts its slice from that point; a cursor seen twice in a
// chain is ErrCursorLoop.
//
//	c, err := extract.New(extract.Config{APIKey: key, Revision: "2026-07-15", Logger: log})
//	if err != nil {
//		return err
//	}
//	win := extract.Window{Field: "created", Slices: []extract.Slice{{Start: since, End: until, Done: since}}}
//	err = c.Walk(ctx, win, func(ctx context.Context, p extract.Page) error {
//		// p.Records[i].Raw is the profile as received; p.Progress is the checkpoint.
//		// p.Release() once Raw is read lets a later response reuse the memory.
//		return handle(ctx, p)
//	})
//
// Records of a resumed or restarted slice at its Done second are read again;
// removing those duplicates by id is the caller's job. The package does not
// interpret profiles beyond id and the cursor attribute (see transform),
// write anything (see load), or decide the window (see cmd/klaviyo-etl).
package extract
