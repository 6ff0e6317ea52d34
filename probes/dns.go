package probes

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/smokemon/smokemon/internal/dnsmsg"

	"github.com/smokemon/smokemon/collector"
	"github.com/smokemon/smokemon/internal/config"
	"github.com/smokemon/smokemon/internal/prober"
)

// The dns collector asks each resolver for a name and type on its own
// schedule (miekg/dns, UDP with TCP fallback on truncation). Series are keyed
// by target and resolver only: the query and type a target stands for are in
// smokemon_dns_target_info, so the histogram does not repeat them.

func init() {
	register("dns", newDNSCollector)
}

var dnsReasons = []string{"timeout", "network", "rcode", "answers"}

type dnsCollector struct {
	logger       *slog.Logger
	deps         Deps
	svcScheduler // runs the probes; its Close stops them

	resolvConfErrors atomic.Uint64

	mu         sync.Mutex
	labelNames []string
	targets    []*dnsTarget
	descs      dnsDescs
}

type dnsTarget struct {
	cfg config.DNSTarget
	series
	results *dnsSeries
}

// dnsSeries are a target's per-resolver results. With system resolvers the set
// follows /etc/resolv.conf: a resolver no longer listed loses its series.
type dnsSeries struct {
	mu         sync.Mutex
	byResolver map[string]*dnsStats
}

// dnsStats are guarded by their dnsSeries' mutex.
type dnsStats struct {
	probeStats
	responses    map[string]uint64
	tcpFallbacks uint64
	rcode        int
	answers      int
}

type dnsDescs struct {
	probe probeDescs

	responses, fallbacks, rcode, answers, info, resolvConf *prometheus.Desc
}

func newDNSCollector(logger *slog.Logger, cfg *config.Config, deps Deps) (collector.Collector, error) {
	return started(&dnsCollector{logger: logger, deps: deps}, cfg)
}

// Prepare builds the new target list; on commit, unchanged targets keep
// their series.
func (c *dnsCollector) Prepare(cfg *config.Config) (func(), error) {
	ls := newLabelSet(cfg.Global.Labels, ownLabels(cfg.DNS.Targets, func(t config.DNSTarget) map[string]string { return t.Labels })...)
	var next []*dnsTarget
	for _, tc := range cfg.DNS.Targets {
		next = append(next, &dnsTarget{cfg: tc, series: ls.series(tc.Name, tc.Labels)})
	}
	return func() {
		c.mu.Lock()
		targets, _ := reconcile(c.targets, next, (*dnsTarget).key, func(n, o *dnsTarget) *dnsTarget { n.results = o.results; return n })
		var jobs []svcJob
		for _, t := range targets {
			if t.results == nil {
				t.results = &dnsSeries{byResolver: map[string]*dnsStats{}}
			}
			jobs = append(jobs, svcJob{key: t.key(), spec: t.cfg, interval: t.cfg.IntervalD(), timeout: t.cfg.TimeoutD(), run: c.probeFunc(t, ls.names)})
		}
		c.targets, c.labelNames, c.descs = targets, ls.names, newDNSDescs(ls.names)
		c.mu.Unlock()
		c.apply(jobs)
	}, nil
}

type dnsResult struct {
	resolver    string
	d           time.Duration
	r           *dnsmsg.Reply
	tcpFallback bool
	err         error
}

func (c *dnsCollector) probeFunc(t *dnsTarget, labelNames []string) func(ctx context.Context) func() {
	cfg := t.cfg
	return func(ctx context.Context) func() {
		servers := cfg.Resolvers
		if len(servers) == 0 {
			var err error
			if servers, err = c.deps.Net.SystemResolvers(); err != nil {
				return func() {
					if c.resolvConfErrors.Add(1) == 1 {
						c.logger.Warn("no system resolvers to probe", "target", cfg.Name, "err", err)
					}
				}
			}
		}
		results := make([]dnsResult, len(servers))
		var wg sync.WaitGroup
		for i, srv := range servers {
			wg.Go(func() {
				q := dnsmsg.NewQuery(prober.QueryID(), cfg.Query, cfg.QType)
				q.RecursionDesired = *cfg.RecursionDesired
				start := time.Now()
				r, fb, err := c.deps.Net.DNSExchange(ctx, srv, q, cfg.Protocol)
				results[i] = dnsResult{resolver: srv, d: time.Since(start), r: r, tcpFallback: fb, err: err}
			})
		}
		wg.Wait()
		return func() { c.record(t, labelNames, results, ctx) }
	}
}

