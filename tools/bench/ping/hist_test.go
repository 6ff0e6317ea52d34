package main

import (
	"math"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func histFamily(t *testing.T, factor float64, obs ...[]float64) *dto.MetricFamily {
	t.Helper()
	mf := &dto.MetricFamily{Name: new(string)}
	for _, o := range obs {
		h := prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "x", Buckets: []float64{50e-6, 100e-6, 200e-6}, NativeHistogramBucketFactor: factor,
		})
		for _, v := range o {
			h.Observe(v)
		}
		var m dto.Metric
		if err := h.Write(&m); err != nil {
			t.Fatal(err)
		}
		mf.Metric = append(mf.Metric, &m)
	}
	return mf
}

// The median must land in the native bucket that holds the true median, also
// when series are merged and an earlier snapshot is subtracted.
func TestNativeMedian(t *testing.T) {
	var a, b []float64
	for i := range 1000 {
		a = append(a, 30e-6+float64(i)*0.05e-6) // 30 .. 80 µs
		b = append(b, 60e-6+float64(i)*0.01e-6) // 60 .. 70 µs
	}
	s := snapFromFamily(histFamily(t, 1.05, a, b))
	if s.native == nil {
		t.Fatal("native buckets not decoded")
	}
	if s.native.total() != 2000 || s.count != 2000 {
		t.Fatalf("total %v count %v, want 2000", s.native.total(), s.count)
	}
	// True median of a∪b: between 60 and 70 µs, about 64.99 µs.
	v, lo, hi, ok := s.native.quantile(0.5)
	if !ok || v < lo || v > hi || hi/lo > 1.05 || math.Abs(v-65e-6) > 3e-6 {
		t.Fatalf("median %v in [%v, %v], want ≈65µs in one ≤5%% bucket", v, lo, hi)
	}

	before := snapFromFamily(histFamily(t, 1.05, a[:0], b))
	d := s.sub(before)
	if d.native.total() != 1000 || d.count != 1000 {
		t.Fatalf("after subtraction: %v / %v, want 1000", d.native.total(), d.count)
	}
	if v, _, _, _ := d.native.quantile(0.5); math.Abs(v-55e-6) > 3e-6 {
		t.Fatalf("median of a alone = %v, want ≈55µs", v)
	}
}

// Series at different resolutions merge at the coarser one.
func TestNativeMergeSchemas(t *testing.T) {
	fine := snapFromFamily(histFamily(t, 1.01, []float64{40e-6, 41e-6, 42e-6}))
	coarse := snapFromFamily(histFamily(t, 1.2, []float64{100e-6}))
	agg := &nativeHist{}
	agg.add(fine.native, 1)
	agg.add(coarse.native, 1)
	if agg.schema != coarse.native.schema || agg.total() != 4 {
		t.Fatalf("schema %d total %v; want %d, 4", agg.schema, agg.total(), coarse.native.schema)
	}
	v, lo, hi, _ := agg.quantile(0.5)
	if lo > 41e-6 || hi < 41e-6 {
		t.Fatalf("median %v bucket [%v, %v] misses 41µs", v, lo, hi)
	}
}

func TestClassicMedian(t *testing.T) {
	s := snapFromFamily(histFamily(t, 0, []float64{120e-6, 130e-6, 150e-6, 300e-6}))
	if s.native != nil {
		t.Fatal("no native histogram was configured")
	}
	v, lo, hi, ok := s.classicQuantile(0.5)
	if !ok || lo != 100e-6 || hi != 200e-6 || v < lo || v > hi {
		t.Fatalf("median %v in [%v, %v]", v, lo, hi)
	}
}

func TestFpingReply(t *testing.T) {
	at, rtt, ok := fpingReply("[1795286436.06721] 127.0.0.2 : [0], 64 bytes, 0.082 ms (0.082 avg, 0% loss)")
	if !ok || rtt != 82*time.Microsecond || at.Unix() != 1795286436 {
		t.Fatalf("got %v %v %v", at, rtt, ok)
	}
	for _, l := range []string{
		"[1795286436.06721] 127.0.0.2 : [3], timed out (NaN avg, 25% loss)",
		"127.0.0.2 : xmt/rcv/%loss = 4/4/0%, min/avg/max = 0.019/0.045/0.082",
		"",
	} {
		if _, _, ok := fpingReply(l); ok {
			t.Errorf("%q parsed as a reply", l)
		}
	}
}
