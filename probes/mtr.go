package probes

import (
	"context"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/smokemon/smokemon/collector"
	"github.com/smokemon/smokemon/internal/config"
	"github.com/smokemon/smokemon/internal/pinger"
	"github.com/smokemon/smokemon/internal/schedule"
)

// The mtr collector traces the path to each target continuously, mtr-style:
// every sweep sends one TTL-limited echo request per hop, all at once, and a
// round (one interval) is `probes` sweeps. Per hop it keeps counters and the
// RTT statistics of the last round; a scrape only reads them.
//
// Series are keyed by hop index, never by hop address: route churn changes
// the value of one info series instead of creating counters without bound.
//
// RTT per hop is exported as gauges of the last round (min, avg, max,
// stddev) plus a running sum of RTTs, not as a histogram. A histogram per hop
// costs ~22 series (classic buckets) times up to max_hops hops per target,
// about 660 series for one 30-hop target, for a figure mtr users read as
// best/avg/worst/stdev anyway. The gauges cost 4 series per hop and the
// sum, divided by received_total, gives the mean RTT over any range. The
// precise latency distribution of the destination is the ping collector's
// histogram.

// mtrStaleRounds is how many rounds in a row the trailing hops of a path
// whose end is not known must stay silent before they are dropped: one
// silent round is as often a rate-limited router as a changed path.
const mtrStaleRounds = 3

func init() {
	register("mtr", newMTRCollector)
}

type mtrCollector struct {
	logger *slog.Logger
	deps   Deps

	mu         sync.Mutex
	tracer     *pinger.Tracer            // nil while there are no targets
	rounds     *schedule.Loop[*mtrEntry] // starts rounds; nil while there are no targets
	entries    []*mtrEntry
	labelNames []string
	resolveIv  time.Duration
	descs      mtrDescs
}

// mtrEntry is one configured target in one address family, with the
// goroutine that probes it.
type mtrEntry struct {
	cfg       config.MTRTarget
	famChoice config.Family // ip4, ip6 or auto ("both" is split into two entries)
	labels    []string      // values for the collector's labelNames
	st        *mtrState
	sched     *schedule.Entry[*mtrEntry]
	due       chan struct{} // a round is due; room for one, so an overrun round is followed at once, not twice
	cancel    context.CancelFunc
	done      chan struct{}
}

// startRound tells e's goroutine a round is due, unless one is pending
// already; it runs on the rounds loop and never blocks.
func startRound(e *mtrEntry) {
	select {
	case e.due <- struct{}{}:
	default:
	}
}

// mtrState is what a target's goroutine learned; Update reads it.
type mtrState struct {
	mu          sync.Mutex
	addr        netip.Addr
	nextResolve time.Time
	lastErr     string
	fam         pinger.Family
	hops        []mtrHop // hops[k-1] is hop k; len is the hop count
	learned     bool     // a path has been seen
	reached     bool     // the destination answered in the last round
	dstHop      int      // the hop at which the destination last answered, 0 if never
	rounds      uint64
	changes     uint64
	resolveErrs uint64
	sendErrs    map[string]uint64
}

type mtrHop struct {
	addr           netip.Addr // the latest address that answered at this hop
	sent, received uint64
	rttSum         float64
	silent         int // rounds in a row without an answer
	// Last round's RTT statistics; n == 0 when nothing answered.
	n                   int
	min, avg, max, sdev float64
}

func newMTRCollector(logger *slog.Logger, cfg *config.Config, deps Deps) (collector.Collector, error) {
	return started(&mtrCollector{logger: logger, deps: deps}, cfg)
}

func (e *mtrEntry) key() string { return e.cfg.Name + "/" + string(e.famChoice) }

// Prepare builds the new target list; on commit, targets whose settings and
// labels are unchanged keep their goroutine, counters and learned path.
func (c *mtrCollector) Prepare(cfg *config.Config) (func(), error) {
	ls := newLabelSet(cfg.Global.Labels, ownLabels(cfg.MTR.Targets, func(t config.MTRTarget) map[string]string { return t.Labels })...)
	var next []*mtrEntry
	for _, t := range cfg.MTR.Targets {
		for _, f := range t.Family.Each() {
			next = append(next, &mtrEntry{cfg: t, famChoice: f, labels: ls.values(t.Labels)})
		}
	}
	resolveIv := time.Duration(cfg.Global.ResolveInterval)
	return func() { c.commit(ls.names, next, resolveIv) }, nil
}

