package probes

import (
	"math"
	"slices"
	"sort"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// rttHistogram is a ping target's RTT histogram: the classic buckets the
// rules and dashboards use, and a native histogram for precise quantiles. It
// exposes what prometheus.NewHistogram does with NativeHistogramBucketFactor
// 1.05 (schema 4), MaxBucketNumber 100 and MinResetDuration 1h (a test
// compares the two), for less memory: client_golang's keeps native buckets
// in sync.Maps, hot and cold copies of every count, and allocates each dto
// bucket apart; at 1000 targets its Writes were 45% of a scrape's garbage.
// With this one BenchmarkPingScrape went from 82 ms, 7.9 MB and 131k
// allocations to 44 ms, 6.5 MB and 67k, and peak RSS from 34 to 27 MB.
//
// One mutex: Observe comes from a prober's receive loop, fill from scrapes,
// and neither contends at ping rates.
type rttHistogram struct {
	bounds []float64 // classic upper bounds, shared and never written
	now    func() time.Time
	mode   histogramMode

	mu        sync.Mutex
	created   time.Time // and last reset
	classic   []uint32  // observations per classic bucket (not cumulative), +Inf last
	count     uint64
	sum       float64
	schema    int32
	zero      uint64   // observations ≤ nativeZeroThreshold
	base      int      // native bucket key of counts[0]
	counts    []uint32 // native bucket counts from key base on
	populated int      // non-zero entries of counts
}

const (
	rttNativeSchema     = 4 // the largest schema whose growth factor 2^(2^-4) ≈ 1.044 is ≤ 1.05
	rttNativeMaxBuckets = 100
	rttNativeMinReset   = time.Hour
	// client_golang's default, 2^-128: of RTTs only exact zeros land in the zero bucket.
	nativeZeroThreshold = 2.938735877055719e-39
)

// nativeBounds[s] are the upper bounds, as fractions of a power of two
// (math.Frexp's, in [0.5, 1)), of the 2^s buckets per power of two at
// schema s: 2^(i/2^s - 1).
var nativeBounds = func() [rttNativeSchema + 1][]float64 {
	var b [rttNativeSchema + 1][]float64
	for s := 1; s <= rttNativeSchema; s++ {
		n := 1 << s
		b[s] = make([]float64, n)
		for i := range n {
			b[s][i] = math.Exp2(float64(i)/float64(n) - 1)
		}
	}
	return b
}()

// histogramMode says which halves of the histogram are kept and exposed.
type histogramMode uint8

const (
	histogramBoth    histogramMode = iota // classic buckets and native: the default
	histogramClassic                      // classic buckets only, for servers without native histograms
	histogramNative                       // native only: one series per target where classic buckets take 22
)

var histogramModes = map[string]histogramMode{"both": histogramBoth, "classic": histogramClassic, "native": histogramNative}

func newRTTHistogram(bounds []float64, mode histogramMode, now func() time.Time) *rttHistogram {
	t := now()
	h := &rttHistogram{
		bounds: bounds, now: now, mode: mode,
		created: t,
		schema:  rttNativeSchema,
	}
	if mode != histogramNative {
		h.classic = make([]uint32, len(bounds)+1)
	}
	return h
}

// nativeKey is the bucket of v > 0 at schema s: bucket k holds
// (2^((k-1)/2^s), 2^(k/2^s)].
func nativeKey(v float64, s int32) int {
	frac, exp := math.Frexp(v)
	if s > 0 {
		b := nativeBounds[s]
		return sort.SearchFloat64s(b, frac) + (exp-1)*len(b)
	}
	k := exp
	if frac == 0.5 {
		k--
	}
	return (k + (1 << -s) - 1) >> -s
}

func (h *rttHistogram) Observe(v float64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.observe(v) {
		h.reset(h.now())
		h.observe(v)
		return
	}
	for h.populated > rttNativeMaxBuckets && h.schema > -4 {
		if now := h.now(); now.Sub(h.created) >= rttNativeMinReset || !h.halveResolution() {
			h.reset(now)
			h.observe(v) // the observation that overflowed opens the new histogram
			return
		}
	}
}

// observe counts v, unless a bucket it falls in is full: bucket counts are
// uint32 (half the memory), and the 2^32nd observation of one bucket (136
// years at 1 Hz, 1.4 at 100 Hz) starts the histogram over instead, a reset
// its consumers see as they see client_golang's.
func (h *rttHistogram) observe(v float64) bool {
	ci := -1
	if h.classic != nil {
		if ci = sort.SearchFloat64s(h.bounds, v); h.classic[ci] == math.MaxUint32 {
			return false
		}
	}
	native := h.mode != histogramClassic
	zero := native && v <= nativeZeroThreshold
	key := 0
	if native && !zero {
		key = nativeKey(v, h.schema)
		if j := key - h.base; j >= 0 && j < len(h.counts) && h.counts[j] == math.MaxUint32 {
			return false
		}
	}
	if ci >= 0 {
		h.classic[ci]++
	}
	h.count++
	h.sum += v
	switch {
	case zero:
		h.zero++
	case native:
		h.addNative(key, 1)
	}
	return true
}

// addNative adds n to the bucket key, unless that would overflow it.
func (h *rttHistogram) addNative(key int, n uint32) bool {
	switch {
	case len(h.counts) == 0:
		h.base = key
		h.counts = append(h.counts, 0)
	case key < h.base:
		grown := make([]uint32, h.base-key+len(h.counts))
		copy(grown[h.base-key:], h.counts)
		h.counts, h.base = grown, key
	case key >= h.base+len(h.counts):
		// Grown to fit, not doubled: new extremes are rare, and at 10 000
		// targets append's spare room was a fifth of the histograms' memory.
		grown := make([]uint32, key-h.base+1)
		copy(grown, h.counts)
		h.counts = grown
	}
	c := &h.counts[key-h.base]
	if *c > math.MaxUint32-n {
		return false
	}
	if *c == 0 {
		h.populated++
	}
	*c += n
	return true
}

// halveResolution merges bucket pairs, as client_golang does when a
// histogram has too many buckets and may not reset yet; false if a merged
// bucket would overflow (the caller starts over).
func (h *rttHistogram) halveResolution() bool {
	old, base := h.counts, h.base
	h.counts, h.populated = nil, 0
	h.schema--
	for i, n := range old {
		if n == 0 {
			continue
		}
		k := base + i
		if k > 0 {
			k++
		}
		if !h.addNative(k/2, n) {
			return false
		}
	}
	return true
}

// reset starts over, classic buckets included, like client_golang's
// histogram after MinResetDuration: the consumer sees a counter reset.
func (h *rttHistogram) reset(now time.Time) {
	clear(h.classic)
	h.count, h.sum, h.zero = 0, 0, 0
	h.counts, h.base, h.populated = nil, 0, 0
	h.schema = rttNativeSchema
	h.created = now
}

// histScratch is what a histogram DTO points to: a streamed chunk keeps one
// per metric and reuses it, so a scrape allocates none. At 10 000 targets
// fresh ones were the largest part of a gather's garbage (26 of 69 MB).
type histScratch struct {
	hist               dto.Histogram
	count, zero        uint64
	sum, zeroThreshold float64
	schema             int32
	created            timestamppb.Timestamp
	classic            []classicBucket
	classicPtrs        []*dto.Bucket
	spans              []nativeSpan
	spanPtrs           []*dto.BucketSpan
	deltas             []int64
}

// fill points out's histogram (not its labels) at h's state, copied into sc.
func (h *rttHistogram) fill(out *dto.Metric, sc *histScratch) {
	sc.hist = dto.Histogram{}
	sc.zeroThreshold = nativeZeroThreshold
	sc.classic = sc.classic[:0]
	if h.mode != histogramNative {
		sc.classic = slices.Grow(sc.classic, len(h.bounds))[:len(h.bounds)]
	}
	sc.spans, sc.deltas = sc.spans[:0], sc.deltas[:0]

	h.mu.Lock()
	sc.count, sc.sum, sc.zero, sc.schema = h.count, h.sum, h.zero, h.schema
	sc.created.Seconds, sc.created.Nanos = h.created.Unix(), int32(h.created.Nanosecond())
	var c uint64
	for i := range sc.classic {
		c += uint64(h.classic[i])
		sc.classic[i].count = c
	}
	if h.mode != histogramClassic {
		sc.spans, sc.deltas = h.nativeSpans(sc.spans, sc.deltas)
	}
	h.mu.Unlock()

	d := &sc.hist
	d.CreatedTimestamp = &sc.created
	d.SampleCount, d.SampleSum = &sc.count, &sc.sum
	if len(sc.classic) > 0 {
		sc.classicPtrs = sc.classicPtrs[:0]
		for i := range sc.classic {
			b := &sc.classic[i]
			b.b.CumulativeCount, b.b.UpperBound = &b.count, &h.bounds[i]
			sc.classicPtrs = append(sc.classicPtrs, &b.b)
		}
		d.Bucket = sc.classicPtrs
	}
	out.Histogram = d
	if h.mode == histogramClassic {
		return
	}
	// A non-zero zero threshold marks it as native even before any bucket.
	d.Schema, d.ZeroThreshold, d.ZeroCount = &sc.schema, &sc.zeroThreshold, &sc.zero
	if len(sc.spans) > 0 {
		sc.spanPtrs = sc.spanPtrs[:0]
		for i := range sc.spans {
			sp := &sc.spans[i]
			sp.s.Offset, sp.s.Length = &sp.offset, &sp.length
			sc.spanPtrs = append(sc.spanPtrs, &sp.s)
		}
		d.PositiveSpan, d.PositiveDelta = sc.spanPtrs, sc.deltas
	}
}

// classicBucket is a classic bucket with the count it points to.
type classicBucket struct {
	b     dto.Bucket
	count uint64
}

// nativeSpan is a native span with the offset and length it points to.
type nativeSpan struct {
	s      dto.BucketSpan
	offset int32
	length uint32
}

// nativeSpans appends the populated native buckets to spans and deltas, as
// spans and deltas; gaps of up to two empty buckets are carried inside a
// span (as zero counts), as client_golang encodes them. Each delta is
// against the bucket before it, across spans. h.mu must be held.
func (h *rttHistogram) nativeSpans(spans []nativeSpan, deltas []int64) ([]nativeSpan, []int64) {
	var prev int64
	last, first := 0, true
	for i, v := range h.counts {
		if v == 0 {
			continue
		}
		if gap := i - last - 1; first {
			spans = append(spans, nativeSpan{offset: int32(h.base + i), length: 1})
			first = false
		} else if gap <= 2 {
			for range gap {
				deltas = append(deltas, -prev)
				prev = 0
			}
			spans[len(spans)-1].length += uint32(gap) + 1
		} else {
			spans = append(spans, nativeSpan{offset: int32(gap), length: 1})
		}
		deltas = append(deltas, int64(v)-prev)
		prev, last = int64(v), i
	}
	return spans, deltas
}
