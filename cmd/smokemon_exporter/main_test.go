package main

// End-to-end tests of the real binary: built once, started as a process (on
// loopback or inside lab namespaces), scraped over HTTP.

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/smokemon/smokemon/internal/lab"
	"github.com/smokemon/smokemon/internal/testutil"
)

func TestMain(m *testing.M) { os.Exit(testutil.Run(m)) }

// exporterBin is the binary under test, built once per test run.
func exporterBin(t *testing.T) string { return testutil.BuildBinary(t, ".") }

// exporter is a running smokemon_exporter.
type exporter struct {
	cmd    *exec.Cmd
	out    *syncBuffer
	base   string
	client *http.Client
}

// syncBuffer is the exporter's output: its process writes it while a test reads it.
type syncBuffer = testutil.SyncBuffer

// start runs the binary on a loopback port and waits until it answers.
func start(t *testing.T, args ...string) *exporter {
	t.Helper()
	addr := testutil.FreeAddr(t)
	e := &exporter{out: &syncBuffer{}, base: "http://" + addr, client: &http.Client{Timeout: 5 * time.Second}}
	e.cmd = exec.Command(exporterBin(t), append([]string{"--web.listen-address=" + addr}, args...)...)
	e.cmd.Stdout, e.cmd.Stderr = e.out, e.out
	if err := e.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		e.cmd.Process.Kill()
		e.cmd.Wait()
		if t.Failed() {
			t.Logf("exporter output:\n%s", e.out)
		}
	})
	e.waitReady(t)
	return e
}

func (e *exporter) waitReady(t *testing.T) {
	t.Helper()
	ready := testutil.Eventually(10*time.Second, 50*time.Millisecond, func() bool {
		resp, err := e.client.Get(e.base + "/-/ready")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	})
	if !ready {
		t.Fatalf("exporter did not become ready; output:\n%s", e.out)
	}
}

func (e *exporter) scrape(t *testing.T) string {
	t.Helper()
	resp, err := e.client.Get(e.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("scrape: %s\n%s", resp.Status, b)
	}
	return string(b)
}

// sample finds the value of the series whose line starts with prefix
// (metric name and the labels in order), or NaN.
func sample(body, prefix string) float64 {
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, prefix) {
			rest := strings.TrimSpace(line[len(prefix):])
			if strings.HasPrefix(rest, "{") || strings.HasPrefix(rest, ",") {
				continue
			}
			v, err := strconv.ParseFloat(strings.Fields(rest)[0], 64)
			if err == nil {
				return v
			}
		}
	}
	return math.NaN()
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDefaultRunServesPingAndLandingPage(t *testing.T) {
	e := start(t)
	testutil.Eventually(5*time.Second, 200*time.Millisecond, func() bool {
		return sample(e.scrape(t), `smokemon_ping_received_total{family="ip4",target="localhost"}`) >= 2
	})
	body := e.scrape(t)
	for _, want := range []string{
		`smokemon_ping_received_total{family="ip4",target="localhost"}`,
		`smokemon_exporter_build_info{`,
		`smokemon_scrape_collector_success{collector="ping"} 1`,
		`smokemon_exporter_config_last_reload_successful 1`,
		`process_resident_memory_bytes`,
		`go_goroutines`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if v := sample(body, `smokemon_ping_received_total{family="ip4",target="localhost"}`); !(v >= 2) {
		t.Errorf("localhost replies = %v", v)
	}
	resp, err := e.client.Get(e.base + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), "/metrics") {
		t.Errorf("landing page does not link /metrics:\n%s", b)
	}
	for _, p := range []string{"/-/healthy", "/-/ready", "/config"} {
		resp, err := e.client.Get(e.base + p)
		if err != nil || resp.StatusCode != 200 {
			t.Errorf("GET %s: %v %v", p, resp.Status, err)
		}
		resp.Body.Close()
	}
}

func TestPromtoolCheckMetrics(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (Debian package prometheus); run the test script as root to install it")
	}
	e := start(t, "127.0.0.1", "::1")
	time.Sleep(1500 * time.Millisecond)
	body := e.scrape(t)
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(body)
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

func TestVersionFlag(t *testing.T) {
	out, err := exec.Command(exporterBin(t), "--version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "smokemon_exporter, version") {
		t.Errorf("--version: %v: %s", err, out)
	}
}

