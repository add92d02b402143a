package sinktest

import (
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/klaviyo-etl/klaviyo-etl/schema"
)

// GenerateProfiles builds a profiles record of n rows numbered first to
// first+n-1, every column filled the way a real account fills it (sparse
// where Klaviyo profiles are sparse, a few hundred bytes of properties and
// the subscriptions object), for benchmarks. The same arguments give the same
// rows. The caller releases the record.
func GenerateProfiles(mem memory.Allocator, first, n int, runID string, extractedAt time.Time) arrow.RecordBatch {
	b := array.NewRecordBuilder(mem, schema.Profiles.ArrowSchema())
	defer b.Release()
	for _, f := range b.Fields() {
		f.Reserve(n)
	}
	g := profileGen{b: b}
	var sb strings.Builder
	base := time.Date(2019, 3, 1, 0, 0, 0, 0, time.UTC)
	for i := first; i < first+n; i++ {
		rng := rand.New(rand.NewPCG(uint64(i), 0x6b6c6176))
		created := base.Add(time.Duration(i)*1700*time.Millisecond + time.Duration(rng.IntN(1000))*time.Millisecond)
		fn, ln := pick(rng, firstNames), pick(rng, lastNames)

		g.str("id", profileID(rng, created))
		g.str("email", strings.ToLower(fn)+"."+strings.ToLower(ln)+strconv.Itoa(i%9973)+"@"+pick(rng, domains))
		g.opt(rng, 0.6, "phone_number", func() string { return "+1" + digits(rng, 10) })
		g.opt(rng, 0.3, "external_id", func() string { return "cus_" + digits(rng, 12) })
		g.null("anonymous_id")
		g.opt(rng, 0.9, "first_name", func() string { return fn })
		g.opt(rng, 0.85, "last_name", func() string { return ln })
		g.opt(rng, 0.2, "organization", func() string { return pick(rng, organizations) })
		g.opt(rng, 0.5, "locale", func() string { return pick(rng, locales) })
		g.opt(rng, 0.1, "title", func() string { return pick(rng, titles) })
		g.opt(rng, 0.05, "image", func() string { return "https://cdn.example.com/avatars/" + digits(rng, 9) + ".png" })
		g.ts("created", created)
		g.ts("updated", created.Add(time.Duration(rng.IntN(400*24))*time.Hour))
		if rng.Float64() < 0.7 {
			g.ts("last_event_date", created.Add(time.Duration(rng.IntN(600*24))*time.Hour))
		} else {
			g.null("last_event_date")
		}
		hasLoc := rng.Float64() < 0.6
		city := pick(rng, cities)
		g.when(hasLoc, "location_address1", func() string { return strconv.Itoa(1+rng.IntN(9999)) + " " + pick(rng, streets) })
		g.when(hasLoc && rng.Float64() < 0.2, "location_address2", func() string { return "Apt " + strconv.Itoa(1+rng.IntN(400)) })
		g.when(hasLoc, "location_city", func() string { return city.name })
		g.when(hasLoc, "location_country", func() string { return city.country })
		g.when(hasLoc, "location_region", func() string { return city.region })
		g.when(hasLoc, "location_zip", func() string { return digits(rng, 5) })
		g.when(hasLoc, "location_timezone", func() string { return city.tz })
		g.when(rng.Float64() < 0.5, "location_ip", func() string {
			return strconv.Itoa(1+rng.IntN(223)) + "." + strconv.Itoa(rng.IntN(256)) + "." + strconv.Itoa(rng.IntN(256)) + "." + strconv.Itoa(rng.IntN(256))
		})
		if hasLoc {
			g.f64("location_latitude", city.lat+rng.Float64()*0.2-0.1)
			g.f64("location_longitude", city.lon+rng.Float64()*0.2-0.1)
		} else {
			g.null("location_latitude")
			g.null("location_longitude")
		}
		g.str("properties", properties(&sb, rng, i))
		g.str("subscriptions", subscriptions(&sb, rng, created))
		g.null("predictive_analytics")
		g.str("_run_id", runID)
		g.ts("_extracted_at", extractedAt)
	}
	return b.NewRecordBatch()
}

