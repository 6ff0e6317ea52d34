package bundle

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/smokemon/smokemon/internal/testutil"
)

// stack is a real Prometheus (Debian's, or the current release) or
// VictoriaMetrics + vmalert scraping the real exporter and analyzer on
// loopback every second, with the bundle's rules loaded, plus
// the hardware fixtures' goldens served as extra "nodes" so panels for boards
// this machine is not get data too.
type stack struct {
	prom     string // base URL
	node     string // the live exporter's node label
	fixtures []string
	dir      string
}

// start runs a process until the test ends, logging its output on failure.
func start(t *testing.T, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	var mu sync.Mutex
	var out strings.Builder
	w := writerFunc(func(p []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return out.Write(p) })
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			mu.Lock()
			t.Logf("output of %s:\n%s", filepath.Base(name), tail(out.String(), 3000))
			mu.Unlock()
		}
	})
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// loopbackServers starts what the exporter's probes point at: an HTTP
// server, a DNS server (miekg/dns), a TCP listener and an iperf3 server.
func loopbackServers(t *testing.T) (httpURL, dnsAddr, tcpAddr, iperf string) {
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") })}
	go hs.Serve(hl)
	t.Cleanup(func() { hs.Close() })

	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ds := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		if len(r.Question) == 1 && r.Question[0].Qtype == dns.TypeA {
			rr, _ := dns.NewRR(r.Question[0].Name + " 60 IN A 127.0.0.1")
			m.Answer = append(m.Answer, rr)
		}
		w.WriteMsg(m)
	})}
	go ds.ActivateAndServe()
	t.Cleanup(func() { ds.Shutdown() })

	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := tl.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	t.Cleanup(func() { tl.Close() })

	if _, err := exec.LookPath("iperf3"); err == nil {
		p := testutil.FreePort(t)
		start(t, "iperf3", "-s", "-B", "127.0.0.1", "-p", fmt.Sprint(p))
		iperf = fmt.Sprintf("127.0.0.1:%d", p)
	}
	return "http://" + hl.Addr().String() + "/", pc.LocalAddr().String(), tl.Addr().String(), iperf
}

// fixtureServer serves each hardware fixture's golden as its own /metrics.
func fixtureServer(t *testing.T) (addr string, names []string) {
	goldens, _ := filepath.Glob(filepath.Join(root, "collector/testdata/fixtures/*.golden"))
	mux := http.NewServeMux()
	for _, g := range goldens {
		b, err := os.ReadFile(g)
		if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimSuffix(filepath.Base(g), ".golden")
		names = append(names, name)
		mux.HandleFunc("/"+name, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain; version=0.0.4")
			w.Write(b)
		})
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &http.Server{Handler: mux}
	go s.Serve(l)
	t.Cleanup(func() { s.Close() })
	return l.Addr().String(), names
}

