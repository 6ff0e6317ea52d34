package collector

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/smokemon/smokemon/internal/lab"
	"github.com/smokemon/smokemon/internal/testutil"
)

// copyFixture copies a fixture board to a temporary tree the test may spoil.
func copyFixture(t testing.TB, board string) string {
	t.Helper()
	dst := t.TempDir()
	out, err := exec.Command("cp", "-a", filepath.Join("testdata", "fixtures", board)+"/.", dst).CombinedOutput()
	if err != nil {
		t.Fatalf("copy fixture %s: %v: %s", board, err, out)
	}
	return dst
}

// makeFIFO replaces path with a FIFO that nobody writes: opening it for
// reading blocks, as a read from a dead driver does. The returned func
// releases the reader stuck on it (open for writing, then close: EOF).
func makeFIFO(t testing.TB, path string) (release func()) {
	t.Helper()
	os.Remove(path)
	if err := syscall.Mkfifo(path, 0o644); err != nil {
		t.Fatal(err)
	}
	release = func() { makeFIFORelease(path) }
	t.Cleanup(release)
	return release
}

func makeFIFORelease(path string) {
	if fd, err := syscall.Open(path, syscall.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
		syscall.Close(fd)
	}
}

// gatherSet scrapes set once and returns every series as "name{labels} value".
func gatherSet(t testing.TB, set *Set) map[string]float64 {
	t.Helper()
	mfs := testutil.Gather(t, set)
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			out[seriesKey(mf.GetName(), m)] = metricValue(m)
		}
	}
	return out
}

func seriesKey(name string, m *dto.Metric) string {
	var ls []string
	for _, l := range m.GetLabel() {
		ls = append(ls, l.GetName()+"="+l.GetValue())
	}
	return name + "{" + strings.Join(ls, ",") + "}"
}

func metricValue(m *dto.Metric) float64 {
	switch {
	case m.Gauge != nil:
		return m.GetGauge().GetValue()
	case m.Counter != nil:
		return m.GetCounter().GetValue()
	case m.Untyped != nil:
		return m.GetUntyped().GetValue()
	}
	return 0
}

func TestStuckCollectorMissesOnlyItsDeadline(t *testing.T) {
	root := copyFixture(t, "rpi4")
	withPaths(t, root)
	meminfo := filepath.Join(root, "proc", "meminfo")
	good, err := os.ReadFile(meminfo)
	if err != nil {
		t.Fatal(err)
	}
	makeFIFO(t, meminfo)
	set := newHostSet(t, noNL80211)
	set.Collector("disk").(*diskCollector).statfs = fixtureStatfs
	const deadline = 200 * time.Millisecond
	set.SetTimeout(deadline)

	goroutines := runtime.NumGoroutine()
	var took []time.Duration
	first := time.Duration(0)
	for i := range 100 {
		begin := time.Now()
		got := gatherSet(t, set)
		took = append(took, time.Since(begin))
		if i == 0 {
			first = took[0]
		}
		if v, ok := got["smokemon_scrape_collector_success{collector=memory}"]; !ok || v != 0 {
			t.Fatalf("scrape %d: memory success = %v, %v; want 0", i, v, ok)
		}
		if got["smokemon_scrape_collector_stuck{collector=memory}"] != 1 {
			t.Fatalf("scrape %d: memory not reported stuck", i)
		}
		if got["smokemon_scrape_collector_success{collector=cpu}"] != 1 || got["smokemon_cpu_online{}"] == 0 {
			t.Fatalf("scrape %d: the cpu collector lost its series to the stuck memory collector", i)
		}
		if _, ok := got["smokemon_memory_total_bytes{}"]; ok {
			t.Fatalf("scrape %d: a stuck collector's series were reported", i)
		}
	}
	// One goroutine (and thread) stays stuck in the open of the FIFO, with
	// its collecting goroutine: a stuck collector is not started again.
	if n := runtime.NumGoroutine(); n > goroutines+4 {
		t.Errorf("goroutines grew from %d to %d over 100 scrapes with a stuck collector", goroutines, n)
	}
	slices.Sort(took)
	median := took[len(took)/2]
	// The first scrape waits out the deadline; the later ones do not start
	// the stuck collector at all.
	t.Logf("100 scrapes with /proc/meminfo a FIFO, deadline %v: first %v, median %v, max %v", deadline, first, median, took[len(took)-1])
	lab.Tries(t, "scrapes with a stuck collector within deadline+50ms", func() error {
		if median > deadline+50*time.Millisecond || took[len(took)-1] > deadline+50*time.Millisecond {
			return fmt.Errorf("median scrape %v, slowest %v: over deadline %v + 50ms", median, took[len(took)-1], deadline)
		}
		return nil
	})

	// Once the read returns, the collector runs again.
	os.Remove(meminfo + ".tmp")
	if err := os.WriteFile(meminfo+".tmp", good, 0o644); err != nil {
		t.Fatal(err)
	}
	fifo := meminfo + ".fifo"
	if err := os.Rename(meminfo, fifo); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(meminfo+".tmp", meminfo); err != nil {
		t.Fatal(err)
	}
	makeFIFORelease(fifo)
	if !testutil.Eventually(time.Second, 10*time.Millisecond, func() bool {
		return gatherSet(t, set)["smokemon_scrape_collector_stuck{collector=memory}"] == 0
	}) {
		t.Error("memory still reported stuck after its read returned")
	}
	if got := gatherSet(t, set); got["smokemon_scrape_collector_success{collector=memory}"] != 1 {
		t.Error("memory collector did not recover once its file could be read")
	}
}
