package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/smokemon/smokemon/internal/lab"
)

// stuckStatTree copies the rpi4 fixture tree with a FIFO in place of
// /proc/stat, so that reading it blocks; release opens the FIFO for
// writing, which lets a stuck reader go.
func stuckStatTree(t *testing.T) (root string, release func()) {
	t.Helper()
	root = t.TempDir()
	if out, err := exec.Command("cp", "-a", "../../collector/testdata/fixtures/rpi4/.", root).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	stat := filepath.Join(root, "proc", "stat")
	os.Remove(stat)
	if err := syscall.Mkfifo(stat, 0o644); err != nil {
		t.Fatal(err)
	}
	return root, func() {
		if fd, err := syscall.Open(stat, syscall.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			syscall.Close(fd)
		}
	}
}

func TestScrapeDeadline(t *testing.T) {
	for _, c := range []struct {
		header string
		want   time.Duration
	}{
		{"", 10 * time.Second},     // no header: the flag's default
		{"2.5", 2 * time.Second},   // less the offset
		{"0.2", minDeadline},       // never below the floor
		{"junk", 10 * time.Second}, // an unreadable header is ignored
		{"-3", 10 * time.Second},   // as is a negative one
		{"15", 15*time.Second - 500*time.Millisecond},
	} {
		r := httptest.NewRequest("GET", "/metrics", nil)
		if c.header != "" {
			r.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", c.header)
		}
		if got := scrapeDeadline(r, 10*time.Second, 500*time.Millisecond); got != c.want {
			t.Errorf("header %q: deadline %v, want %v", c.header, got, c.want)
		}
	}
}

// A FIFO in place of /proc/stat in a --path.procfs tree blocks the cpu
// collector's read forever: every scrape must still answer, on time, with
// ping's series, and say which collector is stuck.
func TestStuckProcFileDoesNotHangScrapes(t *testing.T) {
	root, release := stuckStatTree(t)
	e := start(t, "--path.procfs="+filepath.Join(root, "proc"), "--path.sysfs="+filepath.Join(root, "sys"),
		"--path.rootfs="+filepath.Join(root, "rootfs"), "--collector.wifi=false")
	t.Cleanup(release) // let the stuck thread go before the process is killed

	const timeout = 1.0 // header seconds; the deadline is 0.5 s with the default offset
	deadline := 500 * time.Millisecond
	var took []time.Duration
	var body string
	for i := range 100 {
		req, _ := http.NewRequest("GET", e.base+"/metrics", nil)
		req.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", fmt.Sprint(timeout))
		begin := time.Now()
		resp, err := e.client.Do(req)
		if err != nil {
			t.Fatalf("scrape %d: %v", i, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		took = append(took, time.Since(begin))
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("scrape %d: %s", i, resp.Status)
		}
		body = string(b)
	}
	for want, v := range map[string]float64{
		`smokemon_scrape_collector_success{collector="cpu"}`:    0,
		`smokemon_scrape_collector_stuck{collector="cpu"}`:      1,
		`smokemon_scrape_collector_success{collector="ping"}`:   1,
		`smokemon_scrape_collector_success{collector="memory"}`: 1,
	} {
		if got := sample(body, want); got != v {
			t.Errorf("%s = %v, want %v", want, got, v)
		}
	}
	if g := sample(body, "go_goroutines"); g > 60 {
		t.Errorf("go_goroutines = %v after 100 scrapes with a stuck file", g)
	}
	if th := sample(body, "go_threads"); th > 20 {
		t.Errorf("go_threads = %v after 100 scrapes with a stuck file", th)
	}
	sorted := slices.Sorted(slices.Values(took))
	t.Logf("100 scrapes, /proc/stat a FIFO, header %vs (deadline %v): all 200; first %v, median %v, slowest %v; goroutines %v, threads %v",
		timeout, deadline, took[0], sorted[50], sorted[99], sample(body, "go_goroutines"), sample(body, "go_threads"))
	lab.Tries(t, "median scrape with a stuck file within deadline+50ms", func() error {
		if sorted[50] > deadline+50*time.Millisecond || took[0] > deadline+50*time.Millisecond+100*time.Millisecond {
			return fmt.Errorf("first scrape %v, median %v; deadline %v", took[0], sorted[50], deadline)
		}
		return nil
	})
}
