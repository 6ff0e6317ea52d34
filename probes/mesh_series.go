package probes

import (
	"cmp"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/smokemon/smokemon/collector"
	"github.com/smokemon/smokemon/internal/config"
	"github.com/smokemon/smokemon/internal/mesh"
)

// A mesh peer's series: the counters the engine feeds, and how a scrape
// streams them.

// meshStats are one peer's counters; the engine calls its Handler methods.
type meshStats struct {
	name      string
	labels    []string // values of the collector's custom labels, never modified
	sent      [3]atomic.Uint64
	received  [3]atomic.Uint64
	lost      [3][3]atomic.Uint64 // protocol × direction
	reordered [2]atomic.Uint64
	reconnect atomic.Uint64
	rtt       [3]*rttHistogram // nil until the protocol is probed; set under meshCollector.mu
	oneWay    [2]*rttHistogram

	clockMu sync.Mutex
	clock   mesh.ClockFilter
}

func (s *meshStats) Sent(p mesh.Proto)                   { s.sent[p].Add(1) }
func (s *meshStats) Lost(p mesh.Proto, d mesh.Direction) { s.lost[p][d].Add(1) }
func (s *meshStats) Reordered(d mesh.Direction)          { s.reordered[d].Add(1) }
func (s *meshStats) Reconnected()                        { s.reconnect.Add(1) }
func (s *meshStats) Reply(p mesh.Proto, rtt time.Duration, smp mesh.Sample) {
	s.received[p].Add(1)
	s.rtt[p].Observe(rtt.Seconds())
	if p != mesh.UDP {
		return
	}
	fwd, ret := smp.T2-smp.T1, smp.T4-smp.T3
	s.oneWay[mesh.Forward].Observe(time.Duration(fwd).Seconds())
	s.oneWay[mesh.Return].Observe(time.Duration(ret).Seconds())
	s.clockMu.Lock()
	s.clock.Add(fwd, ret)
	s.clockMu.Unlock()
}

// meshRow is what a scrape reports of one peer, copied under the
// collector's lock so that the stream, which waits on the client, holds
// none.
type meshRow struct {
	stats       *meshStats
	address, ip string
	up          float64
	rtt         [3]*rttHistogram // nil: the protocol is not reported
	oneWay      [2]*rttHistogram // nil unless UDP is
	tcp         bool             // tcp_reconnects_total is reported
	clock       mesh.ClockEstimate
	clockOK     bool
}

// meshSnap is a scrape's copy of the collector: the rows, and what the
// collector-wide series read.
type meshSnap struct {
	fams      *meshFamilies
	rows      []meshRow
	resp      *mesh.ResponderCounters // nil: no responder wanted
	respUp    bool
	respProto [2]bool // mesh.UDP, mesh.TCP ports configured
	file      bool    // a peers file is configured
	fileOK    bool
	lastOK    time.Time
	prober    bool // there are peers: prober_up is reported
	engine    *mesh.Engine
	lv        []string // label values being built
	noData    bool
	maxUnc    time.Duration
}

// meshSnaps keeps the snapshots of back-to-back scrapes.
var meshSnaps sync.Pool

// snapshot copies what a scrape reports; the clock estimates, which take
// each peer's own lock, are read after c.mu is released.
func (c *meshCollector) snapshot() *meshSnap {
	sn, _ := meshSnaps.Get().(*meshSnap)
	if sn == nil {
		sn = new(meshSnap)
	}
	c.mu.Lock()
	sn.noData = len(c.entries) == 0 && !c.respWant && c.file.path == ""
	sn.fams, sn.engine, sn.resp = c.fams, c.engine, nil
	if c.respWant {
		sn.resp, sn.respUp = &c.respCount, c.responder != nil
		sn.respProto = [2]bool{c.respCfg.UDPPort != 0, c.respCfg.TCPPort != 0}
	}
	sn.file, sn.fileOK, sn.lastOK = c.file.path != "", c.file.ok, c.file.lastOK
	sn.prober = len(c.entries) > 0
	sn.maxUnc = time.Duration(c.section.MaxClockUncertainty)
	sn.rows = slices.Grow(sn.rows[:0], len(c.entries))[:len(c.entries)]
	for i, e := range c.entries {
		if e.ipOf != e.addr {
			e.ipOf, e.ip = e.addr, ""
			if e.addr.IsValid() {
				e.ip = e.addr.String()
			}
		}
		s := e.stats
		r := &sn.rows[i]
		*r = meshRow{stats: s, address: e.cfg.Address, ip: e.ip, up: boolValue(e.handle != nil), tcp: e.cfg.Has(config.MeshTCP)}
		for p, name := range []string{config.MeshUDP, config.MeshTCP, config.MeshTCPConnect} {
			if e.cfg.Has(name) {
				r.rtt[p] = s.rtt[p]
			}
		}
		if e.cfg.Has(config.MeshUDP) && s.oneWay[0] != nil {
			r.oneWay = s.oneWay
		}
	}
	c.mu.Unlock()
	for i := range sn.rows {
		if r := &sn.rows[i]; r.oneWay[0] != nil {
			r.stats.clockMu.Lock()
			r.clock, r.clockOK = r.stats.clock.Estimate(sn.maxUnc)
			r.stats.clockMu.Unlock()
		}
	}
	return sn
}

