package klaviyosim

import (
	"net/http"
	"strconv"
)

// apiError is one JSON:API error object, as the API writes it:
// {"errors":[{"id","status","code","title","detail","source":{...}}]}.
type apiError struct {
	status    int
	code      string
	title     string
	detail    string
	parameter string // source.parameter
	pointer   string // source.pointer
}

func invalidParam(param, detail string) *apiError {
	return &apiError{status: http.StatusBadRequest, code: "invalid", title: "Invalid input.", detail: detail, parameter: param}
}

func errNotAuthenticated() *apiError {
	return &apiError{status: http.StatusUnauthorized, code: "not_authenticated",
		title: "Authentication credentials were not provided.", detail: "Missing or invalid authorization scheme. Please use Klaviyo-API-Key."}
}

func errAuthFailed() *apiError {
	return &apiError{status: http.StatusUnauthorized, code: "authentication_failed",
		title: "Incorrect authentication credentials.", detail: "Incorrect authentication credentials."}
}

func errPermission() *apiError {
	return &apiError{status: http.StatusForbidden, code: "permission_denied",
		title:  "You do not have permission to perform this action.",
		detail: "You do not have permission to perform this action. This API key is missing the profiles:read scope."}
}

func errThrottled(retryAfter int) *apiError {
	unit := " seconds."
	if retryAfter == 1 {
		unit = " second."
	}
	return &apiError{status: http.StatusTooManyRequests, code: "throttled", title: "Request was throttled.",
		detail: "Request was throttled. Expected available in " + strconv.Itoa(retryAfter) + unit}
}

func errServer(status int) *apiError {
	e := &apiError{status: status}
	switch status {
	case http.StatusBadGateway:
		e.code, e.title = "bad_gateway", "Bad gateway."
	case http.StatusServiceUnavailable:
		e.code, e.title = "service_unavailable", "Service unavailable."
	case http.StatusGatewayTimeout:
		e.code, e.title = "gateway_timeout", "Gateway timeout."
	default:
		e.code, e.title = "error", "A server error occurred."
	}
	e.detail = e.title + " Please try again later."
	return e
}

func errNotFound(path string) *apiError {
	return &apiError{status: http.StatusNotFound, code: "not_found", title: "Not found.",
		detail: "The path " + path + " could not be found."}
}

func errMethod(method string) *apiError {
	return &apiError{status: http.StatusMethodNotAllowed, code: "method_not_allowed",
		title: "Method not allowed.", detail: "Method \"" + method + "\" not allowed."}
}

// appendJSON writes the whole error document.
func (e *apiError) appendJSON(b []byte, id string) []byte {
	b = append(b, `{"errors":[{"id":`...)
	b = appendString(b, id)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(e.status), 10)
	b = appendStringField(b, "code", e.code)
	b = appendStringField(b, "title", e.title)
	b = appendStringField(b, "detail", e.detail)
	if e.parameter != "" || e.pointer != "" {
		b = append(b, `,"source":{`...)
		if e.parameter != "" {
			b = appendStringField(b, "parameter", e.parameter)
		}
		if e.pointer != "" {
			b = appendStringField(b, "pointer", e.pointer)
		}
		b = append(b, '}')
	}
	return append(b, `,"links":{},"meta":{}}]}`...)
}
