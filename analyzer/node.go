package analyzer

import (
	"math"
)

// stepJitter is the mean absolute change of the RTT between steps: the
// latency variation a jitter buffer must absorb, seen at the grid's
// resolution. It understates packet-to-packet jitter; the histogram would
// give that, at a cost of one bucket series per le per target, which a
// 30-second cycle over a large fleet cannot pay.
func stepJitter(x []float64) float64 {
	sum, n := 0.0, 0
	for i := 1; i < len(x); i++ {
		if d := math.Abs(x[i] - x[i-1]); !math.IsNaN(d) {
			sum += d
			n++
		}
	}
	if n == 0 {
		return math.NaN()
	}
	return sum / float64(n)
}

func endOr(i, n int) int {
	if i < 0 {
		return n
	}
	return i
}

// analyseNode fills part with one node's incidents and figures.
func (e *Engine) analyseNode(part *Snapshot, ns *nodeState, g Grid, th Thresholds, defs map[string]signalDef, failed map[string]bool,
	prevByKey map[string]Incident, recent int) {
	in := ns.in
	n := in.Node
	seasonal := map[string]bool{}
	for t, x := range in.RTT {
		exp, sea := expected(x, e.rttBaseline(g, th), ns.rtt1d[t], ns.rtt7d[t])
		in.RTTRef[t], seasonal[t] = exp, sea
	}
	var incs []Incident
	if ns.hasData {
		incs = detect(in, g, th)
	}
	for i := range incs {
		inc := &incs[i]
		near := th.RampSteps + 1
		w := blameWindow{start: inc.startIdx, end: endOr(inc.endIdx, g.N), near: near, during: max(2*near, 6), minBefore: 6}
		inc.Blame = rankBlame(inc.Kind, in.Signals, defs, w, e.cfg.BlameTop, !spared(inc, incs, in.Gateway))
		inc.blameFixed = w.end-w.start >= w.during
		// Judged only with history to judge by: a verdict, not a guess.
		inc.NoLocalCause = len(inc.Blame) == 0 && networkKinds[inc.Kind] && w.start-near >= w.minBefore && len(in.Signals) > 0
		if p, ok := prevByKey[inc.key()]; ok && inc.Active && inc.startIdx == 0 && p.Start.Before(inc.Start) {
			inc.Start = p.Start // began before this window
		}
	}
	// Kinds whose queries failed, and nodes gone silent, keep what they had.
	held := map[string]bool{}
	for _, p := range prevByKey {
		if p.Node == n && (failed[p.Kind] || !ns.hasData) {
			held[p.key()] = true
		}
	}
	kept := incs[:0]
	for _, inc := range incs {
		if !held[inc.key()] && !failed[inc.Kind] {
			kept = append(kept, inc)
		}
	}
	for _, p := range prevByKey {
		if held[p.key()] {
			kept = append(kept, p)
		}
	}
	part.Incidents = kept
	e.nodeFigures(part, ns, g, th, recent, seasonal)
	part.Nodes = []NodeSummary{summarise(ns, g, kept, recent)}
}

// nodeFigures: anomaly scores, change points, call quality for one node.
func (e *Engine) nodeFigures(snap *Snapshot, ns *nodeState, g Grid, th Thresholds, recent int, isSeasonal map[string]bool) {
	in := ns.in
	for _, t := range sortedKeys(in.RTT) {
		x := in.RTT[t]
		if l := in.Loss[t]; l != nil {
			r := rFactor(median(x[max(0, len(x)-recent):]), stepJitter(x[max(0, len(x)-recent):]), median(l[max(0, len(l)-recent):]))
			if !math.IsNaN(r) {
				snap.Quality = append(snap.Quality, Quality{Node: in.Node, Target: t, RFactor: r, MOS: mos(r)})
			}
		}
		exp, seasonal := in.RTTRef[t], isSeasonal[t]
		floor := math.Max(0.0005, 0.05*median(exp))
		score, sigma := anomalyScore(x, exp, recent, floor)
		if l := in.Loss[t]; l != nil {
			lexp, _ := expected(l, e.lossBaseline(g, th), ns.loss1d[t], ns.loss7d[t])
			if ls, _ := anomalyScore(l, lexp, recent, 0.01); !math.IsNaN(ls) && (math.IsNaN(score) || ls > score) {
				score = ls
			}
		}
		if !math.IsNaN(score) {
			v, ex := median(x[max(0, len(x)-recent):]), exp[len(exp)-1]
			snap.Anomalies = append(snap.Anomalies, Anomaly{Node: in.Node, Target: t, Score: score, Value: v, Expected: ex,
				Lower: math.Max(0, ex-bandK*sigma), Upper: ex + bandK*sigma, Seasonal: seasonal})
		}
		if i, ratio, ok := lastChange(x, e.cfg.ChangeMinRatio); ok {
			snap.Changes = append(snap.Changes, ChangePoint{Node: in.Node, Target: t, Time: g.Time(i), Ratio: ratio})
		}
	}
}

