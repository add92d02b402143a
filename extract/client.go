package extract

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-retryablehttp"
	"github.com/rs/zerolog"
)

// DefaultBaseURL is Klaviyo's API host.
const DefaultBaseURL = "https://a.klaviyo.com"

const (
	defaultPageSize       = 100
	defaultRequestTimeout = 30 * time.Second
	defaultRetryDeadline  = 10 * time.Minute
	defaultMinBackoff     = 500 * time.Millisecond
	defaultMaxBackoff     = 30 * time.Second
	maxBodyBytes          = 256 << 20 // a page of 100 profiles is well under 1 MiB
	maxErrorBodyBytes     = 64 << 10
)

// Config configures a Client. Zero values mean the documented defaults.
type Config struct {
	BaseURL  string // default DefaultBaseURL
	APIKey   string // private key; required
	Revision string // e.g. "2026-07-15"; required
	PageSize int    // page[size], 1..100, default 100
	// Burst and Steady are the account's two windows; zero means
	// DefaultBudget(Revision, AdditionalFields).
	Burst, Steady Rate
	// BudgetShare in (0,1] scales both windows' counts; 0 means 1.
	BudgetShare float64
	// Concurrency is the number of slices walked at once; 0 sizes it to keep
	// steady rate × observed latency requests in flight.
	Concurrency    int
	RequestTimeout time.Duration // per attempt, headers and body; default 30s
	RetryDeadline  time.Duration // all attempts of one fetch; default 10m
	MinBackoff     time.Duration // first retry wait; default 500ms
	MaxBackoff     time.Duration // cap on a retry wait; default 30s
	// Fields is fields[profile]; the cursor field is added when missing.
	Fields           []string
	AdditionalFields []string // additional-fields[profile]
	Include          []string // include
	Logger           zerolog.Logger
	// HTTPClient supplies the transport (and cookie jar); its Timeout and
	// CheckRedirect are not used.
	HTTPClient *http.Client

	clock clock // tests
}

// Client reads profiles from one Klaviyo account. It is safe for concurrent
// use; every request of every Walk shares one rate budget.
type Client struct {
	cfg      Config
	base     *url.URL
	endpoint string // base URL + profiles path, no query
	auth     string
	http     *http.Client
	lim      *limiter
	burst    Rate // after BudgetShare
	steady   Rate
	log      zerolog.Logger
	st       counters

	latMu   sync.Mutex
	latency time.Duration // moving average of successful attempts

	bodies sync.Pool // of *body, handed back by Page.Release
}

