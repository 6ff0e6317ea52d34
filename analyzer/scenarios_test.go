package analyzer

import (
	"context"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/config"

	"github.com/smokemon/smokemon/analyzer/scenario"
)

// The scenario suite: synthetic fleets with one known fault per node, loaded
// into real TSDBs, and the exact incidents the analyzer must find.

var (
	evalAt  time.Time // the analyzer's "now"; data ends here
	fault   time.Time // when every injected fault begins
	suiteOf = map[string]*scenario.Server{}
	skipVM  string
)

type want struct {
	kind, target string
	blame        string    // top blame signal ("" = not checked)
	healed       time.Time // the fault ended here: the incident must be resolved soon after
}

type scen struct {
	node  scenario.Node
	want  []want
	check func(t *testing.T, s *Snapshot)
}

func after(t time.Time) bool { return !t.Before(fault) }

func scenarios() []scen {
	f := synthFleet{targets: []string{"gateway", "1.1.1.1", "9.9.9.9"}, start: evalAt.Add(-3 * time.Hour)}
	var ss []scen
	ss = append(ss, f.lossScenarios()...)
	ss = append(ss, f.latencyScenarios()...)
	ss = append(ss, f.hostScenarios()...)
	ss = append(ss, f.healedScenarios()...)
	ss = append(ss, f.trapScenarios()...)
	ss = append(ss, clockScenario(f.n("clocks")))
	return ss
}

// synthFleet builds the scenario nodes: three targets, three hours of history.
type synthFleet struct {
	targets []string
	start   time.Time
}

func (f synthFleet) n(name string) scenario.Node {
	return scenario.Node{Name: name, Targets: f.targets, Start: f.start}
}

// lossTo loses p of the packets to target from the fault on.
func (f synthFleet) lossTo(target string, p float64) func(string, time.Time) float64 {
	return func(tg string, t time.Time) float64 {
		if tg == target && after(t) {
			return p
		}
		return 0
	}
}

// path is a four-hop path to every target; from the fault on, 1.1.1.1 loses
// p from hop lossAt on (0: never), and hop rateLimited (0: none) rate-limits ICMP.
func (f synthFleet) path(lossAt int, p float64, rateLimited int) func(string, time.Time) []scenario.Hop {
	return func(tg string, t time.Time) []scenario.Hop {
		hops := []scenario.Hop{{RTT: 0.001}, {RTT: 0.008}, {RTT: 0.012}, {RTT: 0.02}}
		if rateLimited > 0 {
			hops[rateLimited-1].Loss = 0.6
		}
		if tg == "1.1.1.1" && lossAt > 0 && after(t) {
			for i := lossAt - 1; i < len(hops); i++ {
				hops[i].Loss = math.Max(hops[i].Loss, p)
			}
		}
		return hops
	}
}

