package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
)

// apiError is an error a handler answers with a specific status and a JSON
// body. Handlers return it for everything the client can fix (bad input,
// unknown model); any other error is an internal failure, answered 500 with
// a generic message and logged with its details.
type apiError struct {
	status int
	msg    string
	param  string // the offending query parameter (400)
	model  string // the ident asked for (404)
}

func (e *apiError) Error() string { return e.msg }

// errorBody is the JSON body of every error response, so that clients can
// always parse an error the same way, whatever went wrong.
type errorBody struct {
	Error     string `json:"error"`
	Parameter string `json:"parameter,omitempty"`
	Model     string `json:"model,omitempty"`
}

// maxEcho bounds how much of a bad value an error message repeats.
const maxEcho = 64

// echo quotes a client-supplied value for an error message, shortened so a
// huge parameter does not come back whole.
func echo(v string) string {
	if len(v) > maxEcho {
		v = v[:maxEcho] + "..."
	}
	return fmt.Sprintf("%q", v)
}

// badParam is a 400 naming the query parameter at fault.
func badParam(name, format string, args ...any) *apiError {
	return &apiError{
		status: http.StatusBadRequest,
		msg:    fmt.Sprintf("parameter %s: %s", name, fmt.Sprintf(format, args...)),
		param:  name,
	}
}

// noModel is the 404 of an unknown ident.
func noModel(ident string) *apiError {
	return &apiError{status: http.StatusNotFound, msg: fmt.Sprintf("no such model %q", ident), model: ident}
}

// fail answers a request whose handler returned err, and logs what the
// client is not told.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	switch {
	case errors.As(err, &ae):
		s.log.DebugContext(r.Context(), "api: client error", "method", r.Method, "url", r.URL.String(),
			"status", ae.status, "error", ae.msg)
	case r.Context().Err() != nil && errors.Is(err, context.Canceled):
		// The client went away; nobody will read the answer.
		s.log.DebugContext(r.Context(), "api: request cancelled", "method", r.Method, "url", r.URL.String())
		ae = &apiError{status: http.StatusServiceUnavailable, msg: "request cancelled"}
	default:
		s.log.ErrorContext(r.Context(), "api: internal error", "method", r.Method, "url", r.URL.String(), "error", err)
		ae = &apiError{status: http.StatusInternalServerError, msg: "internal error"}
	}
	s.sendError(w, ae)
}

// sendError writes an apiError as JSON.
func (s *Server) sendError(w http.ResponseWriter, ae *apiError) {
	body, err := marshalJSON(errorBody{Error: ae.msg, Parameter: ae.param, Model: ae.model})
	if err != nil { // cannot happen: the body is three strings
		body = []byte(`{"error":"internal error"}`)
	}
	send(w, ae.status, contentTypeJSON, append(body, '\n'))
}
