package main

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/websocket"

	"github.com/smokemon/smokemon/internal/testutil"
)

// browser is a headless Debian chromium driven over the DevTools protocol
// on loopback.
type browser struct {
	t    *testing.T
	base string // http://127.0.0.1:PORT of the DevTools endpoint
}

// page is one tab.
type page struct {
	t  *testing.T
	ws *websocket.Conn
	id int
}

// startChromium runs chromium, or skips the test when it is not installed.
func startChromium(t *testing.T) *browser {
	t.Helper()
	bin, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium is not installed (Debian package chromium, in .ci/test-packages): cannot load the status page")
	}
	dir := t.TempDir()
	// Chromium 111 and later refuse a DevTools WebSocket whose Origin they
	// were not told to allow; the port, and so the origin, is chosen at
	// start, and the socket listens on loopback only.
	cmd := exec.Command(bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir="+dir, "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0", "--remote-allow-origins=*",
		"--window-size=1280,900", "about:blank")
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	// Chromium writes the port it chose to DevToolsActivePort.
	var port string
	if testutil.Eventually(30*time.Second, 100*time.Millisecond, func() bool {
		b, err := os.ReadFile(filepath.Join(dir, "DevToolsActivePort"))
		p, _, ok := strings.Cut(string(b), "\n")
		port = p
		return err == nil && ok
	}) {
		return &browser{t: t, base: "http://127.0.0.1:" + port}
	}
	t.Fatalf("chromium did not open its DevTools port; output:\n%s", out.String())
	return nil
}

// open loads url in the browser's first tab (a tab opened in the
// background would not run its page's refresh timer).
func (b *browser) open(url string) *page {
	b.t.Helper()
	resp, err := http.Get(b.base + "/json/list")
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	var targets []struct{ Type, WebSocketDebuggerURL string }
	body, _ := io.ReadAll(resp.Body)
	json.Unmarshal(body, &targets)
	ws := ""
	for _, t := range targets {
		if t.Type == "page" && ws == "" {
			ws = t.WebSocketDebuggerURL
		}
	}
	if ws == "" {
		b.t.Fatalf("DevTools /json/list has no page: %s %s", resp.Status, body)
	}
	conn, err := websocket.Dial(ws, "", b.base)
	if err != nil {
		b.t.Fatal(err)
	}
	b.t.Cleanup(func() { conn.Close() })
	p := &page{t: b.t, ws: conn}
	var nav struct{ ErrorText string }
	p.call("Page.navigate", map[string]any{"url": url}, &nav)
	if nav.ErrorText != "" {
		b.t.Fatalf("chromium cannot load %s: %s", url, nav.ErrorText)
	}
	return p
}

// call sends a DevTools command and returns its result.
func (p *page) call(method string, params any, result any) {
	p.t.Helper()
	p.id++
	if err := websocket.JSON.Send(p.ws, map[string]any{"id": p.id, "method": method, "params": params}); err != nil {
		p.t.Fatal(err)
	}
	p.ws.SetReadDeadline(time.Now().Add(30 * time.Second))
	for {
		var msg struct {
			ID     int             `json:"id"`
			Result json.RawMessage `json:"result"`
			Error  *struct{ Message string }
		}
		if err := websocket.JSON.Receive(p.ws, &msg); err != nil {
			p.t.Fatalf("%s: %v", method, err)
		}
		if msg.ID != p.id {
			continue // an event
		}
		if msg.Error != nil {
			p.t.Fatalf("%s: %s", method, msg.Error.Message)
		}
		if result != nil {
			json.Unmarshal(msg.Result, result)
		}
		return
	}
}

// eval runs a JavaScript expression in the page and decodes its JSON value
// into v. The expression must return a JSON string.
func (p *page) eval(expr string, v any) {
	p.t.Helper()
	var r struct {
		Result struct {
			Value string
		}
		ExceptionDetails *struct{ Text string }
	}
	p.call("Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true}, &r)
	if r.ExceptionDetails != nil {
		p.t.Fatalf("%s: %s", expr, r.ExceptionDetails.Text)
	}
	if err := json.Unmarshal([]byte(r.Result.Value), v); err != nil {
		p.t.Fatalf("%s: %q: %v", expr, r.Result.Value, err)
	}
}

// waitFor evaluates a boolean expression until it holds.
func (p *page) waitFor(expr string, within time.Duration) bool {
	p.t.Helper()
	return testutil.Eventually(within, 200*time.Millisecond, func() bool {
		var ok bool
		p.eval("JSON.stringify(!!("+expr+"))", &ok)
		return ok
	})
}

// screenshot writes a PNG of the page.
func (p *page) screenshot(path string) {
	p.t.Helper()
	var r struct{ Data string }
	p.call("Page.captureScreenshot", map[string]any{"format": "png", "captureBeyondViewport": true}, &r)
	png, err := base64.StdEncoding.DecodeString(r.Data)
	if err != nil || len(png) == 0 {
		p.t.Fatalf("screenshot: %v (%d bytes)", err, len(png))
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		p.t.Fatal(err)
	}
	p.t.Logf("screenshot of the status page: %s (%d bytes)", path, len(png))
}

// pageState is what the status page shows, read from its DOM.
type pageState struct {
	Generated string
	Rows      []struct{ Name, State string }
	Charts    int // charts with a drawn RTT band, laid out wider than 100 px
	LossBars  int
	Host      int
	Events    int
}

const readPage = `JSON.stringify({
	generated: document.body ? document.body.dataset.generated : "",
	rows: [...document.querySelectorAll("tr.target")].map(r => ({name: r.cells[0].textContent, state: r.dataset.state})),
	charts: [...document.querySelectorAll("svg.chart")].filter(s => s.querySelector("polygon.band") && s.getBoundingClientRect().width > 100).length,
	lossBars: document.querySelectorAll("svg.chart rect.loss").length,
	host: document.querySelectorAll("#host li[data-name]").length,
	events: document.querySelectorAll("#events tr").length,
})`

func (p *page) read() pageState {
	p.t.Helper()
	var s pageState
	p.eval(readPage, &s)
	return s
}