// lossScenarios: a clean node, then link down, ISP outage and loss beyond a hop.
func (f synthFleet) lossScenarios() []scen {
	var ss []scen
	clean := f.n("clean")
	clean.MTR = f.path(0, 0, 0)
	clean.DNS = func(time.Time) float64 { return 0.02 }
	clean.Bloat = func(time.Time) float64 { return 0.012 }
	ss = append(ss, scen{node: clean, check: func(t *testing.T, s *Snapshot) {
		for _, a := range s.Anomalies {
			if a.Node == "clean" && a.Score >= 3 {
				t.Errorf("clean %s: anomaly score %.1f, want < 3", a.Target, a.Score)
			}
		}
		for _, c := range s.Changes {
			if c.Node == "clean" {
				t.Errorf("clean: change point %v ×%.2f on a flat series", c.Time, c.Ratio)
			}
		}
		assertGrade(t, s, "clean", "A")
	}})

	ld := f.n("linkdown")
	ld.Loss = func(string, time.Time) float64 { return 0 }
	ld.Loss = func(tg string, t time.Time) float64 {
		if after(t) {
			return 1
		}
		return 0
	}
	ss = append(ss, scen{node: ld, want: []want{{kind: KindLinkDown}}})

	isp := f.n("ispoutage")
	isp.Loss = func(tg string, t time.Time) float64 {
		if tg != "gateway" && after(t) {
			return 1
		}
		return 0
	}
	ss = append(ss, scen{node: isp, want: []want{{kind: KindISPOutage}}})

	// 30% loss beyond hop 2 while the node's own download floods the
	// uplink; wifi retries up 6× at the same moment, and hop 1 rate-limits
	// ICMP throughout (the traps: the gateway is fine, so neither the wifi
	// nor hop 1 can be what loses packets beyond it).
	loss := f.n("loss")
	loss.Loss = f.lossTo("1.1.1.1", 0.3)
	loss.MTR = f.path(2, 0.3, 1)
	loss.Host = func(t time.Time, h *scenario.Host) {
		if after(t) {
			h.WifiRetries, h.WifiSignal = 30, -68
			h.RxBytes = 5e6
		}
	}
	ss = append(ss, scen{node: loss, want: []want{{kind: KindPacketLoss, target: "1.1.1.1", blame: "network_receive:eth0"}},
		check: func(t *testing.T, s *Snapshot) {
			p := findPath(s, "loss", "1.1.1.1")
			if p == nil || p.LossOrigin != 2 || fmt.Sprint(p.RateLimited) != "[1]" {
				t.Errorf("loss path: %+v, want origin hop 2 and hop 1 flagged rate-limited", p)
			}
			for _, in := range s.Incidents {
				if in.Node == "loss" && in.Kind == KindPacketLoss && in.OriginHop != 2 {
					t.Errorf("packet-loss incident origin hop %d, want 2", in.OriginHop)
				}
			}
		}})
	return ss
}

// latencyScenarios: slow answers, slow DNS, weak wifi and bufferbloat.
func (f synthFleet) latencyScenarios() []scen {
	var ss []scen
	// A saturated CPU slows the answers from every target, the gateway's too.
	lat := f.n("latency")
	lat.RTT = func(tg string, t time.Time) float64 {
		if after(t) {
			return 0.12
		}
		return 0.02
	}
	lat.Host = func(t time.Time, h *scenario.Host) {
		if after(t) {
			h.CPUBusy = 0.95
		}
	}
	ss = append(ss, scen{node: lat, want: []want{{kind: KindLatencySpike, target: "gateway", blame: "cpu_busy"},
		{kind: KindLatencySpike, target: "1.1.1.1", blame: "cpu_busy"}, {kind: KindLatencySpike, target: "9.9.9.9", blame: "cpu_busy"}},
		check: func(t *testing.T, s *Snapshot) {
			var cp *ChangePoint
			for i := range s.Changes {
				if s.Changes[i].Node == "latency" && s.Changes[i].Target == "9.9.9.9" {
					cp = &s.Changes[i]
				}
			}
			if cp == nil || absDur(cp.Time.Sub(fault)) > 2*time.Minute || cp.Ratio < 4 || cp.Ratio > 8 {
				t.Errorf("latency change point %+v, want near %v with ratio ≈ 6", cp, fault)
			}
			for _, a := range s.Anomalies {
				if a.Node == "latency" && a.Target == "9.9.9.9" && a.Score < 5 {
					t.Errorf("latency anomaly score %.1f, want ≥ 5", a.Score)
				}
			}
		}})

	dns := f.n("dns")
	dns.DNS = func(t time.Time) float64 {
		if after(t) {
			return 0.8
		}
		return 0.02
	}
	dns.Host = func(t time.Time, h *scenario.Host) {
		if after(t) {
			h.PSIMemory = 0.4
		}
	}
	ss = append(ss, scen{node: dns, want: []want{{kind: KindDNSSlow, target: "10.0.0.53", blame: "psi_memory"}}})

	wifi := f.n("wifi")
	wifi.Host = func(t time.Time, h *scenario.Host) {
		if after(t) {
			h.WifiSignal = -82
		}
	}
	ss = append(ss, scen{node: wifi, want: []want{{kind: KindWifiDegraded, blame: "wifi_signal"}}})

	bloat := f.n("bloat")
	bloat.Bloat = func(t time.Time) float64 {
		if after(t) {
			return 0.35
		}
		return 0.012
	}
	bloat.Host = func(t time.Time, h *scenario.Host) {
		if after(t) {
			h.TxBytes = 5e6
		}
	}
	ss = append(ss, scen{node: bloat, want: []want{{kind: KindBufferbloat, blame: "network_transmit:eth0"}},
		check: func(t *testing.T, s *Snapshot) { assertGrade(t, s, "bloat", "D") }})
	return ss
}

