package pinger

import (
	"fmt"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/smokemon/smokemon/internal/testutil"
)

// recorder is a Handler that keeps everything it is told.
type recorder struct {
	mu                        sync.Mutex
	sent, replies, dups, lost int
	rtts                      []time.Duration
	ttls                      []int
	errs                      map[string]int
}

func (r *recorder) Sent()      { r.mu.Lock(); r.sent++; r.mu.Unlock() }
func (r *recorder) Duplicate() { r.mu.Lock(); r.dups++; r.mu.Unlock() }
func (r *recorder) Lost()      { r.mu.Lock(); r.lost++; r.mu.Unlock() }
func (r *recorder) Reply(rtt time.Duration, ttl int) {
	r.mu.Lock()
	r.replies++
	r.rtts = append(r.rtts, rtt)
	r.ttls = append(r.ttls, ttl)
	r.mu.Unlock()
}
func (r *recorder) SendError(reason string) {
	r.mu.Lock()
	if r.errs == nil {
		r.errs = map[string]int{}
	}
	r.errs[reason]++
	r.mu.Unlock()
}

func (r *recorder) snapshot() recorder {
	r.mu.Lock()
	defer r.mu.Unlock()
	return recorder{sent: r.sent, replies: r.replies, dups: r.dups, lost: r.lost, rtts: append([]time.Duration(nil), r.rtts...), ttls: append([]int(nil), r.ttls...), errs: r.errs}
}

