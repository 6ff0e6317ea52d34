package lab

import (
	"fmt"
	"net/netip"
	"testing"
)

// Topo is the standard lab: a client behind a home gateway, behind an ISP router that
// reaches one or more destination hosts.
//
//	client ── gateway ── isp ─┬─ dst[0]
//	198.18.1.0/24   198.18.2.0/24  ├─ dst[1]  198.18.(10+i).0/24
//	2001:2:0:1::/64 2001:2:0:2::/64 …         2001:2:0:(10+i)::/64
//
// On each subnet the router serving it has .1 (::1) and the other side .2 (::2): the
// client 198.18.1.2 sits behind the gateway's 198.18.1.1, the gateway's uplink
// 198.18.2.2 behind the ISP's 198.18.2.1, destination i at 198.18.(10+i).2 behind the
// ISP's 198.18.(10+i).1. Routers forward, and every host has static routes for both
// families, so all hosts reach each other.
type Topo struct {
	Lab                  *Lab
	Client, Gateway, ISP *Host
	Dst                  []*Host
	Home, Uplink         *Link   // client–gateway, gateway–isp (side A nearer the client)
	DstLinks             []*Link // isp–Dst[i]
	addr4, addr6         map[*Host]netip.Addr
}

// Topology builds the standard lab with one destination per name given, or a single
// one named "dst".
func Topology(t testing.TB, dsts ...string) *Topo {
	t.Helper()
	if len(dsts) == 0 {
		dsts = []string{"dst"}
	}
	if len(dsts) > 200 {
		t.Fatalf("Topology: %d destinations, at most 200", len(dsts))
	}
	l := New(t)
	tp := &Topo{Lab: l, addr4: map[*Host]netip.Addr{}, addr6: map[*Host]netip.Addr{}}
	tp.Client, tp.Gateway, tp.ISP = l.Host("client"), l.Host("gw"), l.Host("isp")
	tp.Home = l.Link(tp.Client, subnet(1, 2), tp.Gateway, subnet(1, 1))
	tp.Uplink = l.Link(tp.Gateway, subnet(2, 2), tp.ISP, subnet(2, 1))
	for i, name := range dsts {
		h := l.Host(name)
		tp.Dst = append(tp.Dst, h)
		tp.DstLinks = append(tp.DstLinks, l.Link(tp.ISP, subnet(10+i, 1), h, subnet(10+i, 2)))
		tp.setAddr(h, tp.DstLinks[i], SideB)
		h.Route("default", tp.DstLinks[i].Addr(SideA, false).String())
		h.Route("default", tp.DstLinks[i].Addr(SideA, true).String())
	}
	tp.setAddr(tp.Client, tp.Home, SideA)
	tp.setAddr(tp.Gateway, tp.Home, SideB)
	tp.setAddr(tp.ISP, tp.Uplink, SideB)

	tp.Gateway.Forwarding(true)
	tp.ISP.Forwarding(true)
	for _, v6 := range []bool{false, true} {
		tp.Client.Route("default", tp.Home.Addr(SideB, v6).String())
		tp.Gateway.Route("default", tp.Uplink.Addr(SideB, v6).String())
	}
	// The ISP routes the home network back to the gateway; the gateway's own uplink
	// subnet is connected.
	tp.ISP.Route("198.18.1.0/24", tp.Uplink.Addr(SideA, false).String())
	tp.ISP.Route("2001:2:0:1::/64", tp.Uplink.Addr(SideA, true).String())
	return tp
}

// subnet is the address pair for lab subnet n, host h, in both families.
func subnet(n, h int) string {
	return fmt.Sprintf("198.18.%d.%d/24,2001:2:0:%x::%d/64", n, h, n, h)
}

func (tp *Topo) setAddr(h *Host, k *Link, side int) {
	tp.addr4[h], tp.addr6[h] = k.Addr(side, false), k.Addr(side, true)
}

// Addr is the address by which h is known to the client: the one a traceroute from
// the client shows for a router, and the destinations' own.
func (tp *Topo) Addr(h *Host, v6 bool) netip.Addr {
	if v6 {
		return tp.addr6[h]
	}
	return tp.addr4[h]
}

// Path is the hop list a traceroute from the client to Dst[i] sees.
func (tp *Topo) Path(i int, v6 bool) []netip.Addr {
	return []netip.Addr{tp.Addr(tp.Gateway, v6), tp.Addr(tp.ISP, v6), tp.Addr(tp.Dst[i], v6)}
}

// Delay installs a delay element at the ISP router: Up delays packets towards the
// destinations, Down packets towards the client.
func (tp *Topo) Delay(t testing.TB) *Delay {
	t.Helper()
	down := make([]string, len(tp.DstLinks))
	for i, k := range tp.DstLinks {
		down[i] = k.Ifs[SideA]
	}
	return tp.ISP.DelayElement(t, []string{tp.Uplink.Ifs[SideB]}, down)
}