// hostScenarios: faults of the host itself.
func (f synthFleet) hostScenarios() []scen {
	var ss []scen
	therm := f.n("thermal")
	therm.Host = func(t time.Time, h *scenario.Host) {
		if after(t) {
			h.Throttled, h.Temp = true, 84
		}
	}
	ss = append(ss, scen{node: therm, want: []want{{kind: KindThermalThrottle, blame: "temperature"}},
		check: func(t *testing.T, s *Snapshot) {
			if c := findClock(s, "thermal", "thermal"); c == nil || c.Seconds != 0 {
				t.Errorf("thermal clock %+v, want 0 s (above the trip point)", c)
			}
		}})

	uv := f.n("undervoltage")
	uv.Host = func(t time.Time, h *scenario.Host) {
		if after(t) {
			h.UnderVoltage = true
		}
	}
	ss = append(ss, scen{node: uv, want: []want{{kind: KindUnderVoltage, blame: "under_voltage"}}})

	ct := f.n("conntrack")
	ct.Host = func(t time.Time, h *scenario.Host) {
		if after(t) {
			h.ConntrackFill, h.Forks = 0.97, 5
		}
	}
	ss = append(ss, scen{node: ct, want: []want{{kind: KindConntrackFull, blame: "conntrack_fill"}}})
	return ss
}

// healedScenarios: faults that end before the evaluation.
func (f synthFleet) healedScenarios() []scen {
	var ss []scen
	// Healed: 25% loss for ten minutes, then clean. Resolved, not lingering.
	healAt := fault.Add(10 * time.Minute)
	hl := f.n("healed")
	hl.Loss = func(tg string, t time.Time) float64 {
		if tg == "9.9.9.9" && after(t) && t.Before(healAt) {
			return 0.25
		}
		return 0
	}
	ss = append(ss, scen{node: hl, want: []want{{kind: KindPacketLoss, target: "9.9.9.9", healed: healAt}}})
	ss = append(ss, healedKinds(f.n, healAt)...)
	return ss
}

