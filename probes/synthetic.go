package probes

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/smokemon/smokemon/internal/dnsmsg"

	"github.com/smokemon/smokemon/collector"
	"github.com/smokemon/smokemon/internal/config"
	"github.com/smokemon/smokemon/internal/prober"
)

// The synthetic collector runs checks that stand for what a user does: is the
// network open or behind a captive portal, and does DNS-over-HTTPS answer, and
// how fast. Opt-in: idle unless the synthetic section lists checks.

func init() {
	register("synthetic", newSyntheticCollector)
}

const (
	portalMaxBody = 64 << 10
	dohMaxBody    = 65535 // the largest DNS message
	dohMediaType  = "application/dns-message"
)

var (
	portalReasons = []string{"dns", "connect", "tls", "timeout", "other"}
	dohReasons    = []string{"dns", "connect", "tls", "timeout", "status", "malformed", "rcode", "other"}
)

type syntheticCollector struct {
	logger       *slog.Logger
	deps         Deps
	svcScheduler // runs the probes; its Close stops them

	mu         sync.Mutex
	labelNames []string
	portals    []*portalCheck
	dohs       []*dohCheck
	descs      syntheticDescs
}

type portalCheck struct {
	cfg config.CaptivePortalTarget
	series
	tls   *tls.Config
	stats *portalStats
}

type portalStats struct {
	mu sync.Mutex
	// A check succeeds when it gets an HTTP response, whatever it says;
	// whether that shows a portal is detected.
	probeStats
	decided  bool // some check got one, so detected means something
	detected bool
	status   int
}

type dohCheck struct {
	cfg config.DoHTarget
	series
	tls   *tls.Config
	stats *dohStats
}

type dohStats struct {
	mu sync.Mutex
	probeStats
	rcode   int
	answers int
}

type syntheticDescs struct {
	portal                       probeDescs
	portalDetected, portalStatus *prometheus.Desc
	doh                          probeDescs
	dohRcode, dohAnswers         *prometheus.Desc
}

func newSyntheticCollector(logger *slog.Logger, cfg *config.Config, deps Deps) (collector.Collector, error) {
	return started(&syntheticCollector{logger: logger, deps: deps}, cfg)
}

// Prepare builds the new checks, with the CA pools the config loaded when it
// was parsed; on commit, unchanged ones keep their series.
func (c *syntheticCollector) Prepare(cfg *config.Config) (func(), error) {
	sc := cfg.Synthetic
	own := append(ownLabels(sc.CaptivePortal, func(t config.CaptivePortalTarget) map[string]string { return t.Labels }),
		ownLabels(sc.DoH, func(t config.DoHTarget) map[string]string { return t.Labels })...)
	ls := newLabelSet(cfg.Global.Labels, own...)
	var nextP []*portalCheck
	var nextD []*dohCheck
	for _, t := range sc.CaptivePortal {
		nextP = append(nextP, &portalCheck{cfg: t, series: ls.series(t.Name, t.Labels), tls: t.TLS.ClientConfig()})
	}
	for _, t := range sc.DoH {
		nextD = append(nextD, &dohCheck{cfg: t, series: ls.series(t.Name, t.Labels), tls: t.TLS.ClientConfig()})
	}
	return func() {
		c.mu.Lock()
		portals, _ := reconcile(c.portals, nextP, (*portalCheck).key, func(n, o *portalCheck) *portalCheck { n.stats = o.stats; return n })
		dohs, _ := reconcile(c.dohs, nextD, (*dohCheck).key, func(n, o *dohCheck) *dohCheck { n.stats = o.stats; return n })
		var jobs []svcJob
		for _, p := range portals {
			if p.stats == nil {
				p.stats = &portalStats{probeStats: newProbeStats(newSvcHistogram("synthetic", "captive_portal_check_duration_seconds",
					"Duration of captive-portal checks that got an HTTP response (fresh connection: lookup, connect, TLS, request, body).",
					labelMap(ls.names, p.labels, "target", p.cfg.Name)))}
			}
			jobs = append(jobs, svcJob{key: "portal/" + p.key(), spec: p.cfg, interval: p.cfg.IntervalD(), timeout: p.cfg.TimeoutD(), run: c.portalFunc(p)})
		}
		for _, d := range dohs {
			if d.stats == nil {
				d.stats = &dohStats{probeStats: newProbeStats(newSvcHistogram("synthetic", "doh_lookup_duration_seconds",
					"Duration of DNS-over-HTTPS lookups that got a DNS answer, on a fresh connection each (lookup of the server's name, connect, TLS, query, answer).",
					labelMap(ls.names, d.labels, "target", d.cfg.Name)))}
			}
			jobs = append(jobs, svcJob{key: "doh/" + d.key(), spec: d.cfg, interval: d.cfg.IntervalD(), timeout: d.cfg.TimeoutD(), run: c.dohFunc(d)})
		}
		c.portals, c.dohs, c.labelNames, c.descs = portals, dohs, ls.names, newSyntheticDescs(ls.names)
		c.mu.Unlock()
		c.apply(jobs)
	}, nil
}

