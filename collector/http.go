package collector

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/smokemon/smokemon/internal/config"
)

// The http collector fetches each URL on its own schedule over a fresh
// connection (its own resolver lookup, TCP and TLS handshake), so every probe
// times all phases; a scrape only reads the results.

func init() {
	registerCollector("http", true, newHTTPCollector)
}

// HTTP phases, in the order a request goes through them.
const (
	phaseResolve = iota
	phaseConnect
	phaseTLS
	phaseProcessing
	phaseTransfer
	nPhases
)

var phaseNames = [nPhases]string{"resolve", "connect", "tls", "processing", "transfer"}

// httpReasons is the bounded set of failure reasons, all exported from the start
// so rate() sees the first failure.
var httpReasons = []string{"dns", "connect", "tls", "timeout", "status", "other"}

const maxRedirects = 10

type httpCollector struct {
	logger *slog.Logger
	sched  svcScheduler

	mu         sync.Mutex
	labelNames []string
	targets    []*httpTarget
	descs      httpDescs
}

type httpTarget struct {
	cfg    config.HTTPTarget
	labels []string
	tls    *tls.Config
	stats  *httpStats
}

// httpStats are one target's results; the probe goroutine writes, Update reads.
type httpStats struct {
	phase [nPhases]prometheus.Histogram

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

func newHTTPCollector(logger *slog.Logger, cfg *config.Config) (Collector, error) {
	c := &httpCollector{logger: logger}
	if err := c.Reload(cfg); err != nil {
		return nil, err
	}
	return c, nil
}

// Reload applies a new target list; targets whose name and labels are
// unchanged keep their counters and histograms.
func (c *httpCollector) Reload(cfg *config.Config) error {
	var own []map[string]string
	for _, t := range cfg.HTTP.Targets {
		own = append(own, t.Labels)
	}
	names := unionLabelNames(cfg.Global.Labels, own...)
	var targets []*httpTarget
	for _, t := range cfg.HTTP.Targets {
		tc, err := clientTLS(t.TLS)
		if err != nil {
			return fmt.Errorf("http target %s: %w", t.Name, err)
		}
		targets = append(targets, &httpTarget{cfg: t, labels: labelValues(names, cfg.Global.Labels, t.Labels), tls: tc})
	}

	c.mu.Lock()
	old := map[string]*httpStats{}
	for _, t := range c.targets {
		old[seriesKey(t.cfg.Name, c.labelNames, t.labels)] = t.stats
	}
	var jobs []svcJob
	for _, t := range targets {
		key := seriesKey(t.cfg.Name, names, t.labels)
		if s, ok := old[key]; ok {
			t.stats = s
		} else {
			t.stats = newHTTPStats(t.cfg.Name, names, t.labels)
		}
		jobs = append(jobs, svcJob{
			key: key, spec: t.cfg, interval: t.cfg.IntervalD(), timeout: t.cfg.TimeoutD(),
			run: c.probeFunc(t),
		})
	}
	c.targets, c.labelNames = targets, names
	c.descs = newHTTPDescs(names)
	c.mu.Unlock()
	c.sched.apply(jobs)
	return nil
}

func clientTLS(s config.TLSSettings) (*tls.Config, error) {
	tc := &tls.Config{InsecureSkipVerify: s.InsecureSkipVerify, ServerName: s.ServerName}
	if s.CAFile != "" {
		pem, err := os.ReadFile(s.CAFile)
		if err != nil {
			return nil, err
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s holds no PEM certificate", s.CAFile)
		}
	}
	return tc, nil
}

func newHTTPStats(name string, labelNames, values []string) *httpStats {
	s := &httpStats{}
	for i := range s.phase {
		s.phase[i] = newSvcHistogram("http", "phase_duration_seconds",
			"Time spent in each phase of an HTTP probe that got a response: resolve (DNS), connect (TCP handshake), tls (handshake), processing (request written to first response byte), transfer (first byte to end of body). Summed over redirects, except transfer (final response). resolve and tls are observed only when they happen.",
			labelMap(labelNames, values, "target", name, "phase", phaseNames[i]))
	}
	s.probeStats = newProbeStats(newSvcHistogram("http", "duration_seconds",
		"Whole duration of an HTTP probe that got a response, from the lookup to the end of the body.",
		labelMap(labelNames, values, "target", name)))
	return s
}

func (c *httpCollector) probeFunc(t *httpTarget) func(ctx context.Context) func() {
	cfg := t.cfg
	return func(ctx context.Context) func() {
		res := httpDo(ctx, httpSpec{
			url: cfg.URL, method: cfg.Method, headers: cfg.Headers,
			family: cfg.Family, resolver: cfg.Resolver, tls: t.tls,
			follow: *cfg.FollowRedirects, maxBody: cfg.MaxBodyBytes,
		})
		if res.reason == "" && !validStatus(cfg.ValidStatusCodes, res.status) {
			res.reason = "status"
			res.err = fmt.Errorf("status %d is not a valid status", res.status)
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

func (c *httpCollector) record(t *httpTarget, r httpResult) {
	s := t.stats
	if r.completed {
		for i, d := range r.phases {
			if (i == phaseResolve && !r.resolved) || (i == phaseTLS && r.tls == nil) {
				continue
			}
			s.phase[i].Observe(d.Seconds())
		}
		s.hist.Observe(r.total.Seconds())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	wasOK := s.record(r.reason)
	switch {
	case !s.success && wasOK:
		c.logger.Warn("http probe failed", "target", t.cfg.Name, "reason", r.reason, "err", r.err)
	case s.success && !wasOK:
		c.logger.Info("http probe succeeds again", "target", t.cfg.Name)
	}
	s.status, s.bodyBytes = r.status, r.bodyBytes
	if r.ip.IsValid() {
		s.ip = r.ip.String()
	}
	if r.tls != nil {
		s.certExpiry = earliestExpiry(r.tls.PeerCertificates)
		s.tlsVersion = tls.VersionName(r.tls.Version)
		s.tlsCipher = tls.CipherSuiteName(r.tls.CipherSuite)
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
		return ErrNoData
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

// Close stops every probe; one in flight is aborted.
func (c *httpCollector) Close() error {
	c.sched.stop()
	return nil
}

func newHTTPDescs(custom []string) httpDescs {
	tl := append([]string{"target"}, custom...)
	with := func(extra ...string) []string { return append(slices.Clone(tl), extra...) }
	name := func(n string) string { return prometheus.BuildFQName(Namespace, "http", n) }
	return httpDescs{
		probe: newProbeDescs("http", "", tl, httpReasons, probeHelp{
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

// httpSpec is one request to make on a fresh connection.
type httpSpec struct {
	url      string
	method   string
	headers  map[string]string
	body     []byte
	family   config.Family
	resolver string
	tls      *tls.Config
	follow   bool
	maxBody  int64
	keepBody bool // return the body (up to maxBody) in httpResult.body
}

type httpResult struct {
	phases    [nPhases]time.Duration
	resolved  bool
	total     time.Duration
	completed bool // a response came and its body was read
	status    int
	bodyBytes int64
	body      []byte
	location  string // Location of the final response, if any
	tls       *tls.ConnectionState
	ip        netip.Addr
	reason    string // "" on success, else one of httpReasons
	err       error
}

// stageError marks which step of our own dialing failed.
type stageError struct {
	stage string
	err   error
}

func (e *stageError) Error() string { return e.stage + ": " + e.err.Error() }
func (e *stageError) Unwrap() error { return e.err }

// httpDo makes one request on a connection of its own, timing each phase.
// httpDo runs one probe. The transport may still be dialing in the
// background after Do returns (it detaches dials from the request), so the
// closures fill res only under mu and every return hands out a copy taken
// under mu.
func httpDo(ctx context.Context, spec httpSpec) httpResult {
	start := time.Now()
	var (
		res                        httpResult
		mu                         sync.Mutex
		tlsStart, wrote, firstByte time.Time
		tlsFailed                  bool
	)
	dial := func(_ context.Context, network, addr string) (net.Conn, error) {
		// The transport detaches dials from the request's cancellation; the
		// probe's context bounds them instead.
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		ip, err := netip.ParseAddr(host)
		if err != nil {
			t0 := time.Now()
			ip, err = lookupHost(ctx, host, spec.family, spec.resolver)
			mu.Lock()
			res.phases[phaseResolve] += time.Since(t0)
			res.resolved = true
			mu.Unlock()
			if err != nil {
				return nil, &stageError{"dns", err}
			}
		}
		conn, d, err := dialTimed(ctx, "tcp", net.JoinHostPort(ip.String(), port))
		mu.Lock()
		res.phases[phaseConnect] += d
		res.ip = ip
		mu.Unlock()
		if err != nil {
			return nil, &stageError{"connect", err}
		}
		bindConn(ctx, conn) // released when ctx ends, which is when the probe does
		return conn, nil
	}
	tr := &http.Transport{
		DialContext:       dial,
		TLSClientConfig:   spec.tls.Clone(),
		DisableKeepAlives: true,
		ForceAttemptHTTP2: true,
		Proxy:             nil,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if !spec.follow {
			return http.ErrUseLastResponse
		}
		if len(via) >= maxRedirects {
			return fmt.Errorf("stopped after %d redirects", maxRedirects)
		}
		return nil
	}}
	trace := &httptrace.ClientTrace{
		TLSHandshakeStart: func() { mu.Lock(); tlsStart = time.Now(); mu.Unlock() },
		TLSHandshakeDone: func(_ tls.ConnectionState, err error) {
			mu.Lock()
			res.phases[phaseTLS] += time.Since(tlsStart)
			tlsFailed = tlsFailed || err != nil
			mu.Unlock()
		},
		WroteRequest: func(httptrace.WroteRequestInfo) { mu.Lock(); wrote = time.Now(); mu.Unlock() },
		GotFirstResponseByte: func() {
			mu.Lock()
			firstByte = time.Now()
			res.phases[phaseProcessing] += firstByte.Sub(wrote)
			mu.Unlock()
		},
	}
	fail := func(err error) httpResult {
		mu.Lock()
		defer mu.Unlock()
		res.err = err
		var se *stageError
		switch {
		case netReason(ctx, err) == "timeout":
			// The socket's deadline may fire a moment before the context's.
			res.reason = "timeout"
		case errors.As(err, &se):
			res.reason = se.stage
		case tlsFailed || isTLSError(err):
			res.reason = "tls"
		default:
			res.reason = "other"
		}
		return res
	}

	var body io.Reader
	if spec.body != nil {
		body = bytes.NewReader(spec.body)
	}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), spec.method, spec.url, body)
	if err != nil {
		return fail(err)
	}
	for k, v := range spec.headers {
		if strings.EqualFold(k, "Host") {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		return fail(err)
	}
	defer resp.Body.Close()
	var sink io.Writer = io.Discard
	var buf bytes.Buffer
	if spec.keepBody {
		sink = &buf
	}
	n, err := io.Copy(sink, io.LimitReader(resp.Body, spec.maxBody))
	end := time.Now()
	mu.Lock()
	res.status, res.bodyBytes, res.tls = resp.StatusCode, n, resp.TLS
	res.location = resp.Header.Get("Location")
	mu.Unlock()
	if err != nil {
		return fail(fmt.Errorf("reading the body: %w", err))
	}
	mu.Lock()
	defer mu.Unlock()
	res.phases[phaseTransfer] = end.Sub(firstByte)
	res.total = end.Sub(start)
	res.completed = true
	res.body = buf.Bytes()
	return res
}

func isTLSError(err error) bool {
	var (
		rh  tls.RecordHeaderError
		al  tls.AlertError
		cv  *tls.CertificateVerificationError
		ua  x509.UnknownAuthorityError
		hn  x509.HostnameError
		inv x509.CertificateInvalidError
	)
	return errors.As(err, &rh) || errors.As(err, &al) || errors.As(err, &cv) ||
		errors.As(err, &ua) || errors.As(err, &hn) || errors.As(err, &inv)
}
