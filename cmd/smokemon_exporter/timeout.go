package main

import (
	"net/http"
	"strconv"
	"time"

	"github.com/alecthomas/kingpin/v2"

	"github.com/smokemon/smokemon/collector"
)

// Prometheus sends each scrape's timeout in a header; the collectors must
// be done a little before it, so the answer, with whatever was on time,
// reaches Prometheus before it gives up (blackbox_exporter's offset).
var (
	scrapeTimeout = kingpin.Flag("scrape.timeout",
		"Collector deadline for a scrape without an X-Prometheus-Scrape-Timeout-Seconds header (curl, other scrapers).").
		Default("10s").Duration()
	scrapeTimeoutOffset = kingpin.Flag("scrape.timeout-offset",
		"How long before the scrape's timeout the collectors' deadline falls, to leave time to send the answer.").
		Default("500ms").Duration()
)

// minDeadline keeps a tiny or bogus header from failing every collector.
const minDeadline = 50 * time.Millisecond

// scrapeDeadline is the collectors' deadline for a scrape request.
func scrapeDeadline(r *http.Request, def, offset time.Duration) time.Duration {
	d := def
	if h := r.Header.Get("X-Prometheus-Scrape-Timeout-Seconds"); h != "" {
		if s, err := strconv.ParseFloat(h, 64); err == nil && s > 0 {
			d = time.Duration(s*float64(time.Second)) - offset
		}
	}
	return max(d, minDeadline)
}

// withScrapeTimeout sets the set's deadline from each request before it is
// served. Scrapes in flight together share the latest deadline: in practice
// one Prometheus (or an HA pair with the same config) scrapes a node.
func withScrapeTimeout(set *collector.Set, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		set.SetTimeout(scrapeDeadline(r, *scrapeTimeout, *scrapeTimeoutOffset))
		next.ServeHTTP(w, r)
	})
}
