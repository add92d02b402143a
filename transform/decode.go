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
	// vals holds the value of each profile column fed from attributes or
	// attributes.location, by column index.
	vals    [][]byte
	rels    []wireRel
	related []wireRelated
	// dupes names the members that appeared more than once; the last value
	// is the one kept.
	dupes []string
	// unknown counts attributes and location members with no column.
	unknown int
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
		w.vals = make([][]byte, len(profileRoles))
	}
	clear(w.vals)
	w.rels = w.rels[:0]
	w.related = w.related[:0]
	w.dupes = w.dupes[:0]
	w.unknown = 0
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
	// attributeSlots and locationSlots map a member name to its column.
	attributeSlots = slots(roleAttribute, "")
	locationSlots  = slots(roleLocation, locationPrefix)
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

// scanDecoder reads records with the package's own JSON parser, in one
// pass, without allocating: wireRecord values are slices of the input.
type scanDecoder struct {
	p   parser
	key []byte // decoded member names that held escapes
}

func (d *scanDecoder) page(body []byte, pg *wirePage) error {
	pg.data, pg.errs, pg.next, pg.decoded = pg.data[:0], pg.errs[:0], nil, true
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
		name := d.name(p.key())
		if slot, ok := attributeSlots[string(name)]; ok {
			w.set(&w.vals[slot], p.value(), schema.Profiles.Columns[slot].Name)
			continue
		}
		if string(name) != "location" {
			w.unknown++
			p.skip()
			continue
		}
		p.ws()
		start := p.i
		if p.peek() == '{' {
			for more := p.openObject(); more; more = p.nextMember() {
				if slot, ok := locationSlots[string(d.name(p.key()))]; ok {
					w.set(&w.vals[slot], p.value(), schema.Profiles.Columns[slot].Name)
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
