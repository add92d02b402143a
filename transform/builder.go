package transform

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/klaviyo-etl/klaviyo-etl/schema"
)

// ErrMalformedPage is returned (wrapped) by AddPage when the body is not a
// JSON object with a "data" array: a truncated or corrupt response, which
// the caller may fetch again. Nothing of such a page is added.
var ErrMalformedPage = errors.New("malformed page")

// Options are the values a Builder stamps on every row.
type Options struct {
	// RunID fills profiles._run_id, profile_relationships._run_id and
	// profile_rejects.run_id.
	RunID string
	// ExtractedAt fills profiles._extracted_at and profile_rejects.rejected_at
	// (a record is rejected within moments of its extraction). Change it per
	// page with SetExtractedAt.
	ExtractedAt time.Time
}

// Status is what became of one record.
type Status uint8

// Record statuses. Every record Added or Rejected is counted in exactly one.
const (
	// Loaded: one profile row, no reject row.
	Loaded Status = iota + 1
	// LoadedWithRejects: one profile row, and one reject row for each value
	// that could not be stored as received (that column is null, or holds
	// the value with U+FFFD / truncated; the reject row holds the record).
	LoadedWithRejects
	// Rejected: not a profile at all (not a JSON object, no usable string
	// id, type not "profile"); one reject row, no profile row.
	Rejected
)

func (s Status) String() string {
	switch s {
	case Loaded:
		return "loaded"
	case LoadedWithRejects:
		return "loaded-with-rejects"
	case Rejected:
		return "rejected"
	default:
		return "status(" + strconv.Itoa(int(s)) + ")"
	}
}

// Outcome is what Add did with one record.
type Outcome struct {
	Status Status
	// ID is the profile id, "" when the record has no usable one.
	ID string
	// Rejects is the number of reject rows written for the record.
	Rejects int
	// Relationships is the number of relationship rows written.
	Relationships int
	// Created and Updated are the record's cursor values, zero when null
	// or not readable.
	Created, Updated time.Time
}

// PageResult sums the Outcomes of one page.
type PageResult struct {
	Records           int
	Loaded            int
	LoadedWithRejects int
	Rejected          int
	RejectRows        int
	Relationships     int
	// Next is links.next when it is a string, "" otherwise.
	Next string
}

// Counts are a Builder's cumulative figures, across Flushes.
type Counts struct {
	// Records = Loaded + LoadedWithRejects + RejectedWhole, always.
	Records           int64
	Loaded            int64
	LoadedWithRejects int64
	RejectedWhole     int64
	// RejectRows counts profile_rejects rows (several per record possible).
	RejectRows    int64
	Relationships int64
	// NULValues counts values (of profile columns and relationship rows)
	// holding U+0000.
	NULValues int64
	// DuplicateRelationships counts relationship entries identical to one
	// already written for the same record, written once.
	DuplicateRelationships int64
	// UnknownFields counts attributes and attributes.location members for
	// which the schema has no column; they are not stored.
	UnknownFields int64
	// Rules counts profile column values by the rule that read them.
	Rules [NumRules]int64
}

// Add adds o's counters to c: the counts of several Builders working on one
// run.
func (c *Counts) Add(o Counts) {
	c.Records += o.Records
	c.Loaded += o.Loaded
	c.LoadedWithRejects += o.LoadedWithRejects
	c.RejectedWhole += o.RejectedWhole
	c.RejectRows += o.RejectRows
	c.Relationships += o.Relationships
	c.NULValues += o.NULValues
	c.DuplicateRelationships += o.DuplicateRelationships
	c.UnknownFields += o.UnknownFields
	for i, n := range o.Rules {
		c.Rules[i] += n
	}
}

// Records are the rows built since the last Flush, one record batch per
// table of package schema, in that table's Arrow schema.
type Records struct {
	Profiles, Relationships, Rejects arrow.RecordBatch
}

// Release releases the three record batches.
func (r Records) Release() {
	for _, rec := range []arrow.RecordBatch{r.Profiles, r.Relationships, r.Rejects} {
		if rec != nil {
			rec.Release()
		}
	}
}

