package probes

import (
	"encoding/pem"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/smokemon/smokemon/collector"
	"github.com/smokemon/smokemon/internal/lab"
	"github.com/smokemon/smokemon/internal/prober"
	"github.com/smokemon/smokemon/internal/testutil"
)

// Phase timings against delays injected in the lab: the DNS server answers
// 30 ms late, the TLS handshake is held 20 ms, the response 40 ms, the second
// half of the body 25 ms. The collector runs with its sockets in the client
// namespace and resolves through an /etc/resolv.conf (under --path.rootfs)
// that names the lab DNS server. Each phase's per-probe value is read from
// the exported histogram (the sum's increase per probe); the median over 15
// probes, minus the median of 15 probes without delays measured just before,
// must be within 2 ms of the injected delay.
func TestHTTPPhasesInLab(t *testing.T) {
	tp := lab.Topology(t)
	dst := tp.Dst[0]
	ip := tp.Addr(dst, false).String()
	dnsSrv := dst.DNSServer(t, ip)
	dnsSrv.Set("www.lab.test", ip)
	notAfter := time.Now().Add(90 * 24 * time.Hour).Truncate(time.Second)
	srv := dst.HTTPServer(t, ip, lab.HTTPOptions{Names: []string{"www.lab.test"}, NotAfter: notAfter})
	deps := svcDeps(t, tp.Client, "nameserver "+ip+"\n")
	svcSpareProcs(t)

	c := svcCollector(t, newHTTPCollector, deps, fmt.Sprintf(`
http:
  targets:
    - {url: "https://www.lab.test/", name: web, interval: 250ms, timeout: 240ms, tls: {ca_file: %q}}
`, svcCAFile(t, srv)))

	series := map[string][]string{}
	for _, p := range prober.PhaseNames {
		series[p] = []string{"target=web", "phase=" + p}
	}
	const n = 15
	injected := map[string]time.Duration{"resolve": 30 * time.Millisecond, "tls": 20 * time.Millisecond, "processing": 40 * time.Millisecond, "transfer": 25 * time.Millisecond}
	lab.Tries(t, "http phase delays", func() error {
		return svcInjectedDelay(t, c, "smokemon_http_phase_duration_seconds", n, series, func() {
			dnsSrv.SetDelay(0)
			srv.SetPhases(lab.HTTPPhases{})
		}, func() {
			dnsSrv.SetDelay(injected["resolve"])
			srv.SetPhases(lab.HTTPPhases{TLS: injected["tls"], FirstByte: injected["processing"], Transfer: injected["transfer"]})
		}, injected, 2*time.Millisecond)
	})

	mfs := svcGather(t, c)
	if v := svcValue(mfs, "smokemon_http_tls_cert_expiry_timestamp_seconds", "target=web"); v != float64(notAfter.Unix()) || v != float64(srv.Cert.NotAfter.Unix()) {
		t.Errorf("cert expiry %v, want %v", v, notAfter.Unix())
	}
	if svcFind(mfs, "smokemon_http_tls_info", "target=web", "version=TLS 1.3") == nil {
		t.Error("no tls_info with version TLS 1.3")
	}
	for name, want := range map[string]float64{"smokemon_http_success": 1, "smokemon_http_status_code": 200, "smokemon_http_response_body_bytes": 1000} {
		if v := svcValue(mfs, name, "target=web"); v != want {
			t.Errorf("%s = %v, want %v", name, v, want)
		}
	}
	if svcFind(mfs, "smokemon_http_target_info", "target=web", "ip="+ip, "url=https://www.lab.test/") == nil {
		t.Error("target_info does not show the address connected to")
	}
	svcPromtool(t, mfs)
}