// New validates cfg and returns a Client.
func New(cfg Config) (*Client, error) {
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultBaseURL
	}
	base, err := url.Parse(cfg.BaseURL)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, fmt.Errorf("base url %q: want http(s)://host[:port]", cfg.BaseURL)
	}
	if base.RawQuery != "" || base.Fragment != "" || base.User != nil {
		return nil, fmt.Errorf("base url %q: must not carry a query, fragment or user info", base.Redacted())
	}
	key := strings.TrimSpace(cfg.APIKey)
	key = strings.TrimSpace(strings.TrimPrefix(key, "Klaviyo-API-Key "))
	if key == "" {
		return nil, errors.New("api key is required")
	}
	for _, r := range key {
		if r < 0x21 || r == 0x7f {
			// Never echo the key: only say what is wrong with it.
			return nil, errors.New("api key contains whitespace or control characters")
		}
	}
	cfg.APIKey = key
	if cfg.Revision == "" {
		return nil, errors.New("revision is required")
	}
	if revisionDate(cfg.Revision) == "" {
		return nil, fmt.Errorf("revision %q: %w", cfg.Revision, errRevision)
	}
	if cfg.PageSize == 0 {
		cfg.PageSize = defaultPageSize
	}
	if cfg.PageSize < 1 || cfg.PageSize > 100 {
		return nil, fmt.Errorf("page size %d: must be 1..100", cfg.PageSize)
	}
	db, ds := DefaultBudget(cfg.Revision, cfg.AdditionalFields)
	if cfg.Burst.IsZero() {
		cfg.Burst = db
	}
	if cfg.Steady.IsZero() {
		cfg.Steady = ds
	}
	for _, r := range []Rate{cfg.Burst, cfg.Steady} {
		if r.N <= 0 || r.Per <= 0 {
			return nil, fmt.Errorf("rate %s: count and duration must be positive", r)
		}
	}
	if cfg.BudgetShare == 0 {
		cfg.BudgetShare = 1
	}
	if !(cfg.BudgetShare > 0 && cfg.BudgetShare <= 1) {
		return nil, fmt.Errorf("budget share %v: must be in (0,1]", cfg.BudgetShare)
	}
	if cfg.Concurrency < 0 || cfg.Concurrency > 1000 {
		return nil, fmt.Errorf("concurrency %d: must be 0 (auto) to 1000", cfg.Concurrency)
	}
	if cfg.RequestTimeout == 0 {
		cfg.RequestTimeout = defaultRequestTimeout
	}
	if cfg.RetryDeadline == 0 {
		cfg.RetryDeadline = defaultRetryDeadline
	}
	if cfg.MinBackoff == 0 {
		cfg.MinBackoff = defaultMinBackoff
		if cfg.MaxBackoff > 0 {
			cfg.MinBackoff = min(defaultMinBackoff, cfg.MaxBackoff)
		}
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = max(defaultMaxBackoff, cfg.MinBackoff)
	}
	if cfg.RequestTimeout < 0 || cfg.RetryDeadline < 0 || cfg.MinBackoff < 0 || cfg.MaxBackoff < cfg.MinBackoff {
		return nil, errors.New("timeouts and backoffs must be positive, with MinBackoff <= MaxBackoff")
	}
	for _, list := range [][]string{cfg.Fields, cfg.AdditionalFields, cfg.Include} {
		for _, f := range list {
			if f == "" || strings.ContainsAny(f, ", ") {
				return nil, fmt.Errorf("field list entry %q: must be one non-empty name", f)
			}
		}
	}
	if cfg.clock == nil {
		cfg.clock = realClock{}
	}

	base.Path = strings.TrimRight(base.Path, "/")
	path := "/api/profiles"
	if revisionDate(cfg.Revision) < "2024-10-15" {
		path += "/" // the form the spec of those revisions names
	}
	c := &Client{
		cfg:      cfg,
		base:     base,
		endpoint: base.String() + path,
		auth:     "Klaviyo-API-Key " + key,
		burst:    cfg.Burst.scale(cfg.BudgetShare),
		steady:   cfg.Steady.scale(cfg.BudgetShare),
		log:      cfg.Logger,
		latency:  500 * time.Millisecond,
	}
	c.lim = newLimiter(c.burst, c.steady, cfg.BudgetShare, cfg.clock)
	c.http = c.newHTTPClient(cfg.HTTPClient)
	return c, nil
}

func (c *Client) newHTTPClient(user *http.Client) *http.Client {
	var rt http.RoundTripper
	var jar http.CookieJar
	if user != nil {
		rt, jar = user.Transport, user.Jar
	}
	if rt == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConns = 256
		t.MaxIdleConnsPerHost = 256
		t.IdleConnTimeout = 90 * time.Second
		t.ForceAttemptHTTP2 = true
		rt = t
	}
	return &http.Client{
		Transport: &transport{c: c, next: rt},
		Jar:       jar,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 5 {
				return errors.New("stopped after 5 redirects")
			}
			if !c.sameOrigin(req.URL) {
				return fmt.Errorf("redirect to %s://%s: %w", req.URL.Scheme, req.URL.Host, ErrForeignNext)
			}
			return nil
		},
	}
}

// sameOrigin reports whether u has the base URL's scheme and host.
func (c *Client) sameOrigin(u *url.URL) bool {
	return strings.EqualFold(u.Scheme, c.base.Scheme) && hostPort(u) == hostPort(c.base)
}

