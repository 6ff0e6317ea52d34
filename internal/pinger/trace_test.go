package pinger

import (
	"context"
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/smokemon/smokemon/internal/lab"
	"github.com/smokemon/smokemon/internal/testutil"
)

// newLabTracer opens a tracer whose sockets live in h's namespace.
func newLabTracer(t *testing.T, h *lab.Host) *Tracer {
	t.Helper()
	var tr *Tracer
	if err := h.Do(func() (err error) { tr, err = NewTracer(testutil.Logger()); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

func ttlRange(n int) []int {
	ttls := make([]int, n)
	for i := range ttls {
		ttls[i] = i + 1
	}
	return ttls
}

// One batch of TTL 1..5 from the client: the gateway and the ISP answer Time
// Exceeded, the destination Echo Reply for every TTL from 3 on.
func TestTraceLabPath(t *testing.T) {
	tp := lab.Topology(t)
	tr := newLabTracer(t, tp.Client)
	for _, v6 := range []bool{false, true} {
		path := tp.Path(0, v6)
		dst := path[len(path)-1]
		res := tr.Probe(context.Background(), dst, TraceSettings{Timeout: time.Second, Size: 56}, ttlRange(5))
		for i, r := range res {
			wantKind, wantFrom := EchoReply, dst
			if i < len(path)-1 {
				wantKind, wantFrom = TimeExceeded, path[i]
			}
			if r.TTL != i+1 || r.Kind != wantKind || r.From != wantFrom || r.Err != "" {
				t.Errorf("%s ttl %d: %+v, want kind %d from %s", dst, i+1, r, wantKind, wantFrom)
			}
			if r.RTT <= 0 || r.RTT > 50*time.Millisecond {
				t.Errorf("%s ttl %d: rtt %v implausible in the lab", dst, i+1, r.RTT)
			}
		}
	}
	if n := tr.Counters.Foreign.Load() + tr.Counters.Mismatch.Load(); n != 0 {
		t.Errorf("%d unmatched answers", n)
	}
}

// A destination the ISP has no route to: Time Exceeded from the gateway, then
// Destination Unreachable from the ISP for every later TTL.
func TestTraceUnreachable(t *testing.T) {
	tp := lab.Topology(t)
	tr := newLabTracer(t, tp.Client)
	for _, dst := range []string{"198.18.200.2", "2001:2:0:c8::2"} {
		v6 := netip.MustParseAddr(dst).Is6()
		res := tr.Probe(context.Background(), netip.MustParseAddr(dst), TraceSettings{Timeout: time.Second, Size: 8}, ttlRange(4))
		if res[0].Kind != TimeExceeded || res[0].From != tp.Addr(tp.Gateway, v6) {
			t.Errorf("%s ttl 1: %+v, want time exceeded from the gateway", dst, res[0])
		}
		for _, r := range res[1:] {
			if r.Kind != Unreachable || r.From != tp.Addr(tp.ISP, v6) {
				t.Errorf("%s ttl %d: %+v, want unreachable from the ISP", dst, r.TTL, r)
			}
		}
	}
}

// A silent destination costs exactly one timeout; a closed tracer returns at once.
func TestTraceTimeoutBounded(t *testing.T) {
	tp := lab.Topology(t)
	tr := newLabTracer(t, tp.Client)
	// The ISP discards silently: no Time Exceeded either, as a blackhole
	// route is looked up before the TTL is.
	tp.ISP.MustRun(t, "ip", "route", "add", "blackhole", "198.18.201.0/24")
	dst := netip.MustParseAddr("198.18.201.2")
	begin := time.Now()
	res := tr.Probe(context.Background(), dst, TraceSettings{Timeout: 200 * time.Millisecond, Size: 8}, ttlRange(4))
	took := time.Since(begin)
	if took < 200*time.Millisecond || took > 400*time.Millisecond {
		t.Errorf("batch took %v, want the 200ms timeout", took)
	}
	if res[0].Kind != TimeExceeded || res[1].Kind != NoReply || res[2].Kind != NoReply || res[3].Kind != NoReply {
		t.Errorf("results %+v: want the gateway, then silence", res)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	begin = time.Now()
	tr.Probe(ctx, dst, TraceSettings{Timeout: 10 * time.Second, Size: 8}, ttlRange(4))
	if took := time.Since(begin); took > time.Second {
		t.Errorf("a cancelled batch took %v", took)
	}
	go func() { time.Sleep(50 * time.Millisecond); tr.Close() }()
	begin = time.Now()
	tr.Probe(context.Background(), dst, TraceSettings{Timeout: 10 * time.Second, Size: 8}, ttlRange(4))
	if took := time.Since(begin); took > time.Second {
		t.Errorf("a batch outlived Close by %v", took)
	}
}

// The tracer and the ping engine share a namespace and a destination without
// seeing each other's packets: each socket's filter is its own.
func TestTraceAndPingEngineApart(t *testing.T) {
	tp := lab.Topology(t)
	tr := newLabTracer(t, tp.Client)
	var e *Engine
	if err := tp.Client.Do(func() (err error) { e, err = New(testutil.Logger(), Options{Socket: KindRaw}); return err }); err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	dst := tp.Addr(tp.Dst[0], false)
	var r recorder
	// Generous timeouts: this test is about cross-talk, and a VM stall of a
	// few hundred milliseconds must not turn into a loss it would blame on it.
	e.Add(dst, Settings{Interval: 5 * time.Millisecond, Timeout: 2 * time.Second, Size: 56}, &r)
	answered := 0
	for range 40 {
		for _, x := range tr.Probe(context.Background(), dst, TraceSettings{Timeout: 2 * time.Second, Size: 56}, ttlRange(3)) {
			if x.Kind != NoReply {
				answered++
			}
		}
	}
	testutil.Eventually(3*time.Second, 20*time.Millisecond, func() bool { return r.snapshot().replies >= 20 })
	s := r.snapshot()
	if answered != 120 || s.lost != 0 || s.replies < 20 {
		t.Errorf("tracer answered %d/120; ping sent %d, replies %d, lost %d", answered, s.sent, s.replies, s.lost)
	}
	for what, n := range map[string]uint64{
		"ping foreign": e.Counters.Foreign.Load(), "ping mismatch": e.Counters.Mismatch.Load(),
		"trace foreign": tr.Counters.Foreign.Load(), "trace mismatch": tr.Counters.Mismatch.Load(), "trace late": tr.Counters.Late.Load(),
	} {
		if n != 0 {
			t.Errorf("%s = %d, want 0", what, n)
		}
	}
}

// Routers may quote only the first 8 bytes of an IPv4 probe: the answer is
// matched by identifier and sequence alone.
func TestParseTraceReplyShortQuote(t *testing.T) {
	probe := buildEcho(make([]byte, 64), IPv4, 0x1234, 77, 1, 2, 16)
	inner := make([]byte, 20)
	inner[0], inner[9] = 0x45, 1
	copy(inner[16:], []byte{198, 18, 10, 2})
	outer := make([]byte, 20)
	outer[0], outer[9] = 0x45, 1
	pkt := append(append(outer, icmpv4TimeExceeded, 0, 0, 0, 0, 0, 0, 0), append(inner, probe[:8]...)...)
	a, ok := parseTraceReply(pkt, IPv4, true)
	if !ok || a.kind != TimeExceeded || a.id != 0x1234 || a.seq != 77 || a.hasToken || a.quotedDst != netip.MustParseAddr("198.18.10.2") {
		t.Fatalf("parsed %+v ok=%v", a, ok)
	}
	// With the whole probe quoted the token is checked too.
	pkt = append(append(outer, icmpv4Unreachable, 1, 0, 0, 0, 0, 0, 0), append(inner, probe[:24]...)...)
	if a, ok = parseTraceReply(pkt, IPv4, true); !ok || a.kind != Unreachable || a.code != 1 || !a.hasToken || a.nonce != 1 || a.serial != 2 {
		t.Fatalf("parsed %+v ok=%v", a, ok)
	}
	// A quoted TCP segment is not ours.
	inner[9] = 6
	pkt = append(append(outer, icmpv4TimeExceeded, 0, 0, 0, 0, 0, 0, 0), append(inner, probe[:8]...)...)
	if _, ok = parseTraceReply(pkt, IPv4, true); ok {
		t.Fatal("an error quoting TCP was accepted")
	}
}

func FuzzParseTraceReply(f *testing.F) {
	probe := buildEcho(make([]byte, 64), IPv6, 9, 10, 11, 12, 16)
	ip6 := make([]byte, 40)
	ip6[0], ip6[6] = 0x60, 58
	f.Add(append(append([]byte{icmpv6TimeExceeded, 0, 0, 0, 0, 0, 0, 0}, ip6...), probe...), true)
	f.Add(probe, true)
	v4 := make([]byte, 28)
	v4[0], v4[9], v4[20] = 0x45, 1, icmpv4EchoReply
	binary.BigEndian.PutUint16(v4[24:], 9)
	f.Add(v4, false)
	f.Fuzz(func(t *testing.T, b []byte, v6 bool) {
		fam := IPv4
		if v6 {
			fam = IPv6
		}
		parseTraceReply(b, fam, !v6)
	})
}