func (c *mtrCollector) commit(labelNames []string, next []*mtrEntry, resolveIv time.Duration) {
	c.mu.Lock()
	sameLabels := slices.Equal(labelNames, c.labelNames)
	entries, gone := reconcile(c.entries, next, (*mtrEntry).key, func(e, o *mtrEntry) *mtrEntry {
		if sameLabels && slices.Equal(o.labels, e.labels) && reflect.DeepEqual(o.cfg, e.cfg) {
			return o
		}
		return e
	})
	var start []*mtrEntry
	for _, e := range entries {
		if e.st == nil {
			// Whole before Update can see it: a scrape may come while the
			// old goroutines stop.
			e.st = newMTRState(e)
			start = append(start, e)
		}
	}
	if len(entries) > 0 && c.tracer == nil {
		// A tracer that cannot open any socket still reports why, per family.
		tr, err := pinger.NewTracer(c.logger)
		if err != nil {
			c.logger.Error("no raw ICMP socket for path probing; mtr metrics will report the prober down", "err", err)
		}
		c.tracer = tr
		c.rounds = schedule.NewLoop(startRound)
	}
	c.entries, c.labelNames = entries, labelNames
	c.resolveIv = resolveIv
	c.descs = newMTRDescs(labelNames)
	rounds := c.rounds
	c.mu.Unlock()

	// Stop the old goroutines outside the lock: a scrape never waits for them.
	for _, o := range gone {
		rounds.Remove(o.sched)
		o.cancel()
	}
	for _, o := range gone {
		<-o.done
	}
	for _, e := range start {
		ctx, cancel := context.WithCancel(context.Background())
		e.cancel, e.done, e.due = cancel, make(chan struct{}), make(chan struct{}, 1)
		go c.run(ctx, e)
		// The shared scheduler spreads the targets over their interval, as
		// ping's and mesh's: a new one starts at its slot, not at once.
		e.sched = rounds.Add(e, e.cfg.IntervalD())
	}
	if len(entries) == 0 {
		c.mu.Lock()
		tr := c.tracer
		c.tracer, c.rounds = nil, nil
		c.mu.Unlock()
		if rounds != nil {
			rounds.Close()
		}
		if tr != nil {
			tr.Close() // idle: no sockets, no goroutines
		}
	}
}

// newMTRState is a new target's state: its family, and its address when
// the host is one.
func newMTRState(e *mtrEntry) *mtrState {
	st := &mtrState{sendErrs: map[string]uint64{}, fam: pinger.IPv4}
	if e.famChoice == config.FamilyIP6 {
		st.fam = pinger.IPv6
	}
	if ip, err := netip.ParseAddr(e.cfg.Host); err == nil {
		st.addr, st.fam = ip.Unmap(), pinger.FamilyOf(ip)
	}
	return st
}

// run probes one target until ctx ends. A round that ctx interrupts is
// dropped whole, so counters only ever hold complete rounds. Rounds start
// when the rounds loop says one is due: a round that overran (its last
// sweep's timeout, a slow lookup) is followed at once by the next one, and
// the slots missed in a suspend are skipped, never made up in a burst.
func (c *mtrCollector) run(ctx context.Context, e *mtrEntry) {
	defer close(e.done)
	c.mu.Lock()
	tr := c.tracer
	c.mu.Unlock()
	for {
		select {
		case <-ctx.Done():
			return
		case <-e.due:
		}
		begin := time.Now()
		if addr := c.resolve(ctx, e); addr.IsValid() {
			obs := c.round(ctx, e, tr, addr, begin)
			if ctx.Err() != nil {
				return
			}
			e.st.finish(obs, addr)
		}
	}
}

// resolve returns the target's address, looking its name up when due.
func (c *mtrCollector) resolve(ctx context.Context, e *mtrEntry) netip.Addr {
	st := e.st
	st.mu.Lock()
	addr, due := st.addr, !time.Now().Before(st.nextResolve)
	st.mu.Unlock()
	if _, err := netip.ParseAddr(e.cfg.Host); err == nil || !due {
		return addr
	}
	c.mu.Lock()
	iv := c.resolveIv
	c.mu.Unlock()
	lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	got, err := lookupFamily(lctx, c.deps.Resolver, e.cfg.Host, e.famChoice)
	st.mu.Lock()
	defer st.mu.Unlock()
	if err != nil {
		if ctx.Err() != nil {
			return netip.Addr{}
		}
		st.resolveErrs++
		if st.lastErr != err.Error() {
			c.logger.Warn("cannot resolve mtr target; it is skipped until a lookup succeeds", "target", e.cfg.Name, "host", e.cfg.Host, "err", err, "retry_in", resolveRetry)
		}
		st.lastErr = err.Error()
		st.nextResolve = time.Now().Add(resolveRetry)
		st.addr = netip.Addr{}
		return st.addr
	}
	st.lastErr = ""
	st.nextResolve = time.Now().Add(iv)
	if got != st.addr && st.addr.IsValid() {
		c.logger.Info("mtr target address changed", "target", e.cfg.Name, "old", st.addr, "new", got)
	}
	if fam := pinger.FamilyOf(got); fam != st.fam {
		// Another family is another set of series: start afresh.
		st.fam, st.hops, st.learned, st.reached, st.dstHop = fam, nil, false, false, 0
	}
	st.addr = got
	return got
}

