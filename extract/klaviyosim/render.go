package klaviyosim

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"time"
)

// RenderOptions are the request options that shape one profile record.
type RenderOptions struct {
	// BaseURL is the scheme and host that links point to; default
	// "https://a.klaviyo.com". The server uses its own host.
	BaseURL string
	// Fields is fields[profile]; nil renders every attribute. Paths under
	// subscriptions.* and predictive_analytics.* narrow those blocks, which
	// appear only when AdditionalFields asks for them.
	Fields []string
	// AdditionalFields is additional-fields[profile]: "subscriptions",
	// "predictive_analytics".
	AdditionalFields []string
	// Include names relationships whose data is rendered (on the revisions
	// that accept include).
	Include []string
}

// JSON returns exactly the record the server puts in data[] for this
// profile under the revision and options given. Options the revision does
// not accept are ignored rather than reported; an unknown revision renders
// as the newest one.
func (p Profile) JSON(revision string, opts RenderOptions) []byte {
	rev, ok := parseRevision(revision)
	if !ok {
		rev, _ = parseRevision(newestRevision)
	}
	base := opts.BaseURL
	if base == "" {
		base = "https://a.klaviyo.com"
	}
	spec, _ := compileRender(rev, strings.TrimSuffix(base, "/"), opts.Fields, opts.AdditionalFields, opts.Include)
	return appendProfile(nil, &p, spec)
}

// Attribute bits, in the order the API writes them.
const (
	aEmail uint32 = 1 << iota
	aPhone
	aExternal
	aFirst
	aLast
	aOrganization
	aLocale
	aTitle
	aImage
	aCreated
	aUpdated
	aLastEvent
	aLocation
	aProperties
	aAll = 1<<iota - 1
)

var attrBits = map[string]uint32{
	"email": aEmail, "phone_number": aPhone, "external_id": aExternal, "first_name": aFirst,
	"last_name": aLast, "organization": aOrganization, "locale": aLocale, "title": aTitle,
	"image": aImage, "created": aCreated, "updated": aUpdated, "last_event_date": aLastEvent,
	"location": aLocation, "properties": aProperties,
}

const (
	lAddress1 uint16 = 1 << iota
	lAddress2
	lCity
	lCountry
	lLatitude
	lLongitude
	lRegion
	lZip
	lTimezone
	lIP
	lAll = 1<<iota - 1
)

var locationBits = map[string]uint16{
	"address1": lAddress1, "address2": lAddress2, "city": lCity, "country": lCountry,
	"latitude": lLatitude, "longitude": lLongitude, "region": lRegion, "zip": lZip,
	"timezone": lTimezone, "ip": lIP,
}

// renderSpec is RenderOptions compiled for one revision.
type renderSpec struct {
	base          string // scheme://host, no trailing slash
	attrs         uint32
	loc           uint16
	subs, pa      bool
	subsPaths     []string // sub-selection inside subscriptions; nil = all
	paPaths       []string
	rels          []relSpec
	includeTypes  []string // relationship names whose objects go to included[]
	relationships bool
}

type relSpec struct {
	name     string // key under relationships, and the URL segment
	itemType string // JSON:API type of related objects
	data     bool
}