func hostPort(u *url.URL) string {
	h, p := strings.ToLower(u.Hostname()), u.Port()
	if p == "" {
		p = map[string]string{"http": "80", "https": "443"}[strings.ToLower(u.Scheme)]
	}
	return net.JoinHostPort(h, p)
}

// transport admits every attempt through the rate budget, bounds it with the
// per-request timeout (covering the body as well), and reads the rate-limit
// headers of every response.
type transport struct {
	c    *Client
	next http.RoundTripper
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	c := t.c
	ctx := req.Context()
	sent, ticket, err := c.lim.wait(ctx)
	if err != nil {
		return nil, err
	}
	n := c.st.inFlight.Add(1)
	for {
		m := c.st.inFlightMax.Load()
		if n <= m || c.st.inFlightMax.CompareAndSwap(m, n) {
			break
		}
	}
	actx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	conns := 0
	actx = httptrace.WithClientTrace(actx, &httptrace.ClientTrace{
		GotConn: func(httptrace.GotConnInfo) {
			// net/http itself replays a GET whose reused connection broke
			// before any response byte. That attempt goes on the wire too:
			// it waits for the budget and counts like any retry.
			if conns++; conns == 1 {
				return
			}
			if _, t2, err := c.lim.wait(actx); err == nil {
				c.lim.wrote(t2, c.cfg.clock.Now())
			}
			c.st.requests.Add(1)
			c.st.retries.Add(1)
		},
		WroteRequest: func(httptrace.WroteRequestInfo) { c.lim.wrote(ticket, c.cfg.clock.Now()) },
	})
	resp, err := t.next.RoundTrip(req.WithContext(actx))
	c.lim.wrote(ticket, c.cfg.clock.Now()) // no-op unless it never went out
	c.st.requests.Add(1)
	if err != nil {
		cancel()
		c.st.inFlight.Add(-1)
		if ctx.Err() == nil {
			c.st.transportErrors.Add(1)
		}
		return nil, err
	}
	now := c.cfg.clock.Now()
	c.st.countStatus(resp.StatusCode)
	if resp.StatusCode == http.StatusTooManyRequests {
		c.st.rateLimited.Add(1)
		wait, ok := retryAfter(resp.Header, now)
		if !ok {
			wait = time.Second
		}
		c.lim.pause(now.Add(wait))
		c.log.Debug().Int("retry_after_ms", int(wait/time.Millisecond)).Msg("rate limited: pausing every request")
	} else if limit, ok := leadingInt(resp.Header.Get("RateLimit-Limit")); ok {
		remaining, ok1 := leadingInt(resp.Header.Get("RateLimit-Remaining"))
		reset, ok2 := leadingInt(resp.Header.Get("RateLimit-Reset"))
		if ok1 && ok2 {
			if others, paced := c.lim.observe(now, sent, limit, remaining, time.Duration(reset)*time.Second); paced {
				c.log.Debug().Int("others", others).Int("remaining", remaining).Int("reset_s", reset).
					Msg("another consumer is spending the budget: pacing")
			}
		}
	}
	resp.Body = &attemptBody{ReadCloser: resp.Body, cancel: cancel, c: c, sent: sent, ok: resp.StatusCode/100 == 2}
	return resp, nil
}

// attemptBody ends the attempt's timeout and in-flight count when the body
// is closed, and feeds the latency estimate.
type attemptBody struct {
	io.ReadCloser
	cancel context.CancelFunc
	c      *Client
	sent   time.Time
	ok     bool
	eof    bool
	once   sync.Once
}

func (b *attemptBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		b.eof = true
	}
	return n, err
}

func (b *attemptBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(func() {
		b.cancel()
		b.c.st.inFlight.Add(-1)
		if b.ok && b.eof {
			b.c.observeLatency(b.c.cfg.clock.Now().Sub(b.sent))
		}
	})
	return err
}

func (c *Client) observeLatency(d time.Duration) {
	c.latMu.Lock()
	c.latency = (c.latency*7 + d) / 8
	c.latMu.Unlock()
}

func (c *Client) observedLatency() time.Duration {
	c.latMu.Lock()
	defer c.latMu.Unlock()
	return c.latency
}

