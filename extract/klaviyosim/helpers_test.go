package klaviyosim

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"testing"
	"time"
)

const testKey = "pk_test"

func newSim(t testing.TB, cfg Config) *Server {
	t.Helper()
	if cfg.Unlimited == false && cfg.Burst == (Limit{}) {
		cfg.Unlimited = true // most tests are not about the budget
	}
	s, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// call is one request; zero fields mean the usual values.
type call struct {
	path     string // default /api/profiles
	query    url.Values
	rawQuery string // used verbatim when set
	url      string // a full URL (links.next), overrides path and query
	key      string // default testKey; "-" sends no Authorization header
	revision string // default 2026-07-15; "-" sends none
	header   http.Header
	method   string
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func do(t testing.TB, s *Server, c call) response {
	t.Helper()
	u := c.url
	if u == "" {
		path := c.path
		if path == "" {
			path = "/api/profiles"
		}
		u = s.URL() + path
		if c.rawQuery != "" {
			u += "?" + c.rawQuery
		} else if len(c.query) > 0 {
			u += "?" + c.query.Encode()
		}
	}
	method := c.method
	if method == "" {
		method = http.MethodGet
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	switch c.key {
	case "":
		req.Header.Set("Authorization", "Klaviyo-API-Key "+testKey)
	case "-":
	default:
		req.Header.Set("Authorization", "Klaviyo-API-Key "+c.key)
	}
	switch c.revision {
	case "":
		req.Header.Set("revision", "2026-07-15")
	case "-":
	default:
		req.Header.Set("revision", c.revision)
	}
	for k, vs := range c.header {
		req.Header[k] = vs
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s: %v", u, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read %s: %v", u, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: body}
}

type wirePage struct {
	Data     []json.RawMessage `json:"data"`
	Included []json.RawMessage `json:"included"`
	Links    struct {
		Self string `json:"self"`
		Next string `json:"next"`
		Prev string `json:"prev"`
	} `json:"links"`
}

type wireRecord struct {
	Type       string `json:"type"`
	ID         string `json:"id"`
	Attributes struct {
		Email   *string `json:"email"`
		Created string  `json:"created"`
		Updated string  `json:"updated"`
	} `json:"attributes"`
	Relationships map[string]struct {
		Data  []struct{ Type, ID string }    `json:"data"`
		Links struct{ Self, Related string } `json:"links"`
	} `json:"relationships"`
}

func getPage(t testing.TB, s *Server, c call) wirePage {
	t.Helper()
	r := do(t, s, c)
	if r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	var p wirePage
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatalf("decode page: %v\n%s", err, r.body)
	}
	return p
}

func decodeRecord(t testing.TB, raw json.RawMessage) wireRecord {
	t.Helper()
	var r wireRecord
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatalf("decode record: %v", err)
	}
	return r
}

// walk follows links.next from the first request and returns every record.
func walk(t testing.TB, s *Server, c call) []wireRecord {
	t.Helper()
	var out []wireRecord
	for range 100000 {
		r := do(t, s, c)
		if r.status != http.StatusOK {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
		var p struct {
			Data  []wireRecord `json:"data"`
			Links struct {
				Next string `json:"next"`
			} `json:"links"`
		}
		if err := json.Unmarshal(r.body, &p); err != nil {
			t.Fatalf("decode page: %v", err)
		}
		out = append(out, p.Data...)
		if p.Links.Next == "" {
			return out
		}
		c = call{url: p.Links.Next, key: c.key, revision: c.revision}
	}
	t.Fatal("walk did not end")
	return nil
}

func ids(recs []wireRecord) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.ID
	}
	return out
}

type apiErrorBody struct {
	Errors []struct {
		ID     string `json:"id"`
		Status int    `json:"status"`
		Code   string `json:"code"`
		Title  string `json:"title"`
		Detail string `json:"detail"`
		Source struct {
			Parameter string `json:"parameter"`
			Pointer   string `json:"pointer"`
		} `json:"source"`
	} `json:"errors"`
}

func decodeError(t testing.TB, r response) apiErrorBody {
	t.Helper()
	var e apiErrorBody
	if err := json.Unmarshal(r.body, &e); err != nil || len(e.Errors) != 1 {
		t.Fatalf("not a JSON:API error (%v): %s", err, r.body)
	}
	if e.Errors[0].ID == "" || e.Errors[0].Code == "" || e.Errors[0].Title == "" || e.Errors[0].Detail == "" {
		t.Fatalf("error lacks a required member: %s", r.body)
	}
	return e
}

func q(kv ...string) url.Values {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	return v
}

// lean trims records to what pagination tests look at, which keeps the
// suites fast under -race without changing the paging being tested.
const lean = "email,created,updated"

func rfc(t time.Time) string { return t.UTC().Format(time.RFC3339) }