// ttlObs is what one TTL saw during a round.
type ttlObs struct {
	sent, recv int
	rtts       []float64
	from       netip.Addr // the latest answer's source
	kind       pinger.ReplyKind
}

func (c *mtrCollector) settings(e *mtrEntry) pinger.TraceSettings {
	s := pinger.TraceSettings{Timeout: e.cfg.TimeoutD(), Size: *e.cfg.PacketSize}
	if src := e.cfg.Source; src != "" {
		if a, err := netip.ParseAddr(src); err == nil {
			s.Source = a.Unmap()
		} else if ifi, err := net.InterfaceByName(src); err == nil {
			s.IfIndex = ifi.Index
		}
	}
	return s
}

// round runs the sweeps of one interval. The first sweep goes to max_hops
// unless the path's end is known; every later one stops where the previous
// one found the end (the destination, or a router reporting it unreachable).
func (c *mtrCollector) round(ctx context.Context, e *mtrEntry, tr *pinger.Tracer, addr netip.Addr, begin time.Time) []ttlObs {
	maxHops, probes := e.cfg.MaxHops, e.cfg.Probes
	obs := make([]ttlObs, maxHops+1)
	e.st.mu.Lock()
	limit := maxHops
	if e.st.reached && len(e.st.hops) > 0 {
		limit = len(e.st.hops)
	}
	e.st.mu.Unlock()
	set := c.settings(e)
	if s := set.Source; s.IsValid() && pinger.FamilyOf(s) != pinger.FamilyOf(addr) {
		set.Source = netip.Addr{}
	}
	spacing := e.cfg.IntervalD() / time.Duration(probes)
	ttls := make([]int, 0, maxHops)
	var sendErrs map[string]uint64
	for k := 0; k < probes; k++ {
		if !sleep(ctx, time.Until(begin.Add(time.Duration(k)*spacing))) {
			return nil
		}
		full := limit == maxHops
		ttls = ttls[:0]
		for ttl := 1; ttl <= limit; ttl++ {
			ttls = append(ttls, ttl)
		}
		var res []pinger.HopReply
		if tr == nil {
			res = make([]pinger.HopReply, len(ttls))
			for i := range res {
				res[i] = pinger.HopReply{TTL: ttls[i], Err: "family_unavailable"}
			}
		} else {
			res = tr.Probe(ctx, addr, set, ttls)
		}
		if ctx.Err() != nil {
			return nil
		}
		end := 0
		for _, r := range res {
			o := &obs[r.TTL]
			o.sent++
			if r.Err != "" {
				if sendErrs == nil {
					sendErrs = map[string]uint64{}
				}
				sendErrs[r.Err]++
			}
			if r.Kind == pinger.NoReply {
				continue
			}
			o.recv++
			o.rtts = append(o.rtts, r.RTT.Seconds())
			o.from, o.kind = r.From, r.Kind
			if end == 0 && (r.Kind == pinger.EchoReply || r.Kind == pinger.Unreachable) {
				end = r.TTL
			}
		}
		limit = maxHops
		if end > 0 {
			limit = end
		}
		// The last sweep stopped short of max_hops and found no end: the path
		// got longer. One more sweep, at once, so that the round learns the
		// new path whole rather than counting a change in two steps.
		if k == probes-1 && end == 0 && !full {
			probes++
			spacing = 0
		}
	}
	e.st.mu.Lock()
	for k, v := range sendErrs {
		e.st.sendErrs[k] += v
	}
	e.st.mu.Unlock()
	return obs
}

