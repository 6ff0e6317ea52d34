package diagnose

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/smokemon/smokemon/internal/lab"
	"github.com/smokemon/smokemon/internal/testutil"
)

// The suite's clock: 5 s scrapes, 10 s evaluations (the figures of issue 15).
const (
	scrape = 5 * time.Second
	step   = 10 * time.Second
)

var bins struct{ exporter, analyzer string }

func TestMain(m *testing.M) {
	code := testutil.Run(m)
	printTable()
	os.Exit(code)
}

// build compiles the exporter and the analyzer once per test binary.
func build(t *testing.T) {
	bins.exporter = testutil.BuildBinary(t, "../../cmd/smokemon_exporter")
	bins.analyzer = testutil.BuildBinary(t, "../../cmd/smokemon_analyzer")
}

// prometheusBin is looked up as analyzer/scenario does: prometheus on PATH.
func prometheusBin(t *testing.T) string {
	p, err := exec.LookPath("prometheus")
	if err != nil {
		t.Skip("diagnose: no prometheus on PATH (apt-get install prometheus)")
	}
	return p
}

// rig is one lab with the whole stack running in the client's namespace.
type rig struct {
	t         *testing.T
	tp        *lab.Topo
	client2   *lab.Host // second node behind the same gateway (fleet faults), or nil
	dns       *lab.DNSServer
	dst, dst2 string // destination addresses
	iperf     string // iperf3 server address on dst
	delay     *lab.Delay
	http      *http.Client
	obs       *observer
	started   time.Time
	clientIf  string // the client's interface towards the gateway
	dir       string
	nodes     []string
}

func newRig(t *testing.T, fleet bool) *rig {
	lab.Require(t)
	prom := prometheusBin(t)
	if _, err := exec.LookPath("iperf3"); err != nil {
		t.Skip("diagnose: no iperf3 (apt-get install iperf3)")
	}
	build(t)
	tp := lab.Topology(t, "dst", "dst2")
	r := &rig{t: t, tp: tp, dir: t.TempDir(), dst: tp.Addr(tp.Dst[0], false).String(), dst2: tp.Addr(tp.Dst[1], false).String(),
		clientIf: tp.Home.Ifs[lab.SideA], nodes: []string{"lab-a"}}
	os.Chmod(r.dir, 0o755)
	// The gateway rate-limits its ICMP errors throughout: a trap for path
	// localisation, whose hop 1 shows loss that later hops do not share.
	tp.Gateway.LimitICMP(time.Second)
	r.delay = tp.Delay(t)
	r.dns = tp.Dst[0].DNSServer(t, r.dst)
	r.dns.Set("www.lab.test.", r.dst)
	r.iperf = tp.Dst[0].Iperf3Server(t, r.dst)

	r.exporter(tp.Client, "lab-a", "127.0.0.1:9917")
	targets := `['127.0.0.1:9917']
        labels: {node: lab-a, site: lab}`
	if fleet {
		r.client2 = tp.Lab.Host("client2")
		tp.Lab.Link(r.client2, "198.18.3.2/24,2001:2:0:3::2/64", tp.Gateway, "198.18.3.1/24,2001:2:0:3::1/64")
		r.client2.Route("default", "198.18.3.1")
		r.client2.Route("default", "2001:2:0:3::1")
		tp.ISP.Route("198.18.3.0/24", tp.Uplink.Addr(lab.SideA, false).String())
		tp.ISP.Route("2001:2:0:3::/64", tp.Uplink.Addr(lab.SideA, true).String())
		r.exporter(r.client2, "lab-b", "198.18.3.2:9917")
		targets += `
      - targets: ['198.18.3.2:9917']
        labels: {node: lab-b, site: lab}`
		r.nodes = append(r.nodes, "lab-b")
	}
	rules, err := filepath.Abs("../../prometheus/rules")
	if err != nil {
		t.Fatal(err)
	}
	promCfg := filepath.Join(r.dir, "prometheus.yml")
	os.WriteFile(promCfg, []byte(fmt.Sprintf(`
global: {scrape_interval: %s, evaluation_interval: %s}
rule_files: ['%s/*.yml']
scrape_configs:
  - job_name: smokemon
    static_configs:
      - targets: %s
  - job_name: smokemon_analyzer
    honor_labels: true
    static_configs:
      - targets: ['127.0.0.1:9918']
`, scrape, step, rules, targets)), 0o644)
	tp.Client.Start(t, prom, "--config.file="+promCfg, "--storage.tsdb.path="+filepath.Join(r.dir, "tsdb"),
		"--web.listen-address=127.0.0.1:9090")
	r.http = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: tp.Client.DialContext}}
	r.waitURL("http://127.0.0.1:9090/-/ready", 60*time.Second)
	tp.Client.Start(t, bins.analyzer, "--prometheus.url=http://127.0.0.1:9090", "--evaluation-interval="+step.String(),
		"--rate-window=30s", "--short-window=15s", "--long-window=1m", "--lookback=20m", "--refetch=1m",
		"serve", "--web.listen-address=127.0.0.1:9918")
	r.waitReady()
	r.started = time.Now()
	r.obs = newObserver(r)
	t.Cleanup(r.obs.stop)
	return r
}

