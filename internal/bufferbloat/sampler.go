package bufferbloat

import (
	"context"
	"slices"
	"sync"
	"time"
)

// MinSamples is the fewest replies a median and p90 are computed from.
const MinSamples = 5

// Quantiles are the RTT quantiles a Summary holds, in this order.
var Quantiles = [2]float64{0.5, 0.9}

// Summary is one phase's RTT figures.
type Summary struct {
	OK        bool             // enough replies (MinSamples) for the quantiles
	Q         [2]time.Duration // at Quantiles
	Sent      int              // probes resolved (answered or lost)
	Lost      int
	LossKnown bool // Sent > 0
}

// Sampler is the ping handler (internal/pinger.Handler) of one phase of a
// run, idle or under load. It keeps the probes sent within [from, to]. The
// handler is not told which probe an event belongs to, so events are matched
// by time: a reply was sent its RTT ago, a loss its timeout ago, and probes
// are an interval apart, so the nearest pending send within half an interval
// is the one.
type Sampler struct {
	timeout, interval time.Duration

	mu       sync.Mutex
	from, to time.Time // zero to: still open
	pending  []time.Time
	errNext  bool // SendError: the Lost that follows is the latest probe's
	lost     int
	rtts     []time.Duration
}

// NewSampler samples the probes sent within [from, to]; a zero to leaves the
// window open until End.
func NewSampler(from, to time.Time, interval, timeout time.Duration) *Sampler {
	return &Sampler{from: from, to: to, interval: interval, timeout: timeout}
}

func (s *Sampler) Sent() {
	now := time.Now()
	s.mu.Lock()
	if !now.Before(s.from) && (s.to.IsZero() || !now.After(s.to)) {
		s.pending = append(s.pending, now)
	}
	s.mu.Unlock()
}

// take removes the pending probe sent nearest to at, if one is close enough.
func (s *Sampler) take(at time.Time) bool {
	best, bestD := -1, s.interval/2
	for i, p := range s.pending {
		if d := max(p.Sub(at), at.Sub(p)); d <= bestD {
			best, bestD = i, d
		}
	}
	if best < 0 {
		return false
	}
	s.pending = slices.Delete(s.pending, best, best+1)
	return true
}

func (s *Sampler) Reply(rtt time.Duration, _ int) {
	now := time.Now()
	s.mu.Lock()
	if s.take(now.Add(-rtt)) {
		s.rtts = append(s.rtts, rtt)
	}
	s.mu.Unlock()
}

func (s *Sampler) Lost() {
	now := time.Now()
	s.mu.Lock()
	switch {
	case s.errNext:
		s.errNext = false
		if n := len(s.pending); n > 0 && now.Sub(s.pending[n-1]) < s.interval/2 {
			s.pending = s.pending[:n-1]
			s.lost++
		}
	case s.take(now.Add(-s.timeout)):
		s.lost++
	}
	s.mu.Unlock()
}

func (s *Sampler) SendError(string) {
	s.mu.Lock()
	s.errNext = true
	s.mu.Unlock()
}

func (s *Sampler) Duplicate() {}

// End closes the window at at.
func (s *Sampler) End(at time.Time) {
	s.mu.Lock()
	s.to = at
	s.mu.Unlock()
}

// Drain waits until every probe of the window is answered or lost: the last
// pings under load see the fullest queue, so they must not be cut off.
func (s *Sampler) Drain(ctx context.Context) {
	s.mu.Lock()
	deadline := s.to.Add(s.timeout + 100*time.Millisecond)
	s.mu.Unlock()
	tick := time.NewTicker(min(max(s.interval/2, 5*time.Millisecond), 50*time.Millisecond))
	defer tick.Stop()
	for time.Now().Before(deadline) {
		s.mu.Lock()
		settled := len(s.pending) == 0
		s.mu.Unlock()
		if settled {
			return
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return
		}
	}
}

// Summary is what the window saw.
func (s *Sampler) Summary() Summary {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.rtts) + s.lost
	r := Summary{Sent: n, Lost: s.lost, LossKnown: n > 0}
	if len(s.rtts) < MinSamples {
		return r
	}
	v := slices.Clone(s.rtts)
	slices.Sort(v)
	r.OK = true
	for i, q := range Quantiles {
		r.Q[i] = quantile(v, q)
	}
	return r
}

// quantile interpolates linearly between the order statistics of sorted v.
func quantile(v []time.Duration, q float64) time.Duration {
	pos := q * float64(len(v)-1)
	i := int(pos)
	if i+1 >= len(v) {
		return v[len(v)-1]
	}
	return v[i] + time.Duration((pos-float64(i))*float64(v[i+1]-v[i]))
}
