package probes

// Shared machinery of the service probes (http, dns, tcp, synthetic): a
// schedule per target, and the histograms and per-target counters they all
// export. The probes themselves are internal/prober's.

import (
	"context"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/smokemon/smokemon/collector"
)

// svcBuckets span a LAN service answering in 100µs to a probe that uses its
// whole 30s timeout, in 1-2-5 steps.
var svcBuckets = []float64{
	100e-6, 200e-6, 500e-6,
	1e-3, 2e-3, 5e-3, 10e-3, 20e-3, 50e-3, 100e-3, 200e-3, 500e-3,
	1, 2, 5, 10, 20, 30,
}

func newSvcHistogram(subsystem, name, help string, labels prometheus.Labels) prometheus.Histogram {
	return prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: collector.Namespace, Subsystem: subsystem, Name: name, Help: help,
		Buckets:                         svcBuckets,
		NativeHistogramBucketFactor:     1.05,
		NativeHistogramMaxBucketNumber:  100,
		NativeHistogramMinResetDuration: time.Hour,
		ConstLabels:                     labels,
	})
}

func labelMap(names, values []string, extra ...string) prometheus.Labels {
	l := prometheus.Labels{}
	for i, n := range names {
		l[n] = values[i]
	}
	for i := 0; i+1 < len(extra); i += 2 {
		l[extra[i]] = extra[i+1]
	}
	return l
}

// probeDescs describe what every service probe exports per target: probes
// run, failures by reason and whether the latest probe succeeded. reasons is
// the fixed list failures are exported for, every one from the start so
// rate() sees the first failure.
type probeDescs struct {
	probes, failures, success *prometheus.Desc
	reasons                   []string
}

type probeHelp struct{ probes, failures, success string }

// newProbeDescs names the metrics <subsystem>_<prefix>probes_total,
// _failures_total (labels and then reason) and _success.
func newProbeDescs(subsystem, prefix string, labels, reasons []string, help probeHelp) probeDescs {
	name := func(n string) string { return prometheus.BuildFQName(collector.Namespace, subsystem, prefix+n) }
	return probeDescs{
		probes:   prometheus.NewDesc(name("probes_total"), help.probes, labels, nil),
		failures: prometheus.NewDesc(name("failures_total"), help.failures, append(slices.Clone(labels), "reason"), nil),
		success:  prometheus.NewDesc(name("success"), help.success, labels, nil),
		reasons:  reasons,
	}
}

// probeStats are the results every service probe keeps for a target. They
// have no mutex of their own: the owner's guards them together with its own
// fields, so a scrape never sees half of a probe's results.
type probeStats struct {
	// hist is observed by the owner, since what it times differs: some
	// probes time failed answers too (an HTTP error status, an NXDOMAIN).
	hist     prometheus.Histogram
	probes   uint64
	failures map[string]uint64
	probed   bool
	success  bool
}

func newProbeStats(hist prometheus.Histogram) probeStats {
	return probeStats{hist: hist, failures: map[string]uint64{}}
}

// record counts a finished probe; reason is "" for a success. wasOK is
// whether the probe before succeeded (or none ran), so that the owner logs
// when a target starts failing rather than at every failed probe.
func (s *probeStats) record(reason string) (wasOK bool) {
	wasOK = !s.probed || s.success
	s.probed = true
	s.probes++
	s.success = reason == ""
	if reason != "" {
		s.failures[reason]++
	}
	return wasOK
}

// collect exports the counters and the histogram; success only once a probe
// has finished, so a target that was never probed does not read as down. lv
// are the values of d's labels.
func (s *probeStats) collect(ch chan<- prometheus.Metric, d probeDescs, lv []string) {
	ch <- prometheus.MustNewConstMetric(d.probes, prometheus.CounterValue, float64(s.probes), lv...)
	for _, r := range d.reasons {
		ch <- prometheus.MustNewConstMetric(d.failures, prometheus.CounterValue, float64(s.failures[r]), append(slices.Clone(lv), r)...)
	}
	if s.probed {
		ch <- prometheus.MustNewConstMetric(d.success, prometheus.GaugeValue, boolValue(s.success), lv...)
	}
	s.hist.Collect(ch)
}

// svcJob is one target's schedule. run does one probe within ctx (which ends
// at the target's timeout) and returns what to record, so a probe aborted by
// a reload or Close records nothing.
type svcJob struct {
	key      string
	spec     any // the job is restarted when this changes (reflect.DeepEqual)
	interval time.Duration
	timeout  time.Duration
	run      func(ctx context.Context) (record func())
}

type runningJob struct {
	spec   any
	cancel context.CancelFunc
	done   chan struct{}
}

// svcScheduler runs one goroutine per target. A probe never outlives its
// timeout: every socket it opens is bound to the probe's context.
type svcScheduler struct {
	mu      sync.Mutex
	running map[string]*runningJob
}

// apply makes the running set equal jobs. Unchanged jobs keep running on their
// schedule; new and changed ones start spread over their interval.
func (s *svcScheduler) apply(jobs []svcJob) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running == nil {
		s.running = map[string]*runningJob{}
	}
	want := map[string]bool{}
	var stopped []*runningJob
	var start []svcJob
	for _, j := range jobs {
		want[j.key] = true
		if r, ok := s.running[j.key]; ok {
			if reflect.DeepEqual(r.spec, j.spec) {
				continue
			}
			r.cancel()
			stopped = append(stopped, r)
		}
		start = append(start, j)
	}
	for k, r := range s.running {
		if !want[k] {
			r.cancel()
			stopped = append(stopped, r)
			delete(s.running, k)
		}
	}
	// A stopped probe ends at once: its sockets are closed by the cancel.
	for _, r := range stopped {
		<-r.done
	}
	for i, j := range start {
		ctx, cancel := context.WithCancel(context.Background())
		r := &runningJob{spec: j.spec, cancel: cancel, done: make(chan struct{})}
		s.running[j.key] = r
		offset := j.interval * time.Duration(i) / time.Duration(len(start))
		go s.loop(ctx, j, offset, r.done)
	}
}

func (s *svcScheduler) loop(parent context.Context, j svcJob, offset time.Duration, done chan struct{}) {
	defer close(done)
	next := time.Now().Add(offset)
	t := time.NewTimer(offset)
	defer t.Stop()
	for {
		select {
		case <-parent.Done():
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(parent, j.timeout)
		record := j.run(ctx)
		cancel()
		if parent.Err() != nil {
			return
		}
		if record != nil {
			record()
		}
		// Keep the phase; skip rounds the probe ran into rather than bunch up.
		now := time.Now()
		for next = next.Add(j.interval); !next.After(now); next = next.Add(j.interval) {
		}
		t.Reset(time.Until(next))
	}
}

// Close stops every probe; one in flight is aborted (its sockets are bound
// to its context).
func (s *svcScheduler) Close() error {
	s.apply(nil)
	return nil
}
