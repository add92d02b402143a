package klaviyosim

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseFilter(t *testing.T) {
	utc := func(s string) int64 {
		tm, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return tm.Unix()
	}
	tests := []struct {
		in      string
		lo, hi  int64 // created bounds, 0 = unbounded
		wantErr string
	}{
		{in: "greater-than(created,2023-06-05T14:49:54Z)", lo: utc("2023-06-05T14:49:55Z")},
		{in: "less-than(created,2023-06-05T14:49:54Z)", hi: utc("2023-06-05T14:49:53Z")},
		{in: "less-than(created,2023-06-05T14:49:54.5Z)", hi: utc("2023-06-05T14:49:54Z")},
		{in: "greater-than(created,2023-06-05T14:49:54.000001Z)", lo: utc("2023-06-05T14:49:55Z")},
		{in: "greater-than(created,2023-06-05T16:49:54+02:00)", lo: utc("2023-06-05T14:49:55Z")},
		{in: "greater-than(created,2023-06-05T09:49:54-0500)", lo: utc("2023-06-05T14:49:55Z")},
		{in: "greater-than(created,2023-06-05 14:49:54Z)", lo: utc("2023-06-05T14:49:55Z")},
		{in: "greater-than(created,2023-06-05T14:49:54)", lo: utc("2023-06-05T14:49:55Z")},
		{in: "greater-than(created,2023-06-05T14:49)", lo: utc("2023-06-05T14:49:01Z")},
		{in: "greater-than(created,2023-06-05)", lo: utc("2023-06-05T00:00:01Z")},
		{in: "and(greater-than(created,2023-01-01T00:00:00Z),less-than(created,2023-02-01T00:00:00Z))",
			lo: utc("2023-01-01T00:00:01Z"), hi: utc("2023-01-31T23:59:59Z")},
		{in: "greater-than(created,2023-01-01T00:00:00Z), less-than(created,2023-02-01T00:00:00Z)",
			lo: utc("2023-01-01T00:00:01Z"), hi: utc("2023-01-31T23:59:59Z")},
		{in: `equals(email,"a@b.c")`},
		{in: `equals(email,'it\'s@b.c')`},
		{in: `any(id,["01A","01B"])`},
		{in: `equals(_kx,"x")`},
		{in: "", wantErr: "empty"},
		{in: "greater-than(created,2023-06-05T14:49:54 00:00)", wantErr: "'+' in a query string"},
		{in: "greater-or-equal(created,2023-06-05T14:49:54Z)", wantErr: "not allowed for field 'created'"},
		{in: "equals(created,2023-06-05T14:49:54Z)", wantErr: "not allowed for field 'created'"},
		{in: `greater-than(created,"2023-06-05T14:49:54Z")`, wantErr: "unquoted datetime"},
		{in: "greater-than(email,2023-06-05T14:49:54Z)", wantErr: "not allowed for field 'email'"},
		{in: "equals(email,a@b.c)", wantErr: "must be quoted"},
		{in: `equals(anonymous_id,"x")`, wantErr: "not a valid field"},
		{in: `or(equals(email,"a"),equals(email,"b"))`, wantErr: "not supported"},
		{in: `frobnicate(email,"a")`, wantErr: "not a valid filter operator"},
		{in: `equals(email,"a"`, wantErr: "expected ',' or ')'"},
		{in: `equals(email,"a)`, wantErr: "unterminated"},
		{in: "greater-than(created,2023-13-05T14:49:54Z)", wantErr: "out of range"},
		{in: "greater-than(created,2023-02-30T14:49:54Z)", wantErr: "no such day"},
		{in: "greater-than(created,2023-06-05t14:49:54z)", wantErr: "invalid datetime"},
		{in: "greater-than(created,1685976594)", wantErr: "unquoted datetime"},
		{in: `any(id,[])`, wantErr: "at least one"},
		{in: `equals(email,"a","b")`, wantErr: "exactly one value"},
		{in: `equals(subscriptions.email.marketing.suppression.reason,"HARD_BOUNCE")`, wantErr: "not implemented"},
		{in: strings.Repeat("and(", 12) + `equals(id,"x")` + strings.Repeat(")", 12), wantErr: "deeper"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			exprs, err := parseFilter(tt.in)
			var f *filterSpec
			if err == nil {
				f, err = compileFilter(exprs)
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.lo != 0 && f.created.lo != tt.lo {
				t.Errorf("lo = %s, want %s", time.Unix(f.created.lo, 0).UTC(), time.Unix(tt.lo, 0).UTC())
			}
			if tt.hi != 0 && f.created.hi != tt.hi {
				t.Errorf("hi = %s, want %s", time.Unix(f.created.hi, 0).UTC(), time.Unix(tt.hi, 0).UTC())
			}
		})
	}
}

