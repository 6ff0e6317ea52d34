package probes

import (
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/miekg/dns"
	dto "github.com/prometheus/client_model/go"

	"github.com/smokemon/smokemon/internal/lab"
)

// Captive-portal checks against the lab HTTP server: the expected 204 (or
// 200 with the expected body) is no portal; a 302 to a login page, or other
// content, is one. DoH: an RFC 8484 endpoint on the lab HTTPS server answers
// with miekg/dns after 20 ms, by POST and by GET; the lookup succeeds and its
// time includes that delay.
func TestSyntheticInLab(t *testing.T) {
	tp := lab.Topology(t)
	dst := tp.Dst[0]
	ip := tp.Addr(dst, false).String()
	srv := dst.HTTPServer(t, ip, lab.HTTPOptions{})
	srv.Mux.HandleFunc("/generate_204", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	srv.Mux.HandleFunc("/hijacked", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://portal.lab.test/login", http.StatusFound)
	})
	srv.Mux.HandleFunc("/success.txt", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "success\n") })
	srv.Mux.HandleFunc("/dns-query", dohHandler(tp.Addr(dst, false).AsSlice()))
	deps := svcDeps(t, tp.Client, "")
	ca := svcCAFile(t, srv)
	c := svcCollector(t, newSyntheticCollector, deps, fmt.Sprintf(`
synthetic:
  interval: 200ms
  captive_portal:
    - {url: "%[1]s/generate_204", name: open}
    - {url: "%[1]s/hijacked", name: portal}
    - {url: "%[1]s/success.txt", name: body_ok, expected_status: 200, expected_body: success}
    - {url: "%[1]s/", name: body_other, expected_status: 200, expected_body: success}
    - {url: "http://%[3]s:9/", name: down}
  doh:
    - {url: "%[2]s/dns-query", name: post, query: www.lab.test, tls: {ca_file: %[4]q}}
    - {url: "%[2]s/dns-query", name: get, method: GET, query: www.lab.test, tls: {ca_file: %[4]q}}
    - {url: "%[2]s/dns-query", name: nx, query: nope.lab.test, tls: {ca_file: %[4]q}}
`, srv.URL, srv.TLSURL, ip, ca))
	mfs := svcWait(t, c, "4 checks each", 10*time.Second, func(m []*dto.MetricFamily) bool {
		for _, n := range []string{"open", "portal", "body_ok", "body_other", "down"} {
			if svcValue(m, "smokemon_synthetic_captive_portal_checks_total", "target="+n) < 4 {
				return false
			}
		}
		for _, n := range []string{"post", "get", "nx"} {
			if svcValue(m, "smokemon_synthetic_doh_probes_total", "target="+n) < 4 {
				return false
			}
		}
		return true
	})
	for name, want := range map[string]float64{"open": 0, "portal": 1, "body_ok": 0, "body_other": 1} {
		if v := svcValue(mfs, "smokemon_synthetic_captive_portal_detected", "target="+name); v != want {
			t.Errorf("%s: captive_portal_detected %v, want %v", name, v, want)
		}
		if m := svcFind(mfs, "smokemon_synthetic_captive_portal_check_duration_seconds", "target="+name); m.Histogram.GetSampleCount() < 4 {
			t.Errorf("%s: %d timings", name, m.Histogram.GetSampleCount())
		}
	}
	if v := svcValue(mfs, "smokemon_synthetic_captive_portal_status_code", "target=portal"); v != 302 {
		t.Errorf("portal: status %v", v)
	}
	// No answer says nothing about a portal: the check failed instead.
	if v := svcValue(mfs, "smokemon_synthetic_captive_portal_detected", "target=down"); v != -1 {
		t.Errorf("down: captive_portal_detected %v, want absent", v)
	}
	if v := svcValue(mfs, "smokemon_synthetic_captive_portal_check_success", "target=down"); v != 0 {
		t.Errorf("down: check_success %v", v)
	}
	if v := svcValue(mfs, "smokemon_synthetic_captive_portal_errors_total", "target=down", "reason=connect"); v < 4 {
		t.Errorf("down: %v connect errors", v)
	}
	for _, n := range []string{"post", "get"} {
		if v := svcValue(mfs, "smokemon_synthetic_doh_success", "target="+n); v != 1 {
			t.Errorf("%s: doh_success %v", n, v)
		}
		if v := svcValue(mfs, "smokemon_synthetic_doh_answers", "target="+n); v != 1 {
			t.Errorf("%s: doh_answers %v", n, v)
		}
		h := svcFind(mfs, "smokemon_synthetic_doh_lookup_duration_seconds", "target="+n).Histogram
		mean := h.GetSampleSum() / float64(h.GetSampleCount())
		t.Logf("DoH %s: %d lookups, mean %.2f ms (20 ms server delay + fresh TCP and TLS)", n, h.GetSampleCount(), mean*1e3)
		if h.GetSampleCount() < 4 || mean < 20e-3 || mean > 100e-3 {
			t.Errorf("%s: %d lookups, mean %.2f ms", n, h.GetSampleCount(), mean*1e3)
		}
	}
	if v := svcValue(mfs, "smokemon_synthetic_doh_rcode", "target=nx"); v != float64(dns.RcodeNameError) {
		t.Errorf("nx: rcode %v", v)
	}
	if v := svcValue(mfs, "smokemon_synthetic_doh_failures_total", "target=nx", "reason=rcode"); v < 4 {
		t.Errorf("nx: %v rcode failures", v)
	}
	svcPromtool(t, mfs)
}

// dohHandler answers DoH queries, by POST and by GET, after 20 ms: the A
// record a for www.lab.test, NXDOMAIN for any other question.
func dohHandler(a net.IP) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var wire []byte
		var err error
		if r.Method == http.MethodGet {
			wire, err = base64.RawURLEncoding.DecodeString(r.URL.Query().Get("dns"))
		} else if r.Header.Get("Content-Type") == dohMediaType {
			wire, err = io.ReadAll(r.Body)
		} else {
			http.Error(w, "bad content type", http.StatusUnsupportedMediaType)
			return
		}
		q := new(dns.Msg)
		if err != nil || q.Unpack(wire) != nil || len(q.Question) != 1 {
			http.Error(w, "bad query", http.StatusBadRequest)
			return
		}
		m := new(dns.Msg)
		m.SetReply(q)
		if q.Question[0].Name == "www.lab.test." && q.Question[0].Qtype == dns.TypeA {
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: a})
		} else {
			m.Rcode = dns.RcodeNameError
		}
		out, _ := m.Pack()
		time.Sleep(20 * time.Millisecond)
		w.Header().Set("Content-Type", dohMediaType)
		w.Write(out)
	}
}
