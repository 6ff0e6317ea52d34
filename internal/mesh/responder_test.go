package mesh

import (
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/smokemon/smokemon/internal/testutil"
)

func startResponder(t *testing.T, cfg ResponderConfig) *Responder {
	t.Helper()
	port := testutil.FreePort(t)
	cfg.Listen = "127.0.0.1"
	cfg.UDPPort, cfg.TCPPort = port, port
	if cfg.MaxConnections == 0 {
		cfg.MaxConnections = 8
	}
	r, err := NewResponder(testutil.Logger(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// exchange sends p and returns the reply, or nil if none came within wait.
func exchange(t *testing.T, c *net.UDPConn, p []byte, wait time.Duration) []byte {
	t.Helper()
	if _, err := c.Write(p); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 4096)
	n, err := c.Read(buf)
	if err != nil {
		return nil
	}
	return buf[:n]
}

func TestResponderAnswersOnlyProbesNeverAmplifies(t *testing.T) {
	r := startResponder(t, ResponderConfig{RateLimit: 1000, RateBurst: 100})
	c, err := net.DialUDP("udp", nil, r.UDPAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	for _, size := range []int{HeaderLen, 200, MaxLen} {
		req := make([]byte, size)
		PutRequest(req, 42, 1, time.Now().UnixNano())
		rep := exchange(t, c, req, time.Second)
		if rep == nil {
			t.Fatalf("no reply to a %d-byte probe", size)
		}
		if len(rep) > len(req) {
			t.Errorf("%d-byte request got a %d-byte reply: amplification", len(req), len(rep))
		}
		h, err := ParseReply(rep)
		if err != nil || h.Session != 42 || h.T2 == 0 || h.T3 < h.T2 {
			t.Errorf("%d-byte reply: %+v %v", size, h, err)
		}
	}

	req := make([]byte, 100)
	PutRequest(req, 42, 2, 1)
	reply := append([]byte(nil), req...)
	reply[5] = typeReply // a reply must never be answered: two responders would ping-pong
	long := make([]byte, 2000)
	copy(long, req)
	junk := map[string][]byte{
		"junk":             []byte("GET / HTTP/1.0\r\n\r\n"),
		"truncated probe":  req[:80],
		"reply":            reply,
		"oversized":        long,
		"length says more": append(append([]byte(nil), req[:6]...), 0x05, 0xc0, 0, 0),
		"empty":            {},
		"magic only":       []byte(Magic),
		"bad version":      append([]byte(Magic), 9, 1, 0, 64),
	}
	before := r.Counters.Malformed[UDP].Load()
	for name, p := range junk {
		if rep := exchange(t, c, p, 150*time.Millisecond); rep != nil {
			t.Errorf("%s: got a %d-byte reply", name, len(rep))
		}
	}
	if got := r.Counters.Malformed[UDP].Load() - before; got != uint64(len(junk)) {
		t.Errorf("malformed counter rose by %d, want %d", got, len(junk))
	}
	if req, rep := r.Counters.Requests[UDP].Load(), r.Counters.Replies[UDP].Load(); req != 3 || rep != 3 {
		t.Errorf("requests %d replies %d, want 3 and 3", req, rep)
	}
}

func TestResponderRateLimitsAFlood(t *testing.T) {
	r := startResponder(t, ResponderConfig{RateLimit: 50, RateBurst: 10})
	c, err := net.DialUDP("udp", nil, r.UDPAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var got int
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, 256)
		for {
			c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
			if _, err := c.Read(buf); err != nil {
				return
			}
			got++
		}
	}()
	const flood = 2000
	req := make([]byte, HeaderLen)
	start := time.Now()
	for i := range flood {
		PutRequest(req, 7, uint32(i+1), time.Now().UnixNano())
		c.Write(req)
		if i%100 == 99 {
			time.Sleep(time.Millisecond) // let the responder keep up: count, not drop in the kernel
		}
	}
	took := time.Since(start)
	wg.Wait()
	// The bucket allows its burst plus the rate over the flood's duration.
	allowed := 10 + int(50*took.Seconds()) + 2
	limited := r.Counters.RateLimited[UDP].Load()
	reqs := r.Counters.Requests[UDP].Load()
	t.Logf("flood of %d in %v: %d requests seen, %d replies, %d rate-limited (allowed ≤ %d)", flood, took, reqs, got, limited, allowed)
	if got > allowed || got < 10 {
		t.Errorf("%d replies to a flood; the bucket allows %d", got, allowed)
	}
	if limited+uint64(got) != reqs || reqs < flood/2 {
		t.Errorf("requests %d != replies %d + limited %d", reqs, got, limited)
	}
}

func TestResponderTCP(t *testing.T) {
	r := startResponder(t, ResponderConfig{RateLimit: 1000, RateBurst: 100, MaxConnections: 2})
	addr := r.TCPAddr().String()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i, size := range []int{HeaderLen, 300, HeaderLen} {
		req := make([]byte, size)
		PutRequest(req, 9, uint32(i+1), time.Now().UnixNano())
		c.Write(req)
		rep := make([]byte, size)
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, err := io.ReadFull(c, rep); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if h, err := ParseReply(rep); err != nil || h.Seq != uint32(i+1) || h.Rx != uint32(i+1) {
			t.Errorf("frame %d: %+v %v", i, h, err)
		}
	}
	// A third connection beyond max_connections (2) is closed at once.
	c2, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	c3, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c3.Close()
	c3.SetReadDeadline(time.Now().Add(2 * time.Second))
	if n, err := c3.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("connection over the limit: read %d, %v; want EOF", n, err)
	}
	if r.Counters.ConnRefused.Load() != 1 {
		t.Errorf("refused = %d", r.Counters.ConnRefused.Load())
	}
	// Junk ends the connection unanswered.
	c2.Write([]byte("SSH-2.0-OpenSSH_9.2\r\n" + string(make([]byte, 64))))
	c2.SetReadDeadline(time.Now().Add(2 * time.Second))
	// EOF, or a reset because the junk was left unread: closed either way.
	if n, err := c2.Read(make([]byte, 256)); err == nil || n != 0 {
		t.Errorf("junk on TCP: read %d, %v; want the connection closed", n, err)
	}
	if r.Counters.Malformed[TCP].Load() != 1 {
		t.Errorf("malformed tcp = %d", r.Counters.Malformed[TCP].Load())
	}
}

// recorder is a Handler that keeps everything.
type recorder struct {
	mu         sync.Mutex
	sent       [nProtos]int
	replies    [nProtos]int
	lost       [nProtos][3]int
	reconnects int
	clock      ClockFilter
	rtts       []time.Duration
	onSample   func(*Sample)
}

func (r *recorder) Sent(p Proto) { r.mu.Lock(); r.sent[p]++; r.mu.Unlock() }
func (r *recorder) Reply(p Proto, rtt time.Duration, s Sample) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.replies[p]++
	if p == UDP {
		r.clock.Add(s.T2-s.T1, s.T4-s.T3)
		r.rtts = append(r.rtts, rtt)
		if r.onSample != nil {
			r.onSample(&s)
		}
	}
}
func (r *recorder) Lost(p Proto, d Direction) { r.mu.Lock(); r.lost[p][d]++; r.mu.Unlock() }
func (r *recorder) Reordered(Direction)       {}
func (r *recorder) Reconnected()              { r.mu.Lock(); r.reconnects++; r.mu.Unlock() }

