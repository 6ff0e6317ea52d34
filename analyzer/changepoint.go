package analyzer

import (
	"math"
	"time"
)

// ChangePoint is the last level shift found in a node×target's latency.
type ChangePoint struct {
	Node   string    `json:"node"`
	Target string    `json:"target"`
	Time   time.Time `json:"time"`
	Ratio  float64   `json:"size_ratio"` // median RTT after / before
}

const (
	cusumK    = 0.5 // slack, in robust σ: shifts smaller than this are ignored
	cusumH    = 8   // alarm level
	cusumClip = 4   // winsorise each step so one wild ping cannot alarm alone
	cusumMin  = 6   // points needed on each side to size a shift
	cusumSkip = 4   // points after a shift before the new reference level
)

// lastChange runs a two-sided CUSUM on log-RTT (so shifts are ratios),
// standardised by the MAD of successive differences (robust to the shift
// itself). After each alarm the reference restarts at the change, so the
// last shift is found even after earlier ones. minRatio filters tiny shifts.
func lastChange(x []float64, minRatio float64) (idx int, ratio float64, ok bool) {
	idxs := make([]int, 0, len(x))
	y := make([]float64, 0, len(x))
	for i, v := range x {
		if v > 0 && !math.IsNaN(v) {
			idxs = append(idxs, i)
			y = append(y, math.Log(v))
		}
	}
	if len(y) < 2*cusumMin {
		return 0, 0, false
	}
	d := make([]float64, len(y)-1)
	for i := range d {
		d[i] = y[i+1] - y[i]
	}
	// Overlapping rate windows make successive points alike, so the MAD of
	// differences understates the noise; 5% in log-RTT is the least noise
	// we believe in.
	sigma := math.Max(madScale*mad(d)/math.Sqrt2, 0.05)
	seg := 0
	last := -1
	for seg+cusumMin <= len(y) {
		ref := seg
		if seg > 0 && seg+cusumSkip+cusumMin <= len(y) {
			ref = seg + cusumSkip // past the ramp a rate window puts on every shift
		}
		mu := median(y[ref : ref+cusumMin])
		sp, sn := 0.0, 0.0
		zp, zn := ref, ref // last index where each sum was zero
		alarm := -1
		for i := ref; i < len(y); i++ {
			z := math.Max(-cusumClip, math.Min(cusumClip, (y[i]-mu)/sigma))
			sp = math.Max(0, sp+z-cusumK)
			sn = math.Max(0, sn-z-cusumK)
			if sp == 0 {
				zp = i
			}
			if sn == 0 {
				zn = i
			}
			if sp > cusumH {
				alarm = zp + 1
				break
			}
			if sn > cusumH {
				alarm = zn + 1
				break
			}
		}
		if alarm < 0 || (seg > 0 && alarm <= seg) {
			break
		}
		last = alarm
		seg = alarm
	}
	if last < cusumMin || last > len(y)-cusumMin {
		return 0, 0, false
	}
	prevStart := max(0, last-4*cusumMin)
	ratio = math.Exp(median(y[last:min(len(y), last+4*cusumMin)]) - median(y[prevStart:last]))
	if ratio < minRatio && ratio > 1/minRatio {
		return 0, 0, false
	}
	return idxs[last], ratio, true
}
