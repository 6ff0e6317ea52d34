package probes

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/smokemon/smokemon/collector"
	"github.com/smokemon/smokemon/internal/config"
	"github.com/smokemon/smokemon/internal/prober"
)

// The tcp collector times the TCP handshake to each host:port on its own
// schedule. A host name is looked up first; its lookup is not part of the
// connect time, and a failed lookup is a failure of its own ("dns").

func init() {
	register("tcp", newTCPCollector)
}

var tcpReasons = []string{"refused", "timeout", "unreachable", "dns", "other"}

type tcpCollector struct {
	logger       *slog.Logger
	deps         Deps
	svcScheduler // runs the probes; its Close stops them

	mu         sync.Mutex
	labelNames []string
	targets    []*tcpTarget
	descs      tcpDescs
}

type tcpTarget struct {
	cfg config.TCPTarget
	series
	stats *tcpStats
}

type tcpStats struct {
	mu sync.Mutex
	probeStats
	ip string
}

type tcpDescs struct {
	probe probeDescs
	info  *prometheus.Desc
}

func newTCPCollector(logger *slog.Logger, cfg *config.Config, deps Deps) (collector.Collector, error) {
	return started(&tcpCollector{logger: logger, deps: deps}, cfg)
}

// Prepare builds the new target list; on commit, unchanged targets keep
// their series.
func (c *tcpCollector) Prepare(cfg *config.Config) (func(), error) {
	ls := newLabelSet(cfg.Global.Labels, ownLabels(cfg.TCP.Targets, func(t config.TCPTarget) map[string]string { return t.Labels })...)
	var next []*tcpTarget
	for _, tc := range cfg.TCP.Targets {
		next = append(next, &tcpTarget{cfg: tc, series: ls.series(tc.Name, tc.Labels)})
	}
	return func() {
		c.mu.Lock()
		targets, _ := reconcile(c.targets, next, (*tcpTarget).key, func(n, o *tcpTarget) *tcpTarget { n.stats = o.stats; return n })
		var jobs []svcJob
		for _, t := range targets {
			if t.stats == nil {
				t.stats = &tcpStats{probeStats: newProbeStats(newSvcHistogram("tcp", "connect_duration_seconds",
					"Time to complete the TCP handshake (SYN to SYN-ACK as the client sees it). Failed connects are not observed.",
					labelMap(ls.names, t.labels, "target", t.cfg.Name)))}
			}
			jobs = append(jobs, svcJob{key: t.key(), spec: t.cfg, interval: t.cfg.IntervalD(), timeout: t.cfg.TimeoutD(), run: c.probeFunc(t)})
		}
		c.targets, c.labelNames, c.descs = targets, ls.names, newTCPDescs(ls.names)
		c.mu.Unlock()
		c.apply(jobs)
	}, nil
}

func (c *tcpCollector) probeFunc(t *tcpTarget) func(ctx context.Context) func() {
	cfg := t.cfg
	return func(ctx context.Context) func() {
		host, port, _ := net.SplitHostPort(cfg.Address)
		ip, err := netip.ParseAddr(host)
		if err != nil {
			if ip, err = c.deps.Net.LookupHost(ctx, host, cfg.Family, cfg.Resolver); err != nil {
				reason := "dns"
				if errors.Is(ctx.Err(), context.DeadlineExceeded) {
					reason = "timeout"
				}
				return func() { c.record(t, reason, 0, netip.Addr{}, err) }
			}
		}
		conn, d, err := c.deps.Net.Dial(ctx, "tcp", net.JoinHostPort(ip.String(), port))
		reason := ""
		if err != nil {
			reason = prober.NetReason(ctx, err)
		} else {
			conn.Close()
		}
		return func() { c.record(t, reason, d.Seconds(), ip, err) }
	}
}

func (c *tcpCollector) record(t *tcpTarget, reason string, seconds float64, ip netip.Addr, err error) {
	s := t.stats
	if reason == "" {
		s.hist.Observe(seconds)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if ip.IsValid() {
		s.ip = ip.String()
	}
	wasOK := s.record(reason)
	if reason != "" && wasOK {
		c.logger.Warn("tcp probe failed", "target", t.cfg.Name, "reason", reason, "err", err)
	}
}

// Update reports the latest results; it never connects.
func (c *tcpCollector) Update(ch chan<- prometheus.Metric) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.targets) == 0 {
		return collector.ErrNoData
	}
	d := c.descs
	for _, t := range c.targets {
		s := t.stats
		lv := append([]string{t.cfg.Name}, t.labels...)
		s.mu.Lock()
		s.collect(ch, d.probe, lv)
		ch <- prometheus.MustNewConstMetric(d.info, prometheus.GaugeValue, 1, append(slices.Clone(lv), t.cfg.Address, s.ip)...)
		s.mu.Unlock()
	}
	return nil
}

func newTCPDescs(custom []string) tcpDescs {
	tl := append([]string{"target"}, custom...)
	return tcpDescs{
		probe: newProbeDescs("tcp", "", tl, tcpReasons, probeHelp{
			probes:   "TCP connect attempts.",
			failures: "Failed TCP connects by reason: refused (RST), timeout (no answer within the timeout), unreachable (ICMP unreachable or no route), dns (host name lookup failed), other.",
			success:  "1 if the latest TCP connect succeeded.",
		}),
		info: prometheus.NewDesc(prometheus.BuildFQName(collector.Namespace, "tcp", "target_info"), "The configured address of a target and the IP of its latest attempt (empty before one).", append(slices.Clone(tl), "address", "ip"), nil),
	}
}
