package klaviyosim

import (
	"bufio"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Fault is a kind of failure the server can inject.
type Fault string

// Fault kinds. Faults happen before authentication and rate limiting, and
// do not use the budget.
const (
	Fault500 Fault = "500" // JSON:API error bodies with these statuses
	Fault502 Fault = "502"
	Fault503 Fault = "503"
	Fault504 Fault = "504"
	// FaultReset closes the TCP connection without a response (RST).
	FaultReset Fault = "reset"
	// FaultTruncated declares a Content-Length, sends half the body, closes.
	FaultTruncated Fault = "truncated"
	// FaultInvalidJSON is a 200 whose body is not valid JSON.
	FaultInvalidJSON Fault = "invalid_json"
	// FaultHang stalls for Config.HangFor or until the client goes away.
	// Odd-numbered hangs send nothing and then a 504; even-numbered ones
	// send 200 headers and then stall mid-body before closing.
	FaultHang Fault = "hang"
	// Fault429 is a spurious 429 with Retry-After: 1.
	Fault429 Fault = "429"
)

// AllFaults lists every kind; the default draw excludes FaultHang.
var AllFaults = []Fault{Fault500, Fault502, Fault503, Fault504, FaultReset, FaultTruncated, FaultInvalidJSON, FaultHang, Fault429}

func (f Fault) valid() bool {
	for _, k := range AllFaults {
		if f == k {
			return true
		}
	}
	return false
}

type faultState struct {
	mu    sync.Mutex
	queue []Fault
	rate  float64
	kinds []Fault
	rnd   *rand.Rand
	hangs int
}

func (fs *faultState) init(cfg *Config) {
	fs.rate = cfg.FaultRate
	fs.kinds = cfg.Faults
	if len(fs.kinds) == 0 {
		for _, k := range AllFaults {
			if k != FaultHang {
				fs.kinds = append(fs.kinds, k)
			}
		}
	}
	fs.rnd = rand.New(rand.NewPCG(uint64(cfg.Seed), 0x6b6c6176))
}

// InjectFaults makes the next n requests fail with kind, ahead of any
// random faults. Unknown kinds are ignored.
func (s *Server) InjectFaults(kind Fault, n int) {
	if !kind.valid() {
		return
	}
	s.flt.mu.Lock()
	defer s.flt.mu.Unlock()
	for range n {
		s.flt.queue = append(s.flt.queue, kind)
	}
}

// SetFaultRate changes the share of requests that get a random fault.
func (s *Server) SetFaultRate(p float64) {
	s.flt.mu.Lock()
	defer s.flt.mu.Unlock()
	s.flt.rate = min(max(p, 0), 1)
}

func (s *Server) nextFault() (Fault, int, bool) {
	fs := &s.flt
	fs.mu.Lock()
	defer fs.mu.Unlock()
	var f Fault
	switch {
	case len(fs.queue) > 0:
		f = fs.queue[0]
		fs.queue = fs.queue[1:]
	case fs.rate > 0 && fs.rnd.Float64() < fs.rate:
		f = fs.kinds[fs.rnd.IntN(len(fs.kinds))]
	default:
		return "", 0, false
	}
	if f == FaultHang {
		fs.hangs++
	}
	return f, fs.hangs, true
}

func (s *Server) serveFault(w http.ResponseWriter, r *http.Request, f Fault, hangNo int) {
	s.countFault(f)
	const mt = "application/vnd.api+json"
	switch f {
	case Fault500, Fault502, Fault503, Fault504:
		status, _ := strconv.Atoi(string(f))
		s.writeError(w, r, mt, errServer(status))
	case Fault429:
		w.Header().Set("Retry-After", "1")
		s.writeError(w, r, mt, errThrottled(1))
	case FaultReset:
		conn, _, err := hijack(w)
		if err != nil {
			panic(http.ErrAbortHandler) // closes the connection without a response
		}
		if tc, ok := conn.(*net.TCPConn); ok {
			tc.SetLinger(0) // RST instead of FIN
		}
		conn.Close()
	case FaultTruncated:
		body := s.cannedPage(r)
		half := body[:len(body)/2]
		conn, bw, err := hijack(w)
		if err != nil {
			w.Header().Set("Content-Type", mt)
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
			w.WriteHeader(http.StatusOK)
			w.Write(half)
			panic(http.ErrAbortHandler)
		}
		bw.WriteString("HTTP/1.1 200 OK\r\nContent-Type: " + mt + "\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n")
		bw.Write(half)
		bw.Flush()
		conn.Close()
	case FaultInvalidJSON:
		body := s.cannedPage(r)
		// A trailing comma in the top-level object: '...}},}' is not JSON.
		body = append(body[:len(body)-1], ",}"...)
		w.Header().Set("Content-Type", mt)
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(http.StatusOK)
		w.Write(body)
		s.countStatus(http.StatusOK)
	case FaultHang:
		timer := time.NewTimer(s.cfg.HangFor)
		defer timer.Stop()
		if hangNo%2 == 0 {
			w.Header().Set("Content-Type", mt)
			w.Header().Set("Content-Length", "4096")
			w.WriteHeader(http.StatusOK)
			w.Write([]byte(`{"data":[`))
			if fl, ok := w.(http.Flusher); ok {
				fl.Flush()
			}
		}
		select {
		case <-r.Context().Done():
			return
		case <-s.done:
			return
		case <-timer.C:
		}
		if hangNo%2 == 0 {
			panic(http.ErrAbortHandler)
		}
		s.writeError(w, r, mt, errServer(http.StatusGatewayTimeout))
	}
}

func hijack(w http.ResponseWriter) (net.Conn, *bufio.Writer, error) {
	conn, rw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return nil, nil, err
	}
	return conn, rw.Writer, nil
}

// cannedPage is a small valid page (the first profiles stored) that the
// body faults cut or break.
func (s *Server) cannedPage(r *http.Request) []byte {
	s.mu.RLock()
	recs := s.recs[:min(3, len(s.recs))]
	recs = append([]record(nil), recs...)
	s.mu.RUnlock()
	rev, _ := parseRevision(newestRevision)
	base := baseURL(r)
	spec, _ := compileRender(rev, base, nil, nil, nil)
	b := []byte(`{"data":[`)
	var a arena
	var p Profile
	for i := range recs {
		if i > 0 {
			b = append(b, ',')
		}
		a.b = a.b[:0]
		materialize(&recs[i], wantProperties, &a, &p)
		b = appendProfile(b, &p, spec)
	}
	b = append(b, `],"links":{"self":`...)
	b = appendString(b, base+r.URL.RequestURI())
	return append(b, "}}"...)
}
