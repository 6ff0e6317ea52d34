package probes

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"github.com/smokemon/smokemon/collector"
	"github.com/smokemon/smokemon/internal/bufferbloat"
	"github.com/smokemon/smokemon/internal/lab"
	"github.com/smokemon/smokemon/internal/pinger"
	"github.com/smokemon/smokemon/internal/prober"
	"github.com/smokemon/smokemon/internal/testutil"
)

// Unconfigured, the collector has no goroutines, no engine and no series; a
// reload adds and removes targets (and the engine) cleanly.
func TestBandwidthIdleUnlessConfigured(t *testing.T) {
	c, err := newBandwidth(testutil.Logger(), mustParse(t, "ping: {targets: []}\n"), testDeps(), "iperf3")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.engine.Load() != nil || len(c.targets) != 0 {
		t.Fatal("unconfigured collector opened an engine or has targets")
	}
	if err := c.Update(make(chan prometheus.Metric, 100)); !errors.Is(err, collector.ErrNoData) {
		t.Fatalf("Update = %v, want collector.ErrNoData", err)
	}
	if os.Geteuid() != 0 {
		return
	}
	// A target whose first run is a minute away: scheduled, not run.
	if err := reload(c, mustParse(t, "bandwidth: {targets: [{server: 127.0.0.1, interval: 1h, splay: 1m}]}\n")); err != nil {
		t.Fatal(err)
	}
	if c.engine.Load() == nil || len(c.targets) != 1 || c.targets[0].cancel == nil {
		t.Fatal("configured target not started")
	}
	body := bwScrape(t, c)
	if bwSample(body, `smokemon_bandwidth_runs_total{direction="upload",target="127.0.0.1"}`) != 0 ||
		strings.Contains(body, "smokemon_bandwidth_bytes_per_second") {
		t.Errorf("before the first run:\n%s", body)
	}
	if err := reload(c, mustParse(t, "ping: {targets: []}\n")); err != nil {
		t.Fatal(err)
	}
	if c.engine.Load() != nil || len(c.targets) != 0 {
		t.Error("engine or targets left after the last target was removed")
	}
}

// labBandwidth builds the collector with its ICMP sockets in h and an iperf3
// that runs in h (through `ip netns exec`), as if the exporter ran there.
func labBandwidth(t *testing.T, h *lab.Host, yml string) *bandwidthCollector {
	t.Helper()
	wrapper := filepath.Join(t.TempDir(), "iperf3")
	script := fmt.Sprintf("#!/bin/sh\nexec ip netns exec %s iperf3 \"$@\"\n", h.Name())
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(testWriter{t}, nil))
	var c *bandwidthCollector
	err := h.Do(func() (err error) {
		c, err = newBandwidth(logger, mustParse(t, yml), testDeps(), wrapper)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// bwScrape renders what a scrape of c returns, in the text format.
func bwScrape(t *testing.T, c collector.Collector) string {
	t.Helper()
	mfs := testutil.Gather(t, collector.SetOf(testutil.Logger(), map[string]collector.Collector{"bandwidth": c}))
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			t.Fatal(err)
		}
	}
	return buf.String()
}

// bwSample is the value of one exact series in a text scrape, NaN if absent.
func bwSample(body, series string) float64 {
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err == nil {
				return f
			}
		}
	}
	return math.NaN()
}

// waitRuns scrapes until every series given has counted at least one run.
func waitRuns(t *testing.T, c collector.Collector, limit time.Duration, series ...string) string {
	t.Helper()
	var body string
	done := testutil.Eventually(limit, 100*time.Millisecond, func() bool {
		body = bwScrape(t, c)
		for _, s := range series {
			if !(bwSample(body, s) >= 1) {
				return false
			}
		}
		return true
	})
	if !done {
		t.Fatalf("runs not done after %s:\n%s", limit, body)
	}
	return body
}

