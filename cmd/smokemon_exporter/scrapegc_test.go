package main

import (
	"net/http"
	"net/http/httptest"
	"runtime/debug"
	"runtime/metrics"
	"testing"
)

func forcedGCs() uint64 {
	s := []metrics.Sample{{Name: "/gc/cycles/forced:gc-cycles"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

var scrapeSink [][]byte

// A scrape that allocated more than the threshold ends with one collection
// (and the freed pages handed back); a tiny one does not.
func TestScrapeGC(t *testing.T) {
	for _, tc := range []struct {
		alloc int
		want  uint64
	}{{1 << 20, 1}, {16 << 10, 0}} {
		g := &scrapeGC{
			next: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				scrapeSink = nil
				for range tc.alloc / 4096 {
					scrapeSink = append(scrapeSink, make([]byte, 4096))
				}
			}),
			release: func(f func()) { f() },
		}
		before := forcedGCs()
		g.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/metrics", nil))
		if got := forcedGCs() - before; got != tc.want {
			t.Errorf("scrape allocating %d bytes: %d forced collections, want %d", tc.alloc, got, tc.want)
		}
		if g.releasing.Load() {
			t.Errorf("scrape allocating %d bytes: release still marked under way after it ran", tc.alloc)
		}
	}
	scrapeSink = nil
}

// While a release is under way, further scrapes do not start another.
func TestScrapeGCOneReleaseAtATime(t *testing.T) {
	var started int
	var pending []func()
	g := &scrapeGC{
		next: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			scrapeSink = nil
			for range 64 {
				scrapeSink = append(scrapeSink, make([]byte, 4096))
			}
		}),
		release: func(f func()) { started++; pending = append(pending, f) },
	}
	for range 3 {
		g.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/metrics", nil))
	}
	if started != 1 {
		t.Fatalf("3 scrapes during one release started %d releases, want 1", started)
	}
	pending[0]()
	g.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/metrics", nil))
	if started != 2 {
		t.Errorf("a scrape after the release ended started %d releases in all, want 2", started)
	}
	scrapeSink = nil
}

// A scrape runs at scrapeGCPercent and the configured value comes back after
// it; a lower configured value (or GOGC=off) is left alone.
func TestScrapeGCPercent(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	for _, configured := range []int{100, 10, -1} {
		debug.SetGCPercent(configured)
		var during int
		g := &scrapeGC{
			next: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				during = debug.SetGCPercent(-1)
				debug.SetGCPercent(during)
			}),
			release: func(f func()) { f() },
		}
		g.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/metrics", nil))
		want := min(configured, scrapeGCPercent)
		if configured < 0 {
			want = configured
		}
		if during != want {
			t.Errorf("GOGC=%d: %d during the scrape, want %d", configured, during, want)
		}
		if after := debug.SetGCPercent(configured); after != configured {
			t.Errorf("GOGC=%d: %d after the scrape", configured, after)
		}
	}
}
