package probes

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	dto "github.com/prometheus/client_model/go"

	"github.com/smokemon/smokemon/collector"
	"github.com/smokemon/smokemon/internal/lab"
)

// truncatingDNS answers TXT queries for big.lab.test with 40 records over TCP,
// and over UDP with the TC bit set and no records, as a server does when the
// answer does not fit.
func truncatingDNS(t *testing.T, h *lab.Host, addr string) {
	t.Helper()
	handler := dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(req)
		if _, udp := w.LocalAddr().(*net.UDPAddr); udp {
			m.Truncated = true
		} else {
			for i := range 40 {
				m.Answer = append(m.Answer, &dns.TXT{Hdr: dns.RR_Header{Name: req.Question[0].Name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 1},
					Txt: []string{fmt.Sprintf("record %02d %s", i, strings.Repeat("x", 60))}})
			}
		}
		w.WriteMsg(m)
	})
	pc, err := h.ListenPacket("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := h.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	for _, srv := range []*dns.Server{{PacketConn: pc, Handler: handler}, {Listener: ln, Handler: handler}} {
		go srv.ActivateAndServe()
		t.Cleanup(func() { srv.Shutdown() })
	}
}

// DNS probes in the lab: system resolvers come from /etc/resolv.conf under
// --path.rootfs (two lab servers, one series each); NXDOMAIN is an answer
// and an rcode failure; a truncated UDP answer is retried over TCP; a server
// that never answers costs one timeout per probe. Lookup time against a
// 30 ms server delay: median of 15 probes minus the median of 15 without delay
// must be within 2 ms of 30 ms, and the other resolver stays fast.
func TestDNSInLab(t *testing.T) {
	tp := lab.Topology(t)
	dst := tp.Dst[0]
	ip := tp.Addr(dst, false).String()
	gw := tp.Home.Addr(lab.SideB, false).String()
	dnsA := dst.DNSServer(t, ip)
	dnsB := tp.Gateway.DNSServer(t, gw)
	for _, s := range []*lab.DNSServer{dnsA, dnsB} {
		s.Set("www.lab.test", ip, tp.Addr(dst, true).String())
	}
	truncatingDNS(t, dst, ip+":5300")
	silent, err := dst.ListenPacket("udp", ip+":5301")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	deps := svcDeps(t, tp.Client, fmt.Sprintf("# lab\nnameserver %s\nnameserver %s\noptions ndots:1\n", ip, gw))
	svcSpareProcs(t)

	c := svcCollector(t, newDNSCollector, deps, fmt.Sprintf(`
global: {labels: {site: lab}}
dns:
  interval: 200ms
  timeout: 150ms
  targets:
    - {query: www.lab.test, name: sys}
    - {query: www.lab.test, type: AAAA, name: explicit, resolvers: [%[1]s]}
    - {query: nope.lab.test, name: nx, resolvers: [%[1]s]}
    - {query: big.lab.test, type: TXT, name: big, resolvers: ["%[1]s:5300"]}
    - {query: www.lab.test, name: silent, resolvers: ["%[1]s:5301"]}
`, ip))
	rA, rB := ip+":53", gw+":53"
	mfs := svcWait(t, c, "3 probes of each target", 10*time.Second, func(m []*dto.MetricFamily) bool {
		for _, sel := range [][]string{{"target=sys", "resolver=" + rA}, {"target=sys", "resolver=" + rB}, {"target=explicit"}, {"target=nx"}, {"target=big"}, {"target=silent"}} {
			if svcValue(m, "smokemon_dns_probes_total", sel...) < 3 {
				return false
			}
		}
		return true
	})
	check := func(name string, want float64, sel ...string) {
		t.Helper()
		if v := svcValue(mfs, name, sel...); v != want {
			t.Errorf("%s%v = %v, want %v", name, sel, v, want)
		}
	}
	for _, r := range []string{rA, rB} {
		check("smokemon_dns_success", 1, "target=sys", "resolver="+r)
		check("smokemon_dns_answers", 1, "target=sys", "resolver="+r)
	}
	check("smokemon_dns_answers", 1, "target=explicit")
	check("smokemon_dns_rcode", 0, "target=explicit")
	check("smokemon_dns_success", 0, "target=nx")
	check("smokemon_dns_rcode", float64(dns.RcodeNameError), "target=nx")
	if v, p := svcValue(mfs, "smokemon_dns_responses_total", "target=nx", "rcode=NXDOMAIN"), svcValue(mfs, "smokemon_dns_probes_total", "target=nx"); v != p || v != svcValue(mfs, "smokemon_dns_failures_total", "target=nx", "reason=rcode") {
		t.Errorf("nx: %v NXDOMAIN responses, %v probes", v, p)
	}
	check("smokemon_dns_success", 1, "target=big")
	check("smokemon_dns_answers", 40, "target=big")
	if v, p := svcValue(mfs, "smokemon_dns_tcp_fallbacks_total", "target=big"), svcValue(mfs, "smokemon_dns_probes_total", "target=big"); v != p {
		t.Errorf("big: %v TCP fallbacks in %v probes", v, p)
	}
	check("smokemon_dns_success", 0, "target=silent")
	check("smokemon_dns_rcode", -1, "target=silent")
	if v, p := svcValue(mfs, "smokemon_dns_failures_total", "target=silent", "reason=timeout"), svcValue(mfs, "smokemon_dns_probes_total", "target=silent"); v != p {
		t.Errorf("silent: %v timeouts in %v probes", v, p)
	}
	if m := svcFind(mfs, "smokemon_dns_lookup_duration_seconds", "target=silent"); m.Histogram.GetSampleCount() != 0 {
		t.Error("unanswered queries observed as lookup time")
	}
	if svcFind(mfs, "smokemon_dns_target_info", "target=big", "query=big.lab.test", "type=TXT", "site=lab") == nil {
		t.Error("no target_info for big")
	}
	svcPromtool(t, mfs)

	// The timing runs alone, so the other targets' queries do not queue
	// beside the timed ones on the 2-core machine.
	c.(collector.Closer).Close()
	c = svcCollector(t, newDNSCollector, deps, fmt.Sprintf(`
dns:
  interval: 200ms
  timeout: 150ms
  targets:
    - {query: www.lab.test, name: sys}
    - {query: www.lab.test, type: AAAA, name: explicit, resolvers: [%[1]s]}
`, ip))
	series := map[string][]string{
		"explicit": {"target=explicit"},
		"sysA":     {"target=sys", "resolver=" + rA},
		"sysB":     {"target=sys", "resolver=" + rB},
	}
	const n = 15
	lab.Tries(t, "dns server delay", func() error {
		return svcInjectedDelay(t, c, "smokemon_dns_lookup_duration_seconds", n, series,
			func() { dnsA.SetDelay(0) }, func() { dnsA.SetDelay(30 * time.Millisecond) },
			map[string]time.Duration{"explicit": 30 * time.Millisecond, "sysA": 30 * time.Millisecond}, 2*time.Millisecond)
	})
	c.(collector.Closer).Close()
	svcNoProbeGoroutines(t)
}