func startStack(t *testing.T, b backend) *stack {
	if os.Geteuid() != 0 {
		t.Skip("needs root: raw ICMP sockets for ping and mtr")
	}
	dir := t.TempDir()
	exporter := testutil.BuildBinary(t, "github.com/smokemon/smokemon/cmd/smokemon_exporter")
	analyzerBin := ""
	if _, err := os.Stat(filepath.Join(root, "cmd/smokemon_analyzer")); err == nil {
		analyzerBin = testutil.BuildBinary(t, "github.com/smokemon/smokemon/cmd/smokemon_analyzer")
	}
	httpURL, dnsAddr, tcpAddr, iperf := loopbackServers(t)

	bw := ""
	if iperf != "" {
		bw = fmt.Sprintf(`
bandwidth:
  targets:
    - {server: "%s", name: lo-iperf, interval: 1h, splay: 0s, duration: 1s, warmup: 0s, idle_duration: 1s, ping_host: 127.0.0.1, ping_interval: 50ms}
`, iperf)
	}
	cfg := fmt.Sprintf(`
global: {node_name: bundle-test, interval: 200ms}
ping:
  targets:
    - {host: 127.0.0.1, name: lo1}
    - {host: 127.0.0.2, name: lo2}
mtr:
  interval: 1s
  targets:
    - {host: 127.0.0.1, name: lo1}
http:
  targets:
    - {url: "%s", name: lo-http, interval: 500ms}
dns:
  targets:
    - {query: smokemon.test., name: lo-dns, resolvers: ["%s"], interval: 500ms}
tcp:
  targets:
    - {address: "%s", name: lo-tcp, interval: 500ms}
%s`, httpURL, dnsAddr, tcpAddr, bw)
	cfgFile := filepath.Join(dir, "smokemon.yml")
	os.WriteFile(cfgFile, []byte(cfg), 0o644)
	exPort := testutil.FreePort(t)
	start(t, exporter, "--config.file="+cfgFile, fmt.Sprintf("--web.listen-address=127.0.0.1:%d", exPort))

	fixAddr, fixtures := fixtureServer(t)
	anPort := testutil.FreePort(t)
	var fixJobs strings.Builder
	for _, f := range fixtures {
		fmt.Fprintf(&fixJobs, `
  - job_name: fixture-%[1]s
    metrics_path: /%[1]s
    static_configs: [{targets: ["%[2]s"], labels: {node: "fixture-%[1]s"}}]
`, f, fixAddr)
	}
	rules, _ := filepath.Glob(filepath.Join(root, "prometheus/rules/*.yml"))
	// The current Prometheus scrapes as the shipped prometheus.yml says
	// (native histograms, classic ones kept).
	global := "  scrape_interval: 1s\n  evaluation_interval: 1s\n"
	if b.prom.Current {
		global += prometheus3Globals(t)
	}
	promCfg := fmt.Sprintf(`
global:
%srule_files: [%s]
scrape_configs:
  - job_name: smokemon
    static_configs: [{targets: ["127.0.0.1:%d"], labels: {node: bundle-test}}]
  - job_name: smokemon_analyzer
    static_configs: [{targets: ["127.0.0.1:%d"]}]
%s`, global, `"`+strings.Join(rules, `", "`)+`"`, exPort, anPort, fixJobs.String())
	promFile := filepath.Join(dir, "prometheus.yml")
	os.WriteFile(promFile, []byte(promCfg), 0o644)
	s := &stack{prom: startTSDB(t, b, dir, promFile, rules), node: "bundle-test", fixtures: fixtures, dir: dir}
	if analyzerBin != "" {
		start(t, analyzerBin, "serve", "--prometheus.url="+s.prom, "--evaluation-interval=2s", "--rate-window=5s",
			"--long-window=10s", "--refetch=10s", "--lookback=2m", fmt.Sprintf("--web.listen-address=127.0.0.1:%d", anPort))
	} else {
		t.Log("cmd/smokemon_analyzer does not exist: analyzer panels are checked for errors only")
	}
	return s
}

type promResult struct {
	Status    string `json:"status"`
	ErrorType string `json:"errorType"`
	Error     string `json:"error"`
	Data      struct {
		ResultType string            `json:"resultType"`
		Result     []json.RawMessage `json:"result"`
	} `json:"data"`
}

func (s *stack) get(ctx context.Context, path string, q url.Values) (*promResult, error) {
	req, _ := http.NewRequestWithContext(ctx, "GET", s.prom+path+"?"+q.Encode(), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var r promResult
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %v: %.200s", path, err, b)
	}
	if r.Status != "success" {
		return &r, fmt.Errorf("%s: %s", r.ErrorType, r.Error)
	}
	return &r, nil
}

// query runs a panel query the way Grafana does: a range query over the
// recent past, or an instant query for instant targets.
func (s *stack) query(expr string, instant bool) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	now := time.Now()
	q := url.Values{"query": {expr}}
	path := "/api/v1/query_range"
	if instant {
		path = "/api/v1/query"
		q.Set("time", fmt.Sprint(now.Unix()))
	} else {
		q.Set("start", fmt.Sprint(now.Add(-time.Minute).Unix()))
		q.Set("end", fmt.Sprint(now.Unix()))
		q.Set("step", "2")
	}
	r, err := s.get(ctx, path, q)
	if err != nil {
		return 0, err
	}
	return len(r.Data.Result), nil
}

