// Command floor is the smallest exporter that can be built on the libraries
// smokemon_exporter must use: kingpin flags, promslog, exporter-toolkit's web
// server, client_golang with the process, Go and build-info collectors. It
// has no collectors of its own. bench-ping runs it beside smokemon to show
// how much of smokemon's memory those libraries and the Go runtime take
// before a single target or host collector is added.
package main

import (
	"net/http"
	"os"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/promslog"
	"github.com/prometheus/common/promslog/flag"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web"
	"github.com/prometheus/exporter-toolkit/web/kingpinflag"
)

func main() {
	webFlags := kingpinflag.AddFlags(kingpin.CommandLine, ":9918")
	logConfig := &promslog.Config{}
	flag.AddFlags(kingpin.CommandLine, logConfig)
	kingpin.Version(version.Print("floor"))
	kingpin.Parse()
	logger := promslog.New(logConfig)

	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewGoCollector(),
		versioncollector.NewCollector("floor"),
	)
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	if err := web.ListenAndServe(&http.Server{Handler: mux}, webFlags, logger); err != nil {
		logger.Error("serving", "err", err)
		os.Exit(1)
	}
}
