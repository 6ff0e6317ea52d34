package probes

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/smokemon/smokemon/collector"
	"github.com/smokemon/smokemon/internal/config"
	"github.com/smokemon/smokemon/internal/prober"
)

// The http collector fetches each URL on its own schedule over a fresh
// connection (its own resolver lookup, TCP and TLS handshake), so every probe
// times all phases; a scrape only reads the results.

func init() {
	register("http", newHTTPCollector)
}

type httpCollector struct {
	logger       *slog.Logger
	deps         Deps
	svcScheduler // runs the probes; its Close stops them

	mu         sync.Mutex
	labelNames []string
	targets    []*httpTarget
	descs      httpDescs
}

type httpTarget struct {
	cfg config.HTTPTarget
	series
	tls   *tls.Config
	stats *httpStats
}

// httpStats are one target's results; the probe goroutine writes, Update reads.
type httpStats struct {
	phase [prober.NPhases]prometheus.Histogram

	mu         sync.Mutex
	probeStats // hist: the whole duration
	status     int
	bodyBytes  int64
	ip         string
	certExpiry time.Time
	tlsVersion string
	tlsCipher  string
}

type httpDescs struct {
	probe probeDescs

	status, body, certExpiry, tlsInfo, info *prometheus.Desc
}

func newHTTPCollector(logger *slog.Logger, cfg *config.Config, deps Deps) (collector.Collector, error) {
	return started(&httpCollector{logger: logger, deps: deps}, cfg)
}

// Prepare builds the new target list, with the CA pools the config loaded
// when it was parsed; on commit, targets whose name and labels are
// unchanged keep their counters and histograms.
func (c *httpCollector) Prepare(cfg *config.Config) (func(), error) {
	ls := newLabelSet(cfg.Global.Labels, ownLabels(cfg.HTTP.Targets, func(t config.HTTPTarget) map[string]string { return t.Labels })...)
	var next []*httpTarget
	for _, t := range cfg.HTTP.Targets {
		next = append(next, &httpTarget{cfg: t, series: ls.series(t.Name, t.Labels), tls: t.TLS.ClientConfig()})
	}
	return func() {
		c.mu.Lock()
		targets, _ := reconcile(c.targets, next, (*httpTarget).key, func(n, o *httpTarget) *httpTarget { n.stats = o.stats; return n })
		var jobs []svcJob
		for _, t := range targets {
			if t.stats == nil {
				t.stats = newHTTPStats(t.cfg.Name, ls.names, t.labels)
			}
			jobs = append(jobs, svcJob{
				key: t.key(), spec: t.cfg, interval: t.cfg.IntervalD(), timeout: t.cfg.TimeoutD(),
				run: c.probeFunc(t),
			})
		}
		c.targets, c.labelNames = targets, ls.names
		c.descs = newHTTPDescs(ls.names)
		c.mu.Unlock()
		c.apply(jobs)
	}, nil
}

func newHTTPStats(name string, labelNames, values []string) *httpStats {
	s := &httpStats{}
	for i := range s.phase {
		s.phase[i] = newSvcHistogram("http", "phase_duration_seconds",
			"Time spent in each phase of an HTTP probe that got a response: resolve (DNS), connect (TCP handshake), tls (handshake), processing (request written to first response byte), transfer (first byte to end of body). Summed over redirects, except transfer (final response). resolve and tls are observed only when they happen.",
			labelMap(labelNames, values, "target", name, "phase", prober.PhaseNames[i]))
	}
	s.probeStats = newProbeStats(newSvcHistogram("http", "duration_seconds",
		"Whole duration of an HTTP probe that got a response, from the lookup to the end of the body.",
		labelMap(labelNames, values, "target", name)))
	return s
}

func (c *httpCollector) probeFunc(t *httpTarget) func(ctx context.Context) func() {
	cfg := t.cfg
	return func(ctx context.Context) func() {
		res := c.deps.Net.HTTP(ctx, prober.HTTPRequest{
			URL: cfg.URL, Method: cfg.Method, Headers: cfg.Headers,
			Family: cfg.Family, Resolver: cfg.Resolver, TLS: t.tls,
			Follow: *cfg.FollowRedirects, MaxBody: cfg.MaxBodyBytes,
		})
		if res.Reason == "" && !validStatus(cfg.ValidStatusCodes, res.Status) {
			res.Reason = "status"
			res.Err = fmt.Errorf("status %d is not a valid status", res.Status)
		}
		return func() { c.record(t, res) }
	}
}

