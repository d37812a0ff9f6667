// Package kojitest is a stand-in for Koji hub's XML-RPC API, as far as the
// build-durations model uses it: the getBuild call. statscache demo serves
// it so the model has something to ask without a network, and the tests use
// it as a slow, sometimes failing service behind a work queue.
//
// It reproduces what a client of the real hub meets: every answer is an
// HTTP 200 XML-RPC methodResponse (faults included), a build it does not
// know is <nil/>, numbers come as <int> and <double>, strings are escaped,
// and the build's "extra" field is a nested struct. Options add the hub's
// latency and its occasional 503 from the proxy in front of it.
package kojitest

import (
	"encoding/xml"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Options shape the stand-in's behaviour.
type Options struct {
	// Delay is how long each answer takes (a busy hub answers in tens of
	// milliseconds to seconds).
	Delay time.Duration
	// FailEvery makes every FailEvery-th request get an HTTP 503, as the
	// real hub's proxy sends when it is overloaded; 0 never fails.
	FailEvery int
	// Logger, when set, gets a debug line per request and an info line per
	// injected failure, so a test or the demo can tell what the hub did;
	// nil discards them.
	Logger *slog.Logger
}

// Hub is the http.Handler of the stand-in.
type Hub struct {
	opts     Options
	requests atomic.Int64
	failures atomic.Int64
}

// New returns a hub.
func New(opts Options) *Hub {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Hub{opts: opts}
}

// Requests counts the requests the hub received.
func (h *Hub) Requests() int64 { return h.requests.Load() }

// Failures counts the 503s the hub sent.
func (h *Hub) Failures() int64 { return h.failures.Load() }

// BuildInfo is what the stand-in knows of a build; the tests compute
// expected results from it without going through XML.
type BuildInfo struct {
	ID           int64
	PackageName  string
	Version      string
	Release      string
	NVR          string
	Owner        string
	TaskID       int64
	StartTS      float64
	CompletionTS float64
}

var packages = []string{"kernel", "firefox", "python3", "systemd", "gcc", "glibc", "ansible", "bash", "coreutils",
	"rpm", "dnf", "gnome-shell", "libreoffice", "httpd", "nodejs", "golang", "rust", "vim", "openssl", "qemu"}

var owners = []string{"kevin", "ralph", "pingou", "bodhi", "releng", "mohanboddu", "adamwill", "ausil", "sgallagh", "jforbes"}

// Build returns the build with the given id; ok is false for a build the
// hub does not know (ids divisible by 97).
func Build(id int64) (b BuildInfo, ok bool) {
	if id%97 == 0 {
		return BuildInfo{}, false
	}
	h := fnv.New64a()
	fmt.Fprint(h, id)
	x := h.Sum64()
	b.ID = id
	b.PackageName = packages[x%uint64(len(packages))]
	b.Owner = owners[(x>>8)%uint64(len(owners))]
	b.Version = fmt.Sprintf("%d.%d.%d", 1+(x>>16)%9, (x>>20)%20, (x>>24)%10)
	b.Release = fmt.Sprintf("%d.fc%d", 1+(x>>28)%5, 38+(x>>32)%4)
	b.NVR = b.PackageName + "-" + b.Version + "-" + b.Release
	b.TaskID = 100000000 + id*3
	b.StartTS = 1.7e9 + float64(id%1000000)*60 + float64((x>>36)%1000)/1000
	b.CompletionTS = b.StartTS + 60 + float64((x>>40)%(4*3600-60))
	return b, true
}

// buildFor looks a getBuild argument up: a build id, or an NVR string
// (for which the build's id is a hash of the NVR, so the answer is stable).
func buildFor(arg value) (BuildInfo, bool) {
	if arg.isInt {
		return Build(arg.i)
	}
	h := fnv.New64a()
	io.WriteString(h, arg.s)
	id := int64(h.Sum64()>>33) + 1
	if id%97 == 0 {
		id++
	}
	b, _ := Build(id)
	b.NVR = arg.s
	return b, true
}

// ServeHTTP answers one XML-RPC request, on any path, the way the hub
// would: faults and unknown builds are HTTP 200 answers, and only the
// injected failures (Options.FailEvery) are HTTP errors.
func (h *Hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := h.requests.Add(1)
	log := h.opts.Logger.With("request", n)
	// Reading the body first lets the server notice a client that gives up
	// while the answer is delayed.
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		return
	}
	if h.opts.Delay > 0 {
		t := time.NewTimer(h.opts.Delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			log.Debug("koji stand-in: the client gave up", "err", r.Context().Err())
			return
		}
	}
	if h.opts.FailEvery > 0 && n%int64(h.opts.FailEvery) == 0 {
		h.failures.Add(1)
		log.Info("koji stand-in: injected failure", "status", http.StatusServiceUnavailable)
		http.Error(w, "503 Service Unavailable: the hub is overloaded", http.StatusServiceUnavailable)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		http.Error(w, "XML-RPC wants POST", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", "text/xml")
	method, args, err := parseCall(body)
	if err != nil {
		log.Debug("koji stand-in: fault", "err", err)
		writeFault(w, 1000, err.Error())
		return
	}
	log.Debug("koji stand-in: call", "method", method, "args", len(args))
	if method != "getBuild" {
		writeFault(w, 1000, fmt.Sprintf("Invalid method: %s", method))
		return
	}
	if len(args) != 1 || (!args[0].isInt && !args[0].isString) {
		writeFault(w, 1000, "getBuild takes one argument: a build id or an NVR")
		return
	}
	b, ok := buildFor(args[0])
	if !ok {
		io.WriteString(w, "<?xml version='1.0'?>\n<methodResponse>\n<params>\n<param>\n<value><nil/></value></param>\n</params>\n</methodResponse>\n")
		return
	}
	writeBuild(w, b)
}

func writeFault(w io.Writer, code int, msg string) {
	fmt.Fprintf(w, "<?xml version='1.0'?>\n<methodResponse>\n<fault>\n<value><struct>\n"+
		"<member>\n<name>faultCode</name>\n<value><int>%d</int></value>\n</member>\n"+
		"<member>\n<name>faultString</name>\n<value><string>%s</string></value>\n</member>\n"+
		"</struct></value>\n</fault>\n</methodResponse>\n", code, escape(msg))
}

func writeBuild(w io.Writer, b BuildInfo) {
	var sb strings.Builder
	member := func(name, v string) {
		fmt.Fprintf(&sb, "<member>\n<name>%s</name>\n<value>%s</value>\n</member>\n", name, v)
	}
	str := func(s string) string { return "<string>" + escape(s) + "</string>" }
	num := func(i int64) string { return "<int>" + strconv.FormatInt(i, 10) + "</int>" }
	dbl := func(f float64) string { return "<double>" + strconv.FormatFloat(f, 'f', -1, 64) + "</double>" }
	when := func(ts float64) string {
		return time.Unix(0, int64(ts*1e9)).UTC().Format("2006-01-02 15:04:05.000000") + "+00:00"
	}
	pkgID := int64(1000 + len(b.PackageName)*37)
	member("build_id", num(b.ID))
	member("cg_id", "<nil/>")
	member("cg_name", "<nil/>")
	member("completion_time", str(when(b.CompletionTS)))
	member("completion_ts", dbl(b.CompletionTS))
	member("creation_event_id", num(50000000+b.ID))
	member("creation_time", str(when(b.StartTS)))
	member("creation_ts", dbl(b.StartTS))
	member("epoch", "<nil/>")
	member("extra", "<struct>\n<member>\n<name>source</name>\n<value><struct>\n<member>\n<name>original_url</name>\n<value>"+
		str("git+https://src.fedoraproject.org/rpms/"+b.PackageName+".git#"+fmt.Sprintf("%040x", b.ID))+"</value>\n</member>\n</struct></value>\n</member>\n</struct>")
	member("id", num(b.ID))
	member("name", str(b.PackageName))
	member("nvr", str(b.NVR))
	member("owner_id", num(int64(100+len(b.Owner))))
	member("owner_name", str(b.Owner))
	member("package_id", num(pkgID))
	member("package_name", str(b.PackageName))
	member("release", str(b.Release))
	member("source", str("git+https://src.fedoraproject.org/rpms/"+b.PackageName+".git#"+fmt.Sprintf("%040x", b.ID)))
	member("start_time", str(when(b.StartTS)))
	member("start_ts", dbl(b.StartTS))
	member("state", num(1))
	member("task_id", num(b.TaskID))
	member("version", str(b.Version))
	member("volume_id", num(0))
	member("volume_name", str("DEFAULT"))
	fmt.Fprintf(w, "<?xml version='1.0'?>\n<methodResponse>\n<params>\n<param>\n<value><struct>\n%s</struct></value>\n</param>\n</params>\n</methodResponse>\n", sb.String())
}

func escape(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s))
	return b.String()
}

