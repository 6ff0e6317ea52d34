package prober

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/smokemon/smokemon/internal/config"
	"github.com/smokemon/smokemon/internal/dnsmsg"
)

// SystemResolvers are the nameservers of /etc/resolv.conf under e's rootfs.
// Unlike glibc, an empty list is an error rather than 127.0.0.1: a probe
// should not quietly ask a server nobody configured.
func (e Env) SystemResolvers() ([]string, error) {
	path := e.rootfsPath("etc", "resolv.conf")
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []string
	for line := range strings.Lines(string(b)) {
		if i := strings.IndexAny(line, "#;"); i >= 0 {
			line = line[:i]
		}
		fs := strings.Fields(line)
		if len(fs) < 2 || fs[0] != "nameserver" {
			continue
		}
		if a, err := netip.ParseAddr(fs[1]); err == nil {
			out = append(out, net.JoinHostPort(a.String(), "53"))
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no usable nameserver in %s", path)
	}
	return out, nil
}

// hostsLookup reads /etc/hosts under e's rootfs, as the system resolver
// would before asking DNS.
func (e Env) hostsLookup(host string, fam config.Family) (netip.Addr, bool) {
	f, err := os.Open(e.rootfsPath("etc", "hosts"))
	if err != nil {
		return netip.Addr{}, false
	}
	defer f.Close()
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	var v4, v6 netip.Addr
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		fs := strings.Fields(line)
		if len(fs) < 2 {
			continue
		}
		a, err := netip.ParseAddr(fs[0])
		if err != nil || !slices.ContainsFunc(fs[1:], func(n string) bool { return strings.EqualFold(n, host) }) {
			continue
		}
		if a.Is4() && !v4.IsValid() {
			v4 = a
		} else if a.Is6() && !v6.IsValid() {
			v6 = a
		}
	}
	return pickFamily(fam, v4, v6)
}

func pickFamily(fam config.Family, v4, v6 netip.Addr) (netip.Addr, bool) {
	switch {
	case fam != config.FamilyIP6 && v4.IsValid():
		return v4, true
	case fam != config.FamilyIP4 && v6.IsValid():
		return v6, true
	}
	return netip.Addr{}, false
}

// ErrNoAddress is a lookup that was answered without an address to use.
var ErrNoAddress = errors.New("no address")

// LookupHost resolves host for a probe: /etc/hosts and then the system
// nameservers, or only the given resolver. It is a stub resolver: the next
// nameserver is asked only when one fails to answer, and auto asks A and AAAA
// at once, preferring IPv4.
func (e Env) LookupHost(ctx context.Context, host string, fam config.Family, resolver string) (netip.Addr, error) {
	servers := []string{resolver}
	if resolver == "" {
		if a, ok := e.hostsLookup(host, fam); ok {
			return a, nil
		}
		var err error
		if servers, err = e.SystemResolvers(); err != nil {
			return netip.Addr{}, err
		}
	}
	var types []uint16
	switch fam {
	case config.FamilyIP4:
		types = []uint16{dnsmsg.TypeA}
	case config.FamilyIP6:
		types = []uint16{dnsmsg.TypeAAAA}
	default:
		types = []uint16{dnsmsg.TypeA, dnsmsg.TypeAAAA}
	}
	var lastErr error
	for i, srv := range servers {
		// Leave the later servers their share of the time.
		sctx, cancel := ctx, context.CancelFunc(func() {})
		if dl, ok := ctx.Deadline(); ok && i < len(servers)-1 {
			sctx, cancel = context.WithTimeout(ctx, time.Until(dl)/time.Duration(len(servers)-i))
		}
		addrs := make([]netip.Addr, len(types))
		errs := make([]error, len(types))
		var wg sync.WaitGroup
		for k, qt := range types {
			wg.Go(func() {
				r, _, err := e.DNSExchange(sctx, srv, dnsmsg.NewQuery(QueryID(), host, qt), "udp")
				switch {
				case err != nil:
					errs[k] = err
				case r.Rcode != dnsmsg.RcodeSuccess:
					errs[k] = fmt.Errorf("%s %s: %s from %s", host, dnsmsg.TypeString(qt), dnsmsg.RcodeString(r.Rcode), srv)
				default:
					for _, a := range r.Addrs {
						if a.Is4() == (qt == dnsmsg.TypeA) {
							addrs[k] = a
							break
						}
					}
				}
			})
		}
		wg.Wait()
		cancel()
		var v4, v6 netip.Addr
		for k, qt := range types {
			if qt == dnsmsg.TypeA {
				v4 = addrs[k]
			} else {
				v6 = addrs[k]
			}
		}
		if a, ok := pickFamily(fam, v4, v6); ok {
			return a, nil
		}
		answered := false
		for _, e := range errs {
			if e == nil {
				answered = true
			}
		}
		lastErr = errors.Join(errs...)
		if answered || ctx.Err() != nil {
			// An answer without an address (NODATA) is final, as is running out of time.
			break
		}
	}
	if ctx.Err() != nil {
		return netip.Addr{}, ctx.Err()
	}
	if lastErr == nil {
		lastErr = ErrNoAddress
	}
	return netip.Addr{}, fmt.Errorf("%s has no %s address: %w", host, fam, lastErr)
}

// DNSExchange asks server (ip:port) over proto; a truncated UDP answer is
// asked again over TCP (tcpFallback true).
func (e Env) DNSExchange(ctx context.Context, server string, q dnsmsg.Query, proto string) (r *dnsmsg.Reply, tcpFallback bool, err error) {
	if proto != "tcp" {
		q.EDNS = true // and for the TCP retry too, as a resolver would
		r, err = e.exchangeOnce(ctx, "udp", server, q)
		if err != nil || !r.Truncated {
			return r, false, err
		}
		tcpFallback = true
	}
	r, err = e.exchangeOnce(ctx, "tcp", server, q)
	return r, tcpFallback, err
}

func (e Env) exchangeOnce(ctx context.Context, network, server string, q dnsmsg.Query) (*dnsmsg.Reply, error) {
	conn, _, err := e.Dial(ctx, network, server)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	defer bindConn(ctx, conn)()
	r, err := dnsmsg.Exchange(conn, network == "tcp", q)
	if err != nil && ctx.Err() != nil {
		return nil, fmt.Errorf("%w (%v)", ctx.Err(), err)
	}
	return r, err
}

// dnsID is a query ID an off-path forger cannot guess.
func QueryID() uint16 { return uint16(rand.Uint32()) }
