// Command smokemon_exporter is smokemon's per-node exporter: continuous ping
// and host collectors behind one /metrics endpoint.
package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/common/promslog"
	"github.com/prometheus/common/promslog/flag"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web"
	"github.com/prometheus/exporter-toolkit/web/kingpinflag"
	"go.yaml.in/yaml/v3"

	"github.com/smokemon/smokemon/collector"
	"github.com/smokemon/smokemon/internal/config"
	"github.com/smokemon/smokemon/internal/lograte"
	_ "github.com/smokemon/smokemon/probes" // registers the network probes with collector
)

const name = "smokemon_exporter"

func main() {
	os.Exit(run())
}

func run() int {
	var (
		configFile = kingpin.Flag("config.file", "YAML configuration file. Without it the embedded default (ping localhost) is used.").
				PlaceHolder("FILE").String()
		configCheck  = kingpin.Flag("config.check", "Validate the configuration (file, hosts) and exit.").Bool()
		allowEmpty   = kingpin.Flag("config.allow-empty", "Accept a configuration with no targets (host metrics only) with a warning, instead of refusing it at start and on reload.").Bool()
		printDefault = kingpin.Flag("config.print-default", "Print the embedded default configuration and exit.").Bool()
		metricsPath  = kingpin.Flag("web.telemetry-path", "Path under which to expose metrics.").Default("/metrics").String()
		maxRequests  = kingpin.Flag("web.max-requests", "Maximum number of parallel scrape requests (0 = no limit).").Default("40").Int()
		noExporterMx = kingpin.Flag("web.disable-exporter-metrics", "Exclude the exporter's own process_* and go_* metrics.").Bool()
		enablePprof  = kingpin.Flag("web.enable-pprof", "Serve Go's runtime profiles (heap, CPU, goroutines) under /debug/pprof/ and link them from the landing page. Off by default: they show internals, and a CPU profile costs CPU while it runs.").Bool()
		maxProcs     = kingpin.Flag("runtime.gomaxprocs", "The target number of CPUs Go will run on (GOMAXPROCS). One is plenty for an exporter and saves the cross-thread wake-ups that dominate its CPU.").
				Envar("GOMAXPROCS").Default("1").Int()
		hosts        = kingpin.Arg("host", "Hosts to ping, for a quick start; added to the configured targets.").Strings()
		toolkitFlags = kingpinflag.AddFlags(kingpin.CommandLine, ":9917")
	)
	logConfig := &promslog.Config{}
	flag.AddFlags(kingpin.CommandLine, logConfig)
	kingpin.Version(version.Print(name))
	kingpin.HelpFlag.Short('h')
	kingpin.Parse()
	logger, suppressed := newLogger(logConfig)
	runtime.GOMAXPROCS(*maxProcs)
	sampleHeapProfile(*enablePprof)

	if *printDefault {
		os.Stdout.Write(config.DefaultYAML())
		return 0
	}
	load := func() (*config.Config, error) {
		return config.Load(config.Options{File: *configFile, Hosts: *hosts, AllowEmpty: *allowEmpty}, logger)
	}
	cfg, err := load()
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: invalid configuration:\n%s\n", name, err)
		return 1
	}
	if *configCheck {
		fmt.Printf("%s: configuration OK (%s, %d ping targets)\n", name, cfg.Source, len(cfg.Ping.Targets))
		return 0
	}
	if f := *toolkitFlags.WebConfigFile; f != "" {
		if err := web.Validate(f); err != nil {
			fmt.Fprintf(os.Stderr, "%s: --web.config.file %s: %v\n", name, f, err)
			return 1
		}
	}

	logger.Info("starting "+name, "version", version.Info(), "config", cfg.Source)
	logger.Info("build context", "build_context", version.BuildContext())
	enabled := collector.Enabled()
	logger.Info("enabled collectors", "collectors", strings.Join(enabled, ","))

	set, err := collector.NewSet(logger, cfg, enabled)
	if set == nil {
		logger.Error("cannot build collectors", "err", err)
		return 1
	}
	if err != nil {
		logger.Error("some collectors failed to start; the others run", "err", err)
	}
	defer set.Close()

	reg := prometheus.NewRegistry()
	// The streamers' series reach /metrics through set.Stream (metrics.go).
	reg.MustRegister(set.Streaming(), versioncollector.NewCollector(name), suppressed)
	if !*noExporterMx {
		reg.MustRegister(
			collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
			collectors.NewGoCollector(),
		)
	}
	reloads := newReloadMetrics(reg)
	reloads.succeeded()
	hostReg := prometheus.NewRegistry()
	hostReg.MustRegister(set.Hosts())
	feed := newStatusFeed(logger, set, hostReg, cfg)
	stopFeed := make(chan struct{})
	defer close(stopFeed)
	go feed.run(stopFeed)

	x := &reloader{logger: logger, set: set, feed: feed, reloads: reloads, load: load, current: cfg}
	mux, err := x.mux(reg, *metricsPath, *maxRequests, *enablePprof)
	if err != nil {
		logger.Error("landing page", "err", err)
		return 1
	}
	x.ready.warmUp(x.set, reg, logger)

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		for range hup {
			x.reload()
		}
	}()
	return serve(&http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: lograte.ServerErrorLog(logger)}, toolkitFlags, logger)
}