// trapScenarios: data that looks like a fault and is not, or hides one.
func (f synthFleet) trapScenarios() []scen {
	var ss []scen
	// Trap: an exporter restart leaves a gap and resets every counter.
	gap := f.n("gap")
	gap.Gaps = [][2]time.Time{{evalAt.Add(-30 * time.Minute), evalAt.Add(-22 * time.Minute)}}
	ss = append(ss, scen{node: gap, check: func(t *testing.T, s *Snapshot) {
		if ns := findNode(s, "gap"); ns == nil || ns.Blind || ns.Health != "ok" {
			t.Errorf("gap node after the gap: %+v, want ok and not blind", ns)
		}
	}})

	// Trap: a gap in the middle of a loss incident neither ends it nor starts a second one.
	gl := f.n("gaploss")
	gl.Loss = f.lossTo("1.1.1.1", 0.3)
	gl.Gaps = [][2]time.Time{{evalAt.Add(-12 * time.Minute), evalAt.Add(-7 * time.Minute)}}
	ss = append(ss, scen{node: gl, want: []want{{kind: KindPacketLoss, target: "1.1.1.1"}}})

	// Trap: every evening latency triples for an hour. With a week of history
	// that is the norm; the same rhythm on a node without history is a spike.
	rhythm := func(tg string, t time.Time) float64 {
		d := evalAt.Sub(t) % (24 * time.Hour)
		if d < 0 {
			d += 24 * time.Hour
		}
		if tg == "9.9.9.9" && (d <= 20*time.Minute || d > 24*time.Hour-40*time.Minute) {
			return 0.07
		}
		return 0.02
	}
	rh := f.n("rhythm")
	rh.Start = evalAt.Add(-8*24*time.Hour - 2*time.Hour)
	rh.RTT = rhythm
	rh.NoHost = true
	rh.Targets = []string{"9.9.9.9"}
	rh.Interval = time.Minute
	ss = append(ss, scen{node: rh, check: func(t *testing.T, s *Snapshot) {
		for _, a := range s.Anomalies {
			if a.Node == "rhythm" && a.Target == "9.9.9.9" && (!a.Seasonal || a.Score >= 3) {
				t.Errorf("rhythm anomaly %+v: want a seasonal baseline and score < 3", a)
			}
		}
	}})
	rn := f.n("rhythm-new")
	rn.RTT = rhythm
	rn.NoHost = true
	rn.Targets = []string{"9.9.9.9"}
	ss = append(ss, scen{node: rn, want: []want{{kind: KindLatencySpike, target: "9.9.9.9"}}})
	return ss
}

// clockScenario: death clocks on an otherwise healthy node.
func clockScenario(clk scenario.Node) scen {
	clk.Host = func(t time.Time, h *scenario.Host) {
		h.FSAvail = 10e9 - 1e9*t.Sub(evalAt.Add(-3*time.Hour)).Hours() // 1 GB/h
		h.EMMCUsed, h.Written, h.FSSize = 0.3, 1e6, 32e9
		h.BattEnergy, h.BattPower, h.Discharging = 36000, 10, true
	}
	return scen{node: clk, check: func(t *testing.T, s *Snapshot) {
		near := func(limit string, want, tol float64) {
			c := findClock(s, "clocks", limit)
			if c == nil || math.Abs(c.Seconds-want) > tol*want {
				t.Errorf("clock %s = %+v, want %.0f s ± %.0f%%", limit, c, want, tol*100)
			}
		}
		near("disk_full", 7*3600, 0.05) // 7 GB left at 1 GB/h
		near("battery", 3600, 0.01)
		near("flash_wear", 0.65*32e9*3000/1e6, 0.1) // the write rate is a day's average of hourly rates
		for _, q := range s.Quality {
			if q.Node == "clocks" && (q.MOS < 4.3 || q.RFactor < 90) {
				t.Errorf("clean path %s: R %.1f MOS %.2f, want a toll-quality path", q.Target, q.RFactor, q.MOS)
			}
		}
	}}
}

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

func findPath(s *Snapshot, node, target string) *PathResult {
	for i := range s.Paths {
		if s.Paths[i].Node == node && s.Paths[i].Target == target {
			return &s.Paths[i]
		}
	}
	return nil
}

func findClock(s *Snapshot, node, limit string) *DeathClock {
	for i := range s.Clocks {
		if s.Clocks[i].Node == node && s.Clocks[i].Limit == limit {
			return &s.Clocks[i]
		}
	}
	return nil
}

func findNode(s *Snapshot, node string) *NodeSummary {
	for i := range s.Nodes {
		if s.Nodes[i].Node == node {
			return &s.Nodes[i]
		}
	}
	return nil
}

func assertGrade(t *testing.T, s *Snapshot, node, grade string) {
	t.Helper()
	for _, b := range s.Bloat {
		if b.Node == node {
			if b.Grade != grade {
				t.Errorf("%s bufferbloat grade %s (%.3fs), want %s", node, b.Grade, b.Increase, grade)
			}
			return
		}
	}
	t.Errorf("%s: no bufferbloat grade", node)
}

