package reliability

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/klaviyo-etl/klaviyo-etl/extract/klaviyosim"
	"github.com/klaviyo-etl/klaviyo-etl/internal/e2etest"
)

// badCase is one kind of bad input, run against both sinks.
type badCase struct {
	name, desc string
	run        func(t *testing.T, sink string) figure
	sinks      []string // default both
}

// craftedArgs are the run flags of the crafted cases: one chain, so a
// crafted page is asked for once, and a short retry deadline, so a body
// that can never be read fails fast.
func craftedArgs(tg target, extra ...string) []string {
	return tg.args(append(append([]string{"--concurrency", "1", "--retry-deadline", "2s", "--checkpoint-rows", "300",
		"--log-level", "warn"}, fastBudget...), extra...)...)
}

// TestBadInput serves what a broken or hostile API might send: the fuzz
// corpora of the page decoders and of filter and cursor handling, a page
// of 100 records each broken differently, a 5 MB properties object, deep
// nesting, invalid UTF-8, NUL characters, duplicate ids in a page and
// across pages, records outside the window, empty pages with links.next, a
// links.next loop and a foreign links.next host. The program must not
// crash; every record must end up as a profile row, as reject rows holding
// it byte for byte, or counted as outside the window; what cannot be read
// must fail the run with a clear message.
func TestBadInput(t *testing.T) {
	t.Parallel()
	cases := []badCase{
		{"corpus-decoder", "fuzz corpora of the page decoders (transform, extract) served as pages", corpusDecoder, nil},
		{"corpus-filter-since", "filter fuzz corpus given as --since", corpusFilterSince, nil},
		{"corpus-filter-cursor", "filter fuzz corpus as page[cursor] of links.next", corpusFilterCursor, nil},
		{"broken-100", "a page of 100 records, each broken differently", broken100, nil},
		{"properties-5mb", "a 5 MB properties object", bigProperties, nil},
		{"deep-nesting", "properties nested 100, 5,000 and 9,990 deep", deepNesting, nil},
		{"deep-nesting-over-limit", "a record nested 20,000 deep (past the 10,000 limit)", deepOverLimit, nil},
		{"utf8-nul", "invalid UTF-8, lone surrogates and NUL characters", utf8AndNUL, nil},
		{"duplicate-in-page", "the same record twice in one page", duplicateInPage, nil},
		{"duplicate-across-pages", "a record of page 1 again in page 2", duplicateAcrossPages, nil},
		{"outside-window-past", "a record created before the window inside page 1", outsidePast, nil},
		{"outside-window-future", "a record created after the window inside page 1", outsideFuture, nil},
		{"empty-data-with-next", "three empty pages whose links.next lead on", emptyWithNext, nil},
		{"next-loop", "links.next looping back to an earlier cursor", nextLoop, nil},
		{"next-foreign-host", "links.next to another host and port", foreignNext, nil},
	}
	var names []string
	var runs []func(t *testing.T)
	for _, c := range cases {
		ss := c.sinks
		if ss == nil {
			ss = sinks
		}
		for _, sink := range ss {
			names = append(names, c.name+"/"+sink)
			runs = append(runs, func(t *testing.T) {
				f := c.run(t, sink)
				f.Case, f.Sink = c.desc, sink
				record(t, f)
			})
		}
	}
	parallel(t, 6, names, func(t *testing.T, i int) { runs[i](t) })
}

// fuzzCorpus reads the values of the `go test fuzz v1` files in dir.
func fuzzCorpus(t testing.TB, dir string) map[string][]byte {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no fuzz corpus in %s: %v", dir, err)
	}
	out := map[string][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.SplitN(string(b), "\n", 3)
		if len(lines) < 2 || lines[0] != "go test fuzz v1" {
			t.Fatalf("%s: not a fuzz corpus file", f)
		}
		v := strings.TrimSpace(lines[1])
		for _, prefix := range []string{"[]byte(", "string("} {
			if s, ok := strings.CutPrefix(v, prefix); ok {
				v = strings.TrimSuffix(s, ")")
			}
		}
		s, err := strconv.Unquote(v)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out[filepath.Base(f)] = []byte(s)
	}
	return out
}

