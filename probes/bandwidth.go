package probes

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"os/exec"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/smokemon/smokemon/collector"
	"github.com/smokemon/smokemon/internal/bufferbloat"
	"github.com/smokemon/smokemon/internal/config"
	"github.com/smokemon/smokemon/internal/pinger"
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

// Failure reasons, all exported from the first scrape so rates work at once.
const (
	bwServerBusy  = "server_busy"
	bwUnreachable = "unreachable"
	bwTimeout     = "timeout"
	bwParse       = "parse"
	bwOther       = "other"
)

var bandwidthReasons = []string{bwServerBusy, bwUnreachable, bwTimeout, bwParse, bwOther}

// minRTTSamples is the fewest replies a median and p90 are computed from.
const minRTTSamples = 5

// RTT figures are exported with a percentile label, not quantile: promtool
// reserves quantile for summaries, and these are one run's figures, not a
// summary's running count and sum.
var bandwidthQuantiles = []struct {
	q     float64
	label string
}{{0.5, "50"}, {0.9, "90"}}

func init() {
	register("bandwidth", newBandwidthCollector)
}

type bandwidthCollector struct {
	logger *slog.Logger
	deps   Deps
	iperf3 string

	reloadMu sync.Mutex // serialises Reload and Close
	engineMu sync.Mutex // serialises opening and closing the engine
	engine   atomic.Pointer[pinger.Engine]

	mu         sync.Mutex
	targets    []*bwTarget
	labelNames []string
	scale      bufferbloat.Scale
	descs      bwDescs
}

type bwTarget struct {
	cfg    config.BandwidthTarget
	labels []string // values for the collector's labelNames

	// Owned by the target's loop while it runs, by Reload otherwise.
	next   time.Time
	cancel context.CancelFunc
	done   chan struct{}

	mu   sync.Mutex
	idle rttSummary // the latest idle measurement with enough replies
	dirs map[string]*bwDirection
}

type bwDirection struct {
	runs, busyRetries uint64
	failures          map[string]uint64
	lastRun           time.Time
	lastOK            bool
	lastSuccess       time.Time
	result            *bwResult // of the last successful test
}

// bwResult is one successful iperf3 test and the pings around it.
type bwResult struct {
	bytesPerSecond float64
	retransmits    float64 // -1 when iperf3 did not report them
	idle, loaded   rttSummary
}

type rttSummary struct {
	ok        bool // enough replies for quantiles
	q         [2]time.Duration
	sent      int // probes resolved (answered or lost)
	lost      int
	lossKnown bool
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
	var next []*bwTarget
	for _, tc := range cfg.Bandwidth.Targets {
		next = append(next, &bwTarget{cfg: tc, labels: ls.values(tc.Labels), dirs: map[string]*bwDirection{}})
	}
	scale := cfg.Bandwidth.Scale()
	return func() { c.commit(ls.names, next, scale) }, nil
}

func (c *bandwidthCollector) commit(labelNames []string, next []*bwTarget, scale bufferbloat.Scale) {
	c.reloadMu.Lock()
	defer c.reloadMu.Unlock()
	c.mu.Lock()
	running := c.targets
	labelsChanged := !slices.Equal(labelNames, c.labelNames)
	c.mu.Unlock()

	targets, gone := reconcile(running, next, func(t *bwTarget) string { return t.cfg.Name }, func(t, o *bwTarget) *bwTarget {
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
	var start []*bwTarget
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
				t.dirs[d] = &bwDirection{failures: map[string]uint64{}}
			}
		}
		start = append(start, t)
	}

	c.mu.Lock()
	c.targets, c.labelNames = targets, labelNames
	c.scale = scale
	c.descs = newBwDescs(labelNames)
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

