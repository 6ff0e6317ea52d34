package probes

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	dto "github.com/prometheus/client_model/go"

	"github.com/smokemon/smokemon/collector"
	"github.com/smokemon/smokemon/internal/config"
	"github.com/smokemon/smokemon/internal/pinger"
	"github.com/smokemon/smokemon/internal/testutil"
)

func mustParse(t *testing.T, y string) *config.Config {
	t.Helper()
	c, err := config.Parse([]byte(y), "test.yml")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func newTestPing(t *testing.T, cfg *config.Config) *pingCollector {
	t.Helper()
	return newTestPingWith(t, testDeps(), cfg)
}

func newTestPingWith(t *testing.T, deps Deps, cfg *config.Config) *pingCollector {
	t.Helper()
	c, err := newPingCollector(testutil.Logger(), cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	pc := c.(*pingCollector)
	if !pc.engine.Status(pinger.IPv4).Up {
		pc.Close()
		t.Skip("no IPv4 ICMP socket here (needs root or CAP_NET_RAW)")
	}
	t.Cleanup(func() { pc.Close() })
	return pc
}

// gather collects c and indexes samples by metric name and target label.
func gather(t *testing.T, c collector.Collector) map[string]map[string]*dto.Metric {
	t.Helper()
	mfs := testutil.Gather(t, collector.SetOf(testutil.Logger(), map[string]collector.Collector{"ping": c}))
	out := map[string]map[string]*dto.Metric{}
	for _, mf := range mfs {
		out[mf.GetName()] = map[string]*dto.Metric{}
		for _, m := range mf.Metric {
			key := ""
			for _, l := range m.Label {
				if l.GetName() == "target" {
					key = l.GetValue()
				}
			}
			out[mf.GetName()][key] = m
		}
	}
	return out
}

func counter(m map[string]map[string]*dto.Metric, name, target string) float64 {
	if s, ok := m[name][target]; ok {
		return s.GetCounter().GetValue()
	}
	return -1
}

func TestPingReloadKeepsCountersOfUnchangedTargets(t *testing.T) {
	pc := newTestPing(t, mustParse(t, `
global: {interval: 50ms}
ping:
  targets:
    - {host: 127.0.2.1, name: keep}
    - {host: 127.0.2.2, name: change}
    - {host: 127.0.2.3, name: drop}
`))
	time.Sleep(400 * time.Millisecond)
	before := gather(t, pc)
	for _, n := range []string{"keep", "change", "drop"} {
		if counter(before, "smokemon_ping_received_total", n) < 4 {
			t.Fatalf("%s: received %v before reload", n, counter(before, "smokemon_ping_received_total", n))
		}
	}
	err := reload(pc, mustParse(t, `
global: {interval: 50ms}
ping:
  targets:
    - {host: 127.0.2.1, name: keep}
    - {host: 127.0.2.2, name: change, interval: 100ms, packet_size: 200}
    - {host: 127.0.2.4, name: new}
`))
	if err != nil {
		t.Fatal(err)
	}
	after := gather(t, pc)
	for _, n := range []string{"keep", "change"} {
		if b, a := counter(before, "smokemon_ping_sent_total", n), counter(after, "smokemon_ping_sent_total", n); a < b {
			t.Errorf("%s: sent went from %v to %v across a reload", n, b, a)
		}
	}
	if _, ok := after["smokemon_ping_sent_total"]["drop"]; ok {
		t.Error("removed target still exported")
	}
	if got := counter(after, "smokemon_ping_sent_total", "new"); got > 1 {
		t.Errorf("new target starts at %v", got)
	}
	time.Sleep(300 * time.Millisecond)
	later := gather(t, pc)
	if counter(later, "smokemon_ping_received_total", "new") < 2 || counter(later, "smokemon_ping_received_total", "change") <= counter(after, "smokemon_ping_received_total", "change") {
		t.Error("targets not probed after reload")
	}
	if h := later["smokemon_ping_rtt_seconds"]["keep"].GetHistogram(); h.GetSampleCount() < 8 {
		t.Errorf("keep: histogram lost its samples: %d", h.GetSampleCount())
	}
}

func TestPingCustomLabelsAreUnioned(t *testing.T) {
	pc := newTestPing(t, mustParse(t, `
global: {interval: 1s, labels: {site: home}}
ping:
  targets:
    - {host: 127.0.2.1, name: a, labels: {isp: acme}}
    - {host: 127.0.2.2, name: b}
`))
	m := gather(t, pc) // the pedantic registry rejects inconsistent label sets
	b := m["smokemon_ping_target_up"]["b"]
	got := map[string]string{}
	for _, l := range b.Label {
		got[l.GetName()] = l.GetValue()
	}
	if got["site"] != "home" || got["isp"] != "" || got["family"] != "ip4" {
		t.Errorf("labels of b = %v", got)
	}
}

// localDNS serves names from a map on loopback, so lookups never leave the
// machine, and returns a resolver that asks it.
func localDNS(t *testing.T, names *sync.Map) *net.Resolver {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(req)
		q := req.Question[0]
		ip, ok := names.Load(strings.TrimSuffix(q.Name, "."))
		switch {
		case !ok:
			m.Rcode = dns.RcodeNameError
		case q.Qtype == dns.TypeA:
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 1}, A: net.ParseIP(ip.(string))})
		}
		w.WriteMsg(m)
	})}
	go srv.ActivateAndServe()
	addr := pc.LocalAddr().String()
	t.Cleanup(func() { srv.Shutdown() })
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "udp", addr)
	}}
}