// retryAfter reads Retry-After as seconds or an HTTP date.
func retryAfter(h http.Header, now time.Time) (time.Duration, bool) {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0, false
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil && s >= 0 && s < 1e6 {
		return time.Duration(s * float64(time.Second)), true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}

// leadingInt parses the integer a RateLimit-* header starts with (the value
// may be structured, e.g. "750, 750;w=60").
func leadingInt(s string) (int, bool) {
	s = strings.TrimSpace(s)
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == 0 || i > 9 {
		return 0, false
	}
	n, _ := strconv.Atoi(s[:i])
	return n, true
}

// query builds the parameters every request of a chain sends.
func (c *Client) query(field string, start, end time.Time, cursor string) url.Values {
	q := url.Values{}
	if !start.IsZero() || !end.IsZero() {
		var filters []string
		if !start.IsZero() {
			// No greater-or-equal for created/updated: one second earlier,
			// duplicates are the caller's to drop.
			filters = append(filters, fmt.Sprintf("greater-than(%s,%s)", field, formatFilterTime(start.Truncate(time.Second).Add(-time.Second))))
		}
		if !end.IsZero() {
			filters = append(filters, fmt.Sprintf("less-than(%s,%s)", field, formatFilterTime(ceilSecond(end))))
		}
		q.Set("filter", strings.Join(filters, ","))
	}
	q.Set("sort", field)
	q.Set("page[size]", strconv.Itoa(c.cfg.PageSize))
	if len(c.cfg.Fields) > 0 {
		fields := c.cfg.Fields
		if field != "" && !contains(fields, field) {
			fields = append(append([]string(nil), fields...), field)
		}
		q.Set("fields[profile]", strings.Join(fields, ","))
	}
	if len(c.cfg.AdditionalFields) > 0 {
		q.Set("additional-fields[profile]", strings.Join(c.cfg.AdditionalFields, ","))
	}
	if len(c.cfg.Include) > 0 {
		q.Set("include", strings.Join(c.cfg.Include, ","))
	}
	if cursor != "" {
		q.Set("page[cursor]", cursor)
	}
	return q
}

func formatFilterTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05Z") }

func ceilSecond(t time.Time) time.Time {
	if tt := t.Truncate(time.Second); !tt.Equal(t) {
		return tt.Add(time.Second)
	}
	return t
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// Probe sends one request (page[size]=1, no filter) to check the base URL,
// key, scope, revision and field lists, for --dry-run.
func (c *Client) Probe(ctx context.Context) error {
	if _, _, err := c.Oldest(ctx, "created"); err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	return nil
}

// Oldest returns the smallest value of the cursor field in the account, with
// one request (sort ascending, page[size]=1). ok is false when the account
// has no profiles or the first one has no parseable cursor. A first run
// starts its window there instead of at the Unix epoch, so its time slices
// and its progress cover where the profiles are.
func (c *Client) Oldest(ctx context.Context, field string) (oldest time.Time, ok bool, err error) {
	q := c.query(field, time.Time{}, time.Time{}, "")
	q.Set("page[size]", "1")
	doc, _, err := c.fetch(ctx, q, field)
	if err != nil {
		return time.Time{}, false, err
	}
	defer doc.lease.release()
	if len(doc.records) == 0 || doc.records[0].Cursor.IsZero() {
		return time.Time{}, false, nil
	}
	return doc.records[0].Cursor, true, nil
}

// fetch is one page: request, full body read and JSON decode, retried as a
// whole under the retry deadline. It returns the decoded page and the body
// size.
func (c *Client) fetch(ctx context.Context, q url.Values, field string) (pageDoc, int, error) {
	f := &fetchState{c: c, field: field, start: time.Now()}
	rc := &retryablehttp.Client{
		HTTPClient:   c.http,
		RetryWaitMin: c.cfg.MinBackoff,
		RetryWaitMax: c.cfg.MaxBackoff,
		RetryMax:     math.MaxInt32, // bounded by RetryDeadline instead
		CheckRetry:   f.checkRetry,
		Backoff:      f.backoff,
		ErrorHandler: f.giveUp,
	}
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodGet, c.endpoint+"?"+q.Encode(), nil)
	if err != nil {
		return pageDoc{}, 0, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Authorization", c.auth)
	req.Header.Set("revision", c.cfg.Revision)
	req.Header.Set("Accept", "application/vnd.api+json")
	req.SetResponseHandler(f.handle)
	resp, err := rc.Do(req)
	if err != nil {
		f.doc.lease.release()
		if ctxErr := ctx.Err(); ctxErr != nil && !errors.Is(err, ctxErr) {
			return pageDoc{}, 0, ctxErr
		}
		return pageDoc{}, 0, err
	}
	resp.Body.Close()
	c.st.pages.Add(1)
	c.st.bytes.Add(int64(f.size))
	return f.doc, f.size, nil
}

// fetchState carries one fetch's attempts through go-retryablehttp's
// callbacks.
type fetchState struct {
	c       *Client
	field   string
	start   time.Time
	doc     pageDoc
	size    int
	lastErr error
	gaveUp  bool
}

// retryableError marks a failure worth another attempt: a transport error, a
// truncated body, a body that is not a page, or a retryable status.
type retryableError struct{ err error }

func (e *retryableError) Error() string { return e.err.Error() }
func (e *retryableError) Unwrap() error { return e.err }

func (f *fetchState) handle(resp *http.Response) error {
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBodyBytes))
		return newAPIError(resp, body, f.c.cfg.Revision, f.c.cfg.APIKey)
	}
	l := f.c.takeBody()
	body, err := readBody(resp, l.body.data)
	if err != nil {
		l.release()
		return &retryableError{fmt.Errorf("read body: %w", err)}
	}
	l.body.data = body
	doc, err := parsePage(body, f.field)
	if err != nil {
		l.release()
		return &retryableError{err}
	}
	doc.lease = l
	f.doc, f.size = doc, len(body)
	return nil
}

