package analyzer

import (
	"math"
	"sort"
	"time"
)

// Incident kinds.
const (
	KindLinkDown        = "link-down"
	KindISPOutage       = "isp-outage"
	KindPacketLoss      = "packet-loss"
	KindLatencySpike    = "latency-spike"
	KindDNSSlow         = "dns-slow"
	KindWifiDegraded    = "wifi-degraded"
	KindBufferbloat     = "bufferbloat"
	KindThermalThrottle = "thermal-throttle"
	KindUnderVoltage    = "under-voltage"
	KindConntrackFull   = "conntrack-full"
)

// level is one step's verdict for an incident rule. Between the enter and the
// exit threshold a rule says "hold"; with no data it says "blind", which also
// holds: an incident is never started or ended on missing data.
type level int8

const (
	lvBlind level = iota
	lvGood
	lvHold
	lvBad
)

// episode is one incident on the grid: steps [Start, End); End = -1 while active.
type episode struct{ Start, End int }

// hysteresis turns per-step verdicts into incidents: enterN consecutive bad
// steps open one (dated at the first of them), exitN consecutive good steps
// close it (dated at the first good one). Blind steps neither count nor
// break a run, so a gap from an exporter restart changes nothing.
func hysteresis(lv []level, enterN, exitN int) []episode {
	var eps []episode
	active := false
	run, runStart := 0, 0
	for i, l := range lv {
		switch {
		case l == lvBlind:
			continue
		case !active && l == lvBad:
			if run == 0 {
				runStart = i
			}
			run++
			if run >= enterN {
				active = true
				eps = append(eps, episode{Start: runStart, End: -1})
				run = 0
			}
		case active && l == lvGood:
			if run == 0 {
				runStart = i
			}
			run++
			if run >= exitN {
				active = false
				eps[len(eps)-1].End = runStart
				run = 0
			}
		default:
			run = 0
		}
	}
	return eps
}

// threshold maps a value to a level: bad at or beyond enter, good before exit.
// higherIsWorse chooses the direction (wifi signal gets worse as it falls).
func threshold(x, enter, exit float64, higherIsWorse bool) level {
	if math.IsNaN(x) {
		return lvBlind
	}
	if !higherIsWorse {
		x, enter, exit = -x, -enter, -exit
	}
	switch {
	case x >= enter:
		return lvBad
	case x < exit:
		return lvGood
	}
	return lvHold
}

// Thresholds of the incident rules (enter, exit).
type Thresholds struct {
	EnterSteps, ExitSteps int
	RampSteps             int     // rate window in steps (set by the engine)
	OutageLoss            float64 // a target counts as unreachable at this loss ratio
	ReachableLoss         float64 // and as reachable below it
	LossEnter, LossExit   float64
	LossCritical          float64
	LatencyRatio          float64 // spike: above ref·ratio and ref+LatencyAbs
	LatencyAbs            float64 // seconds
	DNSEnter, DNSExit     float64 // seconds
	WifiEnter, WifiExit   float64 // dBm
	WifiRoams             float64 // roams per rate window
	BloatEnter, BloatExit float64 // seconds of latency increase
	ConntrackEnter        float64
	ConntrackExit         float64
}

func DefaultThresholds() Thresholds {
	return Thresholds{
		EnterSteps: 2, ExitSteps: 4,
		OutageLoss: 0.9, ReachableLoss: 0.5,
		LossEnter: 0.05, LossExit: 0.01, LossCritical: 0.2,
		LatencyRatio: 2, LatencyAbs: 0.02,
		DNSEnter: 0.5, DNSExit: 0.2,
		WifiEnter: -75, WifiExit: -70, WifiRoams: 2,
		BloatEnter: 0.2, BloatExit: 0.1,
		ConntrackEnter: 0.9, ConntrackExit: 0.8,
	}
}

// Incident is one detected problem. Start and End are grid times.
type Incident struct {
	Node      string    `json:"node"`
	Target    string    `json:"target,omitempty"`
	Kind      string    `json:"kind"`
	Severity  string    `json:"severity"`
	Start     time.Time `json:"start"`
	End       time.Time `json:"end,omitzero"`
	Active    bool      `json:"active"`
	Peak      float64   `json:"peak"`      // worst value of the rule's signal during the incident
	PeakUnit  string    `json:"peak_unit"` // what Peak measures
	Level     float64   `json:"level"`     // median of the rule's signal during the incident
	Before    float64   `json:"before"`    // the rule's signal before the incident (median)
	OriginHop int       `json:"origin_hop,omitempty"`
	Blame     []Blame   `json:"blame,omitempty"`

	startIdx, endIdx int
}

