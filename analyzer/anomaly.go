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
// series at each step when any has data, else the median of the window's
// first third (a level the present cannot drag along with it).
func expected(x []float64, seasonal ...[]float64) (exp []float64, isSeasonal bool) {
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
	ref := median(x[:max(1, len(x)/3)])
	for i := range exp {
		exp[i] = ref
	}
	return exp, false
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
