package lab

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

// recordingTB captures what Tries reports instead of failing the real test.
type recordingTB struct {
	testing.TB
	errors, skips, logs []string
}

func (r *recordingTB) Helper()                   {}
func (r *recordingTB) Logf(f string, a ...any)   { r.logs = append(r.logs, fmt.Sprintf(f, a...)) }
func (r *recordingTB) Errorf(f string, a ...any) { r.errors = append(r.errors, fmt.Sprintf(f, a...)) }
func (r *recordingTB) Skip(a ...any)             { r.skips = append(r.skips, fmt.Sprint(a...)) }
func (r *recordingTB) SkipNow()                  { r.skips = append(r.skips, "SkipNow") }

// A fault marked NotTiming fails at once, stall or not; a plain error is
// retried and fails on a quiet machine.
func TestTriesNotTiming(t *testing.T) {
	defer func(v bool) { skipTiming = v }(skipTiming)
	skipTiming = false
	r := &recordingTB{TB: t}
	calls := 0
	Tries(r, "silent", func() error { calls++; return NotTiming(errors.New("0 of 200 replies")) })
	if calls != 1 || len(r.errors) != 1 || len(r.skips) != 0 || !strings.Contains(r.errors[0], "0 of 200 replies") {
		t.Errorf("NotTiming: %d calls, errors %q, skips %q; want one call and one error", calls, r.errors, r.skips)
	}
	r = &recordingTB{TB: t}
	calls = 0
	Tries(r, "flaky", func() error {
		calls++
		if calls < 3 {
			return errors.New("off by a little")
		}
		return nil
	})
	if calls != 3 || len(r.errors) != 0 || len(r.skips) != 0 {
		t.Errorf("a check passing on its third try: %d calls, errors %q, skips %q", calls, r.errors, r.skips)
	}
	// tools/testsum counts these lines: each try says its verdict (a stall
	// of the machine may make a failed try inconclusive).
	verdict := regexp.MustCompile(`^timing: flaky: try [12] (failed|inconclusive)`)
	if len(r.logs) != 3 || !verdict.MatchString(r.logs[0]) || !verdict.MatchString(r.logs[1]) || r.logs[2] != "timing: flaky: try 3 passed" {
		t.Errorf("logged %q, want two tries failed or inconclusive and the third passed", r.logs)
	}
}

// Under the race detector a timing check is not run but deferred, saying so.
func TestTriesDeferred(t *testing.T) {
	defer func(v bool) { skipTiming = v }(skipTiming)
	skipTiming = true
	r := &recordingTB{TB: t}
	calls := 0
	Tries(r, "rtt", func() error { calls++; return nil })
	if calls != 0 || len(r.skips) != 1 || len(r.logs) != 1 || !strings.HasPrefix(r.logs[0], "timing: rtt: deferred") {
		t.Errorf("deferred: %d calls, skips %q, logs %q; want no call, one skip and a deferred line", calls, r.skips, r.logs)
	}
	r = &recordingTB{TB: t}
	deferUnderRace(r)
	if len(r.skips) != 1 || len(r.logs) != 1 || r.logs[0] != "timing: "+t.Name()+": deferred: a lab test, not run under the race detector" {
		t.Errorf("a lab test under -race: skips %q, logs %q; want one skip and a deferred line", r.skips, r.logs)
	}
	skipTiming = false
	r = &recordingTB{TB: t}
	deferUnderRace(r)
	if len(r.skips) != 0 || len(r.logs) != 0 {
		t.Errorf("a lab test without -race: skips %q, logs %q; want neither", r.skips, r.logs)
	}
}

// Most packets missing is no stall's doing; a few missing may be.
func TestShortfall(t *testing.T) {
	nt := notTiming{}
	if err := Shortfall(10, 200, errors.New("10 of 200")); !errors.As(err, &nt) {
		t.Errorf("10 of 200: %v not marked NotTiming", err)
	}
	if err := Shortfall(150, 200, errors.New("150 of 200")); errors.As(err, &nt) {
		t.Errorf("150 of 200: %v marked NotTiming", err)
	}
}

// The watchdog gives its thread back: a thread that exits would kill every
// lab process forked from it earlier (Pdeathsig).
// Several rounds: a watchdog that happens to run on the main thread would
// not lose it either way (the runtime never ends that one).
func TestWatchdogKeepsItsThread(t *testing.T) {
	for range 4 {
		w := WatchStalls()
		time.Sleep(10 * time.Millisecond)
		w.Stop()
		time.Sleep(20 * time.Millisecond)
		if _, err := os.Stat(fmt.Sprintf("/proc/self/task/%d", w.tid.Load())); err != nil {
			t.Fatalf("the watchdog's thread %d is gone: %v", w.tid.Load(), err)
		}
	}
}
