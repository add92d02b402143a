package reliability

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klaviyo-etl/klaviyo-etl/extract/klaviyosim"
)

// requestLog records the queries of the requests that reach the API,
// answered by the simulator or by a middleware added later.
type requestLog struct {
	mu      sync.Mutex
	queries []string
}

func (l *requestLog) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l.mu.Lock()
		l.queries = append(l.queries, r.URL.RawQuery)
		l.mu.Unlock()
		next.ServeHTTP(w, r)
	})
}

// repeated returns how many requests repeated an earlier one (retries).
func (l *requestLog) repeated() (total, repeats int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	seen := map[string]bool{}
	for _, q := range l.queries {
		if seen[q] {
			repeats++
		}
		seen[q] = true
	}
	return len(l.queries), repeats
}

// gone answers every request as a retired revision might: 410 with a
// JSON:API error.
func gone(http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/vnd.api+json")
		w.WriteHeader(http.StatusGone)
		fmt.Fprintf(w, `{"errors":[{"id":"e1","status":410,"code":"gone","title":"Gone.","detail":"Revision %s has been retired."}]}`,
			r.Header.Get("revision"))
	})
}

// TestAuthAndRevision checks the errors no retry can fix: 401 and 403 must
// end the run at once (exit 1, no request sent twice: each chain the run
// started with sends its first request once) with a message naming the
// scope the key needs, profiles:read; a retired revision (400 naming the
// revision, or 410) must tell the user to change --revision. Nothing may be
// committed as progress.
func TestAuthAndRevision(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, desc string
		key, rev   string
		mw         func(http.Handler) http.Handler
		want       []string
	}{
		{name: "401-wrong-key", desc: "wrong API key (401)", key: "pk_wrong", want: []string{"401", "profiles:read", "--api-key"}},
		{name: "403-no-scope", desc: "key without the profiles:read scope (403)", key: "pk_noscope", want: []string{"403", "profiles:read"}},
		{name: "400-revision", desc: "unsupported revision 2021-07-15 (400 naming the revision)", rev: "2021-07-15",
			want: []string{"400", "2021-07-15", "--revision"}},
		{name: "410-revision", desc: "retired revision answered with 410 Gone", mw: gone, want: []string{"410", "--revision"}},
	}
	var names []string
	for _, c := range cases {
		for _, sink := range sinks {
			names = append(names, c.name+"/"+sink)
		}
	}
	parallel(t, 4, names, func(t *testing.T, i int) {
		c, sink := cases[i/len(sinks)], sinks[i%len(sinks)]
		sim := newSim(t, klaviyosim.Config{Profiles: 200, Seed: 61, NoScopeKey: "pk_noscope"})
		var log requestLog
		sim.Use(log.middleware)
		if c.mw != nil {
			sim.Use(c.mw)
		}
		tg := newTarget(t, sink)
		env := tg.env(sim)
		if c.key != "" {
			env["KLAVIYO_API_KEY"] = c.key
		}
		args := tg.args("--log-level", "warn")
		if c.rev != "" {
			args = append(args, "--revision", c.rev)
		}
		r := run(t, spec{args: args, env: env})
		msg := r.message()
		if r.code != 1 {
			t.Errorf("%v, want exit 1", r)
		}
		for _, w := range c.want {
			if !strings.Contains(msg, w) {
				t.Errorf("message %q does not name %q", msg, w)
			}
		}
		if strings.Contains(r.stderr, "pk_wrong") || strings.Contains(r.stderr, "pk_noscope") || strings.Contains(r.stdout, "pk_") {
			t.Errorf("the API key was printed: %s", r.stderr)
		}
		total, repeats := log.repeated()
		if repeats > 0 || (r.summary != nil && r.summary.Retries > 0) {
			t.Errorf("%d of %d requests repeated an earlier one: such errors are not retried", repeats, total)
		}
		if r.wall > 10*time.Second {
			t.Errorf("took %s to give up, want at once", r.wall)
		}
		if st := readState(t, tg); len(st.Cursors) > 0 {
			t.Errorf("the state advanced: %+v", st.Cursors)
		}
		record(t, figure{Case: c.desc, Sink: sink, Runs: 1,
			Outcome: fmt.Sprintf("exit 1 in %.2f s after %d request(s), none repeated: %q", r.wall.Seconds(), total, clip(msg, 220)),
			Retries: retriesOf(r), PeakRSS: peakRSS(r), Seconds: r.wall.Seconds()})
	})
}

// TestBadKeyOnLaterRun: a key revoked after the first run is sent once, not
// once per time slice, before the run gives up.
func TestBadKeyOnLaterRun(t *testing.T) {
	t.Parallel()
	for _, sink := range sinks {
		t.Run(sink, func(t *testing.T) {
			t.Parallel()
			sim := newSim(t, klaviyosim.Config{Profiles: 300, Seed: 62})
			tg := newTarget(t, sink)
			if r := run(t, spec{args: tg.args("--log-level", "warn"), env: tg.env(sim)}); r.code != 0 {
				t.Fatalf("first run: %v", r)
			}
			var log requestLog
			sim.Use(log.middleware)
			env := tg.env(sim)
			env["KLAVIYO_API_KEY"] = "pk_revoked"
			r := run(t, spec{args: tg.args("--log-level", "warn", "--concurrency", "8"), env: env})
			if r.code != 1 || !strings.Contains(r.message(), "401") {
				t.Errorf("%v, want exit 1 naming 401", r)
			}
			if total, _ := log.repeated(); total != 1 {
				t.Errorf("%d requests with the revoked key, want 1", total)
			}
		})
	}
}
