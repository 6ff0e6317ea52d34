package analyzer

import "math"

// madScale turns a MAD into a σ-equivalent for normal data, so thresholds
// read like z-scores while staying robust to ping's heavy tails.
const madScale = 1.4826

// finite returns the non-NaN values of xs (a NaN is a step where the data was
// missing: never treated as zero).
func finite(xs []float64) []float64 {
	out := make([]float64, 0, len(xs))
	for _, x := range xs {
		if !math.IsNaN(x) && !math.IsInf(x, 0) {
			out = append(out, x)
		}
	}
	return out
}

// median of the finite values; NaN when there are none. It runs for every
// series every cycle, so it selects (O(n)) instead of sorting, on a copy.
func median(xs []float64) float64 {
	if len(xs) <= 8 {
		// Most calls (the seasonal expectation of each step: 2 values)
		// are tiny: a 2 KiB buffer zeroed for each cost more than the work.
		var buf [8]float64
		return medianOf(appendFinite(buf[:0], xs))
	}
	var buf [256]float64
	v := buf[:0]
	if len(xs) > len(buf) {
		v = make([]float64, 0, len(xs))
	}
	return medianOf(appendFinite(v, xs))
}

// appendFinite appends the finite values of xs to v.
func appendFinite(v, xs []float64) []float64 {
	for _, x := range xs {
		if !math.IsNaN(x) && !math.IsInf(x, 0) {
			v = append(v, x)
		}
	}
	return v
}

// medianOf is the median of v, which it reorders.
func medianOf(v []float64) float64 {
	n := len(v)
	if n == 0 {
		return math.NaN()
	}
	hi := quickselect(v, n/2)
	if n%2 == 1 {
		return hi
	}
	// The lower middle is the largest value left of n/2 after selection.
	lo := v[0]
	for _, x := range v[1 : n/2] {
		lo = math.Max(lo, x)
	}
	return (lo + hi) / 2
}

// quickselect partially orders v so that v[k] is the k-th smallest and
// everything before it is no larger; it returns v[k].
func quickselect(v []float64, k int) float64 {
	lo, hi := 0, len(v)-1
	for lo < hi {
		// Median of three as the pivot: sorted or constant input stays linear.
		mid := lo + (hi-lo)/2
		if v[mid] < v[lo] {
			v[mid], v[lo] = v[lo], v[mid]
		}
		if v[hi] < v[lo] {
			v[hi], v[lo] = v[lo], v[hi]
		}
		if v[hi] < v[mid] {
			v[hi], v[mid] = v[mid], v[hi]
		}
		p := v[mid]
		i, j := lo, hi
		for i <= j {
			for v[i] < p {
				i++
			}
			for v[j] > p {
				j--
			}
			if i <= j {
				v[i], v[j] = v[j], v[i]
				i++
				j--
			}
		}
		switch {
		case k <= j:
			hi = j
		case k >= i:
			lo = i
		default:
			return v[k]
		}
	}
	return v[k]
}

// mad is the median absolute deviation around the median.
func mad(xs []float64) float64 {
	m := median(xs)
	if math.IsNaN(m) {
		return math.NaN()
	}
	var buf [256]float64
	d := buf[:0]
	if len(xs) > len(buf) {
		d = make([]float64, 0, len(xs))
	}
	for _, x := range xs {
		if !math.IsNaN(x) && !math.IsInf(x, 0) {
			d = append(d, math.Abs(x-m))
		}
	}
	return median(d)
}

// robustZ measures how far the level of cur moved from ref in units of ref's
// robust spread. floor keeps a flat reference (MAD 0) from turning noise into
// infinite scores.
func robustZ(ref, cur []float64, floor float64) (z, refMed, curMed float64) {
	refMed, curMed = median(ref), median(cur)
	if math.IsNaN(refMed) || math.IsNaN(curMed) {
		return math.NaN(), refMed, curMed
	}
	s := madScale * mad(ref)
	s = math.Max(s, math.Max(floor, 0.1*math.Abs(refMed)))
	if s == 0 {
		s = 1e-9
	}
	return (curMed - refMed) / s, refMed, curMed
}

func countFinite(xs []float64) int {
	n := 0
	for _, x := range xs {
		if !math.IsNaN(x) {
			n++
		}
	}
	return n
}
