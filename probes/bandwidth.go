package probes

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/smokemon/smokemon/collector"
	"github.com/smokemon/smokemon/internal/bufferbloat"
	"github.com/smokemon/smokemon/internal/config"
	"github.com/smokemon/smokemon/internal/pinger"
	"github.com/smokemon/smokemon/internal/prober"
)

// The bandwidth collector runs iperf3 on a schedule (hourly by default) and
// pings a reference before and during the load, so that each run yields the
// throughput and how much latency the load adds (bufferbloat). A scrape only
// reads the figures of the last completed run.

var bandwidthIperf3Path = kingpin.Flag("collector.bandwidth.iperf3-path",
	"iperf3 binary the bandwidth collector runs (looked up in PATH unless it contains a slash).").
	Default("iperf3").String()

// bandwidthSlot lets one run at a time use the node's link: two tests at
// once would each measure half the link and the other's queue.
var bandwidthSlot = make(chan struct{}, 1)

// RTT figures are exported with a percentile label, not quantile: promtool
// reserves quantile for summaries, and these are one run's figures, not a
// summary's running count and sum. They are bufferbloat.Quantiles.
var bandwidthPercentiles = [2]string{"50", "90"}

func init() {
	register("bandwidth", newBandwidthCollector)
}

type bandwidthCollector struct {
	logger *slog.Logger
	deps   Deps
	iperf3 string

	reloadMu sync.Mutex // serialises a reload's commit and Close
	engineMu sync.Mutex // serialises opening and closing the engine
	engine   atomic.Pointer[pinger.Engine]

	mu         sync.Mutex
	targets    []*bandwidthTarget
	labelNames []string
	scale      bufferbloat.Scale
	descs      bandwidthDescs
}

type bandwidthTarget struct {
	cfg    config.BandwidthTarget
	labels []string // values for the collector's labelNames

	// Owned by the target's loop while it runs, by a reload's commit otherwise.
	next   time.Time
	cancel context.CancelFunc
	done   chan struct{}

	mu   sync.Mutex
	idle bufferbloat.Summary // the latest idle measurement with enough replies
	dirs map[string]*bandwidthDirection
}

type bandwidthDirection struct {
	runs, busyRetries uint64
	failures          map[string]uint64
	lastRun           time.Time
	lastOK            bool
	lastSuccess       time.Time
	result            *bandwidthResult // of the last successful test
}

// bandwidthResult is one successful iperf3 test and the pings around it.
type bandwidthResult struct {
	prober.Iperf3Result
	idle, loaded bufferbloat.Summary
}

func newBandwidthCollector(logger *slog.Logger, cfg *config.Config, deps Deps) (collector.Collector, error) {
	return newBandwidth(logger, cfg, deps, *bandwidthIperf3Path)
}

func newBandwidth(logger *slog.Logger, cfg *config.Config, deps Deps, iperf3 string) (*bandwidthCollector, error) {
	c := &bandwidthCollector{logger: logger, deps: deps, iperf3: iperf3}
	if err := collector.Apply(c, cfg); err != nil {
		return nil, err
	}
	return c, nil
}

// Prepare builds the new target list. On commit, targets whose settings and
// labels are unchanged keep running undisturbed (a test in progress goes
// on); changed ones keep their counters and schedule but restart.
func (c *bandwidthCollector) Prepare(cfg *config.Config) (func(), error) {
	ls := newLabelSet(cfg.Global.Labels, ownLabels(cfg.Bandwidth.Targets, func(t config.BandwidthTarget) map[string]string { return t.Labels })...)
	var next []*bandwidthTarget
	for _, tc := range cfg.Bandwidth.Targets {
		next = append(next, &bandwidthTarget{cfg: tc, labels: ls.values(tc.Labels), dirs: map[string]*bandwidthDirection{}})
	}
	scale := cfg.Bandwidth.Scale()
	return func() { c.commit(ls.names, next, scale) }, nil
}

