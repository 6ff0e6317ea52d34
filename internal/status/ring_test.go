package status

import (
	"bytes"
	"fmt"
	"math"
	"runtime"
	"strconv"
	"testing"
	"time"
)

func TestRTTCode(t *testing.T) {
	for _, v := range []float64{1.2e-6, 4e-5, 1e-3, 0.0123, 0.25, 3, 900} {
		got := rttValue(rttCode(v))
		if r := got / v; r < 0.956 || r > 1.045 {
			t.Errorf("rttValue(rttCode(%g)) = %g: more than half a step (4.4%%) off", v, got)
		}
	}
	for _, b := range testBounds {
		if got := rttValue(rttCode(b)); math.Abs(got/b-1) > 1e-12 {
			t.Errorf("bucket bound %g comes back as %g", b, got)
		}
	}
	if rttCode(0) != 0 || rttCode(math.NaN()) != 0 || !math.IsNaN(rttValue(0)) {
		t.Error("no RTT must be code 0 and NaN")
	}
}

// bucketQuantile is histogram_quantile's interpolation.
func TestBucketQuantile(t *testing.T) {
	bounds := []float64{0.01, 0.02, 0.05, math.Inf(1)}
	counts := []uint64{10, 30, 60, 0}
	for _, c := range []struct{ q, want float64 }{
		{0.5, 0.025},  // rank 50: 10 into the 60 of (0.02, 0.05]
		{0.1, 0.01},   // the top of the first bucket
		{0.05, 0.005}, // half way into the first, from 0
		{1, 0.05},     // the top of the highest bucket hit
	} {
		if got := bucketQuantile(c.q, bounds, counts); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("q %v: %v, want %v", c.q, got, c.want)
		}
	}
	if got := bucketQuantile(0.99, bounds, []uint64{0, 0, 1, 5}); got != 0.05 {
		t.Errorf("in +Inf: %v, want the highest finite bound", got)
	}
	if !math.IsNaN(bucketQuantile(0.5, bounds, make([]uint64, 4))) {
		t.Error("no observations must be NaN")
	}
}

// Windows of 1, 5 and 15 minutes count exactly the probes of their slots.
func TestRingWindows(t *testing.T) {
	var r ring
	bounds := []float64{0.001, math.Inf(1)}
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var sent, lost uint64
	// 20 minutes at 1 probe/s, sampled every 10 s; minute m loses m%10 probes.
	for s := 0; s <= 20*60; s += 10 {
		r.add(start.Add(time.Duration(s)*time.Second), sent, lost, sent-lost, bounds, []uint16{uint16(sent - lost), 0})
		m := uint64(s / 60)
		sent += 10
		if s%60 == 0 {
			lost += m % 10
		}
	}
	now := start.Add(20*time.Minute + 5*time.Second) // the open slot is 5 s old: young
	s1, l1 := r.window(now, time.Minute)
	// The young open slot (nothing counted yet) and the two of 19:00–20:00.
	if s1 != 60 || l1 != 9 {
		t.Errorf("1m: %d sent %d lost, want 60 and 9", s1, l1)
	}
	// All 30 slots: the open one and 05:30–20:00.
	if s15, l15 := r.window(now, 15*time.Minute); s15 != 870 || l15 != 6+7+8+9+45 {
		t.Errorf("15m: %d sent %d lost, want 870 and 75", s15, l15)
	}
	// A half-full open slot stands in for the oldest: 19:30–20:00 and the 10 probes since.
	r.add(now.Add(15*time.Second), sent, lost+4, sent-lost, bounds, []uint16{uint16(sent - lost), 0})
	if s1, l1 := r.window(now.Add(15*time.Second), time.Minute); s1 != 40 || l1 != 4 {
		t.Errorf("1m with a half-full open slot: %d sent %d lost, want 40 and 4", s1, l1)
	}
}

// The bytes each target adds to the status, all of it: ring, base
// counters, name, map entry and order slot. 1000 targets, measured on the heap.
func TestStateBytesPerTarget(t *testing.T) {
	const n = 1000
	mk := func() []TargetSample {
		ss := make([]TargetSample, n)
		for i := range ss {
			ss[i] = TargetSample{Name: "target-" + strconv.Itoa(i), Family: "ip4", Probed: true,
				Bounds: testBounds, Counts: make([]uint16, len(testBounds))}
		}
		return ss
	}
	heap := func() uint64 {
		var m runtime.MemStats
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	st := New("n")
	before := heap()
	t0 := time.Unix(1e9, 0)
	for i := range 3 {
		st.ObservePing(t0.Add(time.Duration(i)*SlotLength), mk())
	}
	for i := range 3 { // with 20 buckets in use, as a target with some jitter has
		ss := mk()
		for j := range ss {
			for k := range 20 {
				ss[j].Counts[30+k] = uint16(i + 1)
			}
			ss[j].Total = uint64(20 * (i + 1))
		}
		st.ObservePing(t0.Add(time.Duration(3+i)*SlotLength), ss)
	}
	per := float64(heap()-before) / n
	runtime.KeepAlive(st)
	t.Logf("status state: %.0f bytes per target (ring %d slots of 7 bytes, 20 bucket bases of 2 bytes)", per, RingSlots)
	if per > 480 {
		t.Errorf("%.0f bytes per target, want at most a few hundred", per)
	}
}

func benchStatus(n int) (*Status, time.Time) {
	st, now := New("bench"), time.Unix(1e9, 0)
	ss := make([]TargetSample, n)
	for i := range ss {
		ss[i] = TargetSample{Name: fmt.Sprintf("target-%04d", i), Family: "ip4", Probed: true, Bounds: testBounds, Counts: make([]uint16, len(testBounds))}
	}
	for s := 0; s < RingSlots*3; s++ {
		for i := range ss {
			ss[i].Sent += 10
			if (s+i)%7 == 0 {
				ss[i].Lost++
			}
			ss[i].Counts[20+(s+i)%9] += 9
			ss[i].Total += 9
		}
		st.ObservePing(now.Add(time.Duration(s)*10*time.Second), ss)
	}
	return st, now.Add(RingSlots * 3 * 10 * time.Second)
}

// BenchmarkRender renders /status (report and format) for 100 and 1000 targets.
func BenchmarkRender(b *testing.B) {
	for _, n := range []int{100, 1000} {
		st, now := benchStatus(n)
		for _, f := range []string{"text", "html", "json"} {
			b.Run(fmt.Sprintf("%s/%d", f, n), func(b *testing.B) {
				var buf bytes.Buffer
				for b.Loop() {
					buf.Reset()
					r := st.Report(now, MaxEvents)
					switch f {
					case "text":
						Text(&buf, r)
					case "html":
						HTML(&buf, r, 10)
					case "json":
						jsonEncode(&buf, r)
					}
				}
				b.ReportMetric(float64(buf.Len()), "bytes/page")
			})
		}
	}
}
