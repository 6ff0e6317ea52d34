package probes

import (
	"os"
	"testing"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/client_golang/prometheus"
)

func TestMain(m *testing.M) {
	// Flag defaults (--ping.socket, the path flags) are applied by Parse.
	if _, err := kingpin.CommandLine.Parse(nil); err != nil {
		panic(err)
	}
	os.Exit(m.Run())
}

// testDeps are the exporter's own: the tests that need another resolver,
// namespace or root change a copy.
func testDeps() Deps { return DefaultDeps() }

// fnCollector is a collector made of one Update function.
type fnCollector func(ch chan<- prometheus.Metric) error

func (f fnCollector) Update(ch chan<- prometheus.Metric) error { return f(ch) }
