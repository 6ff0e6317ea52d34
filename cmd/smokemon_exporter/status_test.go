package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/smokemon/smokemon/internal/lab"
	"github.com/smokemon/smokemon/internal/status"
	"github.com/smokemon/smokemon/internal/testutil"
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
	if testutil.Eventually(within, time.Second, func() bool { r = statusJSON(t, e); return ok(r) }) {
		return r
	}
	b, _ := json.MarshalIndent(r, "", " ")
	t.Fatalf("status never got there in %v; last report:\n%s", within, b)
	return nil
}

// requirePing skips when the exporter could not open an IPv4 ICMP socket
// (no CAP_NET_RAW and net.ipv4.ping_group_range excludes us).
func requirePing(t *testing.T, e *exporter) {
	t.Helper()
	if v := sample(e.scrape(t), `smokemon_ping_prober_up{family="ip4"}`); v != 1 {
		t.Skip("no IPv4 ICMP socket (neither CAP_NET_RAW nor net.ipv4.ping_group_range): the status has nothing to show")
	}
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
	requirePing(t, e)
	// CPU busy is a rate: it shows once two host samples are 10 s apart.
	r := waitStatus(t, e, 40*time.Second, func(r *status.Report) bool {
		return measured(r) && slices.ContainsFunc(r.Host, func(f status.Figure) bool { return f.Name == "cpu" })
	})
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
	requirePing(t, e)
	waitStatus(t, e, 30*time.Second, measured)
	if resp, err := e.client.Post(e.base+"/-/reload", "", nil); err != nil || resp.StatusCode != 200 { // an event to list
		t.Fatalf("reload: %v %v", resp, err)
	}
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
	if first.Host == 0 || first.Events != 1 {
		t.Errorf("%d host figures and %d events on the page, want some and the reload", first.Host, first.Events)
	}
	// The page reloads itself: a new rendering, not the old DOM.
	if !p.waitFor(fmt.Sprintf(`document.body && document.body.dataset.generated != %q && document.querySelectorAll("tr.target").length == 2`, first.Generated), 10*time.Second) {
		t.Fatalf("the page did not refresh within 10 s (refresh=2): %+v", p.read())
	}
}

// In the lab: five loopback targets and one behind a gateway that drops 20%
// of the echo requests it forwards. /status must call that one lossy, put
// the start of its loss at hop 2 of its mtr path (the hop after the
// gateway), and log a loss burst; the loopback targets stay clean. With
// SMOKEMON_STATUS_SCREENSHOT=FILE.png it also takes a screenshot of the page
// in chromium, after SMOKEMON_STATUS_MINUTES (default 0) more minutes.
func TestStatusLossyTargetInLab(t *testing.T) {
	lab.Require(t)
	tp := lab.Topology(t)
	dst := tp.Addr(tp.Dst[0], false)
	tp.Gateway.DropRandom(t, 0.20, "icmp type echo-request")
	cfg := writeFile(t, t.TempDir(), "c.yml", fmt.Sprintf(`
global: {interval: 100ms, node_name: lab-client}
ping:
  targets:
    - {host: 127.0.0.1, name: loopback-1}
    - {host: 127.0.0.2, name: loopback-2}
    - {host: 127.0.0.3, name: loopback-3}
    - {host: 127.0.0.4, name: loopback-4}
    - {host: "::1", name: loopback-6}
    - {host: %[1]s, name: lossy-dst}
mtr:
  interval: 1s
  probes: 5
  timeout: 200ms
  max_hops: 6
  targets:
    - {host: %[1]s, name: lossy-dst}
`, dst))
	e := labExporter(t, tp.Client, nil, "--config.file="+cfg, "--collector.disable-defaults",
		"--collector.ping", "--collector.mtr", "--collector.cpu", "--collector.memory", "--collector.pressure", "--collector.netstat")
	r := waitStatus(t, e, 90*time.Second, func(r *status.Report) bool {
		if len(r.Targets) != 6 {
			return false
		}
		l := r.Targets[5]
		burst := false
		for _, ev := range r.Events {
			burst = burst || ev.Kind == status.EventLossBurst && ev.Target == "lossy-dst"
		}
		return l.State == status.StateLossy && l.Path != nil && l.Path.LossOrigin == 2 && burst
	})
	for _, tg := range r.Targets[:5] {
		if tg.State != status.StateUp || float64(tg.Loss1m) != 0 {
			t.Errorf("%s: %s, %v lost over 1m; want up without loss", tg.Name, tg.State, tg.Loss1m)
		}
	}
	l := r.Targets[5]
	n := 0
	for _, s := range l.Slots[len(l.Slots)-10:] {
		n += s.Sent
	}
	// 4.5 standard deviations of a binomial(n, 0.2) loss ratio.
	if tol := 4.5 * math.Sqrt(0.2*0.8/float64(n)); math.Abs(float64(l.Loss5m)-0.2) > tol || l.Path.OriginAddr != tp.Addr(tp.ISP, false).String() {
		t.Errorf("lossy-dst: 5m loss %v over %d probes (want 0.2 ± %.3f), loss origin %q (want the ISP router %s)",
			l.Loss5m, n, tol, l.Path.OriginAddr, tp.Addr(tp.ISP, false))
	}
	shot := os.Getenv("SMOKEMON_STATUS_SCREENSHOT")
	if shot == "" {
		_, text := get(t, e, "/status")
		t.Logf("/status:\n%s", text)
		return
	}
	if m, _ := strconv.Atoi(os.Getenv("SMOKEMON_STATUS_MINUTES")); m > 0 {
		time.Sleep(time.Duration(m) * time.Minute)
	}
	_, text := get(t, e, "/status")
	t.Logf("/status:\n%s", text)
	// Chromium runs outside the lab: a proxy on loopback reaches the exporter inside.
	u, _ := url.Parse(e.base)
	proxy := httputil.NewSingleHostReverseProxy(u)
	proxy.Transport = &http.Transport{DialContext: tp.Client.DialContext}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Logf("proxy: %s %s", r.Method, r.URL)
		proxy.ServeHTTP(w, r)
	}))
	defer srv.Close()
	if resp, err := http.Get(srv.URL + "/status"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("through the proxy: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	p := startChromium(t).open(srv.URL + "/status?format=html")
	if !p.waitFor(`document.querySelectorAll("tr.target").length == 6`, 20*time.Second) {
		var loc string
		p.eval(`JSON.stringify(location.href + " " + document.readyState + " " + document.documentElement.outerHTML.slice(0, 400))`, &loc)
		t.Fatalf("the page (%s) shows %+v", loc, p.read())
	}
	p.screenshot(shot)
}
