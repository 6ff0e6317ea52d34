package pinger

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/net/bpf"
)

// The tracer is the engine of path probing (mtr): TTL-limited echo requests
// whose answers are Time Exceeded from the routers on the way, Echo Reply from
// the destination, or Destination Unreachable where the path ends.
//
// It has sockets of its own, apart from the ping Engine's: their filter must
// also let ICMP errors in, and the ping sockets' strict echo-reply filter is
// what keeps a busy ping engine cheap. Only raw sockets work: an unprivileged
// ping socket sees Time Exceeded only through its error queue.

const (
	icmpv4TimeExceeded = 11
	icmpv4Unreachable  = 3
	icmpv6TimeExceeded = 3
	icmpv6Unreachable  = 1
)

// ReplyKind says who answered a TTL-limited probe.
type ReplyKind uint8

const (
	NoReply      ReplyKind = iota // lost, or not sent (see HopReply.Err)
	TimeExceeded                  // a router on the way
	EchoReply                     // the destination
	Unreachable                   // a router (or the destination) that cannot deliver
)

// HopReply is the outcome of one probe.
type HopReply struct {
	TTL  int
	Kind ReplyKind
	Code uint8      // ICMP code of an Unreachable
	From netip.Addr // who answered; invalid when Kind is NoReply
	RTT  time.Duration
	Err  string // why the probe could not be sent (sendErrorReason), or ""
}

// TraceSettings are the parameters of one batch of probes.
type TraceSettings struct {
	Timeout time.Duration
	Size    int // ICMP payload bytes, at least 8
	TOS     int
	Source  netip.Addr
	IfIndex int
}

// Tracer sends batches of TTL-limited echo requests and matches the answers
// by the (quoted) echo header's identifier and sequence number.
type Tracer struct {
	logger *slog.Logger
	start  time.Time
	nonce  uint32
	socks  map[Family]*socket
	status map[Family]FamilyStatus

	mu       sync.Mutex
	inflight map[Family]map[uint16]*traceProbe
	seq      map[Family]uint16
	serial   uint32

	// Counters: Late (after the timeout), Foreign (our identifier, not our
	// token), Mismatch (an answer about another destination than the probe's).
	Counters Counters

	stop chan struct{}
	done sync.WaitGroup
	once sync.Once
}

type traceProbe struct {
	b        *traceBatch
	i        int
	serial   uint32
	dst      netip.Addr
	sentMono int64
	sentWall int64
}

type traceBatch struct {
	res     []HopReply
	timeout time.Duration
	left    int
	done    chan struct{}
}

func (b *traceBatch) answered() {
	b.left--
	if b.left == 0 {
		close(b.done)
	}
}

// NewTracer opens a raw ICMP socket per family. A family that fails is
// reported down in Status; NewTracer fails only when none works.
func NewTracer(logger *slog.Logger, families ...Family) (*Tracer, error) {
	nonce, id, err := newIdentity()
	if err != nil {
		return nil, err
	}
	t := &Tracer{
		logger:   logger,
		start:    time.Now(),
		nonce:    nonce,
		socks:    map[Family]*socket{},
		status:   map[Family]FamilyStatus{},
		inflight: map[Family]map[uint16]*traceProbe{},
		seq:      map[Family]uint16{},
		stop:     make(chan struct{}),
	}
	var errs []error
	for _, fam := range orBoth(families) {
		s, err := newTraceSocket(fam, id)
		if err != nil {
			err = fmt.Errorf("raw ICMP socket (path probing needs CAP_NET_RAW): %w", err)
			t.status[fam] = FamilyStatus{Kind: KindNone, Err: err}
			logger.Error("mtr prober is down for this family; other collectors are not affected", "family", fam.String(), "err", err)
			errs = append(errs, fmt.Errorf("%s: %w", fam, err))
			continue
		}
		t.socks[fam] = s
		t.inflight[fam] = map[uint16]*traceProbe{}
		t.status[fam] = FamilyStatus{Up: true, Kind: KindRaw, KernelTimestamps: s.kernTS}
		t.done.Add(1)
		go t.receive(s)
	}
	if len(t.socks) == 0 {
		return t, errors.Join(errs...)
	}
	return t, nil
}

