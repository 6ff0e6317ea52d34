package analyzer

import (
	"math"
	"time"
)

// kindRule is everything about one incident kind: the queries it reads
// (when one of them fails the kind holds its previous state instead of
// guessing), its default severity, the rule in words, and how it finds
// episodes on a node's grid (including the onset test that backdates an
// incident to the first step its signal left normal).
type kindRule struct {
	Kind     string
	Queries  []string
	Severity string
	Rule     string
	detect   func(d *detection)
}

// kindRules in evaluation order: the outage kinds first, since during an
// outage the per-target rules hold.
var kindRules = []kindRule{
	{Kind: KindLinkDown, Queries: []string{qGateway}, Severity: "critical",
		Rule: "gateway loss ≥ 90% over the short window (no gateway target: every target)", detect: detectOutages},
	{Kind: KindISPOutage, Queries: []string{qGateway}, Severity: "critical",
		Rule: "gateway < 50% loss, every other target ≥ 90% (short window)"}, // found with link-down
	{Kind: KindPacketLoss, Queries: []string{qGateway}, Severity: "warning",
		Rule: "target loss ≥ 5% (short window: ≥ 20%), resolved < 1%; held during the two above", detect: detectLoss},
	{Kind: KindLatencySpike, Queries: []string{qRTT1d, qRTT7d}, Severity: "warning",
		Rule: "mean RTT ≥ 2× and ≥ +20 ms over the expected RTT (seasonal, else the trailing baseline)", detect: detectLatency},
	{Kind: KindDNSSlow, Queries: []string{qDNS}, Severity: "warning",
		Rule: "mean lookup ≥ 500 ms, resolved < 200 ms (per resolver)", detect: detectDNS},
	{Kind: KindWifiDegraded, Queries: []string{"signal_wifi_signal", "signal_wifi_roams"}, Severity: "warning",
		Rule: "signal ≤ −75 dBm or ≥ 2 roams per 2m, resolved ≥ −70 dBm", detect: detectWifi},
	{Kind: KindBufferbloat, Queries: []string{qBloat}, Severity: "warning",
		Rule: "latency increase under load (median, worst direction) ≥ 200 ms, resolved < 100 ms", detect: detectBloat},
	{Kind: KindThermalThrottle, Queries: []string{"signal_thermal_throttle"}, Severity: "warning",
		Rule: "Pi throttled/soft-temp-limit now, or x86 core throttle events", detect: signalRule("thermal_throttle", 0.5, 0.5, "bool", false)},
	{Kind: KindUnderVoltage, Queries: []string{"signal_under_voltage"}, Severity: "critical",
		Rule: "Pi under-voltage now", detect: signalRule("under_voltage", 0.5, 0.5, "bool", false)},
	{Kind: KindConntrackFull, Queries: []string{"signal_conntrack_fill"}, Severity: "critical",
		Rule: "conntrack fill ≥ 90%, resolved < 80%", detect: conntrackRule},
}

// failedKinds: incident kinds whose inputs failed this cycle keep their previous state.
func failedKinds(res map[string]*result) map[string]bool {
	f := map[string]bool{}
	for _, k := range kindRules {
		for _, q := range k.Queries {
			if r := res[q]; r != nil && r.err != nil {
				f[k.Kind] = true
			}
		}
	}
	return f
}

// detection is one node's rule run over the grid.
type detection struct {
	in       *nodeInput
	g        Grid
	th       Thresholds
	out      []Incident
	targets  []string
	outageAt []bool // steps during (or draining from) an outage: per-target rules hold
	severity map[string]string
}

// shortLag is how long after a fault ends its window still shows it: the
// window less the scrape interval (its first sample is one scrape in), and
// a lost probe is counted only at its timeout. The scrape interval is not
// known here; three quarters of the window is right to within a step from
// 2 to 4 scrapes per window (the short one when it was queried).
func (d *detection) shortLag() time.Duration {
	if len(d.in.LossShort) > 0 {
		return d.th.ShortWindow * 3 / 4
	}
	return d.th.RateWindow * 3 / 4
}