// The seeds FuzzParsePage (extract/page_test.go) adds in code.
var parsePageSeeds = map[string][]byte{
	"extract-seed-1": []byte(`{"data":[{"id":"a","attributes":{"created":"2024-01-02T03:04:05Z"}}],"links":{"next":null}}`),
	"extract-seed-2": []byte(`{"data":[1,"x",null,{"id":null}],"meta":{"a":[{}]}}`),
	"extract-seed-3": []byte(`{"data":[{"id":"\u00e9\ud83d\ude00"}]}`),
}

// checkClean fails t unless r is exit 0, or exit 1 with a message.
func checkClean(t testing.TB, r result) {
	t.Helper()
	switch {
	case r.killed():
		t.Errorf("the program died of %v: %s", r.signal, tail(r.stderr, 2000))
	case strings.Contains(r.stderr, "panic:") || strings.Contains(r.stderr, "goroutine "):
		t.Errorf("the program panicked: %s", tail(r.stderr, 3000))
	case r.code == 0:
	case r.code == 1 && r.message() != "":
	default:
		t.Errorf("unclean end: %v", r)
	}
}

func corpusDecoder(t *testing.T, sink string) figure {
	bodies := fuzzCorpus(t, "../transform/testdata/fuzz/FuzzAddPage")
	for k, v := range parsePageSeeds {
		bodies[k] = v
	}
	var all []result
	ok, failed, elems := 0, 0, 0
	var lost, rejects int
	for name, body := range bodies {
		tg, r := runPage(t, sink, body)
		all = append(all, r)
		valid := json.Valid(body)
		if r.code == 0 {
			ok++
			if !valid {
				t.Errorf("%s: invalid JSON accepted as a page", name)
			}
			es := elementsOf(body)
			elems += len(es)
			l, rj := account(t, tg, es, r)
			lost += l
			rejects += len(rj)
		} else {
			failed++
			t.Logf("%s: %s", name, r.message())
		}
	}
	return figure{Runs: len(all), Outcome: fmt.Sprintf("%d bodies loaded (%d records, %d reject rows), %d failed with a message, none crashed",
		ok, elems, rejects, failed), Lost: lost, PeakRSS: peakRSS(all...), Seconds: wallOf(all...).Seconds()}
}

func filterCorpus(t testing.TB) map[string]string {
	out := map[string]string{}
	for k, v := range fuzzCorpus(t, "../extract/klaviyosim/testdata/fuzz/FuzzParseFilter") {
		out[k] = string(v)
	}
	// The seeds FuzzParseFilter adds in code.
	for i, s := range []string{"greater-than(created,2023-06-05T14:49:54Z)",
		"and(greater-than(updated,2023-06-05 14:49:54.123+02:00),less-than(updated,2024-01-01))",
		`any(email,["a@b.c",'d@e.f'])`, `equals(id,"01GDDKASAP8TKDDA2GRZDSVP4H")`,
		"greater-than(created,2023-06-05T14:49:54 00:00)", `not(equals(email,"x"))`, "equals(x,[1,true,null,-2.5e3])"} {
		out[fmt.Sprintf("code-seed-%d", i)] = s
	}
	return out
}

func corpusFilterSince(t *testing.T, sink string) figure {
	var all []result
	for name, s := range filterCorpus(t) {
		sim := newSim(t, klaviyosim.Config{Profiles: 50, Seed: 1, Unlimited: true})
		tg := newTarget(t, sink)
		r := run(t, spec{args: craftedArgs(tg, "--since", s), env: tg.env(sim)})
		all = append(all, r)
		if r.code != 2 || !strings.Contains(r.message(), "--since") {
			t.Errorf("%s: --since %q: %v, want exit 2 naming --since", name, s, r)
		}
	}
	return figure{Runs: len(all), Outcome: "every value refused with exit 2 and a message naming --since",
		PeakRSS: peakRSS(all...), Seconds: wallOf(all...).Seconds()}
}

