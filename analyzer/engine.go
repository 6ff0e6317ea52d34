// Package analyzer turns smokemon's raw series into answers: incidents with
// blame, anomaly scores, change points, path origins, bufferbloat grades,
// death clocks and call quality. Every cycle runs a fixed set of PromQL
// queries aggregated by node; all per-series logic runs here in Go.
package analyzer

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"time"
)

// Config of the engine.
type Config struct {
	NodeLabel      string
	Step           time.Duration // grid step of range queries
	Lookback       time.Duration // how far back incidents are replayed
	RateWindow     time.Duration // rate()/increase() window of the grid series
	LongWindow     time.Duration // window of the instant figures (jitter, mtr loss)
	ShortWindow    time.Duration // window of the loss and RTT that date incidents and see outages
	QueryTimeout   time.Duration
	Concurrency    int
	GatewayTargets *regexp.Regexp // targets taken as the gateway when no target_info says so
	Thresholds     Thresholds
	BloatBands     []float64
	FlashPECycles  float64 // program/erase cycles of the flash, for wear-out clocks
	PathLossRatio  float64 // loss from which an mtr hop counts as lossy
	ChangeMinRatio float64
	BlameTop       int
	// Refetch is how much of the end of the window every cycle asks again
	// (late samples, windows that were still filling). The rest of the
	// window is kept from earlier cycles, so a cycle's range queries are a
	// few steps long however long the lookback.
	Refetch time.Duration
	// SlowInterval is how often the slow queries run (see Query.Slow).
	SlowInterval time.Duration
	// Ahead is how far past the window's end the seasonal queries read.
	Ahead time.Duration
	// BaselineWindow is how much normal history before a step gives its
	// expected RTT when there is no seasonal history (a young node).
	BaselineWindow time.Duration
	// FleetLabels are series labels (besides gateway, first hop and
	// destination) by which incidents of several nodes are grouped.
	FleetLabels []string
	// FleetWindow: incidents that began this close together can be one fleet incident.
	FleetWindow time.Duration
	// Shard is this replica's part of a fleet several analyzers share (see Shard).
	Shard Shard
	// WarmupWindow is what a cold start reads first; each later cycle reads
	// WarmupChunk further back until the lookback is full (see warmFrom).
	WarmupWindow, WarmupChunk time.Duration
}

func DefaultConfig() Config {
	return Config{
		NodeLabel: "node", Step: 30 * time.Second, Lookback: time.Hour,
		RateWindow: 2 * time.Minute, LongWindow: 5 * time.Minute, ShortWindow: time.Minute,
		QueryTimeout: 20 * time.Second, Concurrency: 2,
		GatewayTargets: regexp.MustCompile(`^(gateway|gw|router)$`),
		Thresholds:     DefaultThresholds(), BloatBands: DefaultBloatBands,
		FlashPECycles: 3000, PathLossRatio: 0.05, ChangeMinRatio: 1.3, BlameTop: 3,
		Refetch: 2 * time.Minute, SlowInterval: 5 * time.Minute, Ahead: 10 * time.Minute,
		BaselineWindow: 15 * time.Minute, FleetLabels: []string{"site"}, FleetWindow: 5 * time.Minute,
		WarmupChunk: 10 * time.Minute, // WarmupWindow 0: the first cycle reads the whole window
	}
}

// NodeSummary is the fleet view of one node at the end of the window.
type NodeSummary struct {
	Node        string    `json:"node"`
	Health      string    `json:"health"` // ok, degraded, down, blind
	Blind       bool      `json:"blind"`
	WorstTarget string    `json:"worst_target,omitempty"`
	WorstLoss   float64   `json:"worst_loss_ratio"`
	MedianRTT   float64   `json:"median_rtt_seconds"`
	CPU         float64   `json:"cpu_busy_ratio"`
	Memory      float64   `json:"memory_used_ratio"`
	Flash       float64   `json:"flash_life_used_ratio"`
	WifiSignal  float64   `json:"wifi_signal_dbm"`
	Incidents   int       `json:"active_incidents"`
	Spark       []float64 `json:"-"` // worst target's RTT over the window
	// RTTMissing: pings are answered but the RTT series is absent (see
	// Snapshot.Missing).
	RTTMissing bool `json:"rtt_series_missing,omitempty"`
}

// Snapshot is one cycle's complete, immutable result.
type Snapshot struct {
	Time      time.Time       `json:"time"`
	Grid      Grid            `json:"-"`
	Up        bool            `json:"up"`
	Blind     bool            `json:"blind"`
	Error     string          `json:"error,omitempty"`
	Incidents []Incident      `json:"incidents"`
	Nodes     []NodeSummary   `json:"nodes"`
	Anomalies []Anomaly       `json:"anomalies"`
	Changes   []ChangePoint   `json:"change_points"`
	Paths     []PathResult    `json:"paths"`
	Bloat     []BloatGrade    `json:"bufferbloat"`
	Clocks    []DeathClock    `json:"death_clocks"`
	Quality   []Quality       `json:"quality"`
	Fleet     []FleetIncident `json:"fleet_incidents"`
	// Recent is the span of the "now" figures (medians of the last Recent).
	Recent time.Duration `json:"recent_seconds"`
	// Missing names the inputs whose series are absent although the data
	// they derive from is there (e.g. classic histogram series on a server
	// that keeps native histograms only): query name → explanation.
	Missing  map[string]string `json:"missing_series,omitempty"`
	Series   int               `json:"series_analysed"`
	Queries  int               `json:"queries"`
	Duration time.Duration     `json:"duration_seconds"`
	// QueryDuration is the part of Duration spent waiting for the server.
	QueryDuration time.Duration `json:"query_duration_seconds"`
	QueryErrors   []string      `json:"query_errors,omitempty"`
	// WarmingUp: a cold start is still reading the window backwards; the
	// results cover only its last Covered (incidents older than that are not known yet).
	WarmingUp bool          `json:"warming_up"`
	Covered   time.Duration `json:"window_covered_seconds"`

	attrs    map[string]*nodeAttrs // what nodes share (fleet grouping)
	gateways map[string]string     // node → its gateway target
}

