// Command testsum reads the output of `go test -json` for .ci/test: it
// prints a run as plain `go test` would (package lines, and the whole output
// of what failed), names the packages to run again or the timing tests to run
// apart, and closes the suite with counts that show what a green run checked.
//
//	testsum show RUN.json...        plain output of runs
//	testsum failed RUN.json...      the packages that failed, one a line
//	testsum deferred RUN.json...    "package<TAB>-run regexp" for timing tests deferred under -race
//	testsum sum [flags] RUN.json... closing lines over every run, in order;
//	                                a later run of a test (a rerun) decides its verdict
//
// Timing checks (internal/lab.Tries) log one line per try, "timing: WHAT: try
// N passed|failed|inconclusive", and "timing: WHAT: skipped|deferred" when
// they are not judged: sum counts them, and names every test that
// passed only on a later try or was skipped.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: testsum show|failed|deferred|sum [flags] RUN.json...")
		os.Exit(2)
	}
	cmd, args := os.Args[1], os.Args[2:]
	var err error
	ok := true
	switch cmd {
	case "show", "failed":
		var r *run
		for _, f := range args {
			if r, err = readFile(f); err != nil {
				break
			}
			if cmd == "show" {
				r.show(os.Stdout)
				continue
			}
			for _, p := range r.failedPackages() {
				fmt.Println(p)
			}
		}
	case "deferred":
		var runs []*run
		if runs, err = readFiles(args); err == nil {
			for _, d := range deferred(runs) {
				fmt.Printf("%s\t%s\n", d.pkg, d.run)
			}
		}
	case "sum":
		fs := flag.NewFlagSet("sum", flag.ExitOnError)
		maxSkip := fs.Float64("max-skipped", 0.15, "fail when more than this share of the timing tests skipped")
		minTiming := fs.Int("min-timing", 0, "fail when fewer timing tests than this were judged")
		fs.Parse(args)
		var runs []*run
		if runs, err = readFiles(fs.Args()); err == nil {
			s := summarize(runs)
			ok = s.print(os.Stdout, *maxSkip, *minTiming)
		}
	default:
		err = fmt.Errorf("unknown command %q", cmd)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "testsum:", err)
		os.Exit(2)
	}
	if !ok {
		os.Exit(1)
	}
}

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Action     string
	Package    string
	Test       string
	Output     string
	ImportPath string // build-output and build-fail events
}

type key struct{ pkg, test string } // test "" is the package itself

// run is one `go test -json` invocation.
type run struct {
	name    string
	order   []key            // keys in the order they started
	verdict map[key]string   // pass, fail or skip
	output  map[key][]string // lines, in order
	build   []string         // compiler output
}

func readFiles(names []string) ([]*run, error) {
	var runs []*run
	for _, n := range names {
		r, err := readFile(n)
		if err != nil {
			return nil, err
		}
		runs = append(runs, r)
	}
	return runs, nil
}

func readFile(name string) (*run, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r, err := read(f)
	if r != nil {
		r.name = name
	}
	return r, err
}

func read(in io.Reader) (*run, error) {
	r := &run{verdict: map[key]string{}, output: map[key][]string{}}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &e) != nil {
			// go test writes a build failure's "FAIL pkg [setup failed]" and
			// the like outside the JSON stream.
			r.build = append(r.build, string(line)+"\n")
			continue
		}
		k := key{e.Package, e.Test}
		switch e.Action {
		case "build-output":
			r.build = append(r.build, e.Output)
		case "start", "run":
			if _, seen := r.output[k]; !seen {
				r.order = append(r.order, k)
				r.output[k] = nil
			}
		case "output":
			if _, seen := r.output[k]; !seen {
				r.order = append(r.order, k)
			}
			r.output[k] = append(r.output[k], e.Output)
		case "pass", "fail", "skip":
			if _, seen := r.output[k]; !seen {
				r.order = append(r.order, k)
				r.output[k] = nil
			}
			r.verdict[k] = e.Action
		}
	}
	return r, sc.Err()
}

