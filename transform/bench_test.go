package transform

import (
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
)

// benchDecoders are the implementations of the recordDecoder seam compared
// by BenchmarkAddPage: the package's own scanner and the JSON libraries.
func benchDecoders() []recordDecoder {
	ds := []recordDecoder{&scanDecoder{}, stdDecoder, goccyDecoder}
	for _, d := range jsonv2Decoders {
		ds = append(ds, d)
	}
	return ds
}

func decoderName(d recordDecoder) string {
	if l, ok := d.(libDecoder); ok {
		return l.name
	}
	return "scan"
}

// BenchmarkAddPage transforms pages of 100 realistic profiles (2.07 KB on
// average), flushing every 10 pages, with each decoder behind the
// recordDecoder seam; it reports profiles/s and allocs/profile (Arrow
// buffers included). On one core (go test -run XXX -bench AddPage -cpu 1,
// AMD EPYC, shared machine, best of 3):
//
//	decoder                          profiles/s   allocs/profile
//	scan (this package)                 357,000             0.36
//	goccy/go-json v0.12.0               111,000            53.5
//	encoding/json                        17,000            88.1
//
// and before the scanner's fast paths (when scan did 181,000 with 1.36
// allocations, goccy/go-json 92,000 and encoding/json 15,000):
//
//	bytedance/sonic v1.15.5 fastest      95,000            63.8   (scratch module)
//	bytedance/sonic v1.15.5 std          63,000            66.0   (scratch module)
//	encoding/json/v2 (GOEXPERIMENT)      48,000            52.2
//
// The libraries decode typed structs with json.RawMessage leaves, one level
// at a time so that a bad value spoils only its own field; the scanner reads
// the page once, without copying.
func BenchmarkAddPage(b *testing.B) {
	const perPage, pages, flushEvery = 100, 16, 10
	r := rand.New(rand.NewPCG(1, 2))
	bodies := make([][]byte, pages)
	size := 0
	for i := range bodies {
		bodies[i] = genPage(r, perPage)
		size += len(bodies[i])
	}
	for _, dec := range benchDecoders() {
		b.Run(decoderName(dec), func(b *testing.B) {
			bl := NewBuilder(memory.NewGoAllocator(), Options{RunID: "bench", ExtractedAt: time.Now()})
			defer bl.Release()
			bl.dec = dec
			b.SetBytes(int64(size / pages))
			b.ReportAllocs()
			var ms0, ms1 runtime.MemStats
			runtime.ReadMemStats(&ms0)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := bl.AddPage(bodies[i%pages]); err != nil {
					b.Fatal(err)
				}
				if i%flushEvery == flushEvery-1 {
					bl.Flush().Release()
				}
			}
			b.StopTimer()
			runtime.ReadMemStats(&ms1)
			profiles := float64(b.N * perPage)
			b.ReportMetric(profiles/b.Elapsed().Seconds(), "profiles/s")
			b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/profiles, "allocs/profile")
			if c := bl.Counts(); c.Loaded != int64(b.N*perPage) {
				b.Fatalf("loaded %d of %d (counts %+v)", c.Loaded, b.N*perPage, c)
			}
		})
	}
}
