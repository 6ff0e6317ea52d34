package analyzer

import "math"

// Anomaly is how unusual a node×target's latency and loss are now, against a
// baseline that knows the time of day: the median of the same moments
// yesterday and last week where they exist, else the start of the window.
type Anomaly struct {
	Node     string  `json:"node"`
	Target   string  `json:"target"`
	Score    float64 `json:"score"` // max of the latency and loss scores, in robust σ
	Value    float64 `json:"rtt_seconds"`
	Expected float64 `json:"expected_rtt_seconds"`
	Lower    float64 `json:"lower_rtt_seconds"`
	Upper    float64 `json:"upper_rtt_seconds"`
	Seasonal bool    `json:"seasonal"`
}

// bandK is the half-width of the normal band in robust σ.
const bandK = 3

// expected returns the per-step expectation: the median of the seasonal
// series at each step when they cover at least half the window, else a
// trailing baseline (see trailing). A young node (after an install or a
// TSDB wipe) has no seasonal history but gets a baseline from its first
// minutes on.
func expected(x []float64, b baseline, seasonal ...[]float64) (exp []float64, isSeasonal bool) {
	exp = nanSlice(len(x))
	vals := make([]float64, 0, len(seasonal))
	for i := range x {
		vals = vals[:0]
		for _, s := range seasonal {
			if s != nil && !math.IsNaN(s[i]) {
				vals = append(vals, s[i])
			}
		}
		if len(vals) > 0 {
			exp[i] = median(vals)
			isSeasonal = true
		}
	}
	if countFinite(exp) >= len(x)/2 {
		// Fill the seasonal holes from their neighbours rather than mixing in a different baseline.
		last := math.NaN()
		for i := range exp {
			if math.IsNaN(exp[i]) {
				exp[i] = last
			} else {
				last = exp[i]
			}
		}
		return exp, true
	}
	return trailing(x, b), false
}

// baseline says how the trailing expectation is built.
type baseline struct {
	Steps    int                       // how many earlier normal steps it takes the median of
	MinSteps int                       // fewer than this: no expectation (blind)
	Abnormal func(x, ref float64) bool // a value not to learn from
}

// trailing is the robust recent baseline: at each step, the median of the
// last Steps values before it that were themselves normal against their own
// expectation. Skipping abnormal values keeps a fault from becoming the new
// normal however long it lasts, while a slow drift is followed.
func trailing(x []float64, b baseline) []float64 {
	exp := nanSlice(len(x))
	var normal []float64
	for i, v := range x {
		if len(normal) >= max(1, b.MinSteps) {
			exp[i] = median(normal[max(0, len(normal)-b.Steps):])
		}
		if math.IsNaN(v) || (!math.IsNaN(exp[i]) && b.Abnormal != nil && b.Abnormal(v, exp[i])) {
			continue
		}
		normal = append(normal, v)
	}
	return exp
}

// anomalyScore compares the recent median of x with its expectation, in units
// of the robust spread of the residuals over the window.
func anomalyScore(x, exp []float64, recent int, floor float64) (score, sigma float64) {
	r := make([]float64, len(x))
	for i := range x {
		r[i] = x[i] - exp[i]
	}
	sigma = math.Max(madScale*mad(r), floor)
	cur := median(r[max(0, len(r)-recent):])
	if math.IsNaN(cur) || math.IsNaN(sigma) {
		return math.NaN(), sigma
	}
	return math.Abs(cur) / sigma, sigma
}
