// Command floor is the smallest exporter that can be built on the libraries
// smokemon_exporter must use: kingpin flags, promslog, exporter-toolkit's web
// server, client_golang with the process, Go and build-info collectors. It
// has no collectors of its own. bench-ping runs it beside smokemon to show
// how much of smokemon's memory those libraries and the Go runtime take
// before a single target or host collector is added.
//
// With --scrape.collect it returns the freed heap to the kernel after every
// scrape, as smokemon_exporter does after its scrapes: the Go runtime's own
// bookkeeping grows with the first collections, and a floor that never
// collects (its scrapes make too little garbage to reach the first goal)
// would leave that growth out.
package main

import (
	"net/http"
	"os"
	"runtime/debug"

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
	collect := kingpin.Flag("scrape.collect", "Collect and return the freed heap to the kernel after every scrape.").Bool()
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
	var metrics http.Handler = promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	if *collect {
		h := metrics
		metrics = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h.ServeHTTP(w, r)
			go debug.FreeOSMemory()
		})
	}
	mux.Handle("/metrics", metrics)
	if err := web.ListenAndServe(&http.Server{Handler: mux}, webFlags, logger); err != nil {
		logger.Error("serving", "err", err)
		os.Exit(1)
	}
}
