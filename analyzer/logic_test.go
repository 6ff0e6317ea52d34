package analyzer

import (
	"math"
	"testing"
	"time"
)

var nan = math.NaN()

func TestHysteresis(t *testing.T) {
	const B, G, H, N = lvBad, lvGood, lvHold, lvBlind
	cases := []struct {
		name string
		lv   []level
		want []episode
	}{
		{"one bad step is noise", []level{G, B, G, G, G, G}, nil},
		{"enter after two, exit after four", []level{G, B, B, B, G, G, G, G, G}, []episode{{1, 4}}},
		{"hold between thresholds keeps it open", []level{B, B, H, H, H, G, G, G, G}, []episode{{0, 5}}},
		{"short recovery does not resolve", []level{B, B, G, G, B, G, G, G}, []episode{{0, -1}}},
		{"blind steps neither start nor end", []level{B, N, N, B, N, N, G, N, G, G, G}, []episode{{0, 6}}},
		{"all blind: nothing", []level{N, N, N, N}, nil},
		{"two episodes", []level{B, B, G, G, G, G, B, B}, []episode{{0, 2}, {6, -1}}},
	}
	for _, c := range cases {
		got := hysteresis(c.lv, 2, 4)
		if len(got) != len(c.want) {
			t.Errorf("%s: got %v, want %v", c.name, got, c.want)
			continue
		}
		for i := range got {
			if got[i] != c.want[i] {
				t.Errorf("%s: got %v, want %v", c.name, got, c.want)
			}
		}
	}
}

func TestRobustStats(t *testing.T) {
	if m := median([]float64{5, nan, 1, 3}); m != 3 {
		t.Errorf("median = %v", m)
	}
	if m := mad([]float64{1, 2, 3, 4, 100}); m != 1 {
		t.Errorf("mad = %v, want 1 (the outlier must not count)", m)
	}
	// A single wild point in the reference must not hide a real shift.
	ref := []float64{10, 10.2, 9.9, 10.1, 500, 10, 9.8}
	z, _, _ := robustZ(ref, []float64{20, 20.5, 19.8}, 0.1)
	if z < 10 {
		t.Errorf("z = %.1f, want a large shift", z)
	}
}

func grid(n int) Grid { return Grid{Start: time.Unix(1e9, 0), Step: 30 * time.Second, N: n} }

func fill(n int, v float64) []float64 {
	s := make([]float64, n)
	for i := range s {
		s[i] = v
	}
	return s
}