// Builder turns Klaviyo profile records into rows of the three tables. It
// is not safe for concurrent use; use one per goroutine.
type Builder struct {
	runID       []byte
	extractedAt int64 // µs

	dec    recordDecoder
	wire   wireRecord
	page   wirePage
	coerce coercer

	profiles, relationships, rejects table

	// per record scratch
	cur     current
	relRows []relRow
	arena   []byte
	idBuf   []byte

	counts Counts
}

// table is one table's builder with typed access to its columns.
type table struct {
	rb   *array.RecordBuilder
	cols []column
}

type column struct {
	kind schema.Kind
	any  array.Builder
	bin  *array.BinaryBuilder // String, JSON (its storage) and Bytes columns
	ts   *array.TimestampBuilder
	f64  *array.Float64Builder
	// dataLen is the size of the values the last batch held.
	dataLen int
}

// NewBuilder returns a Builder whose Arrow memory comes from mem (the
// default allocator when nil).
func NewBuilder(mem memory.Allocator, opts Options) *Builder {
	if mem == nil {
		mem = memory.DefaultAllocator
	}
	b := &Builder{
		runID:         []byte(opts.RunID),
		dec:           &scanDecoder{},
		profiles:      newTable(mem, schema.Profiles),
		relationships: newTable(mem, schema.ProfileRelationships),
		rejects:       newTable(mem, schema.ProfileRejects),
	}
	b.SetExtractedAt(opts.ExtractedAt)
	return b
}

func newTable(mem memory.Allocator, t *schema.Table) table {
	rb := array.NewRecordBuilder(mem, t.ArrowSchema())
	cols := make([]column, len(t.Columns))
	for i, c := range t.Columns {
		col := column{kind: c.Kind, any: rb.Field(i)}
		// The assertions hold for every type schema.Column.ArrowType
		// returns; should one fail, the column is written as nulls rather
		// than crash.
		switch f := rb.Field(i).(type) {
		case *array.StringBuilder:
			col.bin = f.BinaryBuilder
		case *array.BinaryBuilder:
			col.bin = f
		case *array.ExtensionBuilder:
			if s, ok := f.StorageBuilder().(*array.StringBuilder); ok {
				col.bin = s.BinaryBuilder
			}
		case *array.TimestampBuilder:
			col.ts = f
		case *array.Float64Builder:
			col.f64 = f
		}
		cols[i] = col
	}
	return table{rb: rb, cols: cols}
}

func (c *column) null() {
	// Through the typed builders when there are: no interface call.
	switch {
	case c.bin != nil:
		c.bin.AppendNull()
	case c.ts != nil:
		c.ts.AppendNull()
	case c.f64 != nil:
		c.f64.AppendNull()
	default:
		c.any.AppendNull()
	}
}

func (c *column) bytes(v []byte) {
	if c.bin == nil {
		c.any.AppendNull()
		return
	}
	c.bin.Append(v)
}

// optBytes appends v, or null when v is nil.
func (c *column) optBytes(v []byte) {
	if v == nil {
		c.null()
		return
	}
	c.bytes(v)
}

func (c *column) time(us int64) {
	if c.ts == nil {
		c.any.AppendNull()
		return
	}
	c.ts.Append(arrow.Timestamp(us))
}

func (c *column) float(f float64) {
	if c.f64 == nil {
		c.any.AppendNull()
		return
	}
	c.f64.Append(f)
}

// SetExtractedAt changes the time stamped on the rows added from now on.
func (b *Builder) SetExtractedAt(t time.Time) {
	b.extractedAt = t.UnixMicro()
}

// Rows returns the number of profile rows buffered since the last Flush.
func (b *Builder) Rows() int {
	return b.profiles.cols[0].any.Len()
}

// Counts returns the cumulative counts.
func (b *Builder) Counts() Counts { return b.counts }

// Flush returns the rows buffered since the last Flush, as three record
// batches (never nil, possibly empty) the caller must Release, and starts
// new ones.
func (b *Builder) Flush() Records {
	return Records{
		Profiles:      b.profiles.flush(),
		Relationships: b.relationships.flush(),
		Rejects:       b.rejects.flush(),
	}
}

