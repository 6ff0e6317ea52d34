package pinger

import (
	"encoding/binary"
	"net/netip"
	"slices"
	"testing"

	"golang.org/x/sys/unix"
)

// Each family's per-packet settings go out as its own socket options: the
// source as PKTINFO, tos as IP_TOS or IPV6_TCLASS, ttl as IP_TTL or
// IPV6_HOPLIMIT; unset ones not at all.
func TestAppendCmsgs(t *testing.T) {
	type cmsg struct{ level, typ int32 }
	for _, tc := range []struct {
		fam  Family
		o    sendOpts
		want []cmsg
		src  netip.Addr
	}{
		{IPv4, sendOpts{}, nil, netip.Addr{}},
		{IPv4, sendOpts{src: netip.MustParseAddr("198.18.0.1"), tos: 46 << 2, ttl: 3},
			[]cmsg{{unix.IPPROTO_IP, unix.IP_PKTINFO}, {unix.IPPROTO_IP, unix.IP_TOS}, {unix.IPPROTO_IP, unix.IP_TTL}}, netip.MustParseAddr("198.18.0.1")},
		{IPv6, sendOpts{ifIndex: 2, tos: 46 << 2, ttl: 3},
			[]cmsg{{unix.IPPROTO_IPV6, unix.IPV6_PKTINFO}, {unix.IPPROTO_IPV6, unix.IPV6_TCLASS}, {unix.IPPROTO_IPV6, unix.IPV6_HOPLIMIT}}, netip.Addr{}},
		{IPv6, sendOpts{ttl: 7}, []cmsg{{unix.IPPROTO_IPV6, unix.IPV6_HOPLIMIT}}, netip.Addr{}},
	} {
		b := appendCmsgs(nil, tc.fam, tc.o)
		msgs, err := unix.ParseSocketControlMessage(b)
		if err != nil {
			t.Fatalf("%v %+v: %v", tc.fam, tc.o, err)
		}
		var got []cmsg
		for _, m := range msgs {
			got = append(got, cmsg{m.Header.Level, m.Header.Type})
			switch m.Header.Type {
			case unix.IP_TOS, unix.IPV6_TCLASS:
				if v := binary.NativeEndian.Uint32(m.Data); int(v) != tc.o.tos {
					t.Errorf("%v: tos %d, want %d", tc.fam, v, tc.o.tos)
				}
			case unix.IPV6_PKTINFO:
				if tc.fam == IPv6 {
					if idx := binary.NativeEndian.Uint32(m.Data[16:]); int(idx) != tc.o.ifIndex {
						t.Errorf("ifindex %d, want %d", idx, tc.o.ifIndex)
					}
				}
			case unix.IP_PKTINFO:
				if tc.fam == IPv4 && netip.AddrFrom4([4]byte(m.Data[4:8])) != tc.src {
					t.Errorf("source %v, want %v", m.Data[4:8], tc.src)
				}
			}
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%v %+v: control messages %v, want %v", tc.fam, tc.o, got, tc.want)
		}
	}
}
