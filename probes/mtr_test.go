package probes

import (
	"fmt"
	"math"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/smokemon/smokemon/collector"
	"github.com/smokemon/smokemon/internal/config"
	"github.com/smokemon/smokemon/internal/lab"
	"github.com/smokemon/smokemon/internal/testutil"
)

// newLabMTR builds the mtr collector inside h's namespace: its sockets live
// there for good, its goroutines run anywhere.
func newLabMTR(t *testing.T, h *lab.Host, yml string) *mtrCollector {
	t.Helper()
	return newLabMTRWith(t, h, testDeps(), yml)
}

func newLabMTRWith(t *testing.T, h *lab.Host, deps Deps, yml string) *mtrCollector {
	t.Helper()
	cfg := mustParse(t, yml)
	var c collector.Collector
	if err := h.Do(func() (err error) {
		c, err = newMTRCollector(testutil.Logger(), cfg, deps)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	mc := c.(*mtrCollector)
	t.Cleanup(func() { mc.Close() })
	return mc
}

// mtrSnap is one scrape, indexed by metric name and "target hop" (hop "" for
// per-target series).
type mtrSnap map[string]map[string]*dto.Metric

func mtrGather(t *testing.T, c collector.Collector) mtrSnap {
	t.Helper()
	mfs := testutil.Gather(t, collector.SetOf(testutil.Logger(), map[string]collector.Collector{"mtr": c}))
	out := mtrSnap{}
	for _, mf := range mfs {
		out[mf.GetName()] = map[string]*dto.Metric{}
		for _, m := range mf.Metric {
			target := mtrLabel(m, "target")
			if target == "" { // prober_up: by family
				target = mtrLabel(m, "family")
			}
			out[mf.GetName()][target+" "+mtrLabel(m, "hop")] = m
		}
	}
	return out
}

func mtrLabel(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// v is a sample's value (counter or gauge), NaN when absent.
func (s mtrSnap) v(name, target string, hop int) float64 {
	key := target + " "
	if hop > 0 {
		key += fmt.Sprint(hop)
	}
	m, ok := s[name][key]
	switch {
	case !ok:
		return math.NaN()
	case m.Counter != nil:
		return m.GetCounter().GetValue()
	default:
		return m.GetGauge().GetValue()
	}
}

// hopIPs is the hop_info address list of a target, hop 1 first.
func (s mtrSnap) hopIPs(target string) []string {
	var hops []string
	for k := range s["smokemon_mtr_hop_info"] {
		if strings.HasPrefix(k, target+" ") {
			hops = append(hops, k)
		}
	}
	ips := make([]string, len(hops))
	for _, k := range hops {
		m := s["smokemon_mtr_hop_info"][k]
		var hop int
		fmt.Sscan(mtrLabel(m, "hop"), &hop)
		if hop < 1 || hop > len(ips) {
			return append(ips, "hop "+mtrLabel(m, "hop")+" out of sequence")
		}
		ips[hop-1] = mtrLabel(m, "ip")
	}
	return ips
}

func waitMTR(t *testing.T, c collector.Collector, what string, limit time.Duration, cond func(mtrSnap) bool) mtrSnap {
	t.Helper()
	var s mtrSnap
	if !testutil.Eventually(limit, 50*time.Millisecond, func() bool { s = mtrGather(t, c); return cond(s) }) {
		t.Fatalf("timed out after %v waiting for %s", limit, what)
	}
	return s
}

func addrStrings(tp *lab.Topo, v6 bool) []string {
	var out []string
	for _, a := range tp.Path(0, v6) {
		out = append(out, a.String())
	}
	return out
}

// mtr finds the lab's exact hop list in both families, by literal address
// and by name (through a resolver that asks a loopback DNS server), with no loss and
// plausible RTTs.
func TestMTRLabHopList(t *testing.T) {
	tp := lab.Topology(t)
	var names sync.Map
	deps := testDeps()
	deps.Resolver = localDNS(t, &names)
	names.Store("dst.smokemon.test", tp.Addr(tp.Dst[0], false).String())
	c := newLabMTRWith(t, tp.Client, deps, fmt.Sprintf(`
mtr:
  interval: 300ms
  probes: 3
  timeout: 100ms
  max_hops: 10
  targets:
    - {host: %s, name: d4, labels: {site: lab}}
    - {host: %s, name: d6}
    - {host: dst.smokemon.test, name: byname, family: ip4}
`, tp.Addr(tp.Dst[0], false), tp.Addr(tp.Dst[0], true)))
	s := waitMTR(t, c, "three rounds of every target", 10*time.Second, func(s mtrSnap) bool {
		return s.v("smokemon_mtr_rounds_total", "d4", 0) >= 3 && s.v("smokemon_mtr_rounds_total", "d6", 0) >= 3 && s.v("smokemon_mtr_rounds_total", "byname", 0) >= 3
	})
	for target, v6 := range map[string]bool{"d4": false, "d6": true, "byname": false} {
		want := addrStrings(tp, v6)
		if got := s.hopIPs(target); strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("%s: hops %v, want %v", target, got, want)
		}
		if h, r, ch := s.v("smokemon_mtr_hops", target, 0), s.v("smokemon_mtr_destination_reached", target, 0), s.v("smokemon_mtr_path_changes_total", target, 0); h != 3 || r != 1 || ch != 0 {
			t.Errorf("%s: hops %v reached %v changes %v, want 3, 1, 0", target, h, r, ch)
		}
		for hop := 1; hop <= 3; hop++ {
			sent, recv := s.v("smokemon_mtr_hop_sent_total", target, hop), s.v("smokemon_mtr_hop_received_total", target, hop)
			lo, avg, hi := s.v("smokemon_mtr_hop_rtt_min_seconds", target, hop), s.v("smokemon_mtr_hop_rtt_avg_seconds", target, hop), s.v("smokemon_mtr_hop_rtt_max_seconds", target, hop)
			mean := s.v("smokemon_mtr_hop_rtt_seconds_total", target, hop) / recv
			t.Logf("%s hop %d: sent %v received %v rtt min %.6f avg %.6f max %.6f mean %.6f", target, hop, sent, recv, lo, avg, hi, mean)
			if sent < 9 || recv != sent {
				t.Errorf("%s hop %d: sent %v received %v", target, hop, sent, recv)
			}
			if !(0 < lo && lo <= avg && avg <= hi && hi < 0.02) || !(mean > 0 && mean < 0.02) {
				t.Errorf("%s hop %d: rtt min %v avg %v max %v mean %v implausible in the lab", target, hop, lo, avg, hi, mean)
			}
		}
	}
	if m := s["smokemon_mtr_hop_sent_total"]["d4 1"]; mtrLabel(m, "site") != "lab" || mtrLabel(m, "family") != "ip4" {
		t.Errorf("d4 labels %v", m.GetLabel())
	}
	if m := s["smokemon_mtr_hop_sent_total"]["d6 1"]; mtrLabel(m, "family") != "ip6" {
		t.Errorf("d6 labels %v", m.GetLabel())
	}
	if u4, u6 := s.v("smokemon_mtr_prober_up", "ip4", 0), s.v("smokemon_mtr_prober_up", "ip6", 0); u4 != 1 || u6 != 1 {
		t.Errorf("prober_up ip4 %v ip6 %v", u4, u6)
	}
}

// binomialTol is 4.5 standard deviations of a loss ratio p over n probes: a
// false alarm is rarer than one run in 100000.
func binomialTol(p, n float64) float64 { return 4.5 * math.Sqrt(p*(1-p)/n) }

// 30% forwarding loss at the ISP towards the destination: the hops before
// it answer everything, the destination loses 30% (the loss persists from
// the hop behind the ISP on), and the path stays put.
func TestMTRLabForwardLossPersists(t *testing.T) {
	tp := lab.Topology(t)
	d4, d6 := tp.Addr(tp.Dst[0], false), tp.Addr(tp.Dst[0], true)
	tp.ISP.DropRandom(t, 0.30, "ip daddr "+d4.String())
	tp.ISP.DropRandom(t, 0.30, "ip6 daddr "+d6.String())
	c := newLabMTR(t, tp.Client, fmt.Sprintf(`
mtr:
  interval: 100ms
  probes: 5
  timeout: 20ms
  max_hops: 6
  targets:
    - {host: %s, name: d4}
    - {host: %s, name: d6}
`, d4, d6))
	time.Sleep(12 * time.Second)
	s := mtrGather(t, c)
	for _, target := range []string{"d4", "d6"} {
		for hop := 1; hop <= 3; hop++ {
			sent, recv := s.v("smokemon_mtr_hop_sent_total", target, hop), s.v("smokemon_mtr_hop_received_total", target, hop)
			loss := (sent - recv) / sent
			t.Logf("%s hop %d: sent %v received %v loss %.3f", target, hop, sent, recv, loss)
			if hop < 3 {
				// Nothing is dropped here; 2 probes of slack for a scheduling stall past 20ms.
				if sent < 400 || sent-recv > 2 {
					t.Errorf("%s hop %d before the lossy link: sent %v lost %v, want 0", target, hop, sent, sent-recv)
				}
				continue
			}
			tol := binomialTol(0.3, sent)
			t.Logf("%s hop 3: tolerance ±%.3f", target, tol)
			if sent < 400 || math.Abs(loss-0.3) > tol {
				t.Errorf("%s hop 3: loss %.3f over %v probes, want 0.30 ± %.3f", target, loss, sent, tol)
			}
		}
		if h, ch := s.v("smokemon_mtr_hops", target, 0), s.v("smokemon_mtr_path_changes_total", target, 0); h != 3 || ch != 0 {
			t.Errorf("%s: hops %v, path changes %v: loss must not look like a path change", target, h, ch)
		}
		if got, want := s.hopIPs(target), addrStrings(tp, target == "d6"); strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("%s: hops %v, want %v", target, got, want)
		}
	}
}

// A gateway that rate-limits its ICMP errors shows loss at its own hop only;
// the probes it forwards are not lost, so the hops behind it and the
// destination show none.
func TestMTRLabRateLimitedHop(t *testing.T) {
	tp := lab.Topology(t)
	tp.Gateway.LimitICMP(200 * time.Millisecond)
	d4, d6 := tp.Addr(tp.Dst[0], false), tp.Addr(tp.Dst[0], true)
	c := newLabMTR(t, tp.Client, fmt.Sprintf(`
mtr:
  interval: 100ms
  probes: 5
  timeout: 20ms
  max_hops: 6
  targets:
    - {host: %s, name: d4}
    - {host: %s, name: d6}
`, d4, d6))
	time.Sleep(6 * time.Second)
	s := mtrGather(t, c)
	for _, target := range []string{"d4", "d6"} {
		var loss [4]float64
		for hop := 1; hop <= 3; hop++ {
			sent, recv := s.v("smokemon_mtr_hop_sent_total", target, hop), s.v("smokemon_mtr_hop_received_total", target, hop)
			loss[hop] = (sent - recv) / sent
			t.Logf("%s hop %d: sent %v received %v loss %.3f", target, hop, sent, recv, loss[hop])
			if hop > 1 && (sent < 200 || sent-recv > 2) {
				t.Errorf("%s hop %d behind the rate-limited gateway: sent %v lost %v, want 0", target, hop, sent, sent-recv)
			}
		}
		// 50 probes/s against at most ~5 answers/s (IPv6 scales the limit by
		// route prefix length, so allow for a faster rate there).
		if loss[1] < 0.5 {
			t.Errorf("%s: gateway hop loss %.3f, want most probes unanswered", target, loss[1])
		}
		if h, ch := s.v("smokemon_mtr_hops", target, 0), s.v("smokemon_mtr_path_changes_total", target, 0); h != 3 || ch != 0 {
			t.Errorf("%s: hops %v, path changes %v: a silent hop must not look like a path change", target, h, ch)
		}
		if got, want := s.hopIPs(target), addrStrings(tp, target == "d6"); strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("%s: hops %v, want %v (a silent hop keeps its last address)", target, got, want)
		}
	}
}

