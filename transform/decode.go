package transform

import (
	"errors"
	"slices"
	"strings"

	"github.com/klaviyo-etl/klaviyo-etl/schema"
)

// recordDecoder is the one seam between transform and a JSON reader. It
// splits a page into its records and reads one record into a wireRecord,
// whose leaves are raw JSON values; everything after that (coercion,
// canonical JSON, Arrow) is shared. scanDecoder, hand-written, is the one
// in use; the tests plug encoding/json, goccy/go-json and encoding/json/v2
// in here to compare them (see bench_test.go).
type recordDecoder interface {
	// page checks that body is one valid JSON object whose "data" member is
	// an array and fills p with its elements, exactly as received, and, if
	// the decoder reads them on the way, with the records read.
	page(body []byte, p *wirePage) error
	// record reads one JSON object. An error means raw is not a valid JSON
	// object; problems below the top level are left in w for the caller.
	record(raw []byte, w *wireRecord) error
}

var (
	errNotObject = errors.New("not a JSON object")
	errNoData    = errors.New(`no "data" array`)
	errDataTwice = errors.New(`"data" appears twice`)
)

// wirePage is one page: its records and links.next.
type wirePage struct {
	data [][]byte
	// decoded reports that recs[i] and errs[i] hold data[i] read as
	// record would.
	decoded bool
	recs    []wireRecord
	errs    []error
	next    []byte // raw JSON value of links.next, nil when absent
}

// wireRecord is one record as read, before coercion. Every []byte is a raw
// JSON value (nil when the member is absent); scanDecoder's point into the
// record itself.
type wireRecord struct {
	typ, id       []byte
	attributes    []byte
	location      []byte
	relationships []byte
	// vals locates in src the value of each profile column fed from
	// attributes or attributes.location, by column index ({0, 0}: absent).
	// Spans, not slices: storing and clearing pointers costs a GC write
	// barrier each while the collector runs, and there are ~30 per record.
	vals    []span
	src     []byte
	rels    []wireRel
	related []wireRelated
	// json holds, for JSON columns, the canonical text the decoder made of
	// each value as it read it (in order; the last for a column is the one
	// kept). ok false means the value was not canonicalized: coerce it.
	json []wireJSON
	// dupes names the members that appeared more than once; the last value
	// is the one kept.
	dupes []string
	// unknown counts attributes and location members with no column.
	unknown int
}

// wireJSON is a JSON column's value in canonical form.
type wireJSON struct {
	col   int
	ok    bool
	flags strFlags
	text  []byte
}

// canonicalJSON returns the canonical text the decoder made of column
// col's value, if it did.
func (w *wireRecord) canonicalJSON(col int) (text []byte, f strFlags, ok bool) {
	for k := len(w.json) - 1; k >= 0; k-- {
		if j := &w.json[k]; j.col == col {
			return j.text, j.flags, j.ok
		}
	}
	return nil, 0, false
}

// wireRel is one member of relationships.
type wireRel struct {
	name  []byte // member name as received, between the quotes
	value []byte
	data  []byte // the value of its "data" member, nil when absent
	first int    // its entries are related[first : first+n]
	n     int
}

// wireRelated is one entry of a relationship's data.
type wireRelated struct {
	raw     []byte
	typ, id []byte
	dup     bool // type or id appeared twice
}

func (w *wireRecord) reset() {
	w.typ, w.id, w.attributes, w.location, w.relationships = nil, nil, nil, nil, nil
	if len(w.vals) != len(profileRoles) {
		w.vals = make([]span, len(profileRoles))
	}
	clear(w.vals)
	w.src = nil
	w.rels = w.rels[:0]
	w.related = w.related[:0]
	w.json = w.json[:0]
	w.dupes = w.dupes[:0]
	w.unknown = 0
}

// val returns the value of column i, nil when absent.
func (w *wireRecord) val(i int) []byte {
	s := w.vals[i]
	if s.hi == 0 {
		return nil
	}
	return w.src[s.lo:s.hi]
}