func TestDetect(t *testing.T) {
	const n = 40
	g := grid(n)
	th := DefaultThresholds()
	th.RampSteps = 4
	step := func(before, after float64, at int) []float64 {
		s := fill(n, before)
		for i := at; i < n; i++ {
			s[i] = after
		}
		return s
	}
	ramp := func(at int) []float64 { // a full outage seen through a 4-step rate window
		s := fill(n, 0)
		for i := at; i < n; i++ {
			s[i] = math.Min(1, float64(i-at+1)/4)
		}
		return s
	}
	cases := []struct {
		name  string
		in    nodeInput
		kinds []string
		start int
	}{
		{"clean", nodeInput{Gateway: "gw", Loss: map[string][]float64{"gw": fill(n, 0), "a": fill(n, 0.002)}}, nil, 0},
		{"link down", nodeInput{Gateway: "gw", Loss: map[string][]float64{"gw": ramp(20), "a": ramp(20)}}, []string{KindLinkDown}, 20},
		{"isp outage", nodeInput{Gateway: "gw", Loss: map[string][]float64{"gw": fill(n, 0), "a": ramp(20), "b": ramp(20)}}, []string{KindISPOutage}, 20},
		{"one target lost is packet loss", nodeInput{Gateway: "gw", Loss: map[string][]float64{"gw": fill(n, 0), "a": ramp(20), "b": fill(n, 0)}}, []string{KindPacketLoss + "/a"}, 20},
		{"no gateway: all gone is link down", nodeInput{Loss: map[string][]float64{"a": ramp(20), "b": ramp(20)}}, []string{KindLinkDown}, 20},
		{"loss", nodeInput{Gateway: "gw", Loss: map[string][]float64{"gw": fill(n, 0), "a": step(0, 0.1, 25)}}, []string{KindPacketLoss + "/a"}, 25},
		{"loss below the enter threshold", nodeInput{Loss: map[string][]float64{"a": step(0, 0.03, 25)}}, nil, 0},
		{"latency spike", nodeInput{Loss: map[string][]float64{"a": fill(n, 0)}, RTT: map[string][]float64{"a": step(0.02, 0.1, 30)},
			RTTRef: map[string][]float64{"a": fill(n, 0.02)}}, []string{KindLatencySpike + "/a"}, 30},
		{"latency at its seasonal level", nodeInput{Loss: map[string][]float64{"a": fill(n, 0)}, RTT: map[string][]float64{"a": step(0.02, 0.1, 30)},
			RTTRef: map[string][]float64{"a": step(0.02, 0.1, 30)}}, nil, 0},
		{"dns slow", nodeInput{Loss: map[string][]float64{"a": fill(n, 0)}, DNS: map[string][]float64{"r": step(0.01, 1, 10)}}, []string{KindDNSSlow + "/r"}, 10},
		{"wifi", nodeInput{Loss: map[string][]float64{"a": fill(n, 0)}, Signals: map[string][]float64{"wifi_signal": step(-50, -80, 12)}}, []string{KindWifiDegraded}, 12},
		{"conntrack", nodeInput{Loss: map[string][]float64{"a": fill(n, 0)}, Signals: map[string][]float64{"conntrack_fill": step(0.2, 0.95, 5)}}, []string{KindConntrackFull}, 5},
		{"under-voltage", nodeInput{Loss: map[string][]float64{"a": fill(n, 0)}, Signals: map[string][]float64{"under_voltage": step(0, 1, 7)}}, []string{KindUnderVoltage}, 7},
		{"bufferbloat", nodeInput{Loss: map[string][]float64{"a": fill(n, 0)}, Bloat: step(0.01, 0.3, 7)}, []string{KindBufferbloat}, 7},
	}
	for _, c := range cases {
		in := c.in
		in.Node = "n"
		got := detect(&in, g, th)
		var kinds []string
		for _, i := range got {
			k := i.Kind
			if i.Target != "" {
				k += "/" + i.Target
			}
			kinds = append(kinds, k)
			if i.startIdx != c.start {
				t.Errorf("%s: %s starts at step %d, want %d", c.name, k, i.startIdx, c.start)
			}
		}
		if len(kinds) != len(c.kinds) {
			t.Errorf("%s: got %v, want %v", c.name, kinds, c.kinds)
			continue
		}
		for i := range kinds {
			if kinds[i] != c.kinds[i] {
				t.Errorf("%s: got %v, want %v", c.name, kinds, c.kinds)
			}
		}
	}
}

