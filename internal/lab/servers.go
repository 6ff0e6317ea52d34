package lab

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/smokemon/smokemon/internal/testutil"
	"golang.org/x/sys/unix"
)

// Listen opens a stream listener inside the namespace (network "tcp", "tcp4", …).
func (h *Host) Listen(network, addr string) (net.Listener, error) {
	var ln net.Listener
	err := h.Do(func() (err error) {
		ln, err = net.Listen(network, addr)
		return err
	})
	return ln, err
}

// ListenPacket opens a packet listener inside the namespace.
func (h *Host) ListenPacket(network, addr string) (net.PacketConn, error) {
	var pc net.PacketConn
	err := h.Do(func() (err error) {
		pc, err = net.ListenPacket(network, addr)
		return err
	})
	return pc, err
}

// DialContext connects from inside the namespace; it fits http.Transport.DialContext,
// so a client in the test process can act as if it ran on h.
func (h *Host) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := h.Do(func() (err error) {
		c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// DNSServer is an authoritative-style DNS server answering A and AAAA queries for the
// names it was given, over UDP and TCP on port 53, after a programmable delay.
type DNSServer struct {
	Addr string // "ip:53"

	mu      sync.Mutex
	records map[string][]netip.Addr
	delay   time.Duration
}

// DNSServer starts a DNS server on ip port 53 in h, stopped when the test ends.
func (h *Host) DNSServer(t testing.TB, ip string) *DNSServer {
	t.Helper()
	s := &DNSServer{Addr: net.JoinHostPort(ip, "53"), records: map[string][]netip.Addr{}}
	pc, err := h.ListenPacket("udp", s.Addr)
	if err != nil {
		t.Fatalf("%s: DNS: %v", h, err)
	}
	ln, err := h.Listen("tcp", s.Addr)
	if err != nil {
		pc.Close()
		t.Fatalf("%s: DNS: %v", h, err)
	}
	for _, srv := range []*dns.Server{{PacketConn: pc, Handler: s}, {Listener: ln, Handler: s}} {
		go srv.ActivateAndServe()
		t.Cleanup(func() { srv.Shutdown() })
	}
	return s
}

// Set makes name resolve to addrs (IPv4 ones for A, IPv6 ones for AAAA); no addresses
// makes the name unknown (NXDOMAIN).
func (s *DNSServer) Set(name string, addrs ...string) {
	var as []netip.Addr
	for _, a := range addrs {
		as = append(as, netip.MustParseAddr(a))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(as) == 0 {
		delete(s.records, dns.CanonicalName(name))
		return
	}
	s.records[dns.CanonicalName(name)] = as
}

// SetDelay delays every answer by d from when the query was read.
func (s *DNSServer) SetDelay(d time.Duration) {
	s.mu.Lock()
	s.delay = d
	s.mu.Unlock()
}

// ServeDNS implements dns.Handler.
func (s *DNSServer) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	start := time.Now()
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	s.mu.Lock()
	delay := s.delay
	var addrs []netip.Addr
	known := false
	if len(req.Question) == 1 {
		addrs, known = s.records[dns.CanonicalName(req.Question[0].Name)]
	}
	s.mu.Unlock()
	if !known {
		m.Rcode = dns.RcodeNameError
	} else {
		q := req.Question[0]
		for _, a := range addrs {
			hdr := dns.RR_Header{Name: q.Name, Class: dns.ClassINET, Rrtype: q.Qtype, Ttl: 1}
			switch {
			case q.Qtype == dns.TypeA && a.Is4():
				m.Answer = append(m.Answer, &dns.A{Hdr: hdr, A: a.AsSlice()})
			case q.Qtype == dns.TypeAAAA && a.Is6():
				m.Answer = append(m.Answer, &dns.AAAA{Hdr: hdr, AAAA: a.AsSlice()})
			}
		}
	}
	sleepFor(time.Until(start.Add(delay)))
	w.WriteMsg(m)
}

// HTTPPhases are delays the HTTP server adds, each in the phase a client would see it.
type HTTPPhases struct {
	// Accept holds a new connection before the server reads from it. The kernel has
	// already completed the TCP handshake, so a client sees it as TLS time (HTTPS) or
	// processing time (HTTP). Connect time comes from a delay element.
	Accept time.Duration
	// TLS holds the handshake after the ClientHello, before the ServerHello.
	TLS time.Duration
	// FirstByte holds the response after the request is read, before headers are sent.
	FirstByte time.Duration
	// Transfer holds the body between its first and second half, which are flushed
	// separately.
	Transfer time.Duration
}

// HTTPOptions configure an HTTPServer.
type HTTPOptions struct {
	Names    []string  // DNS names in the certificate, beside the IP
	NotAfter time.Time // certificate expiry; zero means in 24 hours
}

// HTTPServer serves HTTP on port 80 and HTTPS on port 443 of one address, with a
// self-signed certificate. "/" answers with the configured status and body; Mux takes
// further handlers. Phases apply to every request.
type HTTPServer struct {
	URL, TLSURL string // "http://ip:80", "https://ip:443" (IPv6 in brackets)
	Cert        *x509.Certificate
	CertPool    *x509.CertPool // trusts Cert, for clients
	Mux         *http.ServeMux

	mu     sync.Mutex
	phases HTTPPhases
	status int
	body   []byte
}

// HTTPServer starts an HTTP and an HTTPS server on ip in h, stopped when the test ends.
// "/" answers 200 with a 1000-byte body until SetResponse changes it.
func (h *Host) HTTPServer(t testing.TB, ip string, opt HTTPOptions) *HTTPServer {
	t.Helper()
	s := &HTTPServer{
		URL:    "http://" + net.JoinHostPort(ip, "80"),
		TLSURL: "https://" + net.JoinHostPort(ip, "443"),
		Mux:    http.NewServeMux(),
		status: http.StatusOK,
		body:   []byte(strings.Repeat("smokemon lab\n", 77)[:1000]),
	}
	cert, err := selfSigned(netip.MustParseAddr(ip), opt)
	if err != nil {
		t.Fatal(err)
	}
	s.Cert = cert.Leaf
	s.CertPool = x509.NewCertPool()
	s.CertPool.AddCert(cert.Leaf)
	s.Mux.HandleFunc("/", s.serveDefault)
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sleepFor(s.Phases().FirstByte)
		s.Mux.ServeHTTP(w, r)
	})
	tlsConf := &tls.Config{
		Certificates: []tls.Certificate{cert},
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			sleepFor(s.Phases().TLS)
			return nil, nil
		},
	}
	for _, port := range []string{"80", "443"} {
		ln, err := h.Listen("tcp", net.JoinHostPort(ip, port))
		if err != nil {
			t.Fatalf("%s: HTTP: %v", h, err)
		}
		ln = &delayListener{Listener: ln, delay: func() time.Duration { return s.Phases().Accept }}
		srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
		if port == "443" {
			srv.TLSConfig = tlsConf
			ln = tls.NewListener(ln, tlsConf)
		}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
	}
	return s
}

