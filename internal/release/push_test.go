package release

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/smokemon/smokemon/internal/lab"
)

// promQuery asks a Prometheus (through a lab host's network) for an instant
// query and returns its result.
func promQuery(c *http.Client, query string, at time.Time) ([]promSeries, error) {
	u := "http://127.0.0.1:9090/api/v1/query?" + url.Values{"query": {query}, "time": {strconv.FormatFloat(float64(at.UnixMilli())/1000, 'f', 3, 64)}}.Encode()
	resp, err := c.Get(u)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []promSeries `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return nil, err
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("query %s: %s", query, r.Error)
	}
	return r.Data.Result, nil
}

type promSeries struct {
	Metric map[string]string `json:"metric"`
	Values [][2]any          `json:"values"` // range vector: [unix seconds, "value"]
}

func (s promSeries) points() (ts []float64, vs []float64) {
	for _, p := range s.Values {
		t, _ := p[0].(float64)
		v, _ := strconv.ParseFloat(fmt.Sprint(p[1]), 64)
		ts, vs = append(ts, t), append(vs, v)
	}
	return
}

// Push mode through NAT, with real parts: the node (lab client) runs the
// exporter and Debian's Prometheus in agent mode with prometheus/agent.yml;
// its router masquerades and the ISP has no route back, so the hub (a lab
// destination running Prometheus with the remote-write receiver) cannot reach
// the node at all. The hub has the node's series within 30 s. Then the uplink
// is cut for two minutes: the agent keeps scraping into its WAL, and after the
// link returns the hub holds every scrape of the cut window (no gap), including
// the ping loss the cut caused.
func TestPushModeThroughNATSurvivesLinkCut(t *testing.T) {
	if testing.Short() {
		t.Skip("slow (about 3.5 minutes: a 2-minute link cut); runs without -short")
	}
	lab.Require(t)
	prom, err := exec.LookPath("prometheus")
	if err != nil {
		t.Skip("prometheus not installed (Debian package prometheus)")
	}
	const interval = 5 * time.Second
	const cut = 2 * time.Minute
	d := dist(t)
	exporter := filepath.Join(d, "linux-amd64", "smokemon_exporter")
	if _, err := os.Stat(exporter); err != nil {
		t.Skipf("no amd64 release binary on this %s machine: %v", os.Getenv("GOARCH"), err)
	}

	tp := lab.Topology(t, "hub")
	node, router, hub := tp.Client, tp.Gateway, tp.Dst[0]
	hubAddr := tp.Addr(hub, false).String()
	// Home router NAT: everything leaving through the uplink takes its address.
	nat := filepath.Join(t.TempDir(), "nat.nft")
	os.WriteFile(nat, []byte(fmt.Sprintf(`table ip smokemon_nat {
	chain post { type nat hook postrouting priority 100; oifname "%s" masquerade; }
}
`, tp.Uplink.Ifs[lab.SideA])), 0o644)
	router.MustRun(t, "nft", "-f", nat)
	tp.ISP.DelRoute("198.18.1.0/24", false)
	tp.ISP.DelRoute("2001:2:0:1::/64", true)

	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}

	// The hub: shipped config, remote-write receiver on.
	hubCfg, err := os.ReadFile(filepath.Join(root, "prometheus", "hub-remote-write.yml"))
	if err != nil {
		t.Fatal(err)
	}
	hub.Start(t, prom, "--config.file="+write("hub.yml", string(hubCfg)), "--storage.tsdb.path="+filepath.Join(dir, "hub-data"),
		"--web.listen-address=0.0.0.0:9090", "--web.enable-remote-write-receiver", "--log.level=warn")

	// The node: the exporter pings the hub every second; the agent runs the
	// shipped agent.yml with the node name, hub URL and a 5 s interval filled in.
	node.Start(t, exporter, "--web.listen-address=127.0.0.1:9917", "--config.file="+write("smokemon.yml", fmt.Sprintf(`
global: {node_name: pi-nat, interval: 1s, timeout: 1s}
ping:
  targets: [{host: %s, name: hub}]
`, hubAddr)))
	tmpl, err := os.ReadFile(filepath.Join(root, "prometheus", "agent.yml"))
	if err != nil {
		t.Fatal(err)
	}
	agentCfg := strings.NewReplacer(
		"node: NODE_NAME", "node: pi-nat",
		"http://hub.invalid:9090/api/v1/write", "http://"+hubAddr+":9090/api/v1/write",
		"scrape_interval: 15s", "scrape_interval: "+interval.String(),
		"scrape_timeout: 10s", "scrape_timeout: 4s",
	).Replace(string(tmpl))
	if !strings.Contains(agentCfg, "node: pi-nat") || !strings.Contains(agentCfg, hubAddr) {
		t.Fatalf("agent.yml template changed; the test cannot fill it in:\n%s", tmpl)
	}
	agentStart := time.Now()
	node.Start(t, prom, "--enable-feature=agent", "--config.file="+write("agent.yml", agentCfg),
		"--storage.agent.path="+filepath.Join(dir, "agent-wal"), "--web.listen-address=127.0.0.1:9918", "--log.level=warn")

	// NAT is real: the hub cannot open a connection to the node's exporter.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	if c, err := hub.DialContext(ctx, "tcp", tp.Addr(node, false).String()+":9917"); err == nil {
		c.Close()
		t.Errorf("the hub reached the node's exporter: the node is not behind NAT")
	}
	cancel()

	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: hub.DialContext}}
	var first time.Duration
	for {
		r, err := promQuery(c, `smokemon_exporter_build_info{node="pi-nat",job="smokemon"}`, time.Now())
		if err == nil && len(r) > 0 {
			first = time.Since(agentStart)
			break
		}
		if time.Since(agentStart) > 30*time.Second {
			t.Fatalf("the hub has no series of the node 30s after the agent started (last error %v)", err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("hub has the node's series %v after the agent started", first.Round(100*time.Millisecond))

	time.Sleep(2 * interval)
	cutStart := time.Now()
	tp.Uplink.SetDown(lab.SideA)
	time.Sleep(cut)
	tp.Uplink.SetUp(lab.SideA)
	cutEnd := time.Now()
	t.Logf("uplink cut for %v", cutEnd.Sub(cutStart).Round(time.Second))

	// The backlog arrives: every scrape of the cut window is on the hub.
	window := fmt.Sprintf("%ds", int(cutEnd.Sub(cutStart).Seconds())+2*int(interval.Seconds()))
	at := cutEnd.Add(interval)
	want := int(cutEnd.Sub(cutStart)/interval) - 1
	var count int
	var maxGap float64
	deadline := time.Now().Add(90 * time.Second)
	for {
		r, err := promQuery(c, `up{node="pi-nat",job="smokemon"}[`+window+`]`, at)
		count, maxGap = 0, 0
		if err == nil && len(r) == 1 {
			ts, vs := r[0].points()
			prev := math.NaN()
			for i, ts := range ts {
				if ts < float64(cutStart.UnixMilli())/1000 || ts > float64(cutEnd.UnixMilli())/1000 {
					continue
				}
				if vs[i] == 1 {
					count++
				}
				if !math.IsNaN(prev) {
					maxGap = math.Max(maxGap, ts-prev)
				}
				prev = ts
			}
		}
		if count >= want && maxGap < 1.5*interval.Seconds() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("90s after the link returned the hub has %d scrapes of the %v cut (want >= %d), largest gap %.1fs (err %v)",
				count, cut, want, maxGap, err)
		}
		time.Sleep(2 * time.Second)
	}
	t.Logf("hub holds %d scrapes (up=1) from inside the cut, largest gap %.1fs, backlog complete %v after the link returned",
		count, maxGap, time.Since(cutEnd).Round(time.Second))

	// And what those scrapes say: the pings sent during the cut went unanswered.
	r, err := promQuery(c, `smokemon_ping_received_total{node="pi-nat",target="hub"}[`+window+`]`, at)
	if err != nil || len(r) != 1 {
		t.Fatalf("ping series on the hub: %v %v", r, err)
	}
	ts, vs := r[0].points()
	var in []float64
	for i := range ts {
		if ts[i] > float64(cutStart.Add(interval).UnixMilli())/1000 && ts[i] < float64(cutEnd.Add(-interval).UnixMilli())/1000 {
			in = append(in, vs[i])
		}
	}
	if len(in) < 2 || in[len(in)-1]-in[0] > 2 {
		t.Errorf("replies received during the cut, as the hub sees it: %v", in)
	}
}