func TestBlame(t *testing.T) {
	const n = 60
	noisy := func(v, amp float64) []float64 {
		s := make([]float64, n)
		for i := range s {
			s[i] = v + amp*math.Sin(float64(i)*1.7)
		}
		return s
	}
	shift := func(s []float64, at int, by float64) []float64 {
		for i := at; i < len(s); i++ {
			s[i] += by
		}
		return s
	}
	defs := map[string]signalDef{}
	for _, d := range signalDefs() {
		defs[d.Name] = d
	}
	cases := []struct {
		name    string
		kind    string
		signals map[string][]float64
		want    []string
		spared  bool // the gateway was fine during the incident
	}{
		{"cpu moved", KindPacketLoss, map[string][]float64{"cpu_busy": shift(noisy(0.1, 0.02), 40, 0.8), "psi_io": noisy(0.01, 0.002), "wifi_signal": noisy(-55, 1)}, []string{"cpu_busy"}, false},
		{"nothing moved", KindPacketLoss, map[string][]float64{"cpu_busy": noisy(0.1, 0.02), "wifi_signal": noisy(-55, 1)}, nil, false},
		{"ranked by size", KindPacketLoss, map[string][]float64{"wifi_signal": shift(noisy(-55, 1), 40, -25), "wifi_retries": shift(noisy(5, 0.5), 40, 100), "cpu_busy": noisy(0.1, 0.02)},
			[]string{"wifi_retries", "wifi_signal"}, false},
		{"interface attribution", KindLatencySpike, map[string][]float64{"network_transmit:eth0": shift(noisy(2e4, 1e3), 40, 5e6), "network_transmit:wlan0": noisy(2e4, 1e3)}, []string{"network_transmit:eth0"}, false},
		{"gap before the incident", KindPacketLoss, map[string][]float64{"cpu_busy": shift(append(fill(30, nan), noisy(0.1, 0.02)[30:]...), 40, 0.5)}, []string{"cpu_busy"}, false},
		// The traps of issue 15: load that stops, traffic that falls, a
		// change long before the incident, and a signal that cannot cause the kind.
		{"cpu fell", KindLinkDown, map[string][]float64{"cpu_busy": shift(noisy(0.99, 0.005), 40, -0.97)}, nil, false},
		{"traffic fell", KindPacketLoss, map[string][]float64{"network_receive:eth0": shift(noisy(4.2e5, 2e4), 40, -4.2e5)}, nil, false},
		{"cpu rose long before", KindPacketLoss, map[string][]float64{"cpu_busy": shift(noisy(0.2, 0.02), 20, 0.5)}, nil, false},
		{"cpu cannot take a link down", KindLinkDown, map[string][]float64{"cpu_busy": shift(noisy(0.1, 0.02), 40, 0.8)}, nil, false},
		{"retransmits are a symptom", KindPacketLoss, map[string][]float64{"tcp_retransmits": shift(noisy(2, 0.5), 40, 50)}, nil, false},
		// Loss beyond a healthy gateway: CPU pressure at the same moment is
		// the machine's business; the node's own upload is not.
		{"gateway spared: cpu is not it", KindLatencySpike, map[string][]float64{"psi_cpu": shift(noisy(0.07, 0.01), 40, 0.6)}, nil, true},
		{"gateway spared: own upload is", KindLatencySpike, map[string][]float64{"psi_cpu": shift(noisy(0.07, 0.01), 40, 0.6),
			"network_transmit:eth0": shift(noisy(2e4, 1e3), 40, 1e6)}, []string{"network_transmit:eth0"}, true},
	}
	for _, c := range cases {
		got := rankBlame(c.kind, c.signals, defs, blameWindow{start: 40, end: n, near: 2, during: 6, minBefore: 6}, 3, !c.spared)
		var names []string
		for _, b := range got {
			names = append(names, b.Signal)
		}
		if len(names) != len(c.want) {
			t.Errorf("%s: got %v, want %v", c.name, got, c.want)
			continue
		}
		for i := range names {
			if names[i] != c.want[i] {
				t.Errorf("%s: got %v, want %v", c.name, names, c.want)
			}
		}
	}
}

func TestAnomaly(t *testing.T) {
	const n = 120
	x := fill(n, 0.02)
	for i := range x {
		x[i] += 0.001 * math.Sin(float64(i))
	}
	for i := 100; i < n; i++ {
		x[i] = 0.07
	}
	seasonal := fill(n, 0.02)
	for i := 100; i < n; i++ {
		seasonal[i] = 0.07
	}
	cases := []struct {
		name     string
		seasonal [][]float64
		high     bool
	}{
		{"evening rise seen every day", [][]float64{seasonal, seasonal}, false},
		{"evening rise never seen", nil, true},
		{"only last week", [][]float64{nil, seasonal}, false},
	}
	for _, c := range cases {
		exp, _ := expected(x, baseline{Steps: 30, MinSteps: 3, Abnormal: func(x, r float64) bool { return x > 2*r }}, c.seasonal...)
		score, _ := anomalyScore(x, exp, 10, 0.0005)
		if (score >= 3) != c.high {
			t.Errorf("%s: score %.1f, want high=%v", c.name, score, c.high)
		}
	}
}

