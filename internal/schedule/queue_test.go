package schedule

import (
	"slices"
	"testing"
	"time"
)

const sec = int64(time.Second)

func entries(q *Queue[int], iv time.Duration, n int) []*Entry[int] {
	var es []*Entry[int]
	for i := range n {
		e := &Entry[int]{Value: i, Interval: iv, Rank: uint64(i)}
		q.Add(e)
		es = append(es, e)
	}
	return es
}

// drain sends everything due up to until, stepping now to each due time, and
// returns the values in the order they were sent with their send times.
func drain(q *Queue[int], now, until int64) (vals []int, at []int64) {
	for now <= until {
		if e := q.Due(now); e != nil {
			vals, at = append(vals, e.Value), append(at, now)
			q.Sent(e, now)
			continue
		}
		d, ok := q.Wait(now)
		if !ok {
			break
		}
		now += max(int64(d), 1)
	}
	return vals, at
}

// Entries of one interval get phases interval/n apart in Rank order, the
// first slot of each after now: nothing is sent at once, nothing in a burst.
func TestSpreadInRankOrder(t *testing.T) {
	var q Queue[int]
	es := entries(&q, time.Second, 4)
	// Added out of order: Rank decides, not the order of Add.
	es[1].Rank, es[3].Rank = 3, 1
	if e := q.Due(10*sec + sec/2); e != nil {
		t.Fatalf("entry %d due at once after Add", e.Value)
	}
	// Phases 0, 250, 500, 750ms go to ranks 0 to 3: entries 0, 3, 2, 1.
	vals, at := drain(&q, 10*sec+sec/2, 12*sec)
	want := []int{1, 0, 3, 2, 1, 0}
	wantAt := []int64{10_750, 11_000, 11_250, 11_500, 11_750, 12_000}
	for i := range wantAt {
		wantAt[i] *= int64(time.Millisecond)
	}
	if !slices.Equal(vals, want) || !slices.Equal(at, wantAt) {
		t.Errorf("sent %v at %v,\nwant %v at %v", vals, at, want, wantAt)
	}
}

// Two intervals are spread apart: each over its own interval.
func TestSpreadPerInterval(t *testing.T) {
	var q Queue[int]
	a := entries(&q, time.Second, 2)
	b := &Entry[int]{Value: 9, Interval: 10 * time.Second}
	q.Add(b)
	q.Wait(100 * sec)
	if a[0].Next() != 101*sec || a[1].Next() != 100*sec+sec/2 || b.Next() != 110*sec {
		t.Errorf("next sends %v, %v (1s) and %v (10s); want 1m41s, 1m40.5s and 1m50s", time.Duration(a[0].Next()), time.Duration(a[1].Next()), time.Duration(b.Next()))
	}
}

// After a stall (a suspend, an overloaded machine) an entry that missed
// slots is sent once and then keeps its phase: it skips, it does not burst.
func TestSkipDontBurstAfterStall(t *testing.T) {
	var q Queue[int]
	es := entries(&q, 100*time.Millisecond, 1)
	q.Wait(10 * sec)
	if es[0].Next() != 10*sec+sec/10 {
		t.Fatalf("first send at %v", time.Duration(es[0].Next()))
	}
	// The scheduler wakes 350ms late: three slots (10.1, 10.2, 10.3s) missed.
	stalled := 10*sec + 450*int64(time.Millisecond)
	vals, at := drain(&q, stalled, stalled+int64(40*time.Millisecond))
	if len(vals) != 1 || at[0] != stalled {
		t.Fatalf("after the stall sent at %v, want once at %v", at, stalled)
	}
	if es[0].Next() != 10*sec+5*sec/10 {
		t.Errorf("next send %v, want 10.5s: the grid, not 10.55s", time.Duration(es[0].Next()))
	}
}

func TestAfter(t *testing.T) {
	for _, tc := range []struct{ due, now, want int64 }{
		{100, 100, 200}, // on time
		{100, 150, 200}, // late within the interval
		{100, 200, 300}, // the next slot is now: skipped, or it would be sent twice
		{100, 450, 500}, // three slots missed
	} {
		if got := After(tc.due, tc.now, 100); got != tc.want {
			t.Errorf("After(%d, %d, 100) = %d, want %d", tc.due, tc.now, got, tc.want)
		}
	}
}

