package mesh

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// ResponderConfig configures the listeners; a zero port means no listener.
type ResponderConfig struct {
	Listen         string // IP to bind; empty = all
	UDPPort        int
	TCPPort        int
	RateLimit      float64 // requests per second per source address
	RateBurst      int
	MaxConnections int
	// ClockOffset is added to every timestamp the responder writes. Zero in
	// production; tests use it to play a node whose clock is wrong.
	ClockOffset time.Duration
}

// Proto indexes per-protocol counters.
type Proto uint8

const (
	UDP Proto = iota
	TCP
	TCPConnect
	nProtos
)

func (p Proto) String() string {
	switch p {
	case UDP:
		return "udp"
	case TCP:
		return "tcp"
	}
	return "tcp_connect"
}

// ResponderCounters count what the responder did, per protocol (UDP, TCP).
type ResponderCounters struct {
	Requests    [2]atomic.Uint64 // well-formed requests
	Replies     [2]atomic.Uint64
	RateLimited [2]atomic.Uint64 // well-formed, not answered: over the source's rate
	Malformed   [2]atomic.Uint64 // not smokemon's format: never answered
	ConnRefused atomic.Uint64    // TCP connections closed at once: max_connections reached
}

// Responder answers mesh probes. It only ever answers a well-formed request,
// with a reply of the same size, within its sender's rate.
type Responder struct {
	logger  *slog.Logger
	cfg     ResponderConfig
	udp     *net.UDPConn
	tcp     net.Listener
	kernTS  bool
	limiter *limiter
	slots   chan struct{}

	Counters *ResponderCounters

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	done  sync.WaitGroup
	stop  chan struct{}
}

// NewResponder opens the configured listeners. It fails if one cannot be
// opened (a port in use), with nothing left open. counters may be shared
// with a previous responder, so a reload does not reset them.
func NewResponder(logger *slog.Logger, cfg ResponderConfig, counters *ResponderCounters) (*Responder, error) {
	if counters == nil {
		counters = new(ResponderCounters)
	}
	r := &Responder{
		Counters: counters,
		logger:   logger,
		cfg:      cfg,
		limiter:  newLimiter(cfg.RateLimit, cfg.RateBurst),
		slots:    make(chan struct{}, max(cfg.MaxConnections, 1)),
		conns:    map[net.Conn]struct{}{},
		stop:     make(chan struct{}),
	}
	if cfg.UDPPort != 0 {
		addr := net.JoinHostPort(cfg.Listen, strconv.Itoa(cfg.UDPPort))
		ua, err := net.ResolveUDPAddr("udp", addr)
		if err != nil {
			return nil, fmt.Errorf("mesh responder: udp %s: %w", addr, err)
		}
		c, err := net.ListenUDP("udp", ua)
		if err != nil {
			return nil, fmt.Errorf("mesh responder: %w", err)
		}
		r.udp = c
		r.kernTS = kernelTimestamps(c)
	}
	if cfg.TCPPort != 0 {
		addr := net.JoinHostPort(cfg.Listen, strconv.Itoa(cfg.TCPPort))
		l, err := net.Listen("tcp", addr)
		if err != nil {
			if r.udp != nil {
				r.udp.Close()
			}
			return nil, fmt.Errorf("mesh responder: %w", err)
		}
		r.tcp = l
	}
	if r.udp != nil {
		r.done.Add(1)
		go r.serveUDP()
	}
	if r.tcp != nil {
		r.done.Add(1)
		go r.serveTCP()
	}
	return r, nil
}

// UDPAddr and TCPAddr are the bound addresses (nil when not listening).
func (r *Responder) UDPAddr() net.Addr {
	if r.udp == nil {
		return nil
	}
	return r.udp.LocalAddr()
}

func (r *Responder) TCPAddr() net.Addr {
	if r.tcp == nil {
		return nil
	}
	return r.tcp.Addr()
}

// Config is what the responder was opened with.
func (r *Responder) Config() ResponderConfig { return r.cfg }

// KernelTimestamps reports whether UDP receive times come from the kernel.
func (r *Responder) KernelTimestamps() bool { return r.kernTS }

// Close stops the listeners and every connection, and waits for them.
func (r *Responder) Close() error {
	close(r.stop)
	if r.udp != nil {
		r.udp.Close()
	}
	if r.tcp != nil {
		r.tcp.Close()
	}
	r.mu.Lock()
	for c := range r.conns {
		c.Close()
	}
	r.mu.Unlock()
	r.done.Wait()
	return nil
}

func (r *Responder) now() int64 { return time.Now().UnixNano() + int64(r.cfg.ClockOffset) }

// maxSessions bounds the responder's memory whatever the senders do.
const (
	maxSessions = 16384
	sessionIdle = time.Minute
)

type sessionKey struct {
	from    netip.AddrPort
	session uint32
}