// A re-route that bypasses the ISP shortens the path: the counter goes up,
// hop 2 becomes the destination and hop 3's series vanish; undoing it brings
// them back and counts a second change.
func TestMTRLabPathChange(t *testing.T) {
	tp := lab.Topology(t)
	d4, d6 := tp.Addr(tp.Dst[0], false), tp.Addr(tp.Dst[0], true)
	c := newLabMTR(t, tp.Client, fmt.Sprintf(`
mtr:
  interval: 200ms
  probes: 2
  timeout: 50ms
  max_hops: 6
  targets:
    - {host: %s, name: d4}
    - {host: %s, name: d6}
`, d4, d6))
	both := func(cond func(s mtrSnap, target string) bool) func(mtrSnap) bool {
		return func(s mtrSnap) bool { return cond(s, "d4") && cond(s, "d6") }
	}
	hops := func(n float64, changes float64) func(mtrSnap) bool {
		return both(func(s mtrSnap, target string) bool {
			return s.v("smokemon_mtr_hops", target, 0) == n && s.v("smokemon_mtr_path_changes_total", target, 0) == changes
		})
	}
	waitMTR(t, c, "the 3-hop path", 5*time.Second, hops(3, 0))

	// A direct link from the gateway to the destination, preferred by a host route.
	tp.Lab.Link(tp.Gateway, "198.18.50.1/24,2001:2:0:50::1/64", tp.Dst[0], "198.18.50.2/24,2001:2:0:50::2/64")
	tp.Gateway.Route(d4.String()+"/32", "198.18.50.2")
	tp.Gateway.Route(d6.String()+"/128", "2001:2:0:50::2")
	begin := time.Now()
	s := waitMTR(t, c, "the 2-hop path", 5*time.Second, hops(2, 1))
	t.Logf("re-route seen after %v", time.Since(begin).Round(time.Millisecond))
	for _, target := range []string{"d4", "d6"} {
		v6 := target == "d6"
		want := []string{tp.Addr(tp.Gateway, v6).String(), tp.Addr(tp.Dst[0], v6).String()}
		if got := s.hopIPs(target); strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("%s after the re-route: hops %v, want %v", target, got, want)
		}
		for _, name := range []string{"smokemon_mtr_hop_sent_total", "smokemon_mtr_hop_received_total", "smokemon_mtr_hop_rtt_seconds_total", "smokemon_mtr_hop_rtt_avg_seconds"} {
			if v := s.v(name, target, 3); !math.IsNaN(v) {
				t.Errorf("%s: stale %s{hop=3} = %v still exported", target, name, v)
			}
		}
		if r := s.v("smokemon_mtr_destination_reached", target, 0); r != 1 {
			t.Errorf("%s: destination_reached %v", target, r)
		}
	}

	tp.Gateway.DelRoute(d4.String()+"/32", false)
	tp.Gateway.DelRoute(d6.String()+"/128", true)
	s = waitMTR(t, c, "the 3-hop path again", 5*time.Second, hops(3, 2))
	for _, target := range []string{"d4", "d6"} {
		if got, want := s.hopIPs(target), addrStrings(tp, target == "d6"); strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("%s back on the old route: hops %v, want %v", target, got, want)
		}
	}
	// And it stays put.
	time.Sleep(time.Second)
	s = mtrGather(t, c)
	if !hops(3, 2)(s) {
		t.Errorf("path not stable after the change back: d4 hops %v changes %v, d6 hops %v changes %v",
			s.v("smokemon_mtr_hops", "d4", 0), s.v("smokemon_mtr_path_changes_total", "d4", 0),
			s.v("smokemon_mtr_hops", "d6", 0), s.v("smokemon_mtr_path_changes_total", "d6", 0))
	}
}

