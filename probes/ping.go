package probes

import (
	"context"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/procfs"

	"github.com/smokemon/smokemon/collector"
	"github.com/smokemon/smokemon/internal/config"
	"github.com/smokemon/smokemon/internal/pinger"
)

// The ping collector probes continuously on its own clock; a scrape only
// reads what the engine has counted.

var pingSocket = kingpin.Flag("ping.socket", "ICMP socket kind: auto (raw if permitted, else unprivileged datagram), raw or dgram.").
	Default("auto").Enum("auto", "raw", "dgram")

// At 10 000 targets the classic buckets are 22 series a target and most of
// a scrape's memory; a server that scrapes native histograms (Prometheus 3
// with scrape_native_histograms, over protobuf) needs only the native half.
var pingHistogram = kingpin.Flag("ping.histogram", "Which RTT histogram to keep and expose: both (classic buckets and native), classic, or native (native only: one series a target, for large target counts; needs a server that scrapes native histograms over protobuf).").
	Default("both").Enum("both", "classic", "native")

// RTT buckets from 20µs (loopback, LAN) to 20s (a stalled cellular link), in
// 1-2-5 steps so the le values read well.
var pingBuckets = []float64{
	20e-6, 50e-6, 100e-6, 200e-6, 500e-6,
	1e-3, 2e-3, 5e-3, 10e-3, 20e-3, 50e-3, 100e-3, 200e-3, 500e-3,
	1, 2, 5, 10, 20,
}

func init() {
	register("ping", newPingCollector)
}

type pingCollector struct {
	logger *slog.Logger
	deps   Deps
	engine *pinger.Engine

	mu         sync.Mutex
	entries    []*pingEntry
	stats      map[statsKey]*pingStats
	resolveErr map[string]*atomic.Uint64
	labelNames []string
	resolveIv  time.Duration

	kick chan struct{}
	stop chan struct{}
	done sync.WaitGroup

	descs pingDescs
}

type statsKey struct {
	name string
	fam  pinger.Family
}

// pingEntry is one configured target in one address family.
type pingEntry struct {
	cfg       config.Target
	famChoice config.Family // ip4, ip6 or auto ("both" is split into two entries)
	labels    []string      // values for the collector's labelNames

	// Guarded by pingCollector.mu.
	resolvePairs []*dto.LabelPair // of resolve_errors_total, built at the first scrape
	addr         netip.Addr
	stats        *pingStats
	handle       *pinger.Target
	nextResolve  time.Time
	lastErr      string
}

// pingStats are a target's counters; the engine calls its Handler methods.
type pingStats struct {
	key      statsKey
	labels   []string
	pairs    []*dto.LabelPair // target, family and custom labels, built once
	infoAddr netip.Addr
	info     []*dto.LabelPair // pairs of target_info for infoAddr
	sent     atomic.Uint64
	received atomic.Uint64
	lost     atomic.Uint64
	dups     atomic.Uint64
	ttl      atomic.Int64 // -1 until a reply carried one
	hist     *rttHistogram

	errMu      sync.Mutex
	sendErrors map[string]uint64
}

func (s *pingStats) Sent()      { s.sent.Add(1) }
func (s *pingStats) Duplicate() { s.dups.Add(1) }
func (s *pingStats) Lost()      { s.lost.Add(1) }
func (s *pingStats) Reply(rtt time.Duration, ttl int) {
	s.received.Add(1)
	s.hist.Observe(rtt.Seconds())
	if ttl >= 0 {
		s.ttl.Store(int64(ttl))
	}
}
func (s *pingStats) SendError(reason string) {
	s.errMu.Lock()
	s.sendErrors[reason]++
	s.errMu.Unlock()
}

type pingDescs struct {
	sent, received, lost, dups, sendErrors, ttl, info, up, resolveErrors, rtt *prometheus.Desc
	proberUp, proberInfo, unmatched                                           *prometheus.Desc
}

func newPingCollector(logger *slog.Logger, cfg *config.Config, deps Deps) (collector.Collector, error) {
	if _, err := procfs.NewFS(deps.ProcPath); err != nil {
		return nil, err
	}
	var kind pinger.SocketKind
	if *pingSocket != "auto" {
		kind = pinger.SocketKind(*pingSocket)
	}
	// A failed engine is not a failed collector: the prober-down metrics say
	// so and every other collector keeps working.
	eng, err := pinger.New(logger, pinger.Options{Socket: kind})
	if eng == nil {
		return nil, err
	}
	if err != nil {
		logger.Error("no ICMP socket could be opened; ping metrics will report the prober down", "err", err)
	}
	c := &pingCollector{
		logger:     logger,
		deps:       deps,
		engine:     eng,
		stats:      map[statsKey]*pingStats{},
		resolveErr: map[string]*atomic.Uint64{},
		kick:       make(chan struct{}, 1),
		stop:       make(chan struct{}),
	}
	if err := collector.Apply(c, cfg); err != nil {
		return nil, err
	}
	c.done.Add(1)
	go c.resolveLoop()
	return c, nil
}

