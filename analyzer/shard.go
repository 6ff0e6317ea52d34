package analyzer

import (
	"context"
	"fmt"
	"hash/fnv"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
)

// Shard is this replica's part of the fleet when several analyzers share one
// (Count > 1): the nodes whose FNV-1a hash of the node label's value, mod
// Count, is Index. The hash depends on the name only, so every replica agrees
// without talking to the others and a node keeps its shard for life.
//
// PromQL has no hash function, so with Filter "server" (the default) every
// cycle begins with one instant query that lists the fleet's node names; the
// replica hashes them and adds node=~"a|b|…" (its own nodes) to every
// selector of the cycle. The server then reads and sends only this shard's
// series — Prometheus and VictoriaMetrics turn an alternation of literals
// into a set lookup — and the queries per cycle stay fixed: the list plus
// one. Filter "client" sends the queries unchanged and drops the other
// shards' series on arrival: no long queries (VictoriaMetrics' default
// -search.maxQueryLen is 16 KiB, about 1500 node names), but every replica
// still transfers and decodes the whole fleet.
//
// Fleet incidents group nodes of every shard, so only shard 0 builds them:
// its fleet queries (gateway, target addresses, hop, fleet labels) run
// unsharded, and it adds the active incidents of the other shards, which
// Engine.SetFleetPeers fetches (from their /api/v1/incidents).
type Shard struct {
	Index, Count int
	Filter       string // "server" (default) or "client"
}

// ShardOf is the shard of a node among count.
func ShardOf(node string, count int) int {
	h := fnv.New32a()
	h.Write([]byte(node))
	return int(h.Sum32() % uint32(max(1, count)))
}

// Validate says what is wrong with a shard setting, naming the flag.
func (s Shard) Validate() error {
	switch {
	case s.Count < 1:
		return fmt.Errorf("shard.count=%d: want at least 1", s.Count)
	case s.Index < 0 || s.Index >= s.Count:
		return fmt.Errorf("shard.index=%d: want 0 to shard.count-1 (%d)", s.Index, s.Count-1)
	case s.Filter != "" && s.Filter != "server" && s.Filter != "client":
		return fmt.Errorf("shard.filter=%q: want server or client", s.Filter)
	}
	return nil
}

func (s Shard) sharded() bool { return s.Count > 1 }

// Owns says whether node belongs to this shard.
func (s Shard) Owns(node string) bool { return !s.sharded() || ShardOf(node, s.Count) == s.Index }

func (s Shard) serverSide() bool { return s.sharded() && s.Filter != "client" }

// fleetQuery: the queries shard 0 runs over the whole fleet to group fleet incidents.
func fleetQuery(name string) bool {
	return name == qGateway || name == qTargetIP || name == qHop2 || strings.HasPrefix(name, "fleet_label_")
}

// unsharded says whether query name runs over the whole fleet in this replica.
func (s Shard) unsharded(name string) bool { return !s.sharded() || (s.Index == 0 && fleetQuery(name)) }

const qShardNodes = "shard_nodes"

// nodesQuery lists every node with ping data in the lookback.
func (c *Config) nodesQuery() string {
	return `group by (` + c.NodeLabel + `) (last_over_time(` + mPingSent + `[` + promDur(c.Lookback) + `]))`
}

// noNode is a node name no fleet has: the matcher of an empty shard.
const noNode = "smokemon-analyzer:empty-shard"

// shardMatcher is the label matcher that selects this shard's nodes out of
// the fleet (a sorted alternation of quoted literals).
func (c *Config) shardMatcher(fleet model.Vector) string {
	var own []string
	for _, s := range fleet {
		if n := string(s.Metric[model.LabelName(c.NodeLabel)]); n != "" && c.Shard.Owns(n) {
			own = append(own, regexp.QuoteMeta(n))
		}
	}
	sort.Strings(own)
	if len(own) == 0 {
		return c.NodeLabel + "=" + strconv.Quote(noNode)
	}
	return c.NodeLabel + "=~" + strconv.Quote(strings.Join(own, "|"))
}

// selectorRE finds the vector selectors of the analyzer's queries: every
// metric it reads is a smokemon_ one (see inputs' metric names).
var selectorRE = regexp.MustCompile(`\bsmokemon_[a-zA-Z0-9_:]*(\{[^}]*\})?`)

// withMatcher adds matcher to every selector of expr.
func withMatcher(expr, matcher string) string {
	return selectorRE.ReplaceAllStringFunc(expr, func(sel string) string {
		switch {
		case strings.HasSuffix(sel, "{}"):
			return sel[:len(sel)-1] + matcher + "}"
		case strings.HasSuffix(sel, "}"):
			return sel[:len(sel)-1] + "," + matcher + "}"
		}
		return sel + "{" + matcher + "}"
	})
}

// shardQueries rewrites qs for this replica's shard: one instant query
// lists the fleet, then every query that is not fleet-wide selects this
// shard's nodes.
func (e *Engine) shardQueries(ctx context.Context, qs []Query, at time.Time) ([]Query, error) {
	sh := e.cfg.Shard
	qctx, cancel := context.WithTimeout(ctx, e.cfg.QueryTimeout)
	defer cancel()
	fleet, err := e.src.Query(qctx, e.cfg.nodesQuery(), at)
	if err != nil {
		e.logger.Warn("query failed", "query", qShardNodes, "err", err)
		return nil, fmt.Errorf("%s: %w", qShardNodes, err)
	}
	m := e.cfg.shardMatcher(fleet)
	out := make([]Query, len(qs))
	for i, q := range qs {
		out[i] = q
		if !sh.unsharded(q.Name) {
			out[i].Expr = withMatcher(q.Expr, m)
		}
	}
	return out, nil
}