func (c *bandwidthCollector) commit(labelNames []string, next []*bandwidthTarget, scale bufferbloat.Scale) {
	c.reloadMu.Lock()
	defer c.reloadMu.Unlock()
	c.mu.Lock()
	running := c.targets
	labelsChanged := !slices.Equal(labelNames, c.labelNames)
	c.mu.Unlock()

	targets, gone := reconcile(running, next, func(t *bandwidthTarget) string { return t.cfg.Name }, func(t, o *bandwidthTarget) *bandwidthTarget {
		sameLabels := !labelsChanged && slices.Equal(o.labels, t.labels)
		if sameLabels && reflect.DeepEqual(o.cfg, t.cfg) {
			return o
		}
		c.stopLoop(o) // it owns o.next while it runs
		if sameLabels {
			t.dirs, t.idle = o.dirs, o.idle
		}
		if o.cfg.Interval == t.cfg.Interval && *o.cfg.Splay == *t.cfg.Splay {
			t.next = o.next
		}
		return t
	})
	for _, o := range gone {
		c.stopLoop(o)
	}
	var start []*bandwidthTarget
	for _, t := range targets {
		if slices.Contains(running, t) {
			continue
		}
		if t.next.IsZero() {
			t.next = time.Now()
			if s := int64(*t.cfg.Splay); s > 0 {
				t.next = t.next.Add(time.Duration(rand.Int64N(s)))
			}
		}
		for _, d := range t.cfg.Directions {
			if t.dirs[d] == nil {
				t.dirs[d] = &bandwidthDirection{failures: map[string]uint64{}}
			}
		}
		start = append(start, t)
	}

	c.mu.Lock()
	c.targets, c.labelNames = targets, labelNames
	c.scale = scale
	c.descs = newBandwidthDescs(labelNames)
	c.mu.Unlock()

	if len(targets) == 0 {
		c.closeEngine()
		return
	}
	c.ensureEngine()
	for _, t := range start {
		ctx, cancel := context.WithCancel(context.Background())
		t.cancel, t.done = cancel, make(chan struct{})
		go c.loop(ctx, t)
	}
}

// Close stops every run (killing a running iperf3) and the ping engine.
func (c *bandwidthCollector) Close() error {
	c.reloadMu.Lock()
	defer c.reloadMu.Unlock()
	c.mu.Lock()
	targets := c.targets
	c.targets = nil
	c.mu.Unlock()
	for _, t := range targets {
		c.stopLoop(t)
	}
	c.closeEngine()
	return nil
}

func (c *bandwidthCollector) stopLoop(t *bandwidthTarget) {
	if t.cancel != nil {
		t.cancel()
		<-t.done
		t.cancel = nil
	}
}

// ensureEngine opens the pinger for idle and loaded RTT. Without one the
// collector still measures throughput; RTT figures are then missing.
func (c *bandwidthCollector) ensureEngine() *pinger.Engine {
	if e := c.engine.Load(); e != nil {
		return e
	}
	c.engineMu.Lock()
	defer c.engineMu.Unlock()
	if e := c.engine.Load(); e != nil {
		return e
	}
	var kind pinger.SocketKind
	if s := *pingSocket; s != "auto" {
		kind = pinger.SocketKind(s)
	}
	e, err := pinger.New(c.logger, pinger.Options{Socket: kind})
	if err != nil {
		c.logger.Error("no ICMP socket for ping under load; bandwidth runs go on without RTT figures", "err", err)
		if e != nil {
			e.Close()
		}
		return nil
	}
	c.engine.Store(e)
	return e
}

func (c *bandwidthCollector) closeEngine() {
	c.engineMu.Lock()
	defer c.engineMu.Unlock()
	if e := c.engine.Swap(nil); e != nil {
		e.Close()
	}
}

// loop runs a target on its schedule. A run that overruns the interval
// delays the next one rather than overlapping it.
func (c *bandwidthCollector) loop(ctx context.Context, t *bandwidthTarget) {
	defer close(t.done)
	timer := time.NewTimer(time.Until(t.next))
	defer timer.Stop()
	iv := time.Duration(t.cfg.Interval)
	for {
		select {
		case <-timer.C:
		case <-ctx.Done():
			return
		}
		select {
		case bandwidthSlot <- struct{}{}:
		case <-ctx.Done():
			return
		}
		c.run(ctx, t)
		<-bandwidthSlot
		now := time.Now()
		t.next = t.next.Add(iv)
		if !t.next.After(now) {
			t.next = now.Add(iv)
		}
		timer.Reset(time.Until(t.next))
	}
}