func TestBadConfigNamesFileLineAndField(t *testing.T) {
	dir := t.TempDir()
	cfg := writeFile(t, dir, "bad.yml", "ping:\n  targets:\n    - host: 127.0.0.1\n      interval: soon\n")
	out, err := exec.Command(exporterBin(t), "--config.file="+cfg, "--config.check").CombinedOutput()
	if err == nil {
		t.Fatal("a bad config was accepted")
	}
	if want := cfg + ":4: ping.targets[0].interval"; !strings.Contains(string(out), want) {
		t.Errorf("message %q lacks %q", out, want)
	}
	good := writeFile(t, dir, "good.yml", "ping:\n  targets:\n    - host: 127.0.0.1\n")
	if out, err := exec.Command(exporterBin(t), "--config.file="+good, "--config.check").CombinedOutput(); err != nil {
		t.Errorf("--config.check on a good config: %v: %s", err, out)
	}
}

func TestPortInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	cmd := exec.Command(exporterBin(t), "--web.listen-address="+l.Addr().String())
	done := make(chan []byte)
	go func() { out, _ := cmd.CombinedOutput(); done <- out }()
	select {
	case out := <-done:
		if cmd.ProcessState.ExitCode() == 0 || !strings.Contains(string(out), "address is in use") {
			t.Errorf("exit %d, output:\n%s", cmd.ProcessState.ExitCode(), out)
		}
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		t.Fatal("exporter kept running on a port in use")
	}
}

func TestUnreadableWebConfig(t *testing.T) {
	out, err := exec.Command(exporterBin(t), "--web.config.file=/nonexistent/web.yml").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "--web.config.file /nonexistent/web.yml") {
		t.Errorf("err %v, output:\n%s", err, out)
	}
}

// Reload: a broken file keeps the running targets and says so; a fixed file
// applies, through SIGHUP and through POST /-/reload.
func TestReload(t *testing.T) {
	dir := t.TempDir()
	cfg := writeFile(t, dir, "c.yml", "global: {interval: 100ms}\nping:\n  targets:\n    - {host: 127.0.3.1, name: one}\n")
	e := start(t, "--config.file="+cfg)
	time.Sleep(500 * time.Millisecond)
	sentBefore := sample(e.scrape(t), `smokemon_ping_sent_total{family="ip4",target="one"}`)

	writeFile(t, dir, "c.yml", "global: {interval: 100ms}\nping:\n  targets:\n    - {host: 127.0.3.1, name: one}\n    - {host: 127.0.3.2, name: two, bogus: 1}\n")
	e.cmd.Process.Signal(syscall.SIGHUP)
	time.Sleep(300 * time.Millisecond)
	body := e.scrape(t)
	if v := sample(body, "smokemon_exporter_config_last_reload_successful"); v != 0 {
		t.Errorf("after a bad reload, last_reload_successful = %v", v)
	}
	if v := sample(body, `smokemon_ping_sent_total{family="ip4",target="one"}`); !(v > sentBefore) {
		t.Errorf("target one stopped after a bad reload: %v -> %v", sentBefore, v)
	}
	if strings.Contains(body, `target="two"`) {
		t.Error("half of a bad config was applied")
	}
	inForce := func() string {
		t.Helper()
		resp, err := e.client.Get(e.base + "/config")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	if c := inForce(); !strings.Contains(c, "127.0.3.1") || strings.Contains(c, "127.0.3.2") {
		t.Errorf("/config after a bad reload is not the config in force:\n%s", c)
	}
	resp, err := e.client.Post(e.base+"/-/reload", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 500 || !strings.Contains(string(msg), `c.yml:5: ping.targets[1].bogus: unknown field "bogus"`) {
		t.Errorf("POST /-/reload with a bad file: %s: %s", resp.Status, msg)
	}

	writeFile(t, dir, "c.yml", "global: {interval: 100ms}\nping:\n  targets:\n    - {host: 127.0.3.1, name: one}\n    - {host: 127.0.3.2, name: two}\n")
	resp, err = e.client.Post(e.base+"/-/reload", "", nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("POST /-/reload: %v %v", resp.Status, err)
	}
	resp.Body.Close()
	time.Sleep(400 * time.Millisecond)
	body = e.scrape(t)
	if v := sample(body, "smokemon_exporter_config_last_reload_successful"); v != 1 {
		t.Errorf("after a good reload, last_reload_successful = %v", v)
	}
	if v := sample(body, `smokemon_ping_received_total{family="ip4",target="two"}`); !(v >= 1) {
		t.Errorf("new target two not probed: %v", v)
	}
	if v := sample(body, `smokemon_ping_sent_total{family="ip4",target="one"}`); !(v > sentBefore) {
		t.Errorf("target one's counter was reset by a reload: %v -> %v", sentBefore, v)
	}
	if c := inForce(); !strings.Contains(c, "127.0.3.2") {
		t.Errorf("/config after a good reload lacks the new target:\n%s", c)
	}
	resp, _ = e.client.Get(e.base + "/-/reload")
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET /-/reload: %s", resp.Status)
	}
	resp.Body.Close()
}

// tlsWebConfig writes a self-signed certificate for 127.0.0.1 and a web
// config serving it with basic auth (user prom, password s3cret) to dir.
func tlsWebConfig(t *testing.T, dir string) (webCfg string, certDER []byte) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "smokemon-test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	writeFile(t, dir, "tls.crt", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	writeFile(t, dir, "tls.key", string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})))
	hash, _ := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	webCfg = writeFile(t, dir, "web.yml", fmt.Sprintf("tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\nbasic_auth_users:\n  prom: %s\n", hash))
	return webCfg, der
}