// finish folds a round into the path and the per-hop counters.
func (st *mtrState) finish(obs []ttlObs, dst netip.Addr) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.rounds++
	maxHops := len(obs) - 1
	old := len(st.hops)
	end := 0
	for ttl := 1; ttl <= maxHops; ttl++ {
		if k := obs[ttl].kind; k == pinger.EchoReply || k == pinger.Unreachable {
			end = ttl
			break
		}
	}
	newLen, reached := 0, false
	if end > 0 {
		newLen = end
		reached = obs[end].kind == pinger.EchoReply || obs[end].from == dst
		// The destination answered only beyond its known hop, and nothing at
		// all answered in between: that is loss at the destination (every
		// probe at its TTL lost), not a longer path.
		if st.dstHop > 0 && st.dstHop == old && end > old && reached {
			quiet := true
			for ttl := old; ttl < end; ttl++ {
				quiet = quiet && obs[ttl].recv == 0
			}
			if quiet {
				newLen = old
			}
		}
	} else {
		// No end seen: keep the known path, dropping trailing hops only when
		// they have been silent for a few rounds, and grow it to the
		// farthest hop that answered.
		maxAns := 0
		for ttl := maxHops; ttl >= 1; ttl-- {
			if obs[ttl].recv > 0 {
				maxAns = ttl
				break
			}
		}
		newLen = min(old, maxHops)
		for newLen > maxAns && st.hops[newLen-1].silent+1 >= mtrStaleRounds {
			newLen--
		}
		newLen = max(newLen, maxAns)
	}

	changed := st.learned && newLen != old
	for k := 1; k <= min(old, newLen); k++ {
		if o, h := obs[k], st.hops[k-1]; o.recv > 0 && h.addr.IsValid() && o.from != h.addr {
			changed = true
		}
	}
	if changed {
		st.changes++
	}
	if newLen < old {
		st.hops = st.hops[:newLen] // stale hops vanish with their counters
	}
	for len(st.hops) < newLen {
		st.hops = append(st.hops, mtrHop{})
	}
	for k := 1; k <= newLen; k++ {
		o, h := obs[k], &st.hops[k-1]
		h.sent += uint64(o.sent)
		h.received += uint64(o.recv)
		h.n = len(o.rtts)
		if o.recv > 0 {
			h.addr = o.from
			h.silent = 0
		} else {
			h.silent++
		}
		h.min, h.avg, h.max, h.sdev = mtrRTTStats(o.rtts)
		for _, r := range o.rtts {
			h.rttSum += r
		}
	}
	st.reached = reached
	if reached {
		st.dstHop = newLen
	}
	if newLen > 0 {
		st.learned = true
	}
}

// mtrRTTStats are mtr's best, average, worst and (sample) standard deviation.
func mtrRTTStats(v []float64) (lo, avg, hi, sdev float64) {
	if len(v) == 0 {
		return 0, 0, 0, 0
	}
	lo, hi = v[0], v[0]
	var sum float64
	for _, x := range v {
		lo, hi = min(lo, x), max(hi, x)
		sum += x
	}
	avg = sum / float64(len(v))
	if len(v) > 1 {
		var ss float64
		for _, x := range v {
			ss += (x - avg) * (x - avg)
		}
		sdev = math.Sqrt(ss / float64(len(v)-1))
	}
	return lo, avg, hi, sdev
}

type mtrDescs struct {
	sent, received, rttSum, rttMin, rttAvg, rttMax, rttStddev, hopInfo *prometheus.Desc
	hops, reached, changes, rounds, sendErrors, info, resolveErrors    *prometheus.Desc
	proberUp                                                           *prometheus.Desc
}

