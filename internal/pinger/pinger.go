// Package pinger is smokemon's ICMP echo engine: one shared socket per address
// family for all targets, one scheduler goroutine that spreads targets evenly
// over their interval, and one receiver per socket that matches replies to
// probes by sequence number and a per-probe token.
//
// A probe is answered or lost: a reply later than its timeout is counted as
// late, never as a latency.
package pinger

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/smokemon/smokemon/internal/schedule"
)

// Family is an IP address family.
type Family uint8

const (
	IPv4 Family = 4
	IPv6 Family = 6
)

func (f Family) String() string {
	if f == IPv6 {
		return "ip6"
	}
	return "ip4"
}

// FamilyOf returns the family of an address.
func FamilyOf(a netip.Addr) Family {
	if a.Unmap().Is4() {
		return IPv4
	}
	return IPv6
}

// Settings are a target's probe parameters.
type Settings struct {
	Interval time.Duration
	Timeout  time.Duration
	Size     int // ICMP payload bytes, at least 8
	TOS      int // IPv4 TOS / IPv6 traffic class byte
	TTL      int // 0 = the system default
	Source   netip.Addr
	IfIndex  int
}

// Handler receives one target's results. It is called from the engine's
// goroutines with the engine locked: it must be quick and must not call back.
type Handler interface {
	Sent()
	Reply(rtt time.Duration, ttl int)
	Duplicate()
	Lost()
	SendError(reason string)
}

// Target is a handle on a probed address.
type Target struct {
	addr  netip.Addr
	fam   Family
	set   Settings
	h     Handler
	sched schedule.Entry[*Target] // Rank: insertion order, a stable phase
	gone  bool                    // removed: its probes in flight are forgotten
}

// Options tune an Engine.
type Options struct {
	// Socket forces a socket kind; empty tries raw, then datagram.
	Socket SocketKind
	// Families to open; empty means both.
	Families []Family
}

// FamilyStatus describes one family's socket.
type FamilyStatus struct {
	Up               bool
	Kind             SocketKind
	KernelTimestamps bool
	Err              error
}

// Counters are engine-wide events that belong to no target.
type Counters struct {
	Late     atomic.Uint64 // replies after their probe's timeout
	Foreign  atomic.Uint64 // replies with our identifier but not our token
	Mismatch atomic.Uint64 // replies from another address than the probe's
}

// Engine sends and matches ICMP echoes for many targets.
type Engine struct {
	logger *slog.Logger
	start  time.Time
	nonce  uint32
	socks  map[Family]*socket
	status map[Family]FamilyStatus

	mu       sync.Mutex
	sendQ    schedule.Queue[*Target]
	nextOrd  uint64
	inflight [2]*flight // by famIndex; nil for a family not opened
	expiry   expiryQueue
	serial   uint32
	free     []*probe
	pending  int                // probes sent and neither answered nor expired
	drained  map[Family]*rbatch // sockets the scheduler reads (kernel timestamps)

	Counters Counters

	wake chan struct{}
	stop chan struct{}
	done sync.WaitGroup
}

type probe struct {
	t        *Target
	serial   uint32
	sentMono int64
	sentWall int64
	deadline int64
	replied  bool
}

// newIdentity draws the engine's random token nonce and ICMP identifier,
// so that two engines (or two processes) tell their replies apart.
func newIdentity() (nonce uint32, id uint16, err error) {
	var rnd [6]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return 0, 0, err
	}
	return binary.BigEndian.Uint32(rnd[:4]), binary.BigEndian.Uint16(rnd[4:]), nil
}

// orBoth is fams, or both families when none is given.
func orBoth(fams []Family) []Family {
	if len(fams) == 0 {
		return []Family{IPv4, IPv6}
	}
	return fams
}

// New opens the sockets and starts the scheduler and receivers. A family whose
// socket cannot be opened is reported down in Status; New itself fails only
// when no family works.
func New(logger *slog.Logger, opts Options) (*Engine, error) {
	nonce, id, err := newIdentity()
	if err != nil {
		return nil, err
	}
	e := &Engine{
		logger:  logger,
		start:   time.Now(),
		nonce:   nonce,
		socks:   map[Family]*socket{},
		status:  map[Family]FamilyStatus{},
		drained: map[Family]*rbatch{},
		wake:    make(chan struct{}, 1),
		stop:    make(chan struct{}),
	}
	var errs []error
	for _, fam := range orBoth(opts.Families) {
		s, why, err := openSocket(fam, opts.Socket, id, false)
		if err != nil {
			e.status[fam] = FamilyStatus{Kind: KindNone, Err: err}
			logger.Warn("ICMP prober is down for this family; other collectors are not affected", "family", fam.String(), "err", err)
			errs = append(errs, fmt.Errorf("%s: %w", fam, err))
			continue
		}
		e.socks[fam] = s
		e.inflight[famIndex(fam)] = new(flight)
		e.status[fam] = FamilyStatus{Up: true, Kind: s.kind, KernelTimestamps: s.kernTS}
		ts := "kernel receive timestamps (SO_TIMESTAMPNS)"
		if !s.kernTS {
			ts = "user-space receive timestamps (SO_TIMESTAMPNS refused)"
		}
		logger.Info("ICMP prober ready", "family", fam.String(), "socket", why, "timestamps", ts)
		if s.file == nil {
			e.drained[fam] = newRBatch()
			continue
		}
		e.done.Add(1)
		go e.receive(s)
	}
	if len(e.socks) == 0 {
		return e, errors.Join(errs...)
	}
	e.done.Add(1)
	go e.schedule()
	return e, nil
}