func TestLastChange(t *testing.T) {
	const n = 120
	base := func(v float64) []float64 {
		s := make([]float64, n)
		for i := range s {
			s[i] = v * (1 + 0.03*math.Sin(float64(i)*2.3))
		}
		return s
	}
	up := base(0.02)
	for i := 70; i < n; i++ {
		up[i] *= 5
	}
	twice := base(0.02)
	for i := 30; i < n; i++ {
		twice[i] *= 3
	}
	for i := 90; i < n; i++ {
		twice[i] /= 3
	}
	spikes := base(0.02)
	spikes[50], spikes[80] = 0.5, 0.6
	gappy := base(0.02)
	for i := 40; i < 60; i++ {
		gappy[i] = nan
	}
	for i := 80; i < n; i++ {
		gappy[i] *= 2
	}
	cases := []struct {
		name  string
		x     []float64
		at    int
		ratio float64
	}{
		{"flat", base(0.02), -1, 0},
		{"level ×5", up, 70, 5},
		{"last of two shifts", twice, 90, 1.0 / 3},
		{"isolated spikes are not shifts", spikes, -1, 0},
		{"shift after a gap", gappy, 80, 2},
	}
	for _, c := range cases {
		i, r, ok := lastChange(c.x, 1.3)
		if c.at < 0 {
			if ok {
				t.Errorf("%s: change at %d ×%.2f, want none", c.name, i, r)
			}
			continue
		}
		if !ok || i < c.at-1 || i > c.at+1 || math.Abs(r/c.ratio-1) > 0.1 {
			t.Errorf("%s: change at %d ×%.2f (ok=%v), want %d ×%.2f", c.name, i, r, ok, c.at, c.ratio)
		}
	}
}

func TestAnalysePath(t *testing.T) {
	h := func(loss ...float64) []hopStat {
		var s []hopStat
		for i, l := range loss {
			s = append(s, hopStat{Hop: i + 1, Loss: l, RTT: 0.001 * float64(i+1)})
		}
		return s
	}
	cases := []struct {
		name   string
		hops   []hopStat
		origin int
		rl     string
	}{
		{"clean", h(0, 0, 0, 0), 0, "[]"},
		{"loss from hop 3", h(0, 0, 0.3, 0.31, 0.29), 3, "[]"},
		{"rate-limited hop 2, clean destination", h(0, 0.6, 0, 0), 0, "[2]"},
		{"rate-limited hop 1 before real loss at 3", h(0.6, 0, 0.3, 0.3), 3, "[1]"},
		{"rate-limiting inside the lossy stretch", h(0, 0.3, 0.8, 0.3), 2, "[3]"},
		{"rate-limited hop right before the origin", h(0.6, 0.3, 0.3, 0.3), 2, "[1]"},
		{"loss adding up", h(0, 0.1, 0.1, 0.25), 2, "[]"},
		{"silent hop", h(0, 1, 0, 0), 0, "[2]"},
	}
	for _, c := range cases {
		o, _, rl, _ := analysePath(c.hops, 0.05, 0.02)
		if o != c.origin || fmtInts(rl) != c.rl {
			t.Errorf("%s: origin %d rate-limited %v, want %d %s", c.name, o, rl, c.origin, c.rl)
		}
	}
	// Latency: hop 3 answers slowly itself (ICMP on the slow path) but
	// forwards at full speed; the latency that persists begins at hop 5.
	hops := []hopStat{{1, 0, 0.001, 0}, {2, 0, 0.005, 0}, {3, 0, 0.09, 0}, {4, 0, 0.006, 0}, {5, 0, 0.06, 0}, {6, 0, 0.061, 0}}
	if _, lat, _, _ := analysePath(hops, 0.05, 0.02); lat != 5 {
		t.Errorf("latency origin %d, want 5", lat)
	}
	hops[4].RTT, hops[5].RTT = 0.007, 0.008
	if _, lat, _, _ := analysePath(hops, 0.05, 0.02); lat != 0 {
		t.Errorf("latency origin %d on a path where only hop 3 is slow to answer, want none", lat)
	}
}

func fmtInts(s []int) string {
	out := "["
	for i, v := range s {
		if i > 0 {
			out += " "
		}
		out += string(rune('0' + v))
	}
	return out + "]"
}

