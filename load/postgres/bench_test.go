package postgres

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/jackc/pgx/v5"

	"github.com/klaviyo-etl/klaviyo-etl/internal/pgtest"
	"github.com/klaviyo-etl/klaviyo-etl/load"
	"github.com/klaviyo-etl/klaviyo-etl/schema"
)

// Benchmark sizes: a backfill of -bench-profiles profiles arriving in
// batches of benchBatch, committed every benchCheckpoint.
var benchProfilesFlag = flag.Int("bench-profiles", 1_000_000, "profiles the load benchmarks write (a multiple of 100000)")

const (
	benchBatch      = 10_000
	benchCheckpoint = 100_000
)

// generator makes realistic profiles: ULID-like ids rising with created,
// unique emails, two or three list/segment memberships each, JSON
// properties and subscriptions of the sizes Klaviyo returns.
type generator struct {
	mem   memory.Allocator
	rng   *rand.Rand
	runID string
	start time.Time
	n     int // profiles generated
	shift time.Duration
	rels  bool // relationships too, as with --include
}

func newGenerator(mem memory.Allocator, runID string, shift time.Duration) *generator {
	return &generator{
		mem:   mem,
		rng:   rand.New(rand.NewPCG(1, 2)),
		runID: runID,
		start: time.Date(2019, 1, 1, 0, 0, 0, 0, time.UTC),
		shift: shift,
		rels:  true,
	}
}

const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

var (
	firstNames = []string{"Ana", "Björn", "Chloé", "Dmitri", "Emma", "Farid", "Grace", "Hiroshi", "Ines", "José", "Kofi", "Lena"}
	lastNames  = []string{"Smith", "García", "Müller", "Rossi", "Nakamura", "Okafor", "Dubois", "Kowalski", "O'Brien", "Nguyen"}
	cities     = []string{"Boston", "Paris", "Berlin", "São Paulo", "Tokyo", "Lagos", "Toronto", "Sydney"}
	countries  = []string{"United States", "France", "Germany", "Brazil", "Japan", "Nigeria", "Canada", "Australia"}
	timezones  = []string{"America/New_York", "Europe/Paris", "Europe/Berlin", "America/Sao_Paulo", "Asia/Tokyo", "Africa/Lagos"}
)