// Status reports a family's socket.
func (e *Engine) Status(f Family) FamilyStatus {
	if st, ok := e.status[f]; ok {
		return st
	}
	return FamilyStatus{Kind: KindNone, Err: errors.New("family not opened")}
}

// Add starts probing addr. The first probe goes out at the target's slot in
// the interval, not immediately, so a reload never bursts.
func (e *Engine) Add(addr netip.Addr, s Settings, h Handler) *Target {
	addr = addr.Unmap()
	t := &Target{addr: addr, fam: FamilyOf(addr), set: s, h: h}
	e.mu.Lock()
	t.sched = schedule.Entry[*Target]{Value: t, Interval: s.Interval, Rank: e.nextOrd}
	e.nextOrd++
	e.sendQ.Add(&t.sched)
	e.mu.Unlock()
	e.kick()
	return t
}

// Update changes a target's address or settings in place; its handler stays.
func (e *Engine) Update(t *Target, addr netip.Addr, s Settings) {
	addr = addr.Unmap()
	e.mu.Lock()
	if t.set.Interval != s.Interval {
		t.sched.Interval = s.Interval
		e.sendQ.Respread()
	}
	t.addr, t.fam, t.set = addr, FamilyOf(addr), s
	e.mu.Unlock()
	e.kick()
}

// Remove stops probing; probes in flight are forgotten, not counted as lost.
func (e *Engine) Remove(t *Target) {
	e.mu.Lock()
	e.sendQ.Remove(&t.sched)
	t.gone = true // its probes in flight expire silently
	e.mu.Unlock()
	e.kick()
}

// Close stops the engine and waits for its goroutines.
func (e *Engine) Close() error {
	select {
	case <-e.stop:
		return nil
	default:
	}
	close(e.stop)
	for _, s := range e.socks {
		if s.file != nil { // wakes its receiver
			s.close()
		}
	}
	e.done.Wait()
	for _, s := range e.socks {
		if s.file == nil { // only now: the scheduler has stopped reading it
			s.close()
		}
	}
	return nil
}

func (e *Engine) kick() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

func (e *Engine) mono() int64 { return int64(time.Since(e.start)) }

func (e *Engine) schedule() {
	defer e.done.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	pkt := make([]byte, icmpHeaderLen+65535)
	oob := make([]byte, 0, 128)
	for {
		e.mu.Lock()
		// Read the replies queued before now first, so that none stamped
		// before a deadline is expired below; then send the batch due.
		now := e.mono()
		if e.pending > 0 {
			e.drainLocked()
		}
		for e.expiry.Len() > 0 && e.expiry.Peek() <= now {
			e.expireLocked(e.expiry.Pop())
		}
		now = e.mono()
		// A batch ends after batchWindow of sending even if more is due:
		// on a starved CPU at 10 000 targets it never caught up, so losses
		// were never declared, every sequence number filled up (each send
		// then scanning all 65536) and Close waited forever.
		for n, batchEnd := 1, now+int64(batchWindow); now < batchEnd; n++ {
			due := e.sendQ.Due(now + int64(batchWindow))
			if due == nil || due.Next()-now > int64(due.Interval/10) {
				break
			}
			e.sendLocked(due.Value, now, pkt, oob)
			e.sendQ.Sent(due, now)
			if n%batchLen == 0 {
				// Large batches (10 000 targets: 250) would overflow a
				// default-sized receive buffer with loopback replies.
				e.drainLocked()
			}
			now = e.mono()
		}
		// Loopback and LAN replies are often queued already.
		e.drainLocked()
		wait := time.Hour
		if d, ok := e.sendQ.Wait(now); ok {
			wait = d
		}
		if e.expiry.Len() > 0 {
			// A reply after its deadline is refused in match(), so declaring
			// the loss can wait for a sweep that gathers several.
			wait = min(wait, time.Duration(e.expiry.Peek()+int64(expiryGrace)-now))
		}
		if e.pending > 0 && len(e.drained) > 0 {
			wait = min(wait, replyPoll)
		}
		e.mu.Unlock()
		timer.Reset(max(wait, 0))
		select {
		case <-e.stop:
			return
		default:
		}
		select {
		case <-timer.C:
		case <-e.wake:
		case <-e.stop:
			return
		}
	}
}

