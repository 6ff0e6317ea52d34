package main

import (
	"io"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/smokemon/smokemon/internal/testutil"
)

func httpCode(t *testing.T, c *http.Client, u string) int {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// /-/ready is 503 while the first gather runs: here it waits for a
// /proc/stat that blocks (a FIFO) until the 1.5 s deadline of a scrape
// without header; then 200, with the stuck collector reported failed.
func TestReadyAfterFirstGather(t *testing.T) {
	root, release := stuckStatTree(t)
	t.Cleanup(release)
	began := time.Now()
	e := start(t, "--path.procfs="+filepath.Join(root, "proc"), "--path.sysfs="+filepath.Join(root, "sys"),
		"--path.rootfs="+filepath.Join(root, "rootfs"), "--collector.wifi=false", "--scrape.timeout=2s")
	if code := httpCode(t, e.client, e.base+"/-/ready"); code != http.StatusServiceUnavailable {
		t.Fatalf("/-/ready %d %v after start, while the first gather waits on a stuck read: want 503", code, time.Since(began))
	}
	if code := httpCode(t, e.client, e.base+"/-/healthy"); code != 200 {
		t.Errorf("/-/healthy %d while initialising, want 200", code)
	}
	testutil.WaitFor(t, 10*time.Second, "/-/ready 200", func() bool { return httpCode(t, e.client, e.base+"/-/ready") == 200 })
	if took := time.Since(began); took < 1400*time.Millisecond {
		t.Errorf("ready after %v, before the first gather's 1.5 s deadline", took)
	}
	if v := sample(e.scrape(t), `smokemon_scrape_collector_success{collector="cpu"}`); v != 0 {
		t.Errorf("cpu success %v with a stuck /proc/stat", v)
	}
}

// No dead links on the landing page: metrics, status, config, health and
// readiness. /debug/pprof belongs to --web.enable-pprof, whose own test
// follows it.
func TestLandingPageLinks(t *testing.T) {
	e := start(t)
	testutil.WaitFor(t, 10*time.Second, "/-/ready 200", func() bool { return httpCode(t, e.client, e.base+"/-/ready") == 200 })
	testutil.CheckLinks(t, e.client, e.base, "/debug/pprof")
}
