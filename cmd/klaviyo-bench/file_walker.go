package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/klaviyo-etl/klaviyo-etl/extract"
)

// fileWalker is a pipeline.Walker over an NDJSON file of records, in pages
// of 100: the pipeline without HTTP and without the simulator, reading
// what DuckDB reads. It takes id and created the quick way, which is only
// right for the simulator's records (id is the first "id" member, created
// the first "created" one).
type fileWalker struct {
	path  string
	stats extract.Stats
}

func newFileWalker(path string) *fileWalker { return &fileWalker{path: path} }

func (w *fileWalker) Stats() extract.Stats { return w.stats }

func (w *fileWalker) Walk(ctx context.Context, win extract.Window, fn func(context.Context, extract.Page) error) error {
	if len(win.Slices) != 1 {
		return fmt.Errorf("file walker: %d slices, want one", len(win.Slices))
	}
	f, err := os.Open(w.path)
	if err != nil {
		return fmt.Errorf("file walker: %w", err)
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<20)
	slice := win.Slices[0]
	const pageSize = 100
	for eof := false; !eof; {
		if err := ctx.Err(); err != nil {
			return err
		}
		// A fresh buffer per page, like an HTTP body: records alias it.
		var body []byte
		var ends [pageSize]int
		n := 0
		for n < pageSize {
			line, err := r.ReadSlice('\n')
			if errors.Is(err, bufio.ErrBufferFull) {
				return errors.New("file walker: record longer than 1 MiB")
			}
			if len(line) > 1 {
				body = append(body, line[:len(line)-1]...)
				ends[n] = len(body)
				n++
			}
			if err == io.EOF {
				eof = true
				break
			}
			if err != nil {
				return fmt.Errorf("file walker: %w", err)
			}
		}
		if n == 0 {
			break
		}
		p := extract.Page{Records: make([]extract.Record, n), Bytes: len(body)}
		start := 0
		for i := range n {
			raw := body[start:ends[i]:ends[i]]
			start = ends[i]
			p.Records[i] = extract.Record{ID: member(raw, `"id":"`), Raw: raw}
			if c := member(raw, `"created":"`); c != "" {
				if t, err := time.Parse(time.RFC3339, c); err == nil {
					p.Records[i].Cursor = t.UTC()
				}
			}
		}
		slice.Done = p.Records[n-1].Cursor.Truncate(time.Second)
		if eof || slice.Done.Before(slice.Start) {
			slice.Done = slice.End
		}
		p.Progress = []extract.Slice{slice}
		w.stats.Pages++
		w.stats.Requests++
		w.stats.Records += int64(n)
		w.stats.Bytes += int64(len(body))
		if err := fn(ctx, p); err != nil {
			return err
		}
	}
	return nil
}

// member returns the string value after the first occurrence of key.
func member(raw []byte, key string) string {
	i := bytes.Index(raw, []byte(key))
	if i < 0 {
		return ""
	}
	v := raw[i+len(key):]
	j := bytes.IndexByte(v, '"')
	if j < 0 {
		return ""
	}
	return string(v[:j])
}
