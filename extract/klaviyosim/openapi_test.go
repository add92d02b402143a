package klaviyosim

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
)

// loadSpec loads the Get Profiles slice of Klaviyo's OpenAPI file
// (revision 2026-07-15). It is self-contained: every $ref points into
// #/components, so nothing outside the file is resolved.
//
// API-NOTES §6 warns that latitude/longitude are `nullable: true` beside
// `oneOf: [string, number]`, which many validators reject for the null the
// real API sends. kin-openapi v0.153 honours that nullable, so the spec is
// used as is, unmodified; TestOpenAPIValidatorIsLive pins that behaviour so
// an upgrade that loses it fails loudly instead of being worked around.
func loadSpec(t *testing.T) (*openapi3.T, *routers.Route) {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromFile("../../testdata/get_profiles.json")
	if err != nil {
		t.Fatalf("load spec: %v", err)
	}
	loc := doc.Components.Schemas["ProfileLocation"].Value
	for _, name := range []string{"latitude", "longitude"} {
		if prop := loc.Properties[name].Value; !prop.Nullable || len(prop.OneOf) != 2 {
			t.Fatalf("spec changed: location.%s is no longer a nullable oneOf", name)
		}
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("spec invalid: %v", err)
	}
	pathItem := doc.Paths.Find("/api/profiles")
	if pathItem == nil || pathItem.Get == nil {
		t.Fatal("spec has no GET /api/profiles")
	}
	return doc, &routers.Route{Spec: doc, Path: "/api/profiles", PathItem: pathItem, Method: http.MethodGet, Operation: pathItem.Get}
}

func TestResponsesMatchOpenAPI(t *testing.T) {
	_, route := loadSpec(t)
	s := newSim(t, Config{Profiles: 250, Seed: 21, NoScopeKey: "pk_noscope", HangFor: time.Minute,
		Burst: Limit{1000, time.Minute}, Steady: Limit{2000, time.Hour}})
	lastPage := func() string {
		p := getPage(t, s, call{query: q("page[size]", "100", "sort", "created")})
		for p.Links.Next != "" {
			next := p.Links.Next
			p = getPage(t, s, call{url: next})
			if p.Links.Next == "" {
				return next
			}
		}
		t.Fatal("no second page")
		return ""
	}()

	type tc struct {
		name   string
		c      call
		fault  Fault
		status int
	}
	tests := []tc{
		{name: "first page", c: call{query: q("page[size]", "100")}, status: 200},
		{name: "last page", c: call{url: lastPage}, status: 200},
		{name: "sparse fieldset", c: call{query: q("fields[profile]", "email,location.latitude,location.longitude,properties,created")}, status: 200},
		{name: "additional fields", c: call{query: q("page[size]", "100", "additional-fields[profile]", "subscriptions,predictive_analytics")}, status: 200},
		{name: "subscription sub-path", c: call{query: q("fields[profile]", "email,subscriptions.email.marketing",
			"additional-fields[profile]", "subscriptions")}, status: 200},
		{name: "include push-tokens 2025-10-15", c: call{revision: "2025-10-15", query: q("page[size]", "100", "include", "push-tokens")}, status: 200},
		{name: "include 2026-07-15", c: call{query: q("page[size]", "100", "include", "conversations,push-tokens")}, status: 200},
		{name: "empty page", c: call{query: q("filter", `equals(email,"nobody@example.com")`)}, status: 200},
		{name: "400", c: call{query: q("filter", "greater-or-equal(created,2024-01-01T00:00:00Z)")}, status: 400},
		{name: "400 revision", c: call{revision: "2020-01-01"}, status: 400},
		{name: "401", c: call{key: "pk_nope"}, status: 401},
		{name: "403", c: call{key: "pk_noscope"}, status: 403},
		{name: "404", c: call{path: "/api/profilez"}, status: 404},
		{name: "429 spurious", fault: Fault429, status: 429},
		{name: "500", fault: Fault500, status: 500},
		{name: "502", fault: Fault502, status: 502},
		{name: "503", fault: Fault503, status: 503},
		{name: "504", fault: Fault504, status: 504},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.fault != "" {
				s.InjectFaults(tt.fault, 1)
			}
			r := do(t, s, tt.c)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
			validate(t, route, r)
		})
	}
	t.Run("429 from the budget", func(t *testing.T) {
		s.SetRateLimits(Limit{1, time.Hour}, Limit{1, time.Hour})
		do(t, s, call{})
		r := do(t, s, call{})
		if r.status != 429 {
			t.Fatalf("status %d", r.status)
		}
		validate(t, route, r)
	})
}

func TestOpenAPIValidatorIsLive(t *testing.T) {
	// Controls: the validator rejects what the spec forbids and accepts
	// the null coordinates the real API sends (the first case).
	_, route := loadSpec(t)
	h := http.Header{"Content-Type": {"application/vnd.api+json"}}
	record := func(attrs string) []byte {
		return []byte(`{"data":[{"type":"profile","id":"01GDDKASAP8TKDDA2GRZDSVP4H","attributes":` + attrs +
			`,"links":{"self":"https://a.klaviyo.com/api/profiles/01GDDKASAP8TKDDA2GRZDSVP4H/"}}],"links":{"self":"https://a.klaviyo.com/api/profiles"}}`)
	}
	for _, tt := range []struct {
		attrs string
		ok    bool
	}{
		{`{"email":"a@b.c","location":{"latitude":null,"longitude":"74.0060"}}`, true},
		{`{"email":5}`, false},
		{`{"location":{"latitude":true}}`, false},
		{`{"created":"yesterday"}`, false},
	} {
		err := validateErr(route, response{status: 200, header: h, body: record(tt.attrs)})
		if (err == nil) != tt.ok {
			t.Errorf("%s: error %v, want ok=%v", tt.attrs, err, tt.ok)
		}
	}
	if err := validateErr(route, response{status: 400, header: h, body: []byte(`{"errors":[{"id":"x"}]}`)}); err == nil {
		t.Error("an error without code, title and detail passed")
	}
}

func validate(t *testing.T, route *routers.Route, r response) {
	t.Helper()
	if err := validateErr(route, r); err != nil {
		body := r.body
		if len(body) > 2000 {
			body = body[:2000]
		}
		t.Fatalf("response does not match the spec: %v\n%s", err, body)
	}
}

func validateErr(route *routers.Route, r response) error {
	req, _ := http.NewRequest(http.MethodGet, "https://a.klaviyo.com/api/profiles", nil)
	input := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, Route: route, PathParams: map[string]string{}, QueryParams: url.Values{}},
		Status:                 r.status,
		Header:                 r.header,
		Body:                   io.NopCloser(bytes.NewReader(r.body)),
		Options:                &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	return openapi3filter.ValidateResponse(context.Background(), input)
}