// A destination that swallows everything costs each round one timeout per
// sweep: scrapes stay fast, the healthy target keeps its schedule, and Close
// returns at once, leaving no goroutine behind.
func TestMTRHungTargetNeverBlocks(t *testing.T) {
	tp := lab.Topology(t)
	tp.ISP.MustRun(t, "ip", "route", "add", "blackhole", "198.18.201.0/24")
	base := runtime.NumGoroutine()
	c := newLabMTR(t, tp.Client, fmt.Sprintf(`
mtr:
  interval: 400ms
  probes: 2
  timeout: 200ms
  max_hops: 8
  targets:
    - {host: 198.18.201.2, name: hung}
    - {host: %s, name: fine}
`, tp.Addr(tp.Dst[0], false)))
	begin := time.Now()
	var scrapes []time.Duration
	for time.Since(begin) < 3*time.Second {
		t0 := time.Now()
		mtrGather(t, c)
		scrapes = append(scrapes, time.Since(t0))
		time.Sleep(20 * time.Millisecond)
	}
	s := mtrGather(t, c)
	sort.Slice(scrapes, func(i, j int) bool { return scrapes[i] < scrapes[j] })
	worst := scrapes[len(scrapes)-1]
	t.Logf("%d scrapes while probing, median %v, worst %v", len(scrapes), scrapes[len(scrapes)/2], worst)
	// A scrape that waited for the hung sweep would wait out its 200 ms
	// timeout, and among some 130 scrapes one starts just after a sweep
	// does; half the timeout leaves room for a machine stall (CI saw 91 ms
	// ones) without excusing a wait.
	if worst > 100*time.Millisecond {
		t.Errorf("a scrape took %v while a target hung", worst)
	}
	// 3s at 400ms a round, the second target starting half an interval late.
	for _, target := range []string{"hung", "fine"} {
		if r := s.v("smokemon_mtr_rounds_total", target, 0); r < 6 || r > 8 {
			t.Errorf("%s: %v rounds in 3s, want 6 to 8 (one per 400ms interval)", target, r)
		}
	}
	if h, r := s.v("smokemon_mtr_hops", "hung", 0), s.v("smokemon_mtr_destination_reached", "hung", 0); h != 1 || r != 0 {
		t.Errorf("hung: hops %v reached %v, want the gateway only, not reached", h, r)
	}
	if got := s.hopIPs("hung"); len(got) != 1 || got[0] != tp.Addr(tp.Gateway, false).String() {
		t.Errorf("hung: hops %v", got)
	}
	if h, r := s.v("smokemon_mtr_hops", "fine", 0), s.v("smokemon_mtr_destination_reached", "fine", 0); h != 3 || r != 1 {
		t.Errorf("fine: hops %v reached %v", h, r)
	}
	t0 := time.Now()
	c.Close()
	if took := time.Since(t0); took > 100*time.Millisecond {
		t.Errorf("Close took %v", took)
	}
	testutil.Eventually(time.Second, 10*time.Millisecond, func() bool { return runtime.NumGoroutine() <= base })
	if n := runtime.NumGoroutine(); n > base {
		t.Errorf("%d goroutines after Close, %d before the collector", n, base)
	}
}

// Without targets the collector is idle: no sockets, no goroutines, no series.
func TestMTRIdleWithoutTargets(t *testing.T) {
	base := runtime.NumGoroutine()
	c, err := newMTRCollector(testutil.Logger(), config.Default(), testDeps())
	if err != nil {
		t.Fatal(err)
	}
	defer c.(*mtrCollector).Close()
	// More goroutines than before, not others: an earlier test's may still be ending.
	if c.(*mtrCollector).tracer != nil || runtime.NumGoroutine() > base {
		t.Errorf("idle collector has a tracer or goroutines")
	}
	ch := make(chan prometheus.Metric, 10)
	if err := c.Update(ch); err != collector.ErrNoData || len(ch) != 0 {
		t.Errorf("Update = %v with %d metrics, want collector.ErrNoData and none", err, len(ch))
	}
}

func TestMTRStatsRoundFolding(t *testing.T) {
	lo, avg, hi, sd := mtrRTTStats([]float64{1, 2, 3, 6})
	if lo != 1 || avg != 3 || hi != 6 || math.Abs(sd-math.Sqrt(14.0/3)) > 1e-12 {
		t.Errorf("stats %v %v %v %v", lo, avg, hi, sd)
	}
}