// newEngine opens an engine or skips: without CAP_NET_RAW and with the
// default ping_group_range no ICMP socket can be had.
func newEngine(t testing.TB, opts Options) *Engine {
	t.Helper()
	e, err := New(testutil.Logger(), opts)
	if err != nil {
		t.Skipf("no ICMP socket on this machine (needs root/CAP_NET_RAW or net.ipv4.ping_group_range): %v", err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func TestLoopbackRTTAndTTL(t *testing.T) {
	e := newEngine(t, Options{Families: []Family{IPv4}})
	var r recorder
	e.Add(netip.MustParseAddr("127.0.0.1"), Settings{Interval: 50 * time.Millisecond, Timeout: 50 * time.Millisecond, Size: 56}, &r)
	time.Sleep(600 * time.Millisecond)
	s := r.snapshot()
	if s.replies < 8 || s.lost != 0 || s.dups != 0 {
		t.Fatalf("sent %d replies %d lost %d dups %d", s.sent, s.replies, s.lost, s.dups)
	}
	for i, rtt := range s.rtts {
		if rtt <= 0 || rtt > 20*time.Millisecond {
			t.Errorf("rtt[%d] = %v, implausible on loopback", i, rtt)
		}
		if s.ttls[i] != 64 {
			t.Errorf("ttl[%d] = %d, want 64 (Linux default, no hop)", i, s.ttls[i])
		}
	}
	if !e.Status(IPv4).Up || !e.Status(IPv4).KernelTimestamps {
		t.Errorf("status = %+v, want up with kernel timestamps", e.Status(IPv4))
	}
}

func TestIPv6Loopback(t *testing.T) {
	e := newEngine(t, Options{Families: []Family{IPv6}})
	if !e.Status(IPv6).Up {
		t.Skipf("no IPv6 ICMP socket: %v", e.Status(IPv6).Err)
	}
	var r recorder
	e.Add(netip.MustParseAddr("::1"), Settings{Interval: 50 * time.Millisecond, Timeout: 50 * time.Millisecond, Size: 16, TOS: 0xb8}, &r)
	time.Sleep(400 * time.Millisecond)
	s := r.snapshot()
	if s.replies < 5 || s.lost != 0 {
		t.Fatalf("sent %d replies %d lost %d errs %v", s.sent, s.replies, s.lost, s.errs)
	}
	if s.ttls[0] != 64 {
		t.Errorf("hop limit = %d, want 64", s.ttls[0])
	}
}

// A reply later than the timeout is a lost probe, never a latency.
func TestLateReplyIsLostNotLatency(t *testing.T) {
	e := newEngine(t, Options{Families: []Family{IPv4}})
	var r recorder
	e.Add(netip.MustParseAddr("127.0.0.1"), Settings{Interval: 50 * time.Millisecond, Timeout: time.Microsecond, Size: 56}, &r)
	time.Sleep(400 * time.Millisecond)
	s := r.snapshot()
	if s.replies != 0 {
		t.Errorf("%d replies observed as latency despite a 1µs timeout", s.replies)
	}
	if s.lost < s.sent-1 || s.sent < 5 {
		t.Errorf("sent %d lost %d: every probe should be lost", s.sent, s.lost)
	}
	if e.Counters.Late.Load() == 0 {
		t.Error("late replies not counted")
	}
}

// 1000 targets on one socket: every reply reaches its own target.
func TestThousandTargetsNoCrossTalk(t *testing.T) {
	if testing.Short() {
		t.Skip("short mode")
	}
	e := newEngine(t, Options{Families: []Family{IPv4}})
	const n = 1000
	recs := make([]*recorder, n)
	for i := range n {
		recs[i] = &recorder{}
		addr := netip.MustParseAddr(fmt.Sprintf("127.1.%d.%d", i/250, i%250+1))
		e.Add(addr, Settings{Interval: 500 * time.Millisecond, Timeout: 400 * time.Millisecond, Size: 56}, recs[i])
	}
	time.Sleep(2300 * time.Millisecond)
	var total int
	for i, r := range recs {
		s := r.snapshot()
		total += s.sent
		// At most one probe may still be in flight.
		if s.sent < 3 || s.replies < s.sent-1 || s.lost != 0 || s.dups != 0 || len(s.errs) != 0 {
			t.Errorf("target %d: sent %d replies %d lost %d dups %d errs %v", i, s.sent, s.replies, s.lost, s.dups, s.errs)
		}
	}
	if m, f := e.Counters.Mismatch.Load(), e.Counters.Foreign.Load(); m != 0 || f != 0 {
		t.Errorf("replies from the wrong address: %d, foreign tokens: %d", m, f)
	}
	t.Logf("%d probes to %d targets, all matched", total, n)
}

// Sequence numbers in flight are never reused, even across the 16-bit wrap.
func TestSequenceSkipsNumbersInFlight(t *testing.T) {
	e := newEngine(t, Options{Families: []Family{IPv4}})
	var r recorder
	tg := &Target{addr: netip.MustParseAddr("127.0.0.1"), fam: IPv4, h: &r,
		set: Settings{Interval: time.Hour, Timeout: time.Second, Size: 8}}
	e.mu.Lock()
	f := e.inflight[famIndex(IPv4)]
	f.seq = 65533
	busy := &probe{t: tg, serial: 1, deadline: e.mono() + int64(time.Hour)}
	for _, s := range []uint16{65534, 65535, 0} {
		f.bySeq[s] = busy
	}
	pkt, oob := make([]byte, 1024), make([]byte, 0, 64)
	e.sendLocked(tg, e.mono(), pkt, oob)
	took := f.bySeq[1] != nil
	e.mu.Unlock()
	if !took || f.seq != 1 {
		t.Fatalf("next sequence = %d, want 1 (65534, 65535 and 0 are in flight)", f.seq)
	}
}

func TestDatagramSocket(t *testing.T) {
	// The unprivileged ping socket needs our group in ping_group_range.
	b, err := os.ReadFile("/proc/sys/net/ipv4/ping_group_range")
	if err != nil {
		t.Skip(err)
	}
	var lo, hi int
	fmt.Sscanf(string(b), "%d %d", &lo, &hi)
	if gid := os.Getgid(); gid < lo || gid > hi {
		t.Skipf("net.ipv4.ping_group_range %q excludes gid %d; the lab tests cover this socket in a namespace", b, gid)
	}
	e := newEngine(t, Options{Families: []Family{IPv4}, Socket: KindDgram})
	var r recorder
	e.Add(netip.MustParseAddr("127.0.0.1"), Settings{Interval: 50 * time.Millisecond, Timeout: 50 * time.Millisecond, Size: 56}, &r)
	time.Sleep(300 * time.Millisecond)
	if s := r.snapshot(); s.replies < 3 || s.ttls[0] != 64 {
		t.Fatalf("dgram: sent %d replies %d ttls %v", s.sent, s.replies, s.ttls)
	}
}

func TestRemoveStopsProbing(t *testing.T) {
	e := newEngine(t, Options{Families: []Family{IPv4}})
	var r recorder
	tg := e.Add(netip.MustParseAddr("127.0.0.1"), Settings{Interval: 20 * time.Millisecond, Timeout: 20 * time.Millisecond, Size: 8}, &r)
	time.Sleep(150 * time.Millisecond)
	e.Remove(tg)
	before := r.snapshot().sent
	time.Sleep(100 * time.Millisecond)
	if after := r.snapshot().sent; after != before || before == 0 {
		t.Errorf("sent %d before remove, %d after", before, after)
	}
}

// Targets of one interval are spread evenly, not sent in a burst: the
// engine hands them to its queue in the order they were added.
func TestSpreadEvenly(t *testing.T) {
	e := &Engine{}
	var ts []*Target
	for range 4 {
		ts = append(ts, e.Add(netip.MustParseAddr("127.0.0.1"), Settings{Interval: time.Second}, nil))
	}
	e.sendQ.Wait(int64(10 * time.Second)) // spreads
	for i := 1; i < len(ts); i++ {
		if d := ts[i].sched.Next() - ts[i-1].sched.Next(); (d+int64(time.Second))%int64(time.Second) != int64(250*time.Millisecond) {
			t.Fatalf("target %d is due %v after target %d, want 250ms (mod the interval)", i, time.Duration(d), i-1)
		}
	}
}

// More due than the machine can send (20 000 targets every 10 ms: two
// million probes a second) must neither starve loss accounting nor keep
// Close waiting: the send loop once never left such a batch, so no probe
// ever expired, all 65536 sequence numbers filled up and Close hung.
func TestOverloadStillExpiresAndCloses(t *testing.T) {
	e := newEngine(t, Options{})
	var rs []*recorder
	for i := range 20000 {
		r := &recorder{}
		rs = append(rs, r)
		e.Add(netip.AddrFrom4([4]byte{127, 79, byte(i / 250), byte(i%250 + 1)}), Settings{Interval: 10 * time.Millisecond, Timeout: 10 * time.Millisecond, Size: 56}, r)
	}
	var done int
	// Eventually, not WaitFor: a failure must still reach the Close below
	// (the engine's cleanup Close returns at once once it has run).
	expired := testutil.Eventually(20*time.Second, 100*time.Millisecond, func() bool {
		done = 0
		for _, r := range rs {
			s := r.snapshot()
			done += s.replies + s.lost
		}
		return done > 70000 // more than 65536: sequence numbers were freed and reused
	})
	closed := make(chan struct{})
	go func() { e.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatalf("Close did not return within 10 s of an overloaded engine (%d probes answered or lost)", done)
	}
	if !expired {
		t.Errorf("only %d probes answered or declared lost in 20 s of overload, want > 70000", done)
	}
	var errs map[string]int
	for _, r := range rs {
		for k, v := range r.snapshot().errs {
			if errs == nil {
				errs = map[string]int{}
			}
			errs[k] += v
		}
	}
	if errs["too_many_in_flight"] > 0 {
		t.Errorf("send errors %v: sequence numbers ran out", errs)
	}
}
