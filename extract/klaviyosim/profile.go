package klaviyosim

import (
	"encoding/json"
	"math"
	"strconv"
	"time"
	"unsafe"
)

// Text is a nullable string attribute. The zero value renders as null;
// Absent drops the key from the JSON object altogether (the API omits keys
// in places, and sparse fieldsets omit them by design).
type Text struct {
	Value  string
	Valid  bool
	Absent bool
}

// CoordForm says how a coordinate is written: the API sends latitude and
// longitude as strings, as numbers, or as null.
type CoordForm uint8

// Coordinate forms; the zero value renders null.
const (
	CoordNull CoordForm = iota
	CoordString
	CoordNumber
	CoordAbsent
)

// Coord is a latitude or longitude in one of its wire forms.
type Coord struct {
	Value float64
	Form  CoordForm
}

// Location is attributes.location.
type Location struct {
	Address1, Address2, City, Country, Region, Zip, Timezone, IP Text
	Latitude, Longitude                                          Coord
}

// Profile is one synthetic profile with typed attributes. Properties,
// Subscriptions and PredictiveAnalytics are kept as the JSON the server
// sends; relationship fields hold related ids.
type Profile struct {
	ID                                                                        string
	Email, PhoneNumber, ExternalID, FirstName, LastName, Organization, Locale Text
	Title, Image                                                              Text
	Created, Updated                                                          time.Time
	LastEventDate                                                             time.Time // zero = null
	Location                                                                  Location
	Properties                                                                json.RawMessage
	Subscriptions                                                             json.RawMessage // rendered only when asked for
	PredictiveAnalytics                                                       json.RawMessage // rendered only when asked for
	Lists, Segments, PushTokens, Conversations                                []string
}

// want selects the expensive sections to generate.
type want uint8

const (
	wantProperties want = 1 << iota
	wantSubscriptions
	wantPredictive
	wantAll = wantProperties | wantSubscriptions | wantPredictive
)

// arena holds the bytes of generated strings. Strings handed out point into
// it (no copy, no allocation). On the hot path an arena is reset once the
// profile it backs has been rendered; a Profile that escapes to callers gets
// an arena of its own that is never reset, so its strings stay immutable.
type arena struct{ b []byte }

func (a *arena) mark() int { return len(a.b) }

func (a *arena) str(from int) string {
	if len(a.b) == from {
		return ""
	}
	return unsafe.String(&a.b[from], len(a.b)-from)
}

func (a *arena) text(from int, ok bool) Text {
	if !ok {
		a.b = a.b[:from]
		return Text{}
	}
	return Text{Value: a.str(from), Valid: true}
}

func (a *arena) raw(from int) json.RawMessage { return a.b[from:len(a.b):len(a.b)] }

func text(s string) Text { return Text{Value: s, Valid: true} }

