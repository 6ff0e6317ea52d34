package probes

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"github.com/smokemon/smokemon/collector"
	"github.com/smokemon/smokemon/internal/testutil"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

var meshHeapProfile = flag.String("mesh.heapprofile", "", "BenchmarkMeshPeers writes the heap profile of 300 live peers here")

// BenchmarkMeshPeers probes 300 peers over loopback (one responder, in this
// process) and reports the heap the prober and its metrics hold per peer,
// after every peer has answered and been scraped: the state that lives as
// long as the peer does (heap-B/peer: in-use spans, live-B/peer: the
// objects in them), and what a scrape after the first allocates, streamed
// as /metrics streams it (scrape-B/peer). RSS figures are make bench-mesh's.
func BenchmarkMeshPeers(b *testing.B) {
	const n = 300
	runtime.MemProfileRate = 4096
	defer func() { runtime.MemProfileRate = 512 * 1024 }()
	port, err := testutil.LoopbackPort()
	if err != nil {
		b.Fatal(err)
	}
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "mesh:\n  responder: {listen: 127.0.0.1, udp_port: %d, rate_limit: 1000000, rate_burst: 100000}\n", port)
	cfg.WriteString("  interval: 100ms\n  timeout: 100ms\n  protocols: [udp]\n  peers:\n")
	for i := range n {
		fmt.Fprintf(&cfg, "    - {address: \"127.0.0.1:%d\", name: p%d}\n", port, i)
	}
	for b.Loop() {
		runtime.GC()
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		c, err := newMeshCollector(testutil.Logger(), mustParseB(b, cfg.String()), testDeps())
		if err != nil {
			b.Fatal(err)
		}
		reg := prometheus.NewRegistry()
		reg.MustRegister(collector.SetOf(testutil.Logger(), map[string]collector.Collector{"mesh": c}))
		time.Sleep(3 * time.Second) // 30 probes a peer: every histogram has data
		if _, err := reg.Gather(); err != nil {
			b.Fatal(err)
		}
		// What /metrics allocates: the stream, less the encoding.
		var g0, g1 runtime.MemStats
		runtime.ReadMemStats(&g0)
		if err := c.(collector.Streamer).Stream(func(*dto.MetricFamily) error { return nil }); err != nil {
			b.Fatal(err)
		}
		runtime.ReadMemStats(&g1)
		runtime.GC()
		runtime.ReadMemStats(&m1)
		b.ReportMetric(float64(g1.TotalAlloc-g0.TotalAlloc)/n, "scrape-B/peer")
		b.ReportMetric(float64(m1.HeapInuse-m0.HeapInuse)/n, "heap-B/peer")
		// Live bytes apart from the spans they pin: the difference is
		// fragmentation, long-lived objects scattered among garbage.
		b.ReportMetric(float64(m1.HeapAlloc-m0.HeapAlloc)/n, "live-B/peer")
		b.ReportMetric(float64(m1.StackInuse-m0.StackInuse)/n, "stack-B/peer")
		if *meshHeapProfile != "" {
			f, err := os.Create(*meshHeapProfile)
			if err != nil {
				b.Fatal(err)
			}
			pprof.Lookup("heap").WriteTo(f, 0)
			f.Close()
		}
		runtime.KeepAlive(reg)
		c.(*meshCollector).Close()
	}
}