// Prepare builds the new target list; on commit, targets whose name, family
// and labels are unchanged keep their counters and histograms.
func (c *pingCollector) Prepare(cfg *config.Config) (func(), error) {
	ls := newLabelSet(cfg.Global.Labels, ownLabels(cfg.Ping.Targets, func(t config.Target) map[string]string { return t.Labels })...)
	var next []*pingEntry
	for _, t := range cfg.Ping.Targets {
		for _, f := range t.Family.Each() {
			next = append(next, &pingEntry{cfg: t, famChoice: f, labels: ls.values(t.Labels)})
		}
	}
	resolveIv := time.Duration(cfg.Global.ResolveInterval)
	return func() { c.commit(ls.names, next, resolveIv) }, nil
}

func (e *pingEntry) key() string { return e.cfg.Name + "/" + string(e.famChoice) }

func (c *pingCollector) commit(labelNames []string, next []*pingEntry, resolveIv time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	labelsChanged := !slices.Equal(labelNames, c.labelNames)
	c.labelNames = labelNames
	c.descs = newPingDescs(labelNames)
	entries, gone := reconcile(c.entries, next, (*pingEntry).key, func(e, o *pingEntry) *pingEntry {
		if o.cfg.Host == e.cfg.Host {
			e.addr, e.nextResolve, e.lastErr = o.addr, o.nextResolve, o.lastErr
		}
		if !labelsChanged && slices.Equal(o.labels, e.labels) && o.stats != nil {
			e.stats = o.stats
		}
		// Keep the engine's handle (and its place in the schedule) when
		// the same stats go on; attachLocked updates its settings.
		if o.handle != nil && e.stats == o.stats && e.addr.IsValid() {
			e.handle, o.handle = o.handle, nil
		}
		return e
	})
	for _, o := range gone {
		if o.handle != nil {
			c.engine.Remove(o.handle)
		}
	}
	stats := map[statsKey]*pingStats{}
	resolveErr := map[string]*atomic.Uint64{}
	for _, e := range entries {
		if r, ok := c.resolveErr[e.cfg.Name]; ok {
			resolveErr[e.cfg.Name] = r
		} else if _, ok := resolveErr[e.cfg.Name]; !ok {
			resolveErr[e.cfg.Name] = new(atomic.Uint64)
		}
		if e.stats != nil {
			stats[e.stats.key] = e.stats
		}
		// Literal addresses need no lookup: start probing right away.
		if ip, err := netip.ParseAddr(e.cfg.Host); err == nil {
			e.addr = ip.Unmap()
		}
		if e.addr.IsValid() {
			c.attachLocked(e, stats)
		}
	}
	c.entries, c.stats, c.resolveErr = entries, stats, resolveErr
	c.resolveIv = resolveIv
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// attachLocked (re)starts probing e at e.addr, with the stats of its family.
func (c *pingCollector) attachLocked(e *pingEntry, stats map[statsKey]*pingStats) {
	key := statsKey{e.cfg.Name, pinger.FamilyOf(e.addr)}
	if e.stats == nil || e.stats.key != key {
		if s, ok := stats[key]; ok && slices.Equal(s.labels, e.labels) {
			e.stats = s
		} else {
			e.stats = c.newStats(key, e.labels)
		}
		stats[key] = e.stats
	}
	set, err := c.settings(e)
	if err != nil {
		if e.lastErr != err.Error() {
			c.logger.Warn("cannot probe target", "target", e.cfg.Name, "err", err)
		}
		e.lastErr = err.Error()
		return
	}
	if e.handle != nil {
		c.engine.Update(e.handle, e.addr, set)
	} else {
		e.handle = c.engine.Add(e.addr, set, e.stats)
	}
}

func (c *pingCollector) settings(e *pingEntry) (pinger.Settings, error) {
	t := e.cfg
	s := pinger.Settings{
		Interval: t.IntervalD(),
		Timeout:  t.TimeoutD(),
		Size:     t.Size(),
		TOS:      t.TOSByte(),
	}
	if t.Source != "" {
		if src, err := netip.ParseAddr(t.Source); err == nil {
			if pinger.FamilyOf(src) != pinger.FamilyOf(e.addr) {
				return s, fmt.Errorf("source %s is not of the same family as %s", src, e.addr)
			}
			s.Source = src.Unmap()
		} else {
			ifi, err := net.InterfaceByName(t.Source)
			if err != nil {
				return s, fmt.Errorf("source interface %q: %w", t.Source, err)
			}
			s.IfIndex = ifi.Index
		}
	}
	return s, nil
}

func (c *pingCollector) newStats(key statsKey, labels []string) *pingStats {
	s := &pingStats{key: key, labels: labels, sendErrors: map[string]uint64{}}
	s.pairs = prometheus.MakeLabelPairs(c.descs.sent, append([]string{key.name, key.fam.String()}, labels...))
	s.ttl.Store(-1)
	s.hist = newRTTHistogram(c.descs.rtt, s.pairs, pingBuckets, histogramModes[*pingHistogram], c.deps.Now)
	return s
}

// resolveLoop looks host names up again every resolve interval (sooner after
// a failure), so a changed address is followed and a failed lookup recovers.
func (c *pingCollector) resolveLoop() {
	defer c.done.Done()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		c.resolveDue()
		select {
		case <-tick.C:
		case <-c.kick:
		case <-c.stop:
			return
		}
	}
}

