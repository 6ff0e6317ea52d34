package collector

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// A collector that reads a file whose driver never answers (a hwmon chip on
// a dead bus, a FIFO, a hung NFS mount under --path.rootfs) would hold the
// whole scrape, probes included, until Prometheus gives up. So each
// collector gets a deadline: past it, the scrape goes on without that
// collector's series and reports it failed. The blocked read cannot be
// cancelled (a read syscall on a stuck driver ignores everything short of a
// signal), so its goroutine is left to finish on its own, and until it does
// that collector is not started again: one stuck thread per collector at
// most, however many scrapes come.

// DefaultTimeout is the deadline a collector gets when the set is given none.
const DefaultTimeout = 10 * time.Second

var stuckDesc = hostDesc("scrape", "collector_stuck",
	"1 while an update of the collector that missed its scrape deadline is still running (a read that does not return); the collector is not run again until it ends.",
	"collector")

// ErrTimeout is the error of a collector that missed its deadline.
var ErrTimeout = errors.New("collector missed its scrape deadline")

// deadlines is the bookkeeping of one set: the timeout in force and which
// collectors are still stuck in an earlier scrape's update.
type deadlines struct {
	timeout atomic.Int64 // nanoseconds; 0 means DefaultTimeout

	mu    sync.Mutex
	stuck map[string]time.Time // collector → when its stuck update began
}

// SetTimeout sets the deadline of every collector for the scrapes that
// start from now on (the exporter passes the scrape's timeout, taken from
// X-Prometheus-Scrape-Timeout-Seconds, less a margin).
func (s *Set) SetTimeout(d time.Duration) { s.dl.timeout.Store(int64(d)) }

// Timeout is the deadline in force.
func (s *Set) Timeout() time.Duration {
	if d := time.Duration(s.dl.timeout.Load()); d > 0 {
		return d
	}
	return DefaultTimeout
}

// Stuck lists the collectors whose update is still running past a deadline.
func (s *Set) Stuck() []string {
	s.dl.mu.Lock()
	defer s.dl.mu.Unlock()
	var out []string
	for n := range s.dl.stuck {
		out = append(out, n)
	}
	return out
}

// updateWithin runs c's update and returns its metrics if it ends before
// deadline. Otherwise it returns ErrTimeout, leaves the update running, and
// marks name stuck until the update ends; a stuck collector is not started.
func (s *Set) updateWithin(name string, c Collector, deadline time.Time) ([]prometheus.Metric, error) {
	s.dl.mu.Lock()
	if since, ok := s.dl.stuck[name]; ok {
		s.dl.mu.Unlock()
		return nil, fmt.Errorf("%w: the update started %s ago has not returned yet (a read that blocks); not started again",
			ErrTimeout, time.Since(since).Round(time.Millisecond))
	}
	s.dl.mu.Unlock()

	type result struct {
		metrics []prometheus.Metric
		err     error
	}
	done := make(chan result, 1)
	begin := time.Now()
	go func() {
		inner := make(chan prometheus.Metric, 64)
		var ms []prometheus.Metric
		collected := make(chan struct{})
		go func() {
			for m := range inner {
				ms = append(ms, m)
			}
			close(collected)
		}()
		err := safeUpdate(c, inner)
		close(inner)
		<-collected
		done <- result{ms, err}
		s.dl.mu.Lock()
		delete(s.dl.stuck, name) // a no-op unless the deadline passed
		s.dl.mu.Unlock()
	}()
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	select {
	case r := <-done:
		return r.metrics, r.err
	case <-timer.C:
	}
	s.dl.mu.Lock()
	defer s.dl.mu.Unlock()
	select {
	case r := <-done: // ended while we took the lock
		return r.metrics, r.err
	default:
	}
	if s.dl.stuck == nil {
		s.dl.stuck = map[string]time.Time{}
	}
	s.dl.stuck[name] = begin
	return nil, fmt.Errorf("%w after %s: its series are left out of this scrape", ErrTimeout, time.Since(begin).Round(time.Millisecond))
}

// collectStuck reports every collector of the set as stuck or not.
func (s *Set) collectStuck(ch chan<- prometheus.Metric) {
	s.dl.mu.Lock()
	defer s.dl.mu.Unlock()
	for name := range s.collectors {
		v := 0.0
		if _, ok := s.dl.stuck[name]; ok {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(stuckDesc, prometheus.GaugeValue, v, name)
	}
}