type profileGen struct{ b *array.RecordBuilder }

func (g profileGen) field(name string) array.Builder {
	return g.b.Field(schema.Profiles.Index(name))
}

func (g profileGen) str(name, v string) {
	switch f := g.field(name).(type) {
	case *array.StringBuilder:
		f.Append(v)
	case *array.ExtensionBuilder:
		f.StorageBuilder().(*array.StringBuilder).Append(v)
	}
}

func (g profileGen) null(name string) { g.field(name).AppendNull() }

func (g profileGen) ts(name string, v time.Time) {
	g.field(name).(*array.TimestampBuilder).Append(arrow.Timestamp(v.UnixMicro()))
}

func (g profileGen) f64(name string, v float64) {
	g.field(name).(*array.Float64Builder).Append(v)
}

func (g profileGen) opt(rng *rand.Rand, p float64, name string, v func() string) {
	g.when(rng.Float64() < p, name, v)
}

func (g profileGen) when(ok bool, name string, v func() string) {
	if ok {
		g.str(name, v())
		return
	}
	g.null(name)
}

const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// profileID mimics Klaviyo's ULID ids: 10 characters of time, 16 random.
func profileID(rng *rand.Rand, t time.Time) string {
	var b [26]byte
	ms := uint64(t.UnixMilli())
	for i := 9; i >= 0; i-- {
		b[i] = crockford[ms&31]
		ms >>= 5
	}
	for i := 10; i < 26; i++ {
		b[i] = crockford[rng.IntN(32)]
	}
	return string(b[:])
}

func digits(rng *rand.Rand, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('0' + rng.IntN(10))
	}
	return string(b)
}

func pick[T any](rng *rand.Rand, from []T) T { return from[rng.IntN(len(from))] }

func properties(sb *strings.Builder, rng *rand.Rand, i int) string {
	sb.Reset()
	sb.WriteString(`{"$source":"`)
	sb.WriteString(pick(rng, sources))
	sb.WriteString(`","signup_form":"`)
	sb.WriteString(pick(rng, forms))
	sb.WriteString(`","FavoriteColors":["`)
	sb.WriteString(pick(rng, colors))
	sb.WriteString(`","`)
	sb.WriteString(pick(rng, colors))
	sb.WriteString(`"],"loyalty_points":`)
	sb.WriteString(strconv.Itoa(rng.IntN(5000)))
	sb.WriteString(`,"last_order_id":"ORD-`)
	sb.WriteString(strconv.Itoa(100000 + i))
	sb.WriteString(`","accepts_marketing":`)
	sb.WriteString(strconv.FormatBool(rng.IntN(2) == 0))
	sb.WriteString(`,"shopify_tags":"`)
	sb.WriteString(pick(rng, tags))
	sb.WriteString(`"}`)
	return sb.String()
}

func subscriptions(sb *strings.Builder, rng *rand.Rand, created time.Time) string {
	consent := pick(rng, []string{"SUBSCRIBED", "NEVER_SUBSCRIBED", "UNSUBSCRIBED"})
	ts := created.Add(time.Duration(rng.IntN(3600)) * time.Second).Format("2006-01-02T15:04:05.000000+00:00")
	sb.Reset()
	sb.WriteString(`{"email":{"marketing":{"can_receive_email_marketing":`)
	sb.WriteString(strconv.FormatBool(consent == "SUBSCRIBED"))
	sb.WriteString(`,"consent":"`)
	sb.WriteString(consent)
	sb.WriteString(`","consent_timestamp":"`)
	sb.WriteString(ts)
	sb.WriteString(`","last_updated":"`)
	sb.WriteString(ts)
	sb.WriteString(`","method":"`)
	sb.WriteString(pick(rng, []string{"FORM", "API", "IMPORT"}))
	sb.WriteString(`","method_detail":"`)
	sb.WriteString(pick(rng, forms))
	sb.WriteString(`","custom_method_detail":null,"double_optin":null,"suppression":[],"list_suppressions":[]}},` +
		`"sms":{"marketing":{"can_receive_sms_marketing":false,"consent":"NEVER_SUBSCRIBED","consent_timestamp":null,` +
		`"method":null,"method_detail":null,"last_updated":null},"transactional":{"can_receive_sms_transactional":false,` +
		`"consent":"NEVER_SUBSCRIBED","consent_timestamp":null,"method":null,"method_detail":null,"last_updated":null}},` +
		`"mobile_push":{"marketing":{"can_receive_push_marketing":false,"consent":"NEVER_SUBSCRIBED","consent_timestamp":null}}}`)
	return sb.String()
}