// flush builds the table's record batch and sizes the fresh builders like
// the batch just built: batches tend to be alike, and growing a builder by
// doubling copies its buffers again at every step.
func (t *table) flush() arrow.RecordBatch {
	rows := t.cols[0].any.Len()
	for i := range t.cols {
		if c := &t.cols[i]; c.bin != nil {
			c.dataLen = c.bin.DataLen()
		}
	}
	rec := t.rb.NewRecordBatch()
	if rows > 0 {
		t.rb.Reserve(rows)
		for i := range t.cols {
			if c := &t.cols[i]; c.bin != nil && c.dataLen > 0 {
				c.bin.ReserveData(c.dataLen)
			}
		}
	}
	return rec
}

// Release frees the Builder's buffers, including rows not yet flushed.
func (b *Builder) Release() {
	for _, t := range []*table{&b.profiles, &b.relationships, &b.rejects} {
		if t.rb != nil {
			t.rb.Release()
			t.rb = nil
			t.cols = nil
		}
	}
}

// AddPage adds every element of a JSON:API page's data array, as Add does.
// A body that is not a JSON object with a data array is an error wrapping
// ErrMalformedPage, and nothing of it is added.
func (b *Builder) AddPage(body []byte) (PageResult, error) {
	if err := b.dec.page(body, &b.page); err != nil {
		return PageResult{}, fmt.Errorf("%w: %w", ErrMalformedPage, err)
	}
	var res PageResult
	if len(b.page.next) > 0 && b.page.next[0] == '"' {
		text, buf, _ := stringText(b.idBuf[:0], b.page.next)
		b.idBuf = buf
		res.Next = string(text)
	}
	for i, raw := range b.page.data {
		var o Outcome
		if b.page.decoded {
			b.counts.Records++
			o = b.add(raw, &b.page.recs[i], b.page.errs[i], false)
		} else {
			o = b.Add(raw)
		}
		res.Records++
		switch o.Status {
		case Loaded:
			res.Loaded++
		case LoadedWithRejects:
			res.LoadedWithRejects++
		case Rejected:
			res.Rejected++
		}
		res.RejectRows += o.Rejects
		res.Relationships += o.Relationships
	}
	return res, nil
}

// Reject writes a reject row for a record the caller does not pass to Add
// (it is counted as a record rejected whole). profileID and field may be
// empty (stored as null).
func (b *Builder) Reject(raw []byte, profileID, field, reason string) {
	if reason == "" {
		reason = "rejected by the caller"
	}
	b.counts.Records++
	b.counts.RejectedWhole++
	var id []byte
	if profileID != "" {
		id = []byte(profileID)
	}
	b.addReject(raw, id, field, reason)
}

// Add turns one record (one element of a page's data array, exactly as
// received) into a profile row, its relationship rows and reject rows.
func (b *Builder) Add(raw []byte) Outcome {
	b.counts.Records++
	err := b.dec.record(raw, &b.wire)
	return b.add(raw, &b.wire, err, true)
}

