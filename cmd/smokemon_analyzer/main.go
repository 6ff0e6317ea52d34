// Command smokemon_analyzer turns smokemon's series in any PromQL server into
// incidents with blame, baselines, change points, path origins, bufferbloat
// grades, death clocks and call quality: as metrics (serve), JSON, and plain
// English (status, incidents, digest).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/config"
	"github.com/prometheus/common/promslog"
	"github.com/prometheus/common/promslog/flag"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web"
	"github.com/prometheus/exporter-toolkit/web/kingpinflag"
	"go.yaml.in/yaml/v2"

	"github.com/smokemon/smokemon/analyzer"
	"github.com/smokemon/smokemon/internal/lograte"
)

const name = "smokemon_analyzer"

func main() { os.Exit(run(os.Args[1:], os.Stdout)) }

type opts struct {
	url, httpConfig, bearerFile, basicUser, basicPassFile string
	headers                                               map[string]string
	cfg                                                   analyzer.Config
	gateway, at                                           string
	bands                                                 []float64
	peers                                                 []string // other shards' analyzers (shard 0)
}

func run(args []string, stdout *os.File) int {
	app := kingpin.New(name, "Incidents, blame, baselines, change points, path intelligence and death clocks from smokemon's series.")
	app.Version(version.Print(name))
	app.HelpFlag.Short('h')
	o := opts{headers: map[string]string{}, cfg: analyzer.DefaultConfig()}
	o.addFlags(app)
	o.addScaleFlags(app)
	logConfig := &promslog.Config{}
	flag.AddFlags(app, logConfig)

	serve := app.Command("serve", "Evaluate continuously; serve /metrics and /api/v1/{incidents,fleet}.").Default()
	toolkit := kingpinflag.AddFlags(serve, ":9918")
	status := app.Command("status", "One line per node: health, worst target, sparkline.")
	incidents := app.Command("incidents", "Incident history with blame.")
	since := incidents.Flag("since", "How far back.").Default("24h").Duration()
	jsonOut := incidents.Flag("json", "Print JSON.").Bool()
	digest := app.Command("digest", "Plain-English summary of the last day.")
	dSince := digest.Flag("since", "How far back.").Default("24h").Duration()
	notify := digest.Flag("notify", "Post the digest to this ntfy topic URL or Slack webhook URL.").PlaceHolder("URL").String()
	notifyKind := digest.Flag("notify.kind", "Receiver type: auto (Slack for hooks.slack.com), ntfy or slack.").Default("auto").Enum("auto", "ntfy", "slack")

	cmd, err := app.Parse(args)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	logger, logs := newLogger(logConfig)
	src, now, err := o.check()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	e := analyzer.NewEngine(o.cfg, src, logger)
	if len(o.peers) > 0 {
		e.SetFleetPeers(fleetPeers(o.peers))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	oneShot := func(window time.Duration) (*analyzer.Snapshot, bool) {
		s := e.EvaluateSpan(ctx, now, window)
		if !s.Up {
			fmt.Fprintf(os.Stderr, "blind: %s\n", s.Error)
			return s, false
		}
		for _, q := range s.QueryErrors {
			fmt.Fprintf(os.Stderr, "warning: query %s\n", q)
		}
		for q, why := range s.Missing {
			fmt.Fprintf(os.Stderr, "warning: %s: %s\n", q, why)
		}
		return s, true
	}
	switch cmd {
	case status.FullCommand():
		s, ok := oneShot(o.cfg.Lookback)
		if !ok {
			return 1
		}
		for _, l := range analyzer.StatusLines(s) {
			fmt.Fprintln(stdout, l)
		}
		return 0
	case incidents.FullCommand():
		s, ok := oneShot(*since)
		if !ok {
			return 1
		}
		printIncidents(stdout, s, *jsonOut)
		return 0
	case digest.FullCommand():
		s, ok := oneShot(*dSince)
		if !ok {
			return 1
		}
		text := analyzer.Digest(s, time.Local)
		fmt.Fprint(stdout, text)
		if *notify != "" {
			nctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			if err := analyzer.Notify(nctx, http.DefaultClient, *notify, *notifyKind, "smokemon digest", text); err != nil {
				fmt.Fprintf(os.Stderr, "notify: %v\n", err)
				return 1
			}
		}
		return 0
	}
	return o.serve(ctx, e, logger, logs, toolkit)
}

// printIncidents lists fleet incidents, then every node incident with its
// state (ACTIVE, resolved, superseded) and its sentence.
func printIncidents(stdout *os.File, s *analyzer.Snapshot, asJSON bool) {
	if asJSON {
		json.NewEncoder(stdout).Encode(analyzer.JSONValue(s.Incidents))
		return
	}
	for _, f := range s.Fleet {
		fmt.Fprintf(stdout, "%s %-10s %-16s %-16s %s\n", f.Start.Local().Format("2006-01-02 15:04"), analyzer.FleetState(f), "FLEET", f.Scope+" "+f.Key, analyzer.FleetSentence(f, time.Local))
	}
	for _, in := range s.Incidents {
		fmt.Fprintf(stdout, "%s %-10s %-16s %-16s %-20s %s\n", in.Start.Local().Format("2006-01-02 15:04"), analyzer.State(in), in.Kind, in.Node, in.Target, analyzer.Sentence(in, time.Local))
	}
}

// addFlags defines the flags that fill o (the server, the engine's config).
func (o *opts) addFlags(app *kingpin.Application) {
	app.Flag("at", "Evaluate the one-shot commands as of this time (RFC3339) instead of now.").PlaceHolder("TIME").StringVar(&o.at)
	app.Flag("prometheus.url", "PromQL HTTP API to read from (Prometheus, VictoriaMetrics, Thanos, Mimir).").Default("http://localhost:9090").StringVar(&o.url)
	app.Flag("prometheus.http-config", "YAML file with the client's HTTP settings (prometheus/common http_config: basic_auth, authorization, bearer_token_file, tls_config, http_headers, proxy).").PlaceHolder("FILE").StringVar(&o.httpConfig)
	app.Flag("prometheus.bearer-token-file", "File holding a bearer token.").PlaceHolder("FILE").StringVar(&o.bearerFile)
	app.Flag("prometheus.basic-auth.username", "Basic auth user.").StringVar(&o.basicUser)
	app.Flag("prometheus.basic-auth.password-file", "File holding the basic auth password.").PlaceHolder("FILE").StringVar(&o.basicPassFile)
	app.Flag("prometheus.header", "Extra request header, e.g. X-Scope-OrgID=tenant (repeatable).").PlaceHolder("NAME=VALUE").StringMapVar(&o.headers)
	app.Flag("label.node", "Label that names the node on every series.").Default("node").StringVar(&o.cfg.NodeLabel)
	app.Flag("evaluation-interval", "How often to evaluate; also the step of the range queries.").Default("30s").DurationVar(&o.cfg.Step)
	app.Flag("lookback", "Window replayed every cycle to find incidents and their start.").Default("1h").DurationVar(&o.cfg.Lookback)
	app.Flag("rate-window", "rate()/increase() window of the per-step series (at least 4 scrape intervals).").Default("2m").DurationVar(&o.cfg.RateWindow)
	app.Flag("long-window", "Window of the instant figures: mtr hop loss, recent medians for anomalies, quality and the fleet view.").Default("5m").DurationVar(&o.cfg.LongWindow)
	app.Flag("short-window", "Window of the loss and RTT that see outages and date the start and end of incidents (at least 2 scrape intervals).").Default("1m").DurationVar(&o.cfg.ShortWindow)
	app.Flag("refetch", "How much of the end of the window each cycle queries again (late samples); the rest is kept from earlier cycles.").Default("2m").DurationVar(&o.cfg.Refetch)
	app.Flag("query.timeout", "Timeout of one query.").Default("20s").DurationVar(&o.cfg.QueryTimeout)
	app.Flag("query.concurrency", "Queries run in parallel.").Default("2").IntVar(&o.cfg.Concurrency)
	app.Flag("gateway.target-regex", "Ping targets taken as the gateway when no target_info says host=\"gateway\".").Default(o.cfg.GatewayTargets.String()).StringVar(&o.gateway)
	app.Flag("bufferbloat.bands", "Upper bounds in seconds of grades A+, A, B, C, D (above: F).").Default("0.005", "0.030", "0.060", "0.200", "0.400").Float64ListVar(&o.bands)
	app.Flag("flash.pe-cycles", "Program/erase cycles of the flash, for the wear-out clock.").Default("3000").Float64Var(&o.cfg.FlashPECycles)
}

// check completes the engine's config from the parsed flags and returns
// the source to query and the time to evaluate at; an error names the flag.
func (o *opts) check() (analyzer.Source, time.Time, error) {
	var err error
	if o.cfg.GatewayTargets, err = regexp.Compile(o.gateway); err != nil {
		return nil, time.Time{}, fmt.Errorf("--gateway.target-regex: %v", err)
	}
	if err := analyzer.ParseBands(o.bands); err != nil {
		return nil, time.Time{}, fmt.Errorf("--%v", err)
	}
	o.cfg.BloatBands = o.bands
	if err := o.cfg.Shard.Validate(); err != nil {
		return nil, time.Time{}, fmt.Errorf("--%v", err)
	}
	src, err := o.source()
	if err != nil {
		return nil, time.Time{}, err
	}
	now := time.Now()
	if o.at != "" {
		if now, err = time.Parse(time.RFC3339, o.at); err != nil {
			return nil, time.Time{}, fmt.Errorf("--at: %v", err)
		}
	}
	return src, now, nil
}

func (o *opts) source() (analyzer.Source, error) {
	var hc config.HTTPClientConfig
	if o.httpConfig != "" {
		b, err := os.ReadFile(o.httpConfig)
		if err != nil {
			return nil, err
		}
		hc = config.DefaultHTTPClientConfig
		if err := yaml.UnmarshalStrict(b, &hc); err != nil {
			return nil, fmt.Errorf("%s: %w", o.httpConfig, err)
		}
		hc.SetDirectory(dirOf(o.httpConfig))
	} else {
		hc = config.DefaultHTTPClientConfig
	}
	if o.bearerFile != "" {
		hc.BearerTokenFile = o.bearerFile
	}
	if o.basicUser != "" {
		hc.BasicAuth = &config.BasicAuth{Username: o.basicUser, PasswordFile: o.basicPassFile}
	}
	analyzer.HeaderConfig(&hc, o.headers)
	src, err := analyzer.NewSource(o.url, hc)
	if err != nil {
		return nil, fmt.Errorf("--prometheus.url/http config: %w", err)
	}
	return src, nil
}

func dirOf(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[:i]
	}
	return "."
}

