// Package analyzer turns smokemon's raw series into answers: incidents with
// blame, anomaly scores, change points, path origins, bufferbloat grades,
// death clocks and call quality. Every cycle runs a fixed set of PromQL
// queries aggregated by node; all per-series logic runs here in Go.
package analyzer

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
)

// Config of the engine.
type Config struct {
	NodeLabel      string
	Step           time.Duration // grid step of range queries
	Lookback       time.Duration // how far back incidents are replayed
	RateWindow     time.Duration // rate()/increase() window of the grid series
	LongWindow     time.Duration // window of the instant figures (jitter, mtr loss)
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
}

func DefaultConfig() Config {
	return Config{
		NodeLabel: "node", Step: 30 * time.Second, Lookback: time.Hour,
		RateWindow: 2 * time.Minute, LongWindow: 5 * time.Minute,
		QueryTimeout: 20 * time.Second, Concurrency: 2,
		GatewayTargets: regexp.MustCompile(`^(gateway|gw|router)$`),
		Thresholds:     DefaultThresholds(), BloatBands: DefaultBloatBands,
		FlashPECycles: 3000, PathLossRatio: 0.05, ChangeMinRatio: 1.3, BlameTop: 3,
		Refetch: 2 * time.Minute, SlowInterval: 5 * time.Minute, Ahead: 10 * time.Minute,
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
}

// Snapshot is one cycle's complete, immutable result.
type Snapshot struct {
	Time      time.Time     `json:"time"`
	Grid      Grid          `json:"-"`
	Up        bool          `json:"up"`
	Blind     bool          `json:"blind"`
	Error     string        `json:"error,omitempty"`
	Incidents []Incident    `json:"incidents"`
	Nodes     []NodeSummary `json:"nodes"`
	Anomalies []Anomaly     `json:"anomalies"`
	Changes   []ChangePoint `json:"change_points"`
	Paths     []PathResult  `json:"paths"`
	Bloat     []BloatGrade  `json:"bufferbloat"`
	Clocks    []DeathClock  `json:"death_clocks"`
	Quality   []Quality     `json:"quality"`
	Series    int           `json:"series_analysed"`
	Queries   int           `json:"queries"`
	Duration  time.Duration `json:"duration_seconds"`
	// QueryDuration is the part of Duration spent waiting for the server.
	QueryDuration time.Duration `json:"query_duration_seconds"`
	QueryErrors   []string      `json:"query_errors,omitempty"`
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
	lastOK   time.Time
	errCount map[string]float64
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
	snap := &Snapshot{Time: end, Grid: g, Up: true, Queries: issued}
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

func (e *Engine) run(ctx context.Context, g Grid, qs []Query, incremental bool) (map[string]*result, int) {
	res := make(map[string]*result, len(qs))
	e.mu.Lock()
	reuseSlow := incremental && e.slow != nil && !g.End().Before(e.slowAt) && g.End().Sub(e.slowAt) < e.cfg.SlowInterval
	if reuseSlow {
		for _, q := range qs {
			if q.Slow {
				res[q.Name] = e.slow[q.Name]
			}
		}
	}
	e.mu.Unlock()
	var mu sync.Mutex
	issued := 0
	sem := make(chan struct{}, max(1, e.cfg.Concurrency))
	var wg sync.WaitGroup
	for _, q := range qs {
		if q.Slow && reuseSlow {
			continue
		}
		if q.Ahead && incremental {
			if b := e.buf(q.Name); b != nil && b.covers(g, e.cfg.Ahead/2) {
				// Queries issued above are already writing res.
				mu.Lock()
				res[q.Name] = &result{series: b.slice(g)}
				mu.Unlock()
				continue
			}
		}
		issued++
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			timeout := e.cfg.QueryTimeout
			r := &result{}
			if q.Ahead && incremental {
				r.series, r.err = e.ahead(ctx, q, g)
				mu.Lock()
				res[q.Name] = r
				mu.Unlock()
				return
			}
			from := g.Start
			var old *rangeBuf
			if q.Range && incremental {
				old = e.buf(q.Name)
				if f, ok := old.refetchFrom(g, e.cfg.Refetch); ok {
					from = f
				} else {
					old = nil
				}
			}
			if q.Range && old == nil {
				// A whole window (start-up, or after a long outage) is many
				// times a normal cycle's data: give it time once.
				timeout = max(timeout, 5*time.Minute)
			}
			qctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			if q.Range {
				mat, err := e.src.QueryRange(qctx, q.Expr, v1.Range{Start: from, End: g.End(), Step: g.Step})
				if err == nil {
					b := merge(old, g, from, mat)
					r.series = b.list()
					if incremental {
						e.setBuf(q.Name, b)
					}
				}
				r.err = err
			} else {
				vec, err := e.src.Query(qctx, q.Expr, g.End())
				if err == nil {
					r.series = vecSeries(vec)
				}
				r.err = err
			}
			if r.err != nil {
				e.logger.Warn("query failed", "query", q.Name, "err", r.err)
			}
			mu.Lock()
			res[q.Name] = r
			mu.Unlock()
		}()
	}
	wg.Wait()
	if incremental && !reuseSlow {
		e.mu.Lock()
		e.slow, e.slowAt = map[string]*result{}, g.End()
		for _, q := range qs {
			if q.Slow {
				if res[q.Name].err != nil {
					e.slow = nil // try again next cycle
					break
				}
				e.slow[q.Name] = res[q.Name]
			}
		}
		e.mu.Unlock()
	}
	return res, issued
}

// ahead fetches a seasonal query from the end of what is kept (or the
// window's start) to Ahead past the window's end.
func (e *Engine) ahead(ctx context.Context, q Query, g Grid) ([]Series, error) {
	old := e.buf(q.Name)
	end := g.End().Add(e.cfg.Ahead)
	ext := Grid{Start: g.Start, Step: g.Step, N: int(end.Sub(g.Start)/g.Step) + 1}
	from := g.Start
	if old != nil && old.grid.Step == g.Step && !old.grid.Start.After(g.Start) && !old.grid.End().Before(g.End()) {
		from = old.grid.End().Add(g.Step)
	} else {
		old = nil
	}
	timeout := e.cfg.QueryTimeout
	if old == nil {
		timeout = max(timeout, 5*time.Minute)
	}
	qctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	mat, err := e.src.QueryRange(qctx, q.Expr, v1.Range{Start: from, End: end, Step: g.Step})
	if err != nil {
		return nil, err
	}
	b := merge(old, ext, from, mat)
	e.setBuf(q.Name, b)
	return b.slice(g), nil
}

func (e *Engine) buf(name string) *rangeBuf {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.bufs[name]
}

func (e *Engine) setBuf(name string, b *rangeBuf) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.bufs == nil {
		e.bufs = map[string]*rangeBuf{}
	}
	e.bufs[name] = b
}

