package analyzer

import "math"

// Quality is the call quality of a node×target path.
type Quality struct {
	Node    string  `json:"node"`
	Target  string  `json:"target"`
	RFactor float64 `json:"r_factor"`
	MOS     float64 `json:"mos"`
}

// rFactor is an ITU-T G.107 E-model estimate for a G.711 call with packet
// loss concealment over the measured path: R = R0 − Id − Ie,eff with the
// default-parameter R0 = 93.2, Id from the one-way mouth-to-ear delay (half
// the RTT, plus a jitter buffer of twice the jitter and 10 ms of codec
// delay) using the Cole–Rosenbluth fit, and Ie,eff from random loss
// (Bpl = 25.1, BurstR = 1).
func rFactor(rtt, jitter, loss float64) float64 {
	if math.IsNaN(rtt) || math.IsNaN(loss) {
		return math.NaN()
	}
	if math.IsNaN(jitter) || jitter < 0 {
		jitter = 0
	}
	ta := (rtt/2 + 2*jitter + 0.010) * 1000 // ms
	id := 0.024 * ta
	if ta > 177.3 {
		id += 0.11 * (ta - 177.3)
	}
	ppl := 100 * math.Min(1, math.Max(0, loss))
	const ie, bpl = 0, 25.1
	ieEff := ie + (95-ie)*ppl/(ppl+bpl)
	return math.Max(0, math.Min(100, 93.2-id-ieEff))
}

// mos maps R to the G.107 mean opinion score (1–4.5).
func mos(r float64) float64 {
	switch {
	case math.IsNaN(r):
		return math.NaN()
	case r <= 0:
		return 1
	case r >= 100:
		return 4.5
	}
	return 1 + 0.035*r + r*(r-60)*(100-r)*7e-6
}
