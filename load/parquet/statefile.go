package parquet

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/klaviyo-etl/klaviyo-etl/load"
	"github.com/klaviyo-etl/klaviyo-etl/schema"
)

const (
	// StateFile is the name of the state file at the root of the output
	// folder. It lists the files readers should read.
	StateFile = "_state.json"

	stateFormat   = 1
	stateTempName = ".tmp-state.json.partial"
	tempPrefix    = ".tmp-"
	tempSuffix    = ".partial"
	fileSuffix    = ".parquet"
)

// stateFile is the content of _state.json. Files is the live set: what a
// reader of record reads. Pending holds the files of a full refresh in
// progress; they become the live set when the refresh succeeds.
type stateFile struct {
	Format int        `json:"format"`
	State  load.State `json:"state"`
	// Generation is the generation the live files belong to.
	Generation int                 `json:"generation"`
	Files      map[string][]string `json:"files"`
	Pending    *pendingFiles       `json:"pending,omitempty"`
	// Sequence is the last sequence number used in a file name; a
	// checkpoint's files share one number.
	Sequence int `json:"sequence"`
}

type pendingFiles struct {
	Generation int `json:"generation"`
	// RunID is the run writing the refresh. A run resumed after an
	// interruption keeps its ID and adds to the set; another run of the same
	// generation starts the refresh over, so the set is dropped.
	RunID string              `json:"run_id"`
	Files map[string][]string `json:"files"`
}

func newStateFile() stateFile {
	return stateFile{Format: stateFormat, Files: emptyFileSet()}
}

func emptyFileSet() map[string][]string {
	m := make(map[string][]string, len(schema.Tables))
	for _, t := range schema.Tables {
		m[t.Name] = []string{}
	}
	return m
}

func cloneFileSet(m map[string][]string) map[string][]string {
	c := emptyFileSet()
	for k, v := range m {
		c[k] = slices.Clone(v)
	}
	return c
}

// clone returns a copy whose file lists can be changed without touching sf.
// State is shared: it is replaced, never changed in place.
func (sf stateFile) clone() stateFile {
	c := sf
	c.Files = cloneFileSet(sf.Files)
	if sf.Pending != nil {
		c.Pending = &pendingFiles{Generation: sf.Pending.Generation, RunID: sf.Pending.RunID, Files: cloneFileSet(sf.Pending.Files)}
	}
	return c
}

// listed reports every file the state file names, table folder relative
// ("profiles/g….parquet").
func (sf stateFile) listed() map[string]bool {
	m := make(map[string]bool)
	add := func(set map[string][]string) {
		for table, names := range set {
			for _, n := range names {
				m[filepath.Join(table, n)] = true
			}
		}
	}
	add(sf.Files)
	if sf.Pending != nil {
		add(sf.Pending.Files)
	}
	return m
}

func (sf stateFile) validate() error {
	if sf.Format != stateFormat {
		return fmt.Errorf("unsupported format %d (want %d)", sf.Format, stateFormat)
	}
	check := func(set map[string][]string) error {
		for table, names := range set {
			if !knownTable(table) {
				return fmt.Errorf("unknown table %q", table)
			}
			for _, n := range names {
				if !validFileName(n) {
					return fmt.Errorf("invalid file name %q in %s", n, table)
				}
			}
		}
		return nil
	}
	if err := check(sf.Files); err != nil {
		return err
	}
	if sf.Pending != nil {
		return check(sf.Pending.Files)
	}
	return nil
}

func knownTable(name string) bool {
	for _, t := range schema.Tables {
		if t.Name == name {
			return true
		}
	}
	return false
}

// validFileName keeps a hand-edited state file from naming anything
// outside its table folder.
func validFileName(n string) bool {
	return strings.HasSuffix(n, fileSuffix) && !strings.HasPrefix(n, ".") &&
		!strings.ContainsAny(n, `/\`) && filepath.Base(n) == n
}

// readStateFile reads dir's state file; ok is false when there is none.
func readStateFile(dir string) (sf stateFile, ok bool, err error) {
	b, err := os.ReadFile(filepath.Join(dir, StateFile))
	if errors.Is(err, fs.ErrNotExist) {
		return newStateFile(), false, nil
	}
	if err != nil {
		return stateFile{}, false, fmt.Errorf("read state file: %w", err)
	}
	if err := json.Unmarshal(b, &sf); err != nil {
		return stateFile{}, false, fmt.Errorf("parse %s: %w", filepath.Join(dir, StateFile), err)
	}
	if err := sf.validate(); err != nil {
		return stateFile{}, false, fmt.Errorf("%s: %w", filepath.Join(dir, StateFile), err)
	}
	if sf.Files == nil {
		sf.Files = emptyFileSet()
	}
	if sf.Pending != nil && sf.Pending.Files == nil {
		sf.Pending.Files = emptyFileSet()
	}
	for _, t := range schema.Tables {
		if sf.Files[t.Name] == nil {
			sf.Files[t.Name] = []string{}
		}
		if sf.Pending != nil && sf.Pending.Files[t.Name] == nil {
			sf.Pending.Files[t.Name] = []string{}
		}
	}
	return sf, true, nil
}

// writeStateFile replaces dir's state file atomically: a reader, or a
// process starting after a crash, sees the old content or the new, whole.
func writeStateFile(dir string, sf stateFile) error {
	b, err := json.MarshalIndent(sf, "", "  ")
	if err != nil {
		return fmt.Errorf("encode state file: %w", err)
	}
	tmp := filepath.Join(dir, stateTempName)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("write state file: %w", err)
	}
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, StateFile))
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write state file: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("write state file: %w", err)
	}
	return nil
}

// syncDir makes the creation, renaming and removal of dir's entries
// durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// ReadState returns the State last committed to dir, or the zero State when
// dir holds no state file. It takes no lock: the state file is replaced
// atomically, so it reads a whole committed State even while a run writes.
func ReadState(dir string) (load.State, error) {
	sf, _, err := readStateFile(dir)
	if err != nil {
		return load.State{}, err
	}
	return sf.State, nil
}

// LiveFiles returns, by table name, the paths (under dir) of the files that
// hold a target's rows as of its last commit, in write order. This is what
// readers of record read; globbing the table folders instead also finds the
// files of a full refresh in progress and, until the next run starts, those
// a crashed run left behind. It takes no lock.
func LiveFiles(dir string) (map[string][]string, error) {
	sf, _, err := readStateFile(dir)
	if err != nil {
		return nil, err
	}
	out := make(map[string][]string, len(sf.Files))
	for table, names := range sf.Files {
		paths := make([]string, len(names))
		for i, n := range names {
			paths[i] = filepath.Join(dir, table, n)
		}
		out[table] = paths
	}
	return out, nil
}

// fileName names a checkpoint's file so that names sort by generation, run
// and checkpoint: g000001-r20260102T030405Z-01hzx3ab-s000042.parquet.
func fileName(gen int, runStart time.Time, runID string, seq int) string {
	return fmt.Sprintf("g%06d-r%s-%s-s%06d%s", gen, runStart.UTC().Format("20060102T150405Z"), shortID(runID), seq, fileSuffix)
}

func shortID(id string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(id) {
		if b.Len() == 8 {
			break
		}
		if (r >= '0' && r <= '9') || (r >= 'a' && r <= 'z') {
			b.WriteRune(r)
		}
	}
	if b.Len() == 0 {
		return "norun"
	}
	return b.String()
}