func (c *pingCollector) resolveDue() {
	now := time.Now()
	c.mu.Lock()
	var due []*pingEntry
	for _, e := range c.entries {
		if _, err := netip.ParseAddr(e.cfg.Host); err == nil {
			continue
		}
		if !now.Before(e.nextResolve) {
			due = append(due, e)
		}
	}
	c.mu.Unlock()
	for _, e := range due {
		addr, err := c.lookup(e)
		c.mu.Lock()
		if !slices.Contains(c.entries, e) { // reloaded meanwhile
			c.mu.Unlock()
			continue
		}
		if err != nil {
			c.resolveErr[e.cfg.Name].Add(1)
			if e.lastErr != err.Error() {
				c.logger.Warn("cannot resolve target; it is down until a lookup succeeds", "target", e.cfg.Name, "host", e.cfg.Host, "err", err, "retry_in", resolveRetry)
			}
			e.lastErr = err.Error()
			e.nextResolve = now.Add(resolveRetry)
			if e.handle != nil {
				c.engine.Remove(e.handle)
				e.handle = nil
			}
			e.addr = netip.Addr{}
			c.mu.Unlock()
			continue
		}
		if e.lastErr != "" {
			c.logger.Info("target resolved again", "target", e.cfg.Name, "ip", addr)
		}
		e.lastErr = ""
		e.nextResolve = now.Add(c.resolveIv)
		if addr != e.addr || e.handle == nil {
			if e.addr.IsValid() && addr != e.addr {
				c.logger.Info("target address changed", "target", e.cfg.Name, "old", e.addr, "new", addr)
			}
			if e.handle != nil && pinger.FamilyOf(addr) != pinger.FamilyOf(e.addr) {
				c.engine.Remove(e.handle) // a new family is a new series
				e.handle = nil
			}
			e.addr = addr
			c.attachLocked(e, c.stats)
		}
		c.mu.Unlock()
	}
}

func (c *pingCollector) lookup(e *pingEntry) (netip.Addr, error) {
	if e.cfg.Host == config.GatewayKeyword {
		return c.gateway(e.famChoice)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return lookupFamily(ctx, c.deps.Resolver, e.cfg.Host, e.famChoice)
}

// lookupFamily looks host up with r and picks an address of family f (auto:
// IPv4 first).
func lookupFamily(ctx context.Context, r *net.Resolver, host string, f config.Family) (netip.Addr, error) {
	addrs, err := r.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return netip.Addr{}, err
	}
	for _, want := range familyPreference(f) {
		for _, a := range addrs {
			if pinger.FamilyOf(a) == want {
				return a.Unmap(), nil
			}
		}
	}
	return netip.Addr{}, fmt.Errorf("%s has no %s address", host, f)
}

func familyPreference(f config.Family) []pinger.Family {
	switch f {
	case config.FamilyIP4:
		return []pinger.Family{pinger.IPv4}
	case config.FamilyIP6:
		return []pinger.Family{pinger.IPv6}
	}
	return []pinger.Family{pinger.IPv4, pinger.IPv6}
}