// failedKinds: incident kinds whose inputs failed this cycle keep their previous state.
func failedKinds(res map[string]*result) map[string]bool {
	f := map[string]bool{}
	bad := func(n string) bool { return res[n] != nil && res[n].err != nil }
	if bad(qDNS) {
		f[KindDNSSlow] = true
	}
	if bad(qBloat) {
		f[KindBufferbloat] = true
	}
	if bad(qRTT1d) || bad(qRTT7d) {
		f[KindLatencySpike] = true
	}
	if bad(qGateway) {
		f[KindLinkDown], f[KindISPOutage], f[KindPacketLoss] = true, true, true
	}
	for k, sig := range map[string]string{KindWifiDegraded: "wifi_signal", KindThermalThrottle: "thermal_throttle", KindUnderVoltage: "under_voltage", KindConntrackFull: "conntrack_fill"} {
		if bad("signal_" + sig) {
			f[k] = true
		}
	}
	if bad("signal_wifi_roams") {
		f[KindWifiDegraded] = true
	}
	return f
}

type nodeState struct {
	in      *nodeInput
	rtt1d   map[string][]float64
	rtt7d   map[string][]float64
	loss1d  map[string][]float64
	loss7d  map[string][]float64
	hasData bool
}

func (e *Engine) analyse(snap *Snapshot, g Grid, res map[string]*result, prev *Snapshot) {
	nl := e.cfg.NodeLabel
	nodes := map[string]*nodeState{}
	node := func(l map[string]string) *nodeState {
		n := l[nl]
		ns, ok := nodes[n]
		if !ok {
			ns = &nodeState{in: &nodeInput{Node: n, Loss: map[string][]float64{}, RTT: map[string][]float64{}, RTTRef: map[string][]float64{},
				DNS: map[string][]float64{}, Signals: map[string][]float64{}},
				rtt1d: map[string][]float64{}, rtt7d: map[string][]float64{}, loss1d: map[string][]float64{}, loss7d: map[string][]float64{}}
			nodes[n] = ns
		}
		return ns
	}
	series := 0
	get := func(name string) []Series {
		r := res[name]
		if r == nil || r.err != nil {
			return nil
		}
		series += len(r.series)
		return r.series
	}
	sent := map[string][]float64{}
	for _, s := range get(qSent) {
		sent[s.Labels[nl]+"\x00"+s.Labels["target"]] = s.V
		node(s.Labels)
	}
	for _, s := range get(qLost) {
		ns := node(s.Labels)
		sv := sent[s.Labels[nl]+"\x00"+s.Labels["target"]]
		loss := nanSlice(g.N)
		for i := range loss {
			// No probes sent in a window means the exporter was away: blind, not 0% loss.
			if sv != nil && sv[i] > 0 && !math.IsNaN(s.V[i]) {
				loss[i] = math.Min(1, math.Max(0, s.V[i]/sv[i]))
				ns.hasData = true
			}
		}
		ns.in.Loss[s.Labels["target"]] = loss
	}
	lostBy := map[string][]float64{}
	for _, s := range get(qLost) {
		lostBy[s.Labels[nl]+"\x00"+s.Labels["target"]] = s.V
	}
	for _, s := range get(qRTT) {
		k := s.Labels[nl] + "\x00" + s.Labels["target"]
		sv, lv := sent[k], lostBy[k]
		mean := nanSlice(g.N)
		for i := range mean {
			// No answer, no latency: a lost probe never counts as one.
			if sv != nil && lv != nil && sv[i]-lv[i] > 0 {
				mean[i] = s.V[i] / (sv[i] - lv[i])
			}
		}
		node(s.Labels).in.RTT[s.Labels["target"]] = mean
	}
	for name, dst := range map[string]func(*nodeState) map[string][]float64{
		qRTT1d: func(n *nodeState) map[string][]float64 { return n.rtt1d }, qRTT7d: func(n *nodeState) map[string][]float64 { return n.rtt7d },
		qLoss1d: func(n *nodeState) map[string][]float64 { return n.loss1d }, qLoss7d: func(n *nodeState) map[string][]float64 { return n.loss7d },
	} {
		for _, s := range get(name) {
			if ns, ok := nodes[s.Labels[nl]]; ok {
				dst(ns)[s.Labels["target"]] = s.V
			}
		}
	}
	for _, s := range get(qGateway) {
		if ns, ok := nodes[s.Labels[nl]]; ok {
			ns.in.Gateway = s.Labels["target"]
		}
	}
	for _, ns := range nodes {
		if ns.in.Gateway == "" && e.cfg.GatewayTargets != nil {
			for t := range ns.in.Loss {
				if e.cfg.GatewayTargets.MatchString(t) {
					ns.in.Gateway = t
				}
			}
		}
	}
	for _, s := range get(qDNS) {
		if ns, ok := nodes[s.Labels[nl]]; ok {
			ns.in.DNS[s.Labels["resolver"]] = s.V
		}
	}
	for _, s := range get(qBloat) {
		if ns, ok := nodes[s.Labels[nl]]; ok {
			ns.in.Bloat = s.V
		}
	}
	defs := map[string]signalDef{}
	for _, d := range signalDefs() {
		defs[d.Name] = d
		for _, s := range get("signal_" + d.Name) {
			ns, ok := nodes[s.Labels[nl]]
			if !ok {
				continue
			}
			name := d.Name
			if d.Detail != "" {
				name += ":" + s.Labels[d.Detail]
			}
			ns.in.Signals[name] = s.V
		}
	}

	th := e.cfg.Thresholds
	th.RampSteps = int(math.Ceil(float64(e.cfg.RateWindow) / float64(g.Step)))
	failed := failedKinds(res)
	prevByKey := map[string]Incident{}
	prevNodes := map[string]bool{}
	if prev != nil {
		for _, in := range prev.Incidents {
			if in.Active {
				prevByKey[in.key()] = in
				prevNodes[in.Node] = true
			}
		}
	}
	recent := max(2, int(e.cfg.LongWindow/g.Step))

	names := sortedKeys(nodes)
	// Nodes are independent: analyse them on every core, merge in name order.
	parts := make([]Snapshot, len(names))
	var wg sync.WaitGroup
	next := make(chan int)
	for range max(1, runtime.GOMAXPROCS(0)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				e.analyseNode(&parts[i], nodes[names[i]], g, th, defs, failed, prevByKey, recent)
			}
		}()
	}
	for i := range names {
		next <- i
	}
	close(next)
	wg.Wait()
	for i := range parts {
		p := &parts[i]
		snap.Incidents = append(snap.Incidents, p.Incidents...)
		snap.Nodes = append(snap.Nodes, p.Nodes...)
		snap.Anomalies = append(snap.Anomalies, p.Anomalies...)
		snap.Changes = append(snap.Changes, p.Changes...)
		snap.Quality = append(snap.Quality, p.Quality...)
	}
	// Nodes with active incidents that vanished from the data entirely: blind, held.
	for n := range prevNodes {
		if _, ok := nodes[n]; ok {
			continue
		}
		for _, p := range prevByKey {
			if p.Node == n {
				snap.Incidents = append(snap.Incidents, p)
			}
		}
		snap.Nodes = append(snap.Nodes, NodeSummary{Node: n, Health: "blind", Blind: true, WorstLoss: math.NaN(), MedianRTT: math.NaN(),
			CPU: math.NaN(), Memory: math.NaN(), Flash: math.NaN(), WifiSignal: math.NaN()})
	}
	e.pathFigures(snap, res, get)
	e.hostFigures(snap, get)
	sort.Slice(snap.Incidents, func(i, j int) bool {
		a, b := snap.Incidents[i], snap.Incidents[j]
		if !a.Start.Equal(b.Start) {
			return a.Start.Before(b.Start)
		}
		return a.key() < b.key()
	})
	sort.Slice(snap.Nodes, func(i, j int) bool { return snap.Nodes[i].Node < snap.Nodes[j].Node })
	snap.Series = series
	// Attach the path origin to loss incidents of the same node×target.
	origin := map[string]int{}
	for _, p := range snap.Paths {
		origin[p.Node+"\x00"+p.Target] = p.LossOrigin
	}
	for i := range snap.Incidents {
		in := &snap.Incidents[i]
		if in.Kind == KindPacketLoss && in.Active {
			in.OriginHop = origin[in.Node+"\x00"+in.Target]
		}
	}
	for i := range snap.Nodes {
		snap.Blind = snap.Blind || snap.Nodes[i].Blind
	}
}

