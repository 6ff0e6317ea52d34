package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/smokemon/smokemon/internal/testutil"
)

// fetch is GET path's status code and body.
func fetch(t *testing.T, e *exporter, path string) (int, string) {
	t.Helper()
	resp, err := e.client.Get(e.base + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// Without --web.enable-pprof the profiles are not served and the landing
// page does not link them.
func TestPprofOffByDefault(t *testing.T) {
	e := start(t)
	code, landing := fetch(t, e, "/")
	if code != http.StatusOK {
		t.Fatalf("GET /: %d", code)
	}
	if strings.Contains(landing, "debug/pprof") {
		t.Errorf("landing page links pprof though --web.enable-pprof is off:\n%s", landing)
	}
	for _, p := range []string{"/debug/pprof/", "/debug/pprof/heap", "/debug/pprof/goroutine?debug=1"} {
		if code, _ := fetch(t, e, p); code != http.StatusNotFound {
			t.Errorf("GET %s = %d without --web.enable-pprof, want 404", p, code)
		}
	}
}

// With it, every link on the landing page answers and the profiles are
// the exporter's own.
func TestPprofEnabled(t *testing.T) {
	e := start(t, "--web.enable-pprof")
	_, landing := fetch(t, e, "/")
	for _, link := range []string{`href="/debug/pprof/heap"`, `href="/debug/pprof/profile?seconds=60"`} {
		if !strings.Contains(landing, link) {
			t.Errorf("landing page lacks %s:\n%s", link, landing)
		}
	}
	for path, want := range map[string]string{
		"/debug/pprof/":                  "goroutine",
		"/debug/pprof/heap?debug=1":      "heap profile:",
		"/debug/pprof/goroutine?debug=1": "smokemon",
		"/debug/pprof/cmdline":           "--web.enable-pprof",
	} {
		code, body := fetch(t, e, path)
		if code != http.StatusOK || !strings.Contains(body, want) {
			t.Errorf("GET %s = %d, want 200 with %q:\n%.500s", path, code, want, body)
		}
	}
	code, body := fetch(t, e, "/debug/pprof/profile?seconds=1")
	if code != http.StatusOK || len(body) == 0 {
		t.Errorf("CPU profile: %d, %d bytes", code, len(body))
	}
}

// The runtime's heap-profile records (go_memstats_buck_hash_sys_bytes) are
// never freed and only pprof reads them: without --web.enable-pprof
// scrapes add none, with it they do (which shows the check can fail).
func TestHeapProfileRecordsOnlyWithPprof(t *testing.T) {
	records := func(e *exporter) float64 { return sample(e.scrape(t), "go_memstats_buck_hash_sys_bytes") }
	off := start(t)
	before := records(off)
	for range 100 {
		off.scrape(t)
	}
	if after := records(off); after != before {
		t.Errorf("without --web.enable-pprof, 100 scrapes grew the heap-profile records from %.0f to %.0f bytes", before, after)
	}

	on := start(t, "--web.enable-pprof")
	before = records(on)
	grew := testutil.Eventually(20*time.Second, 0, func() bool { return records(on) > before })
	if !grew {
		t.Errorf("with --web.enable-pprof, scrapes for 20s added no heap-profile records (%.0f bytes)", before)
	}
}