// batch returns the next n profiles with their relationships.
func (g *generator) batch(n int) load.Batch {
	pb := array.NewRecordBuilder(g.mem, schema.Profiles.ArrowSchema())
	rb := array.NewRecordBuilder(g.mem, schema.ProfileRelationships.ArrowSchema())
	defer pb.Release()
	defer rb.Release()
	str := func(b *array.RecordBuilder, i int) *array.StringBuilder { return b.Field(i).(*array.StringBuilder) }
	ts := func(i int) *array.TimestampBuilder { return pb.Field(i).(*array.TimestampBuilder) }
	js := func(i int) *array.StringBuilder {
		return pb.Field(i).(*array.ExtensionBuilder).StorageBuilder().(*array.StringBuilder)
	}
	col := schema.Profiles.Index
	for range n {
		k := g.n
		g.n++
		created := g.start.Add(time.Duration(k) * 90 * time.Second)
		updated := created.Add(time.Duration(g.rng.IntN(86400*30))*time.Second + g.shift)
		var id [26]byte
		ms := uint64(created.UnixMilli())
		for i := 9; i >= 0; i-- {
			id[i] = crockford[ms&31]
			ms >>= 5
		}
		for i := 10; i < 26; i++ {
			id[i] = crockford[g.rng.IntN(32)]
		}
		ids := string(id[:])
		first, last := firstNames[g.rng.IntN(len(firstNames))], lastNames[g.rng.IntN(len(lastNames))]
		city := g.rng.IntN(len(cities))

		str(pb, col("id")).Append(ids)
		str(pb, col("email")).Append(fmt.Sprintf("%s.%s.%d@example.com", first, last, k))
		if k%3 == 0 {
			str(pb, col("phone_number")).Append(fmt.Sprintf("+1617555%04d", k%10000))
		} else {
			str(pb, col("phone_number")).AppendNull()
		}
		str(pb, col("external_id")).AppendNull()
		str(pb, col("anonymous_id")).AppendNull()
		str(pb, col("first_name")).Append(first)
		str(pb, col("last_name")).Append(last)
		str(pb, col("organization")).Append("Acme Corporation")
		str(pb, col("locale")).Append("en-US")
		str(pb, col("title")).Append("Regional Manager")
		str(pb, col("image")).AppendNull()
		ts(col("created")).Append(arrow.Timestamp(created.UnixMicro()))
		ts(col("updated")).Append(arrow.Timestamp(updated.UnixMicro()))
		ts(col("last_event_date")).Append(arrow.Timestamp(updated.Add(time.Hour).UnixMicro()))
		str(pb, col("location_address1")).Append(fmt.Sprintf("%d Main Street", 1+k%9999))
		str(pb, col("location_address2")).AppendNull()
		str(pb, col("location_city")).Append(cities[city])
		str(pb, col("location_country")).Append(countries[city])
		str(pb, col("location_region")).Append("Region")
		str(pb, col("location_zip")).Append(fmt.Sprintf("%05d", k%100000))
		str(pb, col("location_timezone")).Append(timezones[city%len(timezones)])
		str(pb, col("location_ip")).Append(fmt.Sprintf("203.0.%d.%d", k%256, (k/256)%256))
		pb.Field(col("location_latitude")).(*array.Float64Builder).Append(-90 + 180*g.rng.Float64())
		pb.Field(col("location_longitude")).(*array.Float64Builder).Append(-180 + 360*g.rng.Float64())
		js(col("properties")).Append(fmt.Sprintf(`{"$source": "signup_form", "plan": "pro", "orders": %d, "lifetime_value": %.2f, "tags": ["vip", "newsletter"], "signup": {"form": "footer", "ab": "b"}}`,
			g.rng.IntN(50), g.rng.Float64()*5000))
		js(col("subscriptions")).Append(`{"email": {"marketing": {"can_receive_email_marketing": true, "consent": "SUBSCRIBED", "consent_timestamp": "2023-02-21T20:07:38+00:00", "last_updated": "2023-02-21T20:07:38+00:00", "method": "PREFERENCE_PAGE", "method_detail": "mydomain.com/signup", "custom_method_detail": "marketing drive", "double_optin": true, "suppression": [], "list_suppressions": []}}, "sms": {"marketing": {"can_receive_sms_marketing": false, "consent": "NEVER_SUBSCRIBED"}}}`)
		pb.Field(col("predictive_analytics")).AppendNull()
		str(pb, col("_run_id")).Append(g.runID)
		ts(col("_extracted_at")).Append(arrow.Timestamp(time.Date(2026, 7, 20, 0, 0, 0, 0, time.UTC).UnixMicro()))

		for j := range (2 + k%2) * b2i(g.rels) {
			rel, typ := "lists", "list"
			if j == 2 {
				rel, typ = "segments", "segment"
			}
			str(rb, 0).Append(ids)
			str(rb, 1).Append(rel)
			str(rb, 2).Append(typ)
			str(rb, 3).Append(fmt.Sprintf("Xy%04d", (k*7+j*13)%500))
			str(rb, 4).Append(g.runID)
		}
	}
	return load.Batch{Profiles: pb.NewRecordBatch(), Relationships: rb.NewRecordBatch()}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func release(b load.Batch) {
	for _, r := range records(b) {
		r.Release()
	}
}

// loadThroughSink writes -bench-profiles generated profiles through a sink as
// a run would and returns the time spent in the sink.
func loadThroughSink(tb testing.TB, url string, g *generator, noFast bool) (time.Duration, int64) {
	ctx := context.Background()
	s, err := New(url, Config{Migrate: true})
	if err != nil {
		tb.Fatal(err)
	}
	s.noFastPath = noFast
	defer s.Close(ctx)
	st, err := s.Begin(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	st.Run = &load.Run{ID: g.runID, CursorField: "created", Status: "running", StartedAt: time.Now()}
	if err := s.Commit(ctx, st); err != nil {
		tb.Fatal(err)
	}
	var spent time.Duration
	var rows int64
	for written := 0; written < *benchProfilesFlag; {
		b := g.batch(benchBatch)
		rows += b.Rows()
		start := time.Now()
		if err := s.Write(ctx, b); err != nil {
			tb.Fatal(err)
		}
		release(b)
		written += benchBatch
		if written%benchCheckpoint == 0 {
			st.Run.Stats.Profiles = int64(written)
			if err := s.Commit(ctx, st); err != nil {
				tb.Fatal(err)
			}
		}
		spent += time.Since(start)
	}
	st.LastRun, st.Run = st.Run, nil
	start := time.Now()
	if err := s.Commit(ctx, st); err != nil {
		tb.Fatal(err)
	}
	return spent + time.Since(start), rows
}

func report(b *testing.B, spent time.Duration, rows int64, cpu cpuTimes) {
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(*benchProfilesFlag)/spent.Seconds(), "profiles/s")
	b.ReportMetric(float64(rows)/spent.Seconds(), "rows/s")
	b.ReportMetric(spent.Seconds(), "s")
	// CPU seconds compare runs fairly on a machine shared with other work,
	// where wall time does not.
	b.ReportMetric(cpu.server, "server-cpu-s")
	b.ReportMetric(cpu.client, "client-cpu-s")
}

// cpuTimes are CPU seconds used by the server's processes and by this one.
type cpuTimes struct{ server, client float64 }

func (c cpuTimes) sub(d cpuTimes) cpuTimes { return cpuTimes{c.server - d.server, c.client - d.client} }

// cpuNow reads the CPU time of the local server (0 for an external one):
// the postmaster's, its live children's (backends, WAL writer,
// checkpointer), and that of the children it has reaped; and of this
// process.
func cpuNow(tb testing.TB) cpuTimes {
	var c cpuTimes
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err == nil {
		c.client = time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
	}
	pm := pgtest.Start(tb).PID()
	if pm == 0 {
		return c
	}
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		// Fields after the parenthesised command: state ppid ... utime(14) stime(15).
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 13 {
			continue
		}
		pid, _ := strconv.Atoi(strings.TrimSuffix(filepath.Base(filepath.Dir(p)), "/"))
		ppid, _ := strconv.Atoi(f[1])
		if ppid != pm && pid != pm {
			continue
		}
		ticks := 0.0
		fields := []string{f[11], f[12]} // utime, stime
		if pid == pm {
			// cutime, cstime: the backends that have exited and been reaped.
			fields = append(fields, f[13], f[14])
		}
		for _, v := range fields {
			n, _ := strconv.ParseFloat(v, 64)
			ticks += n
		}
		c.server += ticks / 100 // USER_HZ
	}
	return c
}

