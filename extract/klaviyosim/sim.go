package klaviyosim

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Config describes the simulated account. The zero value is a valid,
// empty account with default limits.
type Config struct {
	Profiles int   // initial synthetic profiles
	Seed     int64 // the data set is a pure function of Seed, Profiles, Start and End

	APIKey     string   // the accepted private key; default "pk_test"
	ExtraKeys  []string // more valid keys of the same account (they share its budget)
	NoScopeKey string   // a key that authenticates but lacks profiles:read (403); empty = none

	Latency time.Duration // mean latency added to each admitted request
	Jitter  float64       // ± fraction of Latency, in [0, 1]

	// Budgets of the account; zero values mean DefaultBurst, DefaultSteady,
	// DefaultPredictiveBurst and DefaultPredictiveSteady. Requests with
	// additional-fields[profile]=predictive_analytics count against both the
	// normal and the predictive budget.
	Burst, Steady                     Limit
	PredictiveBurst, PredictiveSteady Limit
	Unlimited                         bool // no rate limiting and no RateLimit-* headers (benchmarks)

	FaultRate float64       // share of requests, in [0, 1], that get a fault
	Faults    []Fault       // kinds drawn from when FaultRate > 0; empty = every kind but hang
	HangFor   time.Duration // how long a hang stalls; default 60s (or until the client goes away)

	// Start and End bound the synthetic created times; zero values mean the
	// two years ending 2026-11-01T00:00:00Z, so the data does not depend on
	// the clock.
	Start, End time.Time

	// CacheRecords keeps each record's JSON once rendered, so that serving
	// it again (unchanged, with the same fields) is a copy: for benchmarks,
	// where the simulator shares the cores of the client it serves. About
	// 1.7 KB of memory per profile and set of fields served; an updated
	// profile is rendered again, and the memory of its old rendering is not
	// reclaimed.
	CacheRecords bool

	DisableGzip bool   // never compress, even when the client accepts gzip
	Addr        string // NewServer's listen address; default "127.0.0.1:0"
}

// DefaultEnd is the default Config.End.
var DefaultEnd = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

// Counters are the server's observations since it started.
type Counters struct {
	Requests       int64
	ByStatus       map[int]int64 // complete responses by status code
	Faults         map[Fault]int64
	MaxBurst       int   // most requests admitted within any burst window
	MaxSteady      int   // same for the steady window
	RateLimited    int64 // 429s from the budget (spurious 429 faults are in Faults)
	ProfilesServed int64 // records sent in data[] of successful pages
}

// Server simulates GET /api/profiles for one account.
type Server struct {
	cfg   Config
	codec cursorCodec
	lim   *limiter
	flt   faultState

	mu      sync.RWMutex // guards recs and version
	recs    []record
	version uint64

	idxMu sync.Mutex
	idx   [4]sortIndex

	cache *recordCache // nil unless Config.CacheRecords

	ctrMu    sync.Mutex
	requests atomic.Int64
	served   atomic.Int64
	byStatus map[int]int64
	faults   map[Fault]int64
	errSeq   atomic.Uint64

	mwMu  sync.Mutex
	mws   []func(http.Handler) http.Handler
	chain atomic.Pointer[http.Handler]

	done      chan struct{}
	closeOnce sync.Once
	srv       *http.Server
	url       string
}

type sortIndex struct {
	built   bool
	version uint64
	order   []int32 // record positions, ascending by (key, id)
}

