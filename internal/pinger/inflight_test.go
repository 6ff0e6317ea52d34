package pinger

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// Deadlines pushed mostly in order (one timeout) with some earlier ones
// (shorter timeouts) come out sorted, across many FIFO compactions.
func TestExpiryQueueOrder(t *testing.T) {
	var q expiryQueue
	var want []int64
	now := int64(0)
	for i := range 20000 {
		now += rand.Int64N(3)
		d := now + 1000
		if rand.IntN(5) == 0 {
			d = now + rand.Int64N(1000) // a shorter timeout
		}
		q.Push(expiry{deadline: d, serial: uint32(i)})
		want = append(want, d)
		if rand.IntN(3) == 0 { // pop what is due at now, as the scheduler does
			slices.Sort(want)
			for q.Len() > 0 && q.Peek() <= now {
				if got := q.Pop().deadline; got != want[0] {
					t.Fatalf("popped %d, want %d", got, want[0])
				}
				want = want[1:]
			}
		}
	}
	slices.Sort(want)
	for _, w := range want {
		if got := q.Pop().deadline; got != w {
			t.Fatalf("popped %d, want %d", got, w)
		}
	}
	if q.Len() != 0 {
		t.Fatalf("%d left", q.Len())
	}
	// About 1000 are queued at a time (deadlines 1000 ahead, one push per
	// tick): the consumed part must have been slid off, not kept.
	if cap(q.fifo) > 8192 {
		t.Errorf("FIFO grew to %d for about 1000 queued at a time", cap(q.fifo))
	}
}

// A sequence number is free again once its probe is gone, and take wraps
// past 65535 to 0.
func TestFlightTakeWraps(t *testing.T) {
	var f flight
	f.seq = 65534
	f.bySeq[65535] = &probe{}
	if s, ok := f.take(); !ok || s != 0 {
		t.Fatalf("take = %d, %v; want 0 (65535 is busy)", s, ok)
	}
	for i := range f.bySeq {
		f.bySeq[i] = &probe{}
	}
	if _, ok := f.take(); ok {
		t.Fatal("take found a number with all 65536 busy")
	}
}