// Waking the scheduler costs more CPU than the probes: one wake-up sends
// every probe due within batchWindow (at most a tenth of its interval) early,
// so targets stay spread over 1/batchWindow slots per second. Losses are
// declared at a later wake-up (expiryGrace) and replies to the few targets
// no send wakes for are read within replyPoll: kernel timestamps make the
// RTT independent of when a reply is read.
const (
	batchWindow = 25 * time.Millisecond
	expiryGrace = 2 * batchWindow
	replyPoll   = 50 * time.Millisecond
)

// drainLocked reads every reply queued on the sockets without a receiver.
func (e *Engine) drainLocked() {
	for fam, b := range e.drained {
		s := e.socks[fam]
		now := time.Now()
		s.drain(b, func(pkt []byte, r received) { e.handleLocked(s, pkt, r, now) })
	}
}

func (e *Engine) sendLocked(t *Target, now int64, pkt, oob []byte) {
	s := e.socks[t.fam]
	if s == nil {
		t.h.Sent()
		t.h.SendError("family_unavailable")
		t.h.Lost()
		return
	}
	f := e.inflight[famIndex(t.fam)]
	seq, ok := f.take()
	t.h.Sent()
	if !ok {
		t.h.SendError("too_many_in_flight")
		t.h.Lost()
		return
	}
	e.serial++
	size := max(t.set.Size, tokenLen)
	b := buildEcho(pkt, t.fam, s.id, seq, e.nonce, e.serial, size)
	o := appendCmsgs(oob[:0], t.fam, sendOpts{src: t.set.Source, ifIndex: t.set.IfIndex, tos: t.set.TOS, ttl: t.set.TTL})
	sent := time.Now()
	err := s.send(b, o, t.addr)
	if err != nil {
		t.h.SendError(sendErrorReason(err))
		t.h.Lost()
		return
	}
	p := e.newProbe()
	*p = probe{t: t, serial: e.serial, sentMono: int64(sent.Sub(e.start)), sentWall: sent.UnixNano()}
	p.deadline = p.sentMono + int64(t.set.Timeout)
	f.bySeq[seq] = p
	e.pending++
	e.expiry.Push(expiry{deadline: p.deadline, fam: t.fam, seq: seq, serial: e.serial})
}

func (e *Engine) expireLocked(x expiry) {
	f := e.inflight[famIndex(x.fam)]
	p := f.bySeq[x.seq]
	if p == nil || p.serial != x.serial {
		return
	}
	f.bySeq[x.seq] = nil
	if !p.replied {
		e.pending--
		if !p.t.gone {
			p.t.h.Lost()
		}
	}
	p.t = nil // no hold on a removed target
	e.free = append(e.free, p)
}

func (e *Engine) newProbe() *probe {
	if n := len(e.free); n > 0 {
		p := e.free[n-1]
		e.free = e.free[:n-1]
		return p
	}
	return new(probe)
}

func (e *Engine) receive(s *socket) {
	defer e.done.Done()
	s.readLoop(e.stop, e.logger, func(pkt []byte, r received, now time.Time) {
		e.mu.Lock()
		e.handleLocked(s, pkt, r, now)
		e.mu.Unlock()
	})
}

// handleLocked matches one packet read from s at now.
func (e *Engine) handleLocked(s *socket, pkt []byte, r received, now time.Time) {
	rep, src, srcLen, ok := parseEchoReply(pkt, s.fam, s.withHdr)
	if !ok || rep.id != s.id {
		return
	}
	if rep.nonce != e.nonce {
		e.Counters.Foreign.Add(1)
		return
	}
	from := r.from
	if srcLen == 4 {
		from = netip.AddrFrom4([4]byte(src[:4]))
	}
	ttl := rep.ttl
	if ttl < 0 {
		ttl = r.ttl
	}
	e.matchLocked(s.fam, rep, from.Unmap(), ttl, r.kernTS, now)
}

func (e *Engine) matchLocked(fam Family, rep echoReply, from netip.Addr, ttl int, kernTS, userNow time.Time) {
	f := e.inflight[famIndex(fam)]
	p := f.bySeq[rep.seq]
	if p == nil || p.serial != rep.serial {
		e.Counters.Late.Add(1) // its probe has expired and its number moved on
		return
	}
	if p.t.gone {
		return // the target was removed while the probe was in flight
	}
	if from != p.t.addr.WithZone("") {
		e.Counters.Mismatch.Add(1)
		return
	}
	if p.replied {
		p.t.h.Duplicate()
		return
	}
	userRTT := time.Duration(userNow.Sub(e.start).Nanoseconds() - p.sentMono)
	rtt := userRTT
	if !kernTS.IsZero() {
		// The kernel's wall-clock stamp is exact unless the clock stepped
		// between send and receive; then fall back to the monotonic figure.
		if k := time.Duration(kernTS.UnixNano() - p.sentWall); k > 0 && k <= userRTT {
			rtt = k
		}
	}
	if rtt > p.t.set.Timeout {
		e.Counters.Late.Add(1) // expiry will count it lost
		return
	}
	p.replied = true
	e.pending--
	p.t.h.Reply(rtt, ttl)
}

func interfaceIndex(name string) (int, error) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return 0, err
	}
	return ifi.Index, nil
}