func newMTRDescs(custom []string) mtrDescs {
	tl := append([]string{"target", "family"}, custom...)
	hl := append(slices.Clone(tl), "hop")
	name := func(n string) string { return prometheus.BuildFQName(collector.Namespace, "mtr", n) }
	return mtrDescs{
		sent:          prometheus.NewDesc(name("hop_sent_total"), "Echo requests sent with the TTL (hop limit) of this hop, counted in complete rounds.", hl, nil),
		received:      prometheus.NewDesc(name("hop_received_total"), "Answers from this hop within the timeout (time exceeded, or the destination's echo reply). Loss that does not persist to later hops is the router rate-limiting ICMP, not forwarding loss.", hl, nil),
		rttSum:        prometheus.NewDesc(name("hop_rtt_seconds_total"), "Sum of the round-trip times of this hop's answers; divided by received_total it is the mean RTT.", hl, nil),
		rttMin:        prometheus.NewDesc(name("hop_rtt_min_seconds"), "Shortest RTT of this hop in the last round (absent when nothing answered).", hl, nil),
		rttAvg:        prometheus.NewDesc(name("hop_rtt_avg_seconds"), "Mean RTT of this hop in the last round (absent when nothing answered).", hl, nil),
		rttMax:        prometheus.NewDesc(name("hop_rtt_max_seconds"), "Longest RTT of this hop in the last round (absent when nothing answered).", hl, nil),
		rttStddev:     prometheus.NewDesc(name("hop_rtt_stddev_seconds"), "Sample standard deviation of this hop's RTT in the last round (absent when nothing answered).", hl, nil),
		hopInfo:       prometheus.NewDesc(name("hop_info"), "The address that last answered at this hop; empty while the hop has never answered.", append(slices.Clone(hl), "ip"), nil),
		hops:          prometheus.NewDesc(name("hops"), "Number of hops of the path (the destination's hop when it is reached).", tl, nil),
		reached:       prometheus.NewDesc(name("destination_reached"), "1 if the destination answered in the last round.", tl, nil),
		changes:       prometheus.NewDesc(name("path_changes_total"), "Rounds in which the hop count or the address of a hop changed.", tl, nil),
		rounds:        prometheus.NewDesc(name("rounds_total"), "Completed rounds (each probes every hop `probes` times).", tl, nil),
		sendErrors:    prometheus.NewDesc(name("send_errors_total"), "Probes the kernel refused to send, by reason.", append(slices.Clone(tl), "reason"), nil),
		info:          prometheus.NewDesc(name("target_info"), "The configured host of a target and the address it currently resolves to (empty while unresolved).", append(slices.Clone(tl), "host", "ip"), nil),
		resolveErrors: prometheus.NewDesc(name("resolve_errors_total"), "Failed lookups of the target's host name.", tl, nil),
		proberUp:      prometheus.NewDesc(name("prober_up"), "1 if the raw ICMP socket of this address family is open (path probing needs CAP_NET_RAW).", []string{"family"}, nil),
	}
}

// Update reports what the targets' goroutines counted; it never sends a probe.
func (c *mtrCollector) Update(ch chan<- prometheus.Metric) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) == 0 {
		return collector.ErrNoData
	}
	d := c.descs
	for _, fam := range []pinger.Family{pinger.IPv4, pinger.IPv6} {
		up := 0.0
		if c.tracer != nil && c.tracer.Status(fam).Up {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(d.proberUp, prometheus.GaugeValue, up, fam.String())
	}
	for _, e := range c.entries {
		st := e.st
		st.mu.Lock()
		lv := append([]string{e.cfg.Name, st.fam.String()}, e.labels...)
		ip := ""
		if st.addr.IsValid() {
			ip = st.addr.String()
		}
		gauge := func(desc *prometheus.Desc, v float64, lv ...string) {
			ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, v, lv...)
		}
		count := func(desc *prometheus.Desc, v float64, lv ...string) {
			ch <- prometheus.MustNewConstMetric(desc, prometheus.CounterValue, v, lv...)
		}
		gauge(d.info, 1, append(slices.Clone(lv), e.cfg.Host, ip)...)
		count(d.resolveErrors, float64(st.resolveErrs), lv...)
		count(d.rounds, float64(st.rounds), lv...)
		count(d.changes, float64(st.changes), lv...)
		gauge(d.hops, float64(len(st.hops)), lv...)
		gauge(d.reached, boolValue(st.reached), lv...)
		for reason, n := range st.sendErrs {
			count(d.sendErrors, float64(n), append(slices.Clone(lv), reason)...)
		}
		for k, h := range st.hops {
			hl := append(slices.Clone(lv), strconv.Itoa(k+1))
			count(d.sent, float64(h.sent), hl...)
			count(d.received, float64(h.received), hl...)
			count(d.rttSum, h.rttSum, hl...)
			hip := ""
			if h.addr.IsValid() {
				hip = h.addr.String()
			}
			gauge(d.hopInfo, 1, append(slices.Clone(hl), hip)...)
			if h.n > 0 {
				gauge(d.rttMin, h.min, hl...)
				gauge(d.rttAvg, h.avg, hl...)
				gauge(d.rttMax, h.max, hl...)
				gauge(d.rttStddev, h.sdev, hl...)
			}
		}
		st.mu.Unlock()
	}
	return nil
}

// Close stops the rounds loop, every target's goroutine and the tracer.
func (c *mtrCollector) Close() error {
	c.mu.Lock()
	entries, tr, rounds := c.entries, c.tracer, c.rounds
	c.entries, c.tracer, c.rounds = nil, nil, nil
	c.mu.Unlock()
	if rounds != nil {
		rounds.Close()
	}
	for _, e := range entries {
		e.cancel()
	}
	for _, e := range entries {
		<-e.done
	}
	if tr != nil {
		return tr.Close()
	}
	return nil
}