// gateway reads the default route's gateway from --path.procfs.
func (c *pingCollector) gateway(f config.Family) (netip.Addr, error) {
	for _, want := range familyPreference(f) {
		if want == pinger.IPv4 {
			fs, err := procfs.NewFS(c.deps.ProcPath)
			if err != nil {
				continue
			}
			routes, err := fs.NetRoute()
			if err != nil {
				continue
			}
			for _, r := range routes {
				if r.Destination == 0 && r.Mask == 0 && r.Gateway != 0 {
					g := r.Gateway // little-endian in /proc/net/route
					return netip.AddrFrom4([4]byte{byte(g), byte(g >> 8), byte(g >> 16), byte(g >> 24)}), nil
				}
			}
			continue
		}
		if a, err := ipv6DefaultGateway(filepath.Join(c.deps.ProcPath, "net", "ipv6_route")); err == nil {
			return a, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("no default %s gateway in the routing table", f)
}

// Update reports what the engine counted; it never sends a probe.
func (c *pingCollector) Update(ch chan<- prometheus.Metric) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	d := c.descs
	for _, fam := range []pinger.Family{pinger.IPv4, pinger.IPv6} {
		up, ts := 0.0, "none"
		st := c.engine.Status(fam)
		if st.Up {
			up, ts = 1, "user"
			if st.KernelTimestamps {
				ts = "kernel"
			}
		}
		ch <- prometheus.MustNewConstMetric(d.proberUp, prometheus.GaugeValue, up, fam.String())
		ch <- prometheus.MustNewConstMetric(d.proberInfo, prometheus.GaugeValue, 1, fam.String(), string(st.Kind), ts)
	}
	ch <- prometheus.MustNewConstMetric(d.unmatched, prometheus.CounterValue, float64(c.engine.Counters.Late.Load()), "late")
	ch <- prometheus.MustNewConstMetric(d.unmatched, prometheus.CounterValue, float64(c.engine.Counters.Foreign.Load()), "foreign")
	ch <- prometheus.MustNewConstMetric(d.unmatched, prometheus.CounterValue, float64(c.engine.Counters.Mismatch.Load()), "address_mismatch")

	seen := make(map[string]bool, len(c.entries))
	for _, e := range c.entries {
		if !seen[e.cfg.Name] {
			seen[e.cfg.Name] = true
			if e.resolvePairs == nil {
				e.resolvePairs = prometheus.MakeLabelPairs(d.resolveErrors, append([]string{e.cfg.Name}, e.labels...))
			}
			ch <- &pairsMetric{d.resolveErrors, e.resolvePairs, dto.MetricType_COUNTER, float64(c.resolveErr[e.cfg.Name].Load())}
		}
		fam := pinger.IPv4
		switch {
		case e.addr.IsValid():
			fam = pinger.FamilyOf(e.addr)
		case e.stats != nil:
			fam = e.stats.key.fam
		case e.famChoice == config.FamilyIP6:
			fam = pinger.IPv6
		}
		up := 0.0
		if e.handle != nil && c.engine.Status(fam).Up {
			up = 1
		}
		s := e.stats
		if s == nil { // never resolved: no counters yet, just say so
			ip := ""
			if e.addr.IsValid() {
				ip = e.addr.String()
			}
			lv := append([]string{e.cfg.Name, fam.String()}, e.labels...)
			ch <- prometheus.MustNewConstMetric(d.up, prometheus.GaugeValue, up, lv...)
			ch <- prometheus.MustNewConstMetric(d.info, prometheus.GaugeValue, 1, append(lv, e.cfg.Host, ip)...)
			continue
		}
		if s.info == nil || s.infoAddr != e.addr {
			ip := ""
			if e.addr.IsValid() {
				ip = e.addr.String()
			}
			s.infoAddr = e.addr
			s.info = prometheus.MakeLabelPairs(d.info, append([]string{s.key.name, s.key.fam.String()}, append(slices.Clone(s.labels), e.cfg.Host, ip)...))
		}
		ch <- &pairsMetric{d.up, s.pairs, dto.MetricType_GAUGE, up}
		ch <- &pairsMetric{d.info, s.info, dto.MetricType_GAUGE, 1}
		ch <- &pairsMetric{d.sent, s.pairs, dto.MetricType_COUNTER, float64(s.sent.Load())}
		ch <- &pairsMetric{d.received, s.pairs, dto.MetricType_COUNTER, float64(s.received.Load())}
		ch <- &pairsMetric{d.lost, s.pairs, dto.MetricType_COUNTER, float64(s.lost.Load())}
		ch <- &pairsMetric{d.dups, s.pairs, dto.MetricType_COUNTER, float64(s.dups.Load())}
		if ttl := s.ttl.Load(); ttl >= 0 {
			ch <- &pairsMetric{d.ttl, s.pairs, dto.MetricType_GAUGE, float64(ttl)}
		}
		s.errMu.Lock()
		for reason, n := range s.sendErrors {
			lv := append([]string{s.key.name, s.key.fam.String()}, append(slices.Clone(s.labels), reason)...)
			ch <- prometheus.MustNewConstMetric(d.sendErrors, prometheus.CounterValue, float64(n), lv...)
		}
		s.errMu.Unlock()
		ch <- s.hist
	}
	return nil
}

// Close stops the engine and the resolver.
func (c *pingCollector) Close() error {
	close(c.stop)
	c.done.Wait()
	return c.engine.Close()
}

func newPingDescs(custom []string) pingDescs {
	tl := append([]string{"target", "family"}, custom...)
	name := func(n string) string { return prometheus.BuildFQName(collector.Namespace, "ping", n) }
	return pingDescs{
		sent:          prometheus.NewDesc(name("sent_total"), "Echo requests sent, or attempted when the kernel refused them (see send_errors_total).", tl, nil),
		received:      prometheus.NewDesc(name("received_total"), "Echo replies received within the timeout (first reply per request).", tl, nil),
		lost:          prometheus.NewDesc(name("lost_total"), "Echo requests with no reply within the timeout, or that could not be sent. Loss ratio: increase(lost) / increase(sent).", tl, nil),
		dups:          prometheus.NewDesc(name("duplicates_total"), "Extra replies to an already answered request.", tl, nil),
		sendErrors:    prometheus.NewDesc(name("send_errors_total"), "Echo requests the kernel refused to send, by reason.", append(slices.Clone(tl), "reason"), nil),
		rtt:           prometheus.NewDesc(name("rtt_seconds"), "Round-trip time of answered echo requests. Lost probes are never observed here.", tl, nil),
		ttl:           prometheus.NewDesc(name("reply_ttl"), "IP TTL (IPv6 hop limit) of the latest reply.", tl, nil),
		info:          prometheus.NewDesc(name("target_info"), "The configured host of a target and the address it currently resolves to (empty while unresolved).", append(slices.Clone(tl), "host", "ip"), nil),
		up:            prometheus.NewDesc(name("target_up"), "1 if the target has an address and is being probed; 0 while unresolved or while its family's prober is down.", tl, nil),
		resolveErrors: prometheus.NewDesc(name("resolve_errors_total"), "Failed lookups of the target's host name (or default gateway).", append([]string{"target"}, custom...), nil),
		proberUp:      prometheus.NewDesc(name("prober_up"), "1 if the ICMP socket of this address family is open.", []string{"family"}, nil),
		proberInfo:    prometheus.NewDesc(name("prober_info"), "How the prober of a family works: socket (raw, dgram, none) and receive timestamps (kernel, user, none).", []string{"family", "socket", "timestamps"}, nil),
		unmatched:     prometheus.NewDesc(name("unmatched_replies_total"), "Replies matched to no probe: late (after the timeout), foreign (our identifier, not our token), address_mismatch (from another address).", []string{"reason"}, nil),
	}
}

// ipv6DefaultGateway reads /proc/net/ipv6_route, which procfs does not parse:
// the default route is ::/0 with a next hop, lowest metric first. (A seq_file
// with no poll method: os.ReadFile reads it with blocking reads.)
func ipv6DefaultGateway(path string) (netip.Addr, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return netip.Addr{}, err
	}
	var best netip.Addr
	bestMetric := uint64(1<<64 - 1)
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 10 || f[1] != "00" || strings.Trim(f[0], "0") != "" {
			continue
		}
		hop, err := hex.DecodeString(f[4])
		if err != nil || len(hop) != 16 {
			continue
		}
		a := netip.AddrFrom16([16]byte(hop))
		if a.IsUnspecified() {
			continue
		}
		metric, err := strconv.ParseUint(f[5], 16, 64)
		if err != nil {
			continue
		}
		if metric < bestMetric {
			best, bestMetric = a, metric
		}
	}
	if !best.IsValid() {
		return best, fmt.Errorf("no IPv6 default route with a next hop")
	}
	return best, nil
}

// pairsMetric is a constant sample whose label pairs were built once per
// target: rebuilding them on every scrape was most of a large scrape's garbage.
type pairsMetric struct {
	desc  *prometheus.Desc
	pairs []*dto.LabelPair
	typ   dto.MetricType
	v     float64
}

func (m *pairsMetric) Desc() *prometheus.Desc { return m.desc }

func (m *pairsMetric) Write(out *dto.Metric) error {
	out.Label = m.pairs
	if m.typ == dto.MetricType_COUNTER {
		out.Counter = &dto.Counter{Value: &m.v}
	} else {
		out.Gauge = &dto.Gauge{Value: &m.v}
	}
	return nil
}