func corpusFilterCursor(t *testing.T, sink string) figure {
	var all []result
	var lost, dups int
	for name, s := range filterCorpus(t) {
		sim := newSim(t, klaviyosim.Config{Profiles: 450, Seed: 3, Unlimited: true, DisableGzip: true})
		base := sim.URL()
		sim.Use(editPages(func(n int, r *http.Request, body []byte) []byte {
			if n != 1 {
				return body
			}
			p := decodePage(t, body)
			p.Links["next"] = withCursor(base, s)
			return encodePage(p)
		}))
		tg := newTarget(t, sink)
		r := run(t, spec{args: craftedArgs(tg), env: tg.env(sim)})
		all = append(all, r)
		if r.code != 0 {
			t.Errorf("%s: a rejected page[cursor] %q: %v", name, s, r)
			continue
		}
		tl := checkExact(t, tg, sim.Profiles())
		lost += tl.Lost
		dups += tl.Duplicates
	}
	return figure{Runs: len(all), Outcome: "each foreign cursor refused by the API (400); the slice restarted; exit 0, exact",
		Lost: lost, Dups: dups, PeakRSS: peakRSS(all...), Seconds: wallOf(all...).Seconds()}
}

// onePage is a last page (links.next null) holding elems.
func onePage(elems ...string) []byte {
	return []byte(`{"data":[` + strings.Join(elems, ",") + `],"links":{"next":null}}`)
}

// runPage runs the program into a new target of sink against a simulator
// that answers every request with body, and checks it ended cleanly.
func runPage(t *testing.T, sink string, body []byte) (target, result) {
	t.Helper()
	sim := newSim(t, klaviyosim.Config{Seed: 1, Unlimited: true})
	sim.Use(servePage(body))
	tg := newTarget(t, sink)
	r := run(t, spec{args: craftedArgs(tg), env: tg.env(sim)})
	checkClean(t, r)
	return tg, r
}

func asBytes(elems []string) [][]byte {
	bs := make([][]byte, len(elems))
	for i, e := range elems {
		bs[i] = []byte(e)
	}
	return bs
}

func broken100(t *testing.T, sink string) figure {
	elems := brokenRecords()
	body := []byte(`{"data":[` + strings.Join(elems, ",") + `],"links":{"self":"x","next":null}}`)
	tg, r := runPage(t, sink, body)
	if r.code != 0 {
		t.Fatalf("a page of broken records: %v", r)
	}
	lost, rejects := account(t, tg, asBytes(elems), r)
	rows := readProfiles(t, tg)
	withReject := map[string]bool{}
	for _, rj := range rejects {
		withReject[string(rj.Raw)] = true
	}
	return figure{Runs: 1, Outcome: fmt.Sprintf("exit 0: %d profile rows, %d reject rows for %d records, %d out of window",
		len(rows), len(rejects), len(withReject), r.summary.OutOfWindow),
		Lost: lost, Dups: duplicates(rows), PeakRSS: peakRSS(r), Seconds: r.wall.Seconds()}
}

