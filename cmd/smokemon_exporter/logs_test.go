package main

import (
	"encoding/json"
	"fmt"
	"net"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/smokemon/smokemon/internal/lograte"
	"github.com/smokemon/smokemon/internal/testutil"
)

// loopbackTargets is a config pinging n loopback addresses: with a few
// hundred, a scrape's answer is hundreds of KB, still being written when a
// client hangs up.
func loopbackTargets(t *testing.T, n int) string {
	var b strings.Builder
	b.WriteString("ping:\n  targets:\n")
	for i := range n {
		fmt.Fprintf(&b, "    - host: 127.0.%d.%d\n", 10+i/250, 1+i%250)
	}
	return writeFile(t, t.TempDir(), "targets.yml", b.String())
}

// 200 scrapes that hang up mid-answer: on main that was up to 75 ERROR
// lines each. Now each is one debug line, held to the rate limit's burst,
// and what was dropped shows in the counter.
func TestDisconnectStormIsQuiet(t *testing.T) {
	e := start(t, "--config.file="+loopbackTargets(t, 300), "--log.level=debug")
	testutil.WaitFor(t, 20*time.Second, "/-/ready", func() bool {
		resp, err := e.client.Get(e.base + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	e.scrape(t)
	suppressedBefore := sample(e.scrape(t), `smokemon_exporter_log_messages_suppressed_total{level="debug"}`)
	logBefore := len(e.out.String())
	addr := strings.TrimPrefix(e.base, "http://")
	began := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var hungUp int
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 25 {
				if _, err := testutil.HangUp(addr, "/metrics", 4096); err == nil {
					mu.Lock()
					hungUp++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	took := time.Since(began)
	if hungUp < 190 {
		t.Fatalf("only %d of 200 scrapes got 4 KB of an answer before hanging up", hungUp)
	}
	time.Sleep(200 * time.Millisecond) // the last handlers log after the client is gone
	storm := e.out.String()[logBefore:]
	lines := strings.Split(strings.TrimSpace(storm), "\n")
	t.Logf("%d hang-ups in %v: %d log lines", hungUp, took.Round(time.Millisecond), len(lines))
	if m := regexp.MustCompile(`(?m)^.*level=(INFO|WARN|ERROR).*(broken pipe|connection reset).*$`).FindString(storm); m != "" {
		t.Errorf("a disconnect logged above debug: %s", m)
	}
	gone := strings.Count(storm, `msg="scrape client went away before the answer was written"`)
	windows := 1 + int(took/lograte.DefaultInterval)
	if gone < 1 || gone > lograte.DefaultBurst*windows {
		t.Errorf("%d disconnect lines, want 1 to %d (the rate limit's burst)", gone, lograte.DefaultBurst*windows)
	}
	if strings.Contains(storm, "error encoding and sending metric family") {
		t.Error("promhttp's per-family write errors reached the log")
	}
	// The ordinary debug lines of 200 scrapes (a dozen collectors with no
	// data here) are held to the burst per collector; main wrote 76 lines
	// per hang-up, 15 000 for these 200.
	if len(lines) > 15*lograte.DefaultBurst*windows {
		t.Errorf("%d log lines for 200 hang-ups:\n%s", len(lines), storm)
	}
	after := sample(e.scrape(t), `smokemon_exporter_log_messages_suppressed_total{level="debug"}`)
	if !(after-suppressedBefore >= float64(hungUp-lograte.DefaultBurst*windows)) {
		t.Errorf("suppressed{level=debug} rose by %v over %d hang-ups, want at least %d", after-suppressedBefore, hungUp, hungUp-lograte.DefaultBurst*windows)
	}
}

// A client that gives up on the TLS handshake: net/http logs it through
// the server's ErrorLog, which must come out as JSON like every other line
// when --log.format=json, and not flood when many do it.
func TestTLSHandshakeErrorInLogFormat(t *testing.T) {
	webCfg, _ := tlsWebConfig(t, t.TempDir())
	addr := testutil.FreeAddr(t)
	out := &syncBuffer{}
	cmd := exec.Command(exporterBin(t), "--web.listen-address="+addr, "--web.config.file="+webCfg, "--log.format=json")
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	testutil.WaitFor(t, 10*time.Second, "the TLS listener", func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	for range 50 { // not a TLS client: a TCP health check, a port scan
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Write([]byte("\x16\x03\x01\x00\x04junk"))
			c.Close()
		}
	}
	testutil.WaitFor(t, 5*time.Second, "the handshake error in the log", func() bool {
		return strings.Contains(out.String(), `"msg":"TLS handshake failed"`)
	})
	time.Sleep(200 * time.Millisecond)
	handshakes := 0
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Errorf("not in the configured format (JSON): %q", line)
			continue
		}
		if m["msg"] == "TLS handshake failed" {
			handshakes++
			if m["level"] != "WARN" || m["remote"] == nil || m["err"] == nil {
				t.Errorf("handshake record %v", m)
			}
		}
	}
	if handshakes < 1 || handshakes > lograte.DefaultBurst {
		t.Errorf("%d handshake lines for 51 failed handshakes, want 1 to %d", handshakes, lograte.DefaultBurst)
	}
}