// stepJitter is the mean absolute change of the RTT between steps: the
// latency variation a jitter buffer must absorb, seen at the grid's
// resolution. It understates packet-to-packet jitter; the histogram would
// give that, at a cost of one bucket series per le per target, which a
// 30-second cycle over a large fleet cannot pay.
func stepJitter(x []float64) float64 {
	sum, n := 0.0, 0
	for i := 1; i < len(x); i++ {
		if d := math.Abs(x[i] - x[i-1]); !math.IsNaN(d) {
			sum += d
			n++
		}
	}
	if n == 0 {
		return math.NaN()
	}
	return sum / float64(n)
}

func endOr(i, n int) int {
	if i < 0 {
		return n
	}
	return i
}

// analyseNode fills part with one node's incidents and figures.
func (e *Engine) analyseNode(part *Snapshot, ns *nodeState, g Grid, th Thresholds, defs map[string]signalDef, failed map[string]bool,
	prevByKey map[string]Incident, recent int) {
	in := ns.in
	n := in.Node
	seasonal := map[string]bool{}
	for t, x := range in.RTT {
		exp, sea := expected(x, ns.rtt1d[t], ns.rtt7d[t])
		in.RTTRef[t], seasonal[t] = exp, sea
	}
	var incs []Incident
	if ns.hasData {
		incs = detect(in, g, th)
	}
	for i := range incs {
		inc := &incs[i]
		inc.Blame = rankBlame(in.Signals, defs, inc.startIdx, endOr(inc.endIdx, g.N), 20, e.cfg.BlameTop)
		if p, ok := prevByKey[inc.key()]; ok && inc.Active && inc.startIdx == 0 && p.Start.Before(inc.Start) {
			inc.Start = p.Start // began before this window
		}
	}
	// Kinds whose queries failed, and nodes gone silent, keep what they had.
	held := map[string]bool{}
	for _, p := range prevByKey {
		if p.Node == n && (failed[p.Kind] || !ns.hasData) {
			held[p.key()] = true
		}
	}
	kept := incs[:0]
	for _, inc := range incs {
		if !held[inc.key()] && !failed[inc.Kind] {
			kept = append(kept, inc)
		}
	}
	for _, p := range prevByKey {
		if held[p.key()] {
			kept = append(kept, p)
		}
	}
	part.Incidents = kept
	e.nodeFigures(part, ns, g, recent, seasonal)
	part.Nodes = []NodeSummary{summarise(ns, g, kept, recent)}
}