func newEngine(t *testing.T) *Engine {
	t.Helper()
	e, err := NewEngine(testutil.Logger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// A responder whose clock is 50 ms ahead: the probe sees the offset and
// flags the clocks, while the RTT, which needs no common clock, stays right.
func TestEngineDetectsClockOffset(t *testing.T) {
	r := startResponder(t, ResponderConfig{RateLimit: 1000, RateBurst: 100, ClockOffset: 50 * time.Millisecond})
	e := newEngine(t)
	ap := netip.MustParseAddrPort(r.UDPAddr().String())
	h := &recorder{}
	s := Settings{Interval: 10 * time.Millisecond, Timeout: time.Second, Size: HeaderLen}
	s.Protos[UDP] = true
	e.Add(ap, ap, s, h)
	time.Sleep(500 * time.Millisecond)
	h.mu.Lock()
	defer h.mu.Unlock()
	est, ok := h.clock.Estimate(0)
	t.Logf("replies %d, offset %v ± %v, trustworthy %v", h.replies[UDP], est.Offset, est.Uncertainty, est.Trustworthy)
	if !ok || h.replies[UDP] < 20 {
		t.Fatalf("%d replies", h.replies[UDP])
	}
	if d := est.Offset - 50*time.Millisecond; d < -2*time.Millisecond || d > 2*time.Millisecond || est.Trustworthy {
		t.Errorf("offset %v trustworthy %v, want 50ms and false", est.Offset, est.Trustworthy)
	}
	for _, rtt := range h.rtts {
		if rtt > 20*time.Millisecond || rtt < 0 {
			t.Errorf("loopback RTT %v", rtt)
		}
	}
}

// The persistent TCP flow is re-established after reconnect_after
// consecutive losses; connect probes to a closed port are lost.
func TestEngineTCPReconnectAndConnect(t *testing.T) {
	r := startResponder(t, ResponderConfig{RateLimit: 1000, RateBurst: 100})
	e := newEngine(t)
	ap := netip.MustParseAddrPort(r.TCPAddr().String())
	closed := netip.AddrPortFrom(ap.Addr(), uint16(testutil.FreePort(t)))
	good, bad := &recorder{}, &recorder{}
	s := Settings{Interval: 20 * time.Millisecond, Timeout: 15 * time.Millisecond, Size: HeaderLen, ReconnectAfter: 3}
	s.Protos[TCP], s.Protos[TCPConnect] = true, true
	p := e.Add(ap, ap, s, good)
	e.Add(closed, closed, s, bad)
	time.Sleep(400 * time.Millisecond)
	good.mu.Lock()
	t.Logf("clean: sent %v replies %v lost %v", good.sent, good.replies, good.lost)
	if good.replies[TCP] < 10 || good.replies[TCPConnect] < 10 || good.reconnects != 0 {
		t.Errorf("clean peer: %d tcp replies, %d connects, %d reconnects", good.replies[TCP], good.replies[TCPConnect], good.reconnects)
	}
	good.mu.Unlock()
	bad.mu.Lock()
	if bad.replies[TCPConnect] != 0 || bad.lost[TCPConnect][DirUnknown] < 10 {
		t.Errorf("closed port: %d connects answered, %d lost", bad.replies[TCPConnect], bad.lost[TCPConnect][DirUnknown])
	}
	bad.mu.Unlock()

	// Now the responder stops answering this source: a rate of ~0.
	r.limiter.mu.Lock()
	r.limiter.rate, r.limiter.burst = 1e-12, 1
	clear(r.limiter.buckets)
	r.limiter.mu.Unlock()
	time.Sleep(600 * time.Millisecond)
	good.mu.Lock()
	defer good.mu.Unlock()
	t.Logf("silenced: %d tcp lost, %d reconnects", good.lost[TCP][DirUnknown], good.reconnects)
	if good.reconnects < 2 {
		t.Errorf("%d reconnects after %d losses with reconnect_after 3", good.reconnects, good.lost[TCP][DirUnknown])
	}
	e.Remove(p)
}