// An unresolvable name marks only its target down, counts the error, and
// recovers by itself once the name resolves; a changed address shows in the
// info metric.
func TestPingResolutionFailsRecoversAndFollowsChanges(t *testing.T) {
	var names sync.Map
	deps := testDeps()
	deps.Resolver = localDNS(t, &names)
	pc := newTestPingWith(t, deps, mustParse(t, `
global: {interval: 100ms, resolve_interval: 1s}
ping:
  targets:
    - {host: ghost.smokemon.test, name: ghost}
    - {host: 127.0.2.9, name: fine}
`))
	waitFor := func(what string, cond func(map[string]map[string]*dto.Metric) bool) map[string]map[string]*dto.Metric {
		t.Helper()
		var m map[string]map[string]*dto.Metric
		if !testutil.Eventually(15*time.Second, 100*time.Millisecond, func() bool { m = gather(t, pc); return cond(m) }) {
			t.Fatalf("timed out waiting for %s", what)
		}
		return m
	}
	gauge := func(m map[string]map[string]*dto.Metric, name, target string) float64 {
		return m[name][target].GetGauge().GetValue()
	}
	infoIP := func(m map[string]map[string]*dto.Metric) string {
		for _, l := range m["smokemon_ping_target_info"]["ghost"].GetLabel() {
			if l.GetName() == "ip" {
				return l.GetValue()
			}
		}
		return "?"
	}
	m := waitFor("a failed lookup", func(m map[string]map[string]*dto.Metric) bool {
		return counter(m, "smokemon_ping_resolve_errors_total", "ghost") >= 1
	})
	if gauge(m, "smokemon_ping_target_up", "ghost") != 0 || gauge(m, "smokemon_ping_target_up", "fine") != 1 {
		t.Errorf("up: ghost %v fine %v", gauge(m, "smokemon_ping_target_up", "ghost"), gauge(m, "smokemon_ping_target_up", "fine"))
	}

	names.Store("ghost.smokemon.test", "127.0.2.10") // found at the next retry (10 s)
	m = waitFor("recovery", func(m map[string]map[string]*dto.Metric) bool {
		return gauge(m, "smokemon_ping_target_up", "ghost") == 1 && counter(m, "smokemon_ping_received_total", "ghost") > 0
	})
	if ip := infoIP(m); ip != "127.0.2.10" {
		t.Errorf("info ip = %q", ip)
	}

	names.Store("ghost.smokemon.test", "127.0.2.11") // followed at the next resolve_interval
	waitFor("the new address", func(m map[string]map[string]*dto.Metric) bool { return infoIP(m) == "127.0.2.11" })
}

func TestGatewayFromProcfs(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "net"), 0o755)
	os.WriteFile(filepath.Join(dir, "net", "route"), []byte(
		"Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"+
			"eth0\t000012C6\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"+
			"eth0\t00000000\t010012C6\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "net", "ipv6_route"), []byte(
		"00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo\n"+
			"00000000000000000000000000000000 00 00000000000000000000000000000000 00 20010002000000000000000000000001 00000400 00000002 00000000 00000003     eth0\n"), 0o644)
	pc := &pingCollector{deps: Deps{ProcPath: dir}}
	if a, err := pc.gateway(config.FamilyIP4); err != nil || a.String() != "198.18.0.1" {
		t.Errorf("ipv4 gateway = %v, %v", a, err)
	}
	if a, err := pc.gateway(config.FamilyIP6); err != nil || a.String() != "2001:2::1" {
		t.Errorf("ipv6 gateway = %v, %v", a, err)
	}
	os.WriteFile(filepath.Join(dir, "net", "route"), []byte("Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"), 0o644)
	if _, err := pc.gateway(config.FamilyIP4); err == nil || !strings.Contains(err.Error(), "no default") {
		t.Errorf("missing gateway: err = %v", err)
	}
}

// Scrapes stream while the engine counts and reloads change the targets:
// every chunk is whole (as many metrics as its family's targets allow, all
// of one family) and the race detector sees no unguarded state. 600
// targets make three chunks a family.
func TestPingStreamDuringReloads(t *testing.T) {
	yaml := func(n int) string {
		var b strings.Builder
		b.WriteString("global: {interval: 100ms, timeout: 100ms}\nping:\n  targets:\n")
		for i := range n {
			fmt.Fprintf(&b, "    - {host: 127.0.%d.%d, labels: {k: v%d}}\n", i/200+1, i%200+1, i%2)
		}
		return b.String()
	}
	pc := newTestPing(t, mustParse(t, yaml(600)))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				perFamily := map[string]int{}
				err := pc.Stream(func(mf *dto.MetricFamily) error {
					if len(mf.Metric) == 0 || len(mf.Metric) > collector.ChunkSize {
						return fmt.Errorf("%s: chunk of %d metrics", mf.GetName(), len(mf.Metric))
					}
					perFamily[mf.GetName()] += len(mf.Metric)
					return nil
				})
				if err == nil && (perFamily["smokemon_ping_target_up"] == 0 || perFamily["smokemon_ping_target_up"] != perFamily["smokemon_ping_target_info"]) {
					err = fmt.Errorf("families disagree: %v", perFamily)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for i := range 6 {
		if err := collector.Apply(pc, mustParse(t, yaml(300+100*(i%4)))); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
