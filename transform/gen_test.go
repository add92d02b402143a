package transform

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

// genPage writes a page of n realistic profiles (about 2 KB each: every
// attribute, a location with string or number coordinates, properties with
// nested values and non-ASCII text, subscriptions, relationships with links
// and sometimes data), the way the API formats them.
func genPage(r *rand.Rand, n int) []byte {
	var sb strings.Builder
	sb.WriteString(`{"data":[`)
	for i := 0; i < n; i++ {
		if i > 0 {
			sb.WriteByte(',')
		}
		genProfile(&sb, r)
	}
	sb.WriteString(`],"links":{"self":"https://a.klaviyo.com/api/profiles/","next":"https://a.klaviyo.com/api/profiles/?page%5Bcursor%5D=bmV4dDo6aWQ6OjQz","prev":null}}`)
	return []byte(sb.String())
}

var (
	firstNames = []string{"Sarah", "José", "Zoë", "Mason", "Ngozi", "Łukasz", "美咲", "Ahmed", "Chloé", "Олег"}
	lastNames  = []string{"Mason", "García", "Ødegård", "Smith", "Okafor", "Nowak", "佐藤", "Hassan", "Dubois", "Иванов"}
	cities     = []string{"Boston", "São Paulo", "Zürich", "Lagos", "Kraków", "東京", "Cairo", "Paris", "Москва", "New York"}
	colors     = []string{"blue", "yellow", "green", "crème brûlée", "🟣 purple"}
)

func q(s string) string { b, _ := json.Marshal(s); return string(b) }

const ulidChars = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

func ulid(r *rand.Rand) string {
	var b [26]byte
	for i := range b {
		b[i] = ulidChars[r.IntN(len(ulidChars))]
	}
	return string(b[:])
}

func genProfile(sb *strings.Builder, r *rand.Rand) {
	id := ulid(r)
	fn, ln := firstNames[r.IntN(len(firstNames))], lastNames[r.IntN(len(lastNames))]
	created := time.Date(2022, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(r.Int64N(int64(3 * 365 * 24 * time.Hour)))).Truncate(time.Second)
	updated := created.Add(time.Duration(r.Int64N(int64(90 * 24 * time.Hour)))).Truncate(time.Second)
	lat, lon := r.Float64()*180-90, r.Float64()*360-180
	coord := func(v float64) string {
		if r.IntN(2) == 0 {
			return q(fmt.Sprintf("%.4f", v))
		}
		return fmt.Sprintf("%.6f", v)
	}
	zip := q(fmt.Sprintf("%05d", r.IntN(100000)))
	if r.IntN(10) == 0 {
		zip = fmt.Sprint(10000 + r.IntN(89999))
	}
	fmt.Fprintf(sb, `{"type":"profile","id":%q,"attributes":{`, id)
	fmt.Fprintf(sb, `"email":%s,"phone_number":"+1%010d","external_id":%s,"anonymous_id":null,`,
		q(strings.ToLower(fmt.Sprintf("%s.%s%d@example.com", "user", id[:6], r.IntN(1000)))), r.Int64N(1e10), q(fmt.Sprintf("ext-%d", r.IntN(1e6))))
	fmt.Fprintf(sb, `"first_name":%s,"last_name":%s,"organization":%s,"locale":"en-US","title":"Regional Manager","image":"https://images.example.com/p/%s.jpg",`,
		q(fn), q(ln), q(ln+" & Co."), id)
	fmt.Fprintf(sb, `"created":%q,"updated":%q,"last_event_date":%q,`,
		created.Format("2006-01-02T15:04:05-07:00"), updated.Format("2006-01-02T15:04:05-07:00"), updated.Add(-time.Hour).Format("2006-01-02T15:04:05.000000-07:00"))
	fmt.Fprintf(sb, `"location":{"address1":"%d Main St","address2":"Apt %d","city":%s,"country":"United States","latitude":%s,"longitude":%s,"region":"MA","zip":%s,"timezone":"America/New_York","ip":"203.0.113.%d"},`,
		r.IntN(9999), r.IntN(99), q(cities[r.IntN(len(cities))]), coord(lat), coord(lon), zip, r.IntN(255))
	fmt.Fprintf(sb, `"properties":{"pseudonym":%s,"FavoriteColors":[%s,%s],"loyalty":{"tier":"gold","points":%d,"since":"2021-04-01"},"lifetime_value":%d.%02d,"newsletter":%t,"score":%.3e,"$source":"shopify","notes":%s},`,
		q(fn+"_"+strings.ToLower(ln)), q(colors[r.IntN(len(colors))]), q(colors[r.IntN(len(colors))]), r.IntN(5000), r.IntN(2000), r.IntN(100), r.IntN(2) == 0, r.Float64()*1000, q("Customer since "+created.Format("Jan 2006")+" — prefers e-mail ✉"))
	fmt.Fprintf(sb, `"subscriptions":{"email":{"marketing":{"can_receive_email_marketing":true,"consent":"SUBSCRIBED","consent_timestamp":%q,"last_updated":%q,"method":"PREFERENCE_PAGE","method_detail":"mydomain.com/signup","custom_method_detail":null,"double_optin":"True","suppression":[],"list_suppressions":[]}},"sms":{"marketing":{"can_receive_sms_marketing":false,"consent":"NEVER_SUBSCRIBED","consent_timestamp":null,"method":null,"method_detail":null,"last_updated":null}}}`,
		created.Format("2006-01-02T15:04:05+00:00"), updated.Format("2006-01-02T15:04:05+00:00"))
	fmt.Fprintf(sb, `},"relationships":{"lists":{"links":{"self":"https://a.klaviyo.com/api/profiles/%[1]s/relationships/lists/","related":"https://a.klaviyo.com/api/profiles/%[1]s/lists/"}},"segments":{"links":{"self":"https://a.klaviyo.com/api/profiles/%[1]s/relationships/segments/","related":"https://a.klaviyo.com/api/profiles/%[1]s/segments/"}}`, id)
	if r.IntN(4) == 0 {
		fmt.Fprintf(sb, `,"push-tokens":{"data":[{"type":"push-token","id":%q}],"links":{"self":"https://a.klaviyo.com/api/profiles/%s/relationships/push-tokens/"}}`, ulid(r), id)
	}
	fmt.Fprintf(sb, `},"links":{"self":"https://a.klaviyo.com/api/profiles/%s/"}}`, id)
}

func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, seed+1)) }
