package main

import (
	"bufio"
	"io"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// fpingReply parses one -D -l reply line:
//
//	[1795286436.06721] 127.0.0.2 : [0], 64 bytes, 0.082 ms (0.082 avg, 0% loss)
//
// Timeouts and summaries do not match and are skipped.
func fpingReply(line string) (at time.Time, rtt time.Duration, ok bool) {
	if len(line) < 3 || line[0] != '[' {
		return at, 0, false
	}
	end := strings.IndexByte(line, ']')
	if end < 0 {
		return at, 0, false
	}
	ts, err := strconv.ParseFloat(line[1:end], 64)
	if err != nil {
		return at, 0, false
	}
	_, rest, found := strings.Cut(line[end+1:], " bytes, ")
	if !found {
		return at, 0, false
	}
	ms, _, found := strings.Cut(rest, " ms")
	if !found {
		return at, 0, false
	}
	v, err := strconv.ParseFloat(ms, 64)
	if err != nil || v < 0 {
		return at, 0, false
	}
	sec := int64(ts)
	at = time.Unix(sec, int64((ts-float64(sec))*1e9))
	return at, time.Duration(v * float64(time.Millisecond)), true
}

// fpingLog keeps the RTTs of replies stamped inside the measurement window;
// fping's -D stamp is the receive time, so block-buffered output (stdout is a
// pipe) does not blur the window.
type fpingLog struct {
	mu       sync.Mutex
	from, to time.Time
	rtts     []time.Duration
	lines    int
	done     chan struct{}
}

func newFpingLog() *fpingLog { return &fpingLog{done: make(chan struct{})} }

func (l *fpingLog) setWindow(from, to time.Time) {
	l.mu.Lock()
	l.from, l.to = from, to
	l.mu.Unlock()
}

func (l *fpingLog) consume(r io.Reader) {
	defer close(l.done)
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		at, rtt, ok := fpingReply(sc.Text())
		if !ok {
			continue
		}
		l.mu.Lock()
		l.lines++
		if !l.from.IsZero() && !at.Before(l.from) && (l.to.IsZero() || !at.After(l.to)) {
			l.rtts = append(l.rtts, rtt)
		}
		l.mu.Unlock()
	}
}

// stats returns the exact median and mean RTT and the reply count in the window.
func (l *fpingLog) stats() (median, mean time.Duration, n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n = len(l.rtts)
	if n == 0 {
		return 0, 0, 0
	}
	s := append([]time.Duration(nil), l.rtts...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	if n%2 == 1 {
		median = s[n/2]
	} else {
		median = (s[n/2-1] + s[n/2]) / 2
	}
	var sum time.Duration
	for _, d := range s {
		sum += d
	}
	return median, sum / time.Duration(n), n
}