// TLS and basic auth through --web.config.file, with a real HTTPS client.
func TestTLSAndBasicAuth(t *testing.T) {
	dir := t.TempDir()
	webCfg, der := tlsWebConfig(t, dir)

	addr := testutil.FreeAddr(t)
	cmd := exec.Command(exporterBin(t), "--web.listen-address="+addr, "--web.config.file="+webCfg)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()

	pool := x509.NewCertPool()
	cert, _ := x509.ParseCertificate(der)
	pool.AddCert(cert)
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	get := func(user, pass string) (int, error) {
		req, _ := http.NewRequest("GET", "https://"+addr+"/metrics", nil)
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	var (
		code int
		err  error
	)
	testutil.Eventually(10*time.Second, 50*time.Millisecond, func() bool {
		code, err = get("prom", "s3cret")
		return err == nil
	})
	if code != 200 {
		t.Fatalf("with the right password: %d %v\n%s", code, err, &out)
	}
	if code, _ := get("prom", "wrong"); code != 401 {
		t.Errorf("wrong password: %d", code)
	}
	if code, _ := get("", ""); code != 401 {
		t.Errorf("no credentials: %d", code)
	}
	if resp, err := (&http.Client{Timeout: 2 * time.Second}).Get("http://" + addr + "/metrics"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Error("plain HTTP served metrics on a TLS listener")
		}
	}
}

// labExporter runs the binary inside a lab namespace (after the command
// prefix wrap, e.g. setpriv) and scrapes it from there.
func labExporter(t *testing.T, h *lab.Host, wrap []string, args ...string) *exporter {
	t.Helper()
	e := &exporter{
		base:   "http://127.0.0.1:9917",
		out:    &syncBuffer{},
		client: &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: h.DialContext}},
	}
	argv := append(append(wrap[:len(wrap):len(wrap)], exporterBin(t), "--web.listen-address=127.0.0.1:9917"), args...)
	e.cmd = h.Start(t, argv...)
	e.waitReady(t)
	return e
}