// portalFunc checks for a captive portal: the URL must answer the expected
// status (and body substring) itself. A redirect is never followed, since a
// redirect is how portals show themselves.
func (c *syntheticCollector) portalFunc(p *portalCheck) func(ctx context.Context) func() {
	cfg := p.cfg
	return func(ctx context.Context) func() {
		res := c.deps.Net.HTTP(ctx, prober.HTTPRequest{
			URL: cfg.URL, Method: http.MethodGet, Family: cfg.Family, Resolver: cfg.Resolver,
			TLS: p.tls, MaxBody: portalMaxBody, KeepBody: true,
		})
		return func() {
			s := p.stats
			if res.Completed {
				s.hist.Observe(res.Total.Seconds())
			}
			s.mu.Lock()
			defer s.mu.Unlock()
			// HTTP gives a reason exactly when no response was read.
			s.record(res.Reason)
			if !res.Completed {
				return
			}
			detected := res.Status != cfg.ExpectedStatus ||
				(cfg.ExpectedBody != "" && !bytes.Contains(res.Body, []byte(cfg.ExpectedBody)))
			if detected && (!s.decided || !s.detected) {
				c.logger.Warn("captive portal detected", "target", cfg.Name, "status", res.Status, "location", res.Location)
			} else if !detected && s.decided && s.detected {
				c.logger.Info("captive portal gone", "target", cfg.Name)
			}
			s.decided, s.detected, s.status = true, detected, res.Status
		}
	}
}

// dohFunc makes one RFC 8484 lookup.
func (c *syntheticCollector) dohFunc(d *dohCheck) func(ctx context.Context) func() {
	cfg := d.cfg
	return func(ctx context.Context) func() {
		q := dnsmsg.NewQuery(0, cfg.Query, cfg.QType) // RFC 8484 §4.1: ID 0 keeps answers cacheable by HTTP caches
		wire, err := q.Pack()
		if err != nil {
			return func() { d.record(c.logger, "other", nil, prober.HTTPResult{}, err) }
		}
		spec := prober.HTTPRequest{
			URL: cfg.URL, Method: cfg.Method, Family: cfg.Family, Resolver: cfg.Resolver, TLS: d.tls,
			Headers: map[string]string{"Accept": dohMediaType}, MaxBody: dohMaxBody, KeepBody: true, Follow: true,
		}
		if cfg.Method == http.MethodGet {
			u, _ := url.Parse(cfg.URL)
			q := u.Query()
			q.Set("dns", base64.RawURLEncoding.EncodeToString(wire))
			u.RawQuery = q.Encode()
			spec.URL = u.String()
		} else {
			spec.Body = wire
			spec.Headers["Content-Type"] = dohMediaType
		}
		res := c.deps.Net.HTTP(ctx, spec)
		if res.Reason != "" {
			return func() { d.record(c.logger, res.Reason, nil, res, res.Err) }
		}
		if res.Status != http.StatusOK {
			return func() { d.record(c.logger, "status", nil, res, fmt.Errorf("HTTP status %d", res.Status)) }
		}
		r, err := dnsmsg.Parse(res.Body)
		if err != nil {
			return func() { d.record(c.logger, "malformed", nil, res, err) }
		}
		if len(r.Questions) != 1 || !r.Matches(q) {
			return func() {
				d.record(c.logger, "malformed", r, res, fmt.Errorf("answer is for another question: %v", r.Questions))
			}
		}
		if r.Rcode != dnsmsg.RcodeSuccess {
			return func() { d.record(c.logger, "rcode", r, res, fmt.Errorf("rcode %s", dnsmsg.RcodeString(r.Rcode))) }
		}
		return func() { d.record(c.logger, "", r, res, nil) }
	}
}