// FuzzParseFilter: parsing and compiling any input must not panic, and an
// accepted filter must be usable on a record.
func FuzzParseFilter(f *testing.F) {
	for _, s := range []string{
		"greater-than(created,2023-06-05T14:49:54Z)",
		"and(greater-than(updated,2023-06-05 14:49:54.123+02:00),less-than(updated,2024-01-01))",
		`any(email,["a@b.c",'d@e.f'])`, `equals(id,"01GDDKASAP8TKDDA2GRZDSVP4H")`,
		"greater-than(created,2023-06-05T14:49:54 00:00)", `not(equals(email,"x"))`, "equals(x,[1,true,null,-2.5e3])",
	} {
		f.Add(s)
	}
	rec := newRecord(1, 0, 1700000000, 1700000000)
	f.Fuzz(func(t *testing.T, s string) {
		exprs, err := parseFilter(s)
		if err != nil {
			if !strings.Contains(err.Error(), "position") {
				t.Fatalf("error without position: %v", err)
			}
			return
		}
		spec, err := compileFilter(exprs)
		if err != nil {
			return
		}
		var scratch []byte
		spec.match(&rec, &scratch)
		spec.empty()
	})
}

func TestFilterWindowsOverHTTP(t *testing.T) {
	s := newSim(t, Config{Profiles: 4000, Seed: 9})
	all := s.Profiles()
	byCreated := slices.Clone(all)
	slices.SortFunc(byCreated, func(a, b Profile) int { return a.Created.Compare(b.Created) })
	a, b := byCreated[1000].Created, byCreated[1900].Created
	expect := func(keep func(Profile) bool, sort string) []string {
		var sel []Profile
		for _, p := range all {
			if keep(p) {
				sel = append(sel, p)
			}
		}
		return expectedOrder(sel, sort)
	}
	inCreated := func(p Profile) bool { return p.Created.After(a) && p.Created.Before(b) }
	ua, ub := all[10].Updated, all[10].Updated.Add(90*24*time.Hour)
	inUpdated := func(p Profile) bool { return p.Updated.After(ua) && p.Updated.Before(ub) }
	var withPlus, withPhone, withExternal Profile
	for _, p := range all {
		if strings.Contains(p.Email.Value, "+") {
			withPlus = p
		}
		if p.PhoneNumber.Valid {
			withPhone = p
		}
		if p.ExternalID.Valid {
			withExternal = p
		}
	}
	if withPlus.ID == "" {
		t.Fatal("no e-mail with '+' in the data set")
	}
	window := fmt.Sprintf("greater-than(created,%s),less-than(created,%s)", rfc(a), rfc(b))
	tests := []struct {
		name, sort, filter string
		want               []string
	}{
		{"created window", "created", window, expect(inCreated, "created")},
		{"created window desc", "-created", window, expect(inCreated, "-created")},
		{"created window by id", "id", window, expect(inCreated, "id")},
		{"created window with and()", "created", "and(" + window + ")", expect(inCreated, "created")},
		{"created window with offsets", "created", fmt.Sprintf("greater-than(created,%s),less-than(created,%s)",
			a.In(time.FixedZone("", 2*3600)).Format(time.RFC3339), b.In(time.FixedZone("", -5*3600)).Format(time.RFC3339)), expect(inCreated, "created")},
		{"updated window", "updated", fmt.Sprintf("greater-than(updated,%s),less-than(updated,%s)", rfc(ua), rfc(ub)), expect(inUpdated, "updated")},
		{"updated window by email", "email", fmt.Sprintf("greater-than(updated,%s),less-than(updated,%s)", rfc(ua), rfc(ub)), expect(inUpdated, "email")},
		{"email with plus", "id", fmt.Sprintf("equals(email,%q)", withPlus.Email.Value), []string{withPlus.ID}},
		{"phone", "id", fmt.Sprintf("equals(phone_number,'%s')", withPhone.PhoneNumber.Value), expect(func(p Profile) bool { return p.PhoneNumber == withPhone.PhoneNumber }, "id")},
		{"external id", "id", fmt.Sprintf("equals(external_id,%q)", withExternal.ExternalID.Value), expect(func(p Profile) bool { return p.ExternalID == withExternal.ExternalID }, "id")},
		{"any id", "-created", fmt.Sprintf(`any(id,["%s","%s","%s","nope"])`, all[3].ID, all[1].ID, all[2].ID), expect(func(p Profile) bool { return p.ID == all[1].ID || p.ID == all[2].ID || p.ID == all[3].ID }, "-created")},
		{"any id and window", "created", fmt.Sprintf(`any(id,["%s","%s"]),%s`, byCreated[1500].ID, byCreated[10].ID, window), []string{byCreated[1500].ID}},
		{"future bound accepted", "created", "less-than(created,2099-01-01T00:00:00Z)", expect(func(Profile) bool { return true }, "created")},
		{"_kx matches nothing here", "id", `equals(_kx,"abc")`, nil},
		{"contradiction", "id", `equals(id,"a"),equals(id,"b")`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ids(walk(t, s, call{query: q("sort", tt.sort, "page[size]", "37", "filter", tt.filter, "fields[profile]", lean)}))
			if len(tt.want) > 0 && len(tt.want) < 2 && len(got) == 0 {
				t.Fatalf("no match for %s", tt.filter)
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("got %d ids, want %d", len(got), len(tt.want))
			}
		})
	}
}