// Engine evaluates cycles and remembers the last snapshot, so that a blind
// cycle holds the previous state instead of inventing or resolving anything.
type Engine struct {
	cfg    Config
	src    Source
	logger *slog.Logger

	mu       sync.Mutex
	bufs     map[string]*rangeBuf // range results of earlier cycles, by query (record mode only)
	slow     map[string]*result   // results of the slow queries, and when they ran
	slowAt   time.Time
	last     *Snapshot
	ended    []Incident      // explicitly ended incidents still in the window (see reconcile)
	missing  map[string]bool // inputs reported missing, logged once per change
	lastOK   time.Time
	errCount map[string]float64

	fleetEnded []FleetIncident // the same as ended for fleet incidents (see reconcileFleet)
	peers      FleetPeers      // the other shards' incidents (shard 0 of a sharded fleet)
	cycle      int             // recorded cycles run (see backfill)
}

func NewEngine(cfg Config, src Source, logger *slog.Logger) *Engine {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Engine{cfg: cfg, src: src, logger: logger, errCount: map[string]float64{}}
}

// Queries is the fixed query list (for documentation and the bench).
func (e *Engine) Queries() []Query { return e.cfg.queries() }

// Last returns the latest snapshot (nil before the first cycle).
func (e *Engine) Last() *Snapshot {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.last
}

// QueryErrors returns the cumulative error count per query name.
func (e *Engine) QueryErrors() map[string]float64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	m := make(map[string]float64, len(e.errCount))
	for k, v := range e.errCount {
		m[k] = v
	}
	return m
}

type result struct {
	series []Series
	err    error
}

// Evaluate runs one cycle ending at t over the configured lookback and
// records it as the engine's latest snapshot.
func (e *Engine) Evaluate(ctx context.Context, t time.Time) *Snapshot {
	s := e.EvaluateWindow(ctx, t, e.cfg.Lookback, e.cfg.Step, true)
	return s
}

// EvaluateWindow runs one cycle over [end−lookback, end]. With record set the
// snapshot becomes the engine's latest and inherits the previous one's state.
func (e *Engine) EvaluateWindow(ctx context.Context, end time.Time, lookback, step time.Duration, record bool) *Snapshot {
	began := time.Now()
	end = end.Truncate(step)
	g := Grid{Start: end.Add(-lookback), Step: step, N: int(lookback/step) + 1}
	qs := e.cfg.queries()
	res, issued := e.run(ctx, g, qs, record)
	queried := time.Since(began)

	var prev *Snapshot
	if record {
		prev = e.Last()
	}
	snap := &Snapshot{Time: end, Grid: g, Up: true, Queries: issued, Covered: lookback}
	if record {
		snap.Covered, snap.WarmingUp = e.coverage(g, qs)
	}
	for _, q := range qs {
		if err := res[q.Name].err; err != nil {
			snap.QueryErrors = append(snap.QueryErrors, q.Name+": "+err.Error())
		}
	}
	core := []string{qSent, qLost, qRTT}
	for _, n := range core {
		if err := res[n].err; err != nil {
			// Without the ping data every verdict would be a guess: hold everything.
			snap.Up, snap.Blind, snap.Error = false, true, fmt.Sprintf("query %s: %v", n, err)
			if prev != nil {
				snap.Incidents = prev.Incidents
				snap.Fleet = prev.Fleet
				snap.Nodes = prev.Nodes
				for i := range snap.Nodes {
					snap.Nodes[i].Blind = true
				}
			}
			snap.Duration = time.Since(began)
			e.record(snap, record)
			return snap
		}
	}
	e.analyse(snap, g, res, prev)
	if record {
		prev = e.redate(snap, prev)
		e.reconcile(snap, prev)
	} else {
		for i := range snap.Incidents {
			snap.Incidents[i].ID = incidentID(&snap.Incidents[i])
		}
	}
	sortIncidents(snap.Incidents)
	snap.Fleet = e.fleet(ctx, snap, res)
	if record {
		e.reconcileFleet(snap, prev)
	}
	snap.Duration = time.Since(began)
	snap.QueryDuration = queried
	e.record(snap, record)
	return snap
}

func (e *Engine) record(s *Snapshot, record bool) {
	if !record {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if s.Up {
		for q, why := range s.Missing {
			if !e.missing[q] {
				e.logger.Error("input series missing", "query", q, "why", why)
			}
		}
		for q := range e.missing {
			if _, ok := s.Missing[q]; !ok {
				e.logger.Info("input series back", "query", q)
			}
		}
		e.missing = map[string]bool{}
		for q := range s.Missing {
			e.missing[q] = true
		}
	}
	for _, q := range s.QueryErrors {
		e.errCount[strings.SplitN(q, ":", 2)[0]]++
	}
	e.last = s
	if s.Up {
		e.lastOK = s.Time
	}
}

// LastSuccess is the end of the last cycle whose ping queries succeeded.
func (e *Engine) LastSuccess() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.lastOK
}
