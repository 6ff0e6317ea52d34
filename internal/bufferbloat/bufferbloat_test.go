package bufferbloat

import (
	"testing"
	"time"
)

func TestDSLReportsBands(t *testing.T) {
	ms := time.Millisecond
	for _, tc := range []struct {
		inc  time.Duration
		want string
	}{
		{-3 * ms, "A+"}, {0, "A+"}, {4999 * time.Microsecond, "A+"},
		{5 * ms, "A"}, {29 * ms, "A"},
		{30 * ms, "B"}, {59 * ms, "B"},
		{60 * ms, "C"}, {199 * ms, "C"},
		{200 * ms, "D"}, {399 * ms, "D"},
		{400 * ms, "F"}, {3 * time.Second, "F"},
	} {
		if got := DSLReports.Grade(tc.inc); got != tc.want {
			t.Errorf("Grade(%v) = %q, want %q", tc.inc, got, tc.want)
		}
	}
	if err := DSLReports.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestCustomScale(t *testing.T) {
	s := Scale{{"good", 10 * time.Millisecond}, {"bad", 0}}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	if s.Grade(9*time.Millisecond) != "good" || s.Grade(10*time.Millisecond) != "bad" {
		t.Error("custom scale misgrades")
	}
}

func TestValidate(t *testing.T) {
	ms := time.Millisecond
	for name, s := range map[string]Scale{
		"one band":         {{"F", 0}},
		"unbounded middle": {{"A", 0}, {"B", 10 * ms}, {"F", 0}},
		"bounded last":     {{"A", 10 * ms}, {"F", 20 * ms}},
		"not rising":       {{"A", 10 * ms}, {"B", 10 * ms}, {"F", 0}},
		"duplicate":        {{"A", 10 * ms}, {"A", 20 * ms}, {"F", 0}},
		"empty grade":      {{"", 10 * ms}, {"F", 0}},
		"negative":         {{"A", -1}, {"F", 0}},
	} {
		if err := s.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestWorst(t *testing.T) {
	if _, ok := Worst(); ok {
		t.Error("Worst() of nothing is ok")
	}
	if w, _ := Worst(12*time.Millisecond, 250*time.Millisecond); w != 250*time.Millisecond {
		t.Errorf("Worst = %v", w)
	}
	if w, _ := Worst(-2 * time.Millisecond); w != -2*time.Millisecond {
		t.Errorf("Worst of one negative = %v", w)
	}
}
