package mesh

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/smokemon/smokemon/internal/schedule"
)

// The prober: one UDP socket (dual-stack) for every peer, one scheduler
// goroutine that spreads all peers' probes evenly over their interval, one
// receiver for the UDP socket, and for TCP one reader per persistent
// connection plus short-lived goroutines for connects, which block by nature.
//
// A UDP probe that gets no reply within its timeout is lost; which way it
// was lost is settled by a later reply of the same session, whose bitmap says
// whether the responder ever saw it (see wire.go). Until then it waits in the
// peer's pending list: at most 64 probes or attributeWait, then it is counted
// lost in an unknown direction.

// Direction of a loss or a reordering.
type Direction uint8

const (
	Forward Direction = iota // prober to responder
	Return                   // responder to prober
	DirUnknown
)

func (d Direction) String() string {
	switch d {
	case Forward:
		return "forward"
	case Return:
		return "return"
	}
	return "unknown"
}

// attributeWait is how long a lost UDP probe waits for a reply that can say
// which way it was lost.
const attributeWait = 5 * time.Second

// maxConnectsInFlight bounds the goroutines one peer's connect probes use
// when the peer blackholes SYNs and the timeout is many intervals long.
const maxConnectsInFlight = 4

// Sample is one answered UDP probe's timestamps (Unix ns): t1, t4 on the
// prober's clock, t2, t3 on the responder's.
type Sample struct{ T1, T2, T3, T4 int64 }

// Handler receives one peer's results, called with the engine locked: it
// must be quick and must not call back into the engine.
type Handler interface {
	Sent(p Proto)
	Reply(p Proto, rtt time.Duration, s Sample) // s is zero except for UDP; by value, so a reply allocates nothing
	Lost(p Proto, d Direction)
	Reordered(d Direction)
	Reconnected() // a persistent TCP connection was established again
}

// Settings are a peer's probe parameters.
type Settings struct {
	Interval       time.Duration
	Timeout        time.Duration
	Size           int // message bytes, HeaderLen..MaxLen
	Protos         [nProtos]bool
	ReconnectAfter int
}

// Peer is a handle on a probed node.
type Peer struct {
	udp, tcp netip.AddrPort
	set      Settings
	h        Handler
	order    uint64
	removed  bool
	items    [nProtos]*item

	session uint32 // UDP session
	seq     uint32
	maxRx   uint32
	pending []pendingLoss

	tcpc       tcpLink
	connecting int
}

type pendingLoss struct {
	seq uint32
	at  int64 // engine-monotonic ns of the deadline
}

// item is one protocol's probes of a peer.
type item struct {
	p     *Peer
	proto Proto
	sched schedule.Entry[*item]
}

type probeKey struct{ session, seq uint32 }

type probe struct {
	p        *Peer
	proto    Proto
	sentMono int64
	sentWall int64
	deadline int64
}

// Counters are engine-wide events that belong to no peer.
type Counters struct {
	Late       atomic.Uint64 // replies after their probe's timeout
	Foreign    atomic.Uint64 // well-formed replies of no session of ours
	Malformed  atomic.Uint64 // datagrams on our socket that are not replies
	SendErrors atomic.Uint64
}

// Engine probes peers.
type Engine struct {
	logger *slog.Logger
	start  time.Time
	conn   *net.UDPConn
	kernTS bool
	ctx    context.Context
	cancel context.CancelFunc

	mu       sync.Mutex
	peers    map[*Peer]struct{}
	sessions map[uint32]*Peer
	sendQ    schedule.Queue[*item]
	nextOrd  uint64
	inflight map[probeKey]*probe
	expiry   expHeap
	free     []*probe

	Counters Counters

	wake chan struct{}
	done sync.WaitGroup
}

