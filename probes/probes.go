// Package probes holds smokemon_exporter's continuous probe collectors, one
// file each, named after the probe, that registers itself in init. Each
// probes on its own clock in goroutines of its own; a scrape only reads what
// they counted. What they need from the outside world (name resolution, the
// network namespace sockets are opened in, the clock, the procfs and rootfs
// mount points) comes in a Deps, so tests hand in their own.
package probes

import (
	"context"
	"log/slog"
	"net"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/smokemon/smokemon/collector"
	"github.com/smokemon/smokemon/internal/config"
	"github.com/smokemon/smokemon/internal/prober"
)

// Deps are a probe collector's ties to the machine.
type Deps struct {
	// Resolver looks up the names of ping, mtr and mesh targets and of
	// bandwidth's ping_host.
	Resolver *net.Resolver
	// Net is where the service probes (http, dns, tcp, synthetic) open
	// their sockets and read /etc/resolv.conf and /etc/hosts.
	Net prober.Env
	// Now is the clock of the RTT histograms' native-bucket resets.
	Now func() time.Time
	// ProcPath is --path.procfs: the routing table, for the gateway keyword.
	ProcPath string
}

// DefaultDeps are the ones of a running exporter: the system resolver, the
// exporter's own namespace, the wall clock and the path flags.
func DefaultDeps() Deps {
	return Deps{
		Resolver: net.DefaultResolver,
		Net:      prober.Env{Rootfs: collector.RootfsPath()},
		Now:      time.Now,
		ProcPath: collector.ProcPath(),
	}
}

// factory builds a probe collector with the given deps.
type factory func(logger *slog.Logger, cfg *config.Config, deps Deps) (collector.Collector, error)

// registered are this package's probes by name, as their files' init
// functions register them: the tests that run every probe read it, so the
// set of probes is written nowhere else.
var registered = map[string]factory{}

// register makes a probe known to the framework, enabled by default; the
// framework builds it with DefaultDeps once the flags are parsed.
func register(name string, f factory) {
	registered[name] = f
	collector.RegisterProbe(name, true, func(logger *slog.Logger, cfg *config.Config) (collector.Collector, error) {
		return f(logger, cfg, DefaultDeps())
	})
}

// started puts cfg in force in a new collector c, for its factory.
func started(c collector.Reloader, cfg *config.Config) (collector.Collector, error) {
	if err := collector.Apply(c, cfg); err != nil {
		return nil, err
	}
	return c.(collector.Collector), nil
}

// resolveRetry is how soon a failed lookup is tried again.
const resolveRetry = 10 * time.Second

// sleep waits d unless ctx ends first; it reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// boolValue is a bool as a sample value.
func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// emitter sends constant samples, the way every probe's Update reports.
type emitter chan<- prometheus.Metric

func (e emitter) gauge(d *prometheus.Desc, v float64, lv ...string) {
	e <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, lv...)
}

func (e emitter) counter(d *prometheus.Desc, v uint64, lv ...string) {
	e <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), lv...)
}