// setVal stores column slot's value, src[lo:hi] (hi 0: none), noting a
// repeated member.
func (w *wireRecord) setVal(slot, lo, hi int, field string) {
	if w.vals[slot].hi != 0 && !slices.Contains(w.dupes, field) {
		w.dupes = append(w.dupes, field)
	}
	w.vals[slot] = span{lo, hi}
}

// set stores a member's value, noting a repeated member.
func (w *wireRecord) set(dst *[]byte, v []byte, field string) {
	if *dst != nil && !slices.Contains(w.dupes, field) {
		w.dupes = append(w.dupes, field)
	}
	*dst = v
}

// Profile column roles, derived from schema.Profiles by name so that the
// schema stays the one definition: "id", "_run_id" and "_extracted_at" are
// the record's id and the run's options, "location_<x>" is
// attributes.location.<x>, and every other column is the attribute of the
// same name.
type role uint8

const (
	roleNone role = iota // not fed by transform: always null
	roleID
	roleRunID
	roleExtractedAt
	roleAttribute
	roleLocation
)

const locationPrefix = "location_"

var (
	profileRoles = func() []role {
		roles := make([]role, len(schema.Profiles.Columns))
		for i, c := range schema.Profiles.Columns {
			switch {
			case c.Name == "id":
				roles[i] = roleID
			case c.Name == "_run_id":
				roles[i] = roleRunID
			case c.Name == "_extracted_at":
				roles[i] = roleExtractedAt
			case strings.HasPrefix(c.Name, locationPrefix):
				roles[i] = roleLocation
			case strings.HasPrefix(c.Name, "_"):
				roles[i] = roleNone
			default:
				roles[i] = roleAttribute
			}
		}
		return roles
	}()
	profileKinds = func() []schema.Kind {
		kinds := make([]schema.Kind, len(schema.Profiles.Columns))
		for i, c := range schema.Profiles.Columns {
			kinds[i] = c.Kind
		}
		return kinds
	}()
	// attributeSlots and locationSlots map a member name to its column.
	attributeSlots = slots(roleAttribute, "")
	locationSlots  = slots(roleLocation, locationPrefix)
	// attributeNames and locationNames are the same, for lookups;
	// attributeNames also holds "location", as slotLocation.
	attributeNames = newNameTable(attributeSlots, "location")
	locationNames  = newNameTable(locationSlots, "")
)

func slots(r role, prefix string) map[string]int {
	m := make(map[string]int)
	for i, c := range schema.Profiles.Columns {
		if profileRoles[i] == r {
			m[strings.TrimPrefix(c.Name, prefix)] = i
		}
	}
	return m
}

// slotLocation is attributeNames' value for attributes.location.
const slotLocation = -1

// nameTable maps member names to profile column indexes: open addressing
// over a table at most a quarter full, so a lookup is one cheap hash and,
// nearly always, one comparison (a Go map's string hashing and probing was
// half of reading attributes). Built once at init, read-only after, so
// Builders on several goroutines share it safely.
type nameTable struct {
	names []string // "" = empty slot (no column has an empty name)
	slots []int
	mask  uint32
}

// hashName mixes the length and first and last bytes: enough to tell the
// schema's names apart, and probing settles the rest.
func hashName(n []byte) uint32 {
	if len(n) == 0 {
		return 0
	}
	h := uint32(len(n))*0x9e3779b1 ^ uint32(n[0])*0x85ebca77 ^ uint32(n[len(n)-1])*0xc2b2ae3d
	return h ^ h>>15
}

// newNameTable builds the table of m, plus extra (if not "") as
// slotLocation.
func newNameTable(m map[string]int, extra string) nameTable {
	size := 16
	for size < 4*(len(m)+1) {
		size *= 2
	}
	t := nameTable{names: make([]string, size), slots: make([]int, size), mask: uint32(size - 1)}
	add := func(name string, slot int) {
		h := hashName([]byte(name)) & t.mask
		for t.names[h] != "" {
			h = (h + 1) & t.mask
		}
		t.names[h], t.slots[h] = name, slot
	}
	for name, slot := range m {
		if name != "" {
			add(name, slot)
		}
	}
	if _, ok := m[extra]; extra != "" && !ok {
		add(extra, slotLocation)
	}
	return t
}

