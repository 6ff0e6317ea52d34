package prober

import (
	"context"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/smokemon/smokemon/internal/config"
	"github.com/smokemon/smokemon/internal/dnsmsg"
)

// dnsServer is a real DNS server (miekg/dns) on a loopback port, UDP and TCP.
// It answers A and AAAA for the names in its map; with truncate set it sends
// UDP answers with the TC bit and no records, as a server does when the
// answer does not fit.
type dnsServer struct {
	addr     string
	names    map[string]string // name (no trailing dot) -> address
	truncate atomic.Bool
	queries  atomic.Int32
}

// listenUDPAndTCP listens on one loopback port for both: the kernel picks
// a free UDP port, and another process may hold the same TCP port (CI saw
// "bind: address already in use"), so it tries again with another.
func listenUDPAndTCP(t *testing.T) (net.PacketConn, net.Listener) {
	t.Helper()
	var err error
	for range 20 {
		var pc net.PacketConn
		if pc, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		var l net.Listener
		if l, err = net.Listen("tcp", pc.LocalAddr().String()); err == nil {
			return pc, l
		}
		pc.Close()
	}
	t.Fatalf("no loopback port free for both UDP and TCP after 20 tries: %v", err)
	return nil, nil
}

func startDNS(t *testing.T, names map[string]string) *dnsServer {
	t.Helper()
	s := &dnsServer{names: names}
	pc, l := listenUDPAndTCP(t)
	s.addr = pc.LocalAddr().String()
	h := dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		s.queries.Add(1)
		m := new(dns.Msg)
		m.SetReply(req)
		q := req.Question[0]
		ip, ok := s.names[strings.TrimSuffix(q.Name, ".")]
		_, udp := w.RemoteAddr().(*net.UDPAddr)
		switch {
		case !ok:
			m.Rcode = dns.RcodeNameError
		case s.truncate.Load() && udp:
			m.Truncated = true
		default:
			a := netip.MustParseAddr(ip)
			hdr := dns.RR_Header{Name: q.Name, Class: dns.ClassINET, Ttl: 1, Rrtype: q.Qtype}
			if q.Qtype == dns.TypeA && a.Is4() {
				m.Answer = append(m.Answer, &dns.A{Hdr: hdr, A: a.AsSlice()})
			} else if q.Qtype == dns.TypeAAAA && a.Is6() {
				m.Answer = append(m.Answer, &dns.AAAA{Hdr: hdr, AAAA: a.AsSlice()})
			}
		}
		w.WriteMsg(m)
	})
	udp := &dns.Server{PacketConn: pc, Handler: h}
	tcp := &dns.Server{Listener: l, Handler: h}
	go udp.ActivateAndServe()
	go tcp.ActivateAndServe()
	t.Cleanup(func() { udp.Shutdown(); tcp.Shutdown() })
	return s
}

// rootfs is a tree with this resolv.conf and hosts file.
func rootfs(t *testing.T, resolvConf, hosts string) string {
	t.Helper()
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "etc"), 0o755)
	os.WriteFile(filepath.Join(dir, "etc", "resolv.conf"), []byte(resolvConf), 0o644)
	os.WriteFile(filepath.Join(dir, "etc", "hosts"), []byte(hosts), 0o644)
	return dir
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestSystemResolvers(t *testing.T) {
	e := Env{Rootfs: rootfs(t, "# comment\nnameserver 192.0.2.53 ; trailing\nnameserver ::1\nnameserver not-an-ip\noptions ndots:2\n", "")}
	got, err := e.SystemResolvers()
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"192.0.2.53:53", "[::1]:53"}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("resolvers = %v, want %v", got, want)
	}
	// No usable nameserver is an error, not a silent 127.0.0.1.
	e = Env{Rootfs: rootfs(t, "options rotate\n", "")}
	if _, err := e.SystemResolvers(); err == nil || !strings.Contains(err.Error(), "no usable nameserver") {
		t.Errorf("empty resolv.conf: err = %v", err)
	}
}

