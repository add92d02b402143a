package klaviyosim

import (
	"bytes"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/gzip"
)

// serve handles one request in the order the API appears to: faults (an
// upstream failure does not care about the request), authentication,
// revision, budget, then parameters and data.
func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	const defaultMT = "application/vnd.api+json"
	if r.URL.Path != "/api/profiles" && r.URL.Path != "/api/profiles/" {
		s.writeError(w, r, defaultMT, errNotFound(r.URL.Path))
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		s.writeError(w, r, defaultMT, errMethod(r.Method))
		return
	}
	if f, hangNo, ok := s.nextFault(); ok {
		s.serveFault(w, r, f, hangNo)
		return
	}
	if e := s.authenticate(r.Header.Get("Authorization")); e != nil {
		s.writeError(w, r, defaultMT, e)
		return
	}
	rv := r.Header.Get("revision")
	if rv == "" {
		s.writeError(w, r, defaultMT, &apiError{status: http.StatusBadRequest, code: "invalid", title: "Invalid input.",
			detail: "Missing required header: revision (format YYYY-MM-DD[.suffix]).", parameter: "revision"})
		return
	}
	rev, ok := parseRevision(rv)
	if !ok {
		s.writeError(w, r, defaultMT, &apiError{status: http.StatusBadRequest, code: "invalid", title: "Invalid input.",
			detail: "Invalid revision '" + rv + "': not a supported revision (format YYYY-MM-DD[.suffix]).", parameter: "revision"})
		return
	}
	mt := rev.mediaType()
	values, qerr := parseQueryString(r.URL.RawQuery)

	admitted, retryAfter, rh := s.lim.admit(time.Now(), qerr == nil && wantsPredictive(values))
	if !admitted {
		w.Header().Set("Retry-After", strconv.Itoa(retryAfter))
		s.writeError(w, r, mt, errThrottled(retryAfter))
		return
	}
	if rh.limit > 0 {
		h := w.Header()
		h.Set("RateLimit-Limit", strconv.Itoa(rh.limit))
		h.Set("RateLimit-Remaining", strconv.Itoa(rh.remaining))
		h.Set("RateLimit-Reset", strconv.Itoa(rh.reset))
	}
	if !s.delay(r) {
		return
	}
	if qerr != nil {
		s.writeError(w, r, mt, qerr)
		return
	}
	base := baseURL(r)
	q, e := s.parseQuery(values, rev, base)
	if e != nil {
		s.writeError(w, r, mt, e)
		return
	}
	res := s.runQuery(q)
	bp := getBuf()
	body := s.renderPage((*bp)[:0], q, res, base+r.URL.Path, r.URL.RawQuery)
	s.served.Add(int64(len(res.recs)))
	s.write(w, r, http.StatusOK, mt, body)
	*bp = body
	putBuf(bp)
}

func (s *Server) authenticate(header string) *apiError {
	key, ok := strings.CutPrefix(header, "Klaviyo-API-Key ")
	key = strings.TrimSpace(key)
	switch {
	case !ok || key == "":
		return errNotAuthenticated()
	case s.cfg.NoScopeKey != "" && key == s.cfg.NoScopeKey:
		return errPermission()
	case key == s.cfg.APIKey || slices.Contains(s.cfg.ExtraKeys, key):
		return nil
	}
	return errAuthFailed()
}

// delay waits Latency ± Jitter; false if the client went away.
func (s *Server) delay(r *http.Request) bool {
	d := s.cfg.Latency
	if d <= 0 {
		return true
	}
	if s.cfg.Jitter > 0 {
		d = time.Duration(float64(d) * (1 + s.cfg.Jitter*(2*rand.Float64()-1)))
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	case <-s.done:
		return false
	}
}

func baseURL(r *http.Request) string {
	if r.TLS != nil {
		return "https://" + r.Host
	}
	return "http://" + r.Host
}

// write sends a complete response, gzipped when the client accepts it.
func (s *Server) write(w http.ResponseWriter, r *http.Request, status int, mediaType string, body []byte) {
	h := w.Header()
	h.Set("Content-Type", mediaType)
	out := body
	if !s.cfg.DisableGzip && acceptsGzip(r.Header.Get("Accept-Encoding")) {
		zb := getBuf()
		defer putBuf(zb)
		buf := bytes.NewBuffer((*zb)[:0])
		zw := gzipPool.Get().(*gzip.Writer)
		zw.Reset(buf)
		zw.Write(body)
		zw.Close()
		gzipPool.Put(zw)
		out = buf.Bytes()
		*zb = out
		h.Set("Content-Encoding", "gzip")
		h.Add("Vary", "Accept-Encoding")
	}
	h.Set("Content-Length", strconv.Itoa(len(out)))
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		w.Write(out)
	}
	s.countStatus(status)
}

func (s *Server) writeError(w http.ResponseWriter, r *http.Request, mediaType string, e *apiError) {
	n := s.errSeq.Add(1)
	id := string(appendUUID(nil, mix(uint64(s.cfg.Seed), n), mix(n, 0xe7707)))
	s.write(w, r, e.status, mediaType, e.appendJSON(nil, id))
}

func acceptsGzip(ae string) bool {
	for part := range strings.SplitSeq(ae, ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(name), "gzip") {
			q := strings.ReplaceAll(params, " ", "")
			return q != "q=0" && q != "q=0.0" && q != "q=0.00" && q != "q=0.000"
		}
	}
	return false
}

var gzipPool = sync.Pool{New: func() any {
	zw, _ := gzip.NewWriterLevel(nil, gzip.BestSpeed)
	return zw
}}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 256<<10); return &b }}

func getBuf() *[]byte { return bufPool.Get().(*[]byte) }

func putBuf(b *[]byte) {
	if cap(*b) > 4<<20 {
		return // don't keep outliers
	}
	*b = (*b)[:0]
	bufPool.Put(b)
}
