// Package meta is statscache's port of fedmsg.meta: for any bus message it
// tells who (usernames, agent), what (packages, objects) and how to show it
// (title, subtitle, link, icons).
//
// The knowledge lives in Lua rule files in a folder (scripts/meta): one
// file per processor family, each declaring one or more processors with
// processor{...} and defining helper functions on them. Go only selects the
// processor by topic (prefix regex + lowercased name, first match wins, the
// default processor for the rest), converts the message to a Lua table and
// calls the helpers in a pool of sandboxed LStates. Rule files are compiled
// once and shared by every state.
package meta

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fastjson"
	lua "github.com/yuin/gopher-lua"
	"github.com/yuin/gopher-lua/parse"

	"statscache/engine"
	"statscache/luaapi/sandbox"
)

// Result is what the helpers say about one message. Sets are sorted and
// never nil. A Result is shared between callers and must not be modified.
type Result struct {
	Usernames, Packages, Objects []string
	// Agent is the user who caused the message, nil when unknown.
	Agent                                      *string
	Title, Subtitle, Link, Icon, SecondaryIcon string
	// Processor is the __name__ of the processor that handled the message
	// (e.g. "Bodhi", "pagure", "unhandled").
	Processor string
	// Err is set when the rules were stopped for a limit (time, or what
	// their built-ins allocated): the answer is then empty.
	Err string
	// Groups, Containers, Modules and Flatpaks come from the headers of a
	// fedora-messaging message (see headers.go); empty for fedmsg ones.
	Groups, Containers, Modules, Flatpaks []string

	// nulls records which of link, icon and secondary_icon the rules
	// returned as nil (JSON null) rather than a string.
	nulls uint8
}

const (
	nullLink uint8 = 1 << iota
	nullIcon
	nullSecondaryIcon
)

// LinkIsNull, IconIsNull and SecondaryIconIsNull report whether the rule
// returned nothing (the original's None) rather than a string; the string
// field is "" then.
func (r *Result) LinkIsNull() bool          { return r.nulls&nullLink != 0 }
func (r *Result) IconIsNull() bool          { return r.nulls&nullIcon != 0 }
func (r *Result) SecondaryIconIsNull() bool { return r.nulls&nullSecondaryIcon != 0 }

// MarshalJSON writes the result under the helpers' names, with null for
// the fields the rules left empty (agent, and link and icons returned as nil).
func (r *Result) MarshalJSON() ([]byte, error) {
	str := func(s string, null bool) any {
		if null {
			return nil
		}
		return s
	}
	return json.Marshal(struct {
		Usernames     []string `json:"usernames"`
		Packages      []string `json:"packages"`
		Objects       []string `json:"objects"`
		Agent         *string  `json:"agent"`
		Title         string   `json:"title"`
		Subtitle      string   `json:"subtitle"`
		Link          any      `json:"link"`
		Icon          any      `json:"icon"`
		SecondaryIcon any      `json:"secondary_icon"`
		Processor     string   `json:"processor"`
		Err           string   `json:"error,omitempty"`
		Groups        []string `json:"groups,omitempty"`
		Containers    []string `json:"containers,omitempty"`
		Modules       []string `json:"modules,omitempty"`
		Flatpaks      []string `json:"flatpaks,omitempty"`
	}{r.Usernames, r.Packages, r.Objects, r.Agent, r.Title, r.Subtitle,
		str(r.Link, r.LinkIsNull()), str(r.Icon, r.IconIsNull()),
		str(r.SecondaryIcon, r.SecondaryIconIsNull()), r.Processor, r.Err,
		r.Groups, r.Containers, r.Modules, r.Flatpaks})
}

// Processor describes one declared processor.
type Processor struct {
	Name    string // __name__, e.g. "Bodhi"
	Entry   string // entry point name; processors are tried in entry order
	Prefix  string // topic prefix regex
	File    string // the rule file that declared it
	Default bool   // the processor for topics no other one handles
	re      *regexp.Regexp
	idx     int // 1-based index in the Lua registry
}

// Library is a loaded set of rules. It is safe for concurrent use.
type Library struct {
	dir     string
	logger  *slog.Logger
	protos  []*lua.FunctionProto
	files   []string
	usermap map[string]string

	procs   []*Processor // in selection order, default excluded
	def     *Processor
	byTopic sync.Map // topic -> *Processor
	nTopics atomic.Int64

	pool    chan *state
	parsers fastjson.ParserPool
	errs    atomic.Int64
	limits  Limits

	// expectN counts, per helper, the callers that asked for it on their
	// last message (see Expect); expected has the bits of those with a
	// count, the helpers a computation runs beside the ones asked.
	expectMu sync.Mutex
	expectN  [16]int
	expected atomic.Uint32
}