// compileRender builds a renderSpec. It always returns a usable spec; the
// error (if any) describes the first option the revision does not accept.
func compileRender(rev revision, base string, fields, additional, include []string) (*renderSpec, *apiError) {
	var first *apiError
	fail := func(e *apiError) {
		if first == nil {
			first = e
		}
	}
	spec := &renderSpec{base: base, attrs: aAll, loc: lAll, relationships: true}
	if fields != nil {
		spec.attrs, spec.loc = 0, 0
		var subsMentioned, paMentioned bool
		for _, f := range fields {
			switch {
			case f == "id":
				if rev.date == "2022-10-17" {
					fail(invalidParam("fields[profile]", "'id' is not a valid field for the resource 'profile'"))
				}
			case attrBits[f] != 0:
				spec.attrs |= attrBits[f]
				if f == "location" {
					spec.loc = lAll
				}
			case strings.HasPrefix(f, "location.") && locationBits[f[len("location."):]] != 0:
				spec.attrs |= aLocation
				spec.loc |= locationBits[f[len("location."):]]
			case f == "subscriptions" || strings.HasPrefix(f, "subscriptions."):
				subsMentioned = true
				spec.subsPaths = append(spec.subsPaths, f)
			case f == "predictive_analytics" || strings.HasPrefix(f, "predictive_analytics."):
				paMentioned = true
				spec.paPaths = append(spec.paPaths, f)
			default:
				fail(invalidParam("fields[profile]", "'"+f+"' is not a valid field for the resource 'profile'"))
			}
		}
		// Naming a sub-path restricts the block; not naming the block at all
		// leaves additional-fields in charge of it.
		if !subsMentioned || contains(spec.subsPaths, "subscriptions") {
			spec.subsPaths = nil
		}
		if !paMentioned || contains(spec.paPaths, "predictive_analytics") {
			spec.paPaths = nil
		}
	}
	if !rev.atLeast("2024-07-15") {
		if fields != nil && spec.attrs&aLocale != 0 {
			fail(invalidParam("fields[profile]", "'locale' is not a valid field for the resource 'profile'"))
		}
		spec.attrs &^= aLocale
	}
	if !rev.atLeast("2023-02-22") {
		if fields != nil && spec.loc&lIP != 0 && spec.loc != lAll {
			fail(invalidParam("fields[profile]", "'location.ip' is not a valid field for the resource 'profile'"))
		}
		spec.loc &^= lIP
	}
	for _, a := range additional {
		switch {
		case a == "subscriptions" && rev.atLeast("2023-10-15"):
			spec.subs = true
		case a == "predictive_analytics" && rev.atLeast("2023-02-22"):
			spec.pa = true
		default:
			fail(invalidParam("additional-fields[profile]", "'"+a+"' is not a valid additional field for the resource 'profile' in revision "+rev.name))
		}
	}
	allowed := rev.includes()
	var want []string
	for _, inc := range include {
		if !contains(allowed, inc) {
			detail := "'" + inc + "' is not a valid relationship for include in revision " + rev.name
			if len(allowed) == 0 {
				detail = "include is not supported by this endpoint in revision " + rev.name
			}
			fail(invalidParam("include", detail))
			continue
		}
		if inc == "conversation" {
			inc = "conversations"
		}
		want = append(want, inc)
	}
	spec.includeTypes = want
	if rev.date == "2022-10-17" {
		// The launch-era shape: lists and segments always carry data arrays.
		spec.rels = []relSpec{{"lists", "list", true}, {"segments", "segment", true}}
		return spec, first
	}
	spec.rels = []relSpec{{"lists", "list", contains(want, "lists")}, {"segments", "segment", contains(want, "segments")}}
	if rev.atLeast("2025-04-15") {
		spec.rels = append(spec.rels, relSpec{"push-tokens", "push-token", contains(want, "push-tokens")})
	}
	if rev.atLeast("2026-04-15") {
		spec.rels = append(spec.rels, relSpec{"conversations", "conversation", contains(want, "conversations")})
	}
	return spec, first
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// appendProfile writes one data[] record.
func appendProfile(b []byte, p *Profile, s *renderSpec) []byte {
	b = append(b, `{"type":"profile","id":`...)
	b = appendString(b, p.ID)
	b = append(b, `,"attributes":{`...)
	a := s.attrs
	if a&aEmail != 0 {
		b = appendTextField(b, "email", p.Email)
	}
	if a&aPhone != 0 {
		b = appendTextField(b, "phone_number", p.PhoneNumber)
	}
	if a&aExternal != 0 {
		b = appendTextField(b, "external_id", p.ExternalID)
	}
	if a&aFirst != 0 {
		b = appendTextField(b, "first_name", p.FirstName)
	}
	if a&aLast != 0 {
		b = appendTextField(b, "last_name", p.LastName)
	}
	if a&aOrganization != 0 {
		b = appendTextField(b, "organization", p.Organization)
	}
	if a&aLocale != 0 {
		b = appendTextField(b, "locale", p.Locale)
	}
	if a&aTitle != 0 {
		b = appendTextField(b, "title", p.Title)
	}
	if a&aImage != 0 {
		b = appendTextField(b, "image", p.Image)
	}
	if a&aCreated != 0 {
		b = appendTimeField(b, "created", p.Created)
	}
	if a&aUpdated != 0 {
		b = appendTimeField(b, "updated", p.Updated)
	}
	if a&aLastEvent != 0 {
		b = appendTimeField(b, "last_event_date", p.LastEventDate)
	}
	if a&aLocation != 0 {
		b = appendLocation(b, &p.Location, s.loc)
	}
	if a&aProperties != 0 {
		b = appendRawField(b, "properties", p.Properties, "", nil)
	}
	if s.subs {
		b = appendRawField(b, "subscriptions", p.Subscriptions, "subscriptions", s.subsPaths)
	}
	if s.pa {
		b = appendRawField(b, "predictive_analytics", p.PredictiveAnalytics, "predictive_analytics", s.paPaths)
	}
	b = append(b, '}')
	if s.relationships && len(s.rels) > 0 {
		b = append(b, `,"relationships":{`...)
		for i, r := range s.rels {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, r.name)
			b = append(b, ":{"...)
			if r.data {
				b = append(b, `"data":[`...)
				for j, id := range p.related(r.name) {
					if j > 0 {
						b = append(b, ',')
					}
					b = append(b, `{"type":"`...)
					b = append(b, r.itemType...)
					b = append(b, `","id":`...)
					b = appendString(b, id)
					b = append(b, '}')
				}
				b = append(b, "],"...)
			}
			b = append(b, `"links":{"self":"`...)
			b = appendProfileURL(b, s.base, p.ID)
			b = append(b, "relationships/"...)
			b = append(b, r.name...)
			b = append(b, `/","related":"`...)
			b = appendProfileURL(b, s.base, p.ID)
			b = append(b, r.name...)
			b = append(b, `/"}}`...)
		}
		b = append(b, '}')
	}
	b = append(b, `,"links":{"self":"`...)
	b = appendProfileURL(b, s.base, p.ID)
	return append(b, `"}}`...)
}