func (s *stack) labelValues(label, match string) ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", s.prom+"/api/v1/label/"+label+"/values?"+url.Values{"match[]": {match}}.Encode(), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var r struct {
		Status string   `json:"status"`
		Error  string   `json:"error"`
		Data   []string `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return nil, err
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("%s", r.Error)
	}
	return r.Data, nil
}

// waitFor polls until every expression has a result.
func (s *stack) waitFor(t *testing.T, timeout time.Duration, exprs ...string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for _, e := range exprs {
		for {
			n, err := s.query(e, true)
			if err == nil && n > 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no data for %s after %v (err %v)", e, timeout, err)
			}
			time.Sleep(time.Second)
		}
	}
}

var labelValuesRe = regexp.MustCompile(`^label_values\((.*),\s*(\w+)\)$`)
var metricRe = regexp.MustCompile(`\b((?:node_target|node|fleet):[a-z0-9_:]+|smokemon_[a-z0-9_]+|process_[a-z_]+)`)

// TestDashboardQueries executes every panel query, variables substituted,
// against the stack: none may error, and each must return data unless its
// panel is marked as hardware-only (then data is required exactly when the
// fixtures provide its metrics) or as event-only (empty until an incident).
func TestDashboardQueries(t *testing.T) {
	bs := backends(t)
	withData := make([]map[string]bool, len(bs))
	t.Run("on", func(t *testing.T) {
		for i, b := range bs {
			t.Run(b.name, func(t *testing.T) {
				t.Parallel()
				s := startStack(t, b)
				withData[i] = checkDashboards(t, s)
				if b.prom.Current {
					checkNativeHistograms(t, s)
				}
			})
		}
	})
	// Every backend fills the same panels (event-only ones aside: incidents
	// come and go).
	for i := 1; i < len(bs); i++ {
		if withData[0] == nil || withData[i] == nil {
			continue
		}
		for p := range withData[0] {
			if !withData[i][p] {
				t.Errorf("panel %s has data on %s, none on %s", p, bs[0].name, bs[i].name)
			}
		}
		for p := range withData[i] {
			if !withData[0][p] {
				t.Errorf("panel %s has data on %s, none on %s", p, bs[i].name, bs[0].name)
			}
		}
	}
}

// subst replaces a query's variables the way Grafana does.
func subst(expr string, v map[string]string, interval string) string {
	r := []string{"$__rate_interval", "4s", "$__interval", interval, "$__range", "1m"}
	for k, val := range v {
		r = append(r, "$"+k, val)
	}
	return strings.NewReplacer(r...).Replace(expr)
}

// resolveVars resolves a dashboard's variables in order, as Grafana does:
// each may use the ones before; node is the live node.
func (s *stack) resolveVars(t *testing.T, file string, d dashboard) map[string]string {
	values := map[string]string{}
	for _, v := range d.Templating.List {
		m := labelValuesRe.FindStringSubmatch(v.Query.Query)
		if m == nil {
			t.Errorf("%s: variable %s: query %q is not label_values(…)", file, v.Name, v.Query.Query)
			continue
		}
		vals, err := s.labelValues(m[2], subst(m[1], values, "2s"))
		if err != nil || len(vals) == 0 {
			t.Errorf("%s: variable %s does not resolve: %v %v", file, v.Name, vals, err)
			continue
		}
		values[v.Name] = vals[0]
		if v.Name == "node" {
			if !contains(vals, s.node) {
				t.Errorf("%s: node variable %v lacks the live node %s", file, vals, s.node)
			}
			values[v.Name] = s.node
		}
	}
	return values
}

// checkDashboards runs every panel query on s and returns the panels with
// data ("file: title"), event-only panels left out.
func checkDashboards(t *testing.T, s *stack) map[string]bool {
	s.waitFor(t, 60*time.Second, readySeries()...)
	time.Sleep(5 * time.Second) // a few more scrapes: every rate window holds several samples

	names, err := s.labelValues("__name__", `{__name__=~".+"}`)
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, n := range names {
		have[n] = true
	}

	filled := map[string]bool{}
	var c coverage
	for _, file := range sortedKeys(loadDashboards(t)) {
		d := loadDashboards(t)[file]
		values := s.resolveVars(t, file, d)
		for _, a := range d.Annotations.List {
			if a.Expr != "" {
				if _, err := s.query(subst(a.Expr, values, "2s"), false); err != nil {
					t.Errorf("%s: annotation %s: %v", file, a.Name, err)
				}
			}
		}
		for _, p := range flatten(d.Panels) {
			if p.Type != "row" && s.checkPanel(t, file, p, values, have, &c) {
				filled[file+": "+p.Title] = true
			}
		}
	}
	msg := fmt.Sprintf("dashboard coverage on %s: %d panels checked / %d panels with data (hardware-only: %d, %d with fixture data; event-only: %d, %d with data now); %d query errors",
		strings.TrimPrefix(t.Name(), "TestDashboardQueries/on/"), c.checked, c.withData, c.hwPanels, c.hwData, c.evPanels, c.evData, c.queryErrors)
	t.Log(msg)
	fmt.Println(msg)
	return filled
}

// readySeries are the series whose presence means every probe and rule the
// dashboards draw on has produced data.
func readySeries() []string {
	ready := []string{
		`smokemon_ping_rtt_seconds_bucket{node="bundle-test"}`,
		`smokemon_mtr_hop_info{node="bundle-test"}`,
		`smokemon_dns_lookup_duration_seconds_count{node="bundle-test"}`,
		`smokemon_http_phase_duration_seconds_count{node="bundle-test"}`,
		`smokemon_tcp_connect_duration_seconds_count{node="bundle-test"}`,
		`fleet:smokemon_nodes_healthy:count`,
		`node:smokemon_ping_rtt_seconds:max_median_5m`,
		// Recorded from another group's output: vmalert evaluates the groups
		// apart, so it can lag the rest by an interval (one CI run saw none).
		`fleet:smokemon_ping_loss:worst_ratio_5m`,
	}
	if _, err := exec.LookPath("iperf3"); err == nil {
		ready = append(ready, `smokemon_bandwidth_bufferbloat_grade_info{node="bundle-test"}`)
	}
	if _, err := os.Stat(filepath.Join(root, "cmd/smokemon_analyzer")); err == nil {
		ready = append(ready, `smokemon_analyzer_node_health_info{node="bundle-test"}`, `smokemon_analyzer_mos{node="bundle-test"}`)
	}
	return ready
}

// coverage counts the panels checkDashboards looked at and those with data.
type coverage struct {
	checked, withData, hwPanels, hwData, evPanels, evData, queryErrors int
}

// checkPanel runs panel p's queries of dashboard file, counts it in c and
// reports whether it has data and is not event-only (then every backend
// must fill it). have holds every metric name the stack has.
func (s *stack) checkPanel(t *testing.T, file string, p panel, values map[string]string, have map[string]bool, c *coverage) bool {
	c.checked++
	hardware, event := Markers(p.Description)
	vals := values
	if hardware != "" {
		// The fixtures are nodes of their own: look at every node.
		vals = map[string]string{}
		for k, v := range values {
			vals[k] = v
		}
		vals["node"] = ".+"
		c.hwPanels++
	}
	if event != "" {
		c.evPanels++
	}
	interval := "2s"
	if p.Interval != "" {
		interval = p.Interval
	}
	panelData := true
	for _, q := range p.Targets {
		expr := subst(q.Expr, vals, interval)
		n, err := s.query(expr, q.Instant)
		if err != nil {
			c.queryErrors++
			t.Errorf("%s: %q %s: %v\n\t%s", file, p.Title, q.RefID, err, expr)
			panelData = false
			continue
		}
		if n > 0 {
			continue
		}
		panelData = false
		missing := []string{}
		for _, m := range metricRe.FindAllString(q.Expr, -1) {
			if !have[m] {
				missing = append(missing, m)
			}
		}
		switch {
		case event != "":
		case hardware != "" && len(missing) > 0:
			t.Logf("%s: %q %s: no data (hardware %s; no fixture has %v)", file, p.Title, q.RefID, hardware, missing)
		default:
			t.Errorf("%s: %q %s: no data (missing series: %v; %s)\n\t%s", file, p.Title, q.RefID, missing, s.lastSamples(q.Expr), expr)
		}
	}
	if panelData {
		c.withData++
		if hardware != "" {
			c.hwData++
		}
		if event != "" {
			c.evData++
		}
	}
	return panelData && event == ""
}
