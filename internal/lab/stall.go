package lab

import (
	"errors"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A timing check in the lab can fail because the code under test is slow or
// because the whole machine stalled (a VM's vCPU not scheduled, memory
// reclaim): this machine showed multi-millisecond stalls with nothing else
// running. The watchdog tells the two apart: a thread that sleeps stallTick at
// a time and records how late it woke, independent of everything measured.
const (
	stallTick  = 200 * time.Microsecond
	StallLimit = time.Millisecond // a wake-up later than this is a machine stall
)

// Watchdog measures machine stalls while it runs.
type Watchdog struct {
	worst atomic.Int64
	tid   atomic.Int64 // the thread it ran on
	stop  chan struct{}
	done  chan struct{}
}

// WatchStalls starts a watchdog; Stop ends it and returns the worst stall.
func WatchStalls() *Watchdog {
	w := &Watchdog{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		runtime.LockOSThread() // a thread of its own, so Go's scheduler is not what it measures
		// Unlocked before the goroutine ends: a goroutine that ends locked
		// takes its thread down, and a lab process forked from that thread
		// earlier (the delay element, servers: Pdeathsig) would be killed
		// with it. That once silenced the delay element for the rest of a test.
		defer runtime.UnlockOSThread()
		defer close(w.done)
		w.tid.Store(int64(unix.Gettid()))
		ts := unix.NsecToTimespec(int64(stallTick))
		for {
			select {
			case <-w.stop:
				return
			default:
			}
			t0 := time.Now()
			unix.Nanosleep(&ts, nil)
			if late := int64(time.Since(t0) - stallTick); late > w.worst.Load() {
				w.worst.Store(late)
			}
		}
	}()
	return w
}

// Stop ends the watchdog and returns the longest it woke late.
func (w *Watchdog) Stop() time.Duration {
	close(w.stop)
	<-w.done
	return time.Duration(w.worst.Load())
}

// Tries runs a timing check up to five times and passes as soon as one try
// passes. A try that fails while the watchdog saw the machine stall is
// inconclusive, not a failure: the test fails only on a failed try of a
// quiet machine, and skips, saying so, when the machine never was quiet.
//
// Every try's verdict is logged as a line "timing: WHAT: try N VERDICT"
// (passed, failed, inconclusive) and the end of a test that is not judged as
// "timing: WHAT: skipped" or "timing: WHAT: deferred": tools/testsum counts
// them from `go test -json`, so a green run says how many bounds it checked.
// Under the race detector the check is not run at all (deferred): CI judges
// timing in a run of its own without -race.
func Tries(t testing.TB, what string, check func() error) {
	t.Helper()
	if skipTiming {
		t.Logf("timing: %s: deferred: not judged under the race detector", what)
		t.SkipNow()
		return
	}
	var failed error
	var worst time.Duration
	for i := 1; i <= 5; i++ {
		stall, err := watched(check)
		if err == nil {
			t.Logf("timing: %s: try %d passed", what, i)
			return
		}
		if nt := (notTiming{}); errors.As(err, &nt) {
			t.Logf("timing: %s: try %d failed", what, i)
			t.Errorf("%s: try %d: %v (a fault no stall explains)", what, i, err)
			return
		}
		worst = max(worst, stall)
		if stall > StallLimit {
			t.Logf("timing: %s: try %d inconclusive, the machine stalled %v: %v", what, i, stall, err)
			continue
		}
		t.Logf("timing: %s: try %d failed: %v", what, i, err)
		failed = err
	}
	if failed != nil {
		t.Errorf("%s: %v", what, failed)
		return
	}
	t.Logf("timing: %s: skipped", what)
	t.Skipf("%s: the machine stalled (up to %v) during every try; sub-millisecond timing cannot be judged here", what, worst)
}

// skipTiming is raceDetector, a variable so that Tries' own tests run under it.
var skipTiming = raceDetector

// NotTiming marks a failure that no machine stall of milliseconds can
// explain (a path gone silent, most packets missing): Tries fails the test
// on it at once instead of calling the try inconclusive. Without it, a
// delay element killed mid-test once turned its test into skips.
func NotTiming(err error) error { return notTiming{err} }

// Shortfall is err for a check that got fewer of want packets than it
// sent, marked NotTiming when most are missing: a stall delays packets, it
// does not lose half of them.
func Shortfall(got, want int, err error) error {
	if got < want/2 {
		return NotTiming(err)
	}
	return err
}

type notTiming struct{ error }

func (e notTiming) Unwrap() error { return e.error }

// watched runs check under a watchdog that stops even if check ends the test.
func watched(check func() error) (stall time.Duration, err error) {
	w := WatchStalls()
	defer func() { stall = w.Stop() }()
	return 0, check()
}