// keepOwn drops the series of other shards' nodes (client-side filtering).
func (e *Engine) keepOwn(name string, m model.Matrix) model.Matrix {
	return ownSeries(e, name, m, func(s *model.SampleStream) model.Metric { return s.Metric })
}

func (e *Engine) keepOwnVector(name string, v model.Vector) model.Vector {
	return ownSeries(e, name, v, func(s *model.Sample) model.Metric { return s.Metric })
}

// ownSeries is keepOwn for a matrix or a vector; metric gives a series' labels.
func ownSeries[S any](e *Engine, name string, ss []S, metric func(S) model.Metric) []S {
	sh := e.cfg.Shard
	if !sh.sharded() || sh.serverSide() || sh.unsharded(name) {
		return ss
	}
	nl := model.LabelName(e.cfg.NodeLabel)
	out := ss[:0]
	for _, s := range ss {
		if sh.Owns(string(metric(s)[nl])) {
			out = append(out, s)
		}
	}
	return out
}

// FleetPeers returns the active incidents of the other shards' analyzers.
type FleetPeers func(ctx context.Context) ([]Incident, error)

// SetFleetPeers tells shard 0 where the other shards' incidents come from.
// Without it a sharded shard 0 groups only its own nodes' incidents.
func (e *Engine) SetFleetPeers(f FleetPeers) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.peers = f
}

// fleet groups the cycle's fleet incidents: over the snapshot alone when
// unsharded; in shard 0 over its incidents and the other shards' (their
// nodes' gateways and addresses come from its unsharded fleet queries);
// other shards leave fleet grouping to shard 0.
func (e *Engine) fleet(ctx context.Context, snap *Snapshot, res map[string]*result) []FleetIncident {
	sh := e.cfg.Shard
	if !sh.sharded() {
		return e.groupFleet(snap, snap.attrs, snap.gateways)
	}
	if sh.Index != 0 {
		return nil
	}
	e.mu.Lock()
	peers := e.peers
	e.mu.Unlock()
	all := &Snapshot{Incidents: append([]Incident(nil), snap.Incidents...)}
	if peers != nil {
		incs, err := peers(ctx)
		if err != nil {
			e.logger.Warn("fleet peers failed: fleet incidents cover the nodes that answered", "err", err)
			snap.QueryErrors = append(snap.QueryErrors, "fleet_peers: "+err.Error())
		}
		for _, in := range incs {
			if in.Active && !sh.Owns(in.Node) {
				all.Incidents = append(all.Incidents, in)
			}
		}
	}
	sortIncidents(all.Incidents)
	return e.groupFleet(all, snap.attrs, e.fleetGateways(snap, res))
}

// fleetGateways: every node's gateway target, the other shards' from the
// unsharded gateway query (or, as for own nodes, the gateway target regex
// on the targets the address query names).
func (e *Engine) fleetGateways(snap *Snapshot, res map[string]*result) map[string]string {
	nl := e.cfg.NodeLabel
	gws := make(map[string]string, len(snap.gateways))
	for n, g := range snap.gateways {
		gws[n] = g
	}
	for _, q := range []string{qGateway, qTargetIP} {
		r := res[q]
		if r == nil || r.err != nil {
			continue
		}
		for _, s := range r.series {
			n, t := s.Labels[nl], s.Labels["target"]
			if _, ok := gws[n]; ok || e.cfg.Shard.Owns(n) {
				continue
			}
			if q == qGateway || (e.cfg.GatewayTargets != nil && e.cfg.GatewayTargets.MatchString(t)) {
				gws[n] = t
			}
		}
	}
	return gws
}

// ShardCollector exposes the replica's shard, how many nodes it analyses and
// how much of the window a cold start has read so far.
type ShardCollector struct {
	e                    *Engine
	info, nodes, covered *prometheus.Desc
}

func NewShardCollector(e *Engine) *ShardCollector {
	return &ShardCollector{e: e,
		info:    desc("shard_info", "This replica's shard of the fleet: it analyses the nodes whose FNV-1a hash of the node label mod count is index; always 1.", "index", "count"),
		nodes:   desc("shard_nodes", "Nodes this replica's last cycle analysed (its shard of the fleet)."),
		covered: desc("window_covered_seconds", "How much of the lookback window the last cycle's data covers: less than the lookback while a cold start warms up."),
	}
}

func (c *ShardCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.info
	ch <- c.nodes
	ch <- c.covered
}

func (c *ShardCollector) Collect(ch chan<- prometheus.Metric) {
	sh := c.e.cfg.Shard
	ch <- prometheus.MustNewConstMetric(c.info, prometheus.GaugeValue, 1, strconv.Itoa(sh.Index), strconv.Itoa(max(1, sh.Count)))
	if s := c.e.Last(); s != nil {
		ch <- prometheus.MustNewConstMetric(c.nodes, prometheus.GaugeValue, float64(len(s.Nodes)))
		ch <- prometheus.MustNewConstMetric(c.covered, prometheus.GaugeValue, s.Covered.Seconds())
	}
}