// MaxSlack lets an entry go early by at most a tenth of its interval.
func TestSlack(t *testing.T) {
	q := Queue[int]{MaxSlack: 4 * time.Millisecond}
	fast := &Entry[int]{Value: 1, Interval: 10 * time.Millisecond}
	q.Add(fast)
	q.Wait(10 * sec)
	due := fast.Next() // 10.01s
	if e := q.Due(due - int64(time.Millisecond) - 1); e != nil {
		t.Errorf("due %v early, more than a tenth of its interval", time.Duration(due-int64(time.Millisecond)+1))
	}
	if e := q.Due(due - int64(time.Millisecond)); e != fast {
		t.Errorf("not due a tenth of its interval early")
	}
	if d, _ := q.Wait(10 * sec); d != 9*time.Millisecond {
		t.Errorf("wait %v, want 9ms (10ms less its slack)", d)
	}
	slow := Queue[int]{MaxSlack: 4 * time.Millisecond}
	e := &Entry[int]{Interval: time.Second}
	slow.Add(e)
	if d, _ := slow.Wait(10 * sec); d != time.Second-4*time.Millisecond {
		t.Errorf("wait %v, want 996ms (at most MaxSlack early)", d)
	}
}

// Remove takes an entry out (sent no more) and spreads the others again,
// none sooner than half an interval after its last send.
func TestRemoveRespreads(t *testing.T) {
	var q Queue[int]
	es := entries(&q, time.Second, 4)
	vals, _ := drain(&q, 10*sec, 11*sec)
	if len(vals) != 4 {
		t.Fatalf("sent %v in the first second", vals)
	}
	q.Remove(es[1])
	q.Remove(es[1]) // twice is harmless
	if q.Len() != 3 {
		t.Fatalf("Len %d after Remove, want 3", q.Len())
	}
	last := map[int]int64{}
	vals, at := drain(&q, 11*sec+1, 14*sec)
	for i, v := range vals {
		if v == 1 {
			t.Fatalf("removed entry sent at %v", time.Duration(at[i]))
		}
		if l, ok := last[v]; ok && at[i]-l < sec/2 {
			t.Fatalf("entry %d sent %v after its last send", v, time.Duration(at[i]-l))
		}
		last[v] = at[i]
	}
	// Phases 0, 1/3, 2/3 of the interval once settled.
	slices.Sort(at)
	n := len(at)
	if d1, d2 := at[n-1]-at[n-2], at[n-2]-at[n-3]; d1 != sec/3 && d1 != sec/3+1 || d2 != sec/3 && d2 != sec/3+1 {
		t.Errorf("gaps %v and %v after the respread, want a third of the interval", time.Duration(d2), time.Duration(d1))
	}
	var empty Queue[int]
	if _, ok := empty.Wait(0); ok || empty.Due(0) != nil {
		t.Error("an empty queue has something due")
	}
}
func TestSlotSpreadsAndNeverBursts(t *testing.T) {
	const iv = 1000
	var got []int64
	for k := range 4 {
		got = append(got, Slot(10_500, iv, k, 4, 0))
	}
	// Phases 0, 250, 500, 750: the first slot strictly after 10500 for each.
	if want := []int64{11000, 11250, 11500, 10750}; !slices.Equal(got, want) {
		t.Errorf("slots = %v, want %v", got, want)
	}
	// Sent at 10400: the next slot of phase 500 (10500) is too close, skip to 11500.
	if s := Slot(10_499, iv, 2, 4, 10_400); s != 11500 {
		t.Errorf("slot after a recent send = %d, want 11500", s)
	}
}

// Whatever mix of sends and removals, Due hands out the entry due first,
// and the heap's copies of each entry's next stay those of the entries.
func TestHeapStaysOrdered(t *testing.T) {
	var q Queue[int]
	es := entries(&q, time.Second, 500)
	for i, e := range entries(&q, 3*time.Second, 300) {
		e.Value = 500 + i
		es = append(es, e)
	}
	live := map[*Entry[int]]bool{}
	for _, e := range es {
		live[e] = true
	}
	now := 10 * sec
	for step := range 20000 {
		if step%97 == 0 && len(live) > 1 {
			for e := range live { // any one
				q.Remove(e)
				delete(live, e)
				break
			}
		}
		e := q.Due(now + sec)
		if e == nil {
			now += sec / 10
			continue
		}
		for o := range live {
			if o.next < e.next {
				t.Fatalf("step %d: Due gave %d (next %d), but %d is due sooner (next %d)", step, e.Value, e.next, o.Value, o.next)
			}
		}
		q.Sent(e, max(now, e.next))
		for i, s := range q.h {
			if s.e.idx != i || s.next != s.e.next {
				t.Fatalf("step %d: slot %d holds idx %d, next %d for an entry with next %d", step, i, s.e.idx, s.next, s.e.next)
			}
		}
	}
}