// nodeFigures: anomaly scores, change points, call quality for one node.
func (e *Engine) nodeFigures(snap *Snapshot, ns *nodeState, g Grid, recent int, isSeasonal map[string]bool) {
	in := ns.in
	for _, t := range sortedKeys(in.RTT) {
		x := in.RTT[t]
		if l := in.Loss[t]; l != nil {
			r := rFactor(median(x[max(0, len(x)-recent):]), stepJitter(x[max(0, len(x)-recent):]), median(l[max(0, len(l)-recent):]))
			if !math.IsNaN(r) {
				snap.Quality = append(snap.Quality, Quality{Node: in.Node, Target: t, RFactor: r, MOS: mos(r)})
			}
		}
		exp, seasonal := in.RTTRef[t], isSeasonal[t]
		floor := math.Max(0.0005, 0.05*median(exp))
		score, sigma := anomalyScore(x, exp, recent, floor)
		if l := in.Loss[t]; l != nil {
			lexp, _ := expected(l, ns.loss1d[t], ns.loss7d[t])
			if ls, _ := anomalyScore(l, lexp, recent, 0.01); !math.IsNaN(ls) && (math.IsNaN(score) || ls > score) {
				score = ls
			}
		}
		if !math.IsNaN(score) {
			v, ex := median(x[max(0, len(x)-recent):]), exp[len(exp)-1]
			snap.Anomalies = append(snap.Anomalies, Anomaly{Node: in.Node, Target: t, Score: score, Value: v, Expected: ex,
				Lower: math.Max(0, ex-bandK*sigma), Upper: ex + bandK*sigma, Seasonal: seasonal})
		}
		if i, ratio, ok := lastChange(x, e.cfg.ChangeMinRatio); ok {
			snap.Changes = append(snap.Changes, ChangePoint{Node: in.Node, Target: t, Time: g.Time(i), Ratio: ratio})
		}
	}
}

