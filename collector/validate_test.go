package collector

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/procfs"
)

// updateOne runs one host collector against the tree at root and returns
// its error and series.
func updateOne(t *testing.T, root, name string) (map[string]float64, error) {
	t.Helper()
	withPaths(t, root)
	c, err := factories[name].factory(slog.New(slog.DiscardHandler), testConfig())
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan prometheus.Metric, 1024)
	err = safeUpdate(c, ch)
	close(ch)
	got := map[string]float64{}
	for m := range ch {
		got[m.Desc().String()] = 1
	}
	return got, err
}

func TestInvalidProcFilesFailWithTheirName(t *testing.T) {
	for _, c := range []struct {
		collector, file, content, wantErr string
	}{
		{"cpu", "proc/stat", "", "proc/stat: no per-CPU lines"},
		{"cpu", "proc/stat", "intr 1 2 3\nctxt 5\n", "proc/stat: no per-CPU lines"},
		{"cpu", "proc/stat", "cpu  0 0 0 0 0 0 0 0 0 0\ncpu0 0 0 0 0 0 0 0 0 0 0\nbtime 1\n", "no time in any mode"},
		{"memory", "proc/meminfo", "", "proc/meminfo: no MemTotal"},
		{"memory", "proc/meminfo", "MemFree: 100 kB\nCached: 5 kB\n", "proc/meminfo: no MemTotal"},
		{"memory", "proc/meminfo", "MemTotal: 100 kB\nMemFree: 200 kB\n", "MemFree 204800 above MemTotal"},
	} {
		t.Run(c.collector+"/"+c.content, func(t *testing.T) {
			root := copyFixture(t, "rpi4")
			if err := os.WriteFile(filepath.Join(root, c.file), []byte(c.content), 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := updateOne(t, root, c.collector)
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Fatalf("error %v, want one containing %q (series: %d)", err, c.wantErr, len(got))
			}
		})
	}
}

func TestCPUCounterBackwardsIsAnError(t *testing.T) {
	root := copyFixture(t, "rpi4")
	withPaths(t, root)
	c, err := newCPUCollector(slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	discard := func() error {
		ch := make(chan prometheus.Metric, 1024)
		defer close(ch)
		return c.Update(ch)
	}
	if err := discard(); err != nil {
		t.Fatal(err)
	}
	stat := filepath.Join(root, "proc", "stat")
	b, _ := os.ReadFile(stat)
	first, rest, _ := bytes.Cut(b, []byte("\n"))
	f := strings.Fields(string(first))
	f[4] = "1" // idle far below the first read's, same btime
	os.WriteFile(stat, append([]byte(strings.Join(f, " ")+"\n"), rest...), 0o644)
	if err := discard(); err == nil || !strings.Contains(err.Error(), "proc/stat: counter idle went backwards") {
		t.Fatalf("error %v, want idle going backwards named", err)
	}
}

// A /proc/net/dev line cut short panics inside procfs; that must cost the
// interface series only, not the TCP, UDP and conntrack ones.
func TestTruncatedNetDevLosesOnlyItsSeries(t *testing.T) {
	root := copyFixture(t, "rpi4")
	dev := filepath.Join(root, "proc", "1", "net", "dev")
	b, _ := os.ReadFile(dev)
	lines := strings.Split(string(b), "\n")
	lines[3] = " eth0: 912244871 802211 0 12 0 0 0 0 88120334"
	os.WriteFile(dev, []byte(strings.Join(lines, "\n")), 0o644)

	withPaths(t, root)
	c, _ := newNetstatCollector(slog.New(slog.DiscardHandler))
	var buf strings.Builder
	c.(*netstatCollector).logger = slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ch := make(chan prometheus.Metric, 1024)
	if err := c.Update(ch); err != nil {
		t.Fatal(err)
	}
	close(ch)
	var tcp, netdev int
	for m := range ch {
		s := m.Desc().String()
		switch {
		case strings.Contains(s, "smokemon_netstat_tcp_"):
			tcp++
		case strings.Contains(s, "smokemon_network_"):
			netdev++
		}
	}
	if tcp == 0 || netdev != 0 {
		t.Errorf("tcp series %d (want > 0), interface series %d (want 0)", tcp, netdev)
	}
	if !strings.Contains(buf.String(), filepath.Join(root, "proc", "net", "dev")+": parser panicked") {
		t.Errorf("the skip does not name /proc/net/dev and procfs' panic:\n%s", buf.String())
	}
}

// Concurrent scrapes finish their /proc/stat reads in any order: a read
// that began before a stored one finished is older, not backwards.
func TestCPUOverlappingReadsAreNotBackwards(t *testing.T) {
	c := &cpuCollector{}
	stat := func(idle float64) procfs.Stat {
		return procfs.Stat{BootTime: 7, CPUTotal: procfs.CPUStat{Idle: idle}}
	}
	t0 := time.Now()
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	// B read idle=11 between 1 and 2 ms; A began at 0 ms, read idle=10 and
	// finished at 3 ms.
	if err := c.checkBackwards(stat(11), at(1), at(2)); err != nil {
		t.Fatal(err)
	}
	if err := c.checkBackwards(stat(10), at(0), at(3)); err != nil {
		t.Fatalf("an overlapping older read was called backwards: %v", err)
	}
	// C began after A finished: it must not be below A.
	if err := c.checkBackwards(stat(9), at(4), at(5)); err == nil {
		t.Fatal("a read below one that finished before it began passed")
	}
}
