package scripttest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"statscache/luaapi"
)

var _ luaapi.Services = (*Fixtures)(nil)

// Fixtures stand in for the HTTP services of a queue script offline: the
// answers recorded in examples/NAME.services.json, by service name:
//
//	{"koji": [
//	  {"method": "POST", "body_contains": "<int>612324</int>", "body_file": "build-durations/612324.xml"},
//	  {"method": "POST", "status": 503, "body": "busy"}
//	]}
//
// A request gets the first answer whose method, path and body_contains
// (each optional) match it. The answer's status defaults to 200; its body
// is body (a JSON string is sent as its text, any other JSON value as JSON)
// or the contents of body_file, relative to the examples folder. A request
// that no answer matches fails the work item, naming the request.
type Fixtures struct {
	file    string
	answers map[string][]Answer
}

// Answer is one recorded answer of a service.
type Answer struct {
	Method       string          `json:"method"`
	Path         string          `json:"path"`
	BodyContains string          `json:"body_contains"`
	Status       int             `json:"status"`
	Body         json.RawMessage `json:"body"`
	BodyFile     string          `json:"body_file"`
	body         []byte
}

// ServicesPath returns where the recorded service answers of a script live.
func ServicesPath(script string) string {
	in, _ := ExamplePaths(script)
	return strings.TrimSuffix(in, ".jsonl") + ".services.json"
}

// LoadFixtures reads a services file; a file that does not exist gives
// fixtures with no services.
func LoadFixtures(path string) (*Fixtures, error) {
	f := &Fixtures{file: path, answers: map[string][]Answer{}}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return f, nil
	}
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f.answers); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	for name, as := range f.answers {
		for i := range as {
			a := &as[i]
			if a.Status == 0 {
				a.Status = 200
			}
			switch {
			case a.BodyFile != "" && len(a.Body) > 0:
				return nil, fmt.Errorf("%s: %s[%d]: give body or body_file, not both", path, name, i)
			case a.BodyFile != "":
				if a.body, err = os.ReadFile(filepath.Join(filepath.Dir(path), a.BodyFile)); err != nil {
					return nil, fmt.Errorf("%s: %s[%d]: %w", path, name, i, err)
				}
			case len(a.Body) > 0:
				var s string
				if json.Unmarshal(a.Body, &s) == nil {
					a.body = []byte(s)
				} else {
					a.body = a.Body
				}
			}
		}
	}
	return f, nil
}

// Has reports whether the file has answers for the service.
func (f *Fixtures) Has(name string) bool {
	_, ok := f.answers[name]
	return ok
}

// Hint says where a missing service's answers go.
func (f *Fixtures) Hint(name string) string {
	return fmt.Sprintf("record its answers in %s", f.file)
}

// Do answers a request from the recorded answers.
func (f *Fixtures) Do(ctx context.Context, service string, req *luaapi.HTTPRequest) (*luaapi.HTTPResponse, error) {
	for _, a := range f.answers[service] {
		if (a.Method == "" || strings.EqualFold(a.Method, req.Method)) && (a.Path == "" || a.Path == req.Path) &&
			bytes.Contains(req.Body, []byte(a.BodyContains)) {
			return &luaapi.HTTPResponse{Status: a.Status, Body: a.body}, nil
		}
	}
	body := string(req.Body)
	if len(body) > 200 {
		body = body[:200] + "..."
	}
	return nil, fmt.Errorf("no answer in %s matches %s %s %q with body %q: %w", f.file, req.Method, service, req.Path, body, luaapi.ErrBadRequest)
}