// show writes what plain `go test` would: compiler errors, each package's
// own lines (ok, FAIL, a panic outside a test) and the whole output of a
// failed test.
func (r *run) show(w io.Writer) {
	for _, l := range r.build {
		io.WriteString(w, l)
	}
	for _, p := range r.order {
		if p.test != "" {
			continue
		}
		for _, k := range r.order {
			if k.pkg == p.pkg && k.test != "" && r.verdict[k] == "fail" {
				for _, l := range r.output[k] {
					io.WriteString(w, l)
				}
			}
		}
		for _, l := range r.output[p] {
			if l != "PASS\n" && !strings.HasPrefix(l, "=== ") {
				io.WriteString(w, l)
			}
		}
	}
}

func (r *run) failedPackages() []string {
	var ps []string
	for _, k := range r.order {
		if k.test == "" && r.verdict[k] == "fail" {
			ps = append(ps, k.pkg)
		}
	}
	return ps
}

var marker = regexp.MustCompile(`timing: .*?: (?:try \d+ (passed|failed|inconclusive)|(skipped|deferred))`)

// timing is what a test's output says of its timing checks: the count of
// each try verdict and of each check not judged (skipped, deferred).
func (r *run) timing(k key) map[string]int {
	var n map[string]int
	for _, l := range r.output[k] {
		m := marker.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		if n == nil {
			n = map[string]int{}
		}
		n[m[1]+m[2]]++
	}
	return n
}

type deferral struct{ pkg, run string }

// deferred lists, per package, the top-level tests holding a timing check
// that the race run deferred, as a `go test -run` pattern.
// Over several runs (a race run and its rerun) a package is one line.
func deferred(runs []*run) []deferral {
	var pkgs []string
	tests := map[string][]string{}
	for _, r := range runs {
		for _, k := range r.order {
			if k.test == "" || r.timing(k)["deferred"] == 0 {
				continue
			}
			top, _, _ := strings.Cut(k.test, "/")
			top = regexp.QuoteMeta(top)
			if _, ok := tests[k.pkg]; !ok {
				pkgs = append(pkgs, k.pkg)
			}
			if !slices.Contains(tests[k.pkg], top) {
				tests[k.pkg] = append(tests[k.pkg], top)
			}
		}
	}
	var ds []deferral
	for _, p := range pkgs {
		ds = append(ds, deferral{p, "^(" + strings.Join(tests[p], "|") + ")$"})
	}
	return ds
}

// summary is the suite's verdict over its runs.
type summary struct {
	passed, failed, skipped int
	tries                   map[string]int // try verdicts over every run
	judged, timingSkipped   int            // timing tests by their final verdict
	skippedTiming           []key          // the timing tests skipped
	retried                 []string       // a line per timing test that passed after a failed or inconclusive try
	deferredOnly            []key          // deferred under -race and never run without it
	reruns                  []string       // a line per test a later run decided anew
	failures                []string
}

