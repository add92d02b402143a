package transform

import (
	"encoding/json"
	"errors"

	"github.com/klaviyo-etl/klaviyo-etl/schema"
)

// libDecoder implements the recordDecoder seam with a general-purpose JSON
// library's Unmarshal into typed structs whose leaves are json.RawMessage.
// It exists to measure the libraries against scanDecoder (bench_test.go)
// and to cross-check scanDecoder's output (decoder_test.go).
type libDecoder struct {
	name      string
	unmarshal func(data []byte, v any) error
}

var stdDecoder = libDecoder{name: "encoding-json", unmarshal: json.Unmarshal}

type libPage struct {
	Data  json.RawMessage `json:"data"`
	Links json.RawMessage `json:"links"`
}

type libRecord struct {
	Type          json.RawMessage `json:"type"`
	ID            json.RawMessage `json:"id"`
	Attributes    json.RawMessage `json:"attributes"`
	Relationships json.RawMessage `json:"relationships"`
}

type libAttributes struct {
	Email               json.RawMessage `json:"email"`
	PhoneNumber         json.RawMessage `json:"phone_number"`
	ExternalID          json.RawMessage `json:"external_id"`
	AnonymousID         json.RawMessage `json:"anonymous_id"`
	FirstName           json.RawMessage `json:"first_name"`
	LastName            json.RawMessage `json:"last_name"`
	Organization        json.RawMessage `json:"organization"`
	Locale              json.RawMessage `json:"locale"`
	Title               json.RawMessage `json:"title"`
	Image               json.RawMessage `json:"image"`
	Created             json.RawMessage `json:"created"`
	Updated             json.RawMessage `json:"updated"`
	LastEventDate       json.RawMessage `json:"last_event_date"`
	Location            json.RawMessage `json:"location"`
	Properties          json.RawMessage `json:"properties"`
	Subscriptions       json.RawMessage `json:"subscriptions"`
	PredictiveAnalytics json.RawMessage `json:"predictive_analytics"`
}

type libLocation struct {
	Address1  json.RawMessage `json:"address1"`
	Address2  json.RawMessage `json:"address2"`
	City      json.RawMessage `json:"city"`
	Country   json.RawMessage `json:"country"`
	Region    json.RawMessage `json:"region"`
	Zip       json.RawMessage `json:"zip"`
	Timezone  json.RawMessage `json:"timezone"`
	IP        json.RawMessage `json:"ip"`
	Latitude  json.RawMessage `json:"latitude"`
	Longitude json.RawMessage `json:"longitude"`
}

// The columns of libAttributes' and libLocation's fields, in field order.
var (
	libAttributeColumns = columnIndexes("email", "phone_number", "external_id", "anonymous_id",
		"first_name", "last_name", "organization", "locale", "title", "image", "created", "updated",
		"last_event_date", "properties", "subscriptions", "predictive_analytics")
	libLocationColumns = columnIndexes("location_address1", "location_address2", "location_city",
		"location_country", "location_region", "location_zip", "location_timezone", "location_ip",
		"location_latitude", "location_longitude")
)

func columnIndexes(names ...string) []int {
	idx := make([]int, len(names))
	for i, n := range names {
		idx[i] = schema.Profiles.Index(n)
	}
	return idx
}

type libRelationship struct {
	Data json.RawMessage `json:"data"`
}

type libRelated struct {
	Type json.RawMessage `json:"type"`
	ID   json.RawMessage `json:"id"`
}

func firstByte(b []byte) byte {
	for _, c := range b {
		switch c {
		case ' ', '\t', '\n', '\r':
		default:
			return c
		}
	}
	return 0
}

func (d libDecoder) page(body []byte, pg *wirePage) error {
	pg.data, pg.next, pg.decoded = pg.data[:0], nil, false
	var p libPage
	if err := d.unmarshal(body, &p); err != nil {
		return err
	}
	if firstByte(body) != '{' {
		return errNotObject
	}
	if firstByte(p.Data) != '[' {
		return errNoData
	}
	var data []json.RawMessage
	if err := d.unmarshal(p.Data, &data); err != nil {
		return err
	}
	for _, e := range data {
		pg.data = append(pg.data, e)
	}
	if firstByte(p.Links) == '{' {
		var l struct {
			Next json.RawMessage `json:"next"`
		}
		if err := d.unmarshal(p.Links, &l); err != nil {
			return err
		}
		pg.next = l.Next
	}
	return nil
}

func (d libDecoder) record(raw []byte, w *wireRecord) error {
	w.reset()
	var r libRecord
	if err := d.unmarshal(raw, &r); err != nil {
		if firstByte(raw) != '{' && errors.As(err, new(*json.UnmarshalTypeError)) {
			return errNotObject
		}
		return err
	}
	if firstByte(raw) != '{' {
		return errNotObject
	}
	w.typ, w.id, w.attributes, w.relationships = r.Type, r.ID, r.Attributes, r.Relationships
	// wireRecord.vals are spans of one buffer; the values read here are
	// copies, so they are gathered into one (the values of raw's members
	// fit in len(raw) bytes: one allocation).
	src := make([]byte, 0, len(raw))
	set := func(col int, v json.RawMessage) {
		if col >= 0 && v != nil {
			lo := len(src)
			src = append(src, v...)
			w.vals[col] = span{lo, len(src)}
			w.src = src
		}
	}
	if firstByte(r.Attributes) == '{' {
		var a libAttributes
		if err := d.unmarshal(r.Attributes, &a); err != nil {
			return err
		}
		for k, v := range [...]json.RawMessage{
			a.Email, a.PhoneNumber, a.ExternalID, a.AnonymousID, a.FirstName, a.LastName,
			a.Organization, a.Locale, a.Title, a.Image, a.Created, a.Updated, a.LastEventDate,
			a.Properties, a.Subscriptions, a.PredictiveAnalytics,
		} {
			set(libAttributeColumns[k], v)
		}
		w.location = a.Location
		if firstByte(a.Location) == '{' {
			var l libLocation
			if err := d.unmarshal(a.Location, &l); err != nil {
				return err
			}
			for k, v := range [...]json.RawMessage{
				l.Address1, l.Address2, l.City, l.Country, l.Region, l.Zip, l.Timezone, l.IP,
				l.Latitude, l.Longitude,
			} {
				set(libLocationColumns[k], v)
			}
		}
	}
	if firstByte(r.Relationships) == '{' {
		var rels map[string]json.RawMessage
		if err := d.unmarshal(r.Relationships, &rels); err != nil {
			return err
		}
		for name, v := range rels {
			// wireRel.name is the name as sent, between the quotes.
			quoted := appendQuoted(nil, []byte(name))
			rel := wireRel{name: quoted[1 : len(quoted)-1], value: v, first: len(w.related)}
			if firstByte(v) == '{' {
				var lr libRelationship
				if err := d.unmarshal(v, &lr); err != nil {
					return err
				}
				rel.data = lr.Data
				var entries []json.RawMessage
				switch firstByte(lr.Data) {
				case '[':
					if err := d.unmarshal(lr.Data, &entries); err != nil {
						return err
					}
				case '{':
					entries = []json.RawMessage{lr.Data}
				}
				for _, e := range entries {
					we := wireRelated{raw: e}
					if firstByte(e) == '{' {
						var re libRelated
						if err := d.unmarshal(e, &re); err != nil {
							return err
						}
						we.typ, we.id = re.Type, re.ID
					}
					w.related = append(w.related, we)
				}
			}
			rel.n = len(w.related) - rel.first
			w.rels = append(w.rels, rel)
		}
	}
	return nil
}