// add writes the rows of one record, read into w (err: as record returned).
// Outcome.ID is left empty unless withID: AddPage has no use for it, and
// it is the one allocation per record.
func (b *Builder) add(raw []byte, w *wireRecord, err error, withID bool) Outcome {
	if err != nil {
		return b.rejectWhole(raw, nil, "", "record is "+notObjectReason(err), withID)
	}
	b.counts.UnknownFields += int64(w.unknown)

	id, idWhy := b.profileID(w.id)
	if why := profileType(w.typ); why != "" {
		return b.rejectWhole(raw, id, "type", why, withID)
	}
	if idWhy != "" {
		return b.rejectWhole(raw, nil, "id", idWhy, withID)
	}

	var out Outcome
	if withID {
		out.ID = string(id)
	}
	b.cur = current{raw: raw, id: id}
	if bytes.IndexByte(id, 0) >= 0 {
		b.counts.NULValues++
	}
	rejects := b.counts.RejectRows
	for _, s := range []struct {
		v     []byte
		field string
	}{{w.attributes, "attributes"}, {w.location, "attributes.location"}, {w.relationships, "relationships"}} {
		if len(s.v) > 0 && s.v[0] != '{' && s.v[0] != 'n' {
			b.problem(s.field, kindOf(s.v)+" where an object belongs")
		}
	}
	for _, field := range w.dupes {
		b.problem(field, "member appears more than once; the last value was kept")
	}

	cols := b.profiles.cols
	for i := range cols {
		col := &cols[i]
		switch profileRoles[i] {
		case roleID:
			col.bytes(id)
		case roleRunID:
			col.bytes(b.runID)
		case roleExtractedAt:
			col.time(b.extractedAt)
		case roleAttribute, roleLocation:
			var v scalar
			text := b.value(&v, w, i, col.kind)
			b.counts.Rules[v.rule]++
			if v.nul {
				b.counts.Rules[RuleNUL]++
				b.counts.NULValues++
			}
			if v.lossy != ruleNone {
				b.counts.Rules[v.lossy]++
				b.problem(schema.Profiles.Columns[i].Name, lossyReason(v.lossy))
			}
			if v.rule == RuleUncoercible {
				b.problem(schema.Profiles.Columns[i].Name, b.coerce.why)
			}
			switch {
			case v.null:
				col.null()
			case col.kind == schema.Double:
				col.float(v.f64)
			case col.kind == schema.Timestamp:
				col.time(v.us)
				switch i {
				case createdColumn:
					out.Created = time.UnixMicro(v.us).UTC()
				case updatedColumn:
					out.Updated = time.UnixMicro(v.us).UTC()
				}
			default:
				col.bytes(text)
			}
		default:
			col.null()
		}
	}

	out.Relationships = b.addRelationships(id, w)
	b.endRecord()
	out.Rejects = int(b.counts.RejectRows - rejects)
	if out.Rejects > 0 {
		out.Status = LoadedWithRejects
		b.counts.LoadedWithRejects++
	} else {
		out.Status = Loaded
		b.counts.Loaded++
	}
	return out
}

// value reads column i of w into v and returns its text: the decoder's
// canonical JSON when it made it, else the coercer's reading.
func (b *Builder) value(v *scalar, w *wireRecord, i int, kind schema.Kind) []byte {
	if kind == schema.JSON {
		if canon, f, ok := w.canonicalJSON(i); ok {
			return b.coerce.canonicalJSON(v, canon, f)
		}
	}
	return b.coerce.value(v, kind, w.val(i))
}

var (
	createdColumn = schema.Profiles.Index(schema.CursorCreated)
	updatedColumn = schema.Profiles.Index(schema.CursorUpdated)
)

// profileID returns the record's id when usable: a non-empty string of
// valid UTF-8 (an id altered by U+FFFD could collide with another
// profile's). Otherwise it returns the reason.
func (b *Builder) profileID(raw []byte) ([]byte, string) {
	if len(raw) == 0 {
		return nil, "no id"
	}
	if raw[0] != '"' {
		return nil, "id is " + kindOf(raw) + ", want a string"
	}
	text, buf, f := stringText(b.idBuf[:0], raw)
	b.idBuf = buf
	switch {
	case f&flagReplaced != 0:
		return nil, "id is not valid UTF-8"
	case len(text) == 0:
		return nil, "id is empty"
	}
	return text, ""
}

func profileType(raw []byte) string {
	switch {
	case len(raw) == 0:
		return `no type, want "profile"`
	case string(raw) == `"profile"`:
		return ""
	case raw[0] != '"':
		return "type is " + kindOf(raw) + `, want "profile"`
	default:
		// Escaped spellings of "profile" are equally valid.
		text, _, f := stringText(nil, raw)
		if f == 0 && string(text) == "profile" {
			return ""
		}
		return "type is " + quoteShort(text) + `, want "profile"`
	}
}

func notObjectReason(err error) string {
	if errors.Is(err, errNotObject) {
		return "valid JSON but not an object"
	}
	return "not valid JSON: " + err.Error()
}

