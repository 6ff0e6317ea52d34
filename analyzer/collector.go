package analyzer

import (
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

const ns = "smokemon_analyzer"

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(ns+"_"+name, help, labels, nil)
}

// Collector exposes the engine's latest snapshot. Every scrape is built from
// one snapshot only, so series of a previous cycle never linger.
type Collector struct {
	e  *Engine
	nl string

	up, blind, lastOK, dur, qerr, series, queries                 *prometheus.Desc
	nodeBlind, nodeHealth, nodeIncidents                          *prometheus.Desc
	incActive, incStart, incEnd, incSuperseded, blame             *prometheus.Desc
	anomaly, baseline, cpTime, cpSize                             *prometheus.Desc
	origin, rateLimited, routeChanges                             *prometheus.Desc
	bloatGrade, bloatInfo, bloatInc, until, rfactor, mosD, lastTS *prometheus.Desc
	fleetActive, fleetNodes, fleetMember, fleetStart, missing     *prometheus.Desc
	fleetEnd, fleetSup                                            *prometheus.Desc
}

func NewCollector(e *Engine) *Collector {
	n := e.cfg.NodeLabel
	inc := []string{n, "target", "kind", "severity"}
	return &Collector{e: e, nl: n,
		up:            desc("up", "1 if the last cycle could query the ping data; 0 means the analyzer is blind and holds its previous state."),
		blind:         desc("blind", "1 if the last cycle lacked data for some node or query: incidents there are held, not started or resolved."),
		lastOK:        desc("last_success_timestamp_seconds", "End of the last cycle whose ping queries succeeded."),
		lastTS:        desc("last_cycle_timestamp_seconds", "End of the last cycle, successful or not."),
		dur:           desc("cycle_duration_seconds", "Wall time of the last cycle (all queries and analyses)."),
		qerr:          desc("query_errors_total", "Failed or partial query answers, by query.", "query"),
		series:        desc("series_analysed", "Result series the last cycle analysed."),
		queries:       desc("queries_per_cycle", "PromQL queries the last cycle sent (independent of the fleet size: they aggregate by node; slow ones run every few minutes)."),
		nodeBlind:     desc("node_blind", "1 if a node had no usable ping data at the end of the window.", n),
		nodeHealth:    desc("node_health_info", "Health of a node: ok, degraded, down or blind; always 1.", n, "health"),
		nodeIncidents: desc("node_active_incidents", "Active incidents of a node.", n),
		incActive:     desc("incident_active", "1 while an incident is active, 0 once resolved (kept while it is in the lookback window).", inc...),
		incStart:      desc("incident_start_timestamp_seconds", "When the latest incident of this kind began (first step its signal left normal).", inc...),
		incEnd:        desc("incident_end_timestamp_seconds", "When the latest incident of this kind was resolved.", inc...),
		incSuperseded: desc("incident_superseded", "1 if the latest incident of this kind ended because an outage of the node absorbed it (superseded_by in the JSON).", append(inc, "superseded_by_kind")...),
		blame:         desc("blame_score", "Robust z-score of a node signal that moved in a harmful direction when the incident began (median shift over its own MAD-σ before it); rank 1 moved most. No series: no local cause.", n, "target", "kind", "signal", "rank"),
		anomaly:       desc("anomaly_score", "How far recent latency or loss sits from its time-of-day baseline, in robust σ (max of the two).", n, "target"),
		baseline:      desc("baseline_rtt_seconds", "Expected RTT now and the normal band around it (median ± 3 MAD-σ, seasonal where history exists).", n, "target", "bound"),
		cpTime:        desc("change_point_timestamp_seconds", "Time of the last level shift in latency found by CUSUM on log-RTT.", n, "target"),
		cpSize:        desc("change_point_size_ratio", "Size of the last latency level shift: median RTT after over before.", n, "target"),
		origin:        desc("path_origin_hop", "Hop index from which a problem persists to the destination (mtr); only while the destination has the problem.", n, "target", "problem"),
		rateLimited:   desc("path_rate_limited_hop_info", "A hop whose loss does not persist to the destination: ICMP rate limiting, never an origin; always 1.", n, "target", "hop"),
		routeChanges:  desc("path_route_changes", "Path changes seen by mtr over the last hour.", n, "target"),
		bloatGrade:    desc("bufferbloat_grade", "Bufferbloat grade of the worst direction as a number: 0 = A+, 1 = A, 2 = B, 3 = C, 4 = D, 5 = F.", n),
		bloatInfo:     desc("bufferbloat_grade_info", "Bufferbloat grade (A+..F) of the worst direction; always 1.", n, "grade"),
		bloatInc:      desc("bufferbloat_latency_increase_seconds", "Latency increase under load (loaded minus idle RTT), worst direction, last run.", n),
		until:         desc("seconds_until", "Seconds until a node reaches a limit at the present trend (+Inf: not heading there).", n, "limit", "object"),
		rfactor:       desc("r_factor", "ITU-T G.107 E-model transmission rating for a G.711 call over this path (0-100).", n, "target"),
		missing:       desc("input_missing", "1 for each query whose series are absent although the data they derive from is there (e.g. ping RTT _sum without native-histogram fallback); the figures built on it are off, not zero.", "query"),
		fleetActive:   desc("fleet_incident_active", "1 while incidents of several nodes that share a gateway, first hop beyond it, destination or site label are grouped into one fleet incident, 0 once it ended (kept while it is in the lookback window).", "scope", "key"),
		fleetNodes:    desc("fleet_incident_nodes", "Nodes in a fleet incident.", "scope", "key"),
		fleetMember:   desc("fleet_incident_member_info", "A node that is part of an active fleet incident; always 1.", "scope", "key", n),
		fleetStart:    desc("fleet_incident_start_timestamp_seconds", "When the earliest member incident of a fleet incident began.", "scope", "key"),
		fleetEnd:      desc("fleet_incident_end_timestamp_seconds", "When the latest fleet incident of this scope and key ended (fewer than two member nodes still failing).", "scope", "key"),
		fleetSup:      desc("fleet_incident_superseded", "1 if the latest fleet incident of this scope and key ended because another one took over its members (superseded_by in the JSON).", "scope", "key", "superseded_by_scope"),
		mosD:          desc("mos", "Mean opinion score for a call over this path (1-4.5), from the R-factor.", n, "target"),
	}
}

