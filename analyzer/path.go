package analyzer

import (
	"math"
	"sort"
)

// PathResult is what the mtr series say about one node×target path.
type PathResult struct {
	Node          string  `json:"node"`
	Target        string  `json:"target"`
	Hops          int     `json:"hops"`
	DestLoss      float64 `json:"destination_loss_ratio"`
	LossOrigin    int     `json:"loss_origin_hop,omitempty"`    // 0: none
	LatencyOrigin int     `json:"latency_origin_hop,omitempty"` // 0: none
	RateLimited   []int   `json:"rate_limited_hops,omitempty"`
	RouteChanges  float64 `json:"route_changes_1h"`
}

type hopStat struct {
	Hop  int
	Loss float64 // NaN: no probes this window
	RTT  float64
	Sent float64 // probes behind Loss (0: unknown)
}

// analysePath finds where loss and latency start: the first hop from which
// the problem persists to the destination (Fontugne et al.). Loss at a hop
// that later hops do not share is ICMP rate limiting (or a silent router):
// flagged, never named the origin.
func analysePath(hops []hopStat, lossThr, latAbs float64) (lossOrigin, latOrigin int, rateLimited []int, destLoss float64) {
	if len(hops) == 0 {
		return 0, 0, nil, math.NaN()
	}
	sort.Slice(hops, func(i, j int) bool { return hops[i].Hop < hops[j].Hop })
	n := len(hops)
	destLoss = hops[n-1].Loss
	// persists[i]: hop i loses at least lossThr and every later hop loses
	// about as much or more (forwarding loss adds up along a path; loss that
	// later hops do not share is the hop's own ICMP rate limit).
	persists := make([]bool, n)
	floor := math.Inf(1) // least loss of the hops after i
	for i := n - 1; i >= 0; i-- {
		l := hops[i].Loss
		// Tolerance: 3σ of the difference of two sampled loss ratios, and at least 0.1.
		tol := 0.1
		if s := hops[i].Sent; s > 0 {
			tol = math.Max(tol, 3*math.Sqrt(2*l*(1-l)/s))
		}
		persists[i] = l >= lossThr && floor >= lossThr && (math.IsInf(floor, 1) || l-floor <= tol)
		floor = math.Min(floor, l)
	}
	for i := range n {
		if persists[i] {
			lossOrigin = hops[i].Hop
			break
		}
	}
	for i := range n {
		if hops[i].Loss >= lossThr && !persists[i] {
			rateLimited = append(rateLimited, hops[i].Hop)
		}
	}
	// Latency: the hop where the floor of all later RTTs rises most. Taking
	// the suffix minimum ignores hops that answer slowly (ICMP on the slow
	// path) but forward at full speed.
	suffix := make([]float64, n)
	m := math.Inf(1)
	for i := n - 1; i >= 0; i-- {
		if !math.IsNaN(hops[i].RTT) {
			m = math.Min(m, hops[i].RTT)
		}
		suffix[i] = m
	}
	best, prev := 0.0, 0.0
	for i := range n {
		if math.IsInf(suffix[i], 1) {
			continue
		}
		if j := suffix[i] - prev; j > best {
			best, latOrigin = j, hops[i].Hop
		}
		prev = suffix[i]
	}
	if best < latAbs {
		latOrigin = 0
	}
	return lossOrigin, latOrigin, rateLimited, destLoss
}
