package probes

import (
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/smokemon/smokemon/collector"
	"github.com/smokemon/smokemon/internal/config"
	"github.com/smokemon/smokemon/internal/testutil"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
)

// BenchmarkPingScrape gathers and renders 1000 targets' ping metrics, the
// scrape work a Prometheus server causes.
func BenchmarkPingScrape(b *testing.B) {
	var cfg strings.Builder
	cfg.WriteString("global: {interval: 1s}\nping:\n  targets:\n")
	for i := range 1000 {
		fmt.Fprintf(&cfg, "    - {host: 127.4.%d.%d}\n", i/250, i%250+1)
	}
	c, err := newPingCollector(testutil.Logger(), mustParseB(b, cfg.String()), testDeps())
	if err != nil {
		b.Fatal(err)
	}
	defer c.(*pingCollector).Close()
	pc := c.(*pingCollector)
	// Give every target a realistic histogram without sending anything.
	pc.mu.Lock()
	for i, e := range pc.entries {
		for j := range 50 {
			e.stats.Reply(time_us(20+(i+j)%60), 64)
		}
	}
	pc.mu.Unlock()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collector.SetOf(testutil.Logger(), map[string]collector.Collector{"ping": c}))
	b.ReportAllocs()
	for b.Loop() {
		mfs, err := reg.Gather()
		if err != nil {
			b.Fatal(err)
		}
		enc := expfmt.NewEncoder(io.Discard, expfmt.NewFormat(expfmt.TypeTextPlain))
		for _, mf := range mfs {
			enc.Encode(mf)
		}
	}
}

func time_us(n int) time.Duration { return time.Duration(n) * time.Microsecond }

func mustParseB(b *testing.B, y string) *config.Config {
	c, err := config.Parse([]byte(y), "bench.yml")
	if err != nil {
		b.Fatal(err)
	}
	return c
}