func validStatus(valid []int, code int) bool {
	if len(valid) == 0 {
		return code >= 200 && code < 300
	}
	return slices.Contains(valid, code)
}

func (c *httpCollector) record(t *httpTarget, r prober.HTTPResult) {
	s := t.stats
	if r.Completed {
		for i, d := range r.Phases {
			if (i == prober.PhaseResolve && !r.Resolved) || (i == prober.PhaseTLS && r.TLS == nil) {
				continue
			}
			s.phase[i].Observe(d.Seconds())
		}
		s.hist.Observe(r.Total.Seconds())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	wasOK := s.record(r.Reason)
	switch {
	case !s.success && wasOK:
		c.logger.Warn("http probe failed", "target", t.cfg.Name, "reason", r.Reason, "err", r.Err)
	case s.success && !wasOK:
		c.logger.Info("http probe succeeds again", "target", t.cfg.Name)
	}
	s.status, s.bodyBytes = r.Status, r.BodyBytes
	if r.IP.IsValid() {
		s.ip = r.IP.String()
	}
	if r.TLS != nil {
		s.certExpiry = earliestExpiry(r.TLS.PeerCertificates)
		s.tlsVersion = tls.VersionName(r.TLS.Version)
		s.tlsCipher = tls.CipherSuiteName(r.TLS.CipherSuite)
	}
}

func earliestExpiry(certs []*x509.Certificate) time.Time {
	var e time.Time
	for _, c := range certs {
		if e.IsZero() || c.NotAfter.Before(e) {
			e = c.NotAfter
		}
	}
	return e
}

// Update reports the latest results; it never probes.
func (c *httpCollector) Update(ch chan<- prometheus.Metric) error {
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
		ch <- prometheus.MustNewConstMetric(d.info, prometheus.GaugeValue, 1, append(slices.Clone(lv), t.cfg.URL, s.ip)...)
		if s.probed {
			ch <- prometheus.MustNewConstMetric(d.status, prometheus.GaugeValue, float64(s.status), lv...)
			ch <- prometheus.MustNewConstMetric(d.body, prometheus.GaugeValue, float64(s.bodyBytes), lv...)
		}
		if !s.certExpiry.IsZero() {
			ch <- prometheus.MustNewConstMetric(d.certExpiry, prometheus.GaugeValue, float64(s.certExpiry.Unix()), lv...)
			ch <- prometheus.MustNewConstMetric(d.tlsInfo, prometheus.GaugeValue, 1, append(slices.Clone(lv), s.tlsVersion, s.tlsCipher)...)
		}
		s.mu.Unlock()
		for _, h := range s.phase {
			h.Collect(ch)
		}
	}
	return nil
}

func newHTTPDescs(custom []string) httpDescs {
	tl := append([]string{"target"}, custom...)
	with := func(extra ...string) []string { return append(slices.Clone(tl), extra...) }
	name := func(n string) string { return prometheus.BuildFQName(collector.Namespace, "http", n) }
	return httpDescs{
		probe: newProbeDescs("http", "", tl, prober.HTTPReasons, probeHelp{
			probes:   "HTTP probes finished (succeeded or failed).",
			failures: "Failed HTTP probes by reason: dns, connect, tls, timeout (the probe's timeout ran out), status (not a valid status code), other.",
			success:  "1 if the latest HTTP probe succeeded.",
		}),
		status:     prometheus.NewDesc(name("status_code"), "Status code of the latest response (0 when none came).", tl, nil),
		body:       prometheus.NewDesc(name("response_body_bytes"), "Body bytes read in the latest probe (capped at max_body_bytes).", tl, nil),
		certExpiry: prometheus.NewDesc(name("tls_cert_expiry_timestamp_seconds"), "NotAfter of the earliest-expiring certificate the server presented in the latest TLS handshake, as a Unix time.", tl, nil),
		tlsInfo:    prometheus.NewDesc(name("tls_info"), "TLS version and cipher suite of the latest TLS handshake.", with("version", "cipher"), nil),
		info:       prometheus.NewDesc(name("target_info"), "The URL of a target and the address of its latest connection (empty before one).", with("url", "ip"), nil),
	}
}
