package schedule

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/smokemon/smokemon/internal/testutil"
)

// step on a loop that is not running, on a made-up clock: two entries of
// one interval fire half an interval apart, each once per interval; after
// a long gap each fires once, not once per missed slot; a removed one never
// again.
func TestLoopStepSpreadsAndSkips(t *testing.T) {
	var fired []int
	l := &Loop[int]{fire: func(v int) { fired = append(fired, v) }}
	a := l.Add(0, time.Second)
	l.Add(1, time.Second)
	now := int64(0)
	var at []int64
	for now <= 3*sec {
		before := len(fired)
		wait := l.step(now)
		for range len(fired) - before {
			at = append(at, now)
		}
		now += int64(wait)
	}
	if !slices.Equal(fired, []int{0, 1, 0, 1, 0}) || !slices.Equal(at, []int64{sec, 3 * sec / 2, 2 * sec, 5 * sec / 2, 3 * sec}) {
		t.Fatalf("fired %v at %v, want 0 and 1 in turn, half a second apart from 1s", fired, at)
	}
	fired = nil
	l.step(now + 10*sec) // ten slots late: one each
	if slices.Sort(fired); !slices.Equal(fired, []int{0, 1}) {
		t.Errorf("after a gap of ten intervals fired %v, want each once", fired)
	}
	l.Remove(a)
	fired = nil
	for n := now + 10*sec; n < now+15*sec; n += sec / 4 {
		l.step(n)
	}
	if slices.Contains(fired, 0) || len(fired) != 5 {
		t.Errorf("after Remove fired %v, want 1 only, once a second", fired)
	}
}

// A running loop fires its entries and stops firing at Close.
func TestLoopRunsUntilClose(t *testing.T) {
	var mu sync.Mutex
	n := map[int]int{}
	l := NewLoop(func(v int) { mu.Lock(); n[v]++; mu.Unlock() })
	l.Add(1, 10*time.Millisecond)
	l.Add(2, 20*time.Millisecond)
	count := func(v int) int { mu.Lock(); defer mu.Unlock(); return n[v] }
	testutil.WaitFor(t, 5*time.Second, "both entries to fire three times", func() bool { return count(1) >= 3 && count(2) >= 3 })
	l.Close()
	c1, c2 := count(1), count(2)
	time.Sleep(50 * time.Millisecond)
	if count(1) != c1 || count(2) != c2 {
		t.Errorf("fired after Close")
	}
}