// New builds the data set; it does not listen. Serve it with Handler.
func New(cfg Config) (*Server, error) {
	if cfg.Profiles < 0 || cfg.Profiles > 50_000_000 {
		return nil, fmt.Errorf("profiles %d out of range [0, 50000000]", cfg.Profiles)
	}
	if cfg.APIKey == "" {
		cfg.APIKey = "pk_test"
	}
	if cfg.NoScopeKey != "" && (cfg.NoScopeKey == cfg.APIKey || slices.Contains(cfg.ExtraKeys, cfg.NoScopeKey)) {
		return nil, errors.New("no-scope key must differ from the valid keys")
	}
	if cfg.Latency < 0 || cfg.Jitter < 0 || cfg.Jitter > 1 {
		return nil, errors.New("latency must be >= 0 and jitter in [0, 1]")
	}
	for _, l := range []Limit{cfg.Burst, cfg.Steady, cfg.PredictiveBurst, cfg.PredictiveSteady} {
		if !l.valid() {
			return nil, fmt.Errorf("invalid limit %d/%s: both N and Per must be positive, or both zero", l.N, l.Per)
		}
	}
	if cfg.FaultRate < 0 || cfg.FaultRate > 1 {
		return nil, fmt.Errorf("fault rate %v out of range [0, 1]", cfg.FaultRate)
	}
	for _, f := range cfg.Faults {
		if !f.valid() {
			return nil, fmt.Errorf("unknown fault %q", f)
		}
	}
	if cfg.HangFor <= 0 {
		cfg.HangFor = 60 * time.Second
	}
	if cfg.End.IsZero() {
		cfg.End = DefaultEnd
	}
	if cfg.Start.IsZero() {
		cfg.Start = cfg.End.AddDate(-2, 0, 0)
	}
	if !cfg.Start.Before(cfg.End) {
		return nil, errors.New("start must be before end")
	}
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	s := &Server{
		cfg:      cfg,
		codec:    newCursorCodec(cfg.Seed),
		lim:      newLimiter(&cfg),
		recs:     generate(cfg.Seed, cfg.Profiles, cfg.Start, cfg.End),
		byStatus: map[int]int64{},
		faults:   map[Fault]int64{},
		done:     make(chan struct{}),
	}
	if cfg.CacheRecords {
		s.cache = newRecordCache()
	}
	s.flt.init(&cfg)
	s.rebuildChain()
	return s, nil
}

// NewServer is New plus a listener on Config.Addr (default 127.0.0.1:0),
// like httptest.NewServer. Close stops it.
func NewServer(cfg Config) (*Server, error) {
	s, err := New(cfg)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	s.srv = &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 30 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0), // aborted and hijacked connections are the point
	}
	s.url = "http://" + ln.Addr().String()
	go s.srv.Serve(ln) //nolint:errcheck // returns ErrServerClosed on Close
	return s, nil
}

// URL is the base URL of a server made by NewServer ("" otherwise); the
// API is at URL()+"/api/profiles".
func (s *Server) URL() string { return s.url }

// Close stops the listener, if any, and releases hanging requests.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		close(s.done)
		if s.srv != nil {
			s.srv.Close()
		}
	})
}

// Handler serves the API, with any middleware added by Use.
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		(*s.chain.Load()).ServeHTTP(w, r)
	})
}

// Use wraps the simulator in a middleware, e.g. to serve crafted responses
// for some requests. The first middleware added is the outermost.
func (s *Server) Use(mw func(next http.Handler) http.Handler) {
	s.mwMu.Lock()
	defer s.mwMu.Unlock()
	s.mws = append(s.mws, mw)
	s.rebuildChain()
}

func (s *Server) rebuildChain() {
	var h http.Handler = http.HandlerFunc(s.serve)
	for i := len(s.mws) - 1; i >= 0; i-- {
		h = s.mws[i](h)
	}
	s.chain.Store(&h)
}

// AddProfiles creates n profiles at the instant created (all sharing that
// second, like a bulk import), or spread over the last min(n, 60) seconds
// when created is zero, and returns them.
func (s *Server) AddProfiles(n int, created time.Time) []Profile {
	if n <= 0 {
		return nil
	}
	s.mu.Lock()
	spread := created.IsZero()
	now := time.Now().Unix()
	secs := int64(min(n, 60))
	added := make([]record, 0, n)
	for i := range n {
		t := created.Unix()
		if spread {
			t = now - secs + 1 + int64(i)*secs/int64(n)
		}
		rec := newRecord(uint64(s.cfg.Seed), uint32(len(s.recs)), t, t)
		s.recs = append(s.recs, rec)
		added = append(added, rec)
	}
	s.version++
	s.mu.Unlock()
	return materializeAll(added)
}

