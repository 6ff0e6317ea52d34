package probes

import (
	"maps"
	"math"
	"math/rand/v2"
	"sort"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"
)

// nativeCounts expands spans and deltas into bucket key → count.
func nativeCounts(h *dto.Histogram) map[int]uint64 {
	m := map[int]uint64{}
	key, count, d := 0, int64(0), 0
	for i, s := range h.PositiveSpan {
		if i == 0 {
			key = int(s.GetOffset())
		} else {
			key += int(s.GetOffset())
		}
		for range s.GetLength() {
			count += h.PositiveDelta[d]
			d++
			if count != 0 {
				m[key] = uint64(count)
			}
			key++
		}
	}
	return m
}

// The histogram must expose exactly what client_golang's does with the
// options the ping collector used before: same classic buckets, count, sum,
// schema, zero bucket and native buckets, encoded the same way, including
// after too many buckets halve the resolution. The classic-only and
// native-only modes must match client_golang's histogram without native
// buckets and without classic buckets.
func TestRTTHistogramMatchesClientGolang(t *testing.T) {
	for _, mode := range []string{"both", "classic", "native"} {
		t.Run(mode, func(t *testing.T) { testRTTHistogramMode(t, histogramModes[mode]) })
	}
}

func testRTTHistogramMode(t *testing.T, mode histogramMode) {
	rng := rand.New(rand.NewPCG(1, 2))
	logUniform := func(lo, hi float64) float64 {
		return math.Exp(math.Log(lo) + rng.Float64()*(math.Log(hi)-math.Log(lo)))
	}
	for _, tc := range []struct {
		name       string
		lo, hi     float64
		extremes   bool // zero, exact bounds, beyond the last bucket
		wantSchema int32
	}{
		{"loopback", 20e-6, 600e-6, false, 4},
		{"a path's range and extremes", 100e-6, 300e-3, true, 3},
		{"everything", 1e-7, 100, true, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := prometheus.HistogramOpts{
				Name: "rtt_seconds", Help: "h", Buckets: pingBuckets,
				NativeHistogramBucketFactor: 1.05, NativeHistogramMaxBucketNumber: 100,
				NativeHistogramMinResetDuration: time.Hour,
			}
			wantClassic, wantNative := len(pingBuckets), true
			switch mode {
			case histogramClassic:
				opts.NativeHistogramBucketFactor, opts.NativeHistogramMaxBucketNumber, opts.NativeHistogramMinResetDuration = 0, 0, 0
				wantNative = false
			case histogramNative:
				opts.Buckets = nil
				wantClassic = 0
			}
			ref := prometheus.NewHistogram(opts)
			ours := newRTTHistogram(pingBuckets, mode, time.Now)
			var values []float64
			if tc.extremes {
				values = []float64{0, 20e-6, 1e-3, 1, 20, 25, math.Exp2(-10)}
			}
			for range 20000 {
				values = append(values, logUniform(tc.lo, tc.hi))
			}
			for _, v := range values {
				ref.Observe(v)
				ours.Observe(v)
			}
			var want, got dto.Metric
			if err := ref.Write(&want); err != nil {
				t.Fatal(err)
			}
			ours.fill(&got, new(histScratch))
			w, g := want.Histogram, got.Histogram
			if wantNative && g.GetSchema() != tc.wantSchema {
				t.Errorf("schema %d, want %d", g.GetSchema(), tc.wantSchema)
			}
			if wantNative != (len(nativeCounts(g)) > 0) || len(g.Bucket) != wantClassic || g.GetSampleCount() != uint64(len(values)) {
				t.Fatalf("native buckets %d (want some: %v), classic %d (want %d), count %d: %v",
					len(nativeCounts(g)), wantNative, len(g.Bucket), wantClassic, g.GetSampleCount(), g)
			}
			w.CreatedTimestamp, g.CreatedTimestamp = nil, nil
			if !proto.Equal(w, g) {
				t.Errorf("differs from client_golang:\n got %v\nwant %v", g, w)
			}
			if !maps.Equal(nativeCounts(w), nativeCounts(g)) {
				t.Errorf("native buckets differ")
			}
		})
	}
}

// Past the minimum reset duration, too many buckets start the histogram over
// (a counter reset with a new created timestamp) instead of coarsening it.
func TestRTTHistogramReset(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	h := newRTTHistogram(pingBuckets, histogramBoth, func() time.Time { return now })
	v := 1e-6
	for range 99 {
		h.Observe(v)
		v *= 1.1 // one bucket apart or more at schema 4
	}
	now = now.Add(2 * time.Hour)
	for range 10 {
		h.Observe(v)
		v *= 1.1
	}
	var m dto.Metric
	h.fill(&m, new(histScratch))
	// 99 buckets, then the 101st bucket overflows: it and the eight after it remain.
	if c := m.Histogram.GetSampleCount(); c != 9 {
		t.Errorf("count %d after the reset, want 9", c)
	}
	if m.Histogram.GetSchema() != rttNativeSchema {
		t.Errorf("schema %d after the reset, want %d", m.Histogram.GetSchema(), rttNativeSchema)
	}
	if got := m.Histogram.CreatedTimestamp.AsTime(); !got.Equal(now) {
		t.Errorf("created %v, want the reset time %v", got, now)
	}
	if n := len(nativeCounts(m.Histogram)); n == 0 || n > rttNativeMaxBuckets {
		t.Errorf("%d native buckets after the reset", n)
	}
}

// A bucket at 2^32 - 1 cannot take another observation: the histogram
// starts over (classic and native alike) rather than wrap, and the
// observation opens the new one.
func TestRTTHistogramFullBucket(t *testing.T) {
	for _, mode := range []histogramMode{histogramBoth, histogramClassic, histogramNative} {
		start := time.Unix(1_700_000_000, 0)
		now := start
		h := newRTTHistogram(pingBuckets, mode, func() time.Time { return now })
		h.Observe(300e-6)
		h.Observe(3e-3)
		if h.classic != nil {
			h.classic[sort.SearchFloat64s(pingBuckets, 300e-6)] = math.MaxUint32
		} else {
			h.counts[nativeKey(300e-6, h.schema)-h.base] = math.MaxUint32
		}
		now = now.Add(time.Minute)
		h.Observe(3e-3) // another bucket: counted as usual
		h.Observe(300e-6)
		var m dto.Metric
		h.fill(&m, new(histScratch))
		if c := m.Histogram.GetSampleCount(); c != 1 {
			t.Errorf("mode %d: count %d after a full bucket, want 1 (a new histogram)", mode, c)
		}
		if got := m.Histogram.CreatedTimestamp.AsTime(); !got.Equal(now) {
			t.Errorf("mode %d: created %v, want the reset time %v", mode, got, now)
		}
		if mode != histogramClassic && len(nativeCounts(m.Histogram)) != 1 {
			t.Errorf("mode %d: native buckets %v after the reset", mode, nativeCounts(m.Histogram))
		}
	}
}
