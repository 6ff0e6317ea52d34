package lab

import (
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"time"

	"github.com/smokemon/smokemon/internal/testutil"
)

// Sides of a Link, for SetDown, SetUp and the accessors.
const (
	SideA = 0
	SideB = 1
)

// Link is a veth pair between two hosts.
type Link struct {
	lab   *Lab
	Hosts [2]*Host
	Ifs   [2]string         // interface name on each side
	Addrs [2][]netip.Prefix // addresses on each side
}

// Link joins a and b with a veth pair, both ends up. aAddr and bAddr are CIDR addresses
// ("198.18.1.1/24"); several may be given separated by commas, e.g.
// "198.18.1.1/24,2001:2:0:1::1/64", or none with "".
func (l *Lab) Link(a *Host, aAddr string, b *Host, bAddr string) *Link {
	l.t.Helper()
	k := &Link{lab: l, Hosts: [2]*Host{a, b}}
	for i, s := range []string{aAddr, bAddr} {
		for _, f := range strings.Split(s, ",") {
			if f = strings.TrimSpace(f); f == "" {
				continue
			}
			p, err := netip.ParsePrefix(f)
			if err != nil {
				l.t.Fatalf("lab: link %s-%s: address %q: %v", a, b, f, err)
			}
			k.Addrs[i] = append(k.Addrs[i], p)
		}
	}
	k.Ifs = [2]string{a.newIf(), b.newIf()}
	// Both ends are created inside their namespaces, so the root namespace never sees
	// the interfaces, even for an instant.
	a.ip("link", "add", k.Ifs[0], "type", "veth", "peer", "name", k.Ifs[1], "netns", b.name)
	for i, h := range k.Hosts {
		for _, p := range k.Addrs[i] {
			args := []string{"addr", "add", p.String(), "dev", k.Ifs[i]}
			if p.Addr().Is6() {
				args = append(args, "nodad")
			}
			h.ip(args...)
		}
		h.ip("link", "set", k.Ifs[i], "up")
	}
	k.waitReady()
	return k
}

// waitReady waits until both ends report carrier and IPv6 can use the link. The kernel
// signals carrier, and adds the multicast route that neighbour discovery needs, only once
// the event has passed through linkwatch, which may take up to a second; packets sent
// before that are silently lost.
func (k *Link) waitReady() {
	k.lab.t.Helper()
	for side, h := range k.Hosts {
		mroute := "multicast ff00::/8 dev " + k.Ifs[side] + " "
		v6 := k.Addr(side, true).IsValid()
		testutil.WaitFor(k.lab.t, 5*time.Second, fmt.Sprintf("%s: %s to be ready", h, k.Ifs[side]), func() bool {
			link, err := exec.Command("ip", "-n", h.name, "-o", "link", "show", "dev", k.Ifs[side]).Output()
			ready := err == nil && strings.Contains(string(link), "state UP ")
			if ready && v6 {
				out, err := exec.Command("ip", "-n", h.name, "-6", "route", "show", "table", "local").Output()
				ready = err == nil && strings.Contains(string(out), mroute)
			}
			return ready
		})
	}
}

func (h *Host) newIf() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.nif++
	return fmt.Sprintf("eth%d", h.nif-1)
}

// Addr is the first address of the given family on a side, without prefix length.
func (k *Link) Addr(side int, v6 bool) netip.Addr {
	for _, p := range k.Addrs[side] {
		if p.Addr().Is6() == v6 {
			return p.Addr()
		}
	}
	return netip.Addr{}
}

// SetDown takes one side's interface down; the other side then loses carrier, as when a
// cable is pulled.
func (k *Link) SetDown(side int) {
	k.lab.t.Helper()
	k.Hosts[side].ip("link", "set", k.Ifs[side], "down")
}

// SetUp brings one side's interface back up, waits for carrier, and re-adds the static
// routes of both hosts that the kernel flushed when the link went down.
func (k *Link) SetUp(side int) {
	k.lab.t.Helper()
	k.Hosts[side].ip("link", "set", k.Ifs[side], "up")
	k.waitReady()
	for side, h := range k.Hosts {
		// Neighbour entries that failed while the link was down would only retry after
		// a second; flushing them makes the first packet resolve afresh.
		h.ip("neigh", "flush", "dev", k.Ifs[side])
		h.restoreRoutes()
	}
}
