package klaviyosim

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func TestErrorResponses(t *testing.T) {
	s := newSim(t, Config{Profiles: 30, Seed: 1, NoScopeKey: "pk_noscope"})
	p := getPage(t, s, call{query: q("sort", "created", "page[size]", "5")})
	next, _ := url.Parse(p.Links.Next)
	cursor := next.Query().Get("page[cursor]")
	raw, _ := base64.StdEncoding.DecodeString(cursor)
	raw[len(raw)/2] ^= 1
	tampered := base64.StdEncoding.EncodeToString(raw)

	tests := []struct {
		name      string
		c         call
		status    int
		code      string
		parameter string
		detail    string // substring
	}{
		{name: "no auth", c: call{key: "-"}, status: 401, code: "not_authenticated"},
		{name: "wrong key", c: call{key: "pk_wrong"}, status: 401, code: "authentication_failed"},
		{name: "bearer", c: call{key: "-", header: http.Header{"Authorization": {"Bearer abc"}}}, status: 401, code: "not_authenticated"},
		{name: "no scope", c: call{key: "pk_noscope"}, status: 403, code: "permission_denied"},
		{name: "missing revision", c: call{revision: "-"}, status: 400, code: "invalid", parameter: "revision", detail: "revision"},
		{name: "unknown revision", c: call{revision: "2024-03-15"}, status: 400, code: "invalid", parameter: "revision", detail: "2024-03-15"},
		{name: "malformed revision", c: call{revision: "latest"}, status: 400, code: "invalid", detail: "latest"},
		{name: "bad suffix", c: call{revision: "2026-07-15.beta"}, status: 400, code: "invalid", detail: "2026-07-15.beta"},
		{name: "page size 0", c: call{query: q("page[size]", "0")}, status: 400, code: "invalid", parameter: "page[size]"},
		{name: "page size 101", c: call{query: q("page[size]", "101")}, status: 400, code: "invalid", parameter: "page[size]"},
		{name: "page size text", c: call{query: q("page[size]", "ten")}, status: 400, code: "invalid", parameter: "page[size]"},
		{name: "bad sort", c: call{query: q("sort", "first_name")}, status: 400, code: "invalid", parameter: "sort"},
		{name: "unknown parameter", c: call{query: q("page[sise]", "10")}, status: 400, code: "invalid", parameter: "page[sise]"},
		{name: "repeated parameter", c: call{rawQuery: "sort=id&sort=created"}, status: 400, code: "invalid", parameter: "sort"},
		{name: "malformed query", c: call{rawQuery: "filter=%zz"}, status: 400, code: "invalid"},
		{name: "filter >=", c: call{query: q("filter", "greater-or-equal(created,2024-01-01T00:00:00Z)")}, status: 400, code: "invalid", parameter: "filter", detail: "greater-or-equal"},
		{name: "raw plus in offset", c: call{rawQuery: "filter=greater-than(created,2024-01-01T00:00:00+00:00)"}, status: 400, code: "invalid", parameter: "filter"},
		{name: "encoded plus in offset is fine", c: call{rawQuery: "filter=greater-than(created,2024-01-01T00:00:00%2B00:00)"}, status: 200},
		{name: "filter unknown field", c: call{query: q("filter", `equals(first_name,"x")`)}, status: 400, code: "invalid", parameter: "filter", detail: "first_name"},
		{name: "fields unknown", c: call{query: q("fields[profile]", "email,shoe_size")}, status: 400, code: "invalid", parameter: "fields[profile]", detail: "shoe_size"},
		{name: "fields empty item", c: call{query: q("fields[profile]", "email,,created")}, status: 400, code: "invalid", parameter: "fields[profile]"},
		{name: "locale before 2024-07-15", c: call{revision: "2024-06-15", query: q("fields[profile]", "locale")}, status: 400, code: "invalid", parameter: "fields[profile]"},
		{name: "additional field unknown", c: call{query: q("additional-fields[profile]", "everything")}, status: 400, code: "invalid", parameter: "additional-fields[profile]"},
		{name: "subscriptions before 2023-10-15", c: call{revision: "2023-09-15", query: q("additional-fields[profile]", "subscriptions")}, status: 400, code: "invalid", parameter: "additional-fields[profile]"},
		{name: "include on 2026-07-15", c: call{query: q("include", "lists")}, status: 400, code: "invalid", parameter: "include", detail: "lists"},
		{name: "include before 2025-04-15", c: call{revision: "2025-01-15", query: q("include", "lists")}, status: 400, code: "invalid", parameter: "include"},
		{name: "tampered cursor", c: call{query: q("sort", "created", "page[size]", "5", "page[cursor]", tampered)}, status: 400, code: "invalid", parameter: "page[cursor]", detail: "cursor"},
		{name: "garbage cursor", c: call{query: q("sort", "created", "page[cursor]", "not-base64!")}, status: 400, code: "invalid", parameter: "page[cursor]", detail: "cursor"},
		{name: "cursor for another sort", c: call{query: q("sort", "-created", "page[size]", "5", "page[cursor]", cursor)}, status: 400, code: "invalid", parameter: "page[cursor]", detail: "sort"},
		{name: "wrong path", c: call{path: "/api/profile"}, status: 404, code: "not_found"},
		{name: "wrong method", c: call{method: http.MethodPost}, status: 405, code: "method_not_allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := do(t, s, tt.c)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
			if tt.status == 200 {
				return
			}
			if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/") || !strings.Contains(ct, "json") {
				t.Errorf("Content-Type %q", ct)
			}
			e := decodeError(t, r).Errors[0]
			if e.Status != tt.status || e.Code != tt.code {
				t.Errorf("status/code %d/%s, want %d/%s", e.Status, e.Code, tt.status, tt.code)
			}
			if tt.parameter != "" && e.Source.Parameter != tt.parameter {
				t.Errorf("source.parameter %q, want %q", e.Source.Parameter, tt.parameter)
			}
			if !strings.Contains(e.Detail, tt.detail) {
				t.Errorf("detail %q lacks %q", e.Detail, tt.detail)
			}
			if strings.Contains(string(r.body), "pk_") {
				t.Errorf("error body mentions a key: %s", r.body)
			}
		})
	}
}

func TestConfigValidation(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"negative profiles", Config{Profiles: -1}},
		{"jitter above 1", Config{Jitter: 1.5}},
		{"half a limit", Config{Burst: Limit{N: 5}}},
		{"fault rate", Config{FaultRate: 2}},
		{"unknown fault", Config{Faults: []Fault{"boom"}}},
		{"no-scope key equals key", Config{APIKey: "k", NoScopeKey: "k"}},
		{"start after end", Config{Start: DefaultEnd, End: DefaultEnd.AddDate(-1, 0, 0)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.cfg); err == nil {
				t.Fatal("New accepted an invalid config")
			}
		})
	}
}
