package klaviyosim

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestRecordsEqualProfileJSON(t *testing.T) {
	s := newSim(t, Config{Profiles: 300, Seed: 4})
	byID := map[string]Profile{}
	for _, p := range s.Profiles() {
		byID[p.ID] = p
	}
	tests := []struct {
		name     string
		revision string
		opts     RenderOptions
	}{
		{"default", "2026-07-15", RenderOptions{}},
		{"sparse", "2026-07-15", RenderOptions{Fields: []string{"email", "location.city", "location.latitude", "properties", "created"}}},
		{"additional", "2026-07-15", RenderOptions{AdditionalFields: []string{"subscriptions", "predictive_analytics"}}},
		{"subscription sub-path", "2026-07-15", RenderOptions{Fields: []string{"email", "subscriptions.email.marketing.consent", "predictive_analytics.total_clv"},
			AdditionalFields: []string{"subscriptions", "predictive_analytics"}}},
		{"include", "2025-10-15", RenderOptions{Include: []string{"lists", "push-tokens"}}},
		{"launch revision", "2022-10-17", RenderOptions{}},
		{"beta revision", "2026-07-15.pre", RenderOptions{Include: []string{"push-tokens"}}},
		{"old revision", "2024-06-15", RenderOptions{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			query := q("page[size]", "100", "sort", "created")
			for k, v := range map[string][]string{"fields[profile]": tt.opts.Fields, "additional-fields[profile]": tt.opts.AdditionalFields, "include": tt.opts.Include} {
				if v != nil {
					query.Set(k, strings.Join(v, ","))
				}
			}
			tt.opts.BaseURL = s.URL()
			c := call{query: query, revision: tt.revision}
			n := 0
			for {
				p := getPage(t, s, c)
				for _, raw := range p.Data {
					id := decodeRecord(t, raw).ID
					if want := byID[id].JSON(tt.revision, tt.opts); !bytes.Equal(raw, want) {
						t.Fatalf("record %s differs:\nserver: %s\nJSON:   %s", id, raw, want)
					}
					n++
				}
				if p.Links.Next == "" {
					break
				}
				c = call{url: p.Links.Next, revision: tt.revision}
			}
			if n != 300 {
				t.Fatalf("compared %d records", n)
			}
		})
	}
}

func TestRevisionShapes(t *testing.T) {
	s := newSim(t, Config{Profiles: 200, Seed: 6})
	hasData := func(p wirePage, rel string) (any, all bool) {
		all = true
		for _, raw := range p.Data {
			var r struct {
				Relationships map[string]map[string]json.RawMessage `json:"relationships"`
			}
			json.Unmarshal(raw, &r)
			_, ok := r.Relationships[rel]["data"]
			any = any || ok
			all = all && ok
		}
		return any, all
	}
	t.Run("2022-10-17 lists and segments carry data", func(t *testing.T) {
		r := do(t, s, call{revision: "2022-10-17", query: q("page[size]", "50")})
		if ct := r.header.Get("Content-Type"); ct != "application/json" {
			t.Fatalf("Content-Type %q", ct)
		}
		var p wirePage
		json.Unmarshal(r.body, &p)
		for _, rel := range []string{"lists", "segments"} {
			if _, all := hasData(p, rel); !all {
				t.Fatalf("%s without data on 2022-10-17", rel)
			}
		}
		if strings.Contains(string(r.body), `"locale"`) || strings.Contains(string(r.body), `"ip"`) {
			t.Fatal("2022-10-17 records carry locale or location.ip")
		}
	})
	t.Run("2025-10-15 include lists", func(t *testing.T) {
		p := getPage(t, s, call{revision: "2025-10-15", query: q("page[size]", "100", "include", "lists")})
		if _, all := hasData(p, "lists"); !all {
			t.Fatal("lists without data despite include")
		}
		if any, _ := hasData(p, "segments"); any {
			t.Fatal("segments with data though not included")
		}
		if len(p.Included) == 0 {
			t.Fatal("no included resources")
		}
		for _, raw := range p.Included {
			var inc struct{ Type, ID string }
			json.Unmarshal(raw, &inc)
			if inc.Type != "list" || !slices.Contains(listIDs, inc.ID) {
				t.Fatalf("included %s", raw)
			}
		}
	})
	t.Run("2026-07-15 links only", func(t *testing.T) {
		r := do(t, s, call{query: q("page[size]", "100")})
		if ct := r.header.Get("Content-Type"); ct != "application/vnd.api+json" {
			t.Fatalf("Content-Type %q", ct)
		}
		var p wirePage
		json.Unmarshal(r.body, &p)
		for _, rel := range []string{"lists", "segments", "push-tokens", "conversations"} {
			if any, _ := hasData(p, rel); any {
				t.Fatalf("%s has data without include", rel)
			}
		}
		rec := decodeRecord(t, p.Data[0])
		if l := rec.Relationships["lists"].Links; l.Self != s.URL()+"/api/profiles/"+rec.ID+"/relationships/lists/" || l.Related != s.URL()+"/api/profiles/"+rec.ID+"/lists/" {
			t.Fatalf("relationship links %+v", l)
		}
	})
}

