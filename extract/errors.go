package extract

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// ErrForeignNext is returned by Walk when a response's links.next points to
// another scheme or host than the base URL. The link is not followed, so the
// API key is never sent there.
var ErrForeignNext = errors.New("links.next points to a foreign host")

// ErrCursorLoop is returned by Walk when links.next repeats a cursor already
// followed in the same chain, which would otherwise be followed forever.
var ErrCursorLoop = errors.New("links.next repeats a cursor (pagination loop)")

// APIError is a response the client does not retry (400, 401, 403, 404,
// 410, …), or the last response of a fetch that ran out of retries. Fields
// come from the first JSON:API error object of the body, when there is one.
type APIError struct {
	Status    int
	Code      string
	Title     string
	Detail    string
	Pointer   string // source.pointer
	Parameter string // source.parameter
	ErrorID   string // errors[0].id
	RequestID string // from a request-id response header, if any
	Revision  string // the revision the request was sent with
	Path      string // request path and query (never carries the key)
	// Errors holds every error object of the body (the first is above).
	Errors []APIErrorItem
}

// APIErrorItem is one JSON:API error object.
type APIErrorItem struct {
	ID, Code, Title, Detail, Pointer, Parameter string
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "klaviyo: %d %s", e.Status, http.StatusText(e.Status))
	if e.Code != "" {
		fmt.Fprintf(&b, " (%s)", e.Code)
	}
	switch {
	case e.Title != "" && e.Detail != "" && !strings.HasPrefix(strings.TrimSuffix(e.Detail, "."), strings.TrimSuffix(e.Title, ".")):
		fmt.Fprintf(&b, ": %s: %s", e.Title, e.Detail)
	case e.Detail != "":
		fmt.Fprintf(&b, ": %s", e.Detail)
	case e.Title != "":
		fmt.Fprintf(&b, ": %s", e.Title)
	}
	if e.Parameter != "" {
		fmt.Fprintf(&b, " [parameter %s]", e.Parameter)
	} else if e.Pointer != "" {
		fmt.Fprintf(&b, " [pointer %s]", e.Pointer)
	}
	if hint := e.hint(); hint != "" {
		b.WriteString("; ")
		b.WriteString(hint)
	}
	if e.RequestID != "" {
		fmt.Fprintf(&b, " (request id %s)", e.RequestID)
	}
	return b.String()
}

func (e *APIError) hint() string {
	switch {
	case e.Status == http.StatusUnauthorized || e.authCode():
		return "the API key was not accepted: check --api-key (a private key with the profiles:read scope)"
	case e.Status == http.StatusForbidden:
		return "the API key lacks the profiles:read scope: create a private key with profiles:read"
	case e.Status == http.StatusGone:
		return fmt.Sprintf("revision %q is retired or the endpoint is gone: change --revision", e.Revision)
	case e.Status == http.StatusBadRequest && e.namesRevision():
		return fmt.Sprintf("revision %q is not accepted: change --revision", e.Revision)
	case e.Status == http.StatusNotFound:
		return "check --base-url"
	}
	return ""
}

func (e *APIError) authCode() bool {
	switch e.Code {
	case "not_authenticated", "authentication_failed", "invalid_api_key":
		return true
	}
	return false
}

func (e *APIError) namesRevision() bool {
	for _, s := range []string{e.Parameter, e.Pointer, e.Detail, e.Title, e.Code} {
		if strings.Contains(strings.ToLower(s), "revision") {
			return true
		}
	}
	return false
}

// cursorRejected reports whether a 400 is about page[cursor] (expired or
// invalid), which Walk answers by restarting the slice.
func (e *APIError) cursorRejected() bool {
	if e.Status != http.StatusBadRequest {
		return false
	}
	if strings.EqualFold(e.Parameter, "page[cursor]") || strings.Contains(e.Pointer, "cursor") {
		return true
	}
	return strings.Contains(strings.ToLower(e.Detail), "cursor") || strings.Contains(strings.ToLower(e.Title), "cursor")
}

// errorBody is the lenient shape of a JSON:API error document: status may be
// a number or a string, unknown keys are ignored.
type errorBody struct {
	Errors []struct {
		ID     json.RawMessage `json:"id"`
		Code   json.RawMessage `json:"code"`
		Title  json.RawMessage `json:"title"`
		Detail json.RawMessage `json:"detail"`
		Source struct {
			Pointer   json.RawMessage `json:"pointer"`
			Parameter json.RawMessage `json:"parameter"`
		} `json:"source"`
	} `json:"errors"`
}

// newAPIError builds the error for a response; key is removed from any text
// the server echoed back.
func newAPIError(resp *http.Response, body []byte, revision, key string) *APIError {
	e := &APIError{Status: resp.StatusCode, Revision: revision}
	if resp.Request != nil && resp.Request.URL != nil {
		e.Path = resp.Request.URL.RequestURI()
	}
	for _, h := range []string{"X-Request-Id", "X-Klaviyo-Request-Id", "Request-Id", "X-Amzn-Requestid", "Cf-Ray"} {
		if v := resp.Header.Get(h); v != "" {
			e.RequestID = redact(v, key)
			break
		}
	}
	var eb errorBody
	if json.Unmarshal(body, &eb) == nil {
		for _, it := range eb.Errors {
			e.Errors = append(e.Errors, APIErrorItem{
				ID:        redact(lenientString(it.ID), key),
				Code:      redact(lenientString(it.Code), key),
				Title:     redact(lenientString(it.Title), key),
				Detail:    redact(lenientString(it.Detail), key),
				Pointer:   redact(lenientString(it.Source.Pointer), key),
				Parameter: redact(lenientString(it.Source.Parameter), key),
			})
		}
	}
	if len(e.Errors) > 0 {
		f := e.Errors[0]
		e.ErrorID, e.Code, e.Title, e.Detail, e.Pointer, e.Parameter = f.ID, f.Code, f.Title, f.Detail, f.Pointer, f.Parameter
	} else if s := strings.TrimSpace(string(body)); s != "" && len(s) < 200 && !strings.ContainsAny(s, "<{") {
		e.Detail = redact(s, key)
	}
	return e
}

// lenientString reads a JSON string, number or bool as text.
func lenientString(raw json.RawMessage) string {
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	if _, err := strconv.ParseFloat(string(raw), 64); err == nil || string(raw) == "true" || string(raw) == "false" {
		return string(raw)
	}
	return ""
}

func redact(s, key string) string {
	if key == "" || !strings.Contains(s, key) {
		return s
	}
	return strings.ReplaceAll(s, key, "[redacted]")
}
