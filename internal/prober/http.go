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

// HTTPReasons is the bounded set of reasons an HTTP request fails for.
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

var PhaseNames = [NPhases]string{"resolve", "connect", "tls", "processing", "transfer"}

// httpReasons is the bounded set of failure reasons, all exported from the start
// so rate() sees the first failure.
var httpReasons = []string{"dns", "connect", "tls", "timeout", "status", "other"}

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

// HTTP makes one request on a connection of its own, timing each phase. The
// transport may still be dialing in the
// background after Do returns (it detaches dials from the request), so the
// closures fill res only under mu and every return hands out a copy taken
// under mu.
func (e Env) HTTP(ctx context.Context, spec HTTPRequest) HTTPResult {
	start := time.Now()
	var (
		res                        HTTPResult
		mu                         sync.Mutex
		tlsStart, wrote, firstByte time.Time
		tlsFailed                  bool
	)
	dial := func(_ context.Context, network, addr string) (net.Conn, error) {
		// The transport detaches dials from the request's cancellation; the
		// probe's context bounds them instead.
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		ip, err := netip.ParseAddr(host)
		if err != nil {
			t0 := time.Now()
			ip, err = e.LookupHost(ctx, host, spec.Family, spec.Resolver)
			mu.Lock()
			res.Phases[PhaseResolve] += time.Since(t0)
			res.Resolved = true
			mu.Unlock()
			if err != nil {
				return nil, &stageError{"dns", err}
			}
		}
		conn, d, err := e.Dial(ctx, "tcp", net.JoinHostPort(ip.String(), port))
		mu.Lock()
		res.Phases[PhaseConnect] += d
		res.IP = ip
		mu.Unlock()
		if err != nil {
			return nil, &stageError{"connect", err}
		}
		bindConn(ctx, conn) // released when ctx ends, which is when the probe does
		return conn, nil
	}
	tr := &http.Transport{
		DialContext:       dial,
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
	trace := &httptrace.ClientTrace{
		TLSHandshakeStart: func() { mu.Lock(); tlsStart = time.Now(); mu.Unlock() },
		TLSHandshakeDone: func(_ tls.ConnectionState, err error) {
			mu.Lock()
			res.Phases[PhaseTLS] += time.Since(tlsStart)
			tlsFailed = tlsFailed || err != nil
			mu.Unlock()
		},
		WroteRequest: func(httptrace.WroteRequestInfo) { mu.Lock(); wrote = time.Now(); mu.Unlock() },
		GotFirstResponseByte: func() {
			mu.Lock()
			firstByte = time.Now()
			res.Phases[PhaseProcessing] += firstByte.Sub(wrote)
			mu.Unlock()
		},
	}
	fail := func(err error) HTTPResult {
		mu.Lock()
		defer mu.Unlock()
		res.Err = err
		var se *stageError
		switch {
		case NetReason(ctx, err) == "timeout":
			// The socket's deadline may fire a moment before the context's.
			res.Reason = "timeout"
		case errors.As(err, &se):
			res.Reason = se.stage
		case tlsFailed || isTLSError(err):
			res.Reason = "tls"
		default:
			res.Reason = "other"
		}
		return res
	}

	var body io.Reader
	if spec.Body != nil {
		body = bytes.NewReader(spec.Body)
	}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), spec.Method, spec.URL, body)
	if err != nil {
		return fail(err)
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
		return fail(err)
	}
	defer resp.Body.Close()
	var sink io.Writer = io.Discard
	var buf bytes.Buffer
	if spec.KeepBody {
		sink = &buf
	}
	n, err := io.Copy(sink, io.LimitReader(resp.Body, spec.MaxBody))
	end := time.Now()
	mu.Lock()
	res.Status, res.BodyBytes, res.TLS = resp.StatusCode, n, resp.TLS
	res.Location = resp.Header.Get("Location")
	mu.Unlock()
	if err != nil {
		return fail(fmt.Errorf("reading the body: %w", err))
	}
	mu.Lock()
	defer mu.Unlock()
	res.Phases[PhaseTransfer] = end.Sub(firstByte)
	res.Total = end.Sub(start)
	res.Completed = true
	res.Body = buf.Bytes()
	return res
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
