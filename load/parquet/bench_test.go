package parquet

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/arrow/util"

	"github.com/klaviyo-etl/klaviyo-etl/load"
	"github.com/klaviyo-etl/klaviyo-etl/load/sinktest"
)

// BenchmarkWrite writes 1,000,000 generated profiles per op, the way a run
// does: batches of 10,000 rows, a Commit every 100,000. MB/s is Arrow input
// bytes; B/row is the bytes on disk per row.
//
//	go test ./load/parquet -run '^$' -bench BenchmarkWrite -benchtime 1x
func BenchmarkWrite(b *testing.B) {
	const (
		total     = 1_000_000
		batchRows = 10_000
		perCommit = 100_000
	)
	// 100,000 distinct rows, so a checkpoint's file holds no repeats.
	mem := memory.NewGoAllocator()
	var pool []arrow.RecordBatch
	var poolBytes int64
	for i := 0; i < perCommit/batchRows; i++ {
		rec := sinktest.GenerateProfiles(mem, i*batchRows, batchRows, "01J3BENCHRUN", time.Now())
		pool = append(pool, rec)
		poolBytes += util.TotalRecordSize(rec)
	}
	defer func() {
		for _, r := range pool {
			r.Release()
		}
	}()

	configs := []struct {
		name string
		cfg  Config
	}{
		{"default", Config{}}, // zstd level 1, 64k-row row groups
		{"zstd1/rg128k", Config{Compression: "zstd", CompressionLevel: 1, RowGroupRows: 128 * 1024}},
		{"zstd3/rg64k", Config{Compression: "zstd", CompressionLevel: 3}},
		{"zstd6/rg64k", Config{Compression: "zstd", CompressionLevel: 6}},
		{"snappy/rg64k", Config{Compression: "snappy"}},
		{"lz4/rg64k", Config{Compression: "lz4"}},
		{"none/rg64k", Config{Compression: "none"}},
	}
	for _, c := range configs {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(poolBytes * (total / perCommit))
			var onDisk int64
			for b.Loop() {
				b.StopTimer()
				dir := filepath.Join(b.TempDir(), fmt.Sprint("out", onDisk))
				s, err := New(dir, c.cfg)
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				ctx := b.Context()
				if _, err := s.Begin(ctx); err != nil {
					b.Fatal(err)
				}
				st := load.State{Run: &load.Run{ID: "01J3BENCHRUN", StartedAt: time.Now(), Status: "running"}}
				if err := s.Commit(ctx, st); err != nil {
					b.Fatal(err)
				}
				for i := 0; i < total/batchRows; i++ {
					if err := s.Write(ctx, load.Batch{Profiles: pool[i%len(pool)]}); err != nil {
						b.Fatal(err)
					}
					if (i+1)*batchRows%perCommit == 0 {
						if err := s.Commit(ctx, st); err != nil {
							b.Fatal(err)
						}
					}
				}
				if err := s.Close(ctx); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				onDisk = dirSize(b, filepath.Join(dir, "profiles"))
				b.StartTimer()
			}
			b.ReportMetric(float64(total)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
			b.ReportMetric(float64(onDisk)/total, "B/row")
		})
	}
}

func dirSize(b *testing.B, dir string) int64 {
	entries, err := os.ReadDir(dir)
	if err != nil {
		b.Fatal(err)
	}
	var n int64
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil {
			b.Fatal(err)
		}
		n += fi.Size()
	}
	return n
}
