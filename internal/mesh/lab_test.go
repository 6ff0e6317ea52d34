package mesh

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/smokemon/smokemon/internal/lab"
	"github.com/smokemon/smokemon/internal/testutil"
)

// RTT and one-way accuracy against the lab's delay element, with the engine
// in the client namespace and the responder in the destination's. The
// target is ping's: median error ≤ 100 µs and p99 ≤ 1 ms beyond the path's
// own cost (measured the same way at 0 ms); the median is asserted. On a loaded machine the kernel's
// softirq work delays any path, so the measurement runs under lab.Tries, and
// the figures are logged for the report.
func TestMeshAccuracyInLab(t *testing.T) {
	tp := lab.Topology(t)
	d := tp.Delay(t)
	var r *Responder
	if err := tp.Dst[0].Do(func() (err error) {
		r, err = NewResponder(testutil.Logger(), ResponderConfig{UDPPort: 9918, RateLimit: 10000, RateBurst: 1000}, nil)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var e *Engine
	if err := tp.Client.Do(func() (err error) { e, err = NewEngine(testutil.Logger()); return err }); err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	dst := netip.AddrPortFrom(tp.Addr(tp.Dst[0], false), 9918)

	measure := func(n int) (rtt, fwd, ret []time.Duration) {
		samples := &sampleLog{}
		h := &recorder{onSample: samples.add} // set before Add: the receiver reads it
		s := Settings{Interval: 10 * time.Millisecond, Timeout: time.Second, Size: HeaderLen}
		s.Protos[UDP] = true
		p := e.Add(dst, dst, s, h)
		time.Sleep(time.Duration(n)*s.Interval + 300*time.Millisecond)
		e.Remove(p)
		h.mu.Lock()
		defer h.mu.Unlock()
		return slices.Clone(h.rtts), samples.fwd, samples.ret
	}
	type errStats struct{ median, p99 time.Duration }
	stats := func(ds []time.Duration, programmed time.Duration) errStats {
		x := make([]time.Duration, len(ds))
		for i, v := range ds {
			x[i] = v - programmed
		}
		slices.Sort(x)
		return errStats{x[len(x)/2], x[len(x)*99/100]}
	}
	const n = 500
	var base [3]errStats
	for i, ds := range func() [3][]time.Duration { a, b, c := measure(200); return [3][]time.Duration{a, b, c} }() {
		base[i] = stats(ds, 0)
	}
	t.Logf("path at 0 ms: rtt median %v p99 %v; forward median %v p99 %v; return median %v p99 %v", base[0].median, base[0].p99, base[1].median, base[1].p99, base[2].median, base[2].p99)

	const up, down = 20 * time.Millisecond, 5 * time.Millisecond
	d.Up.Set(lab.DelayParams{Delay: up})
	d.Down.Set(lab.DelayParams{Delay: down})
	// lab.Tries tells a machine stall from an error of ours.
	lab.Tries(t, "mesh accuracy 20/5 ms", func() error {
		rtt, fwd, ret := measure(n)
		if len(rtt) < n*9/10 {
			return lab.NotTiming(fmt.Errorf("%d of %d probes answered", len(rtt), n))
		}
		var fails []string
		for _, m := range []struct {
			name string
			ds   []time.Duration
			want time.Duration
			base errStats
		}{{"rtt", rtt, up + down, base[0]}, {"forward", fwd, up, base[1]}, {"return", ret, down, base[2]}} {
			s := stats(m.ds, m.want)
			t.Logf("%s minus programmed %v: median %v p99 %v (beyond the path at 0 ms: median %v p99 %v)", m.name, m.want, s.median, s.p99, s.median-m.base.median, s.p99-m.base.p99)
			// The median target is asserted; the p99 one (1 ms) depends on how
			// loaded the machine is, so it is logged, and only a gross tail
			// (a broken timestamp path) fails.
			if s.p99-m.base.p99 > time.Millisecond {
				t.Logf("%s p99 %v beyond the path misses the 1ms target", m.name, s.p99-m.base.p99)
			}
			if s.median-m.base.median > 100*time.Microsecond || s.p99-m.base.p99 > 20*time.Millisecond || s.median < -100*time.Microsecond {
				fails = append(fails, fmt.Sprintf("%s: median %v (path %v) p99 %v", m.name, s.median, m.base.median, s.p99))
			}
		}
		if len(fails) > 0 {
			return fmt.Errorf("accuracy target (median ≤ 100µs beyond the path, p99 not grossly off) missed: %v", fails)
		}
		return nil
	})
}

type sampleLog struct{ fwd, ret []time.Duration }

func (l *sampleLog) add(s *Sample) {
	l.fwd = append(l.fwd, time.Duration(s.T2-s.T1))
	l.ret = append(l.ret, time.Duration(s.T4-s.T3))
}