// UpdateProfiles sets updated to at (now when zero; never before created)
// and changes the mutable attributes (organization, title,
// last_event_date, properties, subscriptions, predictive analytics) of
// the profiles with these ids. Unknown ids are ignored.
func (s *Server) UpdateProfiles(ids []string, at time.Time) {
	if at.IsZero() {
		at = time.Now()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	order := s.order(sortID)
	for _, id := range ids {
		j, ok := slices.BinarySearchFunc(order, id, func(pos int32, id string) int {
			return compareIDString(&s.recs[pos], id)
		})
		if !ok {
			continue
		}
		rec := &s.recs[order[j]]
		rec.updated = max(at.Unix(), rec.created)
		rec.rev++
	}
	s.version++
}

func compareIDString(rec *record, id string) int {
	for i := 0; i < len(rec.id) && i < len(id); i++ {
		if rec.id[i] != id[i] {
			if rec.id[i] < id[i] {
				return -1
			}
			return 1
		}
	}
	return len(rec.id) - len(id)
}

// Profiles returns the current data set sorted by id, every section
// (subscriptions, predictive analytics) filled in. Meant for tests: a large
// data set makes a large dump.
func (s *Server) Profiles() []Profile {
	s.mu.RLock()
	recs := slices.Clone(s.recs)
	s.mu.RUnlock()
	slices.SortFunc(recs, func(a, b record) int { return bytes.Compare(a.id[:], b.id[:]) })
	return materializeAll(recs)
}

func materializeAll(recs []record) []Profile {
	out := make([]Profile, len(recs))
	var a arena
	for i := range recs {
		// Each profile's strings live in a chunk that is never reused.
		if cap(a.b)-len(a.b) < 8<<10 {
			a.b = make([]byte, 0, 256<<10)
		}
		materialize(&recs[i], wantAll, &a, &out[i])
	}
	return out
}

// Counters returns a snapshot of the server's counters.
func (s *Server) Counters() Counters {
	c := Counters{Requests: s.requests.Load(), ProfilesServed: s.served.Load()}
	s.ctrMu.Lock()
	c.ByStatus = make(map[int]int64, len(s.byStatus))
	for k, v := range s.byStatus {
		c.ByStatus[k] = v
	}
	c.Faults = make(map[Fault]int64, len(s.faults))
	for k, v := range s.faults {
		c.Faults[k] = v
	}
	s.ctrMu.Unlock()
	s.lim.mu.Lock()
	c.MaxBurst, c.MaxSteady, c.RateLimited = s.lim.maxBurst, s.lim.maxSteady, s.lim.limited
	s.lim.mu.Unlock()
	return c
}

// SetRateLimits replaces the normal budget; zero values mean the defaults.
func (s *Server) SetRateLimits(burst, steady Limit) {
	s.lim.mu.Lock()
	defer s.lim.mu.Unlock()
	s.lim.set(burst, steady, s.lim.predictive.burst.limit, s.lim.predictive.steady.limit)
}

// ConsumeBudget records n requests made now by another integration of the
// same account: they use the budget (and show in RateLimit-Remaining) but
// not in MaxBurst/MaxSteady.
func (s *Server) ConsumeBudget(n int) { s.lim.consume(time.Now(), n) }

func (s *Server) countStatus(status int) {
	s.ctrMu.Lock()
	s.byStatus[status]++
	s.ctrMu.Unlock()
}

func (s *Server) countFault(f Fault) {
	s.ctrMu.Lock()
	s.faults[f]++
	s.ctrMu.Unlock()
}

// order returns record positions sorted by field, building the index when
// the data changed since it was last built. The caller holds s.mu.
func (s *Server) order(f sortField) []int32 {
	s.idxMu.Lock()
	defer s.idxMu.Unlock()
	ix := &s.idx[f]
	if ix.built && ix.version == s.version && len(ix.order) == len(s.recs) {
		return ix.order
	}
	order := make([]int32, len(s.recs))
	for i := range order {
		order[i] = int32(i)
	}
	recs := s.recs
	byID := func(a, b int32) int { return bytes.Compare(recs[a].id[:], recs[b].id[:]) }
	switch f {
	case sortID:
		slices.SortFunc(order, byID)
	case sortCreated, sortUpdated:
		slices.SortFunc(order, func(a, b int32) int {
			ka, kb := recs[a].created, recs[b].created
			if f == sortUpdated {
				ka, kb = recs[a].updated, recs[b].updated
			}
			if ka != kb {
				if ka < kb {
					return -1
				}
				return 1
			}
			return byID(a, b)
		})
	case sortEmail:
		keys := make([]string, len(recs))
		var scratch []byte
		for i := range recs {
			scratch, _ = appendEmail(scratch[:0], &recs[i])
			keys[i] = string(scratch)
		}
		slices.SortFunc(order, func(a, b int32) int {
			if keys[a] != keys[b] {
				if keys[a] < keys[b] {
					return -1
				}
				return 1
			}
			return byID(a, b)
		})
	}
	*ix = sortIndex{built: true, version: s.version, order: order}
	return order
}
