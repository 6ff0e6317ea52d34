package status

import (
	"math"
	"slices"
	"time"
)

// Each target keeps a ring of slots of SlotLength, RingSlots of them: loss
// over 1, 5 and 15 minutes, the 5-minute RTT figures and the charts are all
// read from it. A slot is 7 bytes (TestStateBytesPerTarget measures the
// whole per-target state).
const (
	SlotLength = 30 * time.Second
	RingSlots  = 30 // 15 minutes
)

// slot is what a target did in one SlotLength: probes sent and lost, and
// the median, 90th percentile and maximum RTT of the answered ones as codes
// (see rttCode).
type slot struct {
	sent, lost    uint16
	p50, p90, max uint8
}

// rttCode packs an RTT into one byte, eight steps per doubling (9% apart):
// code c stands for 2^(c/8 - 20) seconds, so 1 is about 1µs, 255 is over an
// hour, and every bound of a schema-2 native histogram bucket is a code of
// its own. 0 means no RTT.
func rttCode(seconds float64) uint8 {
	if !(seconds > 0) {
		return 0
	}
	c := math.Round(8 * (math.Log2(seconds) + 20))
	return uint8(min(max(c, 1), 255))
}

func rttValue(c uint8) float64 {
	if c == 0 {
		return math.NaN()
	}
	return math.Exp2(float64(c)/8 - 20)
}

// ring is a target's history. Cumulative counters arrive with every sample;
// the slot of the sample's period holds the difference from the counters at
// the period's first sample (base), and the first sample of the next period
// closes it. Only differences within one slot matter, so the bucket counts
// of the base are kept as uint16 and subtracted modulo 2^16 (a slot holds
// fewer than 65536 probes at any interval over 0.5 ms), and only from the
// lowest to the highest bucket ever hit: the others were 0 at the base.
type ring struct {
	// The slots, as arrays of their fields: 7 bytes each, not 8.
	sent16, lost16   [RingSlots]uint16
	p50s, p90s, maxs [RingSlots]uint8
	period           int64  // the period of the open slot, at index period%RingSlots; 0 before the first sample
	total            uint64 // the histogram's count at the base: less later means it was reset
	sent             uint64
	lost             uint64
	nb               int16    // how many buckets the samples have
	lo               int16    // bkt[i] is the base of bucket lo+i
	bkt              []uint16 // cumulative bucket counts at the base
}

func periodOf(t time.Time) int64 { return t.UnixNano() / int64(SlotLength) }

// add folds in one sample: sent and lost probes and the observations in
// each RTT histogram bucket, all counted since the start (bounds: upper
// bounds in seconds, ascending, the last one possibly +Inf). It reports the
// slot it closed, if any. The counts are modulo 2^16 (see ring); total is
// the histogram's count: less than at the base means it was reset.
func (r *ring) add(t time.Time, sent, lost, total uint64, bounds []float64, counts []uint16) (closed slot, ok bool) {
	p := periodOf(t)
	switch {
	case r.period == 0 || p < r.period || len(counts) != int(r.nb):
		// First sample, the clock went back, or the buckets changed: start over.
		*r = ring{bkt: r.bkt}
		r.reset(p, sent, lost, counts, total)
		return slot{}, false
	case total < r.total || sent < r.sent || lost < r.lost:
		// The histogram or the counters were reset: rebase, keeping the slots.
		r.reset(r.period, sent, lost, counts, total)
		return slot{}, false
	case p == r.period:
		r.set(p, r.fill(sent, lost, bounds, counts))
		return slot{}, false
	}
	closed = r.fill(sent, lost, bounds, counts)
	r.set(r.period, closed)
	for q := r.period + 1; q <= p && q <= r.period+RingSlots; q++ {
		r.set(q, slot{}) // periods without a sample stay empty
	}
	r.reset(p, sent, lost, counts, total)
	return closed, true
}

func (r *ring) reset(p int64, sent, lost uint64, counts []uint16, total uint64) {
	r.period, r.total, r.sent, r.lost, r.nb = p, total, sent, lost, int16(len(counts))
	lo, hi := 0, -1
	for i, c := range counts {
		if c != 0 {
			if hi < 0 {
				lo = i
			}
			hi = i
		}
	}
	if n := hi - lo + 1; cap(r.bkt) >= n {
		r.bkt = r.bkt[:n]
	} else {
		r.bkt = make([]uint16, n)
	}
	r.lo = int16(lo)
	for i := range r.bkt {
		r.bkt[i] = counts[lo+i]
	}
}

func (r *ring) set(p int64, s slot) {
	i := p % RingSlots
	r.sent16[i], r.lost16[i], r.p50s[i], r.p90s[i], r.maxs[i] = s.sent, s.lost, s.p50, s.p90, s.max
}

