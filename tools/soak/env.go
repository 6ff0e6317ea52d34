package main

import (
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"

	"github.com/miekg/dns"

	"github.com/smokemon/smokemon/internal/testutil"
)

// env is what the exporter's probes talk to, all on 127.0.0.1: a web
// server (plain and TLS, with a DoH endpoint), a DNS resolver, an iperf3
// server when iperf3 is installed, and a port for the mesh responder.
type env struct {
	web, tlsWeb *httptest.Server
	dns         *dns.Server
	dnsAddr     string
	caFile      string
	iperf       *exec.Cmd
	iperfAddr   string
	meshPort    int
}

func startEnv(dir string) (*env, error) {
	e := &env{}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/dns-query", doh)
	e.web = httptest.NewServer(mux)
	e.tlsWeb = httptest.NewTLSServer(mux)
	e.caFile = filepath.Join(dir, "ca.pem")
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: e.tlsWeb.Certificate().Raw})
	if err := os.WriteFile(e.caFile, ca, 0o644); err != nil {
		return nil, err
	}

	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	e.dnsAddr = pc.LocalAddr().String()
	e.dns = &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(answer)}
	go e.dns.ActivateAndServe()

	if e.meshPort, err = testutil.LoopbackPort(); err != nil {
		return nil, err
	}
	if path, err := exec.LookPath("iperf3"); err == nil {
		port, err := testutil.LoopbackPort()
		if err != nil {
			return nil, err
		}
		e.iperfAddr = fmt.Sprintf("127.0.0.1:%d", port)
		e.iperf = exec.Command(path, "-s", "-B", "127.0.0.1", "-p", fmt.Sprint(port))
		e.iperf.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := e.iperf.Start(); err != nil {
			return nil, err
		}
	}
	return e, nil
}

func (e *env) close() {
	e.web.Close()
	e.tlsWeb.Close()
	e.dns.Shutdown()
	if e.iperf != nil {
		e.iperf.Process.Kill()
		e.iperf.Wait()
	}
}

// answer resolves every A question to 127.0.0.1.
func answer(w dns.ResponseWriter, q *dns.Msg) {
	w.WriteMsg(reply(q))
}

func reply(q *dns.Msg) *dns.Msg {
	m := new(dns.Msg)
	m.SetReply(q)
	for _, question := range q.Question {
		if question.Qtype == dns.TypeA {
			m.Answer = append(m.Answer, &dns.A{
				Hdr: dns.RR_Header{Name: question.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
				A:   net.IPv4(127, 0, 0, 1),
			})
		}
	}
	return m
}

func doh(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	q := new(dns.Msg)
	if err := q.Unpack(body); err != nil {
		http.Error(w, "bad query", http.StatusBadRequest)
		return
	}
	b, err := reply(q).Pack()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/dns-message")
	w.Write(b)
}

// config is a target of every kind; the ping targets are spread over
// 127.0.0.0/8, which Linux answers on lo without any setup.
func (e *env) config(targets int) string {
	var b strings.Builder
	b.WriteString("global: {interval: 1s, timeout: 1s}\nping:\n  targets:\n")
	for i := range targets {
		fmt.Fprintf(&b, "    - {host: 127.0.%d.%d, name: t%d}\n", 1+i/250, 1+i%250, i)
	}
	fmt.Fprintf(&b, `mtr:
  interval: 10s
  targets:
    - {host: 127.0.0.1, name: lo}
http:
  interval: 5s
  targets:
    - {url: %[1]q, name: plain}
    - {url: %[2]q, name: tls, tls: {ca_file: %[3]q}}
dns:
  interval: 5s
  targets:
    - {query: smokemon.test, type: A, resolvers: [%[4]q], name: lab}
tcp:
  interval: 5s
  targets:
    - {address: %[5]q, name: web}
synthetic:
  interval: 10s
  captive_portal:
    - {url: %[1]q, name: portal, expected_status: 200}
  doh:
    - {url: "%[2]sdns-query", name: doh, query: smokemon.test, tls: {ca_file: %[3]q}}
mesh:
  responder: {listen: 127.0.0.1, udp_port: %[6]d, tcp_port: %[6]d}
  interval: 1s
  protocols: [udp, tcp, tcp_connect]
  peers:
    - {address: "127.0.0.1:%[6]d", name: self}
`, e.web.URL+"/", e.tlsWeb.URL+"/", e.caFile, e.dnsAddr, e.web.Listener.Addr().String(), e.meshPort)
	if e.iperfAddr != "" {
		fmt.Fprintf(&b, "bandwidth:\n  targets:\n    - {server: %q, name: lab, interval: 10m, duration: 2s}\n", e.iperfAddr)
	}
	return b.String()
}

var collectorFlag = regexp.MustCompile(`--\[no-\]collector\.([a-z0-9_-]+)`)

// allCollectors asks the binary for its collector flags, so a collector
// added later is soaked too.
func allCollectors(bin string) ([]string, error) {
	out, err := exec.Command(bin, "--help").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("%s --help: %v\n%s", bin, err, out)
	}
	var flags []string
	for _, m := range collectorFlag.FindAllStringSubmatch(string(out), -1) {
		if m[1] != "disable-defaults" {
			flags = append(flags, "--collector."+m[1])
		}
	}
	if len(flags) == 0 {
		return nil, fmt.Errorf("%s --help lists no collector flags", bin)
	}
	return flags, nil
}
