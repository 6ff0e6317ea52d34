package probes

import (
	"bytes"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/smokemon/smokemon/collector"
	"github.com/smokemon/smokemon/internal/config"
	"github.com/smokemon/smokemon/internal/lab"
	"github.com/smokemon/smokemon/internal/prober"
	"github.com/smokemon/smokemon/internal/testutil"
)

// Helpers of the service-probe tests (http, dns, tcp, synthetic).

// svcSpareProcs raises GOMAXPROCS for a timing test. The lab's DNS and HTTP
// servers run in the test process and hold their delays in a blocking
// clock_nanosleep; each such sleep keeps a P until sysmon retakes it (up to
// 10 ms when sysmon is idle), and a probe goroutine woken by its answer
// meanwhile waits for a P. Spare Ps remove that artefact of the in-process
// servers; the collector in the exporter has no blocking sleeps.
func svcSpareProcs(t *testing.T) {
	old := runtime.GOMAXPROCS(16)
	t.Cleanup(func() { runtime.GOMAXPROCS(old) })
}

// svcDeps make the probes open their sockets in h, and read a rootfs holding
// this resolv.conf and a hosts file that names only localhost, so the
// "system" resolvers are lab servers.
func svcDeps(t *testing.T, h *lab.Host, resolvConf string) Deps {
	t.Helper()
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "etc"), 0o755)
	if err := os.WriteFile(filepath.Join(dir, "etc", "resolv.conf"), []byte(resolvConf), 0o644); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "etc", "hosts"), []byte("127.0.0.1 localhost\n"), 0o644)
	d := testDeps()
	d.Net = prober.Env{Netns: h.Do, Rootfs: dir}
	return d
}

func svcCollector(t *testing.T, f factory, deps Deps, yml string) collector.Collector {
	t.Helper()
	c, err := f(testutil.Logger(), mustParse(t, yml), deps)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.(collector.Closer).Close() })
	return c
}

// svcGather collects c through a pedantic registry, which rejects
// inconsistent label sets and bad names.
func svcGather(t testing.TB, c collector.Collector) []*dto.MetricFamily {
	t.Helper()
	mfs := testutil.Gather(t, collector.SetOf(testutil.Logger(), map[string]collector.Collector{"svc": c}))
	return mfs
}

// svcFind returns the series of name whose labels include want ("k=v" pairs).
func svcFind(mfs []*dto.MetricFamily, name string, want ...string) *dto.Metric {
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.Metric {
			have := map[string]string{}
			for _, l := range m.Label {
				have[l.GetName()] = l.GetValue()
			}
			for _, kv := range want {
				k, v, _ := strings.Cut(kv, "=")
				if have[k] != v {
					continue next
				}
			}
			return m
		}
	}
	return nil
}

// svcValue is a counter's or gauge's value, or -1 when the series is absent.
func svcValue(mfs []*dto.MetricFamily, name string, want ...string) float64 {
	m := svcFind(mfs, name, want...)
	switch {
	case m == nil:
		return -1
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	}
	return -1
}

// svcPerProbe samples the histograms named by series (label selectors of
// one histogram family) every few milliseconds and returns, for each, the
// value of every single probe: the sum's increase whenever the count rose by
// exactly one. It skips each series' first skip probes and stops once every
// series has n values.
func svcPerProbe(t *testing.T, c collector.Collector, name string, n, skip int, series map[string][]string) map[string][]float64 {
	t.Helper()
	out := map[string][]float64{}
	type cs struct {
		count uint64
		sum   float64
	}
	read := func() map[string]cs {
		mfs := svcGather(t, c)
		r := map[string]cs{}
		for k, sel := range series {
			if m := svcFind(mfs, name, sel...); m != nil {
				r[k] = cs{m.Histogram.GetSampleCount(), m.Histogram.GetSampleSum()}
			}
		}
		return r
	}
	prev := read()
	seen := map[string]int{}
	done := func() bool {
		for k := range series {
			if len(out[k]) < n {
				return false
			}
		}
		return true
	}
	sample := func() bool {
		cur := read()
		for k := range series {
			dc := cur[k].count - prev[k].count
			if dc == 0 {
				continue
			}
			seen[k] += int(dc)
			if dc == 1 && seen[k] > skip && len(out[k]) < n {
				out[k] = append(out[k], cur[k].sum-prev[k].sum)
			}
		}
		prev = cur
		return done()
	}
	if !testutil.Eventually(time.Duration(n+skip+5)*2*time.Second, 15*time.Millisecond, sample) {
		t.Fatalf("%s: timed out collecting %d probes: have %v", name, n, out)
	}
	return out
}

