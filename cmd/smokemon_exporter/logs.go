package main

import (
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/promslog"

	"github.com/smokemon/smokemon/internal/lograte"
)

// Every line the exporter writes goes through one rate-limited slog handler
// in the configured format: its own, promhttp's (lograte.ScrapeErrorLog)
// and net/http's (lograte.ServerErrorLog: TLS handshakes), which would
// otherwise print in the log package's format.

// newLogger is promslog's logger behind the rate limit (per level, message
// and collector), and the counter of what the limit dropped, for the
// registry.
func newLogger(c *promslog.Config) (*slog.Logger, prometheus.Collector) {
	suppressed := lograte.SuppressedCounter("smokemon", "exporter")
	h := lograte.New(promslog.New(c).Handler(), lograte.DefaultBurst, lograte.DefaultInterval, suppressed, "collector")
	return slog.New(h), suppressed
}