// Certificate checking: a ca_file that holds the lab certificate and
// insecure_skip_verify both succeed; neither fails with reason tls. The
// expiry is reported whenever a handshake completed.
func TestHTTPTLSVerification(t *testing.T) {
	tp := lab.Topology(t)
	dst := tp.Dst[0]
	ip := tp.Addr(dst, false).String()
	notAfter := time.Now().Add(17 * 24 * time.Hour).Truncate(time.Second)
	srv := dst.HTTPServer(t, ip, lab.HTTPOptions{NotAfter: notAfter})
	deps := svcDeps(t, tp.Client, "")
	// A TLS handshake under the race detector can take longer than 100ms.
	c := svcCollector(t, newHTTPCollector, deps, fmt.Sprintf(`
http:
  interval: 500ms
  targets:
    - {url: %[1]q, name: ca, tls: {ca_file: %[2]q}}
    - {url: %[1]q, name: insecure, tls: {insecure_skip_verify: true}}
    - {url: %[1]q, name: untrusted}
    - {url: %[3]q, name: plain, valid_status_codes: [418]}
`, srv.TLSURL+"/", svcCAFile(t, srv), srv.URL+"/"))
	mfs := svcWait(t, c, "3 probes of each target", 10*time.Second, func(m []*dto.MetricFamily) bool {
		for _, n := range []string{"ca", "insecure", "untrusted", "plain"} {
			if svcValue(m, "smokemon_http_probes_total", "target="+n) < 3 {
				return false
			}
		}
		return true
	})
	for _, tc := range []struct {
		name    string
		success float64
		reason  string
	}{{"ca", 1, ""}, {"insecure", 1, ""}, {"untrusted", 0, "tls"}, {"plain", 0, "status"}} {
		if v := svcValue(mfs, "smokemon_http_success", "target="+tc.name); v != tc.success {
			t.Errorf("%s: success %v, want %v", tc.name, v, tc.success)
		}
		for _, r := range prober.HTTPReasons {
			v := svcValue(mfs, "smokemon_http_failures_total", "target="+tc.name, "reason="+r)
			if (r == tc.reason) != (v > 0) {
				t.Errorf("%s: failures{reason=%s} = %v", tc.name, r, v)
			}
		}
	}
	for _, n := range []string{"ca", "insecure"} {
		if v := svcValue(mfs, "smokemon_http_tls_cert_expiry_timestamp_seconds", "target="+n); v != float64(notAfter.Unix()) {
			t.Errorf("%s: cert expiry %v, want %v", n, v, notAfter.Unix())
		}
	}
	if v := svcValue(mfs, "smokemon_http_tls_cert_expiry_timestamp_seconds", "target=plain"); v != -1 {
		t.Errorf("plain HTTP reports a certificate expiry %v", v)
	}
	// The untrusted probe fails in the handshake: no response, no phases.
	if m := svcFind(mfs, "smokemon_http_duration_seconds", "target=untrusted"); m.Histogram.GetSampleCount() != 0 {
		t.Errorf("failed TLS probes observed in the duration histogram: %d", m.Histogram.GetSampleCount())
	}
	if v := svcValue(mfs, "smokemon_http_status_code", "target=plain"); v != 200 {
		t.Errorf("plain: status %v", v)
	}
}