func (o *opts) serve(ctx context.Context, e *analyzer.Engine, logger *slog.Logger, logs logSetup, toolkit *web.FlagConfig) int {
	ignoreHangups(logger)
	reg := prometheus.NewRegistry()
	reg.MustRegister(analyzer.NewCollector(e), analyzer.NewShardCollector(e), versioncollector.NewCollector(name), logs.suppressed,
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), collectors.NewGoCollector())
	mux := http.NewServeMux()
	mux.Handle("/metrics", lograte.LogDisconnects(logger, promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: lograte.ScrapeErrorLog{Logger: logger}})))
	writeJSON := func(w http.ResponseWriter, v any) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(v)
	}
	meta := func(s *analyzer.Snapshot) map[string]any {
		return map[string]any{"time": analyzer.JSONValue(s.Time), "up": s.Up, "blind": s.Blind, "error": s.Error,
			"warming_up": s.WarmingUp, "window_covered_seconds": s.Covered.Seconds()}
	}
	mux.HandleFunc("GET /api/v1/incidents", func(w http.ResponseWriter, r *http.Request) {
		s := e.Last()
		if s == nil {
			http.Error(w, "no cycle has run yet", http.StatusServiceUnavailable)
			return
		}
		m := meta(s)
		incs := s.Incidents
		if r.URL.Query().Get("active") == "true" {
			incs = nil
			for _, in := range s.Incidents {
				if in.Active {
					incs = append(incs, in)
				}
			}
		}
		m["incidents"] = analyzer.JSONValue(incs)
		m["fleet_incidents"] = analyzer.JSONValue(s.Fleet)
		writeJSON(w, m)
	})
	mux.HandleFunc("GET /api/v1/fleet", func(w http.ResponseWriter, r *http.Request) {
		s := e.Last()
		if s == nil {
			http.Error(w, "no cycle has run yet", http.StatusServiceUnavailable)
			return
		}
		m := meta(s)
		m["nodes"] = analyzer.JSONValue(s.Nodes)
		m["bufferbloat"] = analyzer.JSONValue(s.Bloat)
		m["death_clocks"] = analyzer.JSONValue(s.Clocks)
		m["quality"] = analyzer.JSONValue(s.Quality)
		m["paths"] = analyzer.JSONValue(s.Paths)
		m["anomalies"] = analyzer.JSONValue(s.Anomalies)
		m["change_points"] = analyzer.JSONValue(s.Changes)
		m["fleet_incidents"] = analyzer.JSONValue(s.Fleet)
		writeJSON(w, m)
	})
	healthHandlers(mux, e)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintf(w, "<html><head><title>smokemon analyzer</title></head><body><h1>smokemon analyzer</h1><p><a href=\"/metrics\">Metrics</a> · <a href=\"/api/v1/incidents\">Incidents</a> · <a href=\"/api/v1/fleet\">Fleet</a> · <a href=\"/-/healthy\">Health</a> · <a href=\"/-/ready\">Readiness</a></p></body></html>")
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: lograte.ServerErrorLog(logger)}
	errc := make(chan error, 1)
	go func() { errc <- web.ListenAndServe(srv, toolkit, logger) }()

	logger.Info("evaluating", "url", o.url, "interval", o.cfg.Step, "queries_per_cycle", len(e.Queries()))
	tick := time.NewTicker(o.cfg.Step)
	defer tick.Stop()
	now := make(chan time.Time)
	close(now) // a warm-up cycle follows the last one at once
	for {
		s := e.Evaluate(ctx, time.Now())
		logs.cycles.observe(s)
		if s.Up {
			logger.Debug("cycle", "duration", s.Duration, "series", s.Series, "incidents", len(s.Incidents))
		}
		next := tick.C
		if s.Up && s.WarmingUp {
			logger.Info("warming up", "window_covered", s.Covered, "duration", s.Duration)
			next = now
		}
		select {
		case <-ctx.Done():
			srv.Close()
			return 0
		case err := <-errc:
			if !errors.Is(err, http.ErrServerClosed) {
				logger.Error("listener failed", "err", err)
				return 1
			}
			return 0
		case <-next:
		}
	}
}
