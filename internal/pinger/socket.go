package pinger

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// SocketKind says how a family's probes leave the machine.
type SocketKind string

const (
	KindRaw   SocketKind = "raw"   // needs CAP_NET_RAW; sees the IP header
	KindDgram SocketKind = "dgram" // unprivileged ping socket (net.ipv4.ping_group_range)
	KindNone  SocketKind = "none"
)

// socket is one ICMP socket shared by every target of a family.
type socket struct {
	fam     Family
	kind    SocketKind
	fd      int
	file    *os.File        // nil when the engine drains the socket itself (see drain)
	rc      syscall.RawConn // nil with file
	id      uint16          // echo identifier: ours on raw sockets, the kernel's on datagram ones
	kernTS  bool            // SO_TIMESTAMPNS accepted
	withHdr bool            // raw IPv4 delivers the IP header

	// Message headers and the closures handed to the poller are built once:
	// a probe costs no allocation and no hidden syscall (x/sys's Recvmsg
	// asks getsockopt(SO_PROTOCOL) for every IPv4 packet).
	smsg, rmsg msg
	sendFn     func(fd uintptr)
	recvFn     func(fd uintptr) bool
}

// msg is a msghdr with room for its address and one buffer.
type msg struct {
	hdr   unix.Msghdr
	iov   unix.Iovec
	name  unix.RawSockaddrInet6 // large enough for either family
	n     int
	errno unix.Errno
}

func (m *msg) set(buf, oob []byte) {
	m.iov.Base = &buf[0]
	m.iov.SetLen(len(buf))
	m.hdr.Iov = &m.iov
	m.hdr.Iovlen = 1
	m.hdr.Control = nil
	m.hdr.Controllen = 0
	if len(oob) > 0 {
		m.hdr.Control = &oob[0]
		m.hdr.SetControllen(len(oob))
	}
	m.hdr.Name = (*byte)(unsafe.Pointer(&m.name))
	m.hdr.Namelen = unix.SizeofSockaddrInet6
}

// openSocket tries a raw socket, then a datagram ping socket. The returned
// reason explains in one sentence what was chosen and why.
func openSocket(fam Family, want SocketKind, id uint16, polled bool) (*socket, string, error) {
	var rawErr error
	if want == "" || want == KindRaw {
		s, err := newSocket(fam, KindRaw, id, polled)
		if err == nil {
			return s, "raw ICMP socket (CAP_NET_RAW is available)", nil
		}
		rawErr = err
		if want == KindRaw {
			return nil, "", fmt.Errorf("raw ICMP socket: %w", err)
		}
	}
	s, err := newSocket(fam, KindDgram, id, polled)
	if err == nil {
		why := "unprivileged ICMP datagram socket"
		if rawErr != nil {
			why = fmt.Sprintf("unprivileged ICMP datagram socket, because a raw socket was refused (%v)", rawErr)
		}
		return s, why, nil
	}
	if rawErr == nil {
		return nil, "", dgramError(err)
	}
	return nil, "", fmt.Errorf("raw ICMP socket refused (%v; grant CAP_NET_RAW, e.g. setcap cap_net_raw+ep) and ICMP datagram socket refused (%v; widen net.ipv4.ping_group_range to include this process's group)", rawErr, err)
}