// The lab's uplink is shaped to 20 Mbit/s in both directions behind a 20 ms
// base RTT: iperf3 must find the rate, and ping under load must show the
// queue a deep buffer builds and a shallow one does not.
func TestBandwidthLabShapedLink(t *testing.T) {
	lab.Require(t)
	tp := lab.Topology(t)
	dst := tp.Dst[0]
	srv := dst.Iperf3Server(t, tp.Addr(dst, false).String())
	d := tp.Delay(t)
	d.Up.Set(lab.DelayParams{Delay: 10 * time.Millisecond})
	d.Down.Set(lab.DelayParams{Delay: 10 * time.Millisecond})
	const rate = 20_000_000
	// Pings of the first 2 s are left out: slow start overshooting the deep
	// buffer and the loss recovery after it take seconds at a 500 ms RTT.
	// The rate is the truth only where TCP keeps the link busy: with a buffer
	// below the path's BDP (20 Mbit/s × 20 ms = 50 kB; 5 ms is 12.5 kB) Reno's
	// sawtooth leaves it idle after each loss, so there the throughput may
	// only not exceed the rate. Reno, because CUBIC's HyStart leaves slow
	// start early on a jitter-free lab path and then takes many seconds to
	// fill a deep buffer. The deep case runs 6 s: the overshoot's recovery
	// costs about half a second of throughput, 12 % of a 4 s test.
	for i, tc := range []struct {
		name      string
		buffer    time.Duration
		duration  string
		saturates bool
		ok        func(increase float64) bool
		want      string
	}{
		{"deep", 500 * time.Millisecond, "6s", true, func(s float64) bool { return s > 0.100 }, "> 100 ms"},
		{"shallow", 5 * time.Millisecond, "4s", false, func(s float64) bool { return s < 0.030 }, "< 30 ms"},
	} {
		// iperf3 and tbf run on the machine's own CPUs: a machine stalled
		// for milliseconds at a time cannot fill the link. Tries retries a
		// try its stall watchdog caught.
		var body string
		lab.Tries(t, tc.name+" shaped link", func() error {
			undoUp := tp.Uplink.Shape(t, lab.SideA, lab.Shaping{Rate: rate, Buffer: tc.buffer})
			undoDown := tp.Uplink.Shape(t, lab.SideB, lab.Shaping{Rate: rate, Buffer: tc.buffer})
			c := labBandwidth(t, tp.Client, fmt.Sprintf(`
bandwidth:
  targets:
    - {server: %q, name: %s, splay: 0s, duration: %s, warmup: 2s, idle_duration: 1s, ping_interval: 20ms, congestion: reno}
`, srv, tc.name, tc.duration))
			body = waitRuns(t, c, 60*time.Second,
				fmt.Sprintf(`smokemon_bandwidth_runs_total{direction="upload",target="%s"}`, tc.name))
			c.Close()
			undoUp()
			undoDown()
			get := func(metric, labels string) float64 {
				return bwSample(body, fmt.Sprintf(`%s{%starget="%s"}`, metric, labels, tc.name))
			}
			idle := get("smokemon_bandwidth_idle_rtt_seconds", `percentile="50",`)
			var errs []error
			for _, dir := range []string{"download", "upload"} {
				dl := fmt.Sprintf(`direction="%s",`, dir)
				bps := get("smokemon_bandwidth_bytes_per_second", dl) * 8
				inc := get("smokemon_bandwidth_latency_increase_seconds", dl+`percentile="50",`)
				inc90 := get("smokemon_bandwidth_latency_increase_seconds", dl+`percentile="90",`)
				t.Logf("tbf %d bit/s, buffer %v, %s: %.2f Mbit/s (%.1f%% of rate), retransmits %v, RTT idle %.1f ms, loaded %.1f ms (p90 %.1f), increase %.1f ms (p90 %.1f), loaded ping loss %.3f",
					rate, tc.buffer, dir, bps/1e6, 100*bps/rate, get("smokemon_bandwidth_retransmits", dl),
					idle*1e3, get("smokemon_bandwidth_loaded_rtt_seconds", dl+`percentile="50",`)*1e3,
					get("smokemon_bandwidth_loaded_rtt_seconds", dl+`percentile="90",`)*1e3, inc*1e3, inc90*1e3,
					get("smokemon_bandwidth_loaded_ping_loss_ratio", dl))
				if get("smokemon_bandwidth_last_run_success", dl) != 1 {
					errs = append(errs, fmt.Errorf("%s %s: run failed:\n%s", tc.name, dir, body))
					continue
				}
				if tc.saturates && !(math.Abs(bps-rate) <= 0.1*rate) {
					errs = append(errs, fmt.Errorf("%s %s: throughput %.2f Mbit/s, want %d ± 10%%", tc.name, dir, bps/1e6, rate/1_000_000))
				}
				// Payload cannot pass a tbf faster than its rate (plus one
				// 25 kB burst): no stall explains more.
				if !(bps > 0 && bps <= 1.01*rate) {
					errs = append(errs, lab.NotTiming(fmt.Errorf("%s %s: throughput %.2f Mbit/s, more than the link carries", tc.name, dir, bps/1e6)))
				}
				if !tc.ok(inc) {
					errs = append(errs, fmt.Errorf("%s %s: median latency increase %.1f ms, want %s", tc.name, dir, inc*1e3, tc.want))
				}
			}
			return errors.Join(errs...)
		})
		t.Logf("%s: %s", tc.name, firstLine(body, "smokemon_bandwidth_bufferbloat_grade_info"))
		if i == 0 {
			testutil.PromtoolCheck(t, []byte(body))
		}
	}
}