// svcInjectedDelay measures what a delay injected in the lab adds to each
// series of the histogram name: the median of n probes after inject minus
// the median of n probes after clear, each skipping the probe in flight when
// the delays switched. It returns an error for every series more than tol
// off its want (a series not in want: no delay). Run it under lab.Tries: the lab's delays are
// timers, which a stalling machine moves by as much as the tolerance.
func svcInjectedDelay(t *testing.T, c collector.Collector, name string, n int, series map[string][]string, clear, inject func(), want map[string]time.Duration, tol time.Duration) error {
	t.Helper()
	clear()
	base := svcPerProbe(t, c, name, n, 1, series)
	inject()
	delayed := svcPerProbe(t, c, name, n, 1, series)
	var errs []error
	for _, k := range slices.Sorted(maps.Keys(series)) {
		b, d := svcMedian(base[k]), svcMedian(delayed[k])
		got, w := d-b, want[k].Seconds()
		t.Logf("%-10s baseline median %7.3f ms, delayed median %7.3f ms, measured delay %7.3f ms, injected %5.1f ms, error %+6.3f ms",
			k, b*1e3, d*1e3, got*1e3, w*1e3, (got-w)*1e3)
		if math.Abs(got-w) > tol.Seconds() {
			errs = append(errs, fmt.Errorf("%s: measured %.3f ms, injected %.1f ms (more than %v off; delayed values %v)", k, got*1e3, w*1e3, tol, delayed[k]))
		}
	}
	return errors.Join(errs...)
}

// svcFailuresByReason is target's failures_total of the probe family prefix
// (smokemon_tcp...) for every reason, for messages.
func svcFailuresByReason(mfs []*dto.MetricFamily, prefix, target string, reasons []string) map[string]float64 {
	by := map[string]float64{}
	for _, r := range reasons {
		by[r] = svcValue(mfs, prefix+"_failures_total", "target="+target, "reason="+r)
	}
	return by
}

func svcMedian(v []float64) float64 {
	if len(v) == 0 {
		return -1
	}
	s := slices.Clone(v)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// svcWait polls until cond holds on a fresh gather.
func svcWait(t *testing.T, c collector.Collector, what string, limit time.Duration, cond func([]*dto.MetricFamily) bool) []*dto.MetricFamily {
	t.Helper()
	var mfs []*dto.MetricFamily
	testutil.WaitFor(t, limit, what, func() bool {
		mfs = svcGather(t, c)
		return cond(mfs)
	})
	return mfs
}

// svcNoProbeGoroutines fails if a probe goroutine survived Close.
func svcNoProbeGoroutines(t *testing.T) {
	t.Helper()
	var stacks string
	if !testutil.Eventually(2*time.Second, 20*time.Millisecond, func() bool {
		buf := make([]byte, 1<<20)
		stacks = string(buf[:runtime.Stack(buf, true)])
		return !strings.Contains(stacks, "(*svcScheduler).loop") && !strings.Contains(stacks, "prober.Env.HTTP") &&
			!strings.Contains(stacks, "prober.Env.DNSExchange")
	}) {
		t.Errorf("probe goroutines left after Close:\n%s", stacks)
	}
}

func svcCAFile(t *testing.T, srv *lab.HTTPServer) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Cert.Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// svcPromtool runs `promtool check metrics` on the text exposition of mfs.
func svcPromtool(t *testing.T, mfs []*dto.MetricFamily) {
	t.Helper()
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			t.Fatal(err)
		}
	}
	testutil.PromtoolCheck(t, buf.Bytes())
}

// probeStats exports every reason from the start and success only once a
// probe has finished, and record tells the state before it, which callers
// use to log a change of state once.
func TestSvcProbeStats(t *testing.T) {
	d := newProbeDescs("test", "x_", []string{"target"}, []string{"b", "a"}, probeHelp{"p", "f", "s"})
	s := newProbeStats(newSvcHistogram("test", "x_duration_seconds", "h", prometheus.Labels{"target": "t"}))
	gather := func() []*dto.MetricFamily {
		return svcGather(t, fnCollector(func(ch chan<- prometheus.Metric) error {
			s.collect(ch, d, []string{"t"})
			return nil
		}))
	}
	mfs := gather()
	if v := svcValue(mfs, "smokemon_test_x_success", "target=t"); v != -1 {
		t.Errorf("success before any probe: %v", v)
	}
	for _, r := range []string{"a", "b"} {
		if v := svcValue(mfs, "smokemon_test_x_failures_total", "target=t", "reason="+r); v != 0 {
			t.Errorf("failures{reason=%s} before any probe: %v, want 0", r, v)
		}
	}
	if svcFind(mfs, "smokemon_test_x_duration_seconds", "target=t") == nil {
		t.Error("histogram not collected")
	}

	for i, st := range []struct {
		reason string
		wasOK  bool
	}{{"a", true}, {"b", false}, {"", false}, {"", true}, {"a", true}} {
		if got := s.record(st.reason); got != st.wasOK {
			t.Errorf("probe %d (reason %q): wasOK %v, want %v", i, st.reason, got, st.wasOK)
		}
	}
	mfs = gather()
	for _, c := range []struct {
		name string
		sel  []string
		want float64
	}{
		{"smokemon_test_x_probes_total", nil, 5},
		{"smokemon_test_x_failures_total", []string{"reason=a"}, 2},
		{"smokemon_test_x_failures_total", []string{"reason=b"}, 1},
		{"smokemon_test_x_success", nil, 0},
	} {
		if v := svcValue(mfs, c.name, append([]string{"target=t"}, c.sel...)...); v != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.sel, v, c.want)
		}
	}
}

var _ = config.FamilyAuto