// summarise builds the fleet line of a node from the end of the window.
func summarise(ns *nodeState, g Grid, incs []Incident, recent int) NodeSummary {
	in := ns.in
	s := NodeSummary{Node: in.Node, WorstLoss: math.NaN(), MedianRTT: math.NaN()}
	tail := func(v []float64) float64 {
		if v == nil {
			return math.NaN()
		}
		return median(v[max(0, len(v)-recent):])
	}
	worstScore := -1.0
	var rtts []float64
	for _, t := range sortedKeys(in.Loss) {
		l, r := tail(in.Loss[t]), tail(in.RTT[t])
		rtts = append(rtts, r)
		score := l
		if math.IsNaN(score) {
			continue
		}
		if score > worstScore || (score == worstScore && r > tail(in.RTT[s.WorstTarget])) {
			worstScore, s.WorstTarget, s.WorstLoss = score, t, l
		}
	}
	s.MedianRTT = median(rtts)
	if s.WorstTarget != "" {
		s.Spark = in.RTT[s.WorstTarget]
	}
	s.CPU, s.Memory, s.WifiSignal = tail(in.Signals["cpu_busy"]), tail(in.Signals["memory_used"]), tail(in.Signals["wifi_signal"])
	s.Flash = math.NaN()
	s.Blind = !ns.hasData || math.IsNaN(s.WorstLoss)
	crit := false
	for _, i := range incs {
		if i.Active {
			s.Incidents++
			crit = crit || i.Kind == KindLinkDown || i.Kind == KindISPOutage
		}
	}
	switch {
	case s.Blind:
		s.Health = "blind"
	case crit:
		s.Health = "down"
	case s.Incidents > 0:
		s.Health = "degraded"
	default:
		s.Health = "ok"
	}
	return s
}

