package schedule

import (
	"sync"
	"time"
)

// Loop runs a Queue on a goroutine of its own, for engines whose work per
// entry lasts long: an mtr round takes most of its interval, so it runs on
// the target's goroutine and the loop only says when to start one. When an
// entry falls due the loop calls fire with its Value and moves the entry to
// its next slot, so the Queue's rules hold: phases spread over the interval,
// a new entry starts at its slot rather than at once, and slots missed while
// fire's receiver was busy are skipped, never made up in a burst. fire runs
// on the loop's goroutine and must not block (a send on a channel with room
// for one start, dropped when it is full, does).
type Loop[T any] struct {
	fire  func(T)
	start time.Time
	wake  chan struct{}
	stop  chan struct{}
	done  chan struct{}

	mu   sync.Mutex
	q    Queue[T]
	rank uint64
}

// idleWait is how long the loop sleeps with nothing scheduled; Add wakes it.
const idleWait = time.Hour

// NewLoop starts a loop with nothing scheduled; Close stops it.
func NewLoop[T any](fire func(T)) *Loop[T] {
	l := &Loop[T]{fire: fire, start: time.Now(), wake: make(chan struct{}, 1),
		stop: make(chan struct{}), done: make(chan struct{})}
	go l.run()
	return l
}

// Add schedules v every interval, after the entries added before it in the
// order phases are handed out; the entry it returns is for Remove.
func (l *Loop[T]) Add(v T, interval time.Duration) *Entry[T] {
	l.mu.Lock()
	e := &Entry[T]{Value: v, Interval: interval, Rank: l.rank}
	l.rank++
	l.q.Add(e)
	l.mu.Unlock()
	l.poke()
	return e
}

// Remove unschedules e: fire is not called with its value after Remove
// returns.
func (l *Loop[T]) Remove(e *Entry[T]) {
	l.mu.Lock()
	l.q.Remove(e)
	l.mu.Unlock()
	l.poke()
}

// Close stops the loop; fire is not called after Close returns.
func (l *Loop[T]) Close() {
	close(l.stop)
	<-l.done
}

func (l *Loop[T]) poke() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

func (l *Loop[T]) run() {
	defer close(l.done)
	t := time.NewTimer(idleWait)
	defer t.Stop()
	for {
		t.Reset(l.step(int64(time.Since(l.start))))
		select {
		case <-t.C:
		case <-l.wake:
		case <-l.stop:
			return
		}
	}
}

// step fires every entry due at now (the loop's monotonic nanoseconds) and
// returns how long until the next one is.
func (l *Loop[T]) step(now int64) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	for e := l.q.Due(now); e != nil; e = l.q.Due(now) {
		l.q.Sent(e, now)
		l.fire(e.Value)
	}
	if d, ok := l.q.Wait(now); ok {
		return d
	}
	return idleWait
}
