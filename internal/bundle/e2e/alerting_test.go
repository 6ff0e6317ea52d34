// Package e2e is the alerting proof: in the network lab, the real exporter,
// analyzer, Prometheus and Alertmanager (the current releases .ci/upstream
// builds, else Debian's) with the bundle's rules and alertmanager.yml; a
// recorder stands in for ntfy and Slack, answering as they do.
// It takes about six minutes (the rules' own `for:` durations are kept);
// -short skips it.
package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"text/template"
	"time"

	"github.com/smokemon/smokemon/internal/lab"
	"github.com/smokemon/smokemon/internal/testutil"
	"github.com/smokemon/smokemon/internal/upstream"
)

var root = func() string { r, _ := filepath.Abs("../../.."); return r }()

// note is one notification as the user would see it.
type note struct {
	at             time.Time
	kind           string // ntfy or slack
	status         string
	title, message string
	priority       string
}

// recorder plays ntfy (rendering its server-side templates the way ntfy does:
// Go text/template over the posted JSON, answering the message as JSON) and
// Slack (the attachment texts; a webhook answers the body "ok", and
// Alertmanager 0.35 retries on any other answer).
type recorder struct {
	mu    sync.Mutex
	notes []note
	t     *testing.T
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	n := note{at: time.Now()}
	switch {
	case strings.HasPrefix(req.URL.Path, "/slack"):
		var m struct {
			Attachments []struct{ Title, Text string } `json:"attachments"`
		}
		if err := json.Unmarshal(body, &m); err != nil || len(m.Attachments) == 0 {
			r.t.Errorf("slack payload: %v: %.300s", err, body)
			return
		}
		n.kind, n.title, n.message = "slack", m.Attachments[0].Title, m.Attachments[0].Text
		n.status = map[bool]string{true: "resolved", false: "firing"}[strings.HasPrefix(n.title, "[RESOLVED")]
		io.WriteString(w, "ok")
	default:
		q := req.URL.Query()
		if q.Get("tpl") != "1" && q.Get("tpl") != "yes" {
			r.t.Errorf("ntfy request without tpl=1: %s", req.URL)
		}
		var data map[string]any
		if err := json.Unmarshal(body, &data); err != nil {
			r.t.Errorf("ntfy payload: %v", err)
			return
		}
		render := func(name, tpl string) string {
			tm, err := template.New(name).Parse(tpl)
			if err != nil {
				r.t.Errorf("ntfy %s template: %v", name, err)
				return ""
			}
			var b strings.Builder
			if err := tm.Execute(&b, data); err != nil {
				r.t.Errorf("ntfy %s template: %v", name, err)
			}
			return b.String()
		}
		n.kind, n.priority = "ntfy", q.Get("p")
		n.title, n.message = render("t", q.Get("t")), render("m", q.Get("m"))
		n.status, _ = data["status"].(string)
		if req.Header.Get("Authorization") != "Bearer ntfy-test-token" {
			r.t.Errorf("ntfy request without the token from credentials_file: %q", req.Header.Get("Authorization"))
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"id": fmt.Sprintf("m%d", n.at.UnixNano()), "time": n.at.Unix(),
			"event": "message", "topic": strings.TrimPrefix(req.URL.Path, "/ntfy/"), "title": n.title, "message": n.message})
	}
	r.mu.Lock()
	r.notes = append(r.notes, n)
	r.mu.Unlock()
	r.t.Logf("%s %s [p=%s] %s | %s", n.at.Format("15:04:05"), n.kind, n.priority, n.title, strings.ReplaceAll(n.message, "\n", " / "))
}