// /etc/hosts answers before DNS, by family, case-insensitively.
func TestLookupHostHostsFile(t *testing.T) {
	srv := startDNS(t, map[string]string{"printer.lan": "127.0.0.9"})
	e := Env{Rootfs: rootfs(t, "nameserver "+strings.Split(srv.addr, ":")[0]+"\n",
		"127.0.0.5 Printer.LAN printer\n::5 printer.lan\n")}
	for fam, want := range map[config.Family]string{config.FamilyAuto: "127.0.0.5", config.FamilyIP4: "127.0.0.5", config.FamilyIP6: "::5"} {
		a, err := e.LookupHost(ctxTimeout(t, time.Second), "printer.lan.", fam, "")
		if err != nil || a.String() != want {
			t.Errorf("%s: %v, %v; want %s", fam, a, err, want)
		}
	}
	if n := srv.queries.Load(); n != 0 {
		t.Errorf("DNS asked %d times for a name in /etc/hosts", n)
	}
}

// A given resolver is asked A and AAAA at once; auto prefers IPv4 and falls
// back to IPv6, and an NXDOMAIN is an error that names the rcode.
func TestLookupHostResolver(t *testing.T) {
	srv := startDNS(t, map[string]string{"www.lab.test": "127.0.0.7", "v6.lab.test": "::7"})
	e := Env{Rootfs: rootfs(t, "", "127.0.0.99 www.lab.test\n")} // a resolver of its own skips /etc/hosts
	lookup := func(host string, fam config.Family) (netip.Addr, error) {
		return e.LookupHost(ctxTimeout(t, time.Second), host, fam, srv.addr)
	}
	if a, err := lookup("www.lab.test", config.FamilyAuto); err != nil || a.String() != "127.0.0.7" {
		t.Errorf("www: %v, %v", a, err)
	}
	if a, err := lookup("v6.lab.test", config.FamilyAuto); err != nil || a.String() != "::7" {
		t.Errorf("auto falls back to AAAA: %v, %v", a, err)
	}
	if _, err := lookup("www.lab.test", config.FamilyIP6); err == nil {
		t.Error("ip6 lookup of an A-only name succeeded")
	}
	if _, err := lookup("nope.lab.test", config.FamilyAuto); err == nil || !strings.Contains(err.Error(), "NXDOMAIN") {
		t.Errorf("unknown name: err = %v", err)
	}
}

// With only a silent resolver the lookup ends with the context, promptly.
func TestLookupHostTimesOut(t *testing.T) {
	silent, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	begin := time.Now()
	_, err = Env{}.LookupHost(ctxTimeout(t, 200*time.Millisecond), "www.lab.test", config.FamilyIP4, silent.LocalAddr().String())
	if err == nil || NetReason(context.Background(), err) != "timeout" {
		t.Errorf("err = %v (reason %q), want a timeout", err, NetReason(context.Background(), err))
	}
	if d := time.Since(begin); d > 2*time.Second {
		t.Errorf("lookup took %s with a 200ms deadline", d)
	}
}

// A truncated UDP answer is asked again over TCP, and says so.
func TestDNSExchangeTCPFallback(t *testing.T) {
	srv := startDNS(t, map[string]string{"big.lab.test": "127.0.0.8"})
	srv.truncate.Store(true)
	e := Env{}
	r, fb, err := e.DNSExchange(ctxTimeout(t, time.Second), srv.addr, dnsmsg.NewQuery(QueryID(), "big.lab.test", dnsmsg.TypeA), "udp")
	if err != nil || !fb || r.Truncated || len(r.Addrs) != 1 || r.Addrs[0].String() != "127.0.0.8" {
		t.Fatalf("reply %+v, fallback %v, err %v", r, fb, err)
	}
	// Asked over TCP from the start, there is no fallback.
	if _, fb, err := e.DNSExchange(ctxTimeout(t, time.Second), srv.addr, dnsmsg.NewQuery(QueryID(), "big.lab.test", dnsmsg.TypeA), "tcp"); err != nil || fb {
		t.Errorf("tcp: fallback %v, err %v", fb, err)
	}
}

// Env.Netns wraps every socket the probe opens.
func TestEnvNetnsWrapsDials(t *testing.T) {
	srv := startDNS(t, map[string]string{"www.lab.test": "127.0.0.7"})
	var calls atomic.Int32
	e := Env{Netns: func(fn func() error) error { calls.Add(1); return fn() }}
	if _, err := e.LookupHost(ctxTimeout(t, time.Second), "www.lab.test", config.FamilyIP4, srv.addr); err != nil {
		t.Fatal(err)
	}
	if calls.Load() == 0 {
		t.Error("the lookup opened its socket outside Netns")
	}
}
