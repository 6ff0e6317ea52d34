package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/smokemon/smokemon/internal/status"
)

func get(t *testing.T, e *exporter, path string, header ...string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.base+path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s\n%s", path, resp.Status, b)
	}
	return resp, string(b)
}

// statusJSON decodes /status?format=json strictly: a field the report does
// not declare fails.
func statusJSON(t *testing.T, e *exporter) *status.Report {
	t.Helper()
	_, body := get(t, e, "/status?format=json")
	dec := json.NewDecoder(strings.NewReader(body))
	dec.DisallowUnknownFields()
	var r status.Report
	if err := dec.Decode(&r); err != nil {
		t.Fatalf("/status?format=json: %v\n%s", err, body)
	}
	if r.Schema != status.SchemaVersion {
		t.Errorf("schema %q, want %q", r.Schema, status.SchemaVersion)
	}
	return &r
}

// waitStatus polls the JSON report until ok holds.
func waitStatus(t *testing.T, e *exporter, within time.Duration, ok func(*status.Report) bool) *status.Report {
	t.Helper()
	var r *status.Report
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(time.Second) {
		if r = statusJSON(t, e); ok(r) {
			return r
		}
	}
	b, _ := json.MarshalIndent(r, "", " ")
	t.Fatalf("status never got there in %v; last report:\n%s", within, b)
	return nil
}

func measured(r *status.Report) bool {
	for _, tg := range r.Targets {
		if n := len(tg.Slots); n == 0 || tg.Slots[n-1].Sent == 0 && tg.Slots[max(n-2, 0)].Sent == 0 {
			return false
		}
	}
	return len(r.Targets) > 0
}

// The exporter serves /status from its own memory in the three formats,
// and the landing page links it. Loopback targets only.
func TestStatusEndpoint(t *testing.T) {
	dir := t.TempDir()
	cfg := writeFile(t, dir, "c.yml", `
global: {interval: 100ms, node_name: status-test}
ping:
  targets:
    - {host: 127.0.0.1, name: lo-a}
    - {host: 127.0.0.2, name: lo-b}
    - {host: 127.0.0.3, name: lo-c}
`)
	e := start(t, "--config.file="+cfg, "--collector.disable-defaults", "--collector.ping", "--collector.cpu", "--collector.memory", "--collector.pressure")
	r := waitStatus(t, e, 30*time.Second, measured)
	for i, want := range []string{"lo-a", "lo-b", "lo-c"} { // in the config's order
		if tg := r.Targets[i]; tg.Name != want || tg.State != status.StateUp || !(float64(tg.RTTMedian) > 0) || float64(tg.Loss1m) != 0 {
			t.Errorf("target %d: %+v, want %s up with an RTT and no loss", i, tg, want)
		}
	}
	if r.Node != "status-test" {
		t.Errorf("node %q", r.Node)
	}
	names := map[string]bool{}
	for _, f := range r.Host {
		names[f.Name] = true
	}
	for _, want := range []string{"cpu", "memory"} {
		if !names[want] {
			t.Errorf("host figures lack %s: %+v", want, r.Host)
		}
	}

	resp, text := get(t, e, "/status")
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("curl gets %s", ct)
	}
	for _, want := range []string{"smokemon status of status-test", "lo-a ", "lo-b ", "lo-c ", "host: cpu "} {
		if !strings.Contains(text, want) {
			t.Errorf("text lacks %q:\n%s", want, text)
		}
	}
	for _, line := range strings.Split(text, "\n") {
		if utf8.RuneCountInString(line) > status.Width {
			t.Errorf("line over %d columns: %q", status.Width, line)
		}
	}
	resp, html := get(t, e, "/status", "Accept", "text/html,application/xhtml+xml")
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") || !strings.Contains(html, `<svg class="chart"`) {
		t.Errorf("a browser gets %s:\n%.300s", ct, html)
	}
	if strings.Contains(html, "http://") || strings.Contains(html, "https://") || strings.Contains(html, "src=") {
		t.Error("the page refers to something outside itself")
	}
	_, landing := get(t, e, "/")
	if !strings.Contains(landing, `href="/status"`) {
		t.Errorf("landing page does not link /status:\n%s", landing)
	}

	// Reloads are events.
	if resp, err := e.client.Post(e.base+"/-/reload", "", nil); err != nil || resp.StatusCode != 200 {
		t.Fatalf("reload: %v %v", resp, err)
	}
	if r := statusJSON(t, e); len(r.Events) == 0 || r.Events[0].Kind != status.EventReload {
		t.Errorf("no reload event: %+v", r.Events)
	}
}

// The HTML page in headless chromium: a row and a chart per target, the
// host figures, and a reload by itself after its refresh interval.
func TestStatusPageInChromium(t *testing.T) {
	b := startChromium(t)
	dir := t.TempDir()
	cfg := writeFile(t, dir, "c.yml", `
global: {interval: 100ms, node_name: chromium-test}
ping:
  targets:
    - {host: 127.0.0.1, name: lo-a}
    - {host: 127.0.0.2, name: lo-b}
`)
	e := start(t, "--config.file="+cfg, "--collector.disable-defaults", "--collector.ping", "--collector.memory")
	waitStatus(t, e, 30*time.Second, measured)
	p := b.open(e.base + "/status?format=html&refresh=2")
	if !p.waitFor(`document.querySelectorAll("tr.target").length == 2`, 20*time.Second) {
		t.Fatalf("the page shows no target rows: %+v", p.read())
	}
	first := p.read()
	if len(first.Rows) != 2 || first.Rows[0].Name != "lo-a" || first.Rows[0].State != "up" || first.Rows[1].Name != "lo-b" {
		t.Errorf("rows %+v, want lo-a and lo-b up", first.Rows)
	}
	if first.Charts != 2 {
		t.Errorf("%d charts drawn, want one per target", first.Charts)
	}
	if first.Host == 0 {
		t.Error("no host figures on the page")
	}
	// The page reloads itself: a new rendering, not the old DOM.
	if !p.waitFor(fmt.Sprintf(`document.body && document.body.dataset.generated != %q && document.querySelectorAll("tr.target").length == 2`, first.Generated), 10*time.Second) {
		t.Fatalf("the page did not refresh within 10 s (refresh=2): %+v", p.read())
	}
	if path := os.Getenv("SMOKEMON_STATUS_SCREENSHOT"); path != "" {
		p.screenshot(path)
	}
}