// wait returns the first notification after since matching, or fails at the deadline.
func (r *recorder) wait(t *testing.T, since time.Time, bound time.Duration, what string, match func(note) bool) note {
	t.Helper()
	deadline := since.Add(bound)
	for time.Now().Before(deadline) {
		r.mu.Lock()
		for _, n := range r.notes {
			if !n.at.Before(since) && match(n) {
				r.mu.Unlock()
				return n
			}
		}
		r.mu.Unlock()
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("no %s within %v", what, bound)
	return note{}
}

func (r *recorder) since(t0 time.Time) []note {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []note
	for _, n := range r.notes {
		if !n.at.Before(t0) {
			out = append(out, n)
		}
	}
	return out
}

func TestAlertingEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("takes about six minutes")
	}
	lab.Require(t)
	prometheus := upstream.Current(t, "prometheus", "prometheus")
	alertmanager := upstream.Current(t, "alertmanager", "prometheus-alertmanager")
	t.Logf("on %s and %s", prometheus.Name, alertmanager.Name)
	tp := lab.Topology(t)
	s := &stack{t: t, tp: tp, dir: t.TempDir(), prometheus: prometheus, alertmanager: alertmanager}
	s.exporter = testutil.BuildBinary(t, "github.com/smokemon/smokemon/cmd/smokemon_exporter")
	if _, err := os.Stat(filepath.Join(root, "cmd/smokemon_analyzer")); err == nil {
		s.analyzer = testutil.BuildBinary(t, "github.com/smokemon/smokemon/cmd/smokemon_analyzer")
	}
	rec, recURL := startRecorder(t, tp.Client)
	s.start(recURL)

	p := &promAPI{client: &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: tp.Client.DialContext}}}
	waitBaseline(t, p, rec, s.analyzer != "")
	// Bound: the 1m/5m ratios cross their thresholds within seconds, `for: 1m`,
	// 1s evaluation, group_wait 1s: 60s + a few seconds; 100s leaves margin.
	const bound = 100 * time.Second
	t0, t1 := checkPacketLoss(t, tp, rec, s.analyzer != "", bound)
	t2 := checkISPOutage(t, tp, rec, p, bound)
	countNotes(t, rec, alertmanager.Name, t0, t1, t2)
}

// startRecorder serves the recorder in the client namespace, where
// Alertmanager runs, and returns its URL.
func startRecorder(t *testing.T, c *lab.Host) (*recorder, string) {
	ln, err := c.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{t: t}
	srv := &http.Server{Handler: rec}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return rec, "http://" + ln.Addr().String()
}

// stack is the exporter, Alertmanager, Prometheus and (when built) the
// analyzer, all in the client namespace.
type stack struct {
	t                        *testing.T
	tp                       *lab.Topo
	dir                      string
	exporter, analyzer       string // binaries; analyzer "" when cmd/smokemon_analyzer does not exist
	prometheus, alertmanager upstream.Binary
}

func (s *stack) write(name, content string) string {
	p := filepath.Join(s.dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		s.t.Fatal(err)
	}
	return p
}

func (s *stack) start(recURL string) {
	t, tp, c := s.t, s.tp, s.tp.Client
	// The exporter: the gateway (by the keyword) and the destination behind the ISP.
	cfg := s.write("smokemon.yml", fmt.Sprintf(`
global: {node_name: lab-client, interval: 100ms, timeout: 100ms}
ping:
  targets:
    - {host: gateway, name: gateway}
    - {host: %[1]s, name: dst}
mtr:
  interval: 1s
  targets:
    - {host: %[1]s, name: dst}
`, tp.Addr(tp.Dst[0], false)))
	c.Start(t, s.exporter, "--config.file="+cfg, "--web.listen-address=127.0.0.1:9917")

	// Alertmanager: the shipped config, with the receivers pointed at the
	// recorder, secrets in files, and short timers (group_wait and
	// group_interval are tuning, not logic; routes and inhibitions are as shipped).
	am, err := os.ReadFile(filepath.Join(root, "alertmanager/alertmanager.yml"))
	if err != nil {
		t.Fatal(err)
	}
	amCfg := strings.NewReplacer(
		"https://ntfy.example.net/smokemon-alerts", recURL+"/ntfy/smokemon-alerts",
		"/etc/alertmanager/secrets/slack-webhook-url", s.write("slack-url", recURL+"/slack/hook"),
		"/etc/alertmanager/secrets/ntfy-token", s.write("ntfy-token", "ntfy-test-token"),
		"templates/*.tmpl", filepath.Join(root, "alertmanager/templates/*.tmpl"),
		"group_wait: 30s", "group_wait: 1s",
		"group_interval: 5m", "group_interval: 2s",
	).Replace(string(am))
	c.Start(t, s.alertmanager.Path, "--config.file="+s.write("alertmanager.yml", amCfg),
		"--storage.path="+filepath.Join(s.dir, "am"), "--web.listen-address=127.0.0.1:9093", "--cluster.listen-address=")

	// Prometheus: the shipped rules, 1s scrapes and evaluations.
	rules, _ := filepath.Glob(filepath.Join(root, "prometheus/rules/*.yml"))
	promCfg := s.write("prometheus.yml", fmt.Sprintf(`
global: {scrape_interval: 1s, evaluation_interval: 1s}
rule_files: ["%s"]
alerting:
  alertmanagers: [{static_configs: [{targets: ["127.0.0.1:9093"]}]}]
scrape_configs:
  - job_name: smokemon
    static_configs: [{targets: ["127.0.0.1:9917"], labels: {node: lab-client}}]
  - job_name: smokemon_analyzer
    static_configs: [{targets: ["127.0.0.1:9918"]}]
`, strings.Join(rules, `", "`)))
	c.Start(t, s.prometheus.Path, "--config.file="+promCfg, "--storage.tsdb.path="+filepath.Join(s.dir, "tsdb"),
		"--web.listen-address=127.0.0.1:9090")
	if s.analyzer != "" {
		c.Start(t, s.analyzer, "serve", "--prometheus.url=http://127.0.0.1:9090", "--evaluation-interval=2s",
			"--rate-window=6s", "--long-window=10s", "--refetch=10s", "--lookback=5m", "--web.listen-address=127.0.0.1:9918")
	} else {
		t.Log("ANALYZER PART SKIPPED: cmd/smokemon_analyzer does not exist; no origin hop is asserted")
	}
}

