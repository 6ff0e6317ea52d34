package main

import (
	"net/http"
	"net/http/httptest"
	"runtime/metrics"
	"testing"
)

func forcedGCs() uint64 {
	s := []metrics.Sample{{Name: "/gc/cycles/forced:gc-cycles"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

var scrapeSink [][]byte

// A large scrape ends with a collection; a small one does not.
func TestScrapeGC(t *testing.T) {
	for _, tc := range []struct {
		alloc int
		want  uint64
	}{{8 << 20, 1}, {64 << 10, 0}} {
		g := &scrapeGC{next: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			scrapeSink = nil
			for range tc.alloc / 4096 {
				scrapeSink = append(scrapeSink, make([]byte, 4096))
			}
		})}
		before := forcedGCs()
		g.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/metrics", nil))
		if got := forcedGCs() - before; got != tc.want {
			t.Errorf("scrape allocating %d bytes: %d forced collections, want %d", tc.alloc, got, tc.want)
		}
	}
	scrapeSink = nil
}
