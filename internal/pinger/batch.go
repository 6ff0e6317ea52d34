package pinger

import (
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Replies are read in batches, without waiting, by the goroutine that sends:
// with kernel receive timestamps the RTT does not depend on when a reply is
// read, so a reply need not wake anything. The receiver goroutine it replaces
// cost a netpoller wake-up, a goroutine switch and two recvmsg calls per
// reply.

const (
	batchLen = 64   // packets per recvmmsg
	slotLen  = 2048 // bytes per packet: the token sits at the payload's start
	oobLen   = 128
)

// mmsghdr is struct mmsghdr, which x/sys does not define.
type mmsghdr struct {
	hdr unix.Msghdr
	n   uint32
}

// rbatch is the memory of one recvmmsg, allocated once per socket.
type rbatch struct {
	hdrs  [batchLen]mmsghdr
	iovs  [batchLen]unix.Iovec
	names [batchLen]unix.RawSockaddrInet6
	oobs  [batchLen][oobLen]byte
	bufs  [batchLen][slotLen]byte
	got   int
	errno unix.Errno
	fn    func(fd uintptr)
}

func newRBatch() *rbatch {
	b := &rbatch{}
	b.fn = func(fd uintptr) {
		r, _, e := unix.RawSyscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&b.hdrs[0])), batchLen, unix.MSG_DONTWAIT, 0, 0)
		b.got, b.errno = int(r), e
	}
	return b
}

// reset re-arms every header: the kernel rewrites name and control lengths.
func (b *rbatch) reset() {
	for i := range b.hdrs {
		h := &b.hdrs[i].hdr
		b.iovs[i].Base = &b.bufs[i][0]
		b.iovs[i].SetLen(slotLen)
		h.Iov, h.Iovlen = &b.iovs[i], 1
		h.Name = (*byte)(unsafe.Pointer(&b.names[i]))
		h.Namelen = unix.SizeofSockaddrInet6
		h.Control = &b.oobs[i][0]
		h.SetControllen(oobLen)
		h.Flags = 0
	}
}

// drain hands fn every packet queued on the socket, a batch per syscall,
// and returns when the queue is empty.
func (s *socket) drain(b *rbatch, fn func(pkt []byte, r received)) {
	for {
		b.reset()
		if s.control(b.fn) != nil || b.errno != 0 || b.got <= 0 {
			return
		}
		for i := range b.got {
			r := received{ttl: -1, n: int(b.hdrs[i].n)}
			switch b.names[i].Family {
			case unix.AF_INET:
				r.from = netip.AddrFrom4((*unix.RawSockaddrInet4)(unsafe.Pointer(&b.names[i])).Addr)
			case unix.AF_INET6:
				r.from = netip.AddrFrom16(b.names[i].Addr)
			}
			parseCmsgs(b.oobs[i][:b.hdrs[i].hdr.Controllen], &r)
			fn(b.bufs[i][:min(r.n, slotLen)], r)
		}
		if b.got < batchLen {
			return
		}
	}
}
