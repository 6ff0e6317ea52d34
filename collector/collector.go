// Package collector is the framework that runs smokemon_exporter's
// collectors (registration with a default on/off state, --collector.NAME
// flags, per-collector duration and success on every scrape, two-phase
// reload) and the host collectors, one file each, that read this machine's
// /proc, /sys and nl80211. The continuous network probes register from
// package probes.
package collector

import (
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/smokemon/smokemon/internal/config"
)

// Namespace prefixes every metric the exporter produces.
const Namespace = "smokemon"

// Collector is what each collector implements: send its metrics on ch.
// An error marks this collector's scrape as failed; the others go on.
type Collector interface {
	Update(ch chan<- prometheus.Metric) error
}

// Reloader is implemented by collectors whose work depends on the config
// file. A reload has two phases, as Prometheus' rules.Manager.Update has:
// Prepare does everything that can fail (reading, resolving, building the
// new target set) and leaves the running collector as it is; the commit it
// returns puts cfg in force and cannot fail. A commit that is never called
// must leave nothing behind.
type Reloader interface {
	Prepare(cfg *config.Config) (commit func(), err error)
}

// Apply prepares cfg and commits it, for a collector's start-up.
func Apply(r Reloader, cfg *config.Config) error {
	commit, err := r.Prepare(cfg)
	if err != nil {
		return err
	}
	commit()
	return nil
}

// Closer is implemented by collectors that run goroutines of their own.
type Closer interface {
	Close() error
}

// Factory builds a collector that reads the config; cfg is the one in force
// at start-up.
type Factory func(logger *slog.Logger, cfg *config.Config) (Collector, error)

// HostFactory builds a host collector that needs no config.
type HostFactory func(logger *slog.Logger) (Collector, error)

// ErrNoData means the collector has nothing to report on this machine (no wifi,
// no battery): the scrape is still a success.
var ErrNoData = errors.New("collector returned no data")

type registration struct {
	factory Factory
	host    bool
}

var (
	factories      = map[string]registration{}
	enabledFlags   = map[string]*bool{}
	explicitlySet  = map[string]bool{}
	disableDefault = kingpin.Flag("collector.disable-defaults", "Set all collectors to disabled by default.").Default("false").Bool()
)

// registerCollector registers a host collector of this package.
func registerCollector(name string, enabledByDefault bool, f HostFactory) {
	register(name, enabledByDefault, true, func(l *slog.Logger, _ *config.Config) (Collector, error) { return f(l) })
}

// registerConfigured registers a host collector that reads the config.
func registerConfigured(name string, enabledByDefault bool, f Factory) {
	register(name, enabledByDefault, true, f)
}

// RegisterProbe registers a collector that probes the network (package
// probes calls it from init). Probes are not host collectors: they are left
// out of HostCollectors.
func RegisterProbe(name string, enabledByDefault bool, f Factory) {
	register(name, enabledByDefault, false, f)
}

func register(name string, enabledByDefault, host bool, f Factory) {
	if _, dup := factories[name]; dup {
		panic("collector " + name + " registered twice")
	}
	def := "disabled"
	if enabledByDefault {
		def = "enabled"
	}
	flag := kingpin.Flag("collector."+name, fmt.Sprintf("Enable the %s collector (default: %s).", name, def)).
		Default(fmt.Sprint(enabledByDefault)).
		Action(func(*kingpin.ParseContext) error { explicitlySet[name] = true; return nil })
	enabledFlags[name] = flag.Bool()
	factories[name] = registration{factory: f, host: host}
}