// run measures idle RTT once, then each direction under load.
func (c *bandwidthCollector) run(ctx context.Context, t *bandwidthTarget) {
	cfg := &t.cfg
	eng := c.ensureEngine()
	var ref netip.Addr
	if eng != nil {
		var err error
		if ref, err = c.resolveRef(ctx, cfg); err != nil {
			c.logger.Warn("cannot resolve the ping reference; this run has no RTT figures", "target", cfg.Name, "ping_host", cfg.PingHost, "err", err)
		}
	}
	var idle bufferbloat.Summary
	if ref.IsValid() {
		now := time.Now()
		s := bufferbloat.NewSampler(now, now.Add(time.Duration(cfg.IdleDuration)), time.Duration(cfg.PingInterval), time.Duration(cfg.PingTimeout))
		h := eng.Add(ref, c.pingSettings(cfg), s)
		sleep(ctx, time.Duration(cfg.IdleDuration))
		s.Drain(ctx)
		eng.Remove(h)
		idle = s.Summary()
		if ctx.Err() != nil {
			return
		}
		if idle.OK {
			t.mu.Lock()
			t.idle = idle
			t.mu.Unlock()
		} else {
			c.logger.Warn("too few idle ping replies; this run has no latency increase", "target", cfg.Name, "ping_host", ref, "sent", idle.Sent, "lost", idle.Lost)
		}
	}
	for _, dir := range cfg.Directions {
		res, reason, busy, msg := c.measure(ctx, t, eng, ref, dir)
		if ctx.Err() != nil {
			return // stopped by a reload or Close: not a failed run
		}
		if res != nil {
			res.idle = idle
		}
		now := time.Now()
		t.mu.Lock()
		d := t.dirs[dir]
		d.runs++
		d.lastRun, d.lastOK = now, res != nil
		if res != nil {
			d.lastSuccess, d.result = now, res
		} else {
			d.failures[reason]++
		}
		t.mu.Unlock()
		if res == nil {
			c.logger.Warn("bandwidth test failed", "target", cfg.Name, "direction", dir, "reason", reason, "busy_retries", busy, "err", msg)
			continue
		}
		args := []any{"target", cfg.Name, "direction", dir, "mbit_per_second", res.BytesPerSecond * 8 / 1e6, "retransmits", res.Retransmits}
		if idle.OK && res.loaded.OK {
			args = append(args, "idle_rtt_median", idle.Q[0], "loaded_rtt_median", res.loaded.Q[0], "increase_median", res.loaded.Q[0]-idle.Q[0])
		}
		c.logger.Info("bandwidth test done", args...)
	}
}

func (c *bandwidthCollector) pingSettings(cfg *config.BandwidthTarget) pinger.Settings {
	return pinger.Settings{Interval: time.Duration(cfg.PingInterval), Timeout: time.Duration(cfg.PingTimeout), Size: 56}
}