// materialize fills p from rec. Slices already in p are reused.
func materialize(rec *record, w want, a *arena, p *Profile) {
	*p = Profile{Lists: p.Lists[:0], Segments: p.Segments[:0], PushTokens: p.PushTokens[:0], Conversations: p.Conversations[:0]}
	m := a.mark()
	a.b = append(a.b, rec.id[:]...)
	p.ID = a.str(m)
	p.Created = time.Unix(rec.created, 0).UTC()
	p.Updated = time.Unix(rec.updated, 0).UTC()

	m = a.mark()
	var ok bool
	a.b, ok = appendEmail(a.b, rec)
	p.Email = a.text(m, ok)
	m = a.mark()
	a.b, ok = appendPhone(a.b, rec)
	p.PhoneNumber = a.text(m, ok)
	m = a.mark()
	a.b, ok = appendExternalID(a.b, rec)
	p.ExternalID = a.text(m, ok)

	n := newRNG(rec.seed, streamName)
	fn, ln := pick(&n, firstNames), pick(&n, lastNames)
	if n.pct(88) {
		p.FirstName = text(fn.text)
	}
	if n.pct(85) {
		p.LastName = text(ln.text)
	}

	id := newRNG(rec.seed, streamIdentity)
	switch v := id.intn(100); {
	case v < 70:
		p.Locale = text(pick(&id, locales))
	case v < 73:
		p.Locale.Absent = true
	}
	if id.pct(10) {
		m = a.mark()
		a.b = append(a.b, "https://images.example.com/avatars/"...)
		a.b = append(a.b, rec.id[:]...)
		a.b = append(a.b, ".jpg"...)
		p.Image = a.text(m, true)
	}

	vseed := mix(rec.seed, uint64(rec.rev))
	mu := newRNG(vseed, streamMutable)
	if mu.pct(30) {
		p.Organization = text(pick(&mu, organizations))
	}
	if mu.pct(25) {
		p.Title = text(pick(&mu, titles))
	}
	if !mu.pct(25) {
		span := rec.updated - rec.created
		p.LastEventDate = time.Unix(rec.created+int64(mu.float()*float64(span)), 0).UTC()
	}

	genLocation(rec, a, &p.Location)
	if w&wantProperties != 0 {
		m = a.mark()
		a.b = genProperties(a.b, vseed)
		p.Properties = a.raw(m)
	}
	if w&wantSubscriptions != 0 {
		m = a.mark()
		a.b = genSubscriptions(a.b, rec, vseed, p.Email.Valid, p.PhoneNumber)
		p.Subscriptions = a.raw(m)
	}
	if w&wantPredictive != 0 {
		m = a.mark()
		a.b = genPredictive(a.b, rec, vseed)
		p.PredictiveAnalytics = a.raw(m)
	}
	genRelations(rec, a, p)
}

func genLocation(rec *record, a *arena, l *Location) {
	r := newRNG(rec.seed, streamLocation)
	c := &cities[r.intn(len(cities))]
	if r.pct(80) {
		m := a.mark()
		a.b = strconv.AppendInt(a.b, int64(1+r.intn(999)), 10)
		a.b = append(a.b, ' ')
		a.b = append(a.b, pick(&r, c.streets)...)
		l.Address1 = a.text(m, true)
	}
	switch v := r.intn(100); {
	case v < 15:
		l.Address2 = text(pick(&r, []string{"Apt 4B", "1st floor", "Suite 200", "2º izq.", "3F"}))
	case v < 30:
		l.Address2.Absent = true
	}
	if r.pct(90) {
		l.City = text(c.city)
	}
	if r.pct(92) {
		l.Country = text(c.country)
	}
	if r.pct(85) {
		l.Region = text(c.region)
	}
	if r.pct(75) {
		m := a.mark()
		for i := 0; i < len(c.zip); i++ {
			switch c.zip[i] {
			case '#':
				a.b = append(a.b, byte('0'+r.intn(10)))
			case '@':
				a.b = append(a.b, byte('A'+r.intn(26)))
			default:
				a.b = append(a.b, c.zip[i])
			}
		}
		l.Zip = a.text(m, true)
	}
	if r.pct(80) {
		l.Timezone = text(c.timezone)
	}
	switch v := r.intn(100); {
	case v < 15:
		l.IP.Absent = true
	case v < 50:
	default:
		m := a.mark()
		if r.pct(20) {
			a.b = append(a.b, "2001:db8::"...)
			a.b = strconv.AppendUint(a.b, uint64(r.intn(65536)), 16)
		} else {
			a.b = strconv.AppendInt(a.b, int64(1+r.intn(223)), 10)
			for range 3 {
				a.b = append(a.b, '.')
				a.b = strconv.AppendInt(a.b, int64(r.intn(256)), 10)
			}
		}
		l.IP = a.text(m, true)
	}
	form := CoordNull
	switch v := r.intn(100); {
	case v < 40:
		form = CoordString
	case v < 70:
		form = CoordNumber
	}
	round4 := func(v float64) float64 { return math.Round(v*1e4) / 1e4 }
	l.Latitude = Coord{Form: form, Value: round4(c.lat + (r.float()-0.5)/10)}
	l.Longitude = Coord{Form: form, Value: round4(c.lon + (r.float()-0.5)/10)}
	if form == CoordNull {
		l.Latitude.Value, l.Longitude.Value = 0, 0
	}
}

