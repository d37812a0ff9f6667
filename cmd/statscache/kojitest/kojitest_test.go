package kojitest

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	lua "github.com/yuin/gopher-lua"
)

// xmlrpcLib loads scripts/lib/xmlrpc.lua, the client the shipped model
// uses, into a plain LState, so the stand-in is checked against it.
func xmlrpcLib(t *testing.T) (*lua.LState, *lua.LTable) {
	t.Helper()
	L := lua.NewState()
	t.Cleanup(L.Close)
	if err := L.DoFile("../../../scripts/lib/xmlrpc.lua"); err != nil {
		t.Fatal(err)
	}
	mod, ok := L.Get(-1).(*lua.LTable)
	if !ok {
		t.Fatalf("xmlrpc.lua returned a %s", L.Get(-1).Type())
	}
	L.Pop(1)
	return L, mod
}

// luaCall calls mod.name(args...) and returns its results.
func luaCall(t *testing.T, L *lua.LState, mod *lua.LTable, name string, nret int, args ...lua.LValue) []lua.LValue {
	t.Helper()
	if err := L.CallByParam(lua.P{Fn: mod.RawGetString(name), NRet: nret, Protect: true}, args...); err != nil {
		t.Fatalf("xmlrpc.%s: %v", name, err)
	}
	out := make([]lua.LValue, nret)
	for i := range out {
		out[i] = L.Get(-nret + i)
	}
	L.Pop(nret)
	return out
}