func bigProperties(t *testing.T, sink string) figure {
	var b strings.Builder
	b.WriteString(`{`)
	for i := 0; b.Len() < 5<<20; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"key_%06d":{"text":%q,"n":%d.25,"list":[true,null,"\u00e9"]}`, i, strings.Repeat("v", 40), i)
	}
	b.WriteString(`}`)
	props := b.String()
	elems := []string{
		`{"type":"profile","id":"small-1","attributes":{"email":"a@example.com","created":"2024-01-02T03:04:05Z","properties":{"a":1}}}`,
		`{"type":"profile","id":"huge","attributes":{"email":"h@example.com","created":"2024-01-02T03:04:06Z","properties":` + props + `}}`,
		`{"type":"profile","id":"small-2","attributes":{"email":"b@example.com","created":"2024-01-02T03:04:07Z"}}`,
	}
	body := onePage(elems...)
	tg, r := runPage(t, sink, body)
	if r.code != 0 {
		t.Fatalf("%v", r)
	}
	rows := readProfiles(t, tg)
	var got any
	for _, row := range rows {
		if row.ID == "huge" {
			got = row.Properties
		}
	}
	if got == nil {
		t.Fatalf("the profile with 5 MB of properties is missing (%d rows)", len(rows))
	}
	if want := e2etest.DecodeJSON([]byte(props)); !jsonEqual(got, want) {
		t.Errorf("the 5 MB properties object differs after the round trip")
	}
	bs := [][]byte{[]byte(elems[0]), []byte(elems[1]), []byte(elems[2])}
	lost, _ := account(t, tg, bs, r)
	return figure{Runs: 1, Outcome: fmt.Sprintf("exit 0, the %.1f MB object stored and read back equal", float64(len(props))/(1<<20)),
		Lost: lost, Dups: duplicates(rows), PeakRSS: peakRSS(r), Seconds: r.wall.Seconds()}
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

// nested returns a value nested depth levels deep.
func nested(depth int) string {
	return strings.Repeat(`[`, depth-1) + `{"deep":true}` + strings.Repeat(`]`, depth-1)
}

func deepNesting(t *testing.T, sink string) figure {
	var all []result
	var lost, dups int
	for _, depth := range []int{100, 5000, 9990} {
		elems := []string{
			fmt.Sprintf(`{"type":"profile","id":"deep-%d","attributes":{"created":"2024-01-02T03:04:05Z","properties":{"p":%s}}}`, depth, nested(depth)),
			`{"type":"profile","id":"flat","attributes":{"created":"2024-01-02T03:04:06Z"}}`,
		}
		body := onePage(elems...)
		tg, r := runPage(t, sink, body)
		all = append(all, r)
		if r.code != 0 {
			t.Errorf("depth %d: %v", depth, r)
			continue
		}
		l, _ := account(t, tg, [][]byte{[]byte(elems[0]), []byte(elems[1])}, r)
		lost += l
		dups += duplicates(readProfiles(t, tg))
	}
	return figure{Runs: len(all), Outcome: "exit 0, every record a profile row or a reject row", Lost: lost, Dups: dups,
		PeakRSS: peakRSS(all...), Seconds: wallOf(all...).Seconds()}
}

// deepOverLimit sends a record nested deeper than encoding/json's 10,000
// levels. Either outcome is clean: the record rejected with its raw bytes
// while the rest loads (what defect D1 asks for), or exit 1 saying the page
// is nested too deeply.
func deepOverLimit(t *testing.T, sink string) figure {
	elems := []string{
		`{"type":"profile","id":"flat","attributes":{"created":"2024-01-02T03:04:05Z"}}`,
		`{"type":"profile","id":"too-deep","attributes":{"created":"2024-01-02T03:04:06Z","properties":{"p":` + nested(20000) + `}}}`,
	}
	body := onePage(elems...)
	tg, r := runPage(t, sink, body)
	f := figure{Runs: 1, Retries: retriesOf(r), PeakRSS: peakRSS(r), Seconds: r.wall.Seconds()}
	switch {
	case r.code == 0:
		lost, rejects := account(t, tg, [][]byte{[]byte(elems[0]), []byte(elems[1])}, r)
		f.Lost, f.Dups = lost, duplicates(readProfiles(t, tg))
		f.Outcome = fmt.Sprintf("exit 0: the deep record rejected with its raw bytes (%d reject rows), the other loaded", len(rejects))
	case r.code == 1 && strings.Contains(r.message(), "nested too deeply"):
		f.Outcome = fmt.Sprintf("exit 1 after the retry deadline (%q): the page, and the export behind it, is blocked (D1)", clip(r.message(), 140))
	default:
		t.Errorf("a record nested 20,000 deep: %v, want it rejected, or exit 1 saying it is nested too deeply", r)
	}
	return f
}

func utf8AndNUL(t *testing.T, sink string) figure {
	elems := []string{
		"{\"type\":\"profile\",\"id\":\"utf8-1\",\"attributes\":{\"email\":\"\xff\xfe@example.com\",\"created\":\"2024-01-02T03:04:05Z\"}}",
		`{"type":"profile","id":"utf8-2","attributes":{"first_name":"lone \ud800 surrogate","created":"2024-01-02T03:04:05Z"}}`,
		`{"type":"profile","id":"nul-1","attributes":{"first_name":"a\u0000b","created":"2024-01-02T03:04:05Z","properties":{"k\u0000":"v\u0000"}}}`,
		"{\"type\":\"profile\",\"id\":\"utf8-3\",\"attributes\":{\"created\":\"2024-01-02T03:04:05Z\",\"properties\":{\"\xc3\":\"\xed\xa0\x80\"}}}",
		`{"type":"profile","id":"fine","attributes":{"first_name":"Zoë ✓ 日本","created":"2024-01-02T03:04:05Z"}}`,
	}
	body := onePage(elems...)
	tg, r := runPage(t, sink, body)
	if r.code != 0 {
		t.Fatalf("%v", r)
	}
	lost, rejects := account(t, tg, asBytes(elems), r)
	rows := readProfiles(t, tg)
	byID := map[string]row{}
	for _, r := range rows {
		byID[r.ID] = r
	}
	if fn := byID["nul-1"].FirstName; fn == nil {
		t.Errorf("the first name holding NUL is missing")
	} else if want := map[string]string{"parquet": "a\x00b", "postgres": "a\uFFFDb"}[sink]; *fn != want {
		t.Errorf("first name %q, want %q", *fn, want)
	}
	if fn := byID["fine"].FirstName; fn == nil || *fn != "Zoë ✓ 日本" {
		t.Errorf("valid UTF-8 changed: %v", fn)
	}
	if r.summary == nil || r.summary.NULValues == 0 {
		t.Errorf("the summary counts no NUL values: %+v", r.summary)
	}
	return figure{Runs: 1, Outcome: fmt.Sprintf("exit 0: %d profile rows, %d reject rows (lossy reads kept with U+FFFD, raw record kept); NUL kept in Parquet, U+FFFD in PostgreSQL",
		len(rows), len(rejects)), Lost: lost, Dups: duplicates(rows), PeakRSS: peakRSS(r), Seconds: r.wall.Seconds()}
}

func duplicateInPage(t *testing.T, sink string) figure {
	a := `{"type":"profile","id":"dup-a","attributes":{"email":"a@example.com","created":"2024-01-02T03:04:05Z"}}`
	b := `{"type":"profile","id":"dup-b","attributes":{"email":"b@example.com","created":"2024-01-02T03:04:06Z"}}`
	body := onePage(a, b, a)
	tg, r := runPage(t, sink, body)
	if r.code != 0 {
		t.Fatalf("%v", r)
	}
	rows := readProfiles(t, tg)
	dups := duplicates(rows)
	lost, _ := account(t, tg, [][]byte{[]byte(a), []byte(b)}, r)
	if dups > 0 {
		t.Errorf("%d duplicate rows for a record sent twice in one page", dups)
	}
	return figure{Runs: 1, Outcome: fmt.Sprintf("exit 0, %d rows for 2 profiles", len(rows)), Lost: lost, Dups: dups,
		PeakRSS: peakRSS(r), Seconds: r.wall.Seconds()}
}

func duplicateAcrossPages(t *testing.T, sink string) figure {
	sim := newSim(t, klaviyosim.Config{Profiles: 450, Seed: 5, Unlimited: true, DisableGzip: true})
	var first, last json.RawMessage
	sim.Use(editPages(func(n int, r *http.Request, body []byte) []byte {
		p := decodePage(t, body)
		switch n {
		case 1:
			first, last = p.Data[0], p.Data[len(p.Data)-1]
		case 2:
			// The first and the last record of page 1, again, at the start.
			p.Data = append([]json.RawMessage{first, last}, p.Data...)
			return encodePage(p)
		}
		return body
	}))
	tg := newTarget(t, sink)
	r := run(t, spec{args: craftedArgs(tg), env: tg.env(sim)})
	checkClean(t, r)
	if r.code != 0 {
		t.Fatalf("%v", r)
	}
	tl := checkExact(t, tg, sim.Profiles())
	return figure{Runs: 1, Outcome: fmt.Sprintf("exit 0, exact (%d duplicates skipped, %d records counted out of window)",
		r.summary.Duplicates, r.summary.OutOfWindow), Lost: tl.Lost, Dups: tl.Duplicates, PeakRSS: peakRSS(r), Seconds: r.wall.Seconds()}
}

// strayRecord is a record with a created time outside any window.
func strayRecord(id, created string) json.RawMessage {
	return json.RawMessage(`{"type":"profile","id":"` + id + `","attributes":{"email":"stray@example.com","created":"` + created + `"}}`)
}

// injectStray puts a stray record in the middle of the first page of a
// multi-page export.
func injectStray(t *testing.T, sink, created string) (figure, result) {
	sim := newSim(t, klaviyosim.Config{Profiles: 450, Seed: 7, Unlimited: true, DisableGzip: true})
	sim.Use(editPages(func(n int, r *http.Request, body []byte) []byte {
		if n != 1 {
			return body
		}
		p := decodePage(t, body)
		mid := len(p.Data) / 2
		p.Data = append(p.Data[:mid], append([]json.RawMessage{strayRecord("stray", created)}, p.Data[mid:]...)...)
		return encodePage(p)
	}))
	tg := newTarget(t, sink)
	r := run(t, spec{args: craftedArgs(tg), env: tg.env(sim)})
	checkClean(t, r)
	if r.code != 0 {
		t.Fatalf("%v", r)
	}
	tl := checkExact(t, tg, sim.Profiles())
	if r.summary.OutOfWindow == 0 {
		t.Errorf("the stray record is not counted as outside the window: %+v", r.summary)
	}
	return figure{Runs: 1, Outcome: fmt.Sprintf("exit 0, exact; the stray record dropped and counted (out_of_window %d)", r.summary.OutOfWindow),
		Lost: tl.Lost, Dups: tl.Duplicates, PeakRSS: peakRSS(r), Seconds: r.wall.Seconds()}, r
}

func outsidePast(t *testing.T, sink string) figure {
	f, _ := injectStray(t, sink, "1960-01-01T00:00:00Z")
	return f
}

func outsideFuture(t *testing.T, sink string) figure {
	f, _ := injectStray(t, sink, "2999-01-01T00:00:00Z")
	return f
}

func emptyWithNext(t *testing.T, sink string) figure {
	sim := newSim(t, klaviyosim.Config{Profiles: 450, Seed: 9, Unlimited: true, DisableGzip: true})
	base := sim.URL()
	sim.Use(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if isProbe(r) {
				next.ServeHTTP(w, r)
				return
			}
			q := r.URL.Query()
			cur := q.Get("page[cursor]")
			var to string
			switch cur {
			case "":
				to = "EMPTY1"
			case "EMPTY1":
				to = "EMPTY2"
			case "EMPTY2":
				to = "EMPTY3"
			case "EMPTY3":
				// Lead on to the simulator's first page.
				q.Del("page[cursor]")
				r.URL.RawQuery = q.Encode()
				next.ServeHTTP(w, r)
				return
			default:
				next.ServeHTTP(w, r)
				return
			}
			servePage([]byte(`{"data":[],"links":{"self":"x","next":"`+withCursor(base, to)+`"}}`))(nil).ServeHTTP(w, r)
		})
	})
	tg := newTarget(t, sink)
	r := run(t, spec{args: craftedArgs(tg), env: tg.env(sim)})
	checkClean(t, r)
	if r.code != 0 {
		t.Fatalf("%v", r)
	}
	tl := checkExact(t, tg, sim.Profiles())
	return figure{Runs: 1, Outcome: "exit 0, exact: the empty pages were followed", Lost: tl.Lost, Dups: tl.Duplicates,
		PeakRSS: peakRSS(r), Seconds: r.wall.Seconds()}
}

// useNextLoop makes sim's links.next loop for as long as the switch it
// returns is on (it starts on): page 3, however often it is asked for,
// leads back to page 2.
func useNextLoop(t testing.TB, sim *klaviyosim.Server) *atomic.Bool {
	base := sim.URL()
	on := new(atomic.Bool)
	on.Store(true)
	var cursors []string // links.next of each response, in order
	var loopAt string
	sim.Use(editPages(func(n int, r *http.Request, body []byte) []byte {
		if !on.Load() {
			return body
		}
		p := decodePage(t, body)
		if cur := r.URL.Query().Get("page[cursor]"); loopAt != "" && cur == loopAt {
			p.Links["next"] = withCursor(base, cursors[0])
			return encodePage(p)
		}
		cursors = append(cursors, nextCursor(p))
		if len(cursors) == 2 {
			loopAt = cursors[1]
		}
		return body
	}))
	return on
}

func nextLoop(t *testing.T, sink string) figure {
	sim := newSim(t, klaviyosim.Config{Profiles: 900, Seed: 11, Unlimited: true, DisableGzip: true})
	looping := useNextLoop(t, sim)
	tg := newTarget(t, sink)
	sp := spec{args: craftedArgs(tg, "--page-size", "100"), env: tg.env(sim)}
	first := run(t, sp)
	checkClean(t, first)
	if first.code != 1 || !strings.Contains(first.message(), "loop") {
		t.Fatalf("a links.next loop: %v, want exit 1 naming the loop", first)
	}
	if first.wall > 30*time.Second {
		t.Errorf("the loop took %s to detect", first.wall)
	}
	partial := e2etest.Compare(readProfiles(t, tg), sim.Profiles(), true)
	if partial.Duplicates+partial.Differ+partial.Unexpected > 0 {
		t.Errorf("what the looping run committed: %v", partial)
	}
	looping.Store(false)
	second := run(t, sp)
	if second.code != 0 {
		t.Fatalf("the run after the loop: %v", second)
	}
	tl := checkExact(t, tg, sim.Profiles())
	return figure{Runs: 2, Outcome: fmt.Sprintf("exit 1 in %.1f s (%q), %d profiles before it committed; rerun exact",
		first.wall.Seconds(), clip(first.message(), 120), partial.Got), Lost: tl.Lost, Dups: tl.Duplicates,
		PeakRSS: peakRSS(first, second), Seconds: wallOf(first, second).Seconds()}
}

func foreignNext(t *testing.T, sink string) figure {
	foreign := &counter{}
	fs := httptest.NewServer(foreign)
	defer fs.Close()
	var all []result
	var lost, dups int
	for _, link := range []string{fs.URL + "/api/profiles?page%5Bcursor%5D=x", "https://attacker.example/api/profiles?page%5Bcursor%5D=x",
		"//attacker.example/api/profiles?page%5Bcursor%5D=x"} {
		sim := newSim(t, klaviyosim.Config{Profiles: 450, Seed: 13, Unlimited: true, DisableGzip: true})
		var on atomic.Bool
		on.Store(true)
		sim.Use(editPages(func(n int, r *http.Request, body []byte) []byte {
			if n != 1 || !on.Load() {
				return body
			}
			p := decodePage(t, body)
			p.Links["next"] = link
			return encodePage(p)
		}))
		tg := newTarget(t, sink)
		sp := spec{args: craftedArgs(tg), env: tg.env(sim)}
		first := run(t, sp)
		all = append(all, first)
		checkClean(t, first)
		if first.code != 1 || !strings.Contains(first.message(), "foreign host") {
			t.Errorf("links.next %s: %v, want exit 1 naming the foreign host", link, first)
		}
		on.Store(false)
		second := run(t, sp)
		all = append(all, second)
		if second.code != 0 {
			t.Fatalf("the run after: %v", second)
		}
		tl := checkExact(t, tg, sim.Profiles())
		lost += tl.Lost
		dups += tl.Duplicates
	}
	foreign.mu.Lock()
	defer foreign.mu.Unlock()
	if foreign.n > 0 {
		t.Errorf("the foreign host received %d requests (headers %v)", foreign.n, foreign.h)
	}
	return figure{Runs: len(all), Outcome: fmt.Sprintf("exit 1 naming the foreign host, %d requests reached it; rerun exact", foreign.n),
		Lost: lost, Dups: dups, PeakRSS: peakRSS(all...), Seconds: wallOf(all...).Seconds()}
}
