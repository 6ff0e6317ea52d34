package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/smokemon/smokemon/internal/lab"
)

// The live test: exporter, Prometheus and analyzer in the lab's client
// namespace. 30% forwarding loss at the ISP towards the destination must
// become a packet-loss incident whose origin is hop 3 (the first hop behind
// the lossy router, from which the loss persists), while the gateway, which
// rate-limits its ICMP errors, is flagged and never named; healing resolves it.
func TestLiveLab(t *testing.T) {
	lab.Require(t)
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	exporter := filepath.Join(dir, "smokemon_exporter")
	if out, err := exec.Command("go", "build", "-o", exporter, "../smokemon_exporter").CombinedOutput(); err != nil {
		t.Fatalf("building the exporter: %v\n%s", err, out)
	}
	tp := lab.Topology(t)
	dst := tp.Addr(tp.Dst[0], false).String()
	tp.Gateway.LimitICMP(time.Second) // its Time Exceeded replies are rate-limited: loss at hop 1 only

	cfg := filepath.Join(dir, "exporter.yml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`
global: {interval: 100ms, timeout: 50ms}
ping:
  targets:
    - {host: gateway, name: gateway, family: ip4}
    - {host: %[1]s, name: dst}
mtr:
  interval: 200ms
  probes: 5
  timeout: 40ms
  max_hops: 6
  targets:
    - {host: %[1]s, name: dst}
`, dst)), 0o644)
	tp.Client.Start(t, exporter, "--config.file="+cfg, "--collector.disable-defaults", "--collector.ping", "--collector.mtr",
		"--web.listen-address=127.0.0.1:9917")

	promCfg := filepath.Join(dir, "prometheus.yml")
	os.WriteFile(promCfg, []byte(`
global: {scrape_interval: 1s}
scrape_configs:
  - job_name: smokemon
    static_configs:
      - targets: ['127.0.0.1:9917']
        labels: {node: lab-client}
`), 0o644)
	tp.Client.Start(t, "prometheus", "--config.file="+promCfg, "--storage.tsdb.path="+filepath.Join(dir, "tsdb"),
		"--web.listen-address=127.0.0.1:9090")
	tp.Client.Start(t, bin, "--prometheus.url=http://127.0.0.1:9090", "--evaluation-interval=2s", "--rate-window=10s",
		"--long-window=20s", "--lookback=5m", "--refetch=10s", "serve", "--web.listen-address=127.0.0.1:9918")

	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: tp.Client.DialContext}}
	type incident struct {
		Node, Target, Kind string
		Active             bool
		OriginHop          int `json:"origin_hop"`
	}
	type fleet struct {
		Up    bool
		Paths []struct {
			Target      string
			LossOrigin  int   `json:"loss_origin_hop"`
			RateLimited []int `json:"rate_limited_hops"`
		}
	}
	get := func(path string, v any) error {
		resp, err := client.Get("http://127.0.0.1:9918" + path)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("%s: %s", path, resp.Status)
		}
		return json.NewDecoder(resp.Body).Decode(v)
	}
	incidents := func() []incident {
		var r struct{ Incidents []incident }
		if err := get("/api/v1/incidents", &r); err != nil {
			return nil
		}
		return r.Incidents
	}
	// Warm-up: a clean minute gives the windows data and must raise nothing.
	deadline := time.Now().Add(60 * time.Second)
	for {
		var f fleet
		if err := get("/api/v1/fleet", &f); err == nil && f.Up && len(f.Paths) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the analyzer never saw the mtr path")
		}
		time.Sleep(time.Second)
	}
	time.Sleep(25 * time.Second)
	if in := incidents(); len(in) != 0 {
		t.Fatalf("incidents before any fault: %+v", in)
	}

	undo := tp.ISP.DropRandom(t, 0.30, "ip daddr "+dst)
	injected := time.Now()
	var found *incident
	for time.Since(injected) < 60*time.Second && found == nil {
		time.Sleep(time.Second)
		for _, in := range incidents() {
			if in.Kind == "packet-loss" && in.Active && in.OriginHop > 0 {
				found = &in
			}
		}
	}
	if found == nil {
		t.Fatalf("no packet-loss incident with an origin hop within 60s; have %+v", incidents())
	}
	t.Logf("packet-loss incident %+v after %v", *found, time.Since(injected).Round(time.Second))
	if found.Node != "lab-client" || found.Target != "dst" || found.OriginHop != 3 {
		t.Errorf("incident %+v, want node lab-client, target dst, origin hop 3", *found)
	}
	var f fleet
	if err := get("/api/v1/fleet", &f); err != nil {
		t.Fatal(err)
	}
	t.Logf("path: %+v", f.Paths)
	if len(f.Paths) != 1 || f.Paths[0].LossOrigin != 3 || fmt.Sprint(f.Paths[0].RateLimited) != "[1]" {
		t.Errorf("path %+v: want loss origin 3 and the rate-limiting gateway (hop 1) flagged", f.Paths)
	}
	for _, in := range incidents() {
		if in.Kind != "packet-loss" || in.Target != "dst" {
			t.Errorf("unexpected incident %+v", in)
		}
	}

	undo()
	healed := time.Now()
	resolved := false
	for time.Since(healed) < 60*time.Second && !resolved {
		time.Sleep(time.Second)
		resolved = true
		for _, in := range incidents() {
			resolved = resolved && !in.Active
		}
	}
	if !resolved {
		t.Fatalf("still active 60s after healing: %+v", incidents())
	}
	t.Logf("resolved %v after healing", time.Since(healed).Round(time.Second))
}