func (sn *meshSnap) release() {
	clear(sn.rows) // drop the references to stats and histograms
	sn.fams, sn.engine, sn.resp = nil, nil, nil
	meshSnaps.Put(sn)
}

// labels are r's label values: the peer, then extra, then the custom ones.
func (sn *meshSnap) labels(r *meshRow, extra ...string) []string {
	sn.lv = append(append(append(sn.lv[:0], r.stats.name), extra...), r.stats.labels...)
	return sn.lv
}

// Update sends the stream as constant metrics, for gatherers.
func (c *meshCollector) Update(ch chan<- prometheus.Metric) error {
	c.mu.Lock()
	fams := c.fams
	c.mu.Unlock()
	return collector.StreamUpdate(c, fams.desc, ch)
}

// Stream reports what the engine and the responder counted, family by
// family in name order.
func (c *meshCollector) Stream(emit func(*dto.MetricFamily) error) error {
	sn := c.snapshot()
	defer sn.release()
	if sn.noData {
		return collector.ErrNoData
	}
	ck := getChunker(emit)
	defer putChunker(ck)
	for _, f := range sn.fams.sorted {
		ck.begin(f.family)
		f.write(ck, sn)
	}
	return ck.end()
}

// meshFamily is a mesh family and what writes its metrics.
type meshFamily struct {
	*family
	write func(ck *chunker, sn *meshSnap)
}

// meshFamilies are the collector's families for the custom label names in
// force.
type meshFamilies struct {
	rtt, oneWay *family
	sorted      []meshFamily // by name: the order they are streamed in
}

func (f *meshFamilies) desc(name string) *prometheus.Desc {
	i, ok := slices.BinarySearchFunc(f.sorted, name, func(m meshFamily, n string) int { return cmp.Compare(m.name, n) })
	if !ok {
		return nil
	}
	return f.sorted[i].desc
}

var (
	meshProtos     = [...]mesh.Proto{mesh.UDP, mesh.TCP, mesh.TCPConnect}
	meshProtoNames = [...]string{mesh.UDP.String(), mesh.TCP.String(), mesh.TCPConnect.String()}
	meshDirNames   = [...]string{mesh.Forward.String(), mesh.Return.String(), mesh.DirUnknown.String()}
	meshRespProtos = [...]mesh.Proto{mesh.UDP, mesh.TCP}
)

// eachRow writes, for every peer, the metrics fn gives of it.
func eachRow(fn func(ck *chunker, sn *meshSnap, r *meshRow)) func(ck *chunker, sn *meshSnap) {
	return func(ck *chunker, sn *meshSnap) {
		for i := range sn.rows {
			fn(ck, sn, &sn.rows[i])
		}
	}
}

// perProto writes, for every peer and reported protocol, the counter v.
func perProto(v func(s *meshStats, p mesh.Proto) uint64) func(ck *chunker, sn *meshSnap) {
	return eachRow(func(ck *chunker, sn *meshSnap, r *meshRow) {
		for _, p := range meshProtos {
			if r.rtt[p] != nil {
				ck.counter(float64(v(r.stats, p)), sn.labels(r, meshProtoNames[p])...)
			}
		}
	})
}

// clockGauge writes, for every peer with a clock estimate, the gauge v.
func clockGauge(v func(e mesh.ClockEstimate) float64) func(ck *chunker, sn *meshSnap) {
	return eachRow(func(ck *chunker, sn *meshSnap, r *meshRow) {
		if r.clockOK {
			ck.gauge(v(r.clock), sn.labels(r)...)
		}
	})
}

// respCounter writes, for every responder port, the counter in rc.
func respCounter(rc func(c *mesh.ResponderCounters) *[2]atomic.Uint64) func(ck *chunker, sn *meshSnap) {
	return func(ck *chunker, sn *meshSnap) {
		if sn.resp == nil {
			return
		}
		for _, p := range meshRespProtos {
			if sn.respProto[p] {
				ck.counter(float64(rc(sn.resp)[p].Load()), meshProtoNames[p])
			}
		}
	}
}