// reloader is the running exporter's configuration in force and what
// changes it.
type reloader struct {
	logger  *slog.Logger
	set     *collector.Set
	feed    *statusFeed
	reloads *reloadMetrics
	load    func() (*config.Config, error)
	ready   readiness

	mu      sync.Mutex // serialises reloads; guards current
	current *config.Config
}

// reload loads the config again and puts it in force in every collector,
// or, on any error, in none: current, which /config shows, changes only
// when the set took the new config.
func (x *reloader) reload() error {
	x.mu.Lock()
	defer x.mu.Unlock()
	next, err := x.load()
	if err == nil {
		err = x.set.Reload(next)
	}
	x.feed.reloaded(next, err)
	if err != nil {
		x.reloads.failed()
		x.logger.Error("reload failed; the running configuration stays in force", "err", err)
		return err
	}
	x.current = next
	x.reloads.succeeded()
	x.logger.Info("configuration reloaded", "config", next.Source, "ping_targets", len(next.Ping.Targets))
	return nil
}

func (x *reloader) mux(reg *prometheus.Registry, metricsPath string, maxRequests int, profiling bool) (*http.ServeMux, error) {
	mux := http.NewServeMux()
	metrics := newMetricsHandler(x.set, x.feed.tee(reg), lograte.ScrapeErrorLog{Logger: x.logger}, maxRequests)
	mux.Handle(metricsPath, lograte.LogDisconnects(x.logger, &scrapeGC{next: withScrapeTimeout(x.set, metrics)}))
	mux.Handle("/status", &scrapeGC{next: x.feed.handler()}) // its garbage is a scrape's too
	mux.HandleFunc("/-/healthy", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "Healthy.") })
	mux.Handle("/-/ready", &x.ready)
	mux.HandleFunc("/-/reload", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost && r.Method != http.MethodPut {
			w.Header().Set("Allow", "POST, PUT")
			http.Error(w, "use POST to reload", http.StatusMethodNotAllowed)
			return
		}
		if err := x.reload(); err != nil {
			http.Error(w, "reload failed, the running configuration stays in force:\n"+err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, "Reloaded.")
	})
	if profiling {
		handlePprof(mux)
	}
	mux.HandleFunc("/config", func(w http.ResponseWriter, _ *http.Request) {
		x.mu.Lock()
		defer x.mu.Unlock()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintf(w, "# source: %s\n", x.current.Source)
		yaml.NewEncoder(w).Encode(x.current)
	})
	if metricsPath != "/" {
		landing, err := web.NewLandingPage(web.LandingConfig{
			Name:        "smokemon exporter",
			Description: "Continuous ping, path and host metrics for edge nodes",
			Version:     version.Info(),
			Profiling:   strconv.FormatBool(profiling),
			Links: []web.LandingLinks{
				{Address: metricsPath, Text: "Metrics"},
				{Address: "/status", Text: "Status: targets, host and events at a glance"},
				{Address: "/config", Text: "Configuration in force"},
				{Address: "/-/healthy", Text: "Health"},
				{Address: "/-/ready", Text: "Readiness"},
			},
		})
		if err != nil {
			return nil, err
		}
		mux.Handle("/", landing)
	}
	return mux, nil
}

// serve runs srv until it fails (exit status 1) or a signal stops it (0).
func serve(srv *http.Server, toolkitFlags *web.FlagConfig, logger *slog.Logger) int {
	errc := make(chan error, 1)
	go func() { errc <- web.ListenAndServe(srv, toolkitFlags, logger) }()
	term := make(chan os.Signal, 1)
	signal.Notify(term, os.Interrupt, syscall.SIGTERM)
	select {
	case err := <-errc:
		if errors.Is(err, syscall.EADDRINUSE) || strings.Contains(err.Error(), "address already in use") {
			logger.Error("cannot listen: the address is in use (another exporter running? choose one with --web.listen-address)", "err", err)
		} else {
			logger.Error("HTTP server stopped", "err", err)
		}
		return 1
	case s := <-term:
		logger.Info("shutting down", "signal", s.String())
		srv.Close()
		return 0
	}
}

type reloadMetrics struct {
	ok, ts prometheus.Gauge
}

func newReloadMetrics(reg prometheus.Registerer) *reloadMetrics {
	m := &reloadMetrics{
		ok: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "smokemon", Subsystem: "exporter", Name: "config_last_reload_successful",
			Help: "1 if the last configuration load or reload succeeded; on 0 the previous configuration is still in force.",
		}),
		ts: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "smokemon", Subsystem: "exporter", Name: "config_last_reload_success_timestamp_seconds",
			Help: "Time of the last successful configuration load, in seconds since the Unix epoch.",
		}),
	}
	reg.MustRegister(m.ok, m.ts)
	return m
}

func (m *reloadMetrics) succeeded() { m.ok.Set(1); m.ts.SetToCurrentTime() }
func (m *reloadMetrics) failed()    { m.ok.Set(0) }