func (d *dohCheck) record(logger *slog.Logger, reason string, r *dnsmsg.Reply, res prober.HTTPResult, err error) {
	s := d.stats
	if r != nil {
		s.hist.Observe(res.Total.Seconds())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rcode, s.answers = -1, 0
	if r != nil {
		s.rcode, s.answers = r.Rcode, r.Answers
	}
	wasOK := s.record(reason)
	if reason != "" && wasOK {
		logger.Warn("DoH lookup failed", "target", d.cfg.Name, "reason", reason, "err", err)
	}
}

// Update reports the latest results; it never probes.
func (c *syntheticCollector) Update(ch chan<- prometheus.Metric) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.portals)+len(c.dohs) == 0 {
		return collector.ErrNoData
	}
	d := c.descs
	for _, p := range c.portals {
		s := p.stats
		lv := append([]string{p.cfg.Name}, p.labels...)
		s.mu.Lock()
		s.collect(ch, d.portal, lv)
		if s.decided {
			ch <- prometheus.MustNewConstMetric(d.portalDetected, prometheus.GaugeValue, boolValue(s.detected), lv...)
			ch <- prometheus.MustNewConstMetric(d.portalStatus, prometheus.GaugeValue, float64(s.status), lv...)
		}
		s.mu.Unlock()
	}
	for _, k := range c.dohs {
		s := k.stats
		lv := append([]string{k.cfg.Name}, k.labels...)
		s.mu.Lock()
		s.collect(ch, d.doh, lv)
		if s.probed {
			ch <- prometheus.MustNewConstMetric(d.dohRcode, prometheus.GaugeValue, float64(s.rcode), lv...)
			ch <- prometheus.MustNewConstMetric(d.dohAnswers, prometheus.GaugeValue, float64(s.answers), lv...)
		}
		s.mu.Unlock()
	}
	return nil
}

func newSyntheticDescs(custom []string) syntheticDescs {
	tl := append([]string{"target"}, custom...)
	with := func(v string) []string { return append(slices.Clone(tl), v) }
	name := func(n string) string { return prometheus.BuildFQName(collector.Namespace, "synthetic", n) }
	return syntheticDescs{
		// The portal's metrics speak of checks and errors, not probes and
		// failures, so they do not follow newProbeDescs' names.
		portal: probeDescs{
			probes:   prometheus.NewDesc(name("captive_portal_checks_total"), "Captive-portal checks made.", tl, nil),
			failures: prometheus.NewDesc(name("captive_portal_errors_total"), "Captive-portal checks that got no HTTP response, by reason: dns, connect, tls, timeout, other.", with("reason"), nil),
			success:  prometheus.NewDesc(name("captive_portal_check_success"), "1 if the latest captive-portal check got an HTTP response (whatever it said).", tl, nil),
			reasons:  portalReasons,
		},
		portalDetected: prometheus.NewDesc(name("captive_portal_detected"), "1 if the latest answered check did not get the expected answer (a redirect, another status or other content): a captive portal is in the way.", tl, nil),
		portalStatus:   prometheus.NewDesc(name("captive_portal_status_code"), "Status code of the latest answered captive-portal check.", tl, nil),
		doh: newProbeDescs("synthetic", "doh_", tl, dohReasons, probeHelp{
			probes:   "DNS-over-HTTPS lookups made.",
			failures: "Failed DNS-over-HTTPS lookups by reason: dns (of the server's name), connect, tls, timeout, status (HTTP status not 200), malformed (not a DNS answer to the question), rcode (not NOERROR), other.",
			success:  "1 if the latest DNS-over-HTTPS lookup got a NOERROR answer.",
		}),
		dohRcode:   prometheus.NewDesc(name("doh_rcode"), "Response code of the latest DNS-over-HTTPS answer (-1 when none came).", tl, nil),
		dohAnswers: prometheus.NewDesc(name("doh_answers"), "Answer records in the latest DNS-over-HTTPS answer.", tl, nil),
	}
}
