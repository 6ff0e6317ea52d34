package main

import (
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/promslog"

	"github.com/smokemon/smokemon/analyzer"
	"github.com/smokemon/smokemon/internal/lograte"
)

// logSetup is what serve needs of the logging besides the logger.
type logSetup struct {
	suppressed prometheus.Collector // counts what the rate limit dropped
	cycles     *cycleLog
}

// newLogger is promslog's logger behind the rate limit. The cycle lines
// are written around the limit: they are one per cycle by construction,
// and a short --evaluation-interval must not lose them.
func newLogger(c *promslog.Config) (*slog.Logger, logSetup) {
	suppressed := lograte.SuppressedCounter("smokemon", "analyzer")
	plain := promslog.New(c)
	h := lograte.New(plain.Handler(), lograte.DefaultBurst, lograte.DefaultInterval, suppressed, "query")
	return slog.New(h), logSetup{suppressed: suppressed, cycles: &cycleLog{logger: plain}}
}

// cycleLog says how the cycles go in as few lines as tell the story: one
// WARN per cycle with failed queries (the first error and how many; each
// query's error is at DEBUG, from the engine), one INFO when a cycle
// succeeds again. While Prometheus is down that is one line per cycle, not
// one per query.
type cycleLog struct {
	logger      *slog.Logger
	failedSince time.Time // zero while cycles succeed
	failed      int       // cycles failed in a row
}

func (c *cycleLog) observe(s *analyzer.Snapshot) {
	if n := len(s.QueryErrors); n > 0 || !s.Up {
		if c.failed == 0 {
			c.failedSince = time.Now()
		}
		c.failed++
		first := s.Error
		if first == "" && n > 0 {
			first = s.QueryErrors[0]
		}
		msg := "cycle failed: some queries failed, their inputs are missing from this cycle"
		if !s.Up {
			msg = "cycle failed: blind, holding the previous state"
		}
		c.logger.Warn(msg, "failed_queries", n, "queries", s.Queries, "first_err", first, "failed_cycles", c.failed)
		return
	}
	if c.failed > 0 {
		c.logger.Info("cycle succeeded again: queries answer", "failed_cycles", c.failed,
			"failed_for", time.Since(c.failedSince).Round(time.Second).String())
		c.failed = 0
	}
	c.logger.Debug("cycle", "duration", s.Duration, "series", s.Series, "incidents", len(s.Incidents))
}
