package reliability

import (
	"fmt"
	"strings"
)

// brokenRecords returns 100 data elements, each broken in a different way
// (plus, for comparison, nothing that is fine). Each is valid JSON text,
// so the page holding them is valid: what is broken is the record.
func brokenRecords() []string {
	const created = `"created":"2024-01-02T03:04:05+00:00"`
	attrs := func(extra string) string {
		a := `"email":"x@example.com","first_name":"F",` + created + `,"updated":"2024-01-02T03:04:05+00:00","location":{"city":"C","latitude":"1.5"},"properties":{"k":"v"}`
		if extra != "" {
			a += "," + extra
		}
		return a
	}
	rec := func(i int, attrsJSON string, extra string) string {
		s := fmt.Sprintf(`{"type":"profile","id":"broken-%03d","attributes":{%s}`, i, attrsJSON)
		if extra != "" {
			s += "," + extra
		}
		return s + "}"
	}
	// setAttr replaces one attribute of the template (or adds it).
	setAttr := func(name, value string) string {
		base := map[string]string{
			"email": `"x@example.com"`, "first_name": `"F"`, "created": `"2024-01-02T03:04:05+00:00"`,
			"updated": `"2024-01-02T03:04:05+00:00"`, "location": `{"city":"C","latitude":"1.5"}`, "properties": `{"k":"v"}`,
		}
		order := []string{"email", "first_name", "created", "updated", "location", "properties"}
		if _, ok := base[name]; !ok {
			order = append(order, name)
		}
		base[name] = value
		var parts []string
		for _, k := range order {
			if v := base[k]; v != "\x00omit" {
				parts = append(parts, fmt.Sprintf("%q:%s", k, v))
			}
		}
		return strings.Join(parts, ",")
	}
	setLoc := func(name, value string) string {
		return setAttr("location", fmt.Sprintf(`{"city":"C",%q:%s}`, name, value))
	}
	var out []string
	add := func(s string) { out = append(out, s) }
	n := func() int { return len(out) + 1 }

	// Not a profile object at all.
	for _, s := range []string{`42`, `"a string"`, `null`, `true`, `[]`, `[{"type":"profile","id":"in-an-array"}]`, `{}`} {
		add(s)
	}
	// The id.
	add(`{"type":"profile","attributes":{` + attrs("") + `}}`)
	for _, id := range []string{`null`, `42`, `{"v":"x"}`, `["x"]`, `""`, "\"bad-utf8-\xff\xfe\"", `"lone-\ud800"`, `"nul-\u0000-id"`,
		`"` + strings.Repeat("long-id-", 1250) + `"`, `"日本語 id ✓"`} {
		add(`{"type":"profile","id":` + id + `,"attributes":{` + attrs("") + `}}`)
	}
	add(fmt.Sprintf(`{"type":"profile","id":"broken-%03d","id":"broken-%03d-again","attributes":{%s}}`, n(), n(), attrs("")))
	// The type.
	for _, typ := range []string{`"list"`, `null`, `7`, `"Profile"`} {
		add(fmt.Sprintf(`{"type":%s,"id":"broken-%03d","attributes":{%s}}`, typ, n(), attrs("")))
	}
	add(fmt.Sprintf(`{"id":"broken-%03d","attributes":{%s}}`, n(), attrs("")))
	// attributes, location and relationships of the wrong kind.
	for _, a := range []string{`null`, `"x"`, `[1]`, `3`} {
		add(fmt.Sprintf(`{"type":"profile","id":"broken-%03d","attributes":%s}`, n(), a))
	}
	add(fmt.Sprintf(`{"type":"profile","id":"broken-%03d"}`, n()))
	for _, l := range []string{`"x"`, `[1,2]`, `4`} {
		add(rec(n(), setAttr("location", l), ""))
	}
	for _, r := range []string{`"x"`, `[1]`, `{"lists":"x"}`, `{"lists":{"data":7}}`, `{"lists":{"data":[1,2]}}`,
		`{"lists":{"data":[{"type":1,"id":"x"}]}}`, `{"lists":{"data":[{"type":"list"}]}}`, `{"lists":{"data":{"type":"list","id":"single"}}}`,
		`{"lists":{"data":[{"type":"list","id":"dup"},{"type":"list","id":"dup"}]}}`} {
		add(rec(n(), attrs(""), `"relationships":`+r))
	}
	// Members twice, unknown members, other top-level members.
	add(rec(n(), attrs(`"email":"second@example.com"`), ""))
	add(fmt.Sprintf(`{"type":"profile","id":"broken-%03d","attributes":{%s},"attributes":{%s}}`, n(), attrs(""), attrs(`"title":"T"`)))
	add(rec(n(), attrs(`"favorite_color":"blue"`), ""))
	add(rec(n(), attrs(""), `"links":"not an object"`))
	add(rec(n(), attrs(""), `"meta":{"a":[1,{"b":null}]}`))
	// Every text column holding an object.
	for _, col := range []string{"email", "phone_number", "external_id", "first_name", "last_name", "organization", "locale", "title", "image"} {
		add(rec(n(), setAttr(col, `{"a":1}`), ""))
	}
	for _, col := range []string{"address1", "address2", "city", "country", "region", "zip", "timezone", "ip"} {
		add(rec(n(), setLoc(col, `{"a":1}`), ""))
	}
	// Text columns of other kinds.
	for _, v := range []string{`12345`, `true`, `["a"]`, `-0.0e-0`} {
		add(rec(n(), setAttr("email", v), ""))
	}
	add(rec(n(), setAttr("phone_number", `15005550006`), ""))
	add(rec(n(), setLoc("zip", `10001`), ""))
	// Invalid text.
	add(rec(n(), setAttr("first_name", "\"bad-\xff\xfe-utf8\""), ""))
	add(rec(n(), setAttr("first_name", `"lone-\udc00"`), ""))
	add(rec(n(), setAttr("first_name", `"nul-\u0000-char"`), ""))
	add(rec(n(), setAttr("last_name", `"`+strings.Repeat("x", 100_000)+`"`), ""))
	add(rec(n(), setAttr("email", `"\u00e9\n\t\"\\\/"`), ""))
	// Timestamps.
	for _, v := range []string{`"not a date"`, `12345`, `true`, `"2024-13-45T00:00:00Z"`, `""`, `null`, `"\u0000omit"`,
		`"2024-01-02T03:04:05.123456789Z"`, `"2024-01-02T03:04:05+05:45"`, `"2024-01-02"`, `"2024-01-02 03:04:05"`,
		`"2024-02-30T00:00:00Z"`, `{"a":1}`} {
		if v == `"\u0000omit"` {
			add(rec(n(), setAttr("created", "\x00omit"), ""))
			continue
		}
		add(rec(n(), setAttr("created", v), ""))
	}
	add(rec(n(), setAttr("updated", `"garbage"`), ""))
	add(rec(n(), setAttr("last_event_date", `{"x":1}`), ""))
	add(rec(n(), setAttr("last_event_date", `"2024-01-02T03:04:05.5-02:00"`), ""))
	// Coordinates.
	for _, v := range []string{`"not a number"`, `{"a":1}`, `1e400`, `[1,2]`, `true`, `""`, `"  12.5  "`, `-91`} {
		add(rec(n(), setLoc("latitude", v), ""))
	}
	add(rec(n(), setLoc("longitude", `"NaN"`), ""))
	// JSON columns.
	for _, v := range []string{`"x"`, `7`, `[1,2]`, `null`, `{"\u0000":"nul key"}`, `{"big":123456789012345678901234567890}`,
		"{\"bad-\xc3\":\"\xed\xa0\x80\"}", strings.Repeat(`{"d":`, 200) + `1` + strings.Repeat(`}`, 200), `{"a":1,"a":2}`} {
		add(rec(n(), setAttr("properties", v), ""))
	}
	add(rec(n(), setAttr("subscriptions", `"subscribed"`), ""))
	add(rec(n(), setAttr("predictive_analytics", `[1]`), ""))
	// Outside the window: dropped and counted, not loaded.
	add(rec(n(), setAttr("created", `"2999-01-01T00:00:00Z"`), ""))
	for len(out) < 100 {
		add(rec(n(), setAttr("title", fmt.Sprintf(`{"filler":%d}`, len(out))), ""))
	}
	return out[:100]
}
