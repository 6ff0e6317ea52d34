package main

import (
	"fmt"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/smokemon/smokemon/collector"
)

// readiness is /-/ready: 503 until the collectors have run once, 200 after.
// The server only starts once the config is loaded, so "loaded" needs no
// flag of its own; what is left is the first gather, which opens the
// sockets and files the collectors keep and gives the first answer its
// full set of series. A load balancer or a rollout that waits for
// ready gets a node that answers scrapes with everything in them.
type readiness struct{ ready atomic.Bool }

// warmUp gathers g once in the background, with the deadline of a scrape
// that sends no timeout header, and then declares the exporter ready,
// whatever each collector reported: a broken sensor is
// smokemon_scrape_collector_success 0, not a node that never gets ready.
func (r *readiness) warmUp(set *collector.Set, g prometheus.Gatherer, logger *slog.Logger) {
	set.SetTimeout(max(*scrapeTimeout-*scrapeTimeoutOffset, minDeadline))
	go func() {
		begin := time.Now()
		_, err := g.Gather()
		r.ready.Store(true)
		args := []any{"duration_seconds", time.Since(begin).Seconds()}
		if err != nil {
			args = append(args, "gather_err", err)
		}
		logger.Info("collectors initialised: ready", args...)
	}()
}

func (r *readiness) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	if !r.ready.Load() {
		http.Error(w, "Not ready: the collectors are initialising.", http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "Ready.")
}
