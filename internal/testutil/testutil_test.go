package testutil

import (
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestFreePortCanBeListenedOn(t *testing.T) {
	port := FreePort(t)
	if port <= 0 || port > 65535 {
		t.Fatalf("port %d out of range", port)
	}
	l, err := net.Listen("tcp", FreeAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	u, err := net.ListenPacket("udp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatalf("UDP port %d not free: %v", port, err)
	}
	u.Close()
}

func TestEventually(t *testing.T) {
	var n atomic.Int32
	if !Eventually(2*time.Second, time.Millisecond, func() bool { return n.Add(1) >= 3 }) {
		t.Fatal("a condition true on the third call was not met")
	}
	if got := n.Load(); got != 3 {
		t.Errorf("cond called %d times, want 3 (stop at the first true)", got)
	}
	begin := time.Now()
	if Eventually(30*time.Millisecond, 5*time.Millisecond, func() bool { return false }) {
		t.Fatal("a condition never true was reported met")
	}
	if d := time.Since(begin); d < 30*time.Millisecond {
		t.Errorf("gave up after %s, before the 30ms timeout", d)
	}
}

// TestBuildBinaryOnce builds a real main package twice and runs it: the
// second call must return the same binary without building again.
func TestBuildBinaryOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary")
	}
	dir := t.TempDir()
	os.WriteFile(dir+"/go.mod", []byte("module hello\n\ngo 1.24\n"), 0o644)
	os.WriteFile(dir+"/main.go", []byte("package main\n\nfunc main() { println(\"hello\") }\n"), 0o644)
	wd, _ := os.Getwd()
	if err := os.Chdir(dir); err != nil {
		t.Fatal(err)
	}
	defer os.Chdir(wd)
	a := BuildBinary(t, ".")
	st, err := os.Stat(a)
	if err != nil {
		t.Fatal(err)
	}
	if b := BuildBinary(t, "."); b != a {
		t.Errorf("second build gave %s, want the first one %s", b, a)
	}
	if st2, _ := os.Stat(a); !st2.ModTime().Equal(st.ModTime()) {
		t.Error("the binary was rebuilt")
	}
	out, err := exec.Command(a).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "hello") {
		t.Errorf("running the binary: %v %q", err, out)
	}
}

func TestMain(m *testing.M) { os.Exit(Run(m)) }

// Gather returns what the collectors report, through a pedantic registry.
func TestGather(t *testing.T) {
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "testutil_gauge", Help: "A gauge."})
	g.Set(3)
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "testutil_total", Help: "A counter."})
	mfs := Gather(t, g, c)
	if len(mfs) != 2 || mfs[0].GetName() != "testutil_gauge" || mfs[0].Metric[0].GetGauge().GetValue() != 3 || mfs[1].GetName() != "testutil_total" {
		t.Errorf("gathered %v", mfs)
	}
}