// measureLoad loads g's profiles through the sink (loadThroughSink) and
// reports the rate and the CPU the client and the server spent on it.
func measureLoad(b *testing.B, url string, mem *memory.CheckedAllocator, g *generator, noFast bool) {
	before := cpuNow(b)
	spent, rows := loadThroughSink(b, url, g, noFast)
	cpu := cpuNow(b).sub(before)
	mem.AssertSize(b, 0)
	report(b, spent, rows, cpu)
}

// BenchmarkLoad is a first backfill through the sink into empty tables.
func BenchmarkLoad(b *testing.B) {
	for _, v := range []struct {
		name   string
		noFast bool
	}{{"direct", false}, {"staged", true}} {
		b.Run(v.name, func(b *testing.B) {
			for range b.N {
				url := pgtest.NewDatabase(b)
				mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
				measureLoad(b, url, mem, newGenerator(mem, "run-1", 0), v.noFast)
			}
		})
	}
}

// BenchmarkLoadUpsert loads the same profiles again, each a day newer, so
// every row goes through the merge and replaces a stored one: with
// relationships, and without (no --include: the relationships table stays
// empty).
func BenchmarkLoadUpsert(b *testing.B) {
	for _, v := range []struct {
		name string
		rels bool
	}{{"relationships", true}, {"no_relationships", false}} {
		b.Run(v.name, func(b *testing.B) {
			for range b.N {
				url := pgtest.NewDatabase(b)
				mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
				g1, g2 := newGenerator(mem, "run-1", 0), newGenerator(mem, "run-2", 24*time.Hour)
				g1.rels, g2.rels = v.rels, v.rels
				loadThroughSink(b, url, g1, false)
				measureLoad(b, url, mem, g2, false)
			}
		})
	}
}

// BenchmarkCopyCeiling COPYs the same rows, from the same Arrow records,
// into the same but empty tables, one autocommitted COPY per batch: no
// lock, staging, merge, state or run log.
func BenchmarkCopyCeiling(b *testing.B) {
	for range b.N {
		url := pgtest.NewDatabase(b)
		ctx := context.Background()
		if err := Migrate(ctx, url, DefaultSchema); err != nil {
			b.Fatal(err)
		}
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			b.Fatal(err)
		}
		q := buildQueries(DefaultSchema)
		mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
		g := newGenerator(mem, "run-1", 0)
		var clean sanitizer
		var spent time.Duration
		var rows int64
		before := cpuNow(b)
		for written := 0; written < *benchProfilesFlag; written += benchBatch {
			batch := g.batch(benchBatch)
			rows += batch.Rows()
			start := time.Now()
			for _, c := range []struct {
				table pgx.Identifier
				cols  []string
				t     *schema.Table
				rec   arrow.RecordBatch
			}{
				{q.profiles, q.profileCols, schema.Profiles, batch.Profiles},
				{q.relationships, q.relationshipCols, schema.ProfileRelationships, batch.Relationships},
			} {
				src, err := newRecordSource(c.t, c.rec, nil, &clean)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := conn.CopyFrom(ctx, c.table, c.cols, src); err != nil {
					b.Fatal(err)
				}
			}
			spent += time.Since(start)
			release(batch)
		}
		conn.Close(ctx)
		cpu := cpuNow(b).sub(before)
		mem.AssertSize(b, 0)
		report(b, spent, rows, cpu)
	}
}