func (e *Engine) pathFigures(snap *Snapshot, res map[string]*result, get func(string) []Series) {
	nl := e.cfg.NodeLabel
	type key struct{ n, t string }
	sent := map[key]map[string]float64{}
	for _, s := range get(qMTRSent) {
		k := key{s.Labels[nl], s.Labels["target"]}
		if sent[k] == nil {
			sent[k] = map[string]float64{}
		}
		sent[k][s.Labels["hop"]] = s.V[0]
	}
	hops := map[key]map[string]*hopStat{}
	for _, s := range get(qMTRRecv) {
		k := key{s.Labels[nl], s.Labels["target"]}
		h := s.Labels["hop"]
		var idx int
		if _, err := fmt.Sscan(h, &idx); err != nil {
			continue
		}
		st := &hopStat{Hop: idx, Loss: math.NaN(), RTT: math.NaN()}
		if sv := sent[k][h]; sv > 0 {
			st.Loss = math.Max(0, math.Min(1, 1-s.V[0]/sv))
			st.Sent = sv
		}
		if hops[k] == nil {
			hops[k] = map[string]*hopStat{}
		}
		hops[k][h] = st
	}
	for _, s := range get(qMTRRTT) {
		if st := hops[key{s.Labels[nl], s.Labels["target"]}][s.Labels["hop"]]; st != nil {
			st.RTT = s.V[0]
		}
	}
	changes := map[key]float64{}
	for _, s := range get(qMTRChanges) {
		changes[key{s.Labels[nl], s.Labels["target"]}] = s.V[0]
	}
	spike := map[key]bool{}
	for _, in := range snap.Incidents {
		if in.Active && in.Kind == KindLatencySpike {
			spike[key{in.Node, in.Target}] = true
		}
	}
	keys := make([]key, 0, len(hops))
	for k := range hops {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].n+"\x00"+keys[i].t < keys[j].n+"\x00"+keys[j].t })
	for _, k := range keys {
		var hs []hopStat
		for _, h := range hops[k] {
			hs = append(hs, *h)
		}
		lo, lat, rl, dl := analysePath(hs, e.cfg.PathLossRatio, e.cfg.Thresholds.LatencyAbs)
		if !spike[k] {
			lat = 0 // a long link is not a problem until the destination's latency is
		}
		snap.Paths = append(snap.Paths, PathResult{Node: k.n, Target: k.t, Hops: len(hs), DestLoss: dl, LossOrigin: lo,
			LatencyOrigin: lat, RateLimited: rl, RouteChanges: changes[k]})
	}
}