// summarise builds the fleet line of a node from the end of the window.
func summarise(ns *nodeState, g Grid, incs []Incident, recent int) NodeSummary {
	in := ns.in
	s := NodeSummary{Node: in.Node, WorstLoss: math.NaN(), MedianRTT: math.NaN()}
	tail := func(v []float64) float64 {
		if v == nil {
			return math.NaN()
		}
		return median(v[max(0, len(v)-recent):])
	}
	worstScore := -1.0
	var rtts []float64
	for _, t := range sortedKeys(in.Loss) {
		l, r := tail(in.Loss[t]), tail(in.RTT[t])
		rtts = append(rtts, r)
		score := l
		if math.IsNaN(score) {
			continue
		}
		if score > worstScore || (score == worstScore && r > tail(in.RTT[s.WorstTarget])) {
			worstScore, s.WorstTarget, s.WorstLoss = score, t, l
		}
	}
	s.MedianRTT = median(rtts)
	if s.WorstTarget != "" {
		s.Spark = in.RTT[s.WorstTarget]
	}
	s.CPU, s.Memory, s.WifiSignal = tail(in.Signals["cpu_busy"]), tail(in.Signals["memory_used"]), tail(in.Signals["wifi_signal"])
	s.Flash = math.NaN()
	s.Blind = !ns.hasData || math.IsNaN(s.WorstLoss)
	crit := false
	for _, i := range incs {
		if i.Active {
			s.Incidents++
			crit = crit || i.Kind == KindLinkDown || i.Kind == KindISPOutage
		}
	}
	switch {
	case s.Blind:
		s.Health = "blind"
	case crit:
		s.Health = "down"
	case s.Incidents > 0:
		s.Health = "degraded"
	default:
		s.Health = "ok"
	}
	return s
}

// rttBaseline learns the expected RTT from the steps that were not already
// above a latency-spike's exit threshold.
func (e *Engine) rttBaseline(g Grid, th Thresholds) baseline {
	return baseline{Steps: max(3, int(e.cfg.BaselineWindow/g.Step)), MinSteps: 3, Abnormal: func(x, r float64) bool {
		return x >= math.Max(r*(1+(th.LatencyRatio-1)/2), r+th.LatencyAbs/2)
	}}
}

func (e *Engine) lossBaseline(g Grid, th Thresholds) baseline {
	return baseline{Steps: max(3, int(e.cfg.BaselineWindow/g.Step)), MinSteps: 3, Abnormal: func(x, r float64) bool {
		return x > r+th.LossExit
	}}
}

// spared: a per-target incident while the gateway itself was fine. The
// node's own resources (CPU, memory, wifi, heat, power) would slow or lose
// the packets to every target, its gateway first: they cannot explain it,
// only what loads the path (its own traffic, its conntrack table) can.
func spared(inc *Incident, incs []Incident, gateway string) bool {
	if gateway == "" || inc.Target == "" || inc.Target == gateway || (inc.Kind != KindPacketLoss && inc.Kind != KindLatencySpike) {
		return false
	}
	for i := range incs {
		if o := &incs[i]; o.Target == gateway && o.Kind == inc.Kind && overlaps(o, inc, 0) {
			return false
		}
	}
	return true
}