// promAPI queries the lab's Prometheus from inside the client namespace.
type promAPI struct{ client *http.Client }

// query returns the first sample of expr, false when there is none.
func (p *promAPI) query(expr string) (float64, bool) {
	resp, err := p.client.Get("http://127.0.0.1:9090/api/v1/query?" + url.Values{"query": {expr}}.Encode())
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	var r struct {
		Data struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if json.NewDecoder(resp.Body).Decode(&r) != nil || len(r.Data.Result) == 0 {
		return 0, false
	}
	var v float64
	fmt.Sscan(r.Data.Result[0].Value[1].(string), &v)
	return v, true
}

func (p *promAPI) waitExpr(t *testing.T, expr string, bound time.Duration) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for {
		if _, ok := p.query(expr); ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no result within %v", expr, bound)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// waitBaseline waits for a clean baseline: both targets measured, no loss,
// and no notification yet.
func waitBaseline(t *testing.T, p *promAPI, rec *recorder, withAnalyzer bool) {
	t.Helper()
	p.waitExpr(t, `node_target:smokemon_ping_loss:ratio_1m{node="lab-client",target="dst"} == 0`, 60*time.Second)
	p.waitExpr(t, `node_target:smokemon_ping_loss:ratio_1m{node="lab-client",target="gateway"} == 0`, 10*time.Second)
	p.waitExpr(t, `smokemon_ping_target_info{node="lab-client",host="gateway"}`, 10*time.Second)
	if withAnalyzer {
		p.waitExpr(t, `smokemon_analyzer_up == 1`, 30*time.Second)
	}
	time.Sleep(10 * time.Second)
	if n := rec.since(time.Time{}); len(n) > 0 {
		t.Fatalf("notifications before any fault: %+v", n)
	}
}

// checkPacketLoss drops 30% of echo requests at the ISP router, checks both
// receivers' notifications, then heals and waits for the resolved one. It
// returns when the fault and the heal began.
func checkPacketLoss(t *testing.T, tp *lab.Topo, rec *recorder, withAnalyzer bool, bound time.Duration) (t0, t1 time.Time) {
	t.Helper()
	t0 = time.Now()
	heal := tp.ISP.DropRandom(t, 0.30, "icmp type echo-request")
	firing := func(kind string) func(n note) bool {
		return func(n note) bool {
			return n.kind == kind && n.status == "firing" && strings.Contains(n.title, "SmokemonPacketLoss")
		}
	}
	nt := rec.wait(t, t0, bound, "ntfy packet-loss notification", firing("ntfy"))
	sl := rec.wait(t, t0, bound, "slack packet-loss notification", firing("slack"))
	t.Logf("fault → notification: ntfy %v, slack %v (bound %v)", nt.at.Sub(t0).Round(time.Millisecond), sl.at.Sub(t0).Round(time.Millisecond), bound)
	fmt.Printf("measured fault-to-notification time: ntfy %v, slack %v\n", nt.at.Sub(t0).Round(time.Millisecond), sl.at.Sub(t0).Round(time.Millisecond))
	for _, n := range []note{nt, sl} {
		text := n.title + "\n" + n.message
		for _, want := range []string{"lab-client", "dst"} {
			if !strings.Contains(text, want) {
				t.Errorf("%s notification lacks %q:\n%s", n.kind, want, text)
			}
		}
		if withAnalyzer && !strings.Contains(text, "Loss starts at hop ") {
			t.Errorf("%s notification lacks the analyzer's origin hop:\n%s", n.kind, text)
		}
	}
	if nt.priority != "4" {
		t.Errorf("ntfy priority %q for a warning, want 4", nt.priority)
	}

	// Heal: the resolved notification arrives once the last minute is clean.
	t1 = time.Now()
	heal()
	res := rec.wait(t, t1, bound, "resolved packet-loss notification", func(n note) bool {
		return n.kind == "ntfy" && n.status == "resolved" && strings.Contains(n.title, "SmokemonPacketLoss")
	})
	t.Logf("heal → resolved: %v", res.at.Sub(t1).Round(time.Millisecond))
	return t0, t1
}

// checkISPOutage has the ISP router drop everything while the gateway still
// answers: one outage notification per receiver, no per-target loss alert.
// It returns when the outage began.
func checkISPOutage(t *testing.T, tp *lab.Topo, rec *recorder, p *promAPI, bound time.Duration) time.Time {
	t.Helper()
	time.Sleep(5 * time.Second)
	t2 := time.Now()
	tp.ISP.DropRandom(t, 1, "")
	out := rec.wait(t, t2, 2*bound, "ISP outage notification", func(n note) bool {
		return n.kind == "ntfy" && n.status == "firing" && strings.Contains(n.title, "SmokemonISPOutage")
	})
	t.Logf("outage → notification: %v", out.at.Sub(t2).Round(time.Millisecond))
	if out.priority != "5" {
		t.Errorf("ntfy priority %q for the critical outage, want 5", out.priority)
	}
	// TargetDown's `for: 2m` ends after the outage fired: wait until it
	// fires in Prometheus, so the inhibition is what keeps it quiet.
	deadline := time.Now().Add(150 * time.Second)
	for {
		if v, ok := p.query(`ALERTS{alertname="SmokemonTargetDown",alertstate="firing",node="lab-client"}`); ok && v == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("SmokemonTargetDown never fired during the outage: the inhibition would prove nothing")
		}
		time.Sleep(time.Second)
	}
	time.Sleep(10 * time.Second) // group_wait and a few group_intervals for a notification to show up
	outage := 0
	for _, n := range rec.since(t2) {
		if n.status != "firing" {
			continue
		}
		switch {
		case strings.Contains(n.title, "SmokemonISPOutage"):
			outage++
		case strings.Contains(n.title, "SmokemonPacketLoss"), strings.Contains(n.title, "SmokemonTargetDown"), strings.Contains(n.title, "SmokemonLinkDown"):
			t.Errorf("per-target alert during the ISP outage: %s %s", n.kind, n.title)
		}
	}
	if outage != 2 {
		t.Errorf("%d outage notifications, want one per receiver (ntfy, slack)", outage)
	}
	return t2
}

// countNotes: exactly one notification per receiver per alert and state,
// none repeated (a receiver's answer taken for a failure is retried): the
// loss firing from t0, resolved from t1, the outage firing from t2.
func countNotes(t *testing.T, rec *recorder, am string, t0, t1, t2 time.Time) {
	all := rec.since(time.Time{})
	var counts []string
	for _, c := range []struct {
		alert, status string
		from          time.Time
	}{
		{"SmokemonPacketLoss", "firing", t0},
		{"SmokemonPacketLoss", "resolved", t1},
		{"SmokemonISPOutage", "firing", t2},
	} {
		for _, kind := range []string{"ntfy", "slack"} {
			n := 0
			for _, x := range all {
				if x.kind == kind && x.status == c.status && strings.Contains(x.title, c.alert) && !x.at.Before(c.from) {
					n++
				}
			}
			counts = append(counts, fmt.Sprintf("%s %s %s: %d", kind, c.alert, c.status, n))
			if n != 1 {
				t.Errorf("%d %s notifications of %s %s, want exactly one", n, kind, c.alert, c.status)
			}
		}
	}
	msg := fmt.Sprintf("notifications on %s (%d in all): %s", am, len(all), strings.Join(counts, ", "))
	t.Log(msg)
	fmt.Println(msg)
}