func TestSparseFieldsets(t *testing.T) {
	s := newSim(t, Config{Profiles: 40, Seed: 8})
	p := getPage(t, s, call{query: q("fields[profile]", "email,location.city,location.zip",
		"additional-fields[profile]", "subscriptions", "page[size]", "40")})
	for _, raw := range p.Data {
		var r struct {
			Attributes map[string]json.RawMessage `json:"attributes"`
		}
		json.Unmarshal(raw, &r)
		var keys []string
		for k := range r.Attributes {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		if !slices.Equal(keys, []string{"email", "location", "subscriptions"}) {
			t.Fatalf("attributes %v", keys)
		}
		var loc map[string]any
		json.Unmarshal(r.Attributes["location"], &loc)
		for k := range loc {
			if k != "city" && k != "zip" {
				t.Fatalf("location has %q", k)
			}
		}
	}
	p = getPage(t, s, call{query: q("fields[profile]", "subscriptions.sms.marketing.consent",
		"additional-fields[profile]", "subscriptions", "page[size]", "5")})
	var r struct {
		Attributes struct {
			Subscriptions map[string]map[string]map[string]any `json:"subscriptions"`
		} `json:"attributes"`
	}
	json.Unmarshal(p.Data[0], &r)
	if got := r.Attributes.Subscriptions; len(got) != 1 || len(got["sms"]) != 1 || len(got["sms"]["marketing"]) != 1 || got["sms"]["marketing"]["consent"] == nil {
		t.Fatalf("subscriptions sub-selection: %v", got)
	}
}

func TestGzipWhenAccepted(t *testing.T) {
	for _, disable := range []bool{false, true} {
		s := newSim(t, Config{Profiles: 100, Seed: 1, DisableGzip: disable})
		r := do(t, s, call{query: q("page[size]", "100"), header: http.Header{"Accept-Encoding": {"gzip"}}})
		if got := r.header.Get("Content-Encoding") == "gzip"; got == disable {
			t.Fatalf("DisableGzip=%v: Content-Encoding %q", disable, r.header.Get("Content-Encoding"))
		}
		body := r.body
		if !disable {
			zr, err := gzip.NewReader(bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			if body, err = io.ReadAll(zr); err != nil {
				t.Fatal(err)
			}
		}
		var p wirePage
		if err := json.Unmarshal(body, &p); err != nil || len(p.Data) != 100 {
			t.Fatalf("body: %v, %d records", err, len(p.Data))
		}
	}
}

// TestSyntheticVariety checks that the data exercises what a consumer must
// handle (API-NOTES §6, §10).
func TestSyntheticVariety(t *testing.T) {
	s, err := New(Config{Profiles: 5000, Seed: 12})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	ids := map[string]bool{}
	for _, p := range s.Profiles() {
		if len(p.ID) != 26 || strings.Trim(p.ID, crockford) != "" || ids[p.ID] {
			t.Fatalf("bad or duplicate id %q", p.ID)
		}
		ids[p.ID] = true
		if p.Updated.Before(p.Created) || !p.LastEventDate.IsZero() && (p.LastEventDate.Before(p.Created) || p.LastEventDate.After(p.Updated)) {
			t.Fatalf("timestamps out of order: %v %v %v", p.Created, p.Updated, p.LastEventDate)
		}
		for _, l := range []Coord{p.Location.Latitude, p.Location.Longitude} {
			seen["coord "+[...]string{"null", "string", "number", "absent"}[l.Form]]++
		}
		if p.LastEventDate.IsZero() {
			seen["last_event_date null"]++
		}
		if !p.Email.Valid {
			seen["email null"]++
		}
		if p.Locale.Absent {
			seen["locale absent"]++
		}
		if p.Location.IP.Absent {
			seen["ip absent"]++
		}
		if z := p.Location.Zip.Value; strings.HasPrefix(z, "0") && strings.Trim(z, "0123456789") == "" {
			seen["zip with leading zero"]++
		}
		js := string(p.JSON("2026-07-15", RenderOptions{AdditionalFields: []string{"subscriptions", "predictive_analytics"}}))
		if !json.Valid([]byte(js)) || !utf8.ValidString(js) {
			t.Fatalf("invalid JSON: %s", js)
		}
		for _, r := range js {
			switch {
			case r >= 0x4E00 && r <= 0x9FFF:
				seen["CJK"]++
			case r >= 0x1F300:
				seen["emoji"]++
			case r >= 0xC0 && r <= 0x17F:
				seen["accent"]++
			}
		}
		var props map[string]any
		dec := json.NewDecoder(strings.NewReader(string(p.Properties)))
		dec.UseNumber()
		if err := dec.Decode(&props); err != nil {
			t.Fatalf("properties %s: %v", p.Properties, err)
		}
		for _, v := range props {
			switch v := v.(type) {
			case string:
				seen["prop string"]++
			case json.Number:
				if strings.ContainsAny(string(v), ".eE") {
					seen["prop float"]++
				} else {
					seen["prop int"]++
				}
			case bool:
				seen["prop bool"]++
			case nil:
				seen["prop null"]++
			case []any:
				seen["prop array"]++
			case map[string]any:
				seen["prop object"]++
			}
		}
		if strings.Contains(js, `"big_id":9007199254740993`) {
			seen["int beyond 2^53"]++
		}
	}
	for _, k := range []string{"coord null", "coord string", "coord number", "last_event_date null", "email null", "locale absent",
		"ip absent", "zip with leading zero", "CJK", "emoji", "accent", "prop string", "prop float", "prop int", "prop bool",
		"prop null", "prop array", "prop object", "int beyond 2^53"} {
		if seen[k] == 0 {
			t.Errorf("no %s in 5000 profiles", k)
		}
	}
}

func TestTimestampFormat(t *testing.T) {
	for _, tm := range []time.Time{
		time.Date(2023, 6, 5, 14, 49, 54, 0, time.UTC), time.Date(1969, 12, 31, 23, 59, 59, 0, time.UTC),
		time.Date(2000, 2, 29, 0, 0, 0, 0, time.UTC), time.Date(2026, 12, 31, 23, 0, 1, 0, time.UTC),
	} {
		got := string(appendTime(nil, tm.Unix()))
		if want := `"` + tm.Format("2006-01-02T15:04:05") + `+00:00"`; got != want {
			t.Errorf("appendTime = %s, want %s", got, want)
		}
	}
}

func TestAppendStringRoundTrips(t *testing.T) {
	inputs := []string{"", "plain ascii text longer than eight", `"quoted"`, `back\slash`, "tab\there", "nl\n\r\x00\x1f\x7f",
		"Zoë 🦄 東京", "12345678\"", "1234567\\8", "ünïcödé with a \" after eight bytes", "</script>&<>", "\u2028\u2029"}
	for _, n := range nicknames {
		inputs = append(inputs, n, n+n+n)
	}
	for _, in := range inputs {
		out := appendString(nil, in)
		var back string
		if err := json.Unmarshal(out, &back); err != nil || back != in {
			t.Errorf("appendString(%q) = %s, decodes to %q (%v)", in, out, back, err)
		}
	}
}
