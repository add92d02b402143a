package parquet

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/klaviyo-etl/klaviyo-etl/schema"
)

// Keys of the Parquet key-value metadata every file carries, besides the
// Arrow schema's own (klaviyo_etl.table, klaviyo_etl.schema_version) and
// ARROW:schema.
const (
	MetaRevision   = "klaviyo.revision"
	MetaRunID      = "klaviyo_etl.run_id"
	MetaGeneration = "klaviyo_etl.generation"
)

const writeBufferSize = 1 << 20

// tableWriter is the file one table's rows go to during one checkpoint,
// under a temporary name until finish.
type tableWriter struct {
	table string
	tmp   string // path while being written
	final string // path once finished
	f     *os.File
	buf   *bufio.Writer
	fw    *pqarrow.FileWriter
	rows  int64
}

type fileMeta struct {
	revision   string
	runID      string
	generation string
}

// createFunc creates a file; tests swap it to inject write failures.
type createFunc func(name string, flag int, perm os.FileMode) (*os.File, error)

func openTableWriter(create createFunc, dir string, t *schema.Table, sc *arrow.Schema, name string, meta fileMeta,
	props *parquet.WriterProperties, arrowProps pqarrow.ArrowWriterProperties) (*tableWriter, error) {
	w := &tableWriter{
		table: t.Name,
		tmp:   filepath.Join(dir, t.Name, tempPrefix+name+tempSuffix),
		final: filepath.Join(dir, t.Name, name),
	}
	f, err := create(w.tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, fmt.Errorf("create %s file: %w", t.Name, err)
	}
	w.f = f
	w.buf = bufio.NewWriterSize(f, writeBufferSize)
	fw, err := pqarrow.NewFileWriter(sc, w.buf, props, arrowProps)
	if err != nil {
		w.abort()
		return nil, fmt.Errorf("start %s file: %w", t.Name, err)
	}
	w.fw = fw
	for _, kv := range [][2]string{{MetaRevision, meta.revision}, {MetaRunID, meta.runID}, {MetaGeneration, meta.generation}} {
		if err := fw.AppendKeyValueMetadata(kv[0], kv[1]); err != nil {
			w.abort()
			return nil, fmt.Errorf("start %s file: %w", t.Name, err)
		}
	}
	return w, nil
}

// write appends rec to the open row group; pqarrow cuts a new one at the
// writer properties' row group length, so at most one row group per table is
// held in memory.
func (w *tableWriter) write(rec arrow.RecordBatch) error {
	if err := w.fw.WriteBuffered(rec); err != nil {
		return fmt.Errorf("write %s rows: %w", w.table, err)
	}
	w.rows += rec.NumRows()
	return nil
}

// finish writes the footer, makes the file durable and gives it its final
// name. The caller syncs the folder.
func (w *tableWriter) finish() error {
	err := w.fw.Close()
	if err == nil {
		err = w.buf.Flush()
	}
	if err == nil {
		err = w.f.Sync()
	}
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	w.f = nil
	if err == nil {
		err = os.Rename(w.tmp, w.final)
	}
	if err != nil {
		_ = os.Remove(w.tmp)
		return fmt.Errorf("finish %s file: %w", w.table, err)
	}
	return nil
}

// abort drops the file. The pqarrow writer is not closed: that would only
// write a footer nobody reads.
func (w *tableWriter) abort() error {
	var err error
	if w.f != nil {
		err = w.f.Close()
		w.f = nil
	}
	if rerr := os.Remove(w.tmp); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
		err = errors.Join(err, rerr)
	}
	return err
}