// detect runs every rule of one node over the grid.
func detect(in *nodeInput, g Grid, th Thresholds) []Incident {
	d := &detection{in: in, g: g, th: th, targets: sortedKeys(in.Loss), outageAt: make([]bool, g.N), severity: map[string]string{}}
	for _, k := range kindRules {
		d.severity[k.Kind] = k.Severity
	}
	for _, k := range kindRules {
		if k.detect != nil {
			k.detect(d)
		}
	}
	return d.out
}

var (
	higher = func(a, b float64) bool { return a > b }
	lower  = func(a, b float64) bool { return a < b }
)

// timing dates an episode. onset backdates its start to the first step
// where the signal left normal: rate windows make a sharp fault ramp up over
// several steps. clean(i) says step i's short-window signal is normal: the
// end goes back to the first step of the clean run that closed the
// incident, less lag (how long the window still saw the fault after it
// ended), so a resolution is dated within a step of the real one rather
// than after the rate window drained.
//
// With the short-window signal itself (short, less base, e.g. the expected
// RTT; nil base: 0) the end is interpolated instead: at the last step
// before the clean run the window still held the fault for the share
// short/level of its width, so the fault ended that share of window after
// the window's start. That is independent of the grid and of lag.
type timing struct {
	onset   func(i int) bool
	clean   func(i int) bool
	lag     time.Duration
	short   []float64
	base    func(i int) float64
	window  time.Duration
	samples float64 // samples per short window (NaN: unknown, no interpolation)
	enter   int     // bad steps that open an incident (0: Thresholds.EnterSteps)
}

// add turns one rule's levels into incidents. sev picks the severity from
// the peak (nil: the kind's default).
func (d *detection) add(target, kind string, lv []level, sig []float64, worse func(a, b float64) bool, unit string,
	sev func(peak float64) string, tm timing) {
	g, th := d.g, d.th
	prevEnd := 0
	enter := th.EnterSteps
	if tm.enter > 0 {
		enter = tm.enter
	}
	for _, ep := range hysteresis(lv, enter, th.ExitSteps) {
		for tm.onset != nil && ep.Start-1 >= prevEnd && tm.onset(ep.Start-1) {
			ep.Start--
		}
		prevEnd = ep.End
		end := endOr(ep.End, g.N)
		peak := math.NaN()
		for _, v := range sig[ep.Start:end] {
			if !math.IsNaN(v) && (math.IsNaN(peak) || worse(v, peak)) {
				peak = v
			}
		}
		inc := Incident{Node: d.in.Node, Target: target, Kind: kind, Start: startTime(g, ep.Start), Active: ep.End < 0,
			Peak: peak, PeakUnit: unit, Level: median(sig[ep.Start:end]), Before: median(sig[max(0, ep.Start-(end-ep.Start)-10):ep.Start]),
			startIdx: ep.Start, endIdx: ep.End}
		if ep.End >= 0 {
			inc.End = d.endTime(ep, tm)
		}
		inc.Severity = d.severity[kind]
		if sev != nil {
			inc.Severity = sev(peak)
		}
		d.out = append(d.out, inc)
	}
}

// startTime dates an episode's first step i: the fault began after step
// i-1 still looked normal and by step i, so half a step before i is the
// estimate with the least error (dating at i itself was 8-13 s late at a
// 10 s step in the diagnosis suite). At the window's first step the fault
// may be older: that is dated at the step.
func startTime(g Grid, i int) time.Time {
	if i == 0 {
		return g.Time(0)
	}
	return g.Time(i).Add(-g.Step / 2)
}

func (d *detection) endTime(ep episode, tm timing) time.Time {
	if tm.clean == nil {
		return d.g.Time(ep.End)
	}
	j := ep.End
	for j-1 > ep.Start && tm.clean(j-1) {
		j--
	}
	if !tm.clean(j) {
		return d.g.Time(ep.End) // the short window never looked clean: keep the rule's own date
	}
	if end, ok := tm.interpolate(d.g, ep.Start, j); ok {
		return maxTime(end, d.g.Time(ep.Start+1))
	}
	return maxTime(d.g.Time(j).Add(-tm.lag), d.g.Time(ep.Start+1))
}