func newMeshFamilies(custom []string) *meshFamilies {
	with := func(l ...string) []string { return append(l, custom...) }
	f := &meshFamilies{}
	add := func(n string, typ dto.MetricType, labels []string, help string, write func(ck *chunker, sn *meshSnap)) *family {
		fam := newFamily(prometheus.BuildFQName(collector.Namespace, "mesh", n), help, typ, labels...)
		f.sorted = append(f.sorted, meshFamily{fam, write})
		return fam
	}
	counter, gauge, histogram := dto.MetricType_COUNTER, dto.MetricType_GAUGE, dto.MetricType_HISTOGRAM
	add("sent_total", counter, with("peer", "protocol"), "Mesh probes sent (or attempted), per peer and protocol.",
		perProto(func(s *meshStats, p mesh.Proto) uint64 { return s.sent[p].Load() }))
	add("received_total", counter, with("peer", "protocol"), "Mesh probes answered within the timeout.",
		perProto(func(s *meshStats, p mesh.Proto) uint64 { return s.received[p].Load() }))
	add("lost_total", counter, with("peer", "protocol", "direction"), "Mesh probes not answered within the timeout, by the direction they were lost in: forward (the peer never received the request), return (it did; the reply was lost or late) or unknown (TCP, or no later reply could tell). UDP losses are counted once a later reply tells the direction, or after 5s/64 probes as unknown. Loss ratio: sum by direction of increase(lost) / increase(sent).",
		eachRow(func(ck *chunker, sn *meshSnap, r *meshRow) {
			for _, p := range meshProtos {
				if r.rtt[p] == nil {
					continue
				}
				dirs := []mesh.Direction{mesh.DirUnknown}
				if p == mesh.UDP {
					dirs = []mesh.Direction{mesh.Forward, mesh.Return, mesh.DirUnknown}
				}
				for _, d := range dirs {
					ck.counter(float64(r.stats.lost[p][d].Load()), sn.labels(r, meshProtoNames[p], meshDirNames[d])...)
				}
			}
		}))
	add("reordered_total", counter, with("peer", "direction"), "UDP probes that arrived after a later one: forward (at the peer), return (replies, here).",
		eachRow(func(ck *chunker, sn *meshSnap, r *meshRow) {
			if r.oneWay[0] != nil {
				for _, d := range []mesh.Direction{mesh.Forward, mesh.Return} {
					ck.counter(float64(r.stats.reordered[d].Load()), sn.labels(r, meshDirNames[d])...)
				}
			}
		}))
	add("tcp_reconnects_total", counter, with("peer"), "Times the persistent TCP flow to the peer was established again (after reconnect_after consecutive losses or the peer closing it).",
		eachRow(func(ck *chunker, sn *meshSnap, r *meshRow) {
			if r.tcp {
				ck.counter(float64(r.stats.reconnect.Load()), sn.labels(r)...)
			}
		}))
	add("peer_info", gauge, with("peer", "address", "ip"), "A mesh peer's configured address and the IP it currently resolves to (empty while unresolved).",
		eachRow(func(ck *chunker, sn *meshSnap, r *meshRow) { ck.gauge(1, sn.labels(r, r.address, r.ip)...) }))
	add("peer_up", gauge, with("peer"), "1 if the peer has an address and is being probed.",
		eachRow(func(ck *chunker, sn *meshSnap, r *meshRow) { ck.gauge(r.up, sn.labels(r)...) }))
	add("clock_offset_seconds", gauge, with("peer"), "Estimated offset of the peer's clock from this node's (peer minus local): the midpoint of the interval the last 64 UDP probes' timestamps allow. It includes half of any path asymmetry, which no two-way measurement can separate from a clock offset.",
		clockGauge(func(e mesh.ClockEstimate) float64 { return e.Offset.Seconds() }))
	add("clock_offset_uncertainty_seconds", gauge, with("peer"), "Half-width of the interval the clock offset must lie in (min forward + min return one-way delay, over 2): one-way delays can be wrong by up to this much even when the clocks look trustworthy.",
		clockGauge(func(e mesh.ClockEstimate) float64 { return e.Uncertainty.Seconds() }))
	add("clock_trustworthy", gauge, with("peer"), "1 if the timestamps are consistent with synchronised clocks (both raw one-way delays non-negative, no clock step in the window, uncertainty within max_clock_uncertainty if set), so one_way_delay_seconds can be believed; 0 otherwise.",
		clockGauge(func(e mesh.ClockEstimate) float64 { return boolValue(e.Trustworthy) }))
	add("unmatched_replies_total", counter, []string{"reason"}, "Replies matched to no probe: late (after the timeout), foreign (not one of our sessions), malformed (not a mesh reply).",
		func(ck *chunker, sn *meshSnap) {
			if cn := sn.engine; cn != nil {
				ck.counter(float64(cn.Counters.Late.Load()), "late")
				ck.counter(float64(cn.Counters.Foreign.Load()), "foreign")
				ck.counter(float64(cn.Counters.Malformed.Load()), "malformed")
			}
		})
	add("prober_up", gauge, nil, "1 if the mesh prober's UDP socket is open.",
		func(ck *chunker, sn *meshSnap) {
			if sn.prober {
				ck.gauge(boolValue(sn.engine != nil))
			}
		})
	f.addResponder(add)
	add("peers_file_last_reload_successful", gauge, nil, "1 if the latest version of peers_file was accepted; 0 if it was rejected and the previous peer list is in force.",
		func(ck *chunker, sn *meshSnap) {
			if sn.file {
				ck.gauge(boolValue(sn.fileOK))
			}
		})
	add("peers_file_last_reload_success_timestamp_seconds", gauge, nil, "When peers_file was last read successfully.",
		func(ck *chunker, sn *meshSnap) {
			if sn.file && !sn.lastOK.IsZero() {
				ck.gauge(float64(sn.lastOK.UnixNano()) / 1e9)
			}
		})
	f.rtt = add("rtt_seconds", histogram, with("peer", "protocol"), "Round-trip time of answered mesh probes, without the responder's turnaround; for tcp_connect, the handshake time. Lost probes are never observed here.",
		eachRow(func(ck *chunker, sn *meshSnap, r *meshRow) {
			for _, p := range meshProtos {
				if h := r.rtt[p]; h != nil {
					ck.histogram(h, sn.labels(r, meshProtoNames[p])...)
				}
			}
		}))
	f.oneWay = add("one_way_delay_seconds", histogram, with("peer", "direction"), "One-way delay of answered UDP probes (forward: this node to the peer; return: back), from the two nodes' clocks as they are: valid only while smokemon_mesh_clock_trustworthy is 1.",
		eachRow(func(ck *chunker, sn *meshSnap, r *meshRow) {
			for _, d := range []mesh.Direction{mesh.Forward, mesh.Return} {
				if h := r.oneWay[d]; h != nil {
					ck.histogram(h, sn.labels(r, meshDirNames[d])...)
				}
			}
		}))
	slices.SortFunc(f.sorted, func(a, b meshFamily) int { return cmp.Compare(a.name, b.name) })
	return f
}

