package probes

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"slices"
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

	fams *pingFamilies
}

type statsKey struct {
	name string
	fam  pinger.Family
}

// pingEntry is one configured target in one address family.
type pingEntry struct {
	cfg       *config.Target
	famChoice config.Family // ip4, ip6 or auto ("both" is split into two entries)
	labels    []string      // values for the collector's labelNames

	// Guarded by pingCollector.mu.
	addr        netip.Addr
	ipOf        netip.Addr // the addr ip was written from
	ip          string     // addr as target_info's ip label: "" while unresolved
	stats       *pingStats
	handle      *pinger.Target
	nextResolve time.Time
	lastErr     string
}

// pingStats are a target's counters; the engine calls its Handler methods.
type pingStats struct {
	key      statsKey
	labels   []string
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
	if s.sendErrors == nil { // most targets never have one: no map until then
		s.sendErrors = map[string]uint64{}
	}
	s.sendErrors[reason]++
	s.errMu.Unlock()
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
	for i := range cfg.Ping.Targets {
		t := &cfg.Ping.Targets[i] // a config in force is never changed: share it
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
	c.fams = newPingFamilies(labelNames)
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
	s := &pingStats{key: key, labels: labels}
	s.ttl.Store(-1)
	s.hist = newRTTHistogram(pingBuckets, histogramModes[*pingHistogram], c.deps.Now)
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

// Update sends the stream as constant metrics, for gatherers.
func (c *pingCollector) Update(ch chan<- prometheus.Metric) error {
	c.mu.Lock()
	fams := c.fams
	c.mu.Unlock()
	return collector.StreamUpdate(c, fams.desc, ch)
}

// pingRow is what a scrape reports of one entry, copied under c.mu so
// that the stream, which waits on the client, holds no lock.
type pingRow struct {
	name, fam, host, ip string
	labels              []string
	up                  float64
	stats               *pingStats // nil until the entry first resolved
	resolveErrors       *atomic.Uint64
	firstOfName         bool // the first entry of its name: resolve errors are per name
}

// rowPool keeps the rows of back-to-back scrapes: a 10 000-target copy is
// 1.4 MB, most of what a scrape would allocate.
var rowPool sync.Pool

func (c *pingCollector) rows() (*pingFamilies, [2]pinger.FamilyStatus, *[]pingRow) {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := [2]pinger.FamilyStatus{c.engine.Status(pinger.IPv4), c.engine.Status(pinger.IPv6)}
	p, _ := rowPool.Get().(*[]pingRow)
	if p == nil {
		p = new([]pingRow)
	}
	*p = slices.Grow((*p)[:0], len(c.entries))[:len(c.entries)]
	rows := *p
	seen := make(map[string]bool, len(c.entries))
	for i, e := range c.entries {
		fam := pinger.IPv4
		switch {
		case e.addr.IsValid():
			fam = pinger.FamilyOf(e.addr)
		case e.stats != nil:
			fam = e.stats.key.fam
		case e.famChoice == config.FamilyIP6:
			fam = pinger.IPv6
		}
		if e.ipOf != e.addr {
			e.ipOf, e.ip = e.addr, ""
			if e.addr.IsValid() {
				e.ip = e.addr.String()
			}
		}
		r := &rows[i]
		*r = pingRow{name: e.cfg.Name, fam: fam.String(), host: e.cfg.Host, ip: e.ip, labels: e.labels,
			stats: e.stats, resolveErrors: c.resolveErr[e.cfg.Name], firstOfName: !seen[e.cfg.Name]}
		seen[e.cfg.Name] = true
		if e.handle != nil && st[familyIndex(fam)].Up {
			r.up = 1
		}
		if e.stats != nil {
			r.name, r.labels = e.stats.key.name, e.stats.labels
		}
	}
	return c.fams, st, p
}

func familyIndex(f pinger.Family) int {
	if f == pinger.IPv6 {
		return 1
	}
	return 0
}

// Stream reports what the engine counted, family by family in name order;
// it never sends a probe.
func (c *pingCollector) Stream(emit func(*dto.MetricFamily) error) error {
	f, st, p := c.rows()
	rows := *p
	defer func() {
		clear(rows) // drop the references to stats and labels
		rowPool.Put(p)
	}()
	ck := getChunker(emit)
	defer putChunker(ck)
	var lv []string
	labels := func(r *pingRow, extra ...string) []string {
		lv = append(append(append(lv[:0], r.name, r.fam), r.labels...), extra...)
		return lv
	}
	each := func(fam *family, fn func(r *pingRow)) {
		ck.begin(fam)
		for i := range rows {
			fn(&rows[i])
		}
	}
	counter := func(fam *family, v func(s *pingStats) uint64) {
		each(fam, func(r *pingRow) {
			if r.stats != nil {
				ck.counter(float64(v(r.stats)), labels(r)...)
			}
		})
	}
	counter(f.dups, func(s *pingStats) uint64 { return s.dups.Load() })
	counter(f.lost, func(s *pingStats) uint64 { return s.lost.Load() })
	ck.begin(f.proberInfo)
	for i, fam := range []pinger.Family{pinger.IPv4, pinger.IPv6} {
		ts := "none"
		if st[i].Up {
			ts = map[bool]string{true: "kernel", false: "user"}[st[i].KernelTimestamps]
		}
		ck.gauge(1, fam.String(), string(st[i].Kind), ts)
	}
	ck.begin(f.proberUp)
	for i, fam := range []pinger.Family{pinger.IPv4, pinger.IPv6} {
		ck.gauge(boolValue(st[i].Up), fam.String())
	}
	counter(f.received, func(s *pingStats) uint64 { return s.received.Load() })
	each(f.ttl, func(r *pingRow) {
		if r.stats != nil {
			if ttl := r.stats.ttl.Load(); ttl >= 0 {
				ck.gauge(float64(ttl), labels(r)...)
			}
		}
	})
	each(f.resolveErrors, func(r *pingRow) {
		if r.firstOfName {
			lv = append(append(lv[:0], r.name), r.labels...)
			ck.counter(float64(r.resolveErrors.Load()), lv...)
		}
	})
	each(f.rtt, func(r *pingRow) {
		if r.stats != nil {
			ck.histogram(r.stats.hist, labels(r)...)
		}
	})
	each(f.sendErrors, func(r *pingRow) {
		if r.stats == nil {
			return
		}
		r.stats.errMu.Lock()
		if len(r.stats.sendErrors) == 0 {
			r.stats.errMu.Unlock()
			return
		}
		defer r.stats.errMu.Unlock()
		for _, reason := range slices.Sorted(maps.Keys(r.stats.sendErrors)) {
			ck.counter(float64(r.stats.sendErrors[reason]), labels(r, reason)...)
		}
	})
	counter(f.sent, func(s *pingStats) uint64 { return s.sent.Load() })
	each(f.info, func(r *pingRow) { ck.gauge(1, labels(r, r.host, r.ip)...) })
	each(f.up, func(r *pingRow) { ck.gauge(r.up, labels(r)...) })
	ck.begin(f.unmatched)
	ck.counter(float64(c.engine.Counters.Late.Load()), "late")
	ck.counter(float64(c.engine.Counters.Foreign.Load()), "foreign")
	ck.counter(float64(c.engine.Counters.Mismatch.Load()), "address_mismatch")
	return ck.end()
}

// Close stops the engine and the resolver.
func (c *pingCollector) Close() error {
	close(c.stop)
	c.done.Wait()
	return c.engine.Close()
}

// pingFamilies are the collector's families for the custom label names in force.
type pingFamilies struct {
	sent, received, lost, dups, sendErrors, ttl, info, up, resolveErrors, rtt *family
	proberUp, proberInfo, unmatched                                           *family
	byName                                                                    map[string]*family
}

func (f *pingFamilies) desc(name string) *prometheus.Desc {
	if fam := f.byName[name]; fam != nil {
		return fam.desc
	}
	return nil
}

func newPingFamilies(custom []string) *pingFamilies {
	tl := append([]string{"target", "family"}, custom...)
	with := func(extra ...string) []string { return append(slices.Clone(tl), extra...) }
	f := &pingFamilies{byName: map[string]*family{}}
	add := func(n, help string, typ dto.MetricType, labels []string) *family {
		fam := newFamily(prometheus.BuildFQName(collector.Namespace, "ping", n), help, typ, labels...)
		f.byName[fam.name] = fam
		return fam
	}
	counter, gauge := dto.MetricType_COUNTER, dto.MetricType_GAUGE
	f.sent = add("sent_total", "Echo requests sent, or attempted when the kernel refused them (see send_errors_total).", counter, tl)
	f.received = add("received_total", "Echo replies received within the timeout (first reply per request).", counter, tl)
	f.lost = add("lost_total", "Echo requests with no reply within the timeout, or that could not be sent. Loss ratio: increase(lost) / increase(sent).", counter, tl)
	f.dups = add("duplicates_total", "Extra replies to an already answered request.", counter, tl)
	f.sendErrors = add("send_errors_total", "Echo requests the kernel refused to send, by reason.", counter, with("reason"))
	f.rtt = add("rtt_seconds", "Round-trip time of answered echo requests. Lost probes are never observed here.", dto.MetricType_HISTOGRAM, tl)
	f.ttl = add("reply_ttl", "IP TTL (IPv6 hop limit) of the latest reply.", gauge, tl)
	f.info = add("target_info", "The configured host of a target and the address it currently resolves to (empty while unresolved).", gauge, with("host", "ip"))
	f.up = add("target_up", "1 if the target has an address and is being probed; 0 while unresolved or while its family's prober is down.", gauge, tl)
	f.resolveErrors = add("resolve_errors_total", "Failed lookups of the target's host name (or default gateway).", counter, append([]string{"target"}, custom...))
	f.proberUp = add("prober_up", "1 if the ICMP socket of this address family is open.", gauge, []string{"family"})
	f.proberInfo = add("prober_info", "How the prober of a family works: socket (raw, dgram, none) and receive timestamps (kernel, user, none).", gauge, []string{"family", "socket", "timestamps"})
	f.unmatched = add("unmatched_replies_total", "Replies matched to no probe: late (after the timeout), foreign (our identifier, not our token), address_mismatch (from another address).", counter, []string{"reason"})
	return f
}