// genProperties writes a custom-properties object with every JSON type:
// strings (escapes, Unicode, emoji), integers (one beyond 2^53), floats
// (one in exponent form), booleans, null, arrays (empty, mixed) and nested
// objects. Keys vary from profile to profile.
func genProperties(b []byte, vseed uint64) []byte {
	r := newRNG(vseed, streamProperties)
	b = append(b, '{')
	if r.pct(10) {
		return append(b, '}')
	}
	if r.pct(60) {
		b = appendStringField(b, "$source", pick(&r, sources))
	}
	if r.pct(50) {
		b = appendStringField(b, "plan", pick(&r, plans))
	}
	if r.pct(50) {
		b = appendKey(comma(b), "lifetime_orders")
		b = strconv.AppendInt(b, int64(r.intn(500)), 10)
	}
	if r.pct(40) {
		b = appendKey(comma(b), "avg_basket")
		b = strconv.AppendFloat(b, float64(r.intn(100000))/100, 'f', -1, 64)
	}
	if r.pct(40) {
		b = appendKey(comma(b), "vip")
		b = strconv.AppendBool(b, r.pct(20))
	}
	if r.pct(30) {
		b = append(appendKey(comma(b), "referrer"), "null"...)
	}
	if r.pct(35) {
		b = appendKey(comma(b), "FavoriteColors")
		b = append(b, '[')
		for range r.intn(4) {
			b = appendString(comma(b), pick(&r, colors))
		}
		b = append(b, ']')
	}
	if r.pct(30) {
		b = appendKey(comma(b), "preferences")
		b = append(b, `{"newsletter":`...)
		b = strconv.AppendBool(b, r.pct(50))
		b = append(b, `,"categories":["shoes","bags"],"size":{"shoe":`...)
		b = strconv.AppendInt(b, int64(35+r.intn(12)), 10)
		b = append(b, `,"shirt":"M"},"extra":null}`...)
	}
	if r.pct(20) {
		b = appendStringField(b, "nickname", pick(&r, nicknames))
	}
	if r.pct(20) {
		b = appendKey(comma(b), "score")
		if r.pct(50) {
			b = strconv.AppendFloat(b, float64(1+r.intn(99))*1e-9, 'g', -1, 64)
		} else {
			b = strconv.AppendFloat(b, -float64(r.intn(10000))/100, 'f', -1, 64)
		}
	}
	if r.pct(3) {
		// Beyond float64's exact integers: a decoder into float64 changes it.
		b = append(appendKey(comma(b), "big_id"), "9007199254740993"...)
	}
	if r.pct(25) {
		b = appendKey(comma(b), "Birthday")
		b = append(b, '"')
		b = strconv.AppendInt(b, int64(1950+r.intn(55)), 10)
		b = append(b, '-', '0', byte('1'+r.intn(9)), '-', byte('1'+r.intn(2)), byte('0'+r.intn(9)), '"')
	}
	if r.pct(15) {
		b = appendKey(comma(b), "tags")
		if r.pct(50) {
			b = append(b, "[]"...)
		} else {
			b = append(b, `[1,"two",true,null,4.5,{"k":"v"},[]]`...)
		}
	}
	if r.pct(10) {
		b = appendStringField(b, "ünïcode key 🎉", "value")
	}
	if r.pct(10) {
		b = append(appendKey(comma(b), "meta"), "{}"...)
	}
	return append(b, '}')
}