func (c *bandwidthCollector) resolveRef(ctx context.Context, cfg *config.BandwidthTarget) (netip.Addr, error) {
	if a, err := netip.ParseAddr(cfg.PingHost); err == nil {
		return a.Unmap(), nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return lookupFamily(ctx, c.deps.Resolver, cfg.PingHost, cfg.Family)
}

// measure runs one iperf3 test, retrying while the server is busy, and pings
// the reference while it runs. It returns the result, or why it failed.
func (c *bandwidthCollector) measure(ctx context.Context, t *bandwidthTarget, eng *pinger.Engine, ref netip.Addr, dir string) (res *bandwidthResult, reason string, busy int, msg string) {
	cfg := &t.cfg
	backoff := time.Duration(cfg.BusyBackoff)
	for {
		begin := time.Now()
		var s *bufferbloat.Sampler
		var h *pinger.Target
		if ref.IsValid() {
			// Pings of the warm-up are left out: slow start has not filled the queue yet.
			s = bufferbloat.NewSampler(begin.Add(time.Duration(*cfg.Warmup)), time.Time{}, time.Duration(cfg.PingInterval), time.Duration(cfg.PingTimeout))
			h = eng.Add(ref, c.pingSettings(cfg), s)
		}
		actx, cancel := context.WithTimeout(ctx, time.Duration(cfg.Timeout))
		out, runErr := prober.RunIperf3(actx, c.iperf3, cfg, dir)
		timedOut := errors.Is(actx.Err(), context.DeadlineExceeded)
		cancel()
		var r *bandwidthResult
		switch {
		case ctx.Err() != nil:
			reason, msg = prober.Iperf3Other, "stopped"
		case timedOut:
			reason, msg = prober.Iperf3Timeout, fmt.Sprintf("iperf3 killed after %s", time.Duration(cfg.Timeout))
		default:
			var res *prober.Iperf3Result
			if res, reason, msg = prober.ParseIperf3(out, runErr); res != nil {
				r = &bandwidthResult{Iperf3Result: *res}
			}
		}
		if s != nil {
			s.End(time.Now())
			if r != nil {
				s.Drain(ctx)
				r.loaded = s.Summary()
			}
			eng.Remove(h)
		}
		if r != nil {
			return r, "", busy, ""
		}
		if reason != prober.Iperf3ServerBusy || busy >= *cfg.BusyRetries || ctx.Err() != nil {
			return nil, reason, busy, msg
		}
		busy++
		t.mu.Lock()
		t.dirs[dir].busyRetries++ // counted now, so a long backoff shows while it lasts
		t.mu.Unlock()
		c.logger.Info("iperf3 server busy; retrying", "target", cfg.Name, "direction", dir, "retry", busy, "in", backoff)
		if !sleep(ctx, backoff) {
			return nil, prober.Iperf3Other, busy, "stopped"
		}
		backoff *= 2
	}
}

type bandwidthDescs struct {
	bytesPerSecond, retransmits, idleRTT, loadedRTT, increase, idleLoss, loadedLoss *prometheus.Desc
	grade, runs, failures, busyRetries, lastRun, lastOK, lastSuccess, info          *prometheus.Desc
}

func newBandwidthDescs(custom []string) bandwidthDescs {
	name := func(n string) string { return prometheus.BuildFQName(collector.Namespace, "bandwidth", n) }
	lbl := func(extra ...string) []string {
		return append(append([]string{"target"}, extra...), custom...)
	}
	return bandwidthDescs{
		bytesPerSecond: prometheus.NewDesc(name("bytes_per_second"), "Throughput the receiver saw in the last successful iperf3 test.", lbl("direction"), nil),
		retransmits:    prometheus.NewDesc(name("retransmits"), "TCP segments the sender retransmitted during the last successful iperf3 test.", lbl("direction"), nil),
		idleRTT:        prometheus.NewDesc(name("idle_rtt_seconds"), "RTT to the ping reference before the load, at the run's ping rate, latest run with enough replies.", lbl("percentile"), nil),
		loadedRTT:      prometheus.NewDesc(name("loaded_rtt_seconds"), "RTT to the ping reference while iperf3 saturated the link (after the warm-up), last successful test.", lbl("direction", "percentile"), nil),
		increase:       prometheus.NewDesc(name("latency_increase_seconds"), "Loaded minus idle RTT of the same run, per percentile: the bufferbloat figure.", lbl("direction", "percentile"), nil),
		idleLoss:       prometheus.NewDesc(name("idle_ping_loss_ratio"), "Share of idle pings lost (0-1), latest run with enough replies.", lbl(), nil),
		loadedLoss:     prometheus.NewDesc(name("loaded_ping_loss_ratio"), "Share of pings under load lost (0-1): a shallow buffer drops rather than delays.", lbl("direction"), nil),
		grade:          prometheus.NewDesc(name("bufferbloat_grade_info"), "Bufferbloat grade of the median latency increase of the worst direction (configurable bands, DSLReports by default).", lbl("grade"), nil),
		runs:           prometheus.NewDesc(name("runs_total"), "iperf3 tests attempted (a retried busy server counts once).", lbl("direction"), nil),
		failures:       prometheus.NewDesc(name("failures_total"), "iperf3 tests that failed, by reason: server_busy (after all retries), unreachable, timeout, parse, other.", lbl("direction", "reason"), nil),
		busyRetries:    prometheus.NewDesc(name("server_busy_retries_total"), "Times the iperf3 server was busy and the test was retried after a backoff.", lbl("direction"), nil),
		lastRun:        prometheus.NewDesc(name("last_run_timestamp_seconds"), "When the last test of this direction ended, successful or not.", lbl("direction"), nil),
		lastOK:         prometheus.NewDesc(name("last_run_success"), "1 if the last test of this direction succeeded.", lbl("direction"), nil),
		lastSuccess:    prometheus.NewDesc(name("last_success_timestamp_seconds"), "When the last successful test of this direction ended: the age of the figures above.", lbl("direction"), nil),
		info:           prometheus.NewDesc(name("target_info"), "A bandwidth target's iperf3 server and ping reference.", lbl("server", "ping_host"), nil),
	}
}

// Update reports the last completed runs; it never starts one.
func (c *bandwidthCollector) Update(ch chan<- prometheus.Metric) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.targets) == 0 {
		return collector.ErrNoData
	}
	d, out := c.descs, emitter(ch)
	gauge, counter := out.gauge, out.counter
	for _, t := range c.targets {
		with := func(extra ...string) []string {
			return append(append([]string{t.cfg.Name}, extra...), t.labels...)
		}
		gauge(d.info, 1, with(t.cfg.Server, t.cfg.PingHost)...)
		t.mu.Lock()
		if t.idle.OK {
			for i, p := range bandwidthPercentiles {
				gauge(d.idleRTT, t.idle.Q[i].Seconds(), with(p)...)
			}
			gauge(d.idleLoss, float64(t.idle.Lost)/float64(t.idle.Sent), with()...)
		}
		var worst []time.Duration
		for _, dir := range t.cfg.Directions {
			s := t.dirs[dir]
			counter(d.runs, s.runs, with(dir)...)
			counter(d.busyRetries, s.busyRetries, with(dir)...)
			for _, r := range prober.Iperf3Reasons {
				counter(d.failures, s.failures[r], with(dir, r)...)
			}
			if !s.lastRun.IsZero() {
				gauge(d.lastRun, float64(s.lastRun.UnixNano())/1e9, with(dir)...)
				gauge(d.lastOK, boolValue(s.lastOK), with(dir)...)
			}
			r := s.result
			if r == nil {
				continue
			}
			gauge(d.lastSuccess, float64(s.lastSuccess.UnixNano())/1e9, with(dir)...)
			gauge(d.bytesPerSecond, r.BytesPerSecond, with(dir)...)
			if r.Retransmits >= 0 {
				gauge(d.retransmits, r.Retransmits, with(dir)...)
			}
			if r.loaded.LossKnown {
				gauge(d.loadedLoss, float64(r.loaded.Lost)/float64(r.loaded.Sent), with(dir)...)
			}
			if !r.loaded.OK {
				continue
			}
			for i, p := range bandwidthPercentiles {
				gauge(d.loadedRTT, r.loaded.Q[i].Seconds(), with(dir, p)...)
				if r.idle.OK {
					gauge(d.increase, (r.loaded.Q[i] - r.idle.Q[i]).Seconds(), with(dir, p)...)
				}
			}
			if r.idle.OK {
				worst = append(worst, r.loaded.Q[0]-r.idle.Q[0])
			}
		}
		t.mu.Unlock()
		if w, ok := bufferbloat.Worst(worst...); ok {
			gauge(d.grade, 1, with(c.scale.Grade(w))...)
		}
	}
	return nil
}
