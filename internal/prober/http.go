package prober

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/smokemon/smokemon/internal/config"
)

// HTTPReasons is the bounded set of reasons an HTTP probe fails for ("status"
// is the caller's verdict on a response), all exported from the start so
// rate() sees the first failure.
var HTTPReasons = []string{"dns", "connect", "tls", "timeout", "status", "other"}

// HTTP phases, in the order a request goes through them.
const (
	PhaseResolve = iota
	PhaseConnect
	PhaseTLS
	PhaseProcessing
	PhaseTransfer
	NPhases
)

// PhaseNames are the phases' label values.
var PhaseNames = [NPhases]string{"resolve", "connect", "tls", "processing", "transfer"}

// maxRedirects is how many redirects a probe follows, as a browser would.
const maxRedirects = 10

// HTTPRequest is one request to make on a fresh connection.
type HTTPRequest struct {
	URL      string
	Method   string
	Headers  map[string]string // "Host" sets the request's host
	Body     []byte
	Family   config.Family // of the server's address
	Resolver string        // ip:port; "" for /etc/hosts and the system nameservers
	TLS      *tls.Config
	Follow   bool  // follow redirects (up to 10)
	MaxBody  int64 // body bytes read at most
	KeepBody bool  // return the body (up to MaxBody) in HTTPResult.Body
}

// HTTPResult is what a request found out.
type HTTPResult struct {
	Phases    [NPhases]time.Duration // summed over redirects, except transfer
	Resolved  bool                   // a name was looked up (Phases[PhaseResolve] means something)
	Total     time.Duration
	Completed bool // a response came and its body was read
	Status    int
	BodyBytes int64
	Body      []byte
	Location  string // Location of the final response, if any
	TLS       *tls.ConnectionState
	IP        netip.Addr // of the latest connection
	Reason    string     // "" on success, else one of HTTPReasons
	Err       error
}

// stageError marks which step of our own dialing failed.
type stageError struct {
	stage string
	err   error
}

func (e *stageError) Error() string { return e.stage + ": " + e.err.Error() }
func (e *stageError) Unwrap() error { return e.err }

// httpRun is one HTTP probe in progress. The transport may still be dialing
// in the background after Do returns (it detaches dials from the request),
// so the dial and trace callbacks fill res only under mu, and every return
// hands out a copy taken under mu.
type httpRun struct {
	env  Env
	ctx  context.Context
	spec HTTPRequest

	mu                         sync.Mutex
	res                        HTTPResult
	tlsStart, wrote, firstByte time.Time
	tlsFailed                  bool
}

// HTTP makes one request on a connection of its own, timing each phase.
func (e Env) HTTP(ctx context.Context, spec HTTPRequest) HTTPResult {
	start := time.Now()
	r := &httpRun{env: e, ctx: ctx, spec: spec}
	tr := &http.Transport{
		DialContext:       r.dial,
		TLSClientConfig:   spec.TLS.Clone(),
		DisableKeepAlives: true,
		ForceAttemptHTTP2: true,
		Proxy:             nil,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if !spec.Follow {
			return http.ErrUseLastResponse
		}
		if len(via) >= maxRedirects {
			return fmt.Errorf("stopped after %d redirects", maxRedirects)
		}
		return nil
	}}
	var body io.Reader
	if spec.Body != nil {
		body = bytes.NewReader(spec.Body)
	}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, r.trace()), spec.Method, spec.URL, body)
	if err != nil {
		return r.fail(err)
	}
	for k, v := range spec.Headers {
		if strings.EqualFold(k, "Host") {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		return r.fail(err)
	}
	defer resp.Body.Close()
	var sink io.Writer = io.Discard
	var buf bytes.Buffer
	if spec.KeepBody {
		sink = &buf
	}
	n, err := io.Copy(sink, io.LimitReader(resp.Body, spec.MaxBody))
	end := time.Now()
	r.mu.Lock()
	r.res.Status, r.res.BodyBytes, r.res.TLS = resp.StatusCode, n, resp.TLS
	r.res.Location = resp.Header.Get("Location")
	r.mu.Unlock()
	if err != nil {
		return r.fail(fmt.Errorf("reading the body: %w", err))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.res.Phases[PhaseTransfer] = end.Sub(r.firstByte)
	r.res.Total = end.Sub(start)
	r.res.Completed = true
	r.res.Body = buf.Bytes()
	return r.res
}

// dial looks the host up and connects, timing both. The transport detaches
// dials from the request's cancellation; the probe's context bounds them
// instead.
func (r *httpRun) dial(_ context.Context, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		t0 := time.Now()
		ip, err = r.env.LookupHost(r.ctx, host, r.spec.Family, r.spec.Resolver)
		r.mu.Lock()
		r.res.Phases[PhaseResolve] += time.Since(t0)
		r.res.Resolved = true
		r.mu.Unlock()
		if err != nil {
			return nil, &stageError{"dns", err}
		}
	}
	conn, d, err := r.env.Dial(r.ctx, "tcp", net.JoinHostPort(ip.String(), port))
	r.mu.Lock()
	r.res.Phases[PhaseConnect] += d
	r.res.IP = ip
	r.mu.Unlock()
	if err != nil {
		return nil, &stageError{"connect", err}
	}
	bindConn(r.ctx, conn) // released when ctx ends, which is when the probe does
	return conn, nil
}

// trace times the TLS handshake and the wait for the first response byte.
func (r *httpRun) trace() *httptrace.ClientTrace {
	return &httptrace.ClientTrace{
		TLSHandshakeStart: func() { r.mu.Lock(); r.tlsStart = time.Now(); r.mu.Unlock() },
		TLSHandshakeDone: func(_ tls.ConnectionState, err error) {
			r.mu.Lock()
			r.res.Phases[PhaseTLS] += time.Since(r.tlsStart)
			r.tlsFailed = r.tlsFailed || err != nil
			r.mu.Unlock()
		},
		WroteRequest: func(httptrace.WroteRequestInfo) { r.mu.Lock(); r.wrote = time.Now(); r.mu.Unlock() },
		GotFirstResponseByte: func() {
			r.mu.Lock()
			r.firstByte = time.Now()
			r.res.Phases[PhaseProcessing] += r.firstByte.Sub(r.wrote)
			r.mu.Unlock()
		},
	}
}

// fail ends the probe with err, sorted into one of HTTPReasons.
func (r *httpRun) fail(err error) HTTPResult {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.res.Err = err
	var se *stageError
	switch {
	case NetReason(r.ctx, err) == "timeout":
		// The socket's deadline may fire a moment before the context's.
		r.res.Reason = "timeout"
	case errors.As(err, &se):
		r.res.Reason = se.stage
	case r.tlsFailed || isTLSError(err):
		r.res.Reason = "tls"
	default:
		r.res.Reason = "other"
	}
	return r.res
}

func isTLSError(err error) bool {
	var (
		rh  tls.RecordHeaderError
		al  tls.AlertError
		cv  *tls.CertificateVerificationError
		ua  x509.UnknownAuthorityError
		hn  x509.HostnameError
		inv x509.CertificateInvalidError
	)
	return errors.As(err, &rh) || errors.As(err, &al) || errors.As(err, &cv) ||
		errors.As(err, &ua) || errors.As(err, &hn) || errors.As(err, &inv)
}