// readBody reads resp's body into dst's memory when it is large enough.
func readBody(resp *http.Response, dst []byte) ([]byte, error) {
	size := 64 << 10
	if n := resp.ContentLength; n > 0 && n <= maxBodyBytes {
		// ReadFrom wants MinRead bytes free before each read, the one that
		// finds EOF included: with less it copies the body into a buffer
		// twice the size.
		size = int(n) + bytes.MinRead
	}
	buf := bytes.NewBuffer(dst[:0])
	buf.Grow(size)
	n, err := buf.ReadFrom(io.LimitReader(resp.Body, maxBodyBytes+1))
	if err != nil {
		return nil, err
	}
	if n > maxBodyBytes {
		return nil, fmt.Errorf("body larger than %d bytes", maxBodyBytes)
	}
	return buf.Bytes(), nil
}

func retryableStatus(code int) bool {
	switch code {
	case http.StatusTooManyRequests, http.StatusRequestTimeout, http.StatusInternalServerError,
		http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout, 524:
		return true
	}
	return false
}

// permanentTransportError reports transport failures another attempt cannot
// fix: a bad certificate, a bad URL, a refused redirect.
func permanentTransportError(err error) bool {
	var cert *x509.UnknownAuthorityError
	var host x509.HostnameError
	var inv x509.CertificateInvalidError
	if errors.As(err, &cert) || errors.As(err, &host) || errors.As(err, &inv) {
		return true
	}
	if errors.Is(err, ErrForeignNext) {
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "unsupported protocol scheme") || strings.Contains(msg, "stopped after 5 redirects")
}

func (f *fetchState) checkRetry(ctx context.Context, resp *http.Response, err error) (bool, error) {
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	var cause error
	switch {
	case err != nil:
		var ae *APIError
		if errors.As(err, &ae) || permanentTransportError(err) {
			return false, nil
		}
		cause = err
	case resp != nil && retryableStatus(resp.StatusCode):
		cause = fmt.Errorf("status %d", resp.StatusCode)
	default:
		return false, nil
	}
	f.lastErr = cause
	if elapsed := time.Since(f.start); elapsed >= f.c.cfg.RetryDeadline {
		f.gaveUp = true
		return false, nil
	}
	f.c.st.retries.Add(1)
	ev := f.c.log.Debug().Err(cause)
	if resp != nil {
		ev = ev.Int("status", resp.StatusCode)
	}
	ev.Msg("retrying request")
	return true, nil
}

