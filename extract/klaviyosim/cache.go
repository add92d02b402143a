package klaviyosim

import (
	"strconv"
	"strings"
	"sync"
)

// recordCache keeps records as rendered under one renderSpec, by serial
// (Config.CacheRecords). A benchmark runs the simulator on the cores the
// client it measures needs; generating a profile costs about as much as
// the client's whole decode, which Klaviyo's servers, not the client's
// machine, pay in production. With the cache warm, serving a record is a
// copy.
type recordCache struct {
	mu    sync.RWMutex
	specs map[string]*renderedSet
}

// renderedSet is the records rendered under one spec, indexed by serial.
// Slots hold offsets, not slices: a million pointers into the chunks would
// cost the garbage collector more than rendering saves.
type renderedSet struct {
	slots  []rendered
	chunks [][]byte // rendered bytes, appended to the last chunk
}

// rendered is where one record's bytes lie and the version of the record
// they were rendered from: UpdateProfiles changes rev and updated, which
// makes them stale. n == 0 is an empty slot.
type rendered struct {
	chunk, off, n uint32
	rev           uint32
	updated       int64
}

// chunkSize is the size of the chunks rendered records are stored in.
const chunkSize = 4 << 20

func newRecordCache() *recordCache {
	return &recordCache{specs: map[string]*renderedSet{}}
}

// lookup appends to b the cached rendering of each of recs under key, in
// order, for as long as every one is cached and current, and returns b and
// how many it appended.
func (c *recordCache) lookup(b []byte, key string, recs []record) ([]byte, int) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	set := c.specs[key]
	if set == nil {
		return b, 0
	}
	for i := range recs {
		r := &recs[i]
		if int(r.serial) >= len(set.slots) {
			return b, i
		}
		e := &set.slots[r.serial]
		if e.n == 0 || e.rev != r.rev || e.updated != r.updated {
			return b, i
		}
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, set.chunks[e.chunk][e.off:e.off+e.n]...)
	}
	return b, len(recs)
}

// store keeps each rec's rendering, spans[i] of page, under key.
func (c *recordCache) store(key string, recs []record, page []byte, spans [][2]int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	set := c.specs[key]
	if set == nil {
		set = &renderedSet{}
		c.specs[key] = set
	}
	for i := range recs {
		r := &recs[i]
		if int(r.serial) >= len(set.slots) {
			set.slots = append(set.slots, make([]rendered, int(r.serial)+1-len(set.slots))...)
		}
		src := page[spans[i][0]:spans[i][1]]
		last := len(set.chunks) - 1
		if last < 0 || cap(set.chunks[last])-len(set.chunks[last]) < len(src) {
			set.chunks = append(set.chunks, make([]byte, 0, max(chunkSize, len(src))))
			last++
		}
		off := len(set.chunks[last])
		set.chunks[last] = append(set.chunks[last], src...)
		set.slots[r.serial] = rendered{chunk: uint32(last), off: uint32(off), n: uint32(len(src)), rev: r.rev, updated: r.updated}
	}
}

// cacheKey identifies everything appendProfile reads from s, and w.
func (s *renderSpec) cacheKey(w want) string {
	var k strings.Builder
	k.WriteString(s.base)
	for _, v := range []uint64{uint64(s.attrs), uint64(s.loc), uint64(w)} {
		k.WriteByte('|')
		k.WriteString(strconv.FormatUint(v, 16))
	}
	k.WriteString("|" + strconv.FormatBool(s.subs) + strconv.FormatBool(s.pa) + strconv.FormatBool(s.relationships))
	k.WriteString("|" + pathsKey(s.subsPaths) + "|" + pathsKey(s.paPaths))
	for _, r := range s.rels {
		k.WriteString("|" + r.name + ":" + r.itemType + ":" + strconv.FormatBool(r.data))
	}
	return k.String()
}

// pathsKey tells nil (the whole block) from a list of paths.
func pathsKey(p []string) string {
	if p == nil {
		return "*"
	}
	return "[" + strings.Join(p, ",") + "]"
}
