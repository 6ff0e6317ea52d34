package main

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/smokemon/smokemon/analyzer/scenario"
	"github.com/smokemon/smokemon/internal/testutil"
)

// prometheusOn runs a real Prometheus on addr over dataDir (empty: the
// analyzer's queries answer, with no series) and returns its stop.
func prometheusOn(t *testing.T, addr, dataDir string) func() {
	t.Helper()
	cfg := filepath.Join(dataDir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte("global:\n  scrape_interval: 1h\nscrape_configs: []\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var logs testutil.SyncBuffer
	cmd := exec.Command(scenario.UpstreamOr("prometheus"), "--config.file="+cfg, "--storage.tsdb.path="+dataDir,
		"--web.listen-address="+addr)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cmd.Process.Signal(syscall.SIGTERM)
			cmd.Wait()
		}
	}
	t.Cleanup(stop)
	if !testutil.Eventually(60*time.Second, 100*time.Millisecond, func() bool { return code("http://"+addr+"/-/ready") == 200 }) {
		t.Fatalf("prometheus on %s not ready:\n%s", addr, logs.String())
	}
	return stop
}

// code is the status of GET u, 0 when it cannot connect.
func code(u string) int {
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(u)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

var (
	failedLine    = regexp.MustCompile(`level=WARN .*msg="cycle failed: blind, holding the previous state" failed_queries=(\d+) queries=(\d+) first_err=".*connection refused`)
	recoveredLine = regexp.MustCompile(`level=INFO .*msg="cycle succeeded again: queries answer" failed_cycles=(\d+)`)
)

// The analyzer started before its Prometheus, which then stops and comes
// back on the same port: /-/healthy is 200 throughout, /-/ready follows
// the query API, each failed cycle is one WARN line naming the first error
// and the count, and each recovery one INFO line. SIGHUP leaves it serving.
func TestHealthReadinessAndCycleLogs(t *testing.T) {
	promAddr := testutil.FreeAddr(t)
	dataDir := t.TempDir()
	addr := testutil.FreeAddr(t)
	var logs testutil.SyncBuffer
	cmd := exec.Command(analyzerBin(t), "--prometheus.url=http://"+promAddr, "--evaluation-interval=1s", "--lookback=5m",
		"serve", "--web.listen-address="+addr)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("analyzer log:\n%s", logs.String())
		}
	}()
	base := "http://" + addr
	testutil.WaitFor(t, 10*time.Second, "/-/healthy", func() bool { return code(base+"/-/healthy") == 200 })
	testutil.WaitFor(t, 10*time.Second, "a failed cycle", func() bool { return failedLine.MatchString(logs.String()) })
	if c := code(base + "/-/ready"); c != http.StatusServiceUnavailable {
		t.Errorf("/-/ready %d with Prometheus not there, want 503", c)
	}

	stop := prometheusOn(t, promAddr, dataDir)
	testutil.WaitFor(t, 15*time.Second, "/-/ready 200 once Prometheus answers", func() bool { return code(base+"/-/ready") == 200 })
	testutil.CheckLinks(t, &http.Client{Timeout: 5 * time.Second}, base)

	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 5*time.Second, "the SIGHUP line", func() bool { return strings.Contains(logs.String(), "SIGHUP ignored") })
	time.Sleep(1500 * time.Millisecond) // a cycle after the signal
	if cmd.ProcessState != nil || code(base+"/-/healthy") != 200 || code(base+"/-/ready") != 200 {
		t.Fatalf("after SIGHUP the analyzer stopped serving (healthy %d, ready %d)", code(base+"/-/healthy"), code(base+"/-/ready"))
	}

	before := len(logs.String())
	began := time.Now()
	stop()
	testutil.WaitFor(t, 10*time.Second, "/-/ready 503 with Prometheus stopped", func() bool { return code(base+"/-/ready") == 503 })
	time.Sleep(4 * time.Second) // a few failed cycles
	prometheusOn(t, promAddr, dataDir)
	testutil.WaitFor(t, 15*time.Second, "/-/ready 200 with Prometheus back", func() bool { return code(base+"/-/ready") == 200 })
	outage := time.Since(began)
	time.Sleep(1500 * time.Millisecond)

	during := logs.String()[before:]
	failed := failedLine.FindAllStringSubmatch(during, -1)
	cycles := int(outage/time.Second) + 1
	t.Logf("outage of %v: %d WARN lines, log:\n%s", outage.Round(time.Millisecond), len(failed), during)
	if len(failed) < 3 || len(failed) > cycles {
		t.Errorf("%d failed-cycle lines in an outage of %v, want one per cycle (3 to %d)", len(failed), outage, cycles)
	}
	for _, m := range failed {
		if m[1] == "0" || m[1] != m[2] {
			t.Errorf("failed cycle with Prometheus down: failed_queries=%s of queries=%s, want all of them", m[1], m[2])
		}
	}
	if n := strings.Count(during, "level=WARN"); n != len(failed) {
		t.Errorf("%d WARN lines, %d of them the cycle's: one line per cycle, not one per query", n, len(failed))
	}
	rec := recoveredLine.FindAllStringSubmatch(during, -1)
	if len(rec) != 1 || rec[0][1] != fmt.Sprint(len(failed)) {
		t.Errorf("recovery lines %v, want one saying failed_cycles=%d", rec, len(failed))
	}
}