func (f *fetchState) backoff(lo, hi time.Duration, attempt int, resp *http.Response) time.Duration {
	if resp != nil && resp.StatusCode == http.StatusTooManyRequests {
		return 0 // the limiter holds every request until Retry-After
	}
	d := hi
	if attempt < 30 {
		d = min(hi, lo<<attempt)
	}
	d = d/2 + rand.N(d/2+1)
	if resp != nil {
		if ra, ok := retryAfter(resp.Header, time.Now()); ok && ra > d {
			d = min(ra, hi)
		}
	}
	return d
}

func (f *fetchState) giveUp(resp *http.Response, err error, tries int) (*http.Response, error) {
	if resp != nil {
		io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBodyBytes))
		resp.Body.Close()
	}
	var re *retryableError
	if errors.As(err, &re) {
		err = re.err
	}
	if f.gaveUp {
		return nil, fmt.Errorf("giving up after %d attempts in %s: %w", tries, time.Since(f.start).Round(time.Millisecond), err)
	}
	return nil, err
}

// counters are the Client's running totals.
type counters struct {
	requests, retries, rateLimited, pages, records, bytes atomic.Int64
	outOfSlice, overfetched, cursorRestarts, splits       atomic.Int64
	transportErrors, inFlight, inFlightMax                atomic.Int64
	mu                                                    sync.Mutex
	byStatus                                              map[int]int64
}

func (s *counters) countStatus(code int) {
	s.mu.Lock()
	if s.byStatus == nil {
		s.byStatus = map[int]int64{}
	}
	s.byStatus[code]++
	s.mu.Unlock()
}

// Stats are a Client's totals since New, across Walks and Probes.
type Stats struct {
	Requests        int64         // attempts sent, retries included
	ByStatus        map[int]int64 // responses by HTTP status
	TransportErrors int64         // attempts that got no response
	Retries         int64
	RateLimited     int64 // 429s received
	Pages           int64 // pages fetched and decoded
	Records         int64 // records delivered to the callback
	Bytes           int64 // body bytes of decoded pages
	// OutOfSlice counts records dropped because they lay outside the
	// slice asked for, or below a resumed slice's Done (already delivered).
	OutOfSlice int64
	// Overfetched counts records dropped because a split moved their part
	// of a slice to another slice while the page was in flight.
	Overfetched    int64
	CursorRestarts int64 // slices restarted after a rejected page[cursor]
	Splits         int64
	InFlightMax    int64 // most attempts in flight at once
	// Contended counts responses whose RateLimit-Remaining showed another
	// consumer spending the budget (the client then paced itself).
	Contended int64
}

// Stats returns a snapshot of the Client's counters.
func (c *Client) Stats() Stats {
	s := &c.st
	out := Stats{
		Requests: s.requests.Load(), TransportErrors: s.transportErrors.Load(), Retries: s.retries.Load(),
		RateLimited: s.rateLimited.Load(), Pages: s.pages.Load(), Records: s.records.Load(), Bytes: s.bytes.Load(),
		OutOfSlice: s.outOfSlice.Load(), Overfetched: s.overfetched.Load(), CursorRestarts: s.cursorRestarts.Load(),
		Splits: s.splits.Load(), InFlightMax: s.inFlightMax.Load(), ByStatus: map[int]int64{},
	}
	s.mu.Lock()
	for k, v := range s.byStatus {
		out.ByStatus[k] = v
	}
	s.mu.Unlock()
	c.lim.mu.Lock()
	out.Contended = c.lim.contended
	c.lim.mu.Unlock()
	return out
}

// Budget returns the windows the client keeps to, after BudgetShare.
func (c *Client) Budget() (burst, steady Rate) { return c.burst, c.steady }
