// Package testutil is the one home of the helpers smokemon's tests share: a
// free loopback port, a binary built once per test process, polling until a
// condition holds, a logger that discards, and a pedantic gather. Tests use real servers and
// processes; nothing here fakes one.
package testutil

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// FreePort returns a loopback port that was free for both TCP and UDP a moment
// ago. Another process can still take it: tests that start servers on it
// should fail clearly, not hang, when that happens.
func FreePort(t testing.TB) int {
	t.Helper()
	port, err := LoopbackPort()
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// LoopbackPort is FreePort for programs without a testing.TB (the benches).
func LoopbackPort() (int, error) {
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		u, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
		if err == nil {
			u.Close()
			return port, nil
		}
	}
	return 0, errors.New("no port free for both TCP and UDP on 127.0.0.1 after 20 tries")
}

// FreeAddr is FreePort as a dialable "127.0.0.1:port".
func FreeAddr(t testing.TB) string {
	t.Helper()
	return fmt.Sprintf("127.0.0.1:%d", FreePort(t))
}

var (
	buildMu  sync.Mutex
	buildDir string
	built    = map[string]string{}
)

// BuildBinary builds the main package pkg (an import path, or a directory
// relative to the test's package) once per test process and returns the
// binary's path. The directory is world-readable, so a test can also run the
// binary as an unprivileged user; Run removes it when the tests end.
func BuildBinary(t testing.TB, pkg string) string {
	t.Helper()
	key := pkg
	if strings.HasPrefix(pkg, ".") || filepath.IsAbs(pkg) {
		abs, err := filepath.Abs(pkg)
		if err != nil {
			t.Fatal(err)
		}
		key = abs
	}
	buildMu.Lock()
	defer buildMu.Unlock()
	if p, ok := built[key]; ok {
		return p
	}
	if buildDir == "" {
		d, err := os.MkdirTemp("", "smokemon-testbin-")
		if err != nil {
			t.Fatal(err)
		}
		os.Chmod(d, 0o755)
		buildDir = d
	}
	name := filepath.Base(key)
	out := filepath.Join(buildDir, fmt.Sprintf("%s-%d", name, len(built)), name)
	if b, err := exec.Command("go", "build", "-o", out, pkg).CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	built[key] = out
	return out
}

// Run runs the tests of a package whose TestMain wants the binaries of
// BuildBinary removed at the end: os.Exit(testutil.Run(m)).
func Run(m *testing.M) int {
	code := m.Run()
	buildMu.Lock()
	defer buildMu.Unlock()
	if buildDir != "" {
		os.RemoveAll(buildDir)
		buildDir, built = "", map[string]string{}
	}
	return code
}

// Eventually calls cond every step until it returns true or timeout has
// passed, and reports whether it came true. cond is always called at least
// once, and once more after the timeout, so a slow machine gets a last look.
func Eventually(timeout, step time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return cond()
		}
		time.Sleep(step)
	}
	return true
}

// WaitFor is Eventually (polling every 20ms) that fails the test, naming
// what it waited for, when cond does not come true in time.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	if !Eventually(timeout, 20*time.Millisecond, cond) {
		t.Fatalf("still waiting after %s for %s", timeout, what)
	}
}

// Logger is a logger that discards everything, for code under test that must
// be given one.
func Logger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// PromtoolCheck fails the test on anything `promtool check metrics` reports
// about a text exposition, and skips it where promtool is not installed (the
// Debian package prometheus has it).
func PromtoolCheck(t testing.TB, exposition []byte) {
	t.Helper()
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (Debian package prometheus): metric lint skipped")
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(exposition)
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

// Gather registers cs with a pedantic registry and gathers them once,
// failing the test on any error: the registry refuses inconsistent label
// sets, bad names and invalid help, as a careful scraper would.
func Gather(t testing.TB, cs ...prometheus.Collector) []*dto.MetricFamily {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(cs...)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	return mfs
}
