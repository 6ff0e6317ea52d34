package probes

import (
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/smokemon/smokemon/internal/config"
	"github.com/smokemon/smokemon/internal/mesh"
)

// A mesh peer's series: the counters the engine feeds, the label pairs its
// series carry, and what a scrape sends of them.

// meshStats are one peer's counters; the engine calls its Handler methods.
type meshStats struct {
	name      string
	labels    []string
	sent      [3]atomic.Uint64
	received  [3]atomic.Uint64
	lost      [3][3]atomic.Uint64 // protocol × direction
	reordered [2]atomic.Uint64
	reconnect atomic.Uint64
	rtt       [3]*rttHistogram // nil until the protocol is probed
	oneWay    [2]*rttHistogram

	clockMu sync.Mutex
	clock   mesh.ClockFilter

	// Label pairs built once: a scrape only points at them. Only the pairs of
	// the peer's name and custom labels are its own, all in own; the
	// protocol and direction pairs are shared by every peer, and the pointers
	// of all the peer's series are one slab. Built by MakeLabelPairs (and
	// deduplicated through a map), a peer's 36 small long-lived objects were
	// scattered among the garbage that made them: 300 peers held 1.3 MB of
	// half-empty spans beyond their 2 MB of live heap.
	own   []dto.LabelPair
	pairs struct {
		peer  []*dto.LabelPair       // peer_up, clock_*, tcp_reconnects_total
		proto [3][]*dto.LabelPair    // sent, received, rtt
		lost  [3][3][]*dto.LabelPair // protocol × direction: UDP all three, TCP unknown
		dir   [2][]*dto.LabelPair    // reordered, one-way delay
	}
}

// meshLabelNames are the label names of mesh series (before the custom
// ones); the pairs point at them.
var meshLabelNames = [...]string{"peer", "protocol", "direction", "address", "ip"}

const (
	meshLabelPeer = iota
	meshLabelProtocol
	meshLabelDirection
	meshLabelAddress
	meshLabelIP
)

// meshProtoPairs and meshDirPairs are every peer's protocol and direction
// pairs: read-only, like all label pairs once built.
var (
	meshProtoPairs = func() (ps [3]*dto.LabelPair) {
		for p := range mesh.Proto(3) {
			v := p.String()
			ps[p] = &dto.LabelPair{Name: &meshLabelNames[meshLabelProtocol], Value: &v}
		}
		return ps
	}()
	meshDirPairs = func() (ps [3]*dto.LabelPair) {
		for d := range mesh.Direction(3) {
			v := d.String()
			ps[d] = &dto.LabelPair{Name: &meshLabelNames[meshLabelDirection], Value: &v}
		}
		return ps
	}()
)

// newMeshStats builds a peer's stats and label pairs. custom are the
// collector's custom label names, labels their values for the peer; the
// pairs point into both, so neither may change afterwards.
func newMeshStats(custom []string, name string, labels []string) *meshStats {
	s := &meshStats{name: name, labels: labels, own: make([]dto.LabelPair, 1+len(labels))}
	s.own[0] = dto.LabelPair{Name: &meshLabelNames[meshLabelPeer], Value: &s.name}
	for i := range s.labels {
		s.own[1+i] = dto.LabelPair{Name: &custom[i], Value: &s.labels[i]}
	}
	n := len(s.own)
	slab := make([]*dto.LabelPair, 0, n+3*(n+1)+5*(n+2)+2*(n+1))
	for p := range mesh.Proto(3) {
		s.pairs.proto[p] = s.series(&slab, meshProtoPairs[p])
		s.pairs.lost[p][mesh.DirUnknown] = s.series(&slab, meshProtoPairs[p], meshDirPairs[mesh.DirUnknown])
	}
	for _, d := range []mesh.Direction{mesh.Forward, mesh.Return} {
		s.pairs.lost[mesh.UDP][d] = s.series(&slab, meshProtoPairs[mesh.UDP], meshDirPairs[d])
		s.pairs.dir[d] = s.series(&slab, meshDirPairs[d])
	}
	s.pairs.peer = s.series(&slab)
	return s
}