// newSocket opens a socket. Unless polled, a socket with kernel timestamps
// stays out of the runtime's netpoller: the engine reads it without waiting
// (drain), and a registered fd would wake an idle thread on every reply.
func newSocket(fam Family, kind SocketKind, id uint16, polled bool) (*socket, error) {
	domain, proto := unix.AF_INET, unix.IPPROTO_ICMP
	if fam == IPv6 {
		domain, proto = unix.AF_INET6, unix.IPPROTO_ICMPV6
	}
	typ := unix.SOCK_RAW
	if kind == KindDgram {
		typ = unix.SOCK_DGRAM
	}
	fd, err := unix.Socket(domain, typ|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, proto)
	if err != nil {
		return nil, err
	}
	s := &socket{fd: fd, fam: fam, kind: kind, id: id, withHdr: fam == IPv4 && kind == KindRaw}
	fail := func(what string, err error) (*socket, error) {
		unix.Close(fd)
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	// A larger receive buffer rides out bursts of replies; the kernel caps it.
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 1<<20)
	s.kernTS = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1) == nil
	if fam == IPv4 && kind == KindDgram {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_RECVTTL, 1); err != nil {
			return fail("IP_RECVTTL", err)
		}
	}
	if fam == IPv6 {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_RECVHOPLIMIT, 1); err != nil {
			return fail("IPV6_RECVHOPLIMIT", err)
		}
	}
	if kind == KindRaw {
		reply := uint8(icmpv4EchoReply)
		if fam == IPv6 {
			reply = icmpv6EchoReply
		}
		if err := passOnly(fd, fam, reply); err != nil {
			return fail("ICMP type filter", err)
		}
		// A raw socket sees every ICMP packet on the machine (other pingers'
		// replies, our own requests looping on lo): drop all but replies
		// carrying our identifier in the kernel.
		if err := attachFilter(fd, fam, id); err != nil {
			return fail("SO_ATTACH_FILTER", err)
		}
	} else {
		// Bind now so the kernel assigns the identifier (the ping socket's
		// "port") before the first probe, and tell us what it is.
		var sa unix.Sockaddr = &unix.SockaddrInet4{}
		if fam == IPv6 {
			sa = &unix.SockaddrInet6{}
		}
		if err := unix.Bind(fd, sa); err != nil {
			return fail("bind", err)
		}
		got, err := unix.Getsockname(fd)
		if err != nil {
			return fail("getsockname", err)
		}
		switch a := got.(type) {
		case *unix.SockaddrInet4:
			s.id = uint16(a.Port)
		case *unix.SockaddrInet6:
			s.id = uint16(a.Port)
		}
	}
	// The socket is non-blocking, so these calls never wait and need not tell
	// the runtime they are in a syscall. Telling it (Syscall) wakes the
	// runtime's monitor thread whenever the process was idle, i.e. on every
	// probe at low rates: with 100 targets that was a futex wake and three
	// sleeps per probe (strace -c: 11400 → 8600 syscalls in 10 s), and the
	// wake ran between the send timestamp and the send, adding to the RTT.
	s.sendFn = func(fd uintptr) {
		r, _, e := unix.RawSyscall(unix.SYS_SENDMSG, fd, uintptr(unsafe.Pointer(&s.smsg.hdr)), 0)
		s.smsg.n, s.smsg.errno = int(r), e
	}
	s.recvFn = func(fd uintptr) bool {
		r, _, e := unix.RawSyscall(unix.SYS_RECVMSG, fd, uintptr(unsafe.Pointer(&s.rmsg.hdr)), 0)
		s.rmsg.n, s.rmsg.errno = int(r), e
		return e != unix.EAGAIN
	}
	if !polled && s.kernTS {
		return s, nil
	}
	s.file = os.NewFile(uintptr(fd), fmt.Sprintf("icmp%s-%s", fam, kind))
	rc, err := s.file.SyscallConn()
	if err != nil {
		s.file.Close()
		return nil, err
	}
	s.rc = rc
	return s, nil
}

// icmpFilter is ICMP_FILTER of <linux/icmp.h>, which x/sys lacks.
const icmpFilter = 1

// passOnly lets only ICMP messages of the given types into a raw socket
// (ICMP_FILTER, ICMPV6_FILTER). The kernel applies this filter before it
// clones a packet for the socket, unlike the BPF program: without it, on
// loopback every probe's own echo request, and every ICMP packet of other
// programs, was cloned into the socket only to be dropped there.
func passOnly(fd int, fam Family, types ...uint8) error {
	if fam == IPv4 {
		block := ^uint32(0)
		for _, t := range types {
			block &^= 1 << (t & 31) // the filter covers types 0-31 only
		}
		return unix.SetsockoptInt(fd, unix.SOL_RAW, icmpFilter, int(int32(block)))
	}
	var f unix.ICMPv6Filter
	for i := range f.Data {
		f.Data[i] = 0xffffffff
	}
	for _, t := range types {
		f.Data[t>>5] &^= 1 << (uint32(t) & 31)
	}
	return unix.SetsockoptICMPv6Filter(fd, unix.SOL_ICMPV6, unix.ICMPV6_FILTER, &f)
}