func post(t *testing.T, url, body string) (int, string) {
	t.Helper()
	resp, err := http.Post(url, "text/xml", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestGetBuild(t *testing.T) {
	srv := httptest.NewServer(New(Options{}))
	defer srv.Close()
	L, mod := xmlrpcLib(t)
	for _, id := range []int64{612324, 1, 2147483647, 8973154} {
		call := luaCall(t, L, mod, "call", 1, lua.LString("getBuild"), lua.LNumber(id))[0].String()
		status, body := post(t, srv.URL+"/kojihub", call)
		if status != 200 {
			t.Fatalf("build %d: HTTP %d", id, status)
		}
		res := luaCall(t, L, mod, "response", 2, lua.LString(body))
		b, ok := res[0].(*lua.LTable)
		if !ok || res[1] != lua.LNil {
			t.Fatalf("build %d: %v, %v\n%s", id, res[0], res[1], body)
		}
		want, _ := Build(id)
		checks := map[string]lua.LValue{
			"build_id": lua.LNumber(id), "id": lua.LNumber(id), "package_name": lua.LString(want.PackageName),
			"owner_name": lua.LString(want.Owner), "nvr": lua.LString(want.NVR), "state": lua.LNumber(1),
			"start_ts": lua.LNumber(want.StartTS), "completion_ts": lua.LNumber(want.CompletionTS),
			"epoch": lua.LNil, "volume_name": lua.LString("DEFAULT"),
		}
		for k, v := range checks {
			if got := b.RawGetString(k); got != v {
				t.Errorf("build %d: %s = %v, want %v", id, k, got, v)
			}
		}
		extra, ok := b.RawGetString("extra").(*lua.LTable)
		if !ok {
			t.Fatalf("build %d: extra is not a table", id)
		}
		src, ok := extra.RawGetString("source").(*lua.LTable)
		if !ok || !strings.Contains(src.RawGetString("original_url").String(), want.PackageName) {
			t.Errorf("build %d: extra.source = %v", id, extra.RawGetString("source"))
		}
		if d := want.CompletionTS - want.StartTS; d < 60 || d > 4*3600 {
			t.Errorf("build %d lasted %v s", id, d)
		}
	}
}

func TestUnknownBuildAndFaults(t *testing.T) {
	srv := httptest.NewServer(New(Options{}))
	defer srv.Close()
	L, mod := xmlrpcLib(t)
	tests := []struct {
		name, body string
		nilValue   bool
		fault      string
	}{
		{"Unknown", luaCall(t, L, mod, "call", 1, lua.LString("getBuild"), lua.LNumber(97*5))[0].String(), true, ""},
		{"BadMethod", luaCall(t, L, mod, "call", 1, lua.LString("listBuilds"), lua.LNumber(1))[0].String(), false, "Invalid method: listBuilds"},
		{"NoArgument", luaCall(t, L, mod, "call", 1, lua.LString("getBuild"))[0].String(), false, "one argument"},
		{"Malformed", "<methodCall><methodName>getBuild", false, "malformed XML-RPC request"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, body := post(t, srv.URL, tc.body)
			if status != 200 {
				t.Fatalf("HTTP %d; koji answers faults with 200", status)
			}
			res := luaCall(t, L, mod, "response", 2, lua.LString(body))
			if tc.nilValue {
				if res[0] != lua.LNil || res[1] != lua.LNil {
					t.Fatalf("got %v, %v; want nil, nil\n%s", res[0], res[1], body)
				}
				return
			}
			if res[0] != lua.LNil || !strings.Contains(res[1].String(), tc.fault) {
				t.Fatalf("got %v, %q; want a fault with %q", res[0], res[1], tc.fault)
			}
		})
	}
}

// An NVR travels escaped both ways and comes back as sent.
func TestEscaping(t *testing.T) {
	srv := httptest.NewServer(New(Options{}))
	defer srv.Close()
	L, mod := xmlrpcLib(t)
	nvr := `odd&name<1>-1.0-1.fc40 "q" 'a'`
	call := luaCall(t, L, mod, "call", 1, lua.LString("getBuild"), lua.LString(nvr))[0].String()
	if strings.Contains(call, "&name") || strings.Contains(call, "<1>") {
		t.Fatalf("not escaped: %s", call)
	}
	_, body := post(t, srv.URL, call)
	res := luaCall(t, L, mod, "response", 2, lua.LString(body))
	b, ok := res[0].(*lua.LTable)
	if !ok || b.RawGetString("nvr").String() != nvr {
		t.Fatalf("nvr came back as %v\n%s", res[0], body)
	}
}

func TestResponseDecoding(t *testing.T) {
	L, mod := xmlrpcLib(t)
	doc := `<?xml version="1.0"?><!-- c --><methodResponse><params><param><value><array><data>
<value>bare &amp; text</value><value><i4>-7</i4></value><value><boolean>1</boolean></value>
<value><double>2.5</double></value><value><string>&#233;&#x41;</string></value><value><struct></struct></value>
</data></array></value></param></params></methodResponse>`
	res := luaCall(t, L, mod, "response", 1, lua.LString(doc))
	a, ok := res[0].(*lua.LTable)
	if !ok || a.Len() != 6 {
		t.Fatalf("got %v", res[0])
	}
	want := []lua.LValue{lua.LString("bare & text"), lua.LNumber(-7), lua.LTrue, lua.LNumber(2.5), lua.LString("éA")}
	for i, w := range want {
		if got := a.RawGetInt(i + 1); got != w {
			t.Errorf("element %d: %v, want %v", i+1, got, w)
		}
	}
	// References that are no character stay as written.
	odd := `<methodResponse><params><param><value><string>&x41; &#99999999; &#xD800; &bogus; &#x1F600;</string></value></param></params></methodResponse>`
	if got := luaCall(t, L, mod, "response", 1, lua.LString(odd))[0]; got != lua.LString("&x41; &#99999999; &#xD800; &bogus; \U0001F600") {
		t.Errorf("odd references: %q", got)
	}
	for _, bad := range []string{"", "<html>busy</html>", "<methodResponse><params><param><value><int>x</int></value>",
		"<methodResponse><params><param><value><int/></value></param></params></methodResponse>"} {
		if err := L.CallByParam(lua.P{Fn: mod.RawGetString("response"), NRet: 1, Protect: true}, lua.LString(bad)); err == nil || !strings.Contains(err.Error(), "xmlrpc:") {
			t.Errorf("response(%q): %v, want an xmlrpc error", bad, err)
		}
		L.SetTop(0)
	}
}

// The hub reads each form a client may send a build id or NVR in, and
// treats any other type as neither.
func TestParseCallForms(t *testing.T) {
	call := func(v string) []byte {
		return []byte(`<?xml version="1.0"?><methodCall><methodName>getBuild</methodName><params><param>` + v + `</param></params></methodCall>`)
	}
	tests := []struct {
		value string
		want  value
	}{
		{`<value><int>123</int></value>`, value{isInt: true, i: 123}},
		{`<value><i4>-5</i4></value>`, value{isInt: true, i: -5}},
		{`<value><i8>99999999999</i8></value>`, value{isInt: true, i: 99999999999}},
		{"<value>\n <int> 42 </int>\n</value>", value{isInt: true, i: 42}},
		{`<value><string>foo-1.0-1.fc40</string></value>`, value{isString: true, s: "foo-1.0-1.fc40"}},
		{`<value>a&amp;b-1-1</value>`, value{isString: true, s: "a&b-1-1"}},
		{`<value></value>`, value{isString: true}},
		{`<value><boolean>1</boolean></value>`, value{}},
		{`<value><dateTime.iso8601>20240301T10:00:00</dateTime.iso8601></value>`, value{}},
		{`<value><double>1.5</double></value>`, value{}},
		{`<value><nil/></value>`, value{}},
		{`<value><struct></struct></value>`, value{}},
	}
	for _, tc := range tests {
		method, args, err := parseCall(call(tc.value))
		if err != nil || method != "getBuild" || len(args) != 1 || args[0] != tc.want {
			t.Errorf("%s: %q, %+v, %v; want getBuild, %+v", tc.value, method, args, err, tc.want)
		}
	}
	if _, _, err := parseCall(call(`<value><int>12x</int></value>`)); err == nil {
		t.Error("a bad <int> parsed")
	}
	srv := httptest.NewServer(New(Options{}))
	defer srv.Close()
	L, mod := xmlrpcLib(t)
	_, body := post(t, srv.URL, string(call(`<value><boolean>1</boolean></value>`)))
	if res := luaCall(t, L, mod, "response", 2, lua.LString(body)); res[0] != lua.LNil || !strings.Contains(res[1].String(), "one argument") {
		t.Errorf("getBuild(true): %v, %v", res[0], res[1])
	}
	// The same build whichever integer form asks for it.
	_, b1 := post(t, srv.URL, string(call(`<value><i4>4242</i4></value>`)))
	_, b2 := post(t, srv.URL, string(call(`<value><i8>4242</i8></value>`)))
	if b1 != b2 || !strings.Contains(b1, "<name>build_id</name>\n<value><int>4242</int></value>") {
		t.Errorf("i4 and i8 answers differ or lack the id:\n%s\n%s", b1, b2)
	}
}

func TestFailEveryAndCounters(t *testing.T) {
	h := New(Options{FailEvery: 3})
	srv := httptest.NewServer(h)
	defer srv.Close()
	L, mod := xmlrpcLib(t)
	call := luaCall(t, L, mod, "call", 1, lua.LString("getBuild"), lua.LNumber(5))[0].String()
	var codes []int
	for range 6 {
		status, _ := post(t, srv.URL, call)
		codes = append(codes, status)
	}
	want := []int{200, 200, 503, 200, 200, 503}
	for i := range want {
		if codes[i] != want[i] {
			t.Fatalf("statuses %v, want %v", codes, want)
		}
	}
	if h.Requests() != 6 || h.Failures() != 2 {
		t.Fatalf("counters: %d requests, %d failures", h.Requests(), h.Failures())
	}
}

// A client that gives up does not keep a delayed answer waiting.
func TestDelayHonoursCancellation(t *testing.T) {
	srv := httptest.NewServer(New(Options{Delay: time.Minute}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL, strings.NewReader("<methodCall/>"))
	start := time.Now()
	_, err := http.DefaultClient.Do(req)
	if err == nil {
		t.Fatal("the request succeeded")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("the cancelled request took %s", d)
	}
}

func FuzzParseCall(f *testing.F) {
	f.Add([]byte(`<?xml version="1.0"?><methodCall><methodName>getBuild</methodName><params><param><value><int>1</int></value></param></params></methodCall>`))
	f.Add([]byte(`<methodCall><methodName>x</methodName><params><param><value>s</value></param></params></methodCall>`))
	f.Add([]byte(`<methodCall><methodName>x</methodName><params><param><value><i8>99999999999</i8></value></param></params></methodCall>`))
	f.Fuzz(func(t *testing.T, body []byte) {
		method, args, err := parseCall(body)
		if err == nil && method == "" {
			t.Fatalf("no error and no method for %q", body)
		}
		_ = args
	})
}