// A resolver dropped from resolv.conf loses its series at the next probe.
func TestDNSFollowsResolvConf(t *testing.T) {
	tp := lab.Topology(t)
	dst := tp.Dst[0]
	ip := tp.Addr(dst, false).String()
	gw := tp.Home.Addr(lab.SideB, false).String()
	dst.DNSServer(t, ip).Set("www.lab.test", ip)
	tp.Gateway.DNSServer(t, gw).Set("www.lab.test", ip)
	deps := svcDeps(t, tp.Client, fmt.Sprintf("nameserver %s\nnameserver %s\n", ip, gw))
	c := svcCollector(t, newDNSCollector, deps, `
dns:
  interval: 100ms
  targets: [{query: www.lab.test, name: sys}]
`)
	svcWait(t, c, "both resolvers", 5*time.Second, func(m []*dto.MetricFamily) bool {
		return svcValue(m, "smokemon_dns_success", "target=sys", "resolver="+gw+":53") == 1 && svcValue(m, "smokemon_dns_success", "target=sys", "resolver="+ip+":53") == 1
	})
	writeResolvConf(t, deps, "nameserver "+ip+"\n")
	svcWait(t, c, "the gateway resolver's series to go", 5*time.Second, func(m []*dto.MetricFamily) bool {
		return svcFind(m, "smokemon_dns_probes_total", "target=sys", "resolver="+gw+":53") == nil
	})
	writeResolvConf(t, deps, "# nothing\n")
	svcWait(t, c, "resolv.conf errors counted", 5*time.Second, func(m []*dto.MetricFamily) bool {
		return svcValue(m, "smokemon_dns_resolv_conf_errors_total") >= 1
	})
}

func writeResolvConf(t *testing.T, deps Deps, s string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(deps.Net.Rootfs, "etc", "resolv.conf"), []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}