// lookup returns the column of the member name n.
func (t *nameTable) lookup(n []byte) (int, bool) {
	for h := hashName(n) & t.mask; ; h = (h + 1) & t.mask {
		switch name := t.names[h]; {
		case name == "":
			return 0, false
		case name == string(n):
			return t.slots[h], true
		}
	}
}

// scanDecoder reads records with the package's own JSON parser, in one
// pass, without allocating: wireRecord values are slices or spans of the
// input. JSON columns are canonicalized as they are read (into jsonText), rather
// than skipped now and read again by the coercer.
type scanDecoder struct {
	p     parser
	key   []byte // decoded member names that held escapes
	canon canonicalizer
	// jsonText holds the canonical JSON of the records read by the last
	// page or record call; wireRecord.json points into it.
	jsonText []byte
}

func (d *scanDecoder) page(body []byte, pg *wirePage) error {
	pg.data, pg.errs, pg.next, pg.decoded = pg.data[:0], pg.errs[:0], nil, true
	d.jsonText = d.jsonText[:0]
	p := &d.p
	p.reset(body, 0)
	if p.peek() != '{' {
		p.skip()
		p.end()
		if p.err != nil {
			return p.err
		}
		return errNotObject
	}
	seen, twice := false, false
	for more := p.openObject(); more; more = p.nextMember() {
		switch string(d.name(p.key())) {
		case "data":
			if seen {
				p.skip()
				twice = true
				break
			}
			seen = true
			if p.peek() != '[' {
				p.skip()
				if p.err == nil {
					return errNoData
				}
				break
			}
			for more := p.openArray(); more; more = p.nextElement() {
				k := len(pg.data)
				if k == len(pg.recs) {
					pg.recs = append(pg.recs, wireRecord{})
				}
				p.ws()
				start := p.i
				var err error
				if p.peek() == '{' {
					d.object(&pg.recs[k])
				} else {
					p.skip()
					err = errNotObject
				}
				pg.data = append(pg.data, p.d[start:p.i])
				pg.errs = append(pg.errs, err)
			}
		case "links":
			if p.peek() != '{' {
				p.skip()
				break
			}
			for more := p.openObject(); more; more = p.nextMember() {
				if string(d.name(p.key())) == "next" {
					pg.next = p.value()
				} else {
					p.skip()
				}
			}
		default:
			p.skip()
		}
	}
	p.end()
	if p.err != nil {
		return p.err
	}
	switch {
	case !seen:
		return errNoData
	case twice:
		return errDataTwice
	}
	return nil
}

func (d *scanDecoder) record(raw []byte, w *wireRecord) error {
	d.jsonText = d.jsonText[:0]
	p := &d.p
	p.reset(raw, 0)
	if p.peek() != '{' {
		p.skip()
		p.end()
		if p.err != nil {
			return p.err
		}
		return errNotObject
	}
	d.object(w)
	p.end()
	return p.err
}

// object reads the record object at the parser's position into w.
func (d *scanDecoder) object(w *wireRecord) {
	w.reset()
	p := &d.p
	w.src = p.d
	for more := p.openObject(); more; more = p.nextMember() {
		switch string(d.name(p.key())) {
		case "type":
			w.set(&w.typ, p.value(), "type")
		case "id":
			w.set(&w.id, p.value(), "id")
		case "attributes":
			p.ws()
			start := p.i
			if p.peek() == '{' {
				d.attributes(w)
			} else {
				p.skip()
			}
			w.set(&w.attributes, p.d[start:p.i], "attributes")
		case "relationships":
			p.ws()
			start := p.i
			if p.peek() == '{' {
				d.relationships(w)
			} else {
				p.skip()
			}
			w.set(&w.relationships, p.d[start:p.i], "relationships")
		default:
			p.skip()
		}
	}
}

