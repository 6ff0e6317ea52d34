package mesh

import "time"

// Clock offset and one-way delay.
//
// A UDP probe carries four timestamps: t1 (prober send), t2 (responder
// receive), t3 (responder send), t4 (prober receive), t1/t4 on the prober's
// clock and t2/t3 on the responder's. If the responder's clock is ahead by θ
// and the one-way delays are d→ and d←:
//
//	t2 - t1 = d→ + θ        (the raw forward delay)
//	t4 - t3 = d← - θ        (the raw return delay)
//	RTT     = (t4-t1) - (t3-t2) = d→ + d←    (exact, whatever θ)
//
// Two equations, three unknowns: no two-way method can separate θ from the
// path's asymmetry. NTP's estimate ((t2-t1)+(t3-t4))/2 equals θ + (d→-d←)/2,
// so a 20 ms / 5 ms path reads as a 7.5 ms offset between identical clocks.
// What the timestamps do prove is causality: both delays are positive, so
//
//	t3 - t4 < θ < t2 - t1
//
// and over a window of samples θ lies in [L, U] with L = max(t3-t4) and
// U = min(t2-t1) (the min-delay filter: the least-queued packets bound it
// tightest). We export the midpoint (L+U)/2 as the offset estimate and the
// half-width (U-L)/2 as its uncertainty.
//
// The one-way delays exported are the raw ones, which are right exactly when
// the clocks agree (θ = 0, e.g. both nodes on NTP/PTP). The clocks are
// flagged trustworthy when θ = 0 is consistent with the window (L ≤ 0 ≤ U,
// within clockSlack for timestamp noise), the window is self-consistent
// (L ≤ U: no clock step inside it), it holds enough samples, and, when a
// limit is configured, the uncertainty is below it. An offset larger than
// the uncertainty bound is always caught; a smaller one cannot be seen from
// inside the path, and the uncertainty says how large it could be.

// clockWindow is how many recent samples bound the offset.
const clockWindow = 64

// clockMinSamples before any verdict.
const clockMinSamples = 8

// clockSlack absorbs timestamp noise (user-space send stamps, scheduling).
const clockSlack = 100 * time.Microsecond

// ClockFilter keeps the raw one-way delays of the latest samples.
type ClockFilter struct {
	fwd, ret [clockWindow]int64
	n, next  int
}

// Add records one sample's raw delays t2-t1 and t4-t3, in ns.
func (c *ClockFilter) Add(fwd, ret int64) {
	c.fwd[c.next], c.ret[c.next] = fwd, ret
	c.next = (c.next + 1) % clockWindow
	c.n = min(c.n+1, clockWindow)
}

// ClockEstimate is the filter's view of the responder's clock.
type ClockEstimate struct {
	Offset      time.Duration // responder minus prober, midpoint of the feasible interval
	Uncertainty time.Duration // half-width of the interval
	Trustworthy bool          // raw one-way delays can be believed (see above)
	Samples     int
}

// Estimate reads the window; ok is false before any sample. maxUnc > 0 also
// requires the uncertainty to be at most maxUnc for a trustworthy verdict.
func (c *ClockFilter) Estimate(maxUnc time.Duration) (e ClockEstimate, ok bool) {
	if c.n == 0 {
		return e, false
	}
	minF, minR := c.fwd[0], c.ret[0]
	for i := 1; i < c.n; i++ {
		minF, minR = min(minF, c.fwd[i]), min(minR, c.ret[i])
	}
	lo, hi := -minR, minF
	e.Offset = time.Duration((lo + hi) / 2)
	e.Uncertainty = time.Duration((hi - lo) / 2)
	e.Samples = c.n
	slack := int64(clockSlack)
	e.Trustworthy = c.n >= clockMinSamples &&
		lo <= slack && hi >= -slack && // zero offset is feasible
		hi-lo >= -slack && // no clock step inside the window
		(maxUnc <= 0 || e.Uncertainty <= maxUnc)
	return e, true
}