func attachFilter(fd int, fam Family, id uint16) error {
	var prog []bpf.Instruction
	if fam == IPv4 {
		prog = []bpf.Instruction{
			bpf.LoadMemShift{Off: 0}, // X = IP header length
			bpf.LoadIndirect{Off: 0, Size: 1},
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: icmpv4EchoReply, SkipFalse: 3},
			bpf.LoadIndirect{Off: 4, Size: 2},
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(id), SkipFalse: 1},
			bpf.RetConstant{Val: 0xffff},
			bpf.RetConstant{Val: 0},
		}
	} else {
		prog = []bpf.Instruction{
			bpf.LoadAbsolute{Off: 0, Size: 1},
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: icmpv6EchoReply, SkipFalse: 3},
			bpf.LoadAbsolute{Off: 4, Size: 2},
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(id), SkipFalse: 1},
			bpf.RetConstant{Val: 0xffff},
			bpf.RetConstant{Val: 0},
		}
	}
	return attachProgram(fd, prog)
}

// attachProgram assembles a classic BPF program and attaches it to fd.
func attachProgram(fd int, prog []bpf.Instruction) error {
	raw, err := bpf.Assemble(prog)
	if err != nil {
		return err
	}
	f := make([]unix.SockFilter, len(raw))
	for i, r := range raw {
		f[i] = unix.SockFilter{Code: r.Op, Jt: r.Jt, Jf: r.Jf, K: r.K}
	}
	return unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &unix.SockFprog{Len: uint16(len(f)), Filter: &f[0]})
}

// sendOpts are the per-packet settings carried as ancillary data, so one
// socket serves targets with different sources, TOS and TTL.
type sendOpts struct {
	src     netip.Addr
	ifIndex int
	tos     int
	ttl     int
}

// appendCmsgs builds the control messages for o into buf.
func appendCmsgs(buf []byte, fam Family, o sendOpts) []byte {
	level, tosOpt, ttlOpt := unix.IPPROTO_IP, unix.IP_TOS, unix.IP_TTL
	if fam != IPv4 {
		level, tosOpt, ttlOpt = unix.IPPROTO_IPV6, unix.IPV6_TCLASS, unix.IPV6_HOPLIMIT
	}
	if o.src.IsValid() || o.ifIndex != 0 {
		buf = appendPktinfo(buf, fam, o)
	}
	if o.tos != 0 {
		buf = appendCmsgInt(buf, level, tosOpt, o.tos)
	}
	if o.ttl != 0 {
		buf = appendCmsgInt(buf, level, ttlOpt, o.ttl)
	}
	return buf
}

// appendPktinfo sets the probe's source address and interface.
func appendPktinfo(buf []byte, fam Family, o sendOpts) []byte {
	if fam == IPv4 {
		var pi unix.Inet4Pktinfo
		pi.Ifindex = int32(o.ifIndex)
		if o.src.IsValid() {
			pi.Spec_dst = o.src.As4()
		}
		return appendCmsg(buf, unix.IPPROTO_IP, unix.IP_PKTINFO, unsafe.Slice((*byte)(unsafe.Pointer(&pi)), unix.SizeofInet4Pktinfo))
	}
	var pi unix.Inet6Pktinfo
	pi.Ifindex = uint32(o.ifIndex)
	if o.src.IsValid() {
		pi.Addr = o.src.As16()
	}
	return appendCmsg(buf, unix.IPPROTO_IPV6, unix.IPV6_PKTINFO, unsafe.Slice((*byte)(unsafe.Pointer(&pi)), unix.SizeofInet6Pktinfo))
}

func appendCmsgInt(buf []byte, level, typ, v int) []byte {
	var b [4]byte
	binary.NativeEndian.PutUint32(b[:], uint32(v))
	return appendCmsg(buf, level, typ, b[:])
}

func appendCmsg(buf []byte, level, typ int, data []byte) []byte {
	start := len(buf)
	space := unix.CmsgSpace(len(data))
	buf = append(buf, make([]byte, space)...)
	h := (*unix.Cmsghdr)(unsafe.Pointer(&buf[start]))
	h.Level = int32(level)
	h.Type = int32(typ)
	h.SetLen(unix.CmsgLen(len(data)))
	copy(buf[start+unix.CmsgLen(0):], data)
	return buf
}

// send writes one packet without waiting: a full socket buffer is a counted
// error, never a stalled scheduler. Only the scheduler goroutine sends.
func (s *socket) send(pkt, oob []byte, dst netip.Addr) error {
	m := &s.smsg
	m.set(pkt, oob)
	m.name = unix.RawSockaddrInet6{}
	if s.fam == IPv4 {
		sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(&m.name))
		sa.Family = unix.AF_INET
		sa.Addr = dst.As4()
		m.hdr.Namelen = unix.SizeofSockaddrInet4
	} else {
		m.name.Family = unix.AF_INET6
		m.name.Addr = dst.As16()
		if z := dst.Zone(); z != "" {
			if ifi, err := interfaceIndex(z); err == nil {
				m.name.Scope_id = uint32(ifi)
			}
		}
	}
	if err := s.control(s.sendFn); err != nil {
		return err
	}
	if m.errno != 0 {
		return m.errno
	}
	return nil
}