// healedKinds: every other kind for ten minutes, then healed; each must be
// dated within one step of the fault's start and of its end in the data.
func healedKinds(n func(string) scenario.Node, healAt time.Time) []scen {
	during := func(t time.Time) bool { return after(t) && t.Before(healAt) }
	var ss []scen
	add := func(kind, target string, set func(nd *scenario.Node)) {
		nd := n("healed-" + kind)
		set(&nd)
		ss = append(ss, scen{node: nd, want: []want{{kind: kind, target: target, healed: healAt}}})
	}
	host := func(f func(h *scenario.Host)) func(nd *scenario.Node) {
		return func(nd *scenario.Node) {
			nd.Host = func(t time.Time, h *scenario.Host) {
				if during(t) {
					f(h)
				}
			}
		}
	}
	add(KindLinkDown, "", func(nd *scenario.Node) {
		nd.Loss = func(_ string, t time.Time) float64 { return b2f(during(t)) }
	})
	add(KindISPOutage, "", func(nd *scenario.Node) {
		nd.Loss = func(tg string, t time.Time) float64 { return b2f(tg != "gateway" && during(t)) }
	})
	add(KindLatencySpike, "1.1.1.1", func(nd *scenario.Node) {
		nd.RTT = func(tg string, t time.Time) float64 {
			if tg == "1.1.1.1" && during(t) {
				return 0.12
			}
			return 0.02
		}
	})
	add(KindDNSSlow, "10.0.0.53", func(nd *scenario.Node) {
		nd.DNS = func(t time.Time) float64 { return 0.02 + 0.78*b2f(during(t)) }
	})
	add(KindBufferbloat, "", func(nd *scenario.Node) {
		nd.Bloat = func(t time.Time) float64 { return 0.012 + 0.338*b2f(during(t)) }
	})
	add(KindWifiDegraded, "", host(func(h *scenario.Host) { h.WifiSignal = -82 }))
	add(KindThermalThrottle, "", host(func(h *scenario.Host) { h.Throttled, h.Temp = true, 84 }))
	add(KindUnderVoltage, "", host(func(h *scenario.Host) { h.UnderVoltage = true }))
	add(KindConntrackFull, "", host(func(h *scenario.Host) { h.ConntrackFill = 0.97 }))
	return ss
}