// Limits bound one computation of the helpers for a message, as a model's
// limits bound one call of process: the rules run under a time limit, and
// the built-ins they call under the string cap and the allocation bound of
// sandbox.Meter.
type Limits struct {
	Timeout   time.Duration // 0 means DefaultLimits.Timeout
	MaxString int           // 0 means sandbox.DefaultMaxString
	MaxAlloc  int64         // 0 means DefaultLimits.MaxAlloc
	// Watch, when set, keeps the time limit instead of a plain timer: it
	// is called as a computation starts, with the function that stops it,
	// and returns the function that ends the watch. Package luaapi gives
	// its watchdog's, which does not count a stall of the whole process
	// (a garbage collection, a starved machine) against the rules, as it
	// does not against models.
	Watch func(limit time.Duration, stop func(reason string)) (end func())
}

// DefaultLimits are a model's default limits for process.
var DefaultLimits = Limits{Timeout: 2 * time.Second, MaxString: sandbox.DefaultMaxString, MaxAlloc: 512 << 20}

// maxTopicCache bounds the topic → processor cache.
const maxTopicCache = 50000

// DefaultPrefix is the topic prefix regex of processors that do not set one.
const DefaultPrefix = `org\.fedoraproject\.(dev|stg|prod)`

// Load compiles every *.lua file of dir (files whose name starts with "_"
// first, then the others, each group in name order) and the user-name
// mapping dir/usermap.json (optional). Errors name the file and line.
func Load(dir string, logger *slog.Logger) (*Library, error) {
	return LoadFS(os.DirFS(dir), dir, logger)
}