// SetPhases changes the delays for requests arriving afterwards.
func (s *HTTPServer) SetPhases(p HTTPPhases) {
	s.mu.Lock()
	s.phases = p
	s.mu.Unlock()
}

// Phases returns the current delays.
func (s *HTTPServer) Phases() HTTPPhases {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.phases
}

// SetResponse changes what "/" answers.
func (s *HTTPServer) SetResponse(status int, body []byte) {
	s.mu.Lock()
	s.status, s.body = status, body
	s.mu.Unlock()
}

func (s *HTTPServer) serveDefault(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	status, body, transfer := s.status, s.body, s.phases.Transfer
	s.mu.Unlock()
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.Header().Set("Content-Type", "text/plain")
	w.WriteHeader(status)
	half := len(body) / 2
	w.Write(body[:half])
	if transfer > 0 {
		// Flushing makes the first half leave now, so the client's transfer phase
		// starts with it.
		http.NewResponseController(w).Flush()
		sleepFor(transfer)
	}
	w.Write(body[half:])
}

// sleepFor sleeps with the kernel's high-resolution timer. time.Sleep wakes through the
// Go scheduler, late by up to a millisecond on a busy machine, which would eat the
// budget of tests that compare measured phases with these delays.
func sleepFor(d time.Duration) {
	if d <= 0 {
		return
	}
	var now unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &now)
	until := unix.NsecToTimespec(now.Nano() + int64(d))
	for unix.ClockNanosleep(unix.CLOCK_MONOTONIC, unix.TIMER_ABSTIME, &until, nil) == unix.EINTR {
	}
}

// delayListener holds each accepted connection's first read until delay has passed
// since it was accepted, without holding up the accept loop.
type delayListener struct {
	net.Listener
	delay func() time.Duration
}

func (l *delayListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &delayConn{Conn: c, until: time.Now().Add(l.delay())}, nil
}

type delayConn struct {
	net.Conn
	once  sync.Once
	until time.Time
}

func (c *delayConn) Read(p []byte) (int, error) {
	c.once.Do(func() { sleepFor(time.Until(c.until)) })
	return c.Conn.Read(p)
}

func selfSigned(ip netip.Addr, opt HTTPOptions) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	notAfter := opt.NotAfter
	if notAfter.IsZero() {
		notAfter = time.Now().Add(24 * time.Hour)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "smokemon lab"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              notAfter,
		IPAddresses:           []net.IP{ip.AsSlice()},
		DNSNames:              opt.Names,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// Iperf3Server starts `iperf3 -s` on ip port 5201 in h and waits until it listens.
func (h *Host) Iperf3Server(t testing.TB, ip string) string {
	t.Helper()
	h.Start(t, "iperf3", "-s", "-B", ip, "-p", "5201")
	addr := net.JoinHostPort(ip, "5201")
	testutil.WaitFor(t, 5*time.Second, fmt.Sprintf("%s: iperf3 to listen on %s", h, addr), func() bool {
		// ss, not a test connection: iperf3 would count a bare connect as a failed test.
		out, _ := h.Run("ss", "-Hltn", "sport", "=", ":5201")
		return strings.Contains(out, "5201")
	})
	return addr
}
