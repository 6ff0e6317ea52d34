// Package bufferbloat grades latency under load: how much a link's round-trip
// time grows while it is saturated, in bands as the DSLReports speed test and
// LibreQoS draw them.
//
// Which figure is graded is the caller's choice, but smokemon grades the
// median increase of the worst direction (Worst): a link that is fine when
// downloading but bloats on upload makes calls stutter all the same, and an
// average of the two directions would hide exactly that.
package bufferbloat

import (
	"fmt"
	"time"
)

// Band is one grade: increases below Below earn Grade. The last band of a
// scale has no bound (Below 0) and takes everything else.
type Band struct {
	Grade string
	Below time.Duration
}

// Scale is a list of bands from best to worst.
type Scale []Band

// DSLReports are the bands of the DSLReports speed test, also used by LibreQoS.
var DSLReports = Scale{
	{"A+", 5 * time.Millisecond},
	{"A", 30 * time.Millisecond},
	{"B", 60 * time.Millisecond},
	{"C", 200 * time.Millisecond},
	{"D", 400 * time.Millisecond},
	{"F", 0},
}

// Grade returns the grade of a latency increase (loaded minus idle RTT). A
// negative increase (the path got faster under load, which measurement noise
// allows) is as good as none.
func (s Scale) Grade(increase time.Duration) string {
	for _, b := range s {
		if b.Below == 0 || increase < b.Below {
			return b.Grade
		}
	}
	return s[len(s)-1].Grade
}

// BandError says which band of a scale is wrong.
type BandError struct {
	Index int // -1: the scale as a whole
	Msg   string
}

func (e *BandError) Error() string { return e.Msg }

// Validate checks that bounds rise strictly, grades are distinct and non-empty,
// and only the last band is unbounded. Errors are *BandError.
func (s Scale) Validate() error {
	if len(s) < 2 {
		return &BandError{-1, fmt.Sprintf("a scale needs at least two bands, got %d", len(s))}
	}
	seen := map[string]bool{}
	for i, b := range s {
		last := i == len(s)-1
		msg := ""
		switch {
		case b.Grade == "":
			msg = fmt.Sprintf("band %d has no grade", i)
		case seen[b.Grade]:
			msg = fmt.Sprintf("grade %q appears twice", b.Grade)
		case last && b.Below != 0:
			msg = fmt.Sprintf("the last band (%q) takes everything else and must have no bound", b.Grade)
		case !last && b.Below <= 0:
			msg = fmt.Sprintf("band %q needs a positive bound (only the last band has none)", b.Grade)
		case !last && i > 0 && b.Below <= s[i-1].Below:
			msg = fmt.Sprintf("band %q: bound %s is not above the previous band's %s", b.Grade, b.Below, s[i-1].Below)
		}
		if msg != "" {
			return &BandError{i, msg}
		}
		seen[b.Grade] = true
	}
	return nil
}

// Worst is the largest of the increases measured in each direction, the one
// smokemon grades. ok is false when there is none.
func Worst(increases ...time.Duration) (worst time.Duration, ok bool) {
	for i, d := range increases {
		if i == 0 || d > worst {
			worst = d
		}
	}
	return worst, len(increases) > 0
}