// serveUDP is the one goroutine of the UDP responder: it reuses one buffer,
// and the session table is its alone.
func (r *Responder) serveUDP() {
	defer r.done.Done()
	buf := make([]byte, MaxLen+1) // one more: a longer datagram is detected
	oob := make([]byte, 128)
	sessions := map[sessionKey]*sessionState{}
	for {
		n, oobn, _, from, err := r.udp.ReadMsgUDPAddrPort(buf, oob)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		t2 := rxTimestamp(oob[:oobn])
		if t2 == 0 {
			t2 = time.Now().UnixNano()
		}
		t2 += int64(r.cfg.ClockOffset)
		pkt := buf[:n]
		h, err := ParseRequest(pkt)
		if err != nil {
			r.Counters.Malformed[UDP].Add(1)
			continue
		}
		r.Counters.Requests[UDP].Add(1)
		if !r.limiter.allow(from.Addr().Unmap(), t2) {
			r.Counters.RateLimited[UDP].Add(1)
			continue
		}
		key := sessionKey{from, h.Session}
		st := sessions[key]
		if st == nil {
			if len(sessions) >= maxSessions {
				evictSessions(sessions, t2)
			}
			st = &sessionState{}
			if len(sessions) < maxSessions {
				sessions[key] = st
			}
		}
		st.last = t2
		reordered := st.record(h.Seq)
		turnIntoReply(pkt, t2, *st, reordered)
		stampSend(pkt, r.now())
		if _, err := r.udp.WriteToUDPAddrPort(pkt, from); err == nil {
			r.Counters.Replies[UDP].Add(1)
		}
	}
}

func evictSessions(m map[sessionKey]*sessionState, now int64) {
	for k, s := range m {
		if now-s.last > int64(sessionIdle) {
			delete(m, k)
		}
	}
}

// tcpIdle closes a connection that has sent nothing for this long.
const tcpIdle = 2 * time.Minute

func (r *Responder) serveTCP() {
	defer r.done.Done()
	for {
		c, err := r.tcp.Accept()
		if err != nil {
			select {
			case <-r.stop:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond) // EMFILE and the like: don't spin
			continue
		}
		select {
		case r.slots <- struct{}{}:
		default:
			r.Counters.ConnRefused.Add(1)
			c.Close()
			continue
		}
		r.mu.Lock()
		r.conns[c] = struct{}{}
		r.mu.Unlock()
		r.done.Add(1)
		go r.serveConn(c)
	}
}

// serveConn answers the frames of one connection in order. Anything that is
// not a well-formed request ends the connection: a stream cannot resync.
func (r *Responder) serveConn(c net.Conn) {
	defer r.done.Done()
	defer func() {
		c.Close()
		r.mu.Lock()
		delete(r.conns, c)
		r.mu.Unlock()
		<-r.slots
	}()
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	var from netip.Addr
	if ap, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil {
		from = ap.Addr().Unmap()
	}
	buf := make([]byte, MaxLen)
	var st sessionState
	for {
		c.SetReadDeadline(time.Now().Add(tcpIdle))
		if _, err := io.ReadFull(c, buf[:8]); err != nil {
			return
		}
		n, err := checkPrefix(buf[:8], typeRequest)
		if err != nil {
			r.Counters.Malformed[TCP].Add(1)
			return
		}
		if _, err := io.ReadFull(c, buf[8:n]); err != nil {
			return
		}
		t2 := r.now()
		h, _ := ParseRequest(buf[:n])
		r.Counters.Requests[TCP].Add(1)
		if !r.limiter.allow(from, t2) {
			r.Counters.RateLimited[TCP].Add(1)
			continue
		}
		reordered := st.record(h.Seq)
		turnIntoReply(buf[:n], t2, st, reordered)
		stampSend(buf[:n], r.now())
		c.SetWriteDeadline(time.Now().Add(time.Second))
		if _, err := c.Write(buf[:n]); err != nil {
			return
		}
		r.Counters.Replies[TCP].Add(1)
	}
}

// limiter is a token bucket per source address, shared by both protocols.
type limiter struct {
	rate  float64 // tokens per ns
	burst float64

	mu      sync.Mutex
	buckets map[netip.Addr]*bucket
}

type bucket struct {
	tokens float64
	last   int64
}

const maxBuckets = 16384

func newLimiter(perSecond float64, burst int) *limiter {
	return &limiter{rate: perSecond / 1e9, burst: float64(max(burst, 1)), buckets: map[netip.Addr]*bucket{}}
}

func (l *limiter) allow(a netip.Addr, now int64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.rate <= 0 {
		return true
	}
	b := l.buckets[a]
	if b == nil {
		if len(l.buckets) >= maxBuckets {
			// A full bucket has been idle long enough to refill: forget it.
			for k, v := range l.buckets {
				if float64(now-v.last)*l.rate >= l.burst {
					delete(l.buckets, k)
				}
			}
			if len(l.buckets) >= maxBuckets {
				return false // a flood of sources: new ones wait
			}
		}
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[a] = b
	}
	b.tokens = min(l.burst, b.tokens+float64(max(now-b.last, 0))*l.rate)
	b.last = max(b.last, now)
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