func lossyReason(r Rule) string {
	switch r {
	case RuleInvalidUTF8:
		return "invalid UTF-8 replaced by U+FFFD; raw holds the bytes received"
	case RuleTimestampTruncated:
		return "digits below a microsecond dropped; raw holds the value received"
	default:
		return r.String()
	}
}

// maxRejectsPerRecord bounds the reject rows of one record, each of which
// holds the whole record: a record with thousands of bad relationship
// entries must not become thousands of copies of itself.
const maxRejectsPerRecord = 32

// current is the record being added, for its reject rows.
type current struct {
	raw, id []byte
	rows    int // reject rows written
	// problems past the limit: how many, and the first of them
	over       int
	overField  string
	overReason string
}

// problem writes a reject row for the current record, or, past
// maxRejectsPerRecord-1 rows, keeps it for endRecord's summary.
func (b *Builder) problem(field, why string) {
	c := &b.cur
	if c.rows < maxRejectsPerRecord-1 {
		c.rows++
		b.addReject(c.raw, c.id, field, why)
		return
	}
	if c.over == 0 {
		c.overField, c.overReason = field, why
	}
	c.over++
}

func (b *Builder) endRecord() {
	c := &b.cur
	switch {
	case c.over == 1:
		b.addReject(c.raw, c.id, c.overField, c.overReason)
	case c.over > 1:
		b.addReject(c.raw, c.id, "", strconv.Itoa(c.over)+" more problems in this record, not listed one by one; the first: "+
			c.overField+": "+c.overReason)
	}
	b.cur = current{}
}

func (b *Builder) rejectWhole(raw, id []byte, field, why string, withID bool) Outcome {
	b.counts.RejectedWhole++
	b.addReject(raw, id, field, why)
	out := Outcome{Status: Rejected, Rejects: 1}
	if withID {
		out.ID = string(id)
	}
	return out
}

// addReject writes one profile_rejects row; a nil id and an empty field are
// null.
func (b *Builder) addReject(raw, id []byte, field, why string) {
	b.counts.RejectRows++
	for i := range b.rejects.cols {
		col := &b.rejects.cols[i]
		switch rejectRoles[i] {
		case colRunID:
			col.bytes(b.runID)
		case colProfileID:
			col.optBytes(id)
		case colField:
			if field == "" {
				col.null()
			} else {
				col.bytes([]byte(field))
			}
		case colError:
			col.bytes([]byte(why))
		case colRaw:
			if raw == nil {
				raw = []byte{}
			}
			col.bytes(raw)
		case colRejectedAt:
			col.time(b.extractedAt)
		default:
			col.null()
		}
	}
}

// Columns of profile_relationships and profile_rejects, by name.
const (
	colNone = iota
	colRunID
	colProfileID
	colField
	colError
	colRaw
	colRejectedAt
	colRelationship
	colRelatedType
	colRelatedID
)

var (
	relationshipRoles = columnRoles(schema.ProfileRelationships, map[string]int{
		"profile_id": colProfileID, "relationship": colRelationship, "related_type": colRelatedType,
		"related_id": colRelatedID, "_run_id": colRunID,
	})
	rejectRoles = columnRoles(schema.ProfileRejects, map[string]int{
		"run_id": colRunID, "profile_id": colProfileID, "field": colField, "error": colError,
		"raw": colRaw, "rejected_at": colRejectedAt,
	})
)

func columnRoles(t *schema.Table, byName map[string]int) []int {
	roles := make([]int, len(t.Columns))
	for i, c := range t.Columns {
		roles[i] = byName[c.Name]
	}
	return roles
}

// relRow is one relationship row; its strings are spans of Builder.arena.
type relRow struct {
	name, typ, id span
}

type span struct{ lo, hi int }