// Describe sends every descriptor, including those a given snapshot has no series for.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.up, c.blind, c.lastOK, c.dur, c.qerr, c.series, c.queries,
		c.nodeBlind, c.nodeHealth, c.nodeIncidents, c.incActive, c.incStart, c.incEnd, c.incSuperseded, c.blame,
		c.anomaly, c.baseline, c.cpTime, c.cpSize, c.origin, c.rateLimited, c.routeChanges,
		c.bloatGrade, c.bloatInfo, c.bloatInc, c.until, c.rfactor, c.mosD, c.lastTS,
		c.fleetActive, c.fleetNodes, c.fleetMember, c.fleetStart, c.missing, c.fleetEnd, c.fleetSup} {
		ch <- d
	}
}

func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	g := func(d *prometheus.Desc, v float64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, l...)
	}
	for q, v := range c.e.QueryErrors() {
		ch <- prometheus.MustNewConstMetric(c.qerr, prometheus.CounterValue, v, q)
	}
	s := c.e.Last()
	if s == nil {
		g(c.up, 0)
		g(c.blind, 1)
		return
	}
	g(c.up, b2f(s.Up))
	g(c.blind, b2f(s.Blind))
	g(c.lastTS, float64(s.Time.Unix()))
	if ok := c.e.LastSuccess(); !ok.IsZero() {
		g(c.lastOK, float64(ok.Unix()))
	}
	g(c.dur, s.Duration.Seconds())
	g(c.queries, float64(s.Queries))
	g(c.series, float64(s.Series))
	for _, n := range s.Nodes {
		g(c.nodeBlind, b2f(n.Blind), n.Node)
		g(c.nodeHealth, 1, n.Node, n.Health)
		g(c.nodeIncidents, float64(n.Incidents), n.Node)
	}
	c.collectIncidents(g, s)
	for _, a := range s.Anomalies {
		g(c.anomaly, a.Score, a.Node, a.Target)
		g(c.baseline, a.Expected, a.Node, a.Target, "expected")
		g(c.baseline, a.Lower, a.Node, a.Target, "lower")
		g(c.baseline, a.Upper, a.Node, a.Target, "upper")
	}
	for _, cp := range s.Changes {
		g(c.cpTime, float64(cp.Time.Unix()), cp.Node, cp.Target)
		g(c.cpSize, cp.Ratio, cp.Node, cp.Target)
	}
	for _, p := range s.Paths {
		if p.LossOrigin > 0 && p.DestLoss >= c.e.cfg.PathLossRatio {
			g(c.origin, float64(p.LossOrigin), p.Node, p.Target, "loss")
		}
		if p.LatencyOrigin > 0 {
			g(c.origin, float64(p.LatencyOrigin), p.Node, p.Target, "latency")
		}
		for _, h := range p.RateLimited {
			g(c.rateLimited, 1, p.Node, p.Target, strconv.Itoa(h))
		}
		g(c.routeChanges, p.RouteChanges, p.Node, p.Target)
	}
	for _, b := range s.Bloat {
		g(c.bloatGrade, float64(b.Numeric), b.Node)
		g(c.bloatInfo, 1, b.Node, b.Grade)
		g(c.bloatInc, b.Increase, b.Node)
	}
	for _, d := range s.Clocks {
		g(c.until, d.Seconds, d.Node, d.Limit, d.Object)
	}
	c.collectFleet(g, s)
	for _, q := range s.Quality {
		g(c.rfactor, q.RFactor, q.Node, q.Target)
		g(c.mosD, q.MOS, q.Node, q.Target)
	}
}