// interpolate dates the end from the share of the fault in the last
// window that still saw it (step j-1), against the fault's level in [start, j-1).
func (tm timing) interpolate(g Grid, start, j int) (time.Time, bool) {
	if tm.short == nil || j-1 <= start {
		return time.Time{}, false
	}
	base := func(i int) float64 {
		if tm.base == nil {
			return 0
		}
		return tm.base(i)
	}
	during := make([]float64, 0, j-1-start)
	for i := start; i < j-1; i++ {
		during = append(during, tm.short[i]-base(i))
	}
	level, r := median(during), tm.short[j-1]-base(j-1)
	if math.IsNaN(level) || math.IsNaN(r) || level <= 0 {
		return time.Time{}, false
	}
	// The window's n samples span (n−1) scrape intervals S = window/n, the
	// last about S/2 before the step: the fault ended f of that span after
	// the first sample.
	n := tm.samples
	if math.IsNaN(n) || n < 2 {
		return time.Time{}, false
	}
	f := math.Max(0, math.Min(1, r/level))
	scrape := float64(tm.window) / n
	return g.Time(j - 1).Add(-time.Duration(scrape/2 + (1-f)*(n-1)*scrape)), true
}

// window is the nominal width of the short-window series.
func (d *detection) window() time.Duration {
	if len(d.in.LossShort) > 0 {
		return d.th.ShortWindow
	}
	return d.th.RateWindow
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// short is the short-window version of a per-target series, or the rate
// window's when the short one was not queried.
func short(m, fallback map[string][]float64, t string) []float64 {
	if x := m[t]; x != nil {
		return x
	}
	return fallback[t]
}

// lossClean: every listed target's short-window loss is below the exit threshold.
func (d *detection) lossClean(targets ...string) func(int) bool {
	return func(i int) bool {
		for _, t := range targets {
			if l := short(d.in.LossShort, d.in.Loss, t)[i]; math.IsNaN(l) || l >= d.th.LossExit {
				return false
			}
		}
		return true
	}
}

// detectOutages finds link-down and isp-outage, and marks their steps so
// that the per-target rules hold during them.
func detectOutages(d *detection) {
	in, g, th := d.in, d.g, d.th
	if len(d.targets) == 0 {
		return
	}
	down, isp, gwLoss := make([]level, g.N), make([]level, g.N), nanSlice(g.N)
	for i := range g.N {
		down[i], isp[i], gwLoss[i] = d.reachability(i)
	}
	before := len(d.out)
	var others []string
	for _, t := range d.targets {
		if t != in.Gateway {
			others = append(others, t)
		}
	}
	gw := others
	if in.Gateway != "" {
		gw = []string{in.Gateway}
	}
	lag := d.shortLag()
	othersLoss := nanSlice(g.N) // the best-reached other target: the outage ends when one is back
	for i := range othersLoss {
		for _, t := range others {
			if l := short(in.LossShort, in.Loss, t)[i]; !math.IsNaN(l) && (math.IsNaN(othersLoss[i]) || l < othersLoss[i]) {
				othersLoss[i] = l
			}
		}
	}
	// One step of ≥ 90% loss over the short window (every probe of a dozen
	// or more lost) is evidence enough for an outage.
	d.add("", KindLinkDown, down, gwLoss, higher, "loss_ratio", nil, timing{onset: above(gwLoss, th.LossExit), clean: d.lossClean(gw...), lag: lag,
		short: gwLoss, window: d.window(), samples: d.in.ShortSamples, enter: th.OutageEnterSteps})
	d.add("", KindISPOutage, isp, gwLoss, lower, "gateway_loss_ratio", nil, timing{onset: func(i int) bool {
		for _, t := range others {
			if short(in.LossShort, in.Loss, t)[i] > th.LossExit {
				return true
			}
		}
		return false
	}, clean: d.lossClean(others...), lag: lag, short: othersLoss, window: d.window(), samples: d.in.ShortSamples, enter: th.OutageEnterSteps})
	for _, inc := range d.out[before:] {
		end := endOr(inc.endIdx, g.N)
		if inc.endIdx >= 0 {
			end = min(g.N, end+th.RampSteps+1) // the rate window drains after recovery
		}
		for i := max(0, inc.startIdx-th.EnterSteps); i < end; i++ {
			d.outageAt[i] = true
		}
	}
}

// reachability is step i's verdict for link-down and isp-outage, and the
// loss of the gateway (the worst-reached target when there is none).
func (d *detection) reachability(i int) (down, isp level, gwLoss float64) {
	in, th := d.in, d.th
	if in.Gateway == "" {
		worst := math.Inf(1)
		for _, t := range d.targets {
			l := short(in.LossShort, in.Loss, t)[i]
			if math.IsNaN(l) {
				return lvBlind, lvBlind, math.NaN()
			}
			worst = math.Min(worst, l)
		}
		return threshold(worst, th.OutageLoss, th.ReachableLoss, true), lvBlind, worst
	}
	gl := short(in.LossShort, in.Loss, in.Gateway)[i]
	down = threshold(gl, th.OutageLoss, th.ReachableLoss, true)
	others, allGone, anyUp, blind := 0, true, false, math.IsNaN(gl)
	for _, t := range d.targets {
		if t == in.Gateway {
			continue
		}
		others++
		l := short(in.LossShort, in.Loss, t)[i]
		if math.IsNaN(l) {
			blind = true
			continue
		}
		allGone = allGone && l >= th.OutageLoss
		anyUp = anyUp || l < th.ReachableLoss
	}
	switch {
	case blind || others == 0:
		isp = lvBlind
	case gl < th.ReachableLoss && allGone:
		isp = lvBad
	case anyUp:
		isp = lvGood
	default:
		isp = lvHold
	}
	return down, isp, gl
}

func detectLoss(d *detection) {
	th := d.th
	for _, t := range d.targets {
		loss, sl := d.in.Loss[t], short(d.in.LossShort, d.in.Loss, t)
		lv := make([]level, d.g.N)
		for i, l := range loss {
			lv[i] = threshold(l, th.LossEnter, th.LossExit, true)
			// Heavy loss shows in the short window first; it is too few
			// probes to judge light loss by.
			if lv[i] != lvBlind && sl[i] >= th.LossCritical {
				lv[i] = lvBad
			}
			if d.outageAt[i] && lv[i] != lvBlind {
				lv[i] = lvHold
			}
		}
		// Two bad steps open an incident, or one where both windows say
		// heavy loss (as for latency: a burst stays in the windows for as
		// many steps either way).
		prev := lvBlind
		for i, l := range lv {
			if l == lvBad && prev != lvBad && !(sl[i] >= th.LossCritical && loss[i] >= th.LossEnter) {
				lv[i] = lvHold
			}
			if l != lvBlind {
				prev = l
			}
		}
		d.add(t, KindPacketLoss, lv, loss, higher, "loss_ratio", func(p float64) string {
			if p >= th.LossCritical {
				return "critical"
			}
			return "warning"
		}, timing{onset: above(loss, th.LossExit), clean: d.lossClean(t), lag: d.shortLag(), enter: 1,
			short: short(d.in.LossShort, d.in.Loss, t), window: d.window(), samples: d.in.ShortSamples})
	}
}

func detectLatency(d *detection) {
	th := d.th
	for _, t := range d.targets {
		rtt, ref := d.in.RTT[t], d.in.RTTRef[t]
		if rtt == nil {
			continue
		}
		rs := short(d.in.RTTShort, d.in.RTT, t)
		lv := make([]level, d.g.N)
		spike := func(x, r float64) bool { return x >= math.Max(r*th.LatencyRatio, r+th.LatencyAbs) }
		for i, x := range rtt {
			r := math.NaN()
			if ref != nil {
				r = ref[i]
			}
			switch {
			case math.IsNaN(x) || math.IsNaN(r) || d.outageAt[i]:
				lv[i] = lvBlind
			case spike(x, r) && (spike(rs[i], r) || i > 0 && !d.outageAt[i-1] && spike(rtt[i-1], r)):
				// Two steps of the rate window's mean, or one where the short
				// window agrees: both windows' means over the bar say as much
				// as a second step (an outlier stays in the rate window for
				// three steps either way) and save one.
				lv[i] = lvBad
			case x < math.Max(r*(1+(th.LatencyRatio-1)/2), r+th.LatencyAbs/2):
				lv[i] = lvGood
			default:
				lv[i] = lvHold
			}
		}
		d.add(t, KindLatencySpike, lv, rtt, higher, "rtt_seconds", nil, timing{onset: func(i int) bool {
			return ref != nil && (rtt[i] > ref[i]+th.LatencyAbs/2 || rs[i] > ref[i]+th.LatencyAbs/2)
		}, enter: 1, clean: func(i int) bool {
			// Half-way back: the window's mean crosses it when half the window is after the end.
			return ref != nil && rs[i] < ref[i]+(rtt[i]-ref[i])/2+th.LatencyAbs/4 && rs[i] < math.Max(ref[i]*(1+(th.LatencyRatio-1)/2), ref[i]+th.LatencyAbs/2)
		}, lag: d.shortLag(), short: rs, base: func(i int) float64 {
			if ref == nil {
				return math.NaN()
			}
			return ref[i]
		}, window: d.window(), samples: d.in.ShortSamples})
	}
}

// detectDNS judges the rate window's mean lookup, and dates start and end
// from the short window's as loss does: the rate window still holds slow
// lookups for most of its width after the resolver recovered.
func detectDNS(d *detection) {
	for _, r := range sortedKeys(d.in.DNS) {
		x, xs := d.in.DNS[r], d.in.DNSShort[r]
		tm := timing{onset: above(x, d.th.DNSExit)}
		if xs != nil {
			exit := d.th.DNSExit
			tm = timing{onset: func(i int) bool { return x[i] > exit || xs[i] > exit },
				clean: func(i int) bool { return xs[i] < exit }, lag: d.th.ShortWindow * 3 / 4,
				short: xs, window: d.th.ShortWindow, samples: d.in.ShortSamples}
		}
		d.add(r, KindDNSSlow, levels(x, d.th.DNSEnter, d.th.DNSExit, true), x, higher, "seconds", nil, tm)
	}
}

func detectWifi(d *detection) {
	sig, ok := d.in.Signals["wifi_signal"]
	if !ok {
		return
	}
	roams := d.in.Signals["wifi_roams"]
	lv := make([]level, d.g.N)
	for i, s := range sig {
		lv[i] = threshold(s, d.th.WifiEnter, d.th.WifiExit, false)
		if roams != nil && !math.IsNaN(roams[i]) && roams[i] >= d.th.WifiRoams {
			lv[i] = lvBad
		}
	}
	d.add("", KindWifiDegraded, lv, sig, lower, "dbm", nil, timing{})
}

func detectBloat(d *detection) {
	if b := d.in.Bloat; b != nil {
		d.add("", KindBufferbloat, levels(b, d.th.BloatEnter, d.th.BloatExit, true), b, higher, "seconds", nil, timing{})
	}
}

// signalRule is a node-wide threshold rule on one host signal.
func signalRule(signal string, enter, exit float64, unit string, withOnset bool) func(d *detection) {
	return func(d *detection) {
		s, ok := d.in.Signals[signal]
		if !ok {
			return
		}
		var tm timing
		if withOnset {
			tm.onset = above(s, exit)
		}
		d.add("", kindOfSignal[signal], levels(s, enter, exit, true), s, higher, unit, nil, tm)
	}
}

var kindOfSignal = map[string]string{"thermal_throttle": KindThermalThrottle, "under_voltage": KindUnderVoltage, "conntrack_fill": KindConntrackFull}

func conntrackRule(d *detection) {
	signalRule("conntrack_fill", d.th.ConntrackEnter, d.th.ConntrackExit, "ratio", true)(d)
}