// genSubscriptions writes the 2023-10-15+ subscriptions object.
func genSubscriptions(b []byte, rec *record, vseed uint64, hasEmail bool, phone Text) []byte {
	r := newRNG(vseed, streamSubscriptions)
	ts := func(b []byte) []byte {
		if r.pct(15) {
			return append(b, "null"...)
		}
		return appendTime(b, rec.created+int64(r.float()*float64(rec.updated-rec.created)))
	}
	consent := "NEVER_SUBSCRIBED"
	if hasEmail {
		consent = pick(&r, consentValues)
	}
	suppressed := hasEmail && r.pct(8)
	b = append(b, `{"email":{"marketing":{"can_receive_email_marketing":`...)
	b = strconv.AppendBool(b, consent == "SUBSCRIBED" && !suppressed)
	b = append(b, `,"consent":"`...)
	b = append(b, consent...)
	b = append(b, `","consent_timestamp":`...)
	if consent == "NEVER_SUBSCRIBED" {
		b = append(b, "null"...)
	} else {
		b = ts(b)
	}
	b = append(b, `,"last_updated":`...)
	b = ts(b)
	b = append(b, `,"method":`...)
	if consent == "NEVER_SUBSCRIBED" {
		b = append(b, `null,"method_detail":"","custom_method_detail":null,"double_optin":null`...)
	} else {
		b = appendString(b, pick(&r, emailMethods))
		b = append(b, `,"method_detail":"mydomain.com/signup","custom_method_detail":`...)
		if r.pct(20) {
			b = append(b, `"marketing drive"`...)
		} else {
			b = append(b, "null"...)
		}
		b = append(b, `,"double_optin":`...)
		switch r.intn(3) {
		case 0:
			b = append(b, "true"...)
		case 1:
			b = append(b, "false"...)
		default:
			b = append(b, "null"...)
		}
	}
	b = append(b, `,"suppression":[`...)
	if suppressed {
		b = append(b, `{"reason":"`...)
		b = append(b, pick(&r, suppressionReasons)...)
		b = append(b, `","timestamp":`...)
		b = appendTime(b, rec.updated)
		b = append(b, '}')
	}
	b = append(b, `],"list_suppressions":[`...)
	if hasEmail && r.pct(5) {
		b = append(b, `{"list_id":"`...)
		b = append(b, pick(&r, listIDs)...)
		b = append(b, `","reason":"USER_SUPPRESSED","timestamp":`...)
		b = appendTime(b, rec.updated)
		b = append(b, '}')
	}
	b = append(b, "]}}"...)

	smsConsent := "NEVER_SUBSCRIBED"
	if phone.Valid {
		smsConsent = pick(&r, consentValues)
	}
	for i, kind := range [2]string{"marketing", "transactional"} {
		if i == 0 {
			b = append(b, `,"sms":{"`...)
		} else {
			b = append(b, `,"`...)
		}
		b = append(b, kind...)
		b = append(b, `":{"can_receive_sms_`...)
		b = append(b, kind...)
		b = append(b, `":`...)
		b = strconv.AppendBool(b, smsConsent == "SUBSCRIBED")
		b = append(b, `,"consent":"`...)
		b = append(b, smsConsent...)
		b = append(b, `","consent_timestamp":`...)
		if smsConsent == "NEVER_SUBSCRIBED" {
			b = append(b, `null,"method":null,"method_detail":"","last_updated":null}`...)
			continue
		}
		b = ts(b)
		b = append(b, `,"method":"TEXT","method_detail":"JOIN","last_updated":`...)
		b = ts(b)
		b = append(b, '}')
	}
	b = append(b, `},"mobile_push":{"marketing":{"can_receive_push_marketing":false,"consent":"NEVER_SUBSCRIBED","consent_timestamp":null}}`...)
	if phone.Valid && r.pct(10) {
		b = append(b, `,"whatsapp":{"marketing":{"consent":"SUBSCRIBED","can_receive":true,"consent_timestamp":`...)
		b = ts(b)
		b = append(b, `,"last_updated":null,"created_timestamp":`...)
		b = appendTime(b, rec.created)
		b = append(b, `,"metadata":null,"valid_until":null,"phone_number":`...)
		b = appendString(b, phone.Value)
		b = append(b, "}}"...)
	}
	return append(b, '}')
}