// A server that accepts the connection and never answers, and a port whose
// SYNs are dropped: each probe costs exactly its timeout, the next probe
// runs on schedule, the healthy target beside them is untouched, scrapes
// return at once, and nothing outlives Close.
func TestHTTPTimeoutHonoured(t *testing.T) {
	tp := lab.Topology(t)
	dst := tp.Dst[0]
	ip := tp.Addr(dst, false).String()
	srv := dst.HTTPServer(t, ip, lab.HTTPOptions{})
	// Listening without ever accepting: the kernel completes the handshake and
	// queues the request, and no answer ever comes.
	ln, err := dst.Listen("tcp", net.JoinHostPort(ip, "8080"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// A black hole: SYNs to 8081 vanish. (DropRandom cannot drop all.)
	dst.MustRun(t, "nft", "add table inet smk_blackhole")
	dst.MustRun(t, "nft", "add chain inet smk_blackhole in { type filter hook input priority -10 ; }")
	dst.MustRun(t, "nft", "add rule inet smk_blackhole in tcp dport 8081 drop")
	deps := svcDeps(t, tp.Client, "")
	c, err := newHTTPCollector(testutil.Logger(), mustParse(t, fmt.Sprintf(`
http:
  interval: 400ms
  timeout: 250ms
  targets:
    - {url: "http://%[1]s:8080/", name: silent}
    - {url: "http://%[1]s:8081/", name: blackhole}
    - {url: %[2]q, name: fine}
`, ip, srv.URL+"/")), deps)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var slowest time.Duration
	for time.Since(start) < 2500*time.Millisecond {
		t0 := time.Now()
		svcGather(t, c)
		slowest = max(slowest, time.Since(t0))
		time.Sleep(10 * time.Millisecond)
	}
	mfs := svcGather(t, c)
	elapsed := time.Since(start)
	// A scrape that waited for a hung probe would wait out its 250 ms
	// timeout: among some 200 scrapes 10 ms apart, one starts just after a
	// probe does. Half the timeout leaves room for a stalling machine (a
	// CI run saw a 91 ms scrape) without excusing a wait.
	if slowest > 125*time.Millisecond {
		t.Errorf("a scrape took %v while targets hung", slowest)
	}
	rounds := elapsed.Seconds() / 0.4
	for _, n := range []string{"silent", "blackhole"} {
		probes := svcValue(mfs, "smokemon_http_probes_total", "target="+n)
		timeouts := svcValue(mfs, "smokemon_http_failures_total", "target="+n, "reason=timeout")
		t.Logf("%s: %v probes, %v timeouts in %.2fs (%.1f intervals); failures by reason %v", n, probes, timeouts, elapsed.Seconds(), rounds,
			svcFailuresByReason(mfs, "smokemon_http", n, prober.HTTPReasons))
		// A probe that ran past its timeout into the next would cut the count.
		if probes < math.Floor(rounds)-1 || timeouts != probes {
			t.Errorf("%s: %v probes, %v of them timeouts, in %.1f intervals", n, probes, timeouts, rounds)
		}
	}
	if v := svcValue(mfs, "smokemon_http_success", "target=fine"); v != 1 {
		t.Errorf("fine: success %v", v)
	}
	if p := svcValue(mfs, "smokemon_http_probes_total", "target=fine"); p < math.Floor(rounds)-1 {
		t.Errorf("fine: only %v probes", p)
	}
	c.(collector.Closer).Close()
	svcNoProbeGoroutines(t)
}

// Reload keeps the counters of unchanged targets (same name, same label
// names and values; a changed union of label names starts every series
// afresh, as for ping), drops removed ones, and unions custom labels so a
// family never mixes label sets; without targets the collector is idle.
func TestHTTPReloadAndIdle(t *testing.T) {
	tp := lab.Topology(t)
	dst := tp.Dst[0]
	ip := tp.Addr(dst, false).String()
	srv := dst.HTTPServer(t, ip, lab.HTTPOptions{})
	deps := svcDeps(t, tp.Client, "")
	c := svcCollector(t, newHTTPCollector, deps, fmt.Sprintf(`
global: {labels: {site: home}}
http:
  interval: 100ms
  targets:
    - {url: %[1]q, name: keep}
    - {url: %[1]q, name: change}
    - {url: %[1]q, name: drop, labels: {isp: acme}}
`, srv.URL+"/"))
	before := svcWait(t, c, "probes", 5*time.Second, func(m []*dto.MetricFamily) bool {
		return svcValue(m, "smokemon_http_probes_total", "target=keep") >= 3 && svcValue(m, "smokemon_http_probes_total", "target=change") >= 3
	})
	if svcFind(before, "smokemon_http_probes_total", "target=keep", "site=home", "isp=") == nil {
		t.Error("keep lacks the unioned labels site=home, isp=\"\"")
	}
	hc := c.(*httpCollector)
	if err := reload(hc, mustParse(t, fmt.Sprintf(`
global: {labels: {site: home}}
http:
  interval: 100ms
  targets:
    - {url: %[1]q, name: keep}
    - {url: %[1]q, name: change, method: HEAD, interval: 200ms}
    - {url: %[1]q, name: new, labels: {isp: other}}
`, srv.URL+"/"))); err != nil {
		t.Fatal(err)
	}
	after := svcGather(t, c)
	for _, n := range []string{"keep", "change"} {
		if b, a := svcValue(before, "smokemon_http_probes_total", "target="+n), svcValue(after, "smokemon_http_probes_total", "target="+n); a < b {
			t.Errorf("%s: probes went from %v to %v across a reload", n, b, a)
		}
	}
	if svcFind(after, "smokemon_http_probes_total", "target=drop") != nil {
		t.Error("removed target still exported")
	}
	if svcFind(after, "smokemon_http_probes_total", "target=new", "isp=other", "site=home") == nil || svcFind(after, "smokemon_http_probes_total", "target=keep", "site=home", "isp=") == nil {
		t.Error("labels after reload are not the union")
	}
	svcWait(t, c, "new target probed", 5*time.Second, func(m []*dto.MetricFamily) bool {
		return svcValue(m, "smokemon_http_success", "target=new") == 1
	})

	if err := reload(hc, mustParse(t, "global: {interval: 1s}\n")); err != nil {
		t.Fatal(err)
	}
	if err := hc.Update(make(chan prometheus.Metric, 100)); err != collector.ErrNoData {
		t.Errorf("idle Update returned %v, want collector.ErrNoData", err)
	}
	hc.svcScheduler.mu.Lock()
	running := len(hc.svcScheduler.running)
	hc.svcScheduler.mu.Unlock()
	if running != 0 {
		t.Errorf("%d probe goroutines run without targets", running)
	}
	if mfs := svcGather(t, c); svcFind(mfs, "smokemon_http_probes_total") != nil {
		t.Error("idle collector still exports series")
	}
}

// ca_file is read once, when the config is parsed: the collector probes with
// that pool even when the file is gone by the time it starts, and a reload
// never reads it again.
func TestHTTPCAFromParseTime(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") }))
	defer srv.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := mustParse(t, fmt.Sprintf(`
http:
  # A timeout of 100 ms failed one CI run under -race and load: the TLS
  # handshake alone took longer. This test is about the CA, not speed.
  interval: 1s
  targets: [{url: %q, name: own-ca, tls: {ca_file: %q}}]
`, srv.URL+"/", ca))
	if err := os.Remove(ca); err != nil {
		t.Fatal(err)
	}
	c, err := newHTTPCollector(testutil.Logger(), cfg, testDeps())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.(collector.Closer).Close() })
	if err := reload(c, cfg); err != nil {
		t.Fatalf("reload without the CA file on disk: %v", err)
	}
	mfs := svcWait(t, c, "a verified HTTPS probe", 5*time.Second, func(m []*dto.MetricFamily) bool {
		return svcValue(m, "smokemon_http_probes_total", "target=own-ca") >= 1
	})
	if v := svcValue(mfs, "smokemon_http_success", "target=own-ca"); v != 1 {
		t.Errorf("success = %v, failures: %v", v, svcFailuresByReason(mfs, "smokemon_http", "own-ca", prober.HTTPReasons))
	}
}