type city struct {
	name, region, country, tz string
	lat, lon                  float64
}

var (
	firstNames = []string{"Sarah", "James", "Maria", "David", "Linda", "Michael", "Emma", "Robert", "Olivia", "William",
		"Sophia", "Daniel", "Isabella", "Joseph", "Mia", "Thomas", "Charlotte", "Charles", "Amelia", "Christopher",
		"Harper", "Matthew", "Evelyn", "Anthony", "Abigail", "Mark", "Emily", "Steven", "Ella", "Paul", "Aiko", "Lucas",
		"Chloé", "Mateo", "Zoë", "Noah", "Léa", "Liam", "Hannah", "Ethan"}
	lastNames = []string{"Mason", "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis",
		"Rodriguez", "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore",
		"Jackson", "Martin", "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez", "Clark", "Ramirez", "Lewis",
		"Müller", "Nakamura", "O'Brien", "Dubois", "Rossi", "Kowalski", "Novak", "Silva", "Kim", "Nguyen"}
	domains       = []string{"gmail.com", "yahoo.com", "hotmail.com", "outlook.com", "icloud.com", "aol.com", "protonmail.com", "example.com"}
	organizations = []string{"Klaviyo", "Acme Corp", "Globex", "Initech", "Umbrella", "Stark Industries", "Wayne Enterprises"}
	locales       = []string{"en-US", "en-GB", "fr-FR", "de-DE", "es-ES", "ja-JP", "pt-BR"}
	titles        = []string{"Engineer", "Manager", "Director", "Designer", "Founder", "Analyst"}
	streets       = []string{"Main St", "Oak Ave", "Maple Dr", "Cedar Ln", "Elm St", "Park Blvd", "Washington Ave", "Lake Rd"}
	sources       = []string{"-9", "Shopify", "Signup Form", "Import", "API"}
	forms         = []string{"Footer Form", "Popup 10% Off", "Checkout", "Landing Page", "Spin to Win"}
	colors        = []string{"blue", "yellow", "red", "green", "black", "white", "purple"}
	tags          = []string{"vip", "wholesale", "newsletter", "returning", "", "first-order"}
	cities        = []city{
		{"Boston", "Massachusetts", "United States", "America/New_York", 42.36, -71.06},
		{"Chicago", "Illinois", "United States", "America/Chicago", 41.88, -87.63},
		{"Denver", "Colorado", "United States", "America/Denver", 39.74, -104.99},
		{"San Francisco", "California", "United States", "America/Los_Angeles", 37.77, -122.42},
		{"London", "England", "United Kingdom", "Europe/London", 51.51, -0.13},
		{"Paris", "Île-de-France", "France", "Europe/Paris", 48.86, 2.35},
		{"Berlin", "Berlin", "Germany", "Europe/Berlin", 52.52, 13.40},
		{"Tokyo", "Tokyo", "Japan", "Asia/Tokyo", 35.68, 139.69},
		{"São Paulo", "São Paulo", "Brazil", "America/Sao_Paulo", -23.55, -46.63},
		{"Sydney", "New South Wales", "Australia", "Australia/Sydney", -33.87, 151.21},
	}
)
