package collector

// Shared machinery of the service probes (http, dns, tcp, synthetic): a
// schedule per target, a stub resolver that reads --path.rootfs, dialing that
// tests can move into a lab namespace, and label and histogram helpers.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/smokemon/smokemon/internal/dnsmsg"

	"github.com/smokemon/smokemon/internal/config"
)

// netnsDo runs fn where the probes' sockets are created. Tests swap in a lab
// host's Do, so every socket the probes open lives in that namespace; timings
// are taken inside fn, so the namespace switch costs nothing measured.
var netnsDo = func(fn func() error) error { return fn() }

// svcBuckets span a LAN service answering in 100µs to a probe that uses its
// whole 30s timeout, in 1-2-5 steps.
var svcBuckets = []float64{
	100e-6, 200e-6, 500e-6,
	1e-3, 2e-3, 5e-3, 10e-3, 20e-3, 50e-3, 100e-3, 200e-3, 500e-3,
	1, 2, 5, 10, 20, 30,
}

func newSvcHistogram(subsystem, name, help string, labels prometheus.Labels) prometheus.Histogram {
	return prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: Namespace, Subsystem: subsystem, Name: name, Help: help,
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

// seriesKey identifies a series set across reloads: same name and same label
// names and values keep their counters and histograms.
func seriesKey(name string, labelNames, values []string) string {
	return name + "\x00" + strings.Join(labelNames, "\x01") + "\x00" + strings.Join(values, "\x01")
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
	name := func(n string) string { return prometheus.BuildFQName(Namespace, subsystem, prefix+n) }
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
		ch <- prometheus.MustNewConstMetric(d.success, prometheus.GaugeValue, svcBool(s.success), lv...)
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

func (s *svcScheduler) stop() { s.apply(nil) }

// bindConn makes conn obey ctx: its deadline, and closed when ctx is canceled,
// so no read or write on it can outlive the probe.
func bindConn(ctx context.Context, conn net.Conn) func() bool {
	if d, ok := ctx.Deadline(); ok {
		conn.SetDeadline(d)
	}
	return context.AfterFunc(ctx, func() { conn.Close() })
}

// dialTimed connects from where netnsDo puts sockets; d is the connect time
// alone (the TCP handshake for tcp).
func dialTimed(ctx context.Context, network, addr string) (conn net.Conn, d time.Duration, err error) {
	err = netnsDo(func() error {
		start := time.Now()
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		d = time.Since(start)
		conn = c
		return err
	})
	return conn, d, err
}

// netReason sorts a connect error into a bounded set of reasons.
func netReason(ctx context.Context, err error) string {
	var ne net.Error
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded), errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.EADDRNOTAVAIL):
		return "unreachable"
	}
	return "other"
}

// systemResolvers are the nameservers of /etc/resolv.conf under --path.rootfs.
// Unlike glibc, an empty list is an error rather than 127.0.0.1: a probe
// should not quietly ask a server nobody configured.
func systemResolvers() ([]string, error) {
	path := rootfsFilePath("etc", "resolv.conf")
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []string
	for line := range strings.Lines(string(b)) {
		if i := strings.IndexAny(line, "#;"); i >= 0 {
			line = line[:i]
		}
		fs := strings.Fields(line)
		if len(fs) < 2 || fs[0] != "nameserver" {
			continue
		}
		if a, err := netip.ParseAddr(fs[1]); err == nil {
			out = append(out, net.JoinHostPort(a.String(), "53"))
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no usable nameserver in %s", path)
	}
	return out, nil
}

// hostsLookup reads /etc/hosts under --path.rootfs, as the system resolver
// would before asking DNS.
func hostsLookup(host string, fam config.Family) (netip.Addr, bool) {
	f, err := os.Open(rootfsFilePath("etc", "hosts"))
	if err != nil {
		return netip.Addr{}, false
	}
	defer f.Close()
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	var v4, v6 netip.Addr
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		fs := strings.Fields(line)
		if len(fs) < 2 {
			continue
		}
		a, err := netip.ParseAddr(fs[0])
		if err != nil || !slices.ContainsFunc(fs[1:], func(n string) bool { return strings.EqualFold(n, host) }) {
			continue
		}
		if a.Is4() && !v4.IsValid() {
			v4 = a
		} else if a.Is6() && !v6.IsValid() {
			v6 = a
		}
	}
	return pickFamily(fam, v4, v6)
}