// NewEngine opens the shared UDP socket and starts the scheduler and receiver.
func NewEngine(logger *slog.Logger) (*Engine, error) {
	c, err := net.ListenUDP("udp", &net.UDPAddr{})
	if err != nil {
		// No IPv6 at all: an IPv4-only socket still serves IPv4 peers.
		if c, err = net.ListenUDP("udp4", &net.UDPAddr{}); err != nil {
			return nil, err
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	e := &Engine{
		logger:   logger,
		start:    time.Now(),
		conn:     c,
		kernTS:   kernelTimestamps(c),
		ctx:      ctx,
		cancel:   cancel,
		peers:    map[*Peer]struct{}{},
		sessions: map[uint32]*Peer{},
		inflight: map[probeKey]*probe{},
		wake:     make(chan struct{}, 1),
	}
	e.done.Add(2)
	go e.receive()
	go e.schedule()
	return e, nil
}

// KernelTimestamps reports whether UDP receive times come from the kernel.
func (e *Engine) KernelTimestamps() bool { return e.kernTS }

// LocalAddr is the shared UDP socket's address.
func (e *Engine) LocalAddr() net.Addr { return e.conn.LocalAddr() }

// Add starts probing a peer at its UDP and TCP addresses. The first probes
// go out at the peer's slots in the interval, so a reload never bursts.
func (e *Engine) Add(udp, tcp netip.AddrPort, s Settings, h Handler) *Peer {
	p := &Peer{udp: unmapAP(udp), tcp: unmapAP(tcp), set: s, h: h}
	e.mu.Lock()
	p.order = e.nextOrd
	e.nextOrd++
	p.session = e.newSessionLocked(p)
	e.peers[p] = struct{}{}
	e.itemsLocked(p)
	if s.Protos[TCP] {
		e.dialLocked(p)
	}
	e.mu.Unlock()
	e.kick()
	return p
}

// Update changes a peer's addresses or settings in place; its handler and
// counters stay. A new TCP address means a new connection.
func (e *Engine) Update(p *Peer, udp, tcp netip.AddrPort, s Settings) {
	udp, tcp = unmapAP(udp), unmapAP(tcp)
	e.mu.Lock()
	if p.tcp != tcp || !s.Protos[TCP] {
		e.closeTCPLocked(p)
		p.tcpc.everUp = false
	}
	respread := p.set.Interval != s.Interval || p.set.Protos != s.Protos
	p.udp, p.tcp, p.set = udp, tcp, s
	if respread {
		e.itemsLocked(p)
	}
	if s.Protos[TCP] && p.tcpc.conn == nil {
		e.dialLocked(p)
	}
	e.mu.Unlock()
	e.kick()
}

// Remove stops probing; probes in flight and losses awaiting a direction are
// forgotten, not counted.
func (e *Engine) Remove(p *Peer) {
	e.mu.Lock()
	p.removed = true
	delete(e.peers, p)
	delete(e.sessions, p.session)
	for _, it := range p.items {
		if it != nil {
			e.sendQ.Remove(&it.sched)
		}
	}
	e.closeTCPLocked(p)
	p.pending = nil
	e.mu.Unlock()
	e.kick()
}

// Close stops the engine and waits for its goroutines.
func (e *Engine) Close() error {
	e.mu.Lock()
	if e.ctx.Err() != nil {
		e.mu.Unlock()
		return nil
	}
	e.cancel()
	for p := range e.peers {
		e.closeTCPLocked(p)
	}
	e.mu.Unlock()
	e.conn.Close()
	e.done.Wait()
	return nil
}

func (e *Engine) kick() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

func (e *Engine) mono() int64 { return int64(time.Since(e.start)) }

// itemsLocked schedules the peer's protocols anew, each at its own phase:
// all items of one interval are spread evenly in the order the peers were
// added, a peer's protocols side by side.
func (e *Engine) itemsLocked(p *Peer) {
	for pr := range nProtos {
		if it := p.items[pr]; it != nil {
			e.sendQ.Remove(&it.sched)
		}
		p.items[pr] = nil
		if p.set.Protos[pr] {
			it := &item{p: p, proto: pr}
			it.sched = schedule.Entry[*item]{Value: it, Interval: p.set.Interval, Rank: p.order*uint64(nProtos) + uint64(pr)}
			p.items[pr] = it
			e.sendQ.Add(&it.sched)
		}
	}
}

// newSessionLocked draws a random session id no peer uses.
func (e *Engine) newSessionLocked(p *Peer) uint32 {
	var b [4]byte
	for {
		rand.Read(b[:])
		s := binary.BigEndian.Uint32(b[:])
		if _, used := e.sessions[s]; !used && s != 0 {
			e.sessions[s] = p
			return s
		}
	}
}

func (e *Engine) schedule() {
	defer e.done.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	buf := make([]byte, MaxLen)
	for {
		e.mu.Lock()
		now := e.mono()
		for due := e.sendQ.Due(now); due != nil; due = e.sendQ.Due(now) {
			it := due.Value
			switch it.proto {
			case UDP:
				e.sendUDPLocked(it.p, buf)
			case TCP:
				e.sendTCPLocked(it.p, buf)
			case TCPConnect:
				e.connectLocked(it.p)
			}
			e.sendQ.Sent(due, now)
			now = e.mono()
		}
		for len(e.expiry) > 0 && e.expiry[0].deadline <= now {
			e.expireLocked(e.expiry.Pop(), now)
		}
		wait := time.Hour
		if d, ok := e.sendQ.Wait(now); ok {
			wait = d
		}
		if len(e.expiry) > 0 {
			wait = min(wait, time.Duration(e.expiry[0].deadline-now))
		}
		e.mu.Unlock()
		timer.Reset(wait)
		select {
		case <-timer.C:
		case <-e.wake:
		case <-e.ctx.Done():
			return
		}
	}
}

func (e *Engine) track(p *Peer, proto Proto, session, seq uint32, sent time.Time) {
	pr := e.newProbe()
	*pr = probe{p: p, proto: proto, sentMono: int64(sent.Sub(e.start)), sentWall: sent.UnixNano()}
	pr.deadline = pr.sentMono + int64(p.set.Timeout)
	k := probeKey{session, seq}
	e.inflight[k] = pr
	e.expiry.Push(expiry{deadline: pr.deadline, key: k})
}

func (e *Engine) sendUDPLocked(p *Peer, buf []byte) {
	e.agePendingLocked(p, e.mono())
	p.seq++
	p.h.Sent(UDP)
	pkt := buf[:max(p.set.Size, HeaderLen)]
	sent := time.Now()
	PutRequest(pkt, p.session, p.seq, sent.UnixNano())
	if _, err := e.conn.WriteToUDPAddrPort(pkt, p.udp); err != nil {
		// It never left: lost on the way there.
		e.Counters.SendErrors.Add(1)
		p.h.Lost(UDP, Forward)
		return
	}
	e.track(p, UDP, p.session, p.seq, sent)
}

func (e *Engine) expireLocked(x expiry, now int64) {
	pr, ok := e.inflight[x.key]
	if !ok || pr.deadline != x.deadline {
		return // answered in time
	}
	delete(e.inflight, x.key)
	p := pr.p
	e.free = append(e.free, pr)
	if p.removed {
		return
	}
	switch pr.proto {
	case UDP:
		if x.key.session == p.session {
			p.pending = append(p.pending, pendingLoss{seq: x.key.seq, at: x.deadline})
			e.agePendingLocked(p, now)
		}
	case TCP:
		p.h.Lost(TCP, DirUnknown)
		if x.key.session == p.tcpc.session && p.tcpc.conn != nil {
			p.tcpc.lost++
			if p.tcpc.lost >= max(p.set.ReconnectAfter, 1) {
				e.closeTCPLocked(p)
				e.dialLocked(p)
			}
		}
	}
}

// agePendingLocked gives up on losses no future reply can attribute.
func (e *Engine) agePendingLocked(p *Peer, now int64) {
	n := 0
	for _, pl := range p.pending {
		if now-pl.at > int64(attributeWait) || p.seq-pl.seq >= 64 {
			p.h.Lost(UDP, DirUnknown)
			continue
		}
		p.pending[n] = pl
		n++
	}
	p.pending = p.pending[:n]
}

// resolvePendingLocked settles the direction of earlier losses with what the
// reply h says the responder saw.
func (e *Engine) resolvePendingLocked(p *Peer, h *Header) {
	n := 0
	for _, pl := range p.pending {
		switch h.About(pl.seq) {
		case Pending:
			p.pending[n] = pl
			n++
		case Seen:
			p.h.Lost(UDP, Return)
		case Missed:
			p.h.Lost(UDP, Forward)
		case Unknown:
			p.h.Lost(UDP, DirUnknown)
		}
	}
	p.pending = p.pending[:n]
}

func (e *Engine) receive() {
	defer e.done.Done()
	buf := make([]byte, MaxLen+1)
	oob := make([]byte, 128)
	for {
		n, oobn, _, _, err := e.conn.ReadMsgUDPAddrPort(buf, oob)
		if err != nil {
			if errors.Is(err, net.ErrClosed) || e.ctx.Err() != nil {
				return
			}
			continue
		}
		now := time.Now()
		kern := rxTimestamp(oob[:oobn])
		h, err := ParseReply(buf[:n])
		if err != nil {
			e.Counters.Malformed.Add(1)
			continue
		}
		e.mu.Lock()
		if p := e.sessions[h.Session]; p == nil || p.session != h.Session {
			e.Counters.Foreign.Add(1)
		} else {
			e.matchLocked(p, UDP, &h, now, kern)
		}
		e.mu.Unlock()
	}
}

// matchLocked ties a reply to its probe. RTT excludes the responder's
// turnaround (t3-t2); for UDP the receive time is the kernel's when it has one.
func (e *Engine) matchLocked(p *Peer, proto Proto, h *Header, now time.Time, kern int64) {
	k := probeKey{h.Session, h.Seq}
	pr, ok := e.inflight[k]
	if proto == UDP {
		defer e.resolvePendingLocked(p, h) // late replies inform too
	}
	if !ok || pr.p != p || pr.proto != proto {
		e.Counters.Late.Add(1)
		return
	}
	elapsed := time.Duration(now.Sub(e.start).Nanoseconds() - pr.sentMono)
	t4 := now.UnixNano()
	if kern != 0 {
		// The kernel's stamp is exact unless the wall clock stepped in
		// between; then keep the monotonic figure.
		if d := time.Duration(kern - pr.sentWall); d > 0 && d <= elapsed {
			elapsed, t4 = d, kern
		}
	}
	if elapsed > p.set.Timeout {
		e.Counters.Late.Add(1) // expiry counts it lost
		return
	}
	delete(e.inflight, k)
	e.free = append(e.free, pr)
	turn := time.Duration(h.T3 - h.T2)
	rtt := elapsed
	if turn > 0 && turn < elapsed {
		rtt -= turn
	}
	if proto == TCP {
		p.tcpc.lost = 0
		p.h.Reply(TCP, rtt, Sample{})
		return
	}
	if h.Reordered {
		p.h.Reordered(Forward)
	}
	if h.Rx < p.maxRx {
		p.h.Reordered(Return) // the responder sent it before one we already have
	} else {
		p.maxRx = h.Rx
	}
	p.h.Reply(UDP, rtt, Sample{T1: pr.sentWall, T2: h.T2, T3: h.T3, T4: t4})
}

func (e *Engine) newProbe() *probe {
	if n := len(e.free); n > 0 {
		pr := e.free[n-1]
		e.free = e.free[:n-1]
		return pr
	}
	return new(probe)
}

func unmapAP(a netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
}

type expiry struct {
	deadline int64
	key      probeKey
}

// expHeap orders probes in flight by deadline.
type expHeap = schedule.Heap[expiry]

func (x expiry) Due() int64 { return x.deadline }