func firstLine(body, prefix string) string {
	for _, l := range strings.Split(body, "\n") {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}

// A server busy with someone else's test is retried with backoff, counted,
// and a failure only when the retries run out; never a crash.
func TestBandwidthLabBusyServer(t *testing.T) {
	lab.Require(t)
	tp := lab.Topology(t)
	dst := tp.Dst[0]
	srv := dst.Iperf3Server(t, tp.Addr(dst, false).String())
	host, _, _ := net.SplitHostPort(srv)
	blocker := tp.Client.Start(t, "iperf3", "-c", host, "-t", "60", "-b", "1M")
	time.Sleep(500 * time.Millisecond) // let it take the server

	c := labBandwidth(t, tp.Client, fmt.Sprintf(`
bandwidth:
  targets:
    - {server: %q, name: gives-up, splay: 0s, directions: [upload], duration: 1s, warmup: 0s, idle_duration: 300ms, ping_interval: 20ms, busy_retries: 2, busy_backoff: 200ms}
`, srv))
	start := time.Now()
	body := waitRuns(t, c, 30*time.Second, `smokemon_bandwidth_runs_total{direction="upload",target="gives-up"}`)
	c.Close()
	t.Logf("gave up after %v", time.Since(start).Round(time.Millisecond))
	up := func(metric, labels, target string) float64 {
		return bwSample(body, fmt.Sprintf(`%s{direction="upload",%starget="%s"}`, metric, labels, target))
	}
	if f := up("smokemon_bandwidth_failures_total", `reason="server_busy",`, "gives-up"); f != 1 {
		t.Errorf("server_busy failures = %v, want 1\n%s", f, body)
	}
	if r := up("smokemon_bandwidth_server_busy_retries_total", "", "gives-up"); r != 2 {
		t.Errorf("busy retries = %v, want 2", r)
	}
	if s := up("smokemon_bandwidth_last_run_success", "", "gives-up"); s != 0 {
		t.Errorf("last_run_success = %v", s)
	}

	c = labBandwidth(t, tp.Client, fmt.Sprintf(`
bandwidth:
  targets:
    - {server: %q, name: retries, splay: 0s, directions: [upload], duration: 1s, warmup: 0s, idle_duration: 300ms, ping_interval: 20ms, busy_retries: 5, busy_backoff: 500ms}
`, srv))
	// Free the server once the collector has met it busy: the next retry wins.
	if !testutil.Eventually(20*time.Second, 50*time.Millisecond, func() bool {
		return bwSample(bwScrape(t, c), `smokemon_bandwidth_server_busy_retries_total{direction="upload",target="retries"}`) >= 1
	}) {
		t.Fatal("the collector never found the server busy")
	}
	// SIGINT, so the client tells the server it is leaving: iperf3 3.12's
	// server stays busy for a long while after a client that just vanishes.
	syscall.Kill(blocker.Process.Pid, syscall.SIGINT)
	body = waitRuns(t, c, 30*time.Second, `smokemon_bandwidth_runs_total{direction="upload",target="retries"}`)
	retries := up("smokemon_bandwidth_server_busy_retries_total", "", "retries")
	t.Logf("succeeded after %v busy retries: %.2f Mbit/s", retries, up("smokemon_bandwidth_bytes_per_second", "", "retries")*8/1e6)
	if s := up("smokemon_bandwidth_last_run_success", "", "retries"); s != 1 {
		t.Errorf("last_run_success = %v after the server became free\n%s", s, body)
	}
	if retries < 1 {
		t.Errorf("busy retries = %v", retries)
	}
	for _, r := range prober.Iperf3Reasons {
		if f := up("smokemon_bandwidth_failures_total", `reason="`+r+`",`, "retries"); f != 0 {
			t.Errorf("failures{reason=%q} = %v", r, f)
		}
	}
}

// Servers that refuse, drop or hang each cost one bounded, counted failure,
// and no iperf3 is left behind.
func TestBandwidthLabUnreachable(t *testing.T) {
	lab.Require(t)
	tp := lab.Topology(t)
	dst := tp.Dst[0]
	ip := tp.Addr(dst, false).String()
	dst.DropRandom(t, 1, "tcp dport 5210")
	// Accepts the control connection, then never answers: only the timeout ends it.
	ln, err := dst.Listen("tcp", net.JoinHostPort(ip, "5211"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		var held []net.Conn
		for {
			conn, err := ln.Accept()
			if err != nil {
				for _, c := range held {
					c.Close()
				}
				return
			}
			held = append(held, conn)
		}
	}()
	c := labBandwidth(t, tp.Client, fmt.Sprintf(`
bandwidth:
  targets:
    - {server: "%[1]s:5209", name: refused, splay: 0s, directions: [upload], duration: 1s, warmup: 0s, idle_duration: 300ms, ping_interval: 20ms}
    - {server: "%[1]s:5210", name: dropped, splay: 0s, directions: [upload], duration: 1s, warmup: 0s, idle_duration: 300ms, ping_interval: 20ms, connect_timeout: 1s}
    - {server: "%[1]s:5211", name: hung, splay: 0s, directions: [upload], duration: 1s, warmup: 0s, idle_duration: 300ms, ping_interval: 20ms, timeout: 2s}
`, ip))
	start := time.Now()
	series := func(target string) string {
		return fmt.Sprintf(`smokemon_bandwidth_runs_total{direction="upload",target="%s"}`, target)
	}
	body := waitRuns(t, c, 30*time.Second, series("refused"), series("dropped"), series("hung"))
	took := time.Since(start)
	t.Logf("three failed runs took %v", took.Round(time.Millisecond))
	// 3 × 300 ms idle + 1 s connect timeout + 2 s kill, plus slack for process start-up.
	if took > 8*time.Second {
		t.Errorf("failed runs took %v: not bounded by their timeouts", took)
	}
	for target, reason := range map[string]string{"refused": prober.Iperf3Unreachable, "dropped": prober.Iperf3Timeout, "hung": prober.Iperf3Timeout} {
		f := bwSample(body, fmt.Sprintf(`smokemon_bandwidth_failures_total{direction="upload",reason="%s",target="%s"}`, reason, target))
		if f != 1 {
			t.Errorf("%s: failures{reason=%q} = %v, want 1", target, reason, f)
		}
		if s := bwSample(body, fmt.Sprintf(`smokemon_bandwidth_last_run_success{direction="upload",target="%s"}`, target)); s != 0 {
			t.Errorf("%s: last_run_success = %v", target, s)
		}
	}
	if out, _ := exec.Command("ip", "netns", "pids", tp.Client.Name()).Output(); len(bytes.TrimSpace(out)) > 0 {
		ps, _ := exec.Command("ps", "-o", "pid,comm", "-p", strings.Join(strings.Fields(string(out)), ",")).Output()
		t.Errorf("processes left in the client namespace:\n%s", ps)
	}
	testutil.PromtoolCheck(t, []byte(body))
}

// Every probe of a window is accounted for as soon as its reply is in, so
// a phase ends one RTT after its window, not one ping timeout.
func TestBufferbloatSamplerDrainsPromptly(t *testing.T) {
	eng, err := pinger.New(testutil.Logger(), pinger.Options{Families: []pinger.Family{pinger.IPv4}})
	if err != nil {
		t.Skipf("no ICMP socket: %v", err)
	}
	defer eng.Close()
	// A stalled machine sends fewer probes in the window and answers late;
	// Tries retries a try its stall watchdog caught.
	lab.Tries(t, "rtt sampler drain", func() error {
		now := time.Now()
		s := bufferbloat.NewSampler(now, now.Add(500*time.Millisecond), 10*time.Millisecond, 2*time.Second)
		h := eng.Add(netip.MustParseAddr("127.0.0.1"), pinger.Settings{Interval: 10 * time.Millisecond, Timeout: 2 * time.Second, Size: 56}, s)
		time.Sleep(500 * time.Millisecond)
		begin := time.Now()
		s.Drain(t.Context())
		waited := time.Since(begin)
		eng.Remove(h)
		sum := s.Summary()
		t.Logf("drain waited %v; %d probes, %d lost, median %v", waited, sum.Sent, sum.Lost, sum.Q[0])
		var errs []error
		if waited > 200*time.Millisecond {
			errs = append(errs, fmt.Errorf("drain waited %v for loopback replies", waited))
		}
		if !sum.OK || sum.Sent < 40 || sum.Sent > 52 || sum.Lost != 0 {
			errs = append(errs, fmt.Errorf("summary %+v, want about 50 answered probes", sum))
		}
		return errors.Join(errs...)
	})
}