// addResponder adds the responder's families.
func (f *meshFamilies) addResponder(add func(string, dto.MetricType, []string, string, func(*chunker, *meshSnap)) *family) {
	counter, proto := dto.MetricType_COUNTER, []string{"protocol"}
	add("responder_up", dto.MetricType_GAUGE, proto, "1 if the responder listens on this protocol's port.",
		func(ck *chunker, sn *meshSnap) {
			for _, p := range meshRespProtos {
				if sn.resp != nil && sn.respProto[p] {
					ck.gauge(boolValue(sn.respUp), meshProtoNames[p])
				}
			}
		})
	add("responder_requests_total", counter, proto, "Well-formed mesh requests the responder received.",
		respCounter(func(c *mesh.ResponderCounters) *[2]atomic.Uint64 { return &c.Requests }))
	add("responder_replies_total", counter, proto, "Replies the responder sent (never larger than the request).",
		respCounter(func(c *mesh.ResponderCounters) *[2]atomic.Uint64 { return &c.Replies }))
	add("responder_rate_limited_total", counter, proto, "Well-formed requests left unanswered because their source exceeded rate_limit.",
		respCounter(func(c *mesh.ResponderCounters) *[2]atomic.Uint64 { return &c.RateLimited }))
	add("responder_malformed_total", counter, proto, "Packets (UDP) or connections (TCP) that were not smokemon's probe format: never answered.",
		respCounter(func(c *mesh.ResponderCounters) *[2]atomic.Uint64 { return &c.Malformed }))
	add("responder_tcp_connections_refused_total", counter, nil, "TCP connections closed at once because max_connections were open.",
		func(ck *chunker, sn *meshSnap) {
			if sn.resp != nil && sn.respProto[mesh.TCP] {
				ck.counter(float64(sn.resp.ConnRefused.Load()))
			}
		})
}