func (p *Profile) related(name string) []string {
	switch name {
	case "lists":
		return p.Lists
	case "segments":
		return p.Segments
	case "push-tokens":
		return p.PushTokens
	case "conversations":
		return p.Conversations
	}
	return nil
}

// appendProfileURL writes base/api/profiles/<id>/ (ids are URL-safe).
func appendProfileURL(b []byte, base, id string) []byte {
	b = append(b, base...)
	b = append(b, "/api/profiles/"...)
	b = append(b, id...)
	return append(b, '/')
}

func appendLocation(b []byte, l *Location, mask uint16) []byte {
	b = append(appendKey(comma(b), "location"), '{')
	if mask&lAddress1 != 0 {
		b = appendTextField(b, "address1", l.Address1)
	}
	if mask&lAddress2 != 0 {
		b = appendTextField(b, "address2", l.Address2)
	}
	if mask&lCity != 0 {
		b = appendTextField(b, "city", l.City)
	}
	if mask&lCountry != 0 {
		b = appendTextField(b, "country", l.Country)
	}
	if mask&lLatitude != 0 {
		b = appendCoordField(b, "latitude", l.Latitude)
	}
	if mask&lLongitude != 0 {
		b = appendCoordField(b, "longitude", l.Longitude)
	}
	if mask&lRegion != 0 {
		b = appendTextField(b, "region", l.Region)
	}
	if mask&lZip != 0 {
		b = appendTextField(b, "zip", l.Zip)
	}
	if mask&lTimezone != 0 {
		b = appendTextField(b, "timezone", l.Timezone)
	}
	if mask&lIP != 0 {
		b = appendTextField(b, "ip", l.IP)
	}
	return append(b, '}')
}

func appendTextField(b []byte, key string, t Text) []byte {
	if t.Absent {
		return b
	}
	b = appendKey(comma(b), key)
	if !t.Valid {
		return append(b, "null"...)
	}
	return appendString(b, t.Value)
}

func appendTimeField(b []byte, key string, t time.Time) []byte {
	b = appendKey(comma(b), key)
	if t.IsZero() {
		return append(b, "null"...)
	}
	return appendTime(b, t.Unix())
}

func appendCoordField(b []byte, key string, c Coord) []byte {
	switch c.Form {
	case CoordAbsent:
		return b
	case CoordString:
		b = append(appendKey(comma(b), key), '"')
		b = strconv.AppendFloat(b, c.Value, 'f', 4, 64)
		return append(b, '"')
	case CoordNumber:
		return strconv.AppendFloat(appendKey(comma(b), key), c.Value, 'f', -1, 64)
	}
	return append(appendKey(comma(b), key), "null"...)
}