// A target namespace drops 30% of echo requests: that must show as a 30% loss
// ratio (within a binomial tolerance) and never as latency; a target with no
// route counts send errors and does not hold up the others.
func TestLossInLab(t *testing.T) {
	lab.Require(t)
	tp := lab.Topology(t)
	dst := tp.Addr(tp.Dst[0], false)
	gw := tp.Home.Addr(lab.SideB, false)
	tp.Dst[0].DropRandom(t, 0.30, "icmp type echo-request")
	tp.Client.MustRun(t, "ip", "route", "add", "unreachable", "198.19.99.0/24")

	dir := t.TempDir()
	cfg := writeFile(t, dir, "c.yml", fmt.Sprintf(`
global: {interval: 10ms, timeout: 10ms}
ping:
  targets:
    - {host: %s, name: lossy}
    - {host: %s, name: gateway}
    - {host: 198.19.99.1, name: noroute}
`, dst, gw))
	e := labExporter(t, tp.Client, nil, "--config.file="+cfg, "--collector.disable-defaults", "--collector.ping")
	time.Sleep(12 * time.Second)
	body := e.scrape(t)
	get := func(metric, target string) float64 {
		return sample(body, fmt.Sprintf(`%s{family="ip4",target="%s"}`, metric, target))
	}
	sent, lost := get("smokemon_ping_sent_total", "lossy"), get("smokemon_ping_lost_total", "lossy")
	// A probe times out as the next one is sent (timeout = interval), so a
	// scrape can find two in flight, neither answered nor lost yet.
	const inFlight = 2
	n := sent - inFlight
	ratio := lost / n
	// 4.5 standard deviations of a binomial(n, 0.3): a false alarm is
	// rarer than one run in 100000.
	tol := 4.5 * math.Sqrt(0.3*0.7/n)
	t.Logf("lossy: sent %v lost %v ratio %.3f (tolerance ±%.3f)", sent, lost, ratio, tol)
	if n < 800 || math.Abs(ratio-0.30) > tol {
		t.Errorf("loss ratio %.3f over %v probes, want 0.30 ± %.3f", ratio, n, tol)
	}
	if recv := get("smokemon_ping_received_total", "lossy"); recv+lost > sent || sent-(recv+lost) > inFlight {
		t.Errorf("received %v + lost %v: more than sent %v, or short of it by more than %d in flight", recv, lost, sent, inFlight)
	}
	// Loss is not latency: the answered probes are as fast as the clean ones.
	mean := get("smokemon_ping_rtt_seconds_sum", "lossy") / get("smokemon_ping_rtt_seconds_count", "lossy")
	if mean > 2e-3 {
		t.Errorf("mean RTT of the lossy target %.6fs: loss leaked into latency", mean)
	}
	if g := get("smokemon_ping_lost_total", "gateway"); g > 2 {
		t.Errorf("gateway lost %v probes", g)
	}
	if r := get("smokemon_ping_received_total", "gateway"); r < 800 {
		t.Errorf("gateway received only %v replies: the unreachable target held it up?", r)
	}
	unreach := sample(body, `smokemon_ping_send_errors_total{family="ip4",reason="host_unreachable",target="noroute"}`)
	if noSent := get("smokemon_ping_sent_total", "noroute"); !(unreach >= noSent-1 && noSent > 800) {
		t.Errorf("noroute: sent %v, host_unreachable errors %v", noSent, unreach)
	}
	if l := get("smokemon_ping_lost_total", "noroute"); l < get("smokemon_ping_sent_total", "noroute")-1 {
		t.Errorf("noroute: lost %v", l)
	}
}

// Without CAP_NET_RAW the exporter uses the unprivileged datagram socket when
// ping_group_range allows it, and stays up with the prober marked down when
// it does not. ping_group_range is per network namespace, so each case gets one.
func TestUnprivilegedSockets(t *testing.T) {
	lab.Require(t)
	l := lab.New(t)
	nobody := []string{"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all"}

	dg := l.Host("dgram")
	dg.Sysctl("net.ipv4.ping_group_range", "0 2147483647")
	e := labExporter(t, dg, nobody, "127.0.0.1")
	var body string
	testutil.Eventually(5*time.Second, 200*time.Millisecond, func() bool {
		body = e.scrape(t)
		return sample(body, `smokemon_ping_received_total{family="ip4",target="127.0.0.1"}`) >= 2
	})
	if v := sample(body, `smokemon_ping_received_total{family="ip4",target="127.0.0.1"}`); !(v >= 2) {
		t.Errorf("datagram socket: %v replies", v)
	}
	if v := sample(body, `smokemon_ping_prober_info{family="ip4",socket="dgram",timestamps="kernel"}`); v != 1 {
		t.Errorf("prober_info does not say dgram with kernel timestamps:\n%s", grep(body, "prober"))
	}
	if v := sample(body, `smokemon_ping_reply_ttl{family="ip4",target="127.0.0.1"}`); v != 64 {
		t.Errorf("reply TTL on a datagram socket = %v", v)
	}

	none := l.Host("none")
	none.Sysctl("net.ipv4.ping_group_range", "1 0")
	e = labExporter(t, none, nobody, "127.0.0.1")
	body = e.scrape(t)
	for series, want := range map[string]float64{
		`smokemon_ping_prober_up{family="ip4"}`:                    0,
		`smokemon_ping_target_up{family="ip4",target="127.0.0.1"}`: 0,
		`smokemon_scrape_collector_success{collector="ping"}`:      1,
		`smokemon_exporter_config_last_reload_successful`:          1,
	} {
		if v := sample(body, series); v != want {
			t.Errorf("%s = %v, want %v", series, v, want)
		}
	}
	if !strings.Contains(body, `smokemon_ping_prober_info{family="ip4",socket="none",timestamps="none"} 1`) {
		t.Errorf("prober_info does not say none:\n%s", grep(body, "prober"))
	}
}

func grep(body, substr string) string {
	var out []string
	for _, l := range strings.Split(body, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