func summarize(runs []*run) summary {
	s := summary{tries: map[string]int{}}
	final := map[key]*run{}
	var keys []key
	for _, r := range runs {
		for _, k := range r.order {
			v := r.verdict[k]
			if v == "" {
				v = "fail" // started and never ended: a crash or a timeout
			}
			prev, ok := final[k]
			if ok && r.timing(k)["deferred"] > 0 && judged(prev.timing(k)) {
				continue // a deferral under -race does not undo a verdict on the timing
			}
			if ok && k.test != "" {
				if pv := prev.verdict[k]; pv == "fail" || pv == "" {
					s.reruns = append(s.reruns, fmt.Sprintf("%s %s failed in %s, %s in %s", k.pkg, k.test, filepath.Base(prev.name), verb(v), filepath.Base(r.name)))
				}
			} else if !ok {
				keys = append(keys, k)
			}
			final[k] = r
			for t, n := range r.timing(k) {
				if t != "skipped" && t != "deferred" {
					s.tries[t] += n
				}
			}
		}
	}
	for _, k := range keys {
		r := final[k]
		v := r.verdict[k]
		if v == "" {
			v = "fail"
		}
		if k.test == "" {
			// A package's own verdict counts only when no test of it ran in
			// that run: a build failure, a panic in TestMain.
			if v == "fail" && !ranIn(r, k.pkg) {
				s.failed++
				s.failures = append(s.failures, k.pkg+" (no test ran)")
			}
			continue
		}
		switch v {
		case "pass":
			s.passed++
		case "skip":
			s.skipped++
		default:
			s.failed++
			s.failures = append(s.failures, k.pkg+" "+k.test)
		}
		t := r.timing(k)
		switch {
		case t == nil:
		case t["deferred"] > 0:
			s.deferredOnly = append(s.deferredOnly, k)
		case v == "skip" && t["skipped"] > 0:
			s.timingSkipped++
			s.skippedTiming = append(s.skippedTiming, k)
		default:
			s.judged++
			// A test that failed is named among the failures already.
			if v == "pass" && t["failed"]+t["inconclusive"] > 0 {
				s.retried = append(s.retried, fmt.Sprintf("%s %s: %d failed, %d inconclusive, then passed",
					k.pkg, k.test, t["failed"], t["inconclusive"]))
			}
		}
	}
	return s
}

// judged says whether a test's timing checks ran (any try at all).
func judged(t map[string]int) bool {
	return t["passed"]+t["failed"]+t["inconclusive"] > 0
}

func ranIn(r *run, pkg string) bool {
	for _, k := range r.order {
		if k.pkg == pkg && k.test != "" {
			return true
		}
	}
	return false
}

func verb(v string) string {
	switch v {
	case "pass":
		return "passed"
	case "skip":
		return "skipped"
	}
	return "failed again"
}

// print writes the closing lines and says whether the suite passed: the
// last line is the plain "N passed, N failed, N skipped" that CI reads.
func (s summary) print(w io.Writer, maxSkip float64, minTiming int) bool {
	ok := s.failed == 0
	for _, f := range s.failures {
		fmt.Fprintf(w, "test: FAILED: %s\n", f)
	}
	for _, r := range s.reruns {
		fmt.Fprintf(w, "test: rerun: %s\n", r)
	}
	fmt.Fprintf(w, "test: %d reruns decided a test anew\n", len(s.reruns))
	fmt.Fprintf(w, "test: timing tries: %d passed, %d failed, %d inconclusive (a machine stall)\n",
		s.tries["passed"], s.tries["failed"], s.tries["inconclusive"])
	for _, r := range s.retried {
		fmt.Fprintf(w, "test: timing retried: %s\n", r)
	}
	timing := s.judged + s.timingSkipped
	share := 0.0
	if timing > 0 {
		share = float64(s.timingSkipped) / float64(timing)
	}
	for _, k := range s.skippedTiming {
		fmt.Fprintf(w, "test: timing skipped, every try inconclusive: %s %s\n", k.pkg, k.test)
	}
	fmt.Fprintf(w, "test: timing tests: %d judged, %d skipped after every try was inconclusive (%.0f%%; more than %.0f%% fails the suite)\n",
		s.judged, s.timingSkipped, 100*share, 100*maxSkip)
	if share > maxSkip {
		fmt.Fprintln(w, "test: FAILED: too many timing tests skipped: this run does not say the timing bounds hold")
		ok = false
	}
	if s.judged < minTiming {
		fmt.Fprintf(w, "test: FAILED: %d timing tests judged, at least %d expected\n", s.judged, minTiming)
		ok = false
	}
	for _, k := range s.deferredOnly {
		fmt.Fprintf(w, "test: FAILED: %s %s was deferred under -race and never judged without it\n", k.pkg, k.test)
		ok = false
	}
	fmt.Fprintf(w, "%d passed, %d failed, %d skipped\n", s.passed, s.failed, s.skipped)
	return ok
}