func (c *bandwidthCollector) stopLoop(t *bwTarget) {
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
func (c *bandwidthCollector) loop(ctx context.Context, t *bwTarget) {
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
func (c *bandwidthCollector) run(ctx context.Context, t *bwTarget) {
	cfg := &t.cfg
	eng := c.ensureEngine()
	var ref netip.Addr
	if eng != nil {
		var err error
		if ref, err = c.resolveRef(ctx, cfg); err != nil {
			c.logger.Warn("cannot resolve the ping reference; this run has no RTT figures", "target", cfg.Name, "ping_host", cfg.PingHost, "err", err)
		}
	}
	var idle rttSummary
	if ref.IsValid() {
		now := time.Now()
		s := newRTTSampler(now, now.Add(time.Duration(cfg.IdleDuration)), time.Duration(cfg.PingInterval), time.Duration(cfg.PingTimeout))
		h := eng.Add(ref, c.pingSettings(cfg), s)
		sleep(ctx, time.Duration(cfg.IdleDuration))
		s.drain(ctx)
		eng.Remove(h)
		idle = s.summary()
		if ctx.Err() != nil {
			return
		}
		if idle.ok {
			t.mu.Lock()
			t.idle = idle
			t.mu.Unlock()
		} else {
			c.logger.Warn("too few idle ping replies; this run has no latency increase", "target", cfg.Name, "ping_host", ref, "sent", idle.sent, "lost", idle.lost)
		}
	}
	for _, dir := range cfg.Directions {
		res, reason, busy, msg := c.measure(ctx, t, eng, ref, dir)
		if ctx.Err() != nil {
			return // stopped by Reload or Close: not a failed run
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
		args := []any{"target", cfg.Name, "direction", dir, "mbit_per_second", res.bytesPerSecond * 8 / 1e6, "retransmits", res.retransmits}
		if idle.ok && res.loaded.ok {
			args = append(args, "idle_rtt_median", idle.q[0], "loaded_rtt_median", res.loaded.q[0], "increase_median", res.loaded.q[0]-idle.q[0])
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
func (c *bandwidthCollector) measure(ctx context.Context, t *bwTarget, eng *pinger.Engine, ref netip.Addr, dir string) (res *bwResult, reason string, busy int, msg string) {
	cfg := &t.cfg
	backoff := time.Duration(cfg.BusyBackoff)
	for {
		begin := time.Now()
		var s *rttSampler
		var h *pinger.Target
		if ref.IsValid() {
			// Pings of the warm-up are left out: slow start has not filled the queue yet.
			s = newRTTSampler(begin.Add(time.Duration(*cfg.Warmup)), time.Time{}, time.Duration(cfg.PingInterval), time.Duration(cfg.PingTimeout))
			h = eng.Add(ref, c.pingSettings(cfg), s)
		}
		actx, cancel := context.WithTimeout(ctx, time.Duration(cfg.Timeout))
		out, runErr := c.runIperf3(actx, cfg, dir)
		timedOut := errors.Is(actx.Err(), context.DeadlineExceeded)
		cancel()
		var r *bwResult
		switch {
		case ctx.Err() != nil:
			reason, msg = bwOther, "stopped"
		case timedOut:
			reason, msg = bwTimeout, fmt.Sprintf("iperf3 killed after %s", time.Duration(cfg.Timeout))
		default:
			r, reason, msg = parseIperf3(out, runErr)
		}
		if s != nil {
			s.end(time.Now())
			if r != nil {
				s.drain(ctx)
				r.loaded = s.summary()
			}
			eng.Remove(h)
		}
		if r != nil {
			return r, "", busy, ""
		}
		if reason != bwServerBusy || busy >= *cfg.BusyRetries || ctx.Err() != nil {
			return nil, reason, busy, msg
		}
		busy++
		t.mu.Lock()
		t.dirs[dir].busyRetries++ // counted now, so a long backoff shows while it lasts
		t.mu.Unlock()
		c.logger.Info("iperf3 server busy; retrying", "target", cfg.Name, "direction", dir, "retry", busy, "in", backoff)
		if !sleep(ctx, backoff) {
			return nil, bwOther, busy, "stopped"
		}
		backoff *= 2
	}
}

// runIperf3 runs one client test. The process gets its own group, killed as
// a whole when ctx ends, and dies with the exporter (Pdeathsig).
func (c *bandwidthCollector) runIperf3(ctx context.Context, cfg *config.BandwidthTarget, dir string) ([]byte, error) {
	host, port := cfg.HostPort()
	args := []string{"-c", host, "-p", strconv.Itoa(port), "-J",
		"-t", strconv.Itoa(int(time.Duration(cfg.Duration) / time.Second)),
		"-P", strconv.Itoa(cfg.Parallel),
		"--connect-timeout", strconv.FormatInt(time.Duration(cfg.ConnectTimeout).Milliseconds(), 10),
	}
	if dir == config.DirectionDownload {
		args = append(args, "-R")
	}
	if cfg.Congestion != "" {
		args = append(args, "-C", cfg.Congestion)
	}
	switch cfg.Family {
	case config.FamilyIP4:
		args = append(args, "-4")
	case config.FamilyIP6:
		args = append(args, "-6")
	}
	cmd := exec.CommandContext(ctx, c.iperf3, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 2 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil && stderr.Len() > 0 {
		err = fmt.Errorf("%w: %s", err, bytes.TrimSpace(stderr.Bytes()))
	}
	return stdout.Bytes(), err
}

type iperf3Sum struct {
	Seconds       float64  `json:"seconds"`
	Bytes         float64  `json:"bytes"`
	BitsPerSecond float64  `json:"bits_per_second"`
	Retransmits   *float64 `json:"retransmits"`
}

type iperf3Report struct {
	End struct {
		SumSent     *iperf3Sum `json:"sum_sent"`
		SumReceived *iperf3Sum `json:"sum_received"`
	} `json:"end"`
	Error string `json:"error"`
}

// parseIperf3 reads `iperf3 -J` output. iperf3 3.12 exits 0 even when the
// test failed, so the JSON error field decides, not the exit status.
// Throughput is the receiver's figure: the sender's counts bytes still queued
// when the test ended.
func parseIperf3(out []byte, runErr error) (*bwResult, string, string) {
	var rep iperf3Report
	if err := json.Unmarshal(out, &rep); err != nil {
		if runErr != nil {
			if errors.Is(runErr, exec.ErrNotFound) || errors.Is(runErr, syscall.ENOENT) || errors.Is(runErr, syscall.EACCES) {
				return nil, bwOther, fmt.Sprintf("cannot run iperf3 (set --collector.bandwidth.iperf3-path): %v", runErr)
			}
			return nil, bwOther, runErr.Error()
		}
		return nil, bwParse, fmt.Sprintf("iperf3 output is not JSON: %v", err)
	}
	if rep.Error != "" {
		return nil, classifyIperf3Error(rep.Error), rep.Error
	}
	r := rep.End.SumReceived
	if r == nil || r.Seconds <= 0 || r.BitsPerSecond < 0 {
		return nil, bwParse, "iperf3 JSON has no end.sum_received"
	}
	res := &bwResult{bytesPerSecond: r.BitsPerSecond / 8, retransmits: -1}
	if s := rep.End.SumSent; s != nil && s.Retransmits != nil {
		res.retransmits = *s.Retransmits
	}
	return res, "", ""
}

func classifyIperf3Error(msg string) string {
	m := strings.ToLower(msg)
	switch {
	case strings.Contains(m, "busy"):
		return bwServerBusy
	case strings.Contains(m, "timed out"), strings.Contains(m, "timeout"):
		return bwTimeout
	case strings.Contains(m, "unable to connect"), strings.Contains(m, "refused"),
		strings.Contains(m, "unreachable"), strings.Contains(m, "no route"),
		strings.Contains(m, "resolve"), strings.Contains(m, "name or service"):
		return bwUnreachable
	}
	return bwOther
}

// rttSampler is the pinger Handler of one phase. It keeps the probes sent
// within [from, to]. The handler is not told which probe an event belongs to,
// so events are matched by time: a reply was sent its RTT ago, a loss its
// timeout ago, and probes are an interval apart, so the nearest pending send
// within half an interval is the one.
type rttSampler struct {
	timeout, interval time.Duration

	mu       sync.Mutex
	from, to time.Time // zero to: still open
	pending  []time.Time
	errNext  bool // SendError: the Lost that follows is the latest probe's
	lost     int
	rtts     []time.Duration
}

func newRTTSampler(from, to time.Time, interval, timeout time.Duration) *rttSampler {
	return &rttSampler{from: from, to: to, interval: interval, timeout: timeout}
}

func (s *rttSampler) Sent() {
	now := time.Now()
	s.mu.Lock()
	if !now.Before(s.from) && (s.to.IsZero() || !now.After(s.to)) {
		s.pending = append(s.pending, now)
	}
	s.mu.Unlock()
}

// take removes the pending probe sent nearest to at, if one is close enough.
func (s *rttSampler) take(at time.Time) bool {
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

func (s *rttSampler) Reply(rtt time.Duration, _ int) {
	now := time.Now()
	s.mu.Lock()
	if s.take(now.Add(-rtt)) {
		s.rtts = append(s.rtts, rtt)
	}
	s.mu.Unlock()
}

func (s *rttSampler) Lost() {
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

func (s *rttSampler) SendError(string) {
	s.mu.Lock()
	s.errNext = true
	s.mu.Unlock()
}

func (s *rttSampler) Duplicate() {}

func (s *rttSampler) end(at time.Time) {
	s.mu.Lock()
	s.to = at
	s.mu.Unlock()
}

// drain waits until every probe of the window is answered or lost: the last
// pings under load see the fullest queue, so they must not be cut off.
func (s *rttSampler) drain(ctx context.Context) {
	s.mu.Lock()
	deadline := s.to.Add(s.timeout + 100*time.Millisecond)
	s.mu.Unlock()
	step := min(max(s.interval/2, 5*time.Millisecond), 50*time.Millisecond)
	for time.Now().Before(deadline) {
		s.mu.Lock()
		settled := len(s.pending) == 0
		s.mu.Unlock()
		if settled || !sleep(ctx, step) {
			return
		}
	}
}

func (s *rttSampler) summary() rttSummary {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.rtts) + s.lost
	r := rttSummary{sent: n, lost: s.lost, lossKnown: n > 0}
	if len(s.rtts) < minRTTSamples {
		return r
	}
	v := slices.Clone(s.rtts)
	slices.Sort(v)
	r.ok = true
	for i, q := range bandwidthQuantiles {
		r.q[i] = bwQuantile(v, q.q)
	}
	return r
}

// bwQuantile interpolates linearly between the order statistics of sorted v.
func bwQuantile(v []time.Duration, q float64) time.Duration {
	pos := q * float64(len(v)-1)
	i := int(pos)
	if i+1 >= len(v) {
		return v[len(v)-1]
	}
	return v[i] + time.Duration((pos-float64(i))*float64(v[i+1]-v[i]))
}

type bwDescs struct {
	bytesPerSecond, retransmits, idleRTT, loadedRTT, increase, idleLoss, loadedLoss *prometheus.Desc
	grade, runs, failures, busyRetries, lastRun, lastOK, lastSuccess, info          *prometheus.Desc
}

func newBwDescs(custom []string) bwDescs {
	name := func(n string) string { return prometheus.BuildFQName(collector.Namespace, "bandwidth", n) }
	lbl := func(extra ...string) []string {
		return append(append([]string{"target"}, extra...), custom...)
	}
	return bwDescs{
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
	d := c.descs
	gauge := func(desc *prometheus.Desc, v float64, lv ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, v, lv...)
	}
	counter := func(desc *prometheus.Desc, v uint64, lv ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.CounterValue, float64(v), lv...)
	}
	for _, t := range c.targets {
		with := func(extra ...string) []string {
			return append(append([]string{t.cfg.Name}, extra...), t.labels...)
		}
		gauge(d.info, 1, with(t.cfg.Server, t.cfg.PingHost)...)
		t.mu.Lock()
		if t.idle.ok {
			for i, q := range bandwidthQuantiles {
				gauge(d.idleRTT, t.idle.q[i].Seconds(), with(q.label)...)
			}
			gauge(d.idleLoss, float64(t.idle.lost)/float64(t.idle.sent), with()...)
		}
		var worst []time.Duration
		for _, dir := range t.cfg.Directions {
			s := t.dirs[dir]
			counter(d.runs, s.runs, with(dir)...)
			counter(d.busyRetries, s.busyRetries, with(dir)...)
			for _, r := range bandwidthReasons {
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
			gauge(d.bytesPerSecond, r.bytesPerSecond, with(dir)...)
			if r.retransmits >= 0 {
				gauge(d.retransmits, r.retransmits, with(dir)...)
			}
			if r.loaded.lossKnown {
				gauge(d.loadedLoss, float64(r.loaded.lost)/float64(r.loaded.sent), with(dir)...)
			}
			if !r.loaded.ok {
				continue
			}
			for i, q := range bandwidthQuantiles {
				gauge(d.loadedRTT, r.loaded.q[i].Seconds(), with(dir, q.label)...)
				if r.idle.ok {
					gauge(d.increase, (r.loaded.q[i] - r.idle.q[i]).Seconds(), with(dir, q.label)...)
				}
			}
			if r.idle.ok {
				worst = append(worst, r.loaded.q[0]-r.idle.q[0])
			}
		}
		t.mu.Unlock()
		if w, ok := bufferbloat.Worst(worst...); ok {
			gauge(d.grade, 1, with(c.scale.Grade(w))...)
		}
	}
	return nil
}