// newTraceSocket is the ping engine's raw socket with a wider filter.
// Attaching a filter replaces the one newSocket set; until then the old one
// only lets through echo replies with our identifier, which are ours anyway.
func newTraceSocket(fam Family, id uint16) (*socket, error) {
	s, err := newSocket(fam, KindRaw, id, true)
	if err != nil {
		return nil, err
	}
	var serr error
	err = s.rc.Control(func(fd uintptr) {
		types := []uint8{icmpv4EchoReply, icmpv4TimeExceeded, icmpv4Unreachable}
		if fam == IPv6 {
			types = []uint8{icmpv6EchoReply, icmpv6TimeExceeded, icmpv6Unreachable}
		}
		if serr = passOnly(int(fd), fam, types...); serr != nil {
			serr = fmt.Errorf("ICMP type filter: %w", serr)
			return
		}
		if serr = attachTraceFilter(int(fd), fam, id); serr != nil {
			serr = fmt.Errorf("SO_ATTACH_FILTER: %w", serr)
		}
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

// attachTraceFilter lets in, in the kernel, only echo replies carrying our
// identifier and ICMP errors that quote an echo request carrying it: a raw
// socket otherwise sees every ICMP packet the host receives.
func attachTraceFilter(fd int, fam Family, id uint16) error {
	var prog []bpf.Instruction
	if fam == IPv4 {
		// Raw IPv4 delivers the IP header: X holds its length, and for an
		// error the quoted header's length is added to it.
		prog = []bpf.Instruction{
			/* 0 */ bpf.LoadMemShift{Off: 0},
			/* 1 */ bpf.LoadIndirect{Off: 0, Size: 1}, // type
			/* 2 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: icmpv4EchoReply, SkipTrue: 3},
			/* 3 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: icmpv4TimeExceeded, SkipTrue: 5},
			/* 4 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: icmpv4Unreachable, SkipTrue: 4},
			/* 5 */ bpf.RetConstant{Val: 0},
			/* 6 */ bpf.LoadIndirect{Off: 4, Size: 2}, // echo reply: identifier
			/* 7 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(id), SkipTrue: 10},
			/* 8 */ bpf.RetConstant{Val: 0},
			/* 9 */ bpf.LoadIndirect{Off: 8, Size: 1}, // error: quoted IP header's version/IHL
			/* 10 */ bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: 0x0f},
			/* 11 */ bpf.ALUOpConstant{Op: bpf.ALUOpShiftLeft, Val: 2},
			/* 12 */ bpf.ALUOpX{Op: bpf.ALUOpAdd},
			/* 13 */ bpf.TAX{},
			/* 14 */ bpf.LoadIndirect{Off: 8, Size: 1}, // quoted ICMP type
			/* 15 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: icmpv4EchoRequest, SkipFalse: 3},
			/* 16 */ bpf.LoadIndirect{Off: 12, Size: 2}, // quoted identifier
			/* 17 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(id), SkipFalse: 1},
			/* 18 */ bpf.RetConstant{Val: 0xffff},
			/* 19 */ bpf.RetConstant{Val: 0},
		}
	} else {
		// ICMPv6 arrives without the IPv6 header; an error quotes a 40-byte
		// header (we send no extension headers).
		prog = []bpf.Instruction{
			/* 0 */ bpf.LoadAbsolute{Off: 0, Size: 1},
			/* 1 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: icmpv6EchoReply, SkipTrue: 3},
			/* 2 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: icmpv6TimeExceeded, SkipTrue: 4},
			/* 3 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: icmpv6Unreachable, SkipTrue: 3},
			/* 4 */ bpf.RetConstant{Val: 0},
			/* 5 */ bpf.LoadAbsolute{Off: 4, Size: 2},
			/* 6 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(id), SkipTrue: 4, SkipFalse: 5},
			/* 7 */ bpf.LoadAbsolute{Off: 48, Size: 1},
			/* 8 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: icmpv6EchoRequest, SkipFalse: 3},
			/* 9 */ bpf.LoadAbsolute{Off: 52, Size: 2},
			/* 10 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(id), SkipFalse: 1},
			/* 11 */ bpf.RetConstant{Val: 0xffff},
			/* 12 */ bpf.RetConstant{Val: 0},
		}
	}
	return attachProgram(fd, prog)
}

// Status reports a family's socket.
func (t *Tracer) Status(f Family) FamilyStatus {
	if st, ok := t.status[f]; ok {
		return st
	}
	return FamilyStatus{Kind: KindNone, Err: errors.New("family not opened")}
}

// Close stops the receivers; batches in progress return at once.
func (t *Tracer) Close() error {
	t.once.Do(func() {
		close(t.stop)
		for _, s := range t.socks {
			s.close()
		}
		t.done.Wait()
	})
	return nil
}

// Probe sends one echo request to dst per entry of ttls, all at once, and
// waits until each is answered or the timeout has passed (or ctx ends, or the
// tracer closes). Results are in the order of ttls. It never blocks longer
// than the timeout plus the time to send.
func (t *Tracer) Probe(ctx context.Context, dst netip.Addr, s TraceSettings, ttls []int) []HopReply {
	dst = dst.Unmap()
	fam := FamilyOf(dst)
	res := make([]HopReply, len(ttls))
	for i, ttl := range ttls {
		res[i].TTL = ttl
	}
	sock := t.socks[fam]
	if sock == nil {
		for i := range res {
			res[i].Err = "family_unavailable"
		}
		return res
	}
	b := &traceBatch{res: res, timeout: s.Timeout, left: len(ttls), done: make(chan struct{})}
	if b.left == 0 {
		return res
	}
	size := max(s.Size, tokenLen)
	pkt := make([]byte, icmpHeaderLen+size)
	oob := make([]byte, 0, 128)
	seqs := make([]uint16, 0, len(ttls))

	t.mu.Lock()
	m := t.inflight[fam]
	for i, ttl := range ttls {
		// A number stays busy until its batch is over, so two probes in
		// flight never share one: routers quote only 8 bytes of an IPv4
		// probe, and then identifier and sequence are all there is to match.
		seq, ok := t.seq[fam], false
		for range 1 << 16 {
			seq++
			if _, busy := m[seq]; !busy {
				ok = true
				break
			}
		}
		t.seq[fam] = seq
		if !ok {
			res[i].Err = "too_many_in_flight"
			b.answered()
			continue
		}
		t.serial++
		p := buildEcho(pkt, fam, sock.id, seq, t.nonce, t.serial, size)
		o := appendCmsgs(oob[:0], fam, sendOpts{src: s.Source, ifIndex: s.IfIndex, tos: s.TOS, ttl: ttl})
		sent := time.Now()
		if err := sock.send(p, o, dst); err != nil {
			res[i].Err = sendErrorReason(err)
			b.answered()
			continue
		}
		m[seq] = &traceProbe{b: b, i: i, serial: t.serial, dst: dst, sentMono: int64(sent.Sub(t.start)), sentWall: sent.UnixNano()}
		seqs = append(seqs, seq)
	}
	t.mu.Unlock()

	if len(seqs) > 0 {
		timer := time.NewTimer(s.Timeout)
		select {
		case <-b.done:
		case <-timer.C:
		case <-ctx.Done():
		case <-t.stop:
		}
		timer.Stop()
	}
	t.mu.Lock()
	for _, seq := range seqs {
		if p, ok := m[seq]; ok && p.b == b {
			delete(m, seq)
		}
	}
	// res may still be written by match until the lock above was taken;
	// from here on it is ours alone.
	out := append([]HopReply(nil), res...)
	t.mu.Unlock()
	return out
}

func (t *Tracer) receive(s *socket) {
	defer t.done.Done()
	s.readLoop(t.stop, t.logger, func(pkt []byte, r received, now time.Time) {
		if a, ok := parseTraceReply(pkt, s.fam, s.withHdr); ok && a.id == s.id {
			t.match(s.fam, a, r.from.Unmap(), r.kernTS, now)
		}
	})
}

func (t *Tracer) match(fam Family, a traceAnswer, from netip.Addr, kernTS, userNow time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p, ok := t.inflight[fam][a.seq]
	if !ok {
		t.Counters.Late.Add(1) // its batch is over
		return
	}
	if a.hasToken {
		if a.nonce != t.nonce {
			t.Counters.Foreign.Add(1)
			return
		}
		if a.serial != p.serial {
			t.Counters.Late.Add(1) // an earlier probe that had this number
			return
		}
	}
	// An echo reply must come from the destination; an error must be about it.
	if (a.kind == EchoReply && from != p.dst.WithZone("")) || (a.kind != EchoReply && a.quotedDst != p.dst.WithZone("")) {
		t.Counters.Mismatch.Add(1)
		return
	}
	r := &p.b.res[p.i]
	if r.Kind != NoReply {
		return // a duplicate
	}
	userRTT := time.Duration(userNow.Sub(t.start).Nanoseconds() - p.sentMono)
	rtt := userRTT
	if !kernTS.IsZero() {
		if k := time.Duration(kernTS.UnixNano() - p.sentWall); k > 0 && k <= userRTT {
			rtt = k
		}
	}
	if rtt > p.b.timeout {
		t.Counters.Late.Add(1)
		return
	}
	r.Kind, r.Code, r.From, r.RTT = a.kind, a.code, from, rtt
	p.b.answered()
}

// traceAnswer is what the receiver needs from an echo reply or ICMP error.
type traceAnswer struct {
	kind          ReplyKind
	code          uint8
	id, seq       uint16
	hasToken      bool // the payload's token was there (errors may quote only 8 bytes)
	nonce, serial uint32
	quotedDst     netip.Addr // the destination of the quoted probe (errors only)
}

// parseTraceReply decodes an echo reply, or an ICMP error quoting an echo
// request. withIPHeader is true for raw IPv4 sockets.
func parseTraceReply(b []byte, fam Family, withIPHeader bool) (a traceAnswer, ok bool) {
	if withIPHeader {
		if len(b) < 20 || b[0]>>4 != 4 {
			return a, false
		}
		ihl := int(b[0]&0x0f) * 4
		if ihl < 20 || len(b) < ihl || b[9] != 1 {
			return a, false
		}
		b = b[ihl:]
	}
	if len(b) < icmpHeaderLen {
		return a, false
	}
	typ, code := b[0], b[1]
	echoReply, timeExceeded, unreachable, echoRequest := byte(icmpv4EchoReply), byte(icmpv4TimeExceeded), byte(icmpv4Unreachable), byte(icmpv4EchoRequest)
	if fam == IPv6 {
		echoReply, timeExceeded, unreachable, echoRequest = icmpv6EchoReply, icmpv6TimeExceeded, icmpv6Unreachable, icmpv6EchoRequest
	}
	var echo []byte
	switch typ {
	case echoReply:
		if code != 0 {
			return a, false
		}
		a.kind, echo = EchoReply, b
	case timeExceeded, unreachable:
		a.kind, a.code = TimeExceeded, code
		if typ == unreachable {
			a.kind = Unreachable
		}
		q := b[icmpHeaderLen:]
		if fam == IPv4 {
			if len(q) < 20 || q[0]>>4 != 4 {
				return a, false
			}
			ihl := int(q[0]&0x0f) * 4
			if ihl < 20 || len(q) < ihl || q[9] != 1 {
				return a, false
			}
			a.quotedDst = netip.AddrFrom4([4]byte(q[16:20]))
			echo = q[ihl:]
		} else {
			if len(q) < 40 || q[0]>>4 != 6 || q[6] != 58 {
				return a, false
			}
			a.quotedDst = netip.AddrFrom16([16]byte(q[24:40]))
			echo = q[40:]
		}
		if len(echo) < icmpHeaderLen || echo[0] != echoRequest {
			return a, false
		}
	default:
		return a, false
	}
	if len(echo) < icmpHeaderLen {
		return a, false
	}
	a.id = binary.BigEndian.Uint16(echo[4:])
	a.seq = binary.BigEndian.Uint16(echo[6:])
	if len(echo) >= icmpHeaderLen+tokenLen {
		a.hasToken = true
		a.nonce = binary.BigEndian.Uint32(echo[8:])
		a.serial = binary.BigEndian.Uint32(echo[12:])
	} else if a.kind == EchoReply {
		return a, false // our echo replies always carry the token
	}
	return a, true
}