func appendRawField(b []byte, key string, raw json.RawMessage, root string, paths []string) []byte {
	b = appendKey(comma(b), key)
	if raw == nil {
		return append(b, "null"...)
	}
	if paths != nil {
		return append(b, prune(raw, root, paths)...)
	}
	return append(b, raw...)
}

// prune keeps the parts of a JSON object selected by dotted paths (sparse
// fieldsets inside subscriptions/predictive_analytics). Rare, so it uses
// encoding/json and is not tuned.
func prune(raw []byte, root string, paths []string) []byte {
	var v map[string]any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil || v == nil {
		return raw
	}
	pruneMap(v, root, paths)
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return raw
	}
	return bytes.TrimRight(buf.Bytes(), "\n")
}

func pruneMap(m map[string]any, path string, paths []string) {
	for k, v := range m {
		p := path + "." + k
		keep, descend := false, false
		for _, q := range paths {
			if q == p || strings.HasPrefix(p, q+".") {
				keep = true
			} else if strings.HasPrefix(q, p+".") {
				descend = true
			}
		}
		switch sub, isMap := v.(map[string]any); {
		case keep:
		case descend && isMap:
			pruneMap(sub, p, paths)
		default:
			delete(m, k)
		}
	}
}

// comma separates members: it writes ',' unless an object or array was just
// opened.
func comma(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] != '{' && b[n-1] != '[' {
		return append(b, ',')
	}
	return b
}

// appendKey writes "k": for keys of this package, none of which needs
// escaping.
func appendKey(b []byte, k string) []byte {
	b = append(b, '"')
	b = append(b, k...)
	return append(b, '"', ':')
}

func appendStringField(b []byte, k, v string) []byte {
	return appendString(appendKey(comma(b), k), v)
}

// appendString writes s as a JSON string. Like Klaviyo (and unlike
// encoding/json) it leaves <, > and & unescaped.
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		// Skip 8 bytes at a time while none is a control character, '"' or '\\'.
		for i+8 <= len(s) && !needsEscape8(s[i:i+8]) {
			i += 8
		}
		if i >= len(s) {
			break
		}
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&15])
		}
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// needsEscape8 reports whether any of the 8 bytes of s is below 0x20, '"'
// or '\\' (SWAR: a byte is "zero" in x when (x-0x01…)&^x&0x80… is set).
func needsEscape8(s string) bool {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	w := uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
	ctl := (w - lo*0x20) & ^w & hi
	q := w ^ lo*'"'
	bs := w ^ lo*'\\'
	return ctl|(q-lo)&^q&hi|(bs-lo)&^bs&hi != 0
}

// appendTime writes a quoted timestamp the way the API does:
// "2023-06-05T14:49:54+00:00".
func appendTime(b []byte, sec int64) []byte {
	days := sec / 86400
	rem := sec % 86400
	if rem < 0 {
		rem += 86400
		days--
	}
	y, m, d := civil(days)
	b = append(b, '"')
	b = append4(b, y)
	b = append(b, '-')
	b = append2(b, m)
	b = append(b, '-')
	b = append2(b, d)
	b = append(b, 'T')
	b = append2(b, int(rem/3600))
	b = append(b, ':')
	b = append2(b, int(rem/60%60))
	b = append(b, ':')
	b = append2(b, int(rem%60))
	return append(b, "+00:00\""...)
}

// civil converts days since 1970-01-01 to a proleptic Gregorian date
// (Howard Hinnant's algorithm).
func civil(z int64) (int, int, int) {
	z += 719468
	era := z / 146097
	if z < 0 && z%146097 != 0 {
		era = (z - 146096) / 146097
	}
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	y := yoe + era*400
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	d := doy - (153*mp+2)/5 + 1
	m := mp + 3
	if mp >= 10 {
		m = mp - 9
	}
	if m <= 2 {
		y++
	}
	return int(y), int(m), int(d)
}

func append2(b []byte, v int) []byte { return append(b, byte('0'+v/10%10), byte('0'+v%10)) }

func append4(b []byte, v int) []byte {
	if v < 0 || v > 9999 {
		v = 0
	}
	return append(b, byte('0'+v/1000), byte('0'+v/100%10), byte('0'+v/10%10), byte('0'+v%10))
}