func (r *rig) exporter(h *lab.Host, node, listen string) {
	cfg := filepath.Join(r.dir, node+".yml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`
global: {interval: 1s, timeout: 1s}
ping:
  targets:
    - {host: gateway, name: gateway, family: ip4}
    - {host: %[1]s, name: dst}
    - {host: %[2]s, name: dst2}
mtr:
  interval: 2s
  probes: 3
  timeout: 600ms
  max_hops: 6
  targets:
    - {host: %[1]s, name: dst}
dns:
  interval: 2s
  timeout: 1500ms
  targets:
    - {query: www.lab.test, name: www, resolvers: [%[1]s]}
`, r.dst, r.dst2)), 0o644)
	h.Start(r.t, bins.exporter, "--config.file="+cfg, "--collector.disable-defaults", "--collector.ping", "--collector.mtr",
		"--collector.dns", "--collector.cpu", "--collector.memory", "--collector.netstat", "--collector.pressure",
		"--web.listen-address="+listen)
}

func (r *rig) waitURL(url string, d time.Duration) {
	deadline := time.Now().Add(d)
	for {
		resp, err := r.http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("%s not ready after %v", url, d)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (r *rig) get(path string, v any) error {
	resp, err := r.http.Get("http://127.0.0.1:9918" + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("%s: %s", path, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// waitReady: the analyzer is up and sees every node's ping data.
func (r *rig) waitReady() {
	deadline := time.Now().Add(90 * time.Second)
	for {
		var f struct {
			Up    bool
			Nodes []struct {
				Node  string
				Blind bool
			}
		}
		if err := r.get("/api/v1/fleet", &f); err == nil && f.Up {
			seen := 0
			for _, n := range f.Nodes {
				if !n.Blind {
					seen++
				}
			}
			if seen == len(r.nodes) {
				return
			}
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("the analyzer never saw %d nodes with data", len(r.nodes))
		}
		time.Sleep(time.Second)
	}
}

// incident is the part of the analyzer's JSON the suite scores.
type incident struct {
	ID, Node, Target, Kind string
	Active                 bool
	Start, End             time.Time
	OriginHop              int    `json:"origin_hop"`
	NoLocalCause           bool   `json:"no_local_cause"`
	SupersededBy           string `json:"superseded_by"`
	Blame                  []struct{ Signal string }
}

type fleetIncident struct {
	ID, Scope, Key string
	Members        []string
	Active         bool
	Start, End     time.Time
	SupersededBy   string `json:"superseded_by"`
}

// seen is what the observer knows of one incident.
type seen struct {
	incident
	first, last time.Time // wall times of the first and last poll that listed it
	activeUntil time.Time // last poll that listed it active
}

// observer polls the analyzer's incidents every second and remembers every
// incident ever listed; one that leaves the list while active, without an
// end or superseded_by, is a violation.
type observer struct {
	r        *rig
	mu       sync.Mutex
	byID     map[string]*seen
	fleet    map[string]time.Time // scope/key → first seen active
	members  map[string][]string
	fleetIDs map[string]*fleetIncident // every fleet incident ever listed, as last listed
	vanished []string
	done     chan struct{}
	wg       sync.WaitGroup
}

func newObserver(r *rig) *observer {
	o := &observer{r: r, byID: map[string]*seen{}, fleet: map[string]time.Time{}, members: map[string][]string{},
		fleetIDs: map[string]*fleetIncident{}, done: make(chan struct{})}
	o.wg.Add(1)
	go o.loop()
	return o
}

func (o *observer) stop() {
	select {
	case <-o.done:
	default:
		close(o.done)
	}
	o.wg.Wait()
}

func (o *observer) loop() {
	defer o.wg.Done()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-o.done:
			return
		case <-tick.C:
		}
		var resp struct {
			Incidents []incident
			Fleet     []fleetIncident `json:"fleet_incidents"`
		}
		if err := o.r.get("/api/v1/incidents", &resp); err != nil {
			continue
		}
		now := time.Now()
		o.mu.Lock()
		listed := map[string]bool{}
		for _, in := range resp.Incidents {
			listed[in.ID] = true
			s := o.byID[in.ID]
			if s == nil {
				s = &seen{first: now}
				o.byID[in.ID] = s
			}
			s.incident, s.last = in, now
			if in.Active {
				s.activeUntil = now
			}
		}
		for id, s := range o.byID {
			if !listed[id] && s.Active && s.last.After(now.Add(-3*time.Second)) {
				o.vanished = append(o.vanished, id)
				s.Active = false
			}
		}
		for _, in := range resp.Incidents {
			if !in.Active && in.End.IsZero() {
				o.vanished = append(o.vanished, in.ID+" (listed ended without an end time)")
			}
		}
		fleetListed := map[string]bool{}
		for _, f := range resp.Fleet {
			k := f.Scope + "/" + f.Key
			if _, ok := o.fleet[k]; !ok && f.Active {
				o.fleet[k] = now
				o.members[k] = f.Members
			}
			fleetListed[f.ID] = true
			if !f.Active && f.End.IsZero() {
				o.vanished = append(o.vanished, f.ID+" (listed ended without an end time)")
			}
			o.fleetIDs[f.ID] = &f
		}
		// A fleet incident has a node incident's lifecycle: it never leaves
		// the list while active.
		for id, f := range o.fleetIDs {
			if !fleetListed[id] && f.Active {
				o.vanished = append(o.vanished, id)
				f.Active = false
			}
		}
		o.mu.Unlock()
	}
}

// since lists the incidents first listed at or after t, oldest first.
func (o *observer) since(t time.Time) []seen {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []seen
	for _, s := range o.byID {
		if !s.first.Before(t) {
			out = append(out, *s)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].first.Before(out[j].first) })
	return out
}

func (o *observer) get(id string) seen {
	o.mu.Lock()
	defer o.mu.Unlock()
	return *o.byID[id]
}

func (o *observer) violations() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.vanished...)
}

func describe(ss []seen) string {
	var parts []string
	for _, s := range ss {
		b := "-"
		if len(s.Blame) > 0 {
			b = s.Blame[0].Signal
		}
		parts = append(parts, fmt.Sprintf("%s/%s/%s active=%v origin=%d blame=%s nolocal=%v sup=%q", s.Node, s.Kind, s.Target, s.Active, s.OriginHop, b, s.NoLocalCause, s.SupersededBy))
	}
	return "[" + strings.Join(parts, "; ") + "]"
}

// timeline logs what the analyzer read around a slow detection: the RTT
// and loss of the target over the rate and short windows, every 5 s from
// 30 s before the fault, and the incidents the observer saw, so that the
// table's number comes with what delayed it.
func (r *rig) timeline(t *testing.T, node, target string, at time.Time) {
	sel := fmt.Sprintf(`{node=%q,target=%q}`, node, target)
	exprs := map[string]string{
		"rtt30s":  `rate(smokemon_ping_rtt_seconds_sum` + sel + `[30s]) / rate(smokemon_ping_rtt_seconds_count` + sel + `[30s])`,
		"rtt15s":  `rate(smokemon_ping_rtt_seconds_sum` + sel + `[15s]) / rate(smokemon_ping_rtt_seconds_count` + sel + `[15s])`,
		"loss30s": `increase(smokemon_ping_lost_total` + sel + `[30s]) / increase(smokemon_ping_sent_total` + sel + `[30s])`,
	}
	for _, name := range []string{"rtt30s", "rtt15s", "loss30s"} {
		q := fmt.Sprintf("http://127.0.0.1:9090/api/v1/query_range?query=%s&start=%d&end=%d&step=5",
			url.QueryEscape(exprs[name]), at.Add(-30*time.Second).Unix(), time.Now().Unix())
		resp, err := r.http.Get(q)
		if err != nil {
			t.Logf("timeline %s: %v", name, err)
			continue
		}
		var v struct {
			Data struct{ Result []struct{ Values [][2]any } }
		}
		json.NewDecoder(resp.Body).Decode(&v)
		resp.Body.Close()
		var parts []string
		for _, s := range v.Data.Result {
			for _, p := range s.Values {
				ts, _ := p[0].(float64)
				parts = append(parts, fmt.Sprintf("%+.0fs=%v", time.Unix(int64(ts), 0).Sub(at).Seconds(), p[1]))
			}
		}
		t.Logf("timeline %s %s: %s", node, name, strings.Join(parts, " "))
	}
	for _, s := range r.obs.since(at.Add(-2 * time.Second)) {
		t.Logf("timeline incident %s: listed %+.0fs, start %+.0fs", s.ID, s.first.Sub(at).Seconds(), s.Start.Sub(at).Seconds())
	}
}