func nodes() []scenario.Node {
	var ns []scenario.Node
	for _, s := range scenarios() {
		ns = append(ns, s.node)
	}
	return ns
}

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	flag.Parse()
	evalAt = time.Now().Truncate(time.Minute).Add(-2 * time.Minute)
	fault = evalAt.Add(-20 * time.Minute)
	if _, err := exec.LookPath("prometheus"); err != nil || testing.Short() {
		return m.Run() // the scenario tests skip
	}
	dir, err := os.MkdirTemp("", "analyzer-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	om := filepath.Join(dir, "fleet.om")
	g := &scenario.Gen{End: evalAt, Seed: 1}
	if err := g.WriteFile(om, nodes()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	began := time.Now()
	if err := scenario.Backfill(om, filepath.Join(dir, "prom")); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	srv, err := scenario.StartPrometheus(filepath.Join(dir, "prom"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer srv.Stop()
	suiteOf["prometheus"] = srv
	fmt.Fprintf(os.Stderr, "prometheus: backfilled and ready in %v\n", time.Since(began).Round(time.Millisecond))

	// The current VictoriaMetrics release (.ci/upstream), else Debian's.
	if vm, err := exec.LookPath(scenario.UpstreamOr("victoria-metrics")); err != nil {
		skipVM = "neither the current VictoriaMetrics (.ci/upstream) nor Debian's victoria-metrics is installed"
	} else {
		began = time.Now()
		pt := filepath.Join(dir, "fleet.prom")
		g := &scenario.Gen{End: evalAt, Seed: 1, Format: "prometheus"}
		if err := g.WriteFile(pt, nodes()); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		v, err := scenario.StartVictoriaMetrics(vm, filepath.Join(dir, "vm"))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer v.Stop()
		if err := v.Import(pt); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		suiteOf["victoriametrics"] = v
		fmt.Fprintf(os.Stderr, "victoria-metrics: imported and ready in %v\n", time.Since(began).Round(time.Millisecond))
	}
	return m.Run()
}

func evaluate(t *testing.T, backend string) *Snapshot {
	t.Helper()
	srv := suiteOf[backend]
	if srv == nil {
		if backend == "victoriametrics" && skipVM != "" {
			t.Skip(skipVM)
		}
		t.Skip("no prometheus binary (or -short)")
	}
	src, err := NewSource(srv.URL, config.HTTPClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	e := NewEngine(DefaultConfig(), src, nil)
	s := e.Evaluate(context.Background(), evalAt)
	if !s.Up {
		t.Fatalf("cycle failed: %s", s.Error)
	}
	for _, q := range s.QueryErrors {
		t.Errorf("query error: %s", q)
	}
	t.Logf("%s: cycle %v, %d queries, %d series", backend, s.Duration.Round(time.Millisecond), s.Queries, s.Series)
	return s
}

func runSuite(t *testing.T, backend string) {
	s := evaluate(t, backend)
	step := DefaultConfig().Step
	for _, sc := range scenarios() {
		t.Run(sc.node.Name, func(t *testing.T) {
			var got []Incident
			for _, in := range s.Incidents {
				if in.Node == sc.node.Name {
					got = append(got, in)
				}
			}
			if len(got) != len(sc.want) {
				t.Errorf("incidents: got %s, want %v", describe(got), sc.want)
			}
			for _, w := range sc.want {
				var in *Incident
				for i := range got {
					if got[i].Kind == w.kind && got[i].Target == w.target {
						in = &got[i]
					}
				}
				if in == nil {
					t.Errorf("missing %s %s; got %s", w.kind, w.target, describe(got))
					continue
				}
				switch {
				case w.healed.IsZero() && !in.Active:
					t.Errorf("%s resolved at %v, want active", w.kind, in.End)
				case !w.healed.IsZero() && in.Active:
					t.Errorf("%s still active, healed at %v", w.kind, w.healed)
				case !w.healed.IsZero():
					// Dated from the short window, back past the rate window's drain.
					// The generator gives each sample the state at its own time for
					// the interval before it: in the data the fault ended one scrape
					// interval (30s) before healed.
					end := w.healed.Add(-30 * time.Second)
					if d := absDur(in.End.Sub(end)); d > step {
						t.Errorf("%s resolved at %v, %v off the end in the data at %v: want within one step (%v)", w.kind, in.End, d, end, step)
					}
				}
				if d := absDur(in.Start.Sub(fault)); d > step {
					t.Errorf("%s starts %v, fault at %v: off by %v (> one step %v)", w.kind, in.Start, fault, d, step)
				}
				if w.blame != "" && (len(in.Blame) == 0 || in.Blame[0].Signal != w.blame) {
					t.Errorf("%s top blame %+v, want %s", w.kind, in.Blame, w.blame)
				}
			}
			if sc.check != nil {
				sc.check(t, s)
			}
		})
	}
}

func describe(in []Incident) string {
	var s []string
	for _, i := range in {
		b := ""
		if len(i.Blame) > 0 {
			b = " blame=" + i.Blame[0].Signal
		}
		s = append(s, fmt.Sprintf("%s/%s@%s active=%v%s", i.Kind, i.Target, i.Start.Format("15:04:05"), i.Active, b))
	}
	sort.Strings(s)
	return "[" + strings.Join(s, ", ") + "]"
}

func TestScenariosPrometheus(t *testing.T)      { runSuite(t, "prometheus") }
func TestScenariosVictoriaMetrics(t *testing.T) { runSuite(t, "victoriametrics") }
