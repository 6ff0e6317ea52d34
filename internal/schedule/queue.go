package schedule

import (
	"cmp"
	"slices"
	"time"
)

// Entry is one periodic send in a Queue. The engine that owns it sets Value,
// Interval and Rank; the queue keeps the rest. Times are the engine's
// monotonic nanoseconds.
type Entry[T any] struct {
	Value    T
	Interval time.Duration
	// Rank orders entries of one interval when phases are handed out: the
	// engines use the order targets were added, so a new target takes the
	// last phase and the others keep theirs.
	Rank uint64

	next, lastSent int64
	idx            int // in the heap; -1 when not in it
}

// Next is when the entry is next due (valid once the queue has spread).
func (e *Entry[T]) Next() int64 { return e.next }

// Queue hands out the entries due, each at its phase of its interval. It is
// not safe for concurrent use: the engines call it under their lock.
type Queue[T any] struct {
	// MaxSlack lets an entry go up to min(MaxSlack, Interval/10) early, so
	// that one wake-up sends several (ping: waking per probe cost more CPU
	// than the probes). Zero sends each at its time.
	MaxSlack time.Duration

	all   map[*Entry[T]]struct{}
	h     entryHeap[T]
	dirty bool
}

// Add schedules e; its first send is at its slot in the interval, not at
// once, so adding many entries never bursts.
func (q *Queue[T]) Add(e *Entry[T]) {
	if _, ok := q.all[e]; ok {
		return
	}
	if q.all == nil {
		q.all = map[*Entry[T]]struct{}{}
	}
	e.idx = -1
	q.all[e] = struct{}{}
	q.dirty = true
}

// Remove unschedules e; the others are spread again over the interval.
func (q *Queue[T]) Remove(e *Entry[T]) {
	if _, ok := q.all[e]; !ok {
		return
	}
	delete(q.all, e)
	if e.idx >= 0 {
		q.h.remove(e.idx)
	}
	q.dirty = true
}

// Respread hands out phases again before the next send: call it after
// changing an entry's Interval.
func (q *Queue[T]) Respread() { q.dirty = true }

// Len is the number of entries scheduled.
func (q *Queue[T]) Len() int { return len(q.all) }

// spread gives the entries of each interval evenly spaced phases, in Rank
// order, each the first slot after now and never within half an interval
// of its last send (see Slot).
func (q *Queue[T]) spread(now int64) {
	byInterval := map[time.Duration][]*Entry[T]{}
	for e := range q.all {
		byInterval[e.Interval] = append(byInterval[e.Interval], e)
	}
	q.h = q.h[:0]
	for iv, es := range byInterval {
		slices.SortFunc(es, func(a, b *Entry[T]) int { return cmp.Compare(a.Rank, b.Rank) })
		for k, e := range es {
			e.next = Slot(now, int64(iv), k, len(es), e.lastSent)
			e.idx = len(q.h)
			q.h = append(q.h, slot[T]{next: e.next, e: e})
		}
	}
	q.h.init()
	q.dirty = false
}

func (q *Queue[T]) slack(e *Entry[T]) int64 { return int64(min(q.MaxSlack, e.Interval/10)) }

// Due returns the earliest entry due at now (within its slack), or nil.
// The caller sends it and calls Sent.
func (q *Queue[T]) Due(now int64) *Entry[T] {
	if q.dirty {
		q.spread(now)
	}
	if len(q.h) == 0 || q.h[0].next > now+q.slack(q.h[0].e) {
		return nil
	}
	return q.h[0].e
}

// Sent records that e (from Due) went out at now and moves it to its next
// slot. One that fell behind (a suspend, an overloaded machine) skips the
// slots it missed instead of sending them in a burst.
func (q *Queue[T]) Sent(e *Entry[T], now int64) {
	e.lastSent = now
	e.next = After(e.next, now, int64(e.Interval))
	if e.idx >= 0 {
		q.h[e.idx].next = e.next
		q.h.fix(e.idx)
	}
}

// After is the slot that follows due on a grid of interval: the next one,
// or, when that one has passed by now already, the first one after now.
func After(due, now, interval int64) int64 {
	next := due + interval
	if next <= now {
		next += ((now-next)/interval + 1) * interval
	}
	return next
}

// Wait is how long from now until an entry falls due (less its slack), and
// false when none is scheduled.
func (q *Queue[T]) Wait(now int64) (time.Duration, bool) {
	if q.dirty {
		q.spread(now)
	}
	if len(q.h) == 0 {
		return 0, false
	}
	return time.Duration(q.h[0].next - q.slack(q.h[0].e) - now), true
}

// Slot is when the k-th of n probes sharing an interval next falls due:
// phases k·interval/n apart, aligned to time 0 so that they stay spread as
// probes come and go, the first slot after now and never sooner than half an
// interval after lastSent (0: never sent), so re-spreading cannot burst.
func Slot(now, interval int64, k, n int, lastSent int64) int64 {
	phase := interval * int64(k) / int64(n)
	next := phase + ((now-phase)/interval+1)*interval
	for lastSent != 0 && next-lastSent < interval/2 {
		next += interval
	}
	return next
}

// entryHeap orders entries by their next send. Each slot keeps a copy of
// its entry's next beside the pointer, so that a sift compares within the
// array instead of loading every entry it passes: at 10 000 targets,
// container/heap's Fix after each send (Less through the pointers, an
// interface call per step) was the engine's largest cost after its
// syscalls.
type entryHeap[T any] []slot[T]

type slot[T any] struct {
	next int64
	e    *Entry[T]
}

func (h entryHeap[T]) set(i int, s slot[T]) {
	h[i] = s
	s.e.idx = i
}

func (h entryHeap[T]) up(i int) {
	s := h[i]
	for i > 0 {
		p := (i - 1) / 2
		if h[p].next <= s.next {
			break
		}
		h.set(i, h[p])
		i = p
	}
	h.set(i, s)
}

// down sifts slot i towards the leaves and reports whether it moved.
func (h entryHeap[T]) down(i int) bool {
	s, start := h[i], i
	for {
		c := 2*i + 1
		if c >= len(h) {
			break
		}
		if r := c + 1; r < len(h) && h[r].next < h[c].next {
			c = r
		}
		if s.next <= h[c].next {
			break
		}
		h.set(i, h[c])
		i = c
	}
	h.set(i, s)
	return i != start
}

func (h entryHeap[T]) fix(i int) {
	if !h.down(i) {
		h.up(i)
	}
}

func (h entryHeap[T]) init() {
	for i := len(h)/2 - 1; i >= 0; i-- {
		h.down(i)
	}
}

func (h *entryHeap[T]) remove(i int) {
	q := *h
	last := len(q) - 1
	q[i].e.idx = -1
	if i != last {
		q.set(i, q[last])
	}
	q[last] = slot[T]{}
	*h = q[:last]
	if i != last {
		h.fix(i)
	}
}