// LoadFS is Load over a file system, such as the rules embedded in the
// binary; dir labels the files in errors.
func LoadFS(fsys fs.FS, dir string, logger *slog.Logger) (*Library, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	l := &Library{dir: dir, logger: logger, usermap: map[string]string{}, limits: DefaultLimits}
	names, err := fs.Glob(fsys, "*.lua")
	if err != nil {
		return nil, err
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("meta: no *.lua rule files in %s", dir)
	}
	sort.Slice(names, func(i, j int) bool {
		a, b := filepath.Base(names[i]), filepath.Base(names[j])
		ua, ub := strings.HasPrefix(a, "_"), strings.HasPrefix(b, "_")
		if ua != ub {
			return ua
		}
		return a < b
	})
	for _, name := range names {
		src, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("meta: %w", err)
		}
		name = filepath.Join(dir, name)
		proto, err := compile(string(src), name)
		if err != nil {
			return nil, err
		}
		l.protos = append(l.protos, proto)
		l.files = append(l.files, name)
	}
	if b, err := fs.ReadFile(fsys, "usermap.json"); err == nil {
		if err := json.Unmarshal(b, &l.usermap); err != nil {
			return nil, fmt.Errorf("meta: %s: %v", filepath.Join(dir, "usermap.json"), err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("meta: %w", err)
	}
	// A first state runs every file and tells us what they declared.
	st, err := l.newState()
	if err != nil {
		return nil, err
	}
	if err := l.readRegistry(st.L); err != nil {
		st.L.Close()
		return nil, err
	}
	l.pool = make(chan *state, 64)
	l.pool <- st
	return l, nil
}

// SetLimits replaces the limits of one computation; zero fields keep
// DefaultLimits. It must be called before the library is used.
func (l *Library) SetLimits(lim Limits) {
	if lim.Timeout <= 0 {
		lim.Timeout = DefaultLimits.Timeout
	}
	if lim.MaxString <= 0 {
		lim.MaxString = DefaultLimits.MaxString
	}
	if lim.MaxAlloc <= 0 {
		lim.MaxAlloc = DefaultLimits.MaxAlloc
	}
	l.limits = lim
	l.Close() // pooled states carry the old meter
}

// SetUserMap replaces the user-name mapping (email or IRC nick → account).
// It must be called before the library is used.
func (l *Library) SetUserMap(m map[string]string) {
	l.usermap = m
	for {
		select {
		case st := <-l.pool:
			st.L.Close()
		default:
			return
		}
	}
}

// Processors returns the declared processors in selection order, the
// default one last.
func (l *Library) Processors() []Processor {
	out := make([]Processor, 0, len(l.procs)+1)
	for _, p := range l.procs {
		out = append(out, *p)
	}
	return append(out, *l.def)
}

// Errors returns how many helper calls failed in the rules (and fell back
// to the helper's default), and how many computations were stopped for a
// limit, since the library was loaded.
func (l *Library) Errors() int64 { return l.errs.Load() }

// Close releases the pooled states.
func (l *Library) Close() {
	for {
		select {
		case st := <-l.pool:
			st.L.Close()
		default:
			return
		}
	}
}

func compile(src, name string) (*lua.FunctionProto, error) {
	chunk, err := parse.Parse(strings.NewReader(src), name)
	if err != nil {
		return nil, fmt.Errorf("meta: %s", strings.TrimSpace(err.Error()))
	}
	proto, err := sandbox.Compile(chunk, name)
	if err != nil {
		return nil, fmt.Errorf("meta: %s: %v", name, err)
	}
	return proto, nil
}

func (l *Library) readRegistry(L *lua.LState) error {
	reg, ok := L.G.Global.RawGetString("PROCESSORS").(*lua.LTable)
	if !ok {
		return errors.New("meta: PROCESSORS registry missing")
	}
	var procs []*Processor
	var def *Processor
	n := reg.Len()
	for i := 1; i <= n; i++ {
		t, ok := reg.RawGetInt(i).(*lua.LTable)
		if !ok {
			continue
		}
		p := &Processor{idx: i}
		p.Name = lua.LVAsString(t.RawGetString("name"))
		p.Entry = lua.LVAsString(t.RawGetString("entry"))
		p.Prefix = lua.LVAsString(t.RawGetString("prefix"))
		p.File = lua.LVAsString(t.RawGetString("file"))
		p.Default = lua.LVAsBool(t.RawGetString("default"))
		if p.Name == "" {
			return fmt.Errorf("meta: %s: a processor has no name", p.File)
		}
		if p.Entry == "" {
			p.Entry = strings.ToLower(p.Name)
		}
		if p.Default {
			if def != nil {
				return fmt.Errorf("meta: %s: a second default processor %q (the first is in %s)", p.File, p.Name, def.File)
			}
			def = p
			continue
		}
		if p.Prefix == "" {
			p.Prefix = DefaultPrefix
		}
		// As the original: the name is lowercased and not escaped.
		re, err := regexp.Compile(`^` + p.Prefix + `\.(` + strings.ToLower(p.Name) + `)(\.(.*))?$`)
		if err != nil {
			return fmt.Errorf("meta: %s: processor %q: bad prefix: %v", p.File, p.Name, err)
		}
		p.re = re
		procs = append(procs, p)
	}
	if def == nil {
		return errors.New("meta: no default processor (processor{default = true, ...})")
	}
	// The original tries entry points in name order, the default last.
	sort.SliceStable(procs, func(i, j int) bool { return procs[i].Entry < procs[j].Entry })
	l.procs, l.def = procs, def
	return nil
}

// processorFor selects the processor for a topic: the first whose prefix
// and name match, else the default.
func (l *Library) processorFor(topic string) *Processor {
	if p, ok := l.byTopic.Load(topic); ok {
		return p.(*Processor)
	}
	p := l.def
	for _, q := range l.procs {
		if q.re.MatchString(topic) {
			p = q
			break
		}
	}
	if l.nTopics.Load() < maxTopicCache {
		if _, loaded := l.byTopic.LoadOrStore(topic, p); !loaded {
			l.nTopics.Add(1)
		}
	}
	return p
}

// ProcessorFor returns the name of the processor that handles topic.
func (l *Library) ProcessorFor(topic string) string { return l.processorFor(topic).Name }

type memoKey struct{ l *Library }

// Helpers is a set of helpers, one bit each, in the order of helperNames.
// A model that asks for usernames should not pay for the title, subtitle,
// link and icons: those format strings from templates and are most of the
// rules' cost, while the shipped models ask for usernames and packages.
type Helpers uint16

const (
	Usernames Helpers = 1 << iota
	Packages
	Objects
	Title
	Subtitle
	Link
	Icon
	SecondaryIcon
	Agent
	// AllHelpers is every helper.
	AllHelpers = Usernames | Packages | Objects | Title | Subtitle | Link | Icon | SecondaryIcon | Agent
)

// partial is what the helpers said so far about one message: the result
// of the helpers in have, kept with the message and grown on demand.
type partial struct {
	mu   sync.Mutex
	have Helpers
	r    *Result // immutable once published: a fill makes a new one
	// users is what the rules alone said the usernames are (before the
	// headers' names are added): the agent's default when there is no
	// agent rule.
	users []string
	err   error
}

// Compute runs every helper on m. The result is computed once per message
// and library and shared by every caller.
func (l *Library) Compute(m *engine.Message) (*Result, error) {
	return l.ComputeSome(m, AllHelpers)
}

// ComputeSome runs on m the helpers of want that no caller asked for
// before; the others' answers are kept with the message. The Result holds
// at least the helpers of want, the processor and what the headers say;
// the fields of helpers not asked for may be empty. A computation also
// runs the expected helpers (see Expect) the message lacks, so that the
// models asking for different helpers of the same message share one.
func (l *Library) ComputeSome(m *engine.Message, want Helpers) (*Result, error) {
	p := m.Memo(memoKey{l}, func() any { return &partial{} }).(*partial)
	p.mu.Lock()
	defer p.mu.Unlock()
	missing := want &^ p.have
	if p.err == nil && (p.r == nil || missing != 0) {
		missing |= Helpers(l.expected.Load()) &^ p.have
		if missing&Agent != 0 && p.have&Usernames == 0 {
			missing |= Usernames // the agent's default is the single user
		}
		if raw, err := m.Record(); err != nil {
			p.err = err
		} else {
			l.fill(p, m.Topic, raw, missing)
		}
	}
	return p.r, p.err
}

// Expect tells the library that a caller which asked for the helpers of
// was on its last message asked for those of now on this one (a model
// tells it after each message, and with now 0 when it closes). Helpers
// that some caller asked for on its last message are computed with any
// computation for a message that lacks them: each computation parses the
// record and converts it to Lua, and when the models asking for
// usernames and those asking for packages (the shipped ones) each
// triggered their own, every message paid for two. A helper asked for
// now and then (release-engineering's link, for its few masher
// messages) is expected only until that caller's next message.
//
// An expected helper changes no answer (each helper's answer does not
// depend on the others computed with it, see TestComputeSomeEqualsCompute),
// but it runs under the same limits as the helpers asked, and a rule of
// it that fails counts in Errors though no one asks for its answer.
func (l *Library) Expect(was, now Helpers) {
	if was == now {
		return
	}
	l.expectMu.Lock()
	defer l.expectMu.Unlock()
	var bits uint32
	for i := range l.expectN {
		h := Helpers(1) << i
		if was&h != 0 {
			l.expectN[i]--
		}
		if now&h != 0 {
			l.expectN[i]++
		}
		if l.expectN[i] > 0 {
			bits |= uint32(h)
		}
	}
	l.expected.Store(bits)
}

// Expected returns the helpers computed beside those asked (see Expect).
func (l *Library) Expected() Helpers { return Helpers(l.expected.Load()) }

// fill computes the helpers of missing into a new result for p.
func (l *Library) fill(p *partial, topic string, record []byte, missing Helpers) {
	pr := l.parsers.Get()
	defer l.parsers.Put(pr)
	v, err := parseRecord(pr, record)
	if err != nil {
		p.err = err
		return
	}
	if topic == "" {
		topic = string(v.GetStringBytes("topic"))
	}
	res, users, err := l.compute(topic, v, missing, p.users)
	if err != nil {
		p.err = err
		return
	}
	if p.r == nil {
		p.r, p.have, p.users = res, missing, users
		return
	}
	nr := *p.r
	nr.merge(res, missing)
	if missing&Usernames != 0 {
		p.users = users
	}
	p.r = &nr
	p.have |= missing
}

// merge copies the answers of the helpers in hs from o.
func (r *Result) merge(o *Result, hs Helpers) {
	if hs&Usernames != 0 {
		r.Usernames = o.Usernames
	}
	if hs&Packages != 0 {
		r.Packages = o.Packages
	}
	if hs&Objects != 0 {
		r.Objects = o.Objects
	}
	if hs&Title != 0 {
		r.Title = o.Title
	}
	if hs&Subtitle != 0 {
		r.Subtitle = o.Subtitle
	}
	if hs&Link != 0 {
		r.Link = o.Link
		r.nulls = r.nulls&^nullLink | o.nulls&nullLink
	}
	if hs&Icon != 0 {
		r.Icon = o.Icon
		r.nulls = r.nulls&^nullIcon | o.nulls&nullIcon
	}
	if hs&SecondaryIcon != 0 {
		r.SecondaryIcon = o.SecondaryIcon
		r.nulls = r.nulls&^nullSecondaryIcon | o.nulls&nullSecondaryIcon
	}
	if hs&Agent != 0 {
		r.Agent = o.Agent
	}
	if o.Err != "" {
		r.Err = o.Err
	}
}

// ComputeRecord runs every helper on a raw record: a datagrepper /raw
// record or fedmsg envelope ({topic, msg, ...}), a /v2 record ({topic,
// body, headers}) or a bare body. topic, when not empty, overrides the
// record's topic.
func (l *Library) ComputeRecord(topic string, record []byte) (*Result, error) {
	p := l.parsers.Get()
	defer l.parsers.Put(p)
	v, err := parseRecord(p, record)
	if err != nil {
		return nil, err
	}
	if topic == "" {
		topic = string(v.GetStringBytes("topic"))
	}
	r, _, err := l.compute(topic, v, AllHelpers, nil)
	return r, err
}

func parseRecord(p *fastjson.Parser, record []byte) (*fastjson.Value, error) {
	v, err := p.ParseBytes(record)
	if err != nil {
		return nil, fmt.Errorf("meta: not valid JSON: %w", err)
	}
	if v.Type() != fastjson.TypeObject {
		return nil, fmt.Errorf("meta: record is a JSON %s, not an object", v.Type())
	}
	return v, nil
}

func (l *Library) getState() (*state, error) {
	select {
	case st := <-l.pool:
		return st, nil
	default:
		return l.newState()
	}
}

func (l *Library) putState(st *state) {
	if st.broken {
		st.L.Close()
		return
	}
	select {
	case l.pool <- st:
	default:
		st.L.Close()
	}
}

// compute runs the helpers of hs on rec and returns their answers, with
// the processor and what the headers say, and what the rules alone said
// the usernames are when hs has usernames (users otherwise: the agent
// rule's default comes from them).
func (l *Library) compute(topic string, rec *fastjson.Value, hs Helpers, users []string) (res *Result, ruleUsers []string, err error) {
	proc := l.processorFor(topic)
	st, err := l.getState()
	if err != nil {
		return nil, nil, err
	}
	// The rules run under the limits of a model's process call: a rule
	// that loops, or whose built-ins allocate without bound, is stopped,
	// and the message gets an empty answer (with the reason in Err)
	// instead of holding every model that asks about it.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st.L.SetContext(ctx)
	st.meter.Reset()
	st.stop, st.reason = cancel, ""
	if w := l.limits.Watch; w != nil {
		defer w(l.limits.Timeout, func(reason string) { st.reason = reason; cancel() })()
	} else {
		defer time.AfterFunc(l.limits.Timeout, cancel).Stop()
	}
	defer func() {
		st.release()
		st.L.RemoveContext()
		st.stop = nil
		if e := recover(); e != nil {
			st.broken = true
			res, err = nil, fmt.Errorf("meta: %s: %v", proc.Name, e)
		}
		l.putState(st)
	}()
	msg := st.envelope(topic, rec)
	res, ruleUsers = st.run(l, proc, msg, hs, users)
	if ctx.Err() != nil {
		reason := st.reason
		if reason == "" {
			reason = fmt.Sprintf("the rules ran longer than the limit of %s", l.limits.Timeout)
		}
		st.broken = true // interrupted half way: do not reuse
		l.errs.Add(1)
		l.logger.Warn("meta rules stopped", "processor", proc.Name, "topic", topic, "reason", reason)
		res, ruleUsers = emptyResult(proc, fmt.Sprintf("meta: %s: %s", proc.Name, reason)), []string{}
	}
	// The headers are read without the rules, so a stopped computation
	// still has them.
	return fromHeaders(res, rec, hs), ruleUsers, nil
}

// emptyResult is the answer of rules that were stopped or failed.
func emptyResult(proc *Processor, reason string) *Result {
	return &Result{Usernames: []string{}, Packages: []string{}, Objects: []string{}, Processor: proc.Name, Err: reason}
}