func (r *ring) get(p int64) slot {
	i := p % RingSlots
	return slot{r.sent16[i], r.lost16[i], r.p50s[i], r.p90s[i], r.maxs[i]}
}

// fill is the slot of the difference between the counters now and at the base.
func (r *ring) fill(sent, lost uint64, bounds []float64, counts []uint16) (s slot) {
	s.sent = sat16(sent - r.sent)
	s.lost = sat16(lost - r.lost)
	var d [128]uint64
	delta := d[:0]
	for i, c := range counts {
		if j := i - int(r.lo); j >= 0 && j < len(r.bkt) {
			c -= r.bkt[j]
		}
		delta = append(delta, uint64(c))
	}
	s.p50 = rttCode(bucketQuantile(0.5, bounds, delta))
	s.p90 = rttCode(bucketQuantile(0.9, bounds, delta))
	s.max = rttCode(bucketQuantile(1, bounds, delta))
	return s
}

func sat16(v uint64) uint16 { return uint16(min(v, math.MaxUint16)) }

// bucketQuantile is histogram_quantile over non-cumulative bucket counts:
// linear within the bucket, 0 as the first bucket's lower bound, and the
// highest finite bound for the +Inf bucket. q = 1 gives the upper bound of
// the highest bucket hit. NaN without observations.
func bucketQuantile(q float64, bounds []float64, counts []uint64) float64 {
	var total uint64
	for _, c := range counts {
		total += c
	}
	if total == 0 {
		return math.NaN()
	}
	rank := q * float64(total)
	var cum uint64
	for i, c := range counts {
		if c == 0 || float64(cum+c) < rank {
			cum += c
			continue
		}
		if i == len(bounds)-1 && math.IsInf(bounds[i], 1) {
			return bounds[max(i-1, 0)]
		}
		lo := 0.0
		if i > 0 {
			lo = bounds[i-1]
		}
		if q == 1 {
			return bounds[i]
		}
		return lo + (bounds[i]-lo)*(rank-float64(cum))/float64(c)
	}
	return bounds[len(bounds)-1]
}

// last returns up to n slots, oldest first, ending with the open one.
func (r *ring) last(n int) []slot {
	n = min(n, RingSlots)
	out := make([]slot, 0, n)
	for q := r.period - int64(n) + 1; q <= r.period; q++ {
		if q <= 0 {
			out = append(out, slot{})
			continue
		}
		out = append(out, r.get(q))
	}
	return out
}

// window sums the slots covering about w before now: the closed slots of w,
// with the open slot standing in for the oldest of them once it is more than
// half full. It returns sent and lost probes.
func (r *ring) window(now time.Time, w time.Duration) (sent, lost uint64) {
	if r.period == 0 {
		return 0, 0
	}
	n := int(w / SlotLength)
	open := now.Sub(time.Unix(0, r.period*int64(SlotLength)))
	if open < SlotLength/2 {
		n++ // the open slot is young: take one more closed slot
	}
	for _, s := range r.last(min(n, RingSlots)) {
		sent += uint64(s.sent)
		lost += uint64(s.lost)
	}
	return sent, lost
}

// rtt5 is the median, 90th percentile and maximum RTT over the slots of the
// last 5 minutes: the slots' own median and p90 weighted by their answered
// probes, and the highest slot maximum.
func (r *ring) rtt5() (p50, p90, hi float64) {
	ss := r.last(int(5 * time.Minute / SlotLength))
	p50, p90, hi = weighted(ss, 0.5, func(s slot) uint8 { return s.p50 }), weighted(ss, 0.9, func(s slot) uint8 { return s.p90 }), math.NaN()
	var m uint8
	for _, s := range ss {
		m = max(m, s.max)
	}
	if m > 0 {
		hi = rttValue(m)
	}
	return p50, p90, hi
}

func weighted(ss []slot, q float64, code func(slot) uint8) float64 {
	type wc struct {
		c uint8
		w uint64
	}
	var v [RingSlots]wc
	items := v[:0]
	var total uint64
	for _, s := range ss {
		if c := code(s); c > 0 && s.sent > s.lost {
			items = append(items, wc{c, uint64(s.sent - s.lost)})
			total += uint64(s.sent - s.lost)
		}
	}
	if total == 0 {
		return math.NaN()
	}
	slices.SortFunc(items, func(a, b wc) int { return int(a.c) - int(b.c) })
	var cum uint64
	for _, it := range items {
		cum += it.w
		if float64(cum) >= q*float64(total) {
			return rttValue(it.c)
		}
	}
	return rttValue(items[len(items)-1].c)
}