func (in *Incident) key() string { return in.Node + "\x00" + in.Target + "\x00" + in.Kind }

// nodeInput is what the incident rules need of one node, on the grid.
type nodeInput struct {
	Node     string
	Gateway  string               // target name of the gateway, "" if none
	Loss     map[string][]float64 // per target loss ratio
	RTT      map[string][]float64 // per target mean RTT, seconds
	RTTRef   map[string][]float64 // per target expected RTT (seasonal or trailing)
	DNS      map[string][]float64 // per resolver mean lookup time
	Signals  map[string][]float64 // host signals by name
	Bloat    []float64
	outageAt []bool
}

// detect runs every rule of one node over the grid.
func detect(in *nodeInput, g Grid, th Thresholds) []Incident {
	var out []Incident
	// onset backdates an incident to the first step where its signal left
	// normal: rate windows make a sharp fault ramp up over several steps.
	add := func(target, kind string, lv []level, sig []float64, worse func(a, b float64) bool, unit string, sev func(peak float64) string, onset func(i int) bool) {
		prevEnd := 0
		for _, ep := range hysteresis(lv, th.EnterSteps, th.ExitSteps) {
			for onset != nil && ep.Start-1 >= prevEnd && onset(ep.Start-1) {
				ep.Start--
			}
			prevEnd = ep.End
			end := ep.End
			if end < 0 {
				end = g.N
			}
			peak := math.NaN()
			for _, v := range sig[ep.Start:end] {
				if !math.IsNaN(v) && (math.IsNaN(peak) || worse(v, peak)) {
					peak = v
				}
			}
			inc := Incident{Node: in.Node, Target: target, Kind: kind, Start: g.Time(ep.Start), Active: ep.End < 0,
				Peak: peak, PeakUnit: unit, Level: median(sig[ep.Start:end]), Before: median(sig[max(0, ep.Start-(end-ep.Start)-10):ep.Start]),
				startIdx: ep.Start, endIdx: ep.End}
			if ep.End >= 0 {
				inc.End = g.Time(ep.End)
			}
			inc.Severity = sev(peak)
			out = append(out, inc)
		}
	}
	higher := func(a, b float64) bool { return a > b }
	lower := func(a, b float64) bool { return a < b }
	fixed := func(s string) func(float64) string { return func(float64) string { return s } }

	targets := sortedKeys(in.Loss)
	// Node-wide reachability first: during an outage the per-target rules hold.
	in.outageAt = make([]bool, g.N)
	if len(targets) > 0 {
		down := make([]level, g.N)
		isp := make([]level, g.N)
		gwLoss := nanSlice(g.N)
		for i := range g.N {
			down[i], isp[i] = lvBlind, lvBlind
			if in.Gateway != "" {
				gl := in.Loss[in.Gateway][i]
				gwLoss[i] = gl
				down[i] = threshold(gl, th.OutageLoss, th.ReachableLoss, true)
				others, allGone, anyUp, blind := 0, true, false, math.IsNaN(gl)
				for _, t := range targets {
					if t == in.Gateway {
						continue
					}
					others++
					l := in.Loss[t][i]
					if math.IsNaN(l) {
						blind = true
						continue
					}
					allGone = allGone && l >= th.OutageLoss
					anyUp = anyUp || l < th.ReachableLoss
				}
				switch {
				case blind || others == 0:
				case gl < th.ReachableLoss && allGone:
					isp[i] = lvBad
				case anyUp:
					isp[i] = lvGood
				default:
					isp[i] = lvHold
				}
			} else {
				worst, best := math.Inf(1), math.Inf(-1)
				blind := false
				for _, t := range targets {
					l := in.Loss[t][i]
					if math.IsNaN(l) {
						blind = true
					}
					worst, best = math.Min(worst, l), math.Max(best, l)
				}
				gwLoss[i] = worst
				if !blind {
					down[i] = threshold(worst, th.OutageLoss, th.ReachableLoss, true)
				}
			}
		}
		before := len(out)
		add("", KindLinkDown, down, gwLoss, higher, "loss_ratio", fixed("critical"), above(gwLoss, th.LossExit))
		add("", KindISPOutage, isp, gwLoss, lower, "gateway_loss_ratio", fixed("critical"), func(i int) bool {
			for _, t := range targets {
				if t != in.Gateway && in.Loss[t][i] > th.LossExit {
					return true
				}
			}
			return false
		})
		for _, inc := range out[before:] {
			end := inc.endIdx
			if end < 0 {
				end = g.N
			}
			if inc.endIdx >= 0 {
				end = min(g.N, end+th.RampSteps+1) // the rate window drains after recovery
			}
			for i := max(0, inc.startIdx-th.EnterSteps); i < end; i++ {
				in.outageAt[i] = true
			}
		}
	}
	for _, t := range targets {
		loss := in.Loss[t]
		lv := make([]level, g.N)
		for i, l := range loss {
			lv[i] = threshold(l, th.LossEnter, th.LossExit, true)
			if in.outageAt[i] && lv[i] != lvBlind {
				lv[i] = lvHold
			}
		}
		add(t, KindPacketLoss, lv, loss, higher, "loss_ratio", func(p float64) string {
			if p >= th.LossCritical {
				return "critical"
			}
			return "warning"
		}, above(loss, th.LossExit))
		rtt, ref := in.RTT[t], in.RTTRef[t]
		if rtt == nil {
			continue
		}
		lv = make([]level, g.N)
		for i, x := range rtt {
			r := math.NaN()
			if ref != nil {
				r = ref[i]
			}
			switch {
			case math.IsNaN(x) || math.IsNaN(r) || in.outageAt[i]:
				lv[i] = lvBlind
			case x >= math.Max(r*th.LatencyRatio, r+th.LatencyAbs):
				lv[i] = lvBad
			case x < math.Max(r*(1+(th.LatencyRatio-1)/2), r+th.LatencyAbs/2):
				lv[i] = lvGood
			default:
				lv[i] = lvHold
			}
		}
		add(t, KindLatencySpike, lv, rtt, higher, "rtt_seconds", fixed("warning"), func(i int) bool {
			return ref != nil && rtt[i] > ref[i]+th.LatencyAbs/2
		})
	}
	for _, r := range sortedKeys(in.DNS) {
		add(r, KindDNSSlow, levels(in.DNS[r], th.DNSEnter, th.DNSExit, true), in.DNS[r], higher, "seconds", fixed("warning"), above(in.DNS[r], th.DNSExit))
	}
	if sig, ok := in.Signals["wifi_signal"]; ok {
		roams := in.Signals["wifi_roams"]
		lv := make([]level, g.N)
		for i, s := range sig {
			lv[i] = threshold(s, th.WifiEnter, th.WifiExit, false)
			if roams != nil && !math.IsNaN(roams[i]) && roams[i] >= th.WifiRoams {
				lv[i] = lvBad
			}
		}
		add("", KindWifiDegraded, lv, sig, lower, "dbm", fixed("warning"), nil)
	}
	if in.Bloat != nil {
		add("", KindBufferbloat, levels(in.Bloat, th.BloatEnter, th.BloatExit, true), in.Bloat, higher, "seconds", fixed("warning"), nil)
	}
	if s, ok := in.Signals["thermal_throttle"]; ok {
		add("", KindThermalThrottle, levels(s, 0.5, 0.5, true), s, higher, "bool", fixed("warning"), nil)
	}
	if s, ok := in.Signals["under_voltage"]; ok {
		add("", KindUnderVoltage, levels(s, 0.5, 0.5, true), s, higher, "bool", fixed("critical"), nil)
	}
	if s, ok := in.Signals["conntrack_fill"]; ok {
		add("", KindConntrackFull, levels(s, th.ConntrackEnter, th.ConntrackExit, true), s, higher, "ratio", fixed("critical"), above(s, th.ConntrackExit))
	}
	return out
}

// above is an onset test: the value is past the exit threshold (a NaN is not).
func above(xs []float64, v float64) func(int) bool {
	return func(i int) bool { return xs[i] > v }
}

func levels(xs []float64, enter, exit float64, higherIsWorse bool) []level {
	lv := make([]level, len(xs))
	for i, x := range xs {
		lv[i] = threshold(x, enter, exit, higherIsWorse)
	}
	return lv
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