func TestGradeBloat(t *testing.T) {
	cases := []struct {
		inc  float64
		want string
	}{{0.001, "A+"}, {0.005, "A"}, {0.029, "A"}, {0.05, "B"}, {0.1, "C"}, {0.3, "D"}, {0.4, "F"}, {2, "F"}}
	for _, c := range cases {
		if g, _ := gradeBloat(c.inc, DefaultBloatBands); g != c.want {
			t.Errorf("%.3fs: grade %s, want %s", c.inc, g, c.want)
		}
	}
	if ParseBands([]float64{1, 2, 3}) == nil || ParseBands([]float64{0.005, 0.03, 0.02, 0.2, 0.4}) == nil {
		t.Error("bad bands accepted")
	}
}

func TestDeathClocks(t *testing.T) {
	inf := math.Inf(1)
	cases := []struct {
		name string
		got  float64
		want float64
	}{
		{"disk filling 1 GB/h with 10 GB", diskFullIn(10e9, -1e9/3600), 36000},
		{"disk steady", diskFullIn(10e9, 0), inf},
		{"disk full", diskFullIn(0, -1), 0},
		{"flash 30% used, 1 MB/s on 32 GB × 3000", flashWearIn(0.3, 1e6, 32e9, 3000), 0.65 * 32e9 * 3000 / 1e6},
		{"flash exceeded", flashWearIn(1, 1e6, 32e9, 3000), 0},
		{"flash idle", flashWearIn(0.3, 0, 32e9, 3000), inf},
		{"warming 0.01 °C/s with 20 °C headroom", thermalIn(60, 80, 0.01), 2000},
		{"cooling", thermalIn(60, 80, -0.01), inf},
		{"past the trip", thermalIn(85, 80, 0), 0},
		{"battery 36 kJ at 10 W", batteryIn(36000, 10, true), 3600},
		{"charging", batteryIn(36000, 10, false), inf},
	}
	for _, c := range cases {
		if !(c.got == c.want || math.Abs(c.got-c.want) < 1e-6*c.want) {
			t.Errorf("%s: %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestEModel(t *testing.T) {
	cases := []struct {
		name              string
		rtt, jitter, loss float64
		minMOS, maxMOS    float64
	}{
		{"LAN", 0.002, 0.0005, 0, 4.35, 4.45},
		{"good internet", 0.04, 0.005, 0.001, 4.2, 4.45},
		{"satellite", 0.6, 0.02, 0, 2.5, 3.7},
		{"5% loss (G.711 with PLC)", 0.04, 0.005, 0.05, 3.6, 4.0},
		{"20% loss", 0.04, 0.005, 0.2, 2.0, 3.0},
		{"all lost", 0.04, 0, 1, 1, 1.6},
	}
	for _, c := range cases {
		r := rFactor(c.rtt, c.jitter, c.loss)
		m := mos(r)
		if m < c.minMOS || m > c.maxMOS {
			t.Errorf("%s: R %.1f MOS %.2f, want MOS in [%.2f, %.2f]", c.name, r, m, c.minMOS, c.maxMOS)
		}
	}
	if !math.IsNaN(rFactor(nan, 0, 0)) {
		t.Error("R from no data must be NaN, not a score")
	}
}

// median by selection must agree with median by sorting on any input.
func TestMedianSelect(t *testing.T) {
	for n := 0; n < 60; n++ {
		for seed := range 20 {
			xs := make([]float64, n)
			for i := range xs {
				xs[i] = float64((i*7919 + seed*104729) % 13) // many ties
				if (i+seed)%11 == 0 {
					xs[i] = nan
				}
			}
			f := finite(xs)
			sorted := append([]float64(nil), f...)
			for i := 1; i < len(sorted); i++ {
				for j := i; j > 0 && sorted[j] < sorted[j-1]; j-- {
					sorted[j], sorted[j-1] = sorted[j-1], sorted[j]
				}
			}
			want := nan
			if m := len(sorted); m > 0 {
				want = sorted[m/2]
				if m%2 == 0 {
					want = (sorted[m/2-1] + sorted[m/2]) / 2
				}
			}
			got := median(xs)
			if got != want && !(math.IsNaN(got) && math.IsNaN(want)) {
				t.Fatalf("median(%v) = %v, want %v", xs, got, want)
			}
		}
	}
}

// A node with ten minutes of history (the rest of the hour-long window is
// empty) must still see a latency rise, against the median of its own
// recent normal steps, and keep seeing it however long it lasts.
func TestYoungNodeBaseline(t *testing.T) {
	const n = 121
	g := Grid{Start: time.Unix(1e9, 0), Step: 10 * time.Second, N: n}
	x := nanSlice(n)
	for i := 60; i < n; i++ {
		x[i] = 0.02 + 0.002*math.Sin(float64(i))
		if i >= 90 {
			x[i] += 0.1 // +100 ms for the last five minutes
		}
	}
	th := DefaultThresholds()
	th.RampSteps = 2
	e := NewEngine(DefaultConfig(), nil, nil)
	exp, seasonal := expected(x, e.rttBaseline(g, th), nil, nil)
	if seasonal {
		t.Fatal("no seasonal data, yet the baseline says seasonal")
	}
	if r := exp[n-1]; math.Abs(r-0.02) > 0.003 {
		t.Errorf("expected RTT at the end %v, want about 0.02: the fault became the new normal", r)
	}
	in := nodeInput{Node: "young", Loss: map[string][]float64{"a": fill(n, 0)}, RTT: map[string][]float64{"a": x}, RTTRef: map[string][]float64{"a": exp}}
	got := detect(&in, g, th)
	if len(got) != 1 || got[0].Kind != KindLatencySpike || got[0].startIdx != 90 || !got[0].Active {
		t.Fatalf("got %+v, want one active latency-spike from step 90", got)
	}
}

// A latency rise opens an incident at its first step when the short
// window's mean agrees with the rate window's; a rate window over the bar
// alone (an outlier the short window no longer holds) needs a second step.
func TestLatencyEntersOnAgreement(t *testing.T) {
	const n = 12
	th := DefaultThresholds()
	th.RampSteps = 3
	ref := fill(n, 0.02)
	run := func(rtt, rs []float64) []Incident {
		in := &nodeInput{Loss: map[string][]float64{"a": fill(n, 0)}, RTT: map[string][]float64{"a": rtt},
			RTTShort: map[string][]float64{"a": rs}, RTTRef: map[string][]float64{"a": ref}}
		return detect(in, grid(n), th)
	}
	rise, short := fill(n, 0.02), fill(n, 0.02)
	rise[n-1], short[n-1] = 0.08, 0.15
	if got := run(rise, short); len(got) != 1 || got[0].Kind != KindLatencySpike || got[0].startIdx != n-1 || !got[0].Active {
		t.Errorf("both windows over the bar at the last step: %+v, want one active spike from it", got)
	}
	outlier := fill(n, 0.02)
	outlier[n-1] = 0.08
	if got := run(outlier, fill(n, 0.02)); len(got) != 0 {
		t.Errorf("the rate window alone, one step: %+v, want none yet", got)
	}
	outlier[n-2] = 0.08
	if got := run(outlier, fill(n, 0.02)); len(got) != 1 || got[0].startIdx != n-2 {
		t.Errorf("the rate window alone, two steps: %+v, want a spike from the first", got)
	}
}

// Heavy loss in both windows opens a packet-loss incident at its first
// step; the rate window alone over 5% needs a second one.
func TestLossEntersOnAgreement(t *testing.T) {
	const n = 12
	th := DefaultThresholds()
	th.RampSteps = 3
	run := func(loss, short []float64) []Incident {
		in := &nodeInput{Loss: map[string][]float64{"a": loss, "b": fill(n, 0)}, LossShort: map[string][]float64{"a": short, "b": fill(n, 0)}}
		return detect(in, grid(n), th)
	}
	heavy, heavyShort := fill(n, 0), fill(n, 0)
	heavy[n-1], heavyShort[n-1] = 0.12, 0.3
	if got := run(heavy, heavyShort); len(got) != 1 || got[0].Kind != KindPacketLoss || got[0].startIdx != n-1 {
		t.Errorf("both windows heavy at the last step: %+v, want one packet-loss from it", got)
	}
	light := fill(n, 0)
	light[n-1] = 0.08
	if got := run(light, light); len(got) != 0 {
		t.Errorf("light loss, one step: %+v, want none yet", got)
	}
	light[n-2] = 0.08
	if got := run(light, light); len(got) != 1 || got[0].startIdx != n-2 {
		t.Errorf("light loss, two steps: %+v, want one from the first", got)
	}
}