// received is one packet with its metadata.
type received struct {
	n      int
	from   netip.Addr
	kernTS time.Time // zero when the kernel gave no timestamp
	ttl    int       // -1 when unknown
}

// recv blocks (in the netpoller) until a packet arrives or the socket
// closes. Only the socket's receiver goroutine calls it.
func (s *socket) recv(buf, oob []byte) (received, error) {
	r := received{ttl: -1}
	m := &s.rmsg
	m.set(buf, oob)
	if err := s.rc.Read(s.recvFn); err != nil {
		return r, err
	}
	if m.errno != 0 {
		return r, m.errno
	}
	r.n = m.n
	switch m.name.Family {
	case unix.AF_INET:
		r.from = netip.AddrFrom4((*unix.RawSockaddrInet4)(unsafe.Pointer(&m.name)).Addr)
	case unix.AF_INET6:
		r.from = netip.AddrFrom16(m.name.Addr)
	}
	parseCmsgs(oob[:m.hdr.Controllen], &r)
	return r, nil
}

// readLoop hands every packet to fn, with the time it was read, until the
// socket is closed. A socket has exactly one reader.
func (s *socket) readLoop(stop <-chan struct{}, logger *slog.Logger, fn func(pkt []byte, r received, now time.Time)) {
	buf := make([]byte, 65536)
	oob := make([]byte, 256)
	for {
		r, err := s.recv(buf, oob)
		if err != nil {
			select {
			case <-stop:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			logger.Debug("ICMP receive error", "family", s.fam.String(), "err", err)
			continue
		}
		fn(buf[:r.n], r, time.Now())
	}
}

// parseCmsgs walks the control messages by hand: no allocation per packet.
func parseCmsgs(b []byte, r *received) {
	for len(b) >= unix.CmsgLen(0) {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
		l := int(h.Len)
		if l < unix.CmsgLen(0) || l > len(b) {
			return
		}
		data := b[unix.CmsgLen(0):l]
		switch {
		case h.Level == unix.SOL_SOCKET && h.Type == unix.SO_TIMESTAMPNS && len(data) >= 16:
			sec := int64(binary.NativeEndian.Uint64(data[0:]))
			nsec := int64(binary.NativeEndian.Uint64(data[8:]))
			r.kernTS = time.Unix(sec, nsec)
		case h.Level == unix.IPPROTO_IP && h.Type == unix.IP_TTL && len(data) >= 4:
			r.ttl = int(binary.NativeEndian.Uint32(data))
		case h.Level == unix.IPPROTO_IPV6 && h.Type == unix.IPV6_HOPLIMIT && len(data) >= 4:
			r.ttl = int(binary.NativeEndian.Uint32(data))
		}
		sp := unix.CmsgSpace(l - unix.CmsgLen(0))
		if sp > len(b) {
			return
		}
		b = b[sp:]
	}
}

func (s *socket) close() error {
	if s.file == nil {
		return unix.Close(s.fd)
	}
	return s.file.Close()
}

// control runs fn on the socket's descriptor.
func (s *socket) control(fn func(fd uintptr)) error {
	if s.rc == nil {
		fn(uintptr(s.fd))
		return nil
	}
	return s.rc.Control(fn)
}

// sendErrorReason maps a send error to a short, stable label value.
func sendErrorReason(err error) string {
	var errno unix.Errno
	if !errors.As(err, &errno) {
		return "other"
	}
	switch errno {
	case unix.ENETUNREACH:
		return "network_unreachable"
	case unix.EHOSTUNREACH:
		return "host_unreachable"
	case unix.EPERM, unix.EACCES:
		return "permission_denied"
	case unix.ENOBUFS, unix.EAGAIN:
		return "buffer_full"
	case unix.EMSGSIZE:
		return "message_too_long"
	case unix.EADDRNOTAVAIL, unix.EINVAL:
		return "bad_source_address"
	case unix.ENODEV, unix.ENXIO:
		return "no_device"
	case unix.ENETDOWN:
		return "network_down"
	default:
		return "other"
	}
}