// series appends to *slab the sorted pairs of one series: the peer's own
// and the given ones. The result's capacity ends at its length, so nothing
// appended later can overwrite another series' pairs.
func (s *meshStats) series(slab *[]*dto.LabelPair, more ...*dto.LabelPair) []*dto.LabelPair {
	start := len(*slab)
	for i := range s.own {
		*slab = append(*slab, &s.own[i])
	}
	*slab = append(*slab, more...)
	ps := (*slab)[start:len(*slab):len(*slab)]
	slices.SortFunc(ps, func(a, b *dto.LabelPair) int { return strings.Compare(*a.Name, *b.Name) })
	return ps
}

// meshInfo is peer_info's pairs for one resolved address: built anew when
// the address changes, never modified, since a scrape still being encoded
// may point at the old one.
type meshInfo struct {
	addr        netip.Addr
	address, ip string
	own         [2]dto.LabelPair // address, ip
	pairs       []*dto.LabelPair
}

func (s *meshStats) newInfo(address string, addr netip.Addr) *meshInfo {
	in := &meshInfo{addr: addr, address: address}
	if addr.IsValid() {
		in.ip = addr.String()
	}
	in.own[0] = dto.LabelPair{Name: &meshLabelNames[meshLabelAddress], Value: &in.address}
	in.own[1] = dto.LabelPair{Name: &meshLabelNames[meshLabelIP], Value: &in.ip}
	slab := make([]*dto.LabelPair, 0, len(s.own)+2)
	in.pairs = s.series(&slab, &in.own[0], &in.own[1])
	return in
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

// updatePeer sends e's series; c.mu is held.
func (c *meshCollector) updatePeer(ch chan<- prometheus.Metric, e *meshEntry, maxUnc time.Duration) {
	d, s := c.descs, e.stats
	if e.info == nil || e.info.addr != e.addr {
		e.info = s.newInfo(e.cfg.Address, e.addr)
	}
	gauge := func(d *prometheus.Desc, ps []*dto.LabelPair, v float64) {
		ch <- &pairsMetric{d, ps, dto.MetricType_GAUGE, v}
	}
	counter := func(d *prometheus.Desc, ps []*dto.LabelPair, v uint64) {
		ch <- &pairsMetric{d, ps, dto.MetricType_COUNTER, float64(v)}
	}
	gauge(d.info, e.info.pairs, 1)
	gauge(d.up, s.pairs.peer, boolValue(e.handle != nil))
	for p, name := range []string{config.MeshUDP, config.MeshTCP, config.MeshTCPConnect} {
		if !e.cfg.Has(name) || s.rtt[p] == nil {
			continue
		}
		counter(d.sent, s.pairs.proto[p], s.sent[p].Load())
		counter(d.received, s.pairs.proto[p], s.received[p].Load())
		dirs := []mesh.Direction{mesh.DirUnknown}
		if mesh.Proto(p) == mesh.UDP {
			dirs = []mesh.Direction{mesh.Forward, mesh.Return, mesh.DirUnknown}
		}
		for _, dir := range dirs {
			counter(d.lost, s.pairs.lost[p][dir], s.lost[p][dir].Load())
		}
		ch <- s.rtt[p]
	}
	if e.cfg.Has(config.MeshUDP) && s.oneWay[0] != nil {
		for _, dir := range []mesh.Direction{mesh.Forward, mesh.Return} {
			counter(d.reordered, s.pairs.dir[dir], s.reordered[dir].Load())
			ch <- s.oneWay[dir]
		}
		s.clockMu.Lock()
		est, ok := s.clock.Estimate(maxUnc)
		s.clockMu.Unlock()
		if ok {
			gauge(d.offset, s.pairs.peer, est.Offset.Seconds())
			gauge(d.uncertainty, s.pairs.peer, est.Uncertainty.Seconds())
			gauge(d.trustworthy, s.pairs.peer, boolValue(est.Trustworthy))
		}
	}
	if e.cfg.Has(config.MeshTCP) {
		counter(d.reconnects, s.pairs.peer, s.reconnect.Load())
	}
}