func pickFamily(fam config.Family, v4, v6 netip.Addr) (netip.Addr, bool) {
	switch {
	case fam != config.FamilyIP6 && v4.IsValid():
		return v4, true
	case fam != config.FamilyIP4 && v6.IsValid():
		return v6, true
	}
	return netip.Addr{}, false
}

// errNoAddress is a lookup that was answered without an address to use.
var errNoAddress = errors.New("no address")

// lookupHost resolves host for a probe: /etc/hosts and then the system
// nameservers, or only the given resolver. It is a stub resolver: the next
// nameserver is asked only when one fails to answer, and auto asks A and AAAA
// at once, preferring IPv4.
func lookupHost(ctx context.Context, host string, fam config.Family, resolver string) (netip.Addr, error) {
	servers := []string{resolver}
	if resolver == "" {
		if a, ok := hostsLookup(host, fam); ok {
			return a, nil
		}
		var err error
		if servers, err = systemResolvers(); err != nil {
			return netip.Addr{}, err
		}
	}
	var types []uint16
	switch fam {
	case config.FamilyIP4:
		types = []uint16{dnsmsg.TypeA}
	case config.FamilyIP6:
		types = []uint16{dnsmsg.TypeAAAA}
	default:
		types = []uint16{dnsmsg.TypeA, dnsmsg.TypeAAAA}
	}
	var lastErr error
	for i, srv := range servers {
		// Leave the later servers their share of the time.
		sctx, cancel := ctx, context.CancelFunc(func() {})
		if dl, ok := ctx.Deadline(); ok && i < len(servers)-1 {
			sctx, cancel = context.WithTimeout(ctx, time.Until(dl)/time.Duration(len(servers)-i))
		}
		addrs := make([]netip.Addr, len(types))
		errs := make([]error, len(types))
		var wg sync.WaitGroup
		for k, qt := range types {
			wg.Go(func() {
				r, _, err := dnsExchange(sctx, srv, dnsmsg.NewQuery(dnsID(), host, qt), "udp")
				switch {
				case err != nil:
					errs[k] = err
				case r.Rcode != dnsmsg.RcodeSuccess:
					errs[k] = fmt.Errorf("%s %s: %s from %s", host, dnsmsg.TypeString(qt), dnsmsg.RcodeString(r.Rcode), srv)
				default:
					for _, a := range r.Addrs {
						if a.Is4() == (qt == dnsmsg.TypeA) {
							addrs[k] = a
							break
						}
					}
				}
			})
		}
		wg.Wait()
		cancel()
		var v4, v6 netip.Addr
		for k, qt := range types {
			if qt == dnsmsg.TypeA {
				v4 = addrs[k]
			} else {
				v6 = addrs[k]
			}
		}
		if a, ok := pickFamily(fam, v4, v6); ok {
			return a, nil
		}
		answered := false
		for _, e := range errs {
			if e == nil {
				answered = true
			}
		}
		lastErr = errors.Join(errs...)
		if answered || ctx.Err() != nil {
			// An answer without an address (NODATA) is final, as is running out of time.
			break
		}
	}
	if ctx.Err() != nil {
		return netip.Addr{}, ctx.Err()
	}
	if lastErr == nil {
		lastErr = errNoAddress
	}
	return netip.Addr{}, fmt.Errorf("%s has no %s address: %w", host, fam, lastErr)
}

// dnsExchange asks server (ip:port) over proto; a truncated UDP answer is
// asked again over TCP (tcpFallback true).
func dnsExchange(ctx context.Context, server string, q dnsmsg.Query, proto string) (r *dnsmsg.Reply, tcpFallback bool, err error) {
	if proto != "tcp" {
		q.EDNS = true // and for the TCP retry too, as a resolver would
		r, err = dnsExchangeOnce(ctx, "udp", server, q)
		if err != nil || !r.Truncated {
			return r, false, err
		}
		tcpFallback = true
	}
	r, err = dnsExchangeOnce(ctx, "tcp", server, q)
	return r, tcpFallback, err
}

func dnsExchangeOnce(ctx context.Context, network, server string, q dnsmsg.Query) (*dnsmsg.Reply, error) {
	conn, _, err := dialTimed(ctx, network, server)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	defer bindConn(ctx, conn)()
	r, err := dnsmsg.Exchange(conn, network == "tcp", q)
	if err != nil && ctx.Err() != nil {
		return nil, fmt.Errorf("%w (%v)", ctx.Err(), err)
	}
	return r, err
}

func svcBool(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// dnsID is a query ID an off-path forger cannot guess.
func dnsID() uint16 { return uint16(rand.Uint32()) }