func (c *dnsCollector) record(t *dnsTarget, labelNames []string, results []dnsResult, ctx context.Context) {
	se := t.results
	se.mu.Lock()
	defer se.mu.Unlock()
	keep := map[string]bool{}
	for _, res := range results {
		keep[res.resolver] = true
		s, ok := se.byResolver[res.resolver]
		if !ok {
			s = &dnsStats{
				probeStats: newProbeStats(newSvcHistogram("dns", "lookup_duration_seconds",
					"Time from sending a query to its answer (any rcode), including the TCP retry of a truncated UDP answer. Unanswered queries are not observed.",
					labelMap(labelNames, t.labels, "target", t.cfg.Name, "resolver", res.resolver))),
				responses: map[string]uint64{},
			}
			se.byResolver[res.resolver] = s
		}
		reason := ""
		if res.err != nil {
			s.rcode, s.answers = -1, 0
			reason = "network"
			if errors.Is(res.err, context.DeadlineExceeded) || prober.NetReason(ctx, res.err) == "timeout" {
				reason = "timeout"
			}
		} else {
			if res.tcpFallback {
				s.tcpFallbacks++
			}
			s.hist.Observe(res.d.Seconds())
			rc := dnsmsg.RcodeString(res.r.Rcode)
			s.responses[rc]++
			s.rcode, s.answers = res.r.Rcode, res.r.Answers
			switch {
			case !slices.Contains(t.cfg.ValidRcodes, rc):
				reason = "rcode"
			case s.answers < t.cfg.MinAnswers:
				reason = "answers"
			}
		}
		wasOK := s.record(reason)
		if reason != "" && wasOK {
			c.logger.Warn("dns probe failed", "target", t.cfg.Name, "resolver", res.resolver, "reason", reason, "rcode", s.rcode, "err", res.err)
		}
	}
	for r := range se.byResolver {
		if !keep[r] {
			delete(se.byResolver, r)
		}
	}
}

// Update reports the latest results; it never sends a query.
func (c *dnsCollector) Update(ch chan<- prometheus.Metric) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.targets) == 0 {
		return collector.ErrNoData
	}
	d := c.descs
	ch <- prometheus.MustNewConstMetric(d.resolvConf, prometheus.CounterValue, float64(c.resolvConfErrors.Load()))
	for _, t := range c.targets {
		ch <- prometheus.MustNewConstMetric(d.info, prometheus.GaugeValue, 1, append([]string{t.cfg.Name, t.cfg.Query, t.cfg.Type}, t.labels...)...)
		se := t.results
		se.mu.Lock()
		resolvers := make([]string, 0, len(se.byResolver))
		for r := range se.byResolver {
			resolvers = append(resolvers, r)
		}
		sort.Strings(resolvers)
		for _, r := range resolvers {
			s := se.byResolver[r]
			lv := append([]string{t.cfg.Name, r}, t.labels...)
			s.collect(ch, d.probe, lv)
			ch <- prometheus.MustNewConstMetric(d.fallbacks, prometheus.CounterValue, float64(s.tcpFallbacks), lv...)
			for rc, n := range s.responses {
				ch <- prometheus.MustNewConstMetric(d.responses, prometheus.CounterValue, float64(n), append(slices.Clone(lv), rc)...)
			}
			ch <- prometheus.MustNewConstMetric(d.rcode, prometheus.GaugeValue, float64(s.rcode), lv...)
			ch <- prometheus.MustNewConstMetric(d.answers, prometheus.GaugeValue, float64(s.answers), lv...)
		}
		se.mu.Unlock()
	}
	return nil
}

func newDNSDescs(custom []string) dnsDescs {
	tl := append([]string{"target", "resolver"}, custom...)
	name := func(n string) string { return prometheus.BuildFQName(collector.Namespace, "dns", n) }
	return dnsDescs{
		probe: newProbeDescs("dns", "", tl, dnsReasons, probeHelp{
			probes:   "DNS queries sent to this resolver for this target.",
			failures: "Failed DNS probes by reason: timeout (no answer in time), network (send or receive error), rcode (answer with an rcode not in valid_rcodes), answers (fewer answer records than min_answers).",
			success:  "1 if the latest DNS probe succeeded.",
		}),
		responses:  prometheus.NewDesc(name("responses_total"), "DNS answers by response code.", append(slices.Clone(tl), "rcode"), nil),
		fallbacks:  prometheus.NewDesc(name("tcp_fallbacks_total"), "Truncated UDP answers retried over TCP.", tl, nil),
		rcode:      prometheus.NewDesc(name("rcode"), "Response code of the latest answer (0 NOERROR, 2 SERVFAIL, 3 NXDOMAIN, …; -1 when none came).", tl, nil),
		answers:    prometheus.NewDesc(name("answers"), "Answer records in the latest answer.", tl, nil),
		info:       prometheus.NewDesc(name("target_info"), "The name and record type a DNS target looks up.", append([]string{"target", "query", "type"}, custom...), nil),
		resolvConf: prometheus.NewDesc(name("resolv_conf_errors_total"), "Probe rounds skipped because /etc/resolv.conf (under --path.rootfs) listed no usable nameserver.", nil, nil),
	}
}
