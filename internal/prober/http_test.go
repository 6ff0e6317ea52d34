package prober

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"
)

// A plain request on loopback: every phase that happened is timed, the body
// is read up to the cap, and no phase is longer than the whole.
func TestHTTPPhasesAndBody(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Probe") != "yes" || r.Host != "virtual.test" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		time.Sleep(20 * time.Millisecond) // processing
		io.WriteString(w, strings.Repeat("x", 1000))
	}))
	defer srv.Close()
	res := Env{}.HTTP(ctxTimeout(t, 5*time.Second), HTTPRequest{
		URL: srv.URL + "/", Method: http.MethodGet, MaxBody: 100, KeepBody: true,
		Headers: map[string]string{"X-Probe": "yes", "Host": "virtual.test"},
	})
	if !res.Completed || res.Reason != "" || res.Status != 200 {
		t.Fatalf("result %+v", res)
	}
	if res.BodyBytes != 100 || len(res.Body) != 100 {
		t.Errorf("body %d bytes (kept %d), want the 100 of the cap", res.BodyBytes, len(res.Body))
	}
	if res.Resolved || res.TLS != nil {
		t.Error("a literal http:// URL was resolved or had TLS")
	}
	if p := res.Phases[PhaseProcessing]; p < 20*time.Millisecond {
		t.Errorf("processing %s, the server took 20ms", p)
	}
	var sum time.Duration
	for _, p := range res.Phases {
		sum += p
	}
	if sum > res.Total {
		t.Errorf("phases sum to %s, more than the total %s", sum, res.Total)
	}
	if res.IP.String() != "127.0.0.1" {
		t.Errorf("ip %s", res.IP)
	}
}

// Redirects are followed only when asked; Location is reported either way.
func TestHTTPRedirects(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/old" {
			http.Redirect(w, r, "/new", http.StatusFound)
			return
		}
		io.WriteString(w, "new")
	}))
	defer srv.Close()
	res := Env{}.HTTP(ctxTimeout(t, 5*time.Second), HTTPRequest{URL: srv.URL + "/old", Method: http.MethodGet, MaxBody: 1 << 10})
	if res.Status != http.StatusFound || res.Location != "/new" || !res.Completed {
		t.Errorf("not following: %d %q", res.Status, res.Location)
	}
	res = Env{}.HTTP(ctxTimeout(t, 5*time.Second), HTTPRequest{URL: srv.URL + "/old", Method: http.MethodGet, MaxBody: 1 << 10, Follow: true})
	if res.Status != http.StatusOK || !res.Completed {
		t.Errorf("following: %d, %+v", res.Status, res.Err)
	}
}

// TLS: an unknown CA is a tls failure; the server's own certificate as the
// root pool verifies, and the handshake is timed and reported.
func TestHTTPTLS(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") }))
	defer srv.Close()
	res := Env{}.HTTP(ctxTimeout(t, 5*time.Second), HTTPRequest{URL: srv.URL + "/", Method: http.MethodGet, MaxBody: 10, TLS: &tls.Config{}})
	if res.Reason != "tls" || res.Completed {
		t.Errorf("untrusted server: reason %q (%v)", res.Reason, res.Err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	res = Env{}.HTTP(ctxTimeout(t, 5*time.Second), HTTPRequest{URL: srv.URL + "/", Method: http.MethodGet, MaxBody: 10, TLS: &tls.Config{RootCAs: pool}})
	if res.Reason != "" || res.TLS == nil || res.Phases[PhaseTLS] <= 0 {
		t.Errorf("trusted server: reason %q (%v), tls %v, handshake %s", res.Reason, res.Err, res.TLS != nil, res.Phases[PhaseTLS])
	}
}

// Failures are sorted into HTTPReasons: nothing listening is connect, a
// server slower than the deadline is timeout, a name no resolver knows is dns.
func TestHTTPFailureReasons(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}))
	defer slow.Close()
	dnsSrv := startDNS(t, map[string]string{})
	for _, tc := range []struct {
		name, url, resolver, reason string
	}{
		{"refused", "http://" + closed + "/", "", "connect"},
		{"slow", slow.URL + "/", "", "timeout"},
		{"unknown name", "http://nope.lab.test:1/", dnsSrv.addr, "dns"},
	} {
		begin := time.Now()
		res := Env{}.HTTP(ctxTimeout(t, 300*time.Millisecond), HTTPRequest{URL: tc.url, Method: http.MethodGet, MaxBody: 10, Resolver: tc.resolver})
		if res.Reason != tc.reason || res.Completed {
			t.Errorf("%s: reason %q (%v), want %q", tc.name, res.Reason, res.Err, tc.reason)
		}
		if !slices.Contains(HTTPReasons, res.Reason) {
			t.Errorf("%s: reason %q is not one of %v", tc.name, res.Reason, HTTPReasons)
		}
		if d := time.Since(begin); d > 3*time.Second {
			t.Errorf("%s: took %s with a 300ms deadline", tc.name, d)
		}
	}
}

// A host name is looked up through the given resolver, and its time is the resolve phase.
func TestHTTPResolvesNames(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") }))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	dnsSrv := startDNS(t, map[string]string{"www.lab.test": "127.0.0.1"})
	res := Env{}.HTTP(ctxTimeout(t, 5*time.Second), HTTPRequest{URL: "http://www.lab.test:" + port + "/", Method: http.MethodGet, MaxBody: 10, Resolver: dnsSrv.addr})
	if res.Reason != "" || !res.Resolved || res.Phases[PhaseResolve] <= 0 || res.IP.String() != "127.0.0.1" {
		t.Errorf("reason %q (%v), resolved %v in %s, ip %s", res.Reason, res.Err, res.Resolved, res.Phases[PhaseResolve], res.IP)
	}
}