// value is a scalar parameter of a call.
type value struct {
	isInt, isString bool
	i               int64
	s               string
}

// xmlValue mirrors <value>: one typed child, or bare text (a string).
// Other is any child the hub has no use for (<boolean>, <base64>,
// <dateTime.iso8601>, ...): such a value is neither an int nor a string.
type xmlValue struct {
	Int    *string   `xml:"int"`
	I4     *string   `xml:"i4"`
	I8     *string   `xml:"i8"`
	String *string   `xml:"string"`
	Nil    *struct{} `xml:"nil"`
	Double *string   `xml:"double"`
	Struct *struct{} `xml:"struct"`
	Array  *struct{} `xml:"array"`
	Other  []xmlAny  `xml:",any"`
	Text   string    `xml:",chardata"`
}

// xmlAny matches an element of any name, skipping its content.
type xmlAny struct {
	XMLName xml.Name
}

type xmlCall struct {
	XMLName xml.Name `xml:"methodCall"`
	Method  string   `xml:"methodName"`
	Params  []struct {
		Value xmlValue `xml:"value"`
	} `xml:"params>param"`
}

// parseCall reads an XML-RPC methodCall: its method name and its scalar
// parameters (integers and strings; any other type is kept as neither).
func parseCall(body []byte) (method string, args []value, err error) {
	var c xmlCall
	if err := xml.Unmarshal(body, &c); err != nil {
		return "", nil, fmt.Errorf("malformed XML-RPC request: %v", err)
	}
	if c.Method == "" {
		return "", nil, fmt.Errorf("malformed XML-RPC request: no methodName")
	}
	for _, p := range c.Params {
		v := p.Value
		var v2 value
		switch {
		case v.Int != nil || v.I4 != nil || v.I8 != nil:
			s := v.Int
			if s == nil {
				s = v.I4
			}
			if s == nil {
				s = v.I8
			}
			i, err := strconv.ParseInt(strings.TrimSpace(*s), 10, 64)
			if err != nil {
				return "", nil, fmt.Errorf("malformed XML-RPC integer %q", *s)
			}
			v2 = value{isInt: true, i: i}
		case v.String != nil:
			v2 = value{isString: true, s: *v.String}
		case v.Nil != nil || v.Double != nil || v.Struct != nil || v.Array != nil || len(v.Other) > 0:
		default:
			v2 = value{isString: true, s: v.Text}
		}
		args = append(args, v2)
	}
	return c.Method, args, nil
}