// addRelationships writes one row per related object, each once, sorted;
// entries that are not objects with non-empty string type and id are
// rejected.
func (b *Builder) addRelationships(id []byte, w *wireRecord) int {
	b.relRows = b.relRows[:0]
	b.arena = b.arena[:0]
	for ri := range w.rels {
		rel := &w.rels[ri]
		name := span{lo: len(b.arena)}
		// Decoded even without escapes: raw bytes may be invalid UTF-8.
		var f strFlags
		b.arena, f = unquote(b.arena, rel.name)
		name.hi = len(b.arena)
		field := func() string { return "relationships." + string(b.arena[name.lo:name.hi]) }
		if f&flagReplaced != 0 {
			b.problem("relationships", "relationship name is not valid UTF-8")
			continue
		}
		if rel.value[0] != '{' && rel.value[0] != 'n' {
			b.problem(field(), kindOf(rel.value)+" where an object belongs")
			continue
		}
		if len(rel.data) > 0 && rel.data[0] != '[' && rel.data[0] != '{' && rel.data[0] != 'n' {
			b.problem(field(), "data is "+kindOf(rel.data)+", want an array or an object")
			continue
		}
		for k, e := range w.related[rel.first : rel.first+rel.n] {
			row := relRow{name: name}
			var why string
			switch {
			case e.raw[0] != '{':
				why = "is " + kindOf(e.raw) + ", want an object with type and id"
			case e.dup:
				why = "has type or id more than once"
			default:
				var typWhy, idWhy string
				row.typ, typWhy = b.relatedText(e.typ, "type")
				row.id, idWhy = b.relatedText(e.id, "id")
				why = typWhy
				if idWhy != "" {
					if why != "" {
						why += "; "
					}
					why += idWhy
				}
			}
			if why != "" {
				where := "data"
				if rel.data[0] == '[' {
					where = "data[" + strconv.Itoa(k) + "]"
				}
				b.problem(field(), where+": "+why)
				continue
			}
			b.relRows = append(b.relRows, row)
		}
	}
	if len(b.relRows) == 0 {
		return 0
	}
	text := func(s span) []byte { return b.arena[s.lo:s.hi] }
	slices.SortFunc(b.relRows, func(x, y relRow) int {
		if c := bytes.Compare(text(x.name), text(y.name)); c != 0 {
			return c
		}
		if c := bytes.Compare(text(x.typ), text(y.typ)); c != 0 {
			return c
		}
		return bytes.Compare(text(x.id), text(y.id))
	})
	n := 0
	for k, row := range b.relRows {
		if k > 0 {
			prev := b.relRows[k-1]
			if bytes.Equal(text(prev.name), text(row.name)) && bytes.Equal(text(prev.typ), text(row.typ)) && bytes.Equal(text(prev.id), text(row.id)) {
				b.counts.DuplicateRelationships++
				continue
			}
		}
		for _, s := range []span{row.name, row.typ, row.id} {
			if bytes.IndexByte(text(s), 0) >= 0 {
				b.counts.NULValues++
			}
		}
		for i := range b.relationships.cols {
			col := &b.relationships.cols[i]
			switch relationshipRoles[i] {
			case colProfileID:
				col.bytes(id)
			case colRelationship:
				col.bytes(text(row.name))
			case colRelatedType:
				col.bytes(text(row.typ))
			case colRelatedID:
				col.bytes(text(row.id))
			case colRunID:
				col.bytes(b.runID)
			default:
				col.null()
			}
		}
		n++
	}
	b.counts.Relationships += int64(n)
	return n
}

// relatedText decodes a related object's type or id into the arena: it
// must be a non-empty string of valid UTF-8.
func (b *Builder) relatedText(raw []byte, what string) (span, string) {
	if len(raw) == 0 {
		return span{}, "has no " + what
	}
	if raw[0] != '"' {
		return span{}, what + " is " + kindOf(raw) + ", want a string"
	}
	s := span{lo: len(b.arena)}
	var f strFlags
	b.arena, f = unquote(b.arena, raw[1:len(raw)-1])
	s.hi = len(b.arena)
	switch {
	case f&flagReplaced != 0:
		return span{}, what + " is not valid UTF-8"
	case s.hi == s.lo:
		return span{}, what + " is empty"
	}
	return s, ""
}
