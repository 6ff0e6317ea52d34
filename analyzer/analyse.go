package analyzer

import (
	"math"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"
)

// analyse fills snap from the cycle's results: every node's incidents and
// figures, then the fleet-wide ones.
func (e *Engine) analyse(snap *Snapshot, g Grid, res map[string]*result, prev *Snapshot) {
	series := 0
	get := func(name string) []Series {
		r := res[name]
		if r == nil || r.err != nil {
			return nil
		}
		series += len(r.series)
		return r.series
	}
	nodes, defs := e.inputs(g, get)
	snap.Recent = time.Duration(max(2, int(e.cfg.LongWindow/g.Step))) * g.Step
	rttMissing := missingRTT(nodes)
	if len(rttMissing) > 0 {
		snap.Missing = map[string]string{qRTT: "no " + mPingRTT + "_sum series though pings are answered (" + strings.Join(rttMissing, ", ") +
			"): latency incidents, baselines and call quality are off. A server that keeps native histograms only " +
			"(Prometheus 3 without always_scrape_classic_histograms) drops the classic _sum/_count/_bucket series."}
	}
	snap.attrs, snap.gateways = e.fleetAttrs(get), map[string]string{}
	for n, ns := range nodes {
		snap.gateways[n] = ns.in.Gateway
	}
	th := e.cfg.Thresholds
	th.RampSteps = int(math.Ceil(float64(e.cfg.RateWindow) / float64(g.Step)))
	th.RateWindow, th.ShortWindow = e.cfg.RateWindow, e.cfg.ShortWindow
	failed := failedKinds(res)
	prevByKey := map[string]Incident{}
	prevNodes := map[string]bool{}
	if prev != nil {
		for _, in := range prev.Incidents {
			if in.Active {
				prevByKey[in.key()] = in
				prevNodes[in.Node] = true
			}
		}
	}
	recent := max(2, int(e.cfg.LongWindow/g.Step))

	parts := e.analyseNodes(nodes, g, th, defs, failed, prevByKey, recent)
	for i := range parts {
		p := &parts[i]
		snap.Incidents = append(snap.Incidents, p.Incidents...)
		snap.Nodes = append(snap.Nodes, p.Nodes...)
		snap.Anomalies = append(snap.Anomalies, p.Anomalies...)
		snap.Changes = append(snap.Changes, p.Changes...)
		snap.Quality = append(snap.Quality, p.Quality...)
	}
	// Nodes with active incidents that vanished from the data entirely: blind, held.
	for n := range prevNodes {
		if _, ok := nodes[n]; ok {
			continue
		}
		for _, p := range prevByKey {
			if p.Node == n {
				snap.Incidents = append(snap.Incidents, p)
			}
		}
		snap.Nodes = append(snap.Nodes, NodeSummary{Node: n, Health: "blind", Blind: true, WorstLoss: math.NaN(), MedianRTT: math.NaN(),
			CPU: math.NaN(), Memory: math.NaN(), Flash: math.NaN(), WifiSignal: math.NaN()})
	}
	e.pathFigures(snap, res, get)
	e.hostFigures(snap, get)
	sort.Slice(snap.Nodes, func(i, j int) bool { return snap.Nodes[i].Node < snap.Nodes[j].Node })
	snap.Series = series
	// Attach the path origin to loss incidents of the same node×target.
	origin := map[string]int{}
	for _, p := range snap.Paths {
		origin[p.Node+"\x00"+p.Target] = p.LossOrigin
	}
	for i := range snap.Incidents {
		in := &snap.Incidents[i]
		if in.Kind == KindPacketLoss && in.Active {
			in.OriginHop = origin[in.Node+"\x00"+in.Target]
		}
	}
	missing := map[string]bool{}
	for _, n := range rttMissing {
		missing[n] = true
	}
	for i := range snap.Nodes {
		snap.Blind = snap.Blind || snap.Nodes[i].Blind
		snap.Nodes[i].RTTMissing = missing[snap.Nodes[i].Node]
	}
}

// analyseNodes runs every node's analysis; nodes are independent, so they
// run on every core and come back in name order.
func (e *Engine) analyseNodes(nodes map[string]*nodeState, g Grid, th Thresholds, defs map[string]signalDef, failed map[string]bool,
	prevByKey map[string]Incident, recent int) []Snapshot {
	names := sortedKeys(nodes)
	parts := make([]Snapshot, len(names))
	var wg sync.WaitGroup
	next := make(chan int)
	for range max(1, runtime.GOMAXPROCS(0)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				e.analyseNode(&parts[i], nodes[names[i]], g, th, defs, failed, prevByKey, recent)
			}
		}()
	}
	for i := range names {
		next <- i
	}
	close(next)
	wg.Wait()
	return parts
}

func sortIncidents(incs []Incident) {
	sort.Slice(incs, func(i, j int) bool {
		a, b := incs[i], incs[j]
		if !a.Start.Equal(b.Start) {
			return a.Start.Before(b.Start)
		}
		return a.key() < b.key()
	})
}

// missingRTT lists the nodes whose pings are answered but that have no RTT
// series at all: an input gone, not a node gone quiet.
func missingRTT(nodes map[string]*nodeState) []string {
	var out []string
	for _, n := range sortedKeys(nodes) {
		in := nodes[n].in
		if len(in.RTT) > 0 {
			continue
		}
		for _, l := range in.Loss {
			if countFinite(l) > 0 && median(l) < 1 {
				out = append(out, n)
				break
			}
		}
	}
	return out
}
