package bufferbloat

import (
	"testing"
	"time"
)

func TestQuantile(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		out := make([]time.Duration, len(v))
		for i, x := range v {
			out[i] = time.Duration(x) * time.Millisecond
		}
		return out
	}
	v := ms(10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110)
	if q := quantile(v, 0.5); q != 60*time.Millisecond {
		t.Errorf("median = %v", q)
	}
	if q := quantile(v, 0.9); q != 100*time.Millisecond {
		t.Errorf("p90 = %v", q)
	}
	if q := quantile(ms(10, 20), 0.5); q != 15*time.Millisecond {
		t.Errorf("interpolated median = %v", q)
	}
}

// The sampler matches replies and losses to the probes of its window by
// time, as the ping engine reports them.
func TestSamplerWindow(t *testing.T) {
	const iv, timeout = 20 * time.Millisecond, 200 * time.Millisecond
	now := time.Now()
	s := NewSampler(now, time.Time{}, iv, timeout)
	for i := 0; i < 6; i++ {
		s.Sent()
		time.Sleep(iv / 4)
		s.Reply(iv/4, 64) // answered a quarter interval after it was sent
		time.Sleep(iv * 3 / 4)
	}
	s.Sent()
	s.SendError("ENOBUFS")
	s.Lost() // the kernel refused the latest probe
	s.Duplicate()
	s.Reply(time.Hour, 64) // matches no pending probe: ignored
	s.End(time.Now())
	s.Sent() // after the window: not counted
	sum := s.Summary()
	if !sum.OK || sum.Sent != 7 || sum.Lost != 1 || !sum.LossKnown {
		t.Fatalf("summary %+v, want 6 answered and 1 lost", sum)
	}
	if sum.Q[0] != iv/4 || sum.Q[1] != iv/4 {
		t.Errorf("quantiles %v, want %v", sum.Q, iv/4)
	}
	// Too few replies for quantiles: loss is still known.
	few := NewSampler(now, time.Time{}, iv, timeout)
	few.Sent()
	few.Reply(0, 64)
	if sum := few.Summary(); sum.OK || sum.Sent != 1 || !sum.LossKnown {
		t.Errorf("one reply: %+v", sum)
	}
}
