package pinger

import (
	"encoding/binary"
)

const (
	icmpv4EchoRequest = 8
	icmpv4EchoReply   = 0
	icmpv6EchoRequest = 128
	icmpv6EchoReply   = 129
	icmpHeaderLen     = 8
	tokenLen          = 8 // engine nonce (4) + probe serial (4)
)

// buildEcho writes an echo request with the given payload size into b and
// returns the packet. The payload starts with the token that ties a reply to
// exactly one probe; the rest is a fixed pattern.
func buildEcho(b []byte, fam Family, id, seq uint16, nonce, serial uint32, size int) []byte {
	n := icmpHeaderLen + size
	b = b[:n]
	if fam == IPv4 {
		b[0] = icmpv4EchoRequest
	} else {
		b[0] = icmpv6EchoRequest
	}
	b[1] = 0
	b[2], b[3] = 0, 0
	binary.BigEndian.PutUint16(b[4:], id)
	binary.BigEndian.PutUint16(b[6:], seq)
	binary.BigEndian.PutUint32(b[8:], nonce)
	binary.BigEndian.PutUint32(b[12:], serial)
	for i := icmpHeaderLen + tokenLen; i < n; i++ {
		b[i] = byte(i)
	}
	if fam == IPv4 {
		// The kernel computes ICMPv6 checksums itself (and ICMPv4 ones on
		// datagram sockets); raw ICMPv4 needs ours.
		binary.BigEndian.PutUint16(b[2:], checksum(b))
	}
	return b
}

func checksum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}

// echoReply is what the receiver needs from a reply.
type echoReply struct {
	id, seq       uint16
	nonce, serial uint32
	ttl           int // -1 when unknown
}

// parseEchoReply decodes an ICMP echo reply. withIPHeader is true for raw
// IPv4 sockets, which deliver the IP header (and with it the TTL).
func parseEchoReply(b []byte, fam Family, withIPHeader bool) (r echoReply, src [16]byte, srcLen int, ok bool) {
	r.ttl = -1
	if withIPHeader {
		if len(b) < 20 || b[0]>>4 != 4 {
			return r, src, 0, false
		}
		ihl := int(b[0]&0x0f) * 4
		if ihl < 20 || len(b) < ihl || b[9] != 1 {
			return r, src, 0, false
		}
		r.ttl = int(b[8])
		copy(src[:], b[12:16])
		srcLen = 4
		b = b[ihl:]
	}
	if len(b) < icmpHeaderLen+tokenLen {
		return r, src, srcLen, false
	}
	want := byte(icmpv4EchoReply)
	if fam == IPv6 {
		want = icmpv6EchoReply
	}
	if b[0] != want || b[1] != 0 {
		return r, src, srcLen, false
	}
	r.id = binary.BigEndian.Uint16(b[4:])
	r.seq = binary.BigEndian.Uint16(b[6:])
	r.nonce = binary.BigEndian.Uint32(b[8:])
	r.serial = binary.BigEndian.Uint32(b[12:])
	return r, src, srcLen, true
}
