package portal_test

// A minimal WebDriver client (the W3C protocol, spoken by chromedriver),
// written over net/http so that the browser test needs no Go dependency.

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// elementKey is the W3C key of an element reference.
const elementKey = "element-6066-11e4-a52e-4f735466cecf"

// browser is one chromedriver process with one headless Chromium session.
type browser struct {
	t       *testing.T
	url     string // chromedriver's base URL
	session string
	client  *http.Client
	shots   string // where screenshots go
}

// browserBinaries finds Debian's chromium and chromedriver.
func browserBinaries() (chromium, driver string, err error) {
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, e := exec.LookPath(name); e == nil {
			chromium = p
			break
		}
	}
	driver, _ = exec.LookPath("chromedriver")
	if chromium == "" || driver == "" {
		return "", "", fmt.Errorf("chromium (%q) or chromedriver (%q) is not installed: apt-get install -y chromium chromium-driver", chromium, driver)
	}
	return chromium, driver, nil
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startBrowser starts chromedriver and a headless Chromium session with a
// fresh profile and every background service that could reach the
// network turned off.
func startBrowser(t *testing.T, chromium, driver, shots string) *browser {
	t.Helper()
	port := freePort(t)
	logf, err := os.Create(filepath.Join(shots, "chromedriver.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(driver, "--port="+strconv.Itoa(port), "--log-level=WARNING")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start chromedriver: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		logf.Close()
	})
	b := &browser{t: t, url: fmt.Sprintf("http://127.0.0.1:%d", port), client: &http.Client{Timeout: 90 * time.Second}, shots: shots}
	deadline := time.Now().Add(20 * time.Second)
	for {
		res, err := b.client.Get(b.url + "/status")
		if err == nil {
			var st struct {
				Value struct {
					Ready bool `json:"ready"`
				} `json:"value"`
			}
			json.NewDecoder(res.Body).Decode(&st)
			res.Body.Close()
			if st.Value.Ready {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("chromedriver did not start on port %d: %v", port, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	profile := t.TempDir()
	args := []string{
		"--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-default-apps", "--disable-extensions", "--no-default-browser-check",
		"--disable-dev-shm-usage", "--disable-features=Translate,OptimizationHints,MediaRouter,AutofillServerCommunication",
		"--metrics-recording-only", "--safebrowsing-disable-auto-update", "--password-store=basic",
		"--hide-scrollbars", "--force-device-scale-factor=1", "--lang=en-US", "--window-size=1280,900",
		"--user-data-dir=" + profile,
	}
	caps := map[string]any{"capabilities": map[string]any{"alwaysMatch": map[string]any{
		"browserName":        "chrome",
		"goog:chromeOptions": map[string]any{"binary": chromium, "args": args},
		"goog:loggingPrefs":  map[string]any{"browser": "ALL"},
		"pageLoadStrategy":   "normal",
	}}}
	var sess struct {
		SessionID string `json:"sessionId"`
	}
	if err := b.do(http.MethodPost, "/session", caps, &sess); err != nil {
		t.Fatalf("new WebDriver session: %v", err)
	}
	b.session = sess.SessionID
	t.Cleanup(func() { b.do(http.MethodDelete, "", nil, nil) })
	return b
}

// do sends one WebDriver command; path is relative to the session unless
// it starts with /session. The response's value is decoded into out.
func (b *browser) do(method, path string, in, out any) error {
	if !strings.HasPrefix(path, "/session") {
		path = "/session/" + b.session + path
	}
	var body io.Reader
	if in != nil {
		buf, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(buf)
	}
	req, err := http.NewRequest(method, b.url+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := b.client.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		return err
	}
	var env struct {
		Value json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(raw, &env); err != nil {
		return fmt.Errorf("%s %s: %d %s", method, path, res.StatusCode, raw)
	}
	if res.StatusCode != http.StatusOK {
		var e struct {
			Error   string `json:"error"`
			Message string `json:"message"`
		}
		json.Unmarshal(env.Value, &e)
		msg := e.Message
		if i := strings.Index(msg, "\n"); i > 0 {
			msg = msg[:i]
		}
		return fmt.Errorf("%s %s: %s: %s", method, path, e.Error, msg)
	}
	if out != nil {
		return json.Unmarshal(env.Value, out)
	}
	return nil
}

func (b *browser) must(err error) {
	b.t.Helper()
	if err != nil {
		b.t.Fatal(err)
	}
}

// open navigates to url and waits for the page to load.
func (b *browser) open(url string) {
	b.t.Helper()
	b.must(b.do(http.MethodPost, "/url", map[string]any{"url": url}, nil))
}

// js runs a script (a function body; arguments are in `arguments`) and
// decodes its result into out (when not nil).
func (b *browser) js(out any, script string, args ...any) {
	b.t.Helper()
	if args == nil {
		args = []any{}
	}
	b.must(b.do(http.MethodPost, "/execute/sync", map[string]any{"script": script, "args": args}, out))
}

// jsBool runs a script returning a boolean.
func (b *browser) jsBool(script string, args ...any) bool {
	b.t.Helper()
	var v bool
	b.js(&v, script, args...)
	return v
}

func (b *browser) jsString(script string, args ...any) string {
	b.t.Helper()
	var v string
	b.js(&v, script, args...)
	return v
}

func (b *browser) jsInt(script string, args ...any) int {
	b.t.Helper()
	var v float64
	b.js(&v, script, args...)
	return int(v)
}

// wait polls a boolean script until it is true, or fails the test with
// what and a screenshot.
func (b *browser) wait(what, script string, args ...any) {
	b.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !b.jsBool(script, args...) {
		if time.Now().After(deadline) {
			b.screenshot("timeout-"+strings.NewReplacer(" ", "-", "/", "-").Replace(what), false)
			b.t.Fatalf("timed out waiting for %s (page %s, body data %s)", what, b.jsString("return location.href"),
				b.jsString("return JSON.stringify(document.body.dataset)"))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// find returns the reference of the first element matching a CSS selector.
func (b *browser) find(css string) string {
	b.t.Helper()
	var ref map[string]string
	b.must(b.do(http.MethodPost, "/element", map[string]any{"using": "css selector", "value": css}, &ref))
	return ref[elementKey]
}

// click clicks the element matching css, as a user would (it must be
// visible and not covered).
func (b *browser) click(css string) {
	b.t.Helper()
	id := b.find(css)
	b.js(nil, "arguments[0].scrollIntoView({block: 'center'})", map[string]string{elementKey: id})
	b.must(b.do(http.MethodPost, "/element/"+id+"/click", map[string]any{}, nil))
}

// typeText types into the element matching css.
func (b *browser) typeText(css, text string) {
	b.t.Helper()
	b.must(b.do(http.MethodPost, "/element/"+b.find(css)+"/value", map[string]any{"text": text}, nil))
}

func (b *browser) resize(w, h int) {
	b.t.Helper()
	b.must(b.do(http.MethodPost, "/window/rect", map[string]any{"width": w, "height": h}, nil))
}

// screenshot saves the viewport as <name>.png; full grows the window to
// the page's height first (up to 4000 pixels), then restores it.
func (b *browser) screenshot(name string, full bool) string {
	b.t.Helper()
	var rect struct{ Width, Height int }
	if full {
		b.must(b.do(http.MethodGet, "/window/rect", nil, &rect))
		h := b.jsInt("return Math.max(document.documentElement.scrollHeight, document.body.scrollHeight)")
		b.resize(rect.Width, min(max(h+120, 600), 4000))
		time.Sleep(300 * time.Millisecond) // let the layout (and a chart redraw) settle
	}
	var data string
	err := b.do(http.MethodGet, "/screenshot", nil, &data)
	if full {
		b.resize(rect.Width, rect.Height)
	}
	if err != nil {
		b.t.Errorf("screenshot %s: %v", name, err)
		return ""
	}
	png, err := base64.StdEncoding.DecodeString(data)
	if err != nil {
		b.t.Errorf("screenshot %s: %v", name, err)
		return ""
	}
	path := filepath.Join(b.shots, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Errorf("screenshot %s: %v", name, err)
	}
	return path
}

// logEntry is one browser console message.
type logEntry struct {
	Level   string `json:"level"`
	Message string `json:"message"`
}

// consoleLog returns (and clears) the console messages since the last call.
func (b *browser) consoleLog() []logEntry {
	b.t.Helper()
	var out []logEntry
	if err := b.do(http.MethodPost, "/se/log", map[string]any{"type": "browser"}, &out); err != nil {
		b.t.Fatalf("read the browser console: %v", err)
	}
	return out
}
