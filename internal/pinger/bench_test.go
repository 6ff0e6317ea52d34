package pinger

import (
	"net/netip"
	"testing"
	"time"
)

// counter is a Handler that only counts, as cheap as the probe's own.
type counter struct{ sent, replies, lost int }

func (c *counter) Sent()                    { c.sent++ }
func (c *counter) Reply(time.Duration, int) { c.replies++ }
func (c *counter) Duplicate()               {}
func (c *counter) Lost()                    { c.lost++ }
func (c *counter) SendError(string)         {}

// BenchmarkProbeLoopback is one probe's path through the engine: send,
// read the reply in a batch, match it, expire it, over 10 000 loopback
// targets, syscalls included. The scheduler goroutine stays asleep (no
// target is Added), so the loop drives the engine's steps itself, as the
// scheduler's batch does. allocs/op must stay 0.
func BenchmarkProbeLoopback(b *testing.B) {
	e := newEngine(b, Options{Families: []Family{IPv4}})
	if _, ok := e.drained[IPv4]; !ok {
		b.Skip("no kernel timestamps: the engine reads with a receiver goroutine")
	}
	const n = 10000
	var c counter
	ts := make([]*Target, n)
	for i := range ts {
		ts[i] = &Target{addr: netip.AddrFrom4([4]byte{127, 78, byte(i / 250), byte(i%250 + 1)}), fam: IPv4, h: &c,
			set: Settings{Interval: time.Second, Timeout: 50 * time.Millisecond, Size: 56}}
	}
	pkt, oob := make([]byte, icmpHeaderLen+65535), make([]byte, 0, 128)
	e.mu.Lock()
	defer e.mu.Unlock()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		now := e.mono()
		e.sendLocked(ts[i%n], now, pkt, oob)
		if i%batchLen == batchLen-1 {
			e.drainLocked()
			for e.expiry.Len() > 0 && e.expiry.Peek() <= now {
				e.expireLocked(e.expiry.Pop())
			}
		}
	}
	b.StopTimer()
	e.drainLocked()
	if b.N > 10*batchLen && c.replies < c.sent*9/10 {
		b.Fatalf("%d replies to %d probes", c.replies, c.sent)
	}
}
