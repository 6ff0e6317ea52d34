package analyzer

import (
	"fmt"
	"math"
	"sort"
	"strings"
)

func (e *Engine) pathFigures(snap *Snapshot, res map[string]*result, get func(string) []Series) {
	nl := e.cfg.NodeLabel
	type key struct{ n, t string }
	sent := map[key]map[string]float64{}
	for _, s := range get(qMTRSent) {
		k := key{s.Labels[nl], s.Labels["target"]}
		if sent[k] == nil {
			sent[k] = map[string]float64{}
		}
		sent[k][s.Labels["hop"]] = s.V[0]
	}
	hops := map[key]map[string]*hopStat{}
	for _, s := range get(qMTRRecv) {
		k := key{s.Labels[nl], s.Labels["target"]}
		h := s.Labels["hop"]
		var idx int
		if _, err := fmt.Sscan(h, &idx); err != nil {
			continue
		}
		st := &hopStat{Hop: idx, Loss: math.NaN(), RTT: math.NaN()}
		if sv := sent[k][h]; sv > 0 {
			st.Loss = math.Max(0, math.Min(1, 1-s.V[0]/sv))
			st.Sent = sv
		}
		if hops[k] == nil {
			hops[k] = map[string]*hopStat{}
		}
		hops[k][h] = st
	}
	for _, s := range get(qMTRRTT) {
		if st := hops[key{s.Labels[nl], s.Labels["target"]}][s.Labels["hop"]]; st != nil {
			st.RTT = s.V[0]
		}
	}
	changes := map[key]float64{}
	for _, s := range get(qMTRChanges) {
		changes[key{s.Labels[nl], s.Labels["target"]}] = s.V[0]
	}
	spike := map[key]bool{}
	for _, in := range snap.Incidents {
		if in.Active && in.Kind == KindLatencySpike {
			spike[key{in.Node, in.Target}] = true
		}
	}
	keys := make([]key, 0, len(hops))
	for k := range hops {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].n+"\x00"+keys[i].t < keys[j].n+"\x00"+keys[j].t })
	for _, k := range keys {
		var hs []hopStat
		for _, h := range hops[k] {
			hs = append(hs, *h)
		}
		lo, lat, rl, dl := analysePath(hs, e.cfg.PathLossRatio, e.cfg.Thresholds.LatencyAbs)
		if !spike[k] {
			lat = 0 // a long link is not a problem until the destination's latency is
		}
		snap.Paths = append(snap.Paths, PathResult{Node: k.n, Target: k.t, Hops: len(hs), DestLoss: dl, LossOrigin: lo,
			LatencyOrigin: lat, RateLimited: rl, RouteChanges: changes[k]})
	}
}

func (e *Engine) hostFigures(snap *Snapshot, get func(string) []Series) {
	nl := e.cfg.NodeLabel
	for _, s := range get(qBloat) {
		v := s.V[len(s.V)-1]
		if math.IsNaN(v) {
			continue
		}
		gr, num := gradeBloat(v, e.cfg.BloatBands)
		snap.Bloat = append(snap.Bloat, BloatGrade{Node: s.Labels[nl], Increase: v, Grade: gr, Numeric: num})
	}
	idx := func(name string, labels ...string) map[string]float64 {
		m := map[string]float64{}
		for _, s := range get(name) {
			k := s.Labels[nl]
			for _, l := range labels {
				k += "\x00" + s.Labels[l]
			}
			m[k] = s.V[0]
		}
		return m
	}
	add := func(node, limit, obj string, secs float64) {
		if !math.IsNaN(secs) {
			snap.Clocks = append(snap.Clocks, DeathClock{Node: node, Limit: limit, Object: obj, Seconds: secs})
		}
	}
	deriv := idx(qFSDeriv, "mountpoint")
	for _, s := range get(qFSAvail) {
		add(s.Labels[nl], "disk_full", s.Labels["mountpoint"], diskFullIn(s.V[0], nanGet(deriv, s.Labels[nl]+"\x00"+s.Labels["mountpoint"])))
	}
	// Capacity of a block device: the sizes of the filesystems on it.
	capacity := map[string]float64{}
	for _, s := range get(qFSSize) {
		dev := strings.TrimPrefix(s.Labels["device"], "/dev/")
		for _, suf := range []string{"p1", "p2", "p3", "p4", "p5", "p6", "p7", "p8"} {
			dev = strings.TrimSuffix(dev, suf)
		}
		capacity[s.Labels[nl]+"\x00"+dev] += s.V[0]
	}
	writes := idx(qWritten, "device")
	flash := map[string]float64{}
	for _, s := range get(qEMMC) {
		k := s.Labels[nl] + "\x00" + s.Labels["device"]
		add(s.Labels[nl], "flash_wear", s.Labels["device"], flashWearIn(s.V[0], nanGet(writes, k), nanGet(capacity, k), e.cfg.FlashPECycles))
		flash[s.Labels[nl]] = math.Max(s.V[0], flash[s.Labels[nl]])
	}
	trip := idx(qTrip, "zone")
	tder := idx(qTempDeriv, "zone")
	for _, s := range get(qTemp) {
		k := s.Labels[nl] + "\x00" + s.Labels["zone"]
		if tp, ok := trip[k]; ok {
			add(s.Labels[nl], "thermal", s.Labels["zone"], thermalIn(s.V[0], tp, nanGet(tder, k)))
		}
	}
	power, dis := idx(qBattP, "supply"), idx(qBattDis, "supply")
	for _, s := range get(qBattE) {
		k := s.Labels[nl] + "\x00" + s.Labels["supply"]
		add(s.Labels[nl], "battery", s.Labels["supply"], batteryIn(s.V[0], nanGet(power, k), dis[k] == 1))
	}
	sort.Slice(snap.Clocks, func(i, j int) bool {
		a, b := snap.Clocks[i], snap.Clocks[j]
		return a.Node+a.Limit+a.Object < b.Node+b.Limit+b.Object
	})
	for i := range snap.Nodes {
		if f, ok := flash[snap.Nodes[i].Node]; ok {
			snap.Nodes[i].Flash = f
		}
	}
}

func nanGet(m map[string]float64, k string) float64 {
	if v, ok := m[k]; ok {
		return v
	}
	return math.NaN()
}
