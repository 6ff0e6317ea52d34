package main

import (
	"slices"
	"strings"
	"testing"
)

// testdata/first.json and rerun.json are real `go test -json` output of a
// small module: package a has a passing, a skipped, a failing (TestFlaky), a
// deferred and a timing test with two checks (one judged after an
// inconclusive try, one skipped after two); b passes; c does not build.
// rerun.json is package a run again with TestFlaky passing.
func load(t *testing.T, names ...string) []*run {
	t.Helper()
	var rs []*run
	for _, n := range names {
		r, err := readFile("testdata/" + n)
		if err != nil {
			t.Fatal(err)
		}
		rs = append(rs, r)
	}
	return rs
}

func TestShow(t *testing.T) {
	var b strings.Builder
	load(t, "first.json")[0].show(&b)
	want := "# example.com/fix/c [example.com/fix/c.test]\n" +
		"c/c_test.go:5:28: undefined: undefined\n" +
		"=== RUN   TestFlaky\n" +
		"    a_test.go:15: flaky failure\n" +
		"--- FAIL: TestFlaky (0.00s)\n" +
		"FAIL\n" +
		"FAIL\texample.com/fix/a\t0.008s\n" +
		"ok  \texample.com/fix/b\t0.003s\n" +
		"FAIL\texample.com/fix/c [build failed]\n"
	if b.String() != want {
		t.Errorf("show:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestFailedAndDeferred(t *testing.T) {
	r := load(t, "first.json")[0]
	if got, want := r.failedPackages(), []string{"example.com/fix/a", "example.com/fix/c"}; !slices.Equal(got, want) {
		t.Errorf("failed packages %q, want %q", got, want)
	}
	if got, want := deferred([]*run{r, r}), []deferral{{"example.com/fix/a", "^(TestDeferred)$"}}; !slices.Equal(got, want) {
		t.Errorf("deferred %q, want %q", got, want)
	}
}

func TestSum(t *testing.T) {
	for _, tc := range []struct {
		name      string
		runs      []string
		maxSkip   float64
		minTiming int
		ok        bool
		lines     []string
	}{{
		// The build failure fails the suite; TestFlaky's failure stands; the
		// deferred test was never judged; one of two timing tests skipped.
		name: "first run only", runs: []string{"first.json"}, maxSkip: 0.5, ok: false,
		lines: []string{
			"test: FAILED: example.com/fix/a TestFlaky",
			"test: FAILED: example.com/fix/c (no test ran)",
			"test: 0 reruns decided a test anew",
			"test: timing tries: 1 passed, 0 failed, 3 inconclusive (a machine stall)",
			"test: timing retried: example.com/fix/a TestTiming/one: 0 failed, 1 inconclusive, then passed",
			"test: timing skipped, every try inconclusive: example.com/fix/a TestTiming/two",
			"test: timing tests: 1 judged, 1 skipped after every try was inconclusive (50%; more than 50% fails the suite)",
			"test: FAILED: example.com/fix/a TestDeferred was deferred under -race and never judged without it",
			"4 passed, 2 failed, 3 skipped",
		},
	}, {
		// The rerun decides TestFlaky and is shown; its tries add to the first
		// run's; the skipped share is over the limit.
		name: "with the rerun", runs: []string{"first.json", "rerun.json"}, maxSkip: 0.1, minTiming: 2, ok: false,
		lines: []string{
			"test: FAILED: example.com/fix/c (no test ran)",
			"test: rerun: example.com/fix/a TestFlaky failed in first.json, passed in rerun.json",
			"test: 1 reruns decided a test anew",
			"test: timing tries: 2 passed, 0 failed, 6 inconclusive (a machine stall)",
			"test: timing retried: example.com/fix/a TestTiming/one: 0 failed, 1 inconclusive, then passed",
			"test: timing skipped, every try inconclusive: example.com/fix/a TestTiming/two",
			"test: timing tests: 1 judged, 1 skipped after every try was inconclusive (50%; more than 10% fails the suite)",
			"test: FAILED: too many timing tests skipped: this run does not say the timing bounds hold",
			"test: FAILED: 1 timing tests judged, at least 2 expected",
			"test: FAILED: example.com/fix/a TestDeferred was deferred under -race and never judged without it",
			"5 passed, 1 failed, 3 skipped",
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			var b strings.Builder
			ok := summarize(load(t, tc.runs...)).print(&b, tc.maxSkip, tc.minTiming)
			if got := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n"); ok != tc.ok || !slices.Equal(got, tc.lines) {
				t.Errorf("ok %v, lines:\n%s\nwant ok %v, lines:\n%s", ok, strings.Join(got, "\n"), tc.ok, strings.Join(tc.lines, "\n"))
			}
		})
	}
}

// A suite with nothing wrong passes and says so.
func TestSumGreen(t *testing.T) {
	r, err := read(strings.NewReader(`{"Action":"start","Package":"p"}
{"Action":"run","Package":"p","Test":"TestT"}
{"Action":"output","Package":"p","Test":"TestT","Output":"    x_test.go:9: timing: rtt: try 1 passed\n"}
{"Action":"pass","Package":"p","Test":"TestT"}
{"Action":"pass","Package":"p"}
`))
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if ok := summarize([]*run{r}).print(&b, 0, 1); !ok || !strings.HasSuffix(b.String(), "test: timing tests: 1 judged, 0 skipped after every try was inconclusive (0%; more than 0% fails the suite)\n1 passed, 0 failed, 0 skipped\n") {
		t.Errorf("ok %v:\n%s", ok, b.String())
	}
}

// A deferral under -race never undoes the verdict of a run without it,
// whichever ran first.
func TestDeferralKeepsVerdict(t *testing.T) {
	plain, err := read(strings.NewReader(`{"Action":"run","Package":"p","Test":"TestT"}
{"Action":"output","Package":"p","Test":"TestT","Output":"    x_test.go:9: timing: rtt: try 1 failed: off\n"}
{"Action":"output","Package":"p","Test":"TestT","Output":"    x_test.go:9: timing: rtt: try 2 passed\n"}
{"Action":"pass","Package":"p","Test":"TestT"}
`))
	if err != nil {
		t.Fatal(err)
	}
	raced, err := read(strings.NewReader(`{"Action":"run","Package":"p","Test":"TestT"}
{"Action":"output","Package":"p","Test":"TestT","Output":"    x_test.go:9: timing: rtt: deferred: not judged under the race detector\n"}
{"Action":"skip","Package":"p","Test":"TestT"}
`))
	if err != nil {
		t.Fatal(err)
	}
	for _, order := range [][]*run{{plain, raced}, {raced, plain}} {
		var b strings.Builder
		ok := summarize(order).print(&b, 0, 1)
		if !ok || !strings.Contains(b.String(), "timing tries: 1 passed, 1 failed, 0 inconclusive") ||
			!strings.Contains(b.String(), "test: timing retried: p TestT: 1 failed, 0 inconclusive, then passed\n") || !strings.HasSuffix(b.String(), "1 passed, 0 failed, 0 skipped\n") {
			t.Errorf("ok %v:\n%s", ok, b.String())
		}
	}
}

// A test that failed in the race run and deferred its timing in the rerun
// was decided by the rerun: the rerun is shown, and the run without -race
// judges its timing afterwards.
func TestRerunThenTiming(t *testing.T) {
	var runs []*run
	for i, j := range []string{
		`{"Action":"run","Package":"p","Test":"TestT"}
{"Action":"output","Package":"p","Test":"TestT","Output":"    x_test.go:9: a non-timing check failed\n"}
{"Action":"fail","Package":"p","Test":"TestT"}
`, `{"Action":"run","Package":"p","Test":"TestT"}
{"Action":"output","Package":"p","Test":"TestT","Output":"    x_test.go:9: timing: rtt: deferred: not judged under the race detector\n"}
{"Action":"skip","Package":"p","Test":"TestT"}
`, `{"Action":"run","Package":"p","Test":"TestT"}
{"Action":"output","Package":"p","Test":"TestT","Output":"    x_test.go:9: timing: rtt: try 1 passed\n"}
{"Action":"pass","Package":"p","Test":"TestT"}
`} {
		r, err := read(strings.NewReader(j))
		if err != nil {
			t.Fatal(err)
		}
		r.name = []string{"/tmp/x/race.json", "/tmp/x/race.json.rerun.json", "/tmp/x/timing1.json"}[i]
		runs = append(runs, r)
	}
	var b strings.Builder
	ok := summarize(runs).print(&b, 0, 1)
	if !ok || !strings.Contains(b.String(), "test: rerun: p TestT failed in race.json, skipped in race.json.rerun.json\n") || !strings.HasSuffix(b.String(), "1 passed, 0 failed, 0 skipped\n") {
		t.Errorf("ok %v:\n%s", ok, b.String())
	}
}