// genPredictive writes predictive_analytics; ineligible profiles get nulls.
func genPredictive(b []byte, rec *record, vseed uint64) []byte {
	r := newRNG(vseed, streamPredictive)
	if r.pct(40) {
		return append(b, `{"historic_clv":null,"predicted_clv":null,"total_clv":null,"historic_number_of_orders":null,"predicted_number_of_orders":null,"average_days_between_orders":null,"average_order_value":null,"churn_probability":null,"expected_date_of_next_order":null,"ranked_channel_affinity":null}`...)
	}
	money := func() float64 { return float64(r.intn(100000)) / 100 }
	hist, pred := money(), money()
	orders := 1 + r.intn(40)
	b = append(b, `{"historic_clv":`...)
	b = strconv.AppendFloat(b, hist, 'f', -1, 64)
	b = append(b, `,"predicted_clv":`...)
	b = strconv.AppendFloat(b, pred, 'f', -1, 64)
	b = append(b, `,"total_clv":`...)
	b = strconv.AppendFloat(b, math.Round((hist+pred)*100)/100, 'f', -1, 64)
	b = append(b, `,"historic_number_of_orders":`...)
	b = strconv.AppendInt(b, int64(orders), 10)
	b = append(b, `,"predicted_number_of_orders":`...)
	b = strconv.AppendFloat(b, float64(r.intn(500))/100, 'f', -1, 64)
	b = append(b, `,"average_days_between_orders":`...)
	if orders == 1 {
		b = append(b, "null"...)
	} else {
		b = strconv.AppendInt(b, int64(5+r.intn(300)), 10)
	}
	b = append(b, `,"average_order_value":`...)
	b = strconv.AppendFloat(b, math.Round(hist/float64(orders)*100)/100, 'f', -1, 64)
	b = append(b, `,"churn_probability":`...)
	b = strconv.AppendFloat(b, float64(r.intn(101))/100, 'f', -1, 64)
	b = append(b, `,"expected_date_of_next_order":`...)
	if r.pct(30) {
		b = append(b, "null"...)
	} else {
		b = appendTime(b, rec.updated+int64(r.intn(180*86400)))
	}
	b = append(b, `,"ranked_channel_affinity":[`...)
	perm := [4]int{0, 1, 2, 3}
	k := 1 + r.intn(4)
	for i := range k {
		j := i + r.intn(4-i)
		perm[i], perm[j] = perm[j], perm[i]
		b = appendString(comma(b), channels[perm[i]])
	}
	return append(b, "]}"...)
}

func genRelations(rec *record, a *arena, p *Profile) {
	r := newRNG(rec.seed, streamRelations)
	p.Lists = pickDistinct(&r, p.Lists, listIDs, r.intn(4))
	p.Segments = pickDistinct(&r, p.Segments, segmentIDs, r.intn(4))
	if r.pct(20) {
		for range 1 + r.intn(2) {
			m := a.mark()
			u := ulid(rec.created*1000, r.u64(), uint16(r.u64()))
			a.b = append(a.b, u[:]...)
			p.PushTokens = append(p.PushTokens, a.str(m))
		}
	}
	if r.pct(10) {
		m := a.mark()
		u := ulid(rec.updated*1000, r.u64(), uint16(r.u64()))
		a.b = append(a.b, u[:]...)
		p.Conversations = append(p.Conversations, a.str(m))
	}
}

func pickDistinct(r *rng, dst, from []string, k int) []string {
	var idx [16]int
	n := len(from)
	for i := range n {
		idx[i] = i
	}
	for i := range k {
		j := i + r.intn(n-i)
		idx[i], idx[j] = idx[j], idx[i]
		dst = append(dst, from[idx[i]])
	}
	return dst
}
