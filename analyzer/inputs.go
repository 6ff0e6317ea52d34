package analyzer

import "math"

type nodeState struct {
	in      *nodeInput
	rtt1d   map[string][]float64
	rtt7d   map[string][]float64
	loss1d  map[string][]float64
	loss7d  map[string][]float64
	hasData bool
}

func newNodeState(n string) *nodeState {
	return &nodeState{in: &nodeInput{Node: n, Loss: map[string][]float64{}, RTT: map[string][]float64{}, RTTRef: map[string][]float64{},
		LossShort: map[string][]float64{}, RTTShort: map[string][]float64{}, ShortSamples: math.NaN(),
		DNS: map[string][]float64{}, DNSShort: map[string][]float64{}, Signals: map[string][]float64{}},
		rtt1d: map[string][]float64{}, rtt7d: map[string][]float64{}, loss1d: map[string][]float64{}, loss7d: map[string][]float64{}}
}

// inputs sorts the cycle's series into one input per node. get returns a
// query's series (nil when it failed).
func (e *Engine) inputs(g Grid, get func(string) []Series) (map[string]*nodeState, map[string]signalDef) {
	nodes := e.pingInputs(g, get)
	nl := e.cfg.NodeLabel
	for name, dst := range map[string]func(*nodeState) map[string][]float64{
		qRTT1d: func(n *nodeState) map[string][]float64 { return n.rtt1d }, qRTT7d: func(n *nodeState) map[string][]float64 { return n.rtt7d },
		qLoss1d: func(n *nodeState) map[string][]float64 { return n.loss1d }, qLoss7d: func(n *nodeState) map[string][]float64 { return n.loss7d },
	} {
		for _, s := range get(name) {
			if ns, ok := nodes[s.Labels[nl]]; ok {
				dst(ns)[s.Labels["target"]] = s.V
			}
		}
	}
	for _, s := range get(qGateway) {
		if ns, ok := nodes[s.Labels[nl]]; ok {
			ns.in.Gateway = s.Labels["target"]
		}
	}
	for _, ns := range nodes {
		if ns.in.Gateway == "" && e.cfg.GatewayTargets != nil {
			for t := range ns.in.Loss {
				if e.cfg.GatewayTargets.MatchString(t) {
					ns.in.Gateway = t
				}
			}
		}
	}
	for _, s := range get(qShortSamples) {
		if ns, ok := nodes[s.Labels[nl]]; ok {
			ns.in.ShortSamples = s.V[0]
		}
	}
	for _, s := range get(qDNS) {
		if ns, ok := nodes[s.Labels[nl]]; ok {
			ns.in.DNS[s.Labels["resolver"]] = s.V
		}
	}
	for _, s := range get(qDNSS) {
		if ns, ok := nodes[s.Labels[nl]]; ok {
			ns.in.DNSShort[s.Labels["resolver"]] = s.V
		}
	}
	for _, s := range get(qBloat) {
		if ns, ok := nodes[s.Labels[nl]]; ok {
			ns.in.Bloat = s.V
		}
	}
	defs := map[string]signalDef{}
	for _, d := range signalDefs() {
		defs[d.Name] = d
		for _, s := range get("signal_" + d.Name) {
			ns, ok := nodes[s.Labels[nl]]
			if !ok {
				continue
			}
			name := d.Name
			if d.Detail != "" {
				name += ":" + s.Labels[d.Detail]
			}
			ns.in.Signals[name] = s.V
		}
	}
	return nodes, defs
}

// pingInputs: the nodes that have ping series, with loss and mean RTT per target.
func (e *Engine) pingInputs(g Grid, get func(string) []Series) map[string]*nodeState {
	nl := e.cfg.NodeLabel
	nodes := map[string]*nodeState{}
	node := func(l map[string]string) *nodeState {
		n := l[nl]
		ns, ok := nodes[n]
		if !ok {
			ns = newNodeState(n)
			nodes[n] = ns
		}
		return ns
	}
	key := func(l map[string]string) string { return l[nl] + "\x00" + l["target"] }
	for _, w := range []struct {
		sent, lost, rtt string
		short           bool
	}{{qSent, qLost, qRTT, false}, {qSentS, qLostS, qRTTS, true}} {
		sent, lostBy := map[string][]float64{}, map[string][]float64{}
		for _, s := range get(w.sent) {
			sent[key(s.Labels)] = s.V
			if !w.short {
				node(s.Labels)
			}
		}
		for _, s := range get(w.lost) {
			ns, ok := nodes[s.Labels[nl]]
			if !ok && w.short {
				continue
			}
			if !ok {
				ns = node(s.Labels)
			}
			sv := sent[key(s.Labels)]
			lostBy[key(s.Labels)] = s.V
			loss := nanSlice(g.N)
			for i := range loss {
				// No probes sent in a window means the exporter was away: blind, not 0% loss.
				if sv != nil && sv[i] > 0 && !math.IsNaN(s.V[i]) {
					loss[i] = math.Min(1, math.Max(0, s.V[i]/sv[i]))
					ns.hasData = ns.hasData || !w.short
				}
			}
			if w.short {
				ns.in.LossShort[s.Labels["target"]] = loss
			} else {
				ns.in.Loss[s.Labels["target"]] = loss
			}
		}
		for _, s := range get(w.rtt) {
			ns, ok := nodes[s.Labels[nl]]
			if !ok {
				continue
			}
			sv, lv := sent[key(s.Labels)], lostBy[key(s.Labels)]
			mean := nanSlice(g.N)
			for i := range mean {
				// No answer, no latency: a lost probe never counts as one.
				if sv != nil && lv != nil && sv[i]-lv[i] > 0 {
					mean[i] = s.V[i] / (sv[i] - lv[i])
				}
			}
			if w.short {
				ns.in.RTTShort[s.Labels["target"]] = mean
			} else {
				ns.in.RTT[s.Labels["target"]] = mean
			}
		}
	}
	return nodes
}