// Names lists every registered collector, sorted.
func Names() []string {
	names := make([]string, 0, len(factories))
	for n := range factories {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// HostCollectors lists, sorted, the collectors of this package: those that
// read this machine's /proc, /sys and nl80211 rather than probe the network.
func HostCollectors() []string {
	var names []string
	for _, n := range Names() {
		if factories[n].host {
			names = append(names, n)
		}
	}
	return names
}

// Enabled lists the collectors the flags turn on.
func Enabled() []string {
	var out []string
	for _, n := range Names() {
		if *enabledFlags[n] && (!*disableDefault || explicitlySet[n]) {
			out = append(out, n)
		}
	}
	return out
}

var (
	scrapeDurationDesc = prometheus.NewDesc(
		prometheus.BuildFQName(Namespace, "scrape", "collector_duration_seconds"),
		"Time a collector took to update its metrics during this scrape.",
		[]string{"collector"}, nil)
	scrapeSuccessDesc = prometheus.NewDesc(
		prometheus.BuildFQName(Namespace, "scrape", "collector_success"),
		"1 if the collector updated its metrics without error during this scrape.",
		[]string{"collector"}, nil)
)

// Set runs a group of collectors as one prometheus.Collector.
type Set struct {
	logger     *slog.Logger
	collectors map[string]Collector
	dl         deadlines

	streamMu sync.Mutex
	streamed map[string]streamed // by streamer name, its last Stream
}

// NewSet builds the named collectors. A collector whose factory fails is left
// out with an error in the log; the others run.
func NewSet(logger *slog.Logger, cfg *config.Config, names []string) (*Set, error) {
	s := &Set{logger: logger, collectors: map[string]Collector{}}
	var errs []error
	for _, n := range names {
		f, ok := factories[n]
		if !ok {
			return nil, fmt.Errorf("unknown collector %q (known: %v)", n, Names())
		}
		c, err := f.factory(logger.With("collector", n), cfg)
		if err != nil {
			errs = append(errs, fmt.Errorf("collector %s: %w", n, err))
			continue
		}
		s.collectors[n] = c
	}
	return s, errors.Join(errs...)
}

// SetOf runs collectors that are already built, under the names given.
func SetOf(logger *slog.Logger, collectors map[string]Collector) *Set {
	return &Set{logger: logger, collectors: collectors}
}

// Collector returns a running collector by name (nil if not enabled).
func (s *Set) Collector(name string) Collector { return s.collectors[name] }

// Reload puts cfg in force in every collector that reads the config, or in
// none: every collector prepares it first, and only when all of them
// succeed do they all commit. On an error nothing has changed anywhere, so
// the caller can go on showing the old config as the one in force.
func (s *Set) Reload(cfg *config.Config) error {
	var (
		commits []func()
		errs    []error
	)
	names := make([]string, 0, len(s.collectors))
	for n := range s.collectors {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		r, ok := s.collectors[n].(Reloader)
		if !ok {
			continue
		}
		commit, err := r.Prepare(cfg)
		if err != nil {
			errs = append(errs, fmt.Errorf("collector %s: %w", n, err))
			continue
		}
		commits = append(commits, commit)
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	for _, commit := range commits {
		commit()
	}
	return nil
}

// Close stops collectors that run in the background.
func (s *Set) Close() {
	for _, c := range s.collectors {
		if cl, ok := c.(Closer); ok {
			cl.Close()
		}
	}
}

// Describe sends nothing: the set is an unchecked collector, because what a
// collector exposes depends on the machine and the config.
func (s *Set) Describe(chan<- *prometheus.Desc) {}

// Collect runs every collector concurrently and reports how each fared. It
// returns by the set's deadline: a collector that has not finished by then
// is reported failed and stuck (see deadline.go).
func (s *Set) Collect(ch chan<- prometheus.Metric) {
	s.collect(ch, func(string, Collector) bool { return true })
}

// collect runs the collectors that run says to.
func (s *Set) collect(ch chan<- prometheus.Metric, run func(name string, c Collector) bool) {
	deadline := time.Now().Add(s.Timeout())
	var wg sync.WaitGroup
	for name, c := range s.collectors {
		if !run(name, c) {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.run(name, c, ch, deadline)
		}()
	}
	wg.Wait()
	s.collectStuck(ch)
}

func (s *Set) run(name string, c Collector, ch chan<- prometheus.Metric, deadline time.Time) {
	begin := time.Now()
	metrics, err := s.updateWithin(name, c, deadline)
	for _, m := range metrics {
		ch <- m
	}
	s.report(ch, name, time.Since(begin), err)
}

// report sends a collector's scrape duration and success.
func (s *Set) report(ch chan<- prometheus.Metric, name string, took time.Duration, err error) {
	success := 1.0
	switch {
	case err == nil:
	case errors.Is(err, ErrNoData):
		s.logger.Debug("collector returned no data", "collector", name, "err", err)
	default:
		success = 0
		s.logger.Error("collector failed", "collector", name, "duration_seconds", took.Seconds(), "err", err)
	}
	ch <- prometheus.MustNewConstMetric(scrapeDurationDesc, prometheus.GaugeValue, took.Seconds(), name)
	ch <- prometheus.MustNewConstMetric(scrapeSuccessDesc, prometheus.GaugeValue, success, name)
}

// safeUpdate turns a panic in one collector into that collector's error, so a
// parser bug on odd hardware costs one collector's metrics, not the process.
func safeUpdate(c Collector, ch chan<- prometheus.Metric) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	return c.Update(ch)
}
