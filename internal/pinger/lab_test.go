package pinger

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/smokemon/smokemon/internal/lab"
	"github.com/smokemon/smokemon/internal/testutil"
)

// RTT accuracy against the lab's delay element: the engine in the client
// namespace pings the destination through a router that holds every
// client→destination packet for a programmed time. The error is the measured
// RTT minus (programmed delay + the same path's RTT without delay).
func TestRTTAccuracyThroughDelayElement(t *testing.T) {
	if testing.Short() {
		t.Skip("short mode")
	}
	lab.Require(t)
	tp := lab.Topology(t)
	d := tp.Delay(t)
	dst := tp.Addr(tp.Dst[0], false)
	var e *Engine
	err := tp.Client.Do(func() (err error) {
		e, err = New(testutil.Logger(), Options{Families: []Family{IPv4}, Socket: KindRaw})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()

	// collect pings dst every 10ms until n replies are in, and returns them sorted.
	collect := func(n int, timeout time.Duration) ([]time.Duration, error) {
		r := &recorder{}
		tg := e.Add(dst, Settings{Interval: 10 * time.Millisecond, Timeout: timeout, Size: 56}, r)
		defer e.Remove(tg)
		testutil.Eventually(time.Duration(n)*15*time.Millisecond+5*time.Second, 50*time.Millisecond, func() bool { return r.snapshot().replies >= n })
		s := r.snapshot()
		if len(s.rtts) < n {
			return nil, lab.Shortfall(len(s.rtts), n, fmt.Errorf("only %d of %d replies (lost %d)", len(s.rtts), n, s.lost))
		}
		rtts := s.rtts[:n]
		slices.Sort(rtts)
		return rtts, nil
	}
	q := func(xs []time.Duration, p float64) time.Duration { return xs[int(p*float64(len(xs)-1))] }

	for _, tc := range []struct {
		delay, jitter time.Duration
	}{
		{20 * time.Millisecond, 0},
		{150 * time.Millisecond, 0},
		{20 * time.Millisecond, 5 * time.Millisecond},
		{150 * time.Millisecond, 20 * time.Millisecond},
	} {
		t.Run(fmt.Sprintf("delay=%v,jitter=%v", tc.delay, tc.jitter), func(t *testing.T) {
			// lab.Tries tells a machine stall from an error of ours.
			lab.Tries(t, "rtt", func() error {
				// The undelayed path right before, so both see the same machine.
				d.Up.Set(lab.DelayParams{})
				baseRTTs, err := collect(200, time.Second)
				if err != nil {
					return err
				}
				base := q(baseRTTs, 0.5)
				before := d.Up.Stats()
				d.Up.Set(lab.DelayParams{Delay: tc.delay, Jitter: tc.jitter})
				rtts, err := collect(300, time.Second)
				d.Up.Set(lab.DelayParams{})
				if err != nil {
					return err
				}
				own := lateDiff(before, d.Up.Stats())
				want := tc.delay + base
				med, p99 := q(rtts, 0.5)-want, q(rtts, 0.99)-want
				msg := fmt.Sprintf("path without delay median %v p99 %v; median error %v, p99 error %v (delay element's own lateness: median ≤ %v, p99 ≤ %v)",
					base, q(baseRTTs, 0.99), med, p99, own.LateQuantile(0.5), own.LateQuantile(0.99))
				var ok bool
				if tc.jitter == 0 {
					// The p99 bound allows for what is not ours, measured in the
					// same run: the element's own p99 lateness (an off-scale
					// one makes the try fail) and the undelayed path's own
					// tail above its median.
					ownP99 := own.LateQuantile(0.99)
					pathTail := q(baseRTTs, 0.99) - base
					ok = med.Abs() <= 100*time.Microsecond && ownP99 >= 0 && p99.Abs() <= time.Millisecond+ownP99+pathTail
					msg += fmt.Sprintf("; p99 bound 1ms + %v (element) + %v (path tail)", ownP99, pathTail)
				} else {
					// Each packet's delay is drawn uniformly from delay±jitter and
					// only the element knows which: the median of n such delays
					// itself wanders by jitter/√n, so the median may be off by
					// 4.5 of those beside our 100µs; the spread must stay within
					// the programmed edges.
					sampling := time.Duration(4.5 * float64(tc.jitter) / math.Sqrt(float64(len(rtts))))
					lo := rtts[0] - base
					ok = med.Abs() <= 100*time.Microsecond+sampling &&
						lo >= tc.delay-tc.jitter-time.Millisecond && q(rtts, 0.99)-base <= tc.delay+tc.jitter+time.Millisecond
					msg += fmt.Sprintf("; sampling tolerance of the median ±%v, spread from %v", sampling, lo)
				}
				t.Log(msg)
				if !ok {
					return errors.New("out of bounds: " + msg)
				}
				return nil
			})
		})
	}
}

// lateDiff is the element's lateness histogram for the packets between two snapshots.
func lateDiff(a, b lab.DelayStats) lab.DelayStats {
	var d lab.DelayStats
	for i := range b.Late {
		d.Late[i] = b.Late[i] - a.Late[i]
	}
	return d
}