type gaugeFunc func(d *prometheus.Desc, v float64, l ...string)

// collectIncidents: the latest incident per label set (a flapping key shows
// only its latest episode) and the blame of the active ones.
func (c *Collector) collectIncidents(g gaugeFunc, s *Snapshot) {
	latest := map[string]Incident{}
	for _, in := range s.Incidents {
		k := in.key() + "\x00" + in.Severity
		if p, ok := latest[k]; !ok || in.Start.After(p.Start) {
			latest[k] = in
		}
	}
	blamed := map[string]bool{}
	for _, in := range latest {
		l := []string{in.Node, in.Target, in.Kind, in.Severity}
		g(c.incActive, b2f(in.Active), l...)
		g(c.incStart, float64(in.Start.Unix()), l...)
		if !in.Active {
			g(c.incEnd, float64(in.End.Unix()), l...)
			if in.SupersededBy != "" {
				g(c.incSuperseded, 1, append(l, supersederKind(in.SupersededBy))...)
			}
			continue
		}
		bk := in.key()
		if blamed[bk] {
			continue
		}
		blamed[bk] = true
		for i, b := range in.Blame {
			g(c.blame, b.Score, in.Node, in.Target, in.Kind, b.Signal, strconv.Itoa(i+1))
		}
	}
}

// collectFleet: the latest fleet incident per scope and key, like
// collectIncidents; members only while it is active.
func (c *Collector) collectFleet(g gaugeFunc, s *Snapshot) {
	for q := range s.Missing {
		g(c.missing, 1, q)
	}
	latest := map[string]FleetIncident{}
	for _, f := range s.Fleet {
		k := f.Scope + "\x00" + f.Key
		if p, ok := latest[k]; !ok || f.Start.After(p.Start) || (f.Start.Equal(p.Start) && f.Active) {
			latest[k] = f
		}
	}
	for _, f := range latest {
		g(c.fleetActive, b2f(f.Active), f.Scope, f.Key)
		g(c.fleetNodes, float64(len(f.Members)), f.Scope, f.Key)
		g(c.fleetStart, float64(f.Start.Unix()), f.Scope, f.Key)
		if !f.Active {
			g(c.fleetEnd, float64(f.End.Unix()), f.Scope, f.Key)
			if f.SupersededBy != "" {
				_, rest, _ := strings.Cut(f.SupersededBy, "/") // fleet/scope/key@start
				by, _, _ := strings.Cut(rest, "/")
				g(c.fleetSup, 1, f.Scope, f.Key, by)
			}
			continue
		}
		for _, m := range f.Members {
			g(c.fleetMember, 1, f.Scope, f.Key, m)
		}
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// supersederKind is the kind part of an incident ID (node/kind/target@start).
func supersederKind(id string) string {
	for _, k := range kindRules {
		if strings.Contains(id, "/"+k.Kind+"/") {
			return k.Kind
		}
	}
	return ""
}