func (d *scanDecoder) attributes(w *wireRecord) {
	p := &d.p
	for more := p.openObject(); more; more = p.nextMember() {
		slot, ok := attributeNames.lookup(d.name(p.key()))
		if !ok {
			w.unknown++
			p.skip()
			continue
		}
		switch {
		case slot == slotLocation:
		case profileKinds[slot] == schema.JSON:
			d.json(w, slot)
			continue
		default:
			d.value(w, slot)
			continue
		}
		p.ws()
		start := p.i
		if p.peek() == '{' {
			for more := p.openObject(); more; more = p.nextMember() {
				if slot, ok := locationNames.lookup(d.name(p.key())); ok {
					d.value(w, slot)
				} else {
					w.unknown++
					p.skip()
				}
			}
		} else {
			p.skip()
		}
		w.set(&w.location, p.d[start:p.i], "attributes.location")
	}
}

// json reads the value of JSON column slot, canonicalizing it on the way
// when canonicalizer.canonValue takes it (anything else, null included, is
// read as any value and left to the coercer).
func (d *scanDecoder) json(w *wireRecord, slot int) {
	p := &d.p
	name := schema.Profiles.Columns[slot].Name
	if c := p.peek(); c != 0 && c != 'n' {
		start, from := p.i, len(d.jsonText)
		if out, f, end, ok := d.canon.canonValue(d.jsonText, p.d, start); ok {
			d.jsonText = out
			p.i = end
			w.setVal(slot, start, end, name)
			w.json = append(w.json, wireJSON{col: slot, ok: true, flags: f, text: out[from:]})
			return
		}
	}
	d.value(w, slot)
	w.json = append(w.json, wireJSON{col: slot})
}

// value reads the value of column slot.
func (d *scanDecoder) value(w *wireRecord, slot int) {
	p := &d.p
	lo, hi := 0, 0
	if v := p.value(); v != nil {
		lo, hi = p.i-len(v), p.i
	}
	w.setVal(slot, lo, hi, schema.Profiles.Columns[slot].Name)
}

func (d *scanDecoder) relationships(w *wireRecord) {
	p := &d.p
	for more := p.openObject(); more; more = p.nextMember() {
		name, _ := p.key()
		rel := wireRel{name: name, first: len(w.related)}
		p.ws()
		start := p.i
		if p.peek() == '{' {
			for more := p.openObject(); more; more = p.nextMember() {
				if string(d.name(p.key())) != "data" {
					p.skip()
					continue
				}
				p.ws()
				ds := p.i
				switch p.peek() {
				case '[':
					for more := p.openArray(); more; more = p.nextElement() {
						d.related(w)
					}
				case '{':
					d.related(w)
				default:
					p.skip()
				}
				rel.data = p.d[ds:p.i]
			}
		} else {
			p.skip()
		}
		rel.value = p.d[start:p.i]
		rel.n = len(w.related) - rel.first
		w.rels = append(w.rels, rel)
	}
}

func (d *scanDecoder) related(w *wireRecord) {
	p := &d.p
	p.ws()
	start := p.i
	var e wireRelated
	if p.peek() == '{' {
		for more := p.openObject(); more; more = p.nextMember() {
			switch string(d.name(p.key())) {
			case "type":
				e.dup = e.dup || e.typ != nil
				e.typ = p.value()
			case "id":
				e.dup = e.dup || e.id != nil
				e.id = p.value()
			default:
				p.skip()
			}
		}
	} else {
		p.skip()
	}
	if p.err == nil {
		e.raw = p.d[start:p.i]
		w.related = append(w.related, e)
	}
}

// name returns a member name with its escapes decoded.
func (d *scanDecoder) name(n []byte, escaped bool) []byte {
	if !escaped {
		return n
	}
	d.key, _ = unquote(d.key[:0], n)
	return d.key
}