func (e *Engine) hostFigures(snap *Snapshot, get func(string) []Series) {
	nl := e.cfg.NodeLabel
	for _, s := range get(qBloat) {
		v := s.V[len(s.V)-1]
		if math.IsNaN(v) {
			continue
		}
		gr, num := gradeBloat(v, e.cfg.BloatBands)
		snap.Bloat = append(snap.Bloat, BloatGrade{Node: s.Labels[nl], Increase: v, Grade: gr, Numeric: num})
	}
	idx := func(name string, labels ...string) map[string]float64 {
		m := map[string]float64{}
		for _, s := range get(name) {
			k := s.Labels[nl]
			for _, l := range labels {
				k += "\x00" + s.Labels[l]
			}
			m[k] = s.V[0]
		}
		return m
	}
	add := func(node, limit, obj string, secs float64) {
		if !math.IsNaN(secs) {
			snap.Clocks = append(snap.Clocks, DeathClock{Node: node, Limit: limit, Object: obj, Seconds: secs})
		}
	}
	deriv := idx(qFSDeriv, "mountpoint")
	for _, s := range get(qFSAvail) {
		add(s.Labels[nl], "disk_full", s.Labels["mountpoint"], diskFullIn(s.V[0], nanGet(deriv, s.Labels[nl]+"\x00"+s.Labels["mountpoint"])))
	}
	// Capacity of a block device: the sizes of the filesystems on it.
	capacity := map[string]float64{}
	for _, s := range get(qFSSize) {
		dev := strings.TrimPrefix(s.Labels["device"], "/dev/")
		for _, suf := range []string{"p1", "p2", "p3", "p4", "p5", "p6", "p7", "p8"} {
			dev = strings.TrimSuffix(dev, suf)
		}
		capacity[s.Labels[nl]+"\x00"+dev] += s.V[0]
	}
	writes := idx(qWritten, "device")
	flash := map[string]float64{}
	for _, s := range get(qEMMC) {
		k := s.Labels[nl] + "\x00" + s.Labels["device"]
		add(s.Labels[nl], "flash_wear", s.Labels["device"], flashWearIn(s.V[0], nanGet(writes, k), nanGet(capacity, k), e.cfg.FlashPECycles))
		flash[s.Labels[nl]] = math.Max(s.V[0], flash[s.Labels[nl]])
	}
	trip := idx(qTrip, "zone")
	tder := idx(qTempDeriv, "zone")
	for _, s := range get(qTemp) {
		k := s.Labels[nl] + "\x00" + s.Labels["zone"]
		if tp, ok := trip[k]; ok {
			add(s.Labels[nl], "thermal", s.Labels["zone"], thermalIn(s.V[0], tp, nanGet(tder, k)))
		}
	}
	power, dis := idx(qBattP, "supply"), idx(qBattDis, "supply")
	for _, s := range get(qBattE) {
		k := s.Labels[nl] + "\x00" + s.Labels["supply"]
		add(s.Labels[nl], "battery", s.Labels["supply"], batteryIn(s.V[0], nanGet(power, k), dis[k] == 1))
	}
	sort.Slice(snap.Clocks, func(i, j int) bool {
		a, b := snap.Clocks[i], snap.Clocks[j]
		return a.Node+a.Limit+a.Object < b.Node+b.Limit+b.Object
	})
	for i := range snap.Nodes {
		if f, ok := flash[snap.Nodes[i].Node]; ok {
			snap.Nodes[i].Flash = f
		}
	}
}

func nanGet(m map[string]float64, k string) float64 {
	if v, ok := m[k]; ok {
		return v
	}
	return math.NaN()
}
