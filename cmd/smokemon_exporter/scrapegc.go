package main

import (
	"net/http"
	"runtime"
	"runtime/metrics"
	"sync"
)

// A scrape of many targets briefly doubles the live heap (the gathered
// metric families: about 6 MB at 1000 ping targets). Left alone, the garbage
// collector sets its next goal from that peak, and the process then holds
// twice the peak until after the next scrape. Collecting once the last
// scrape in flight has ended sets the goal from the real live heap again:
// at 1000 targets scraped every 5 s, peak RSS fell from 46 to 34 MB, for a
// few milliseconds of CPU per scrape. Small scrapes (a few ping targets and the host
// collectors) allocate far less than the threshold and never force a cycle.
const scrapeGCThreshold = 4 << 20 // bytes allocated by the scrapes in flight

type scrapeGC struct {
	next     http.Handler
	mu       sync.Mutex
	inflight int
	start    uint64 // cumulative heap allocations when the first one began
}

func (g *scrapeGC) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	if g.inflight == 0 {
		g.start = heapAllocated()
	}
	g.inflight++
	g.mu.Unlock()

	g.next.ServeHTTP(w, r)

	g.mu.Lock()
	g.inflight--
	collect := g.inflight == 0 && heapAllocated()-g.start > scrapeGCThreshold
	g.mu.Unlock()
	if collect {
		runtime.GC()
	}
}

func heapAllocated() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}
