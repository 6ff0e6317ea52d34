// Command analyzer is the smokemon_analyzer bench: a synthetic fleet (N nodes
// × 5 targets with host signals) backfilled into a real Prometheus, then
// analyzer cycles timed against it, for a small and a large fleet, unsharded
// and as two shards. Prints per run: queries per cycle (must be equal for
// both fleets), cycle median and p90, the CPU a cycle costs the analyzer and
// the server, memory per node, and the cold start (first cycle served, then
// the whole window read); then PASS/FAIL against issue 18's figures.
package main

import (
	"context"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/config"
	"github.com/prometheus/common/model"

	"github.com/smokemon/smokemon/analyzer"
	"github.com/smokemon/smokemon/analyzer/scenario"
)

// counting wraps a Source to count the requests a cycle really makes.
type counting struct {
	analyzer.Source
	n       atomic.Int64
	verbose bool
}

func (c *counting) Query(ctx context.Context, q string, t time.Time) (model.Vector, error) {
	c.n.Add(1)
	t0 := time.Now()
	v, err := c.Source.Query(ctx, q, t)
	c.log(q, t0, len(v))
	return v, err
}

func (c *counting) QueryRange(ctx context.Context, q string, r v1.Range) (model.Matrix, error) {
	c.n.Add(1)
	t0 := time.Now()
	m, err := c.Source.QueryRange(ctx, q, r)
	c.log(q, t0, len(m))
	return m, err
}

func (c *counting) log(q string, t0 time.Time, n int) {
	if c.verbose {
		fmt.Fprintf(os.Stderr, "%8v %6d series  %.110s\n", time.Since(t0).Round(time.Millisecond), n, q)
	}
}

var (
	verbose = flag.Bool("v", false, "log every query with its time")
	history = flag.Bool("history", true, "also write the window one day and one week back (seasonal queries)")
	cycles  = flag.Int("cycles", 6, "timed cycles per run")
	warmup  = flag.Duration("warmup", 5*time.Minute, "what a cold start reads first (analyzer --warmup.window)")
	client  = flag.Bool("client", true, "also time shard 0 of 2 with client-side filtering (large fleet)")
	shards  = flag.Bool("shards", true, "also time the large fleet as two shards")
	profile = flag.String("cpuprofile", "", "write a CPU profile of the timed cycles of the large fleet's unsharded run")
	backend = flag.String("backend", "prometheus", "server to hold the fleet: prometheus (promtool backfill) or victoriametrics (streamed import, much faster to fill)")
)

// row is one engine's run over one fleet.
type row struct {
	label                  string
	nodes, fleet, queries  int
	served, full           time.Duration // cold start: first cycle done; first cycle over the whole window
	median, p90            time.Duration
	cpu, serverCPU         time.Duration // per timed cycle
	heapPerNode, rss       float64       // bytes
	incidents, fleetIncs   int
	incidentKeys, fleetIDs []string
}

// fleet: n nodes × 5 targets; one in fifty loses 20% to 8.8.8.8 with its
// CPU busy from 15 minutes before the end, so incidents, blame and fleet
// grouping cost what they cost on a real fleet.
func fleet(n int, end time.Time) []scenario.Node {
	targets := []string{"gateway", "1.1.1.1", "8.8.8.8", "9.9.9.9", "example.org"}
	fault := end.Add(-15 * time.Minute)
	var ns []scenario.Node
	for i := range n {
		node := scenario.Node{Name: fmt.Sprintf("node-%05d", i), Targets: targets, Start: end.Add(-75 * time.Minute)}
		if i%50 == 7 {
			node.Loss = func(tg string, t time.Time) float64 {
				if tg == "8.8.8.8" && !t.Before(fault) {
					return 0.2
				}
				return 0
			}
			node.Host = func(t time.Time, h *scenario.Host) {
				if !t.Before(fault) {
					h.CPUBusy = 0.9
				}
			}
		}
		ns = append(ns, node)
	}
	return ns
}

// tsdb generates and backfills a fleet of n nodes under dir (or reuses the
// one kept there) and returns the end of its data and the server on it.
func tsdb(n int, dir string) (time.Time, *scenario.Server, error) {
	dir = filepath.Join(dir, *backend)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return time.Time{}, nil, err
	}
	if *backend == "victoriametrics" {
		// Server-side sharding sends about 10 bytes per node of the shard per selector.
		srv, err := scenario.StartVictoriaMetrics(scenario.UpstreamOr("victoria-metrics"), filepath.Join(dir, "vm"), "-search.maxQueryLen=1MB")
		if err != nil {
			return time.Time{}, nil, err
		}
		end, err := fill(n, dir, srv)
		return end, srv, err
	}
	end, err := fill(n, dir, nil)
	if err != nil {
		return end, nil, err
	}
	srv, err := scenario.StartPrometheus(filepath.Join(dir, "tsdb"))
	return end, srv, err
}

// fill writes the fleet into dir unless it is there already.
func fill(n int, dir string, vm *scenario.Server) (time.Time, error) {
	if b, err := os.ReadFile(filepath.Join(dir, "end")); err == nil {
		return time.Parse(time.RFC3339, string(b))
	}
	end := time.Now().Truncate(time.Minute)
	// The same window yesterday and last week too, so the seasonal queries
	// (offset 1d, 7d) have as much to read as on a real fleet.
	ends := []time.Time{end}
	if *history {
		ends = append(ends, end.Add(-24*time.Hour), end.Add(-7*24*time.Hour))
	}
	if *backend == "victoriametrics" {
		if err := importVM(n, vm, ends); err != nil {
			return end, err
		}
		return end, os.WriteFile(filepath.Join(dir, "end"), []byte(end.Format(time.RFC3339)), 0o644)
	}
	for i, e := range ends {
		g := &scenario.Gen{End: e, Interval: time.Minute, Buckets: []float64{0.01, 0.05, 0.1, 0.5}, Seed: 3 + uint64(i)}
		om := filepath.Join(dir, "fleet.om")
		if err := g.WriteFile(om, fleet(n, e)); err != nil {
			return end, err
		}
		if err := scenario.Backfill(om, filepath.Join(dir, "tsdb")); err != nil {
			return end, err
		}
		os.Remove(om)
	}
	return end, os.WriteFile(filepath.Join(dir, "end"), []byte(end.Format(time.RFC3339)), 0o644)
}

// measure runs one engine over the fleet: the cold start at the first timed
// step (back to back until the window is full, as serve does), then the
// timed cycles one step apart.
func measure(label string, n int, srv *scenario.Server, end time.Time, shard analyzer.Shard, peers analyzer.FleetPeers) (row, *analyzer.Engine, error) {
	r := row{label: label, fleet: n}
	src, err := analyzer.NewSource(srv.URL, config.HTTPClientConfig{})
	if err != nil {
		return r, nil, err
	}
	cs := &counting{Source: src, verbose: *verbose}
	cfg := analyzer.DefaultConfig()
	cfg.QueryTimeout = 2 * time.Minute
	cfg.WarmupWindow, cfg.Shard = *warmup, shard
	e := analyzer.NewEngine(cfg, cs, nil)
	e.SetFleetPeers(peers)
	r, err = timeCycles(r, e, cs, srv.PID(), end)
	return r, e, err
}

func timeCycles(r row, e *analyzer.Engine, cs *counting, serverPID int, end time.Time) (row, error) {
	step := analyzer.DefaultConfig().Step
	start := end.Add(-time.Duration(*cycles) * step)
	t0 := time.Now()
	for i := 0; ; i++ {
		s, err := cycle(e, start)
		if err != nil {
			return r, fmt.Errorf("cold start: %w", err)
		}
		if i == 0 {
			r.served = time.Since(t0)
		}
		if !s.WarmingUp {
			r.full = time.Since(t0)
			break
		}
		if i > 20 {
			return r, fmt.Errorf("cold start: still warming up after %d cycles (%v covered)", i, s.Covered)
		}
	}
	if *profile != "" && r.label == "unsharded" && r.fleet > 100 {
		f, err := os.Create(*profile)
		if err != nil {
			return r, err
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	var durs []time.Duration
	cpu0, srv0 := selfCPU(), procCPU(serverPID)
	var s *analyzer.Snapshot
	var err error
	for i := 1; i <= *cycles; i++ {
		cs.n.Store(0)
		if s, err = cycle(e, start.Add(time.Duration(i)*step)); err != nil {
			return r, err
		}
		if int(cs.n.Load()) != s.Queries {
			return r, fmt.Errorf("snapshot says %d queries, the server saw %d", s.Queries, cs.n.Load())
		}
		durs = append(durs, s.Duration)
		r.queries = max(r.queries, s.Queries)
	}
	r.cpu = (selfCPU() - cpu0) / time.Duration(*cycles)
	r.serverCPU = (procCPU(serverPID) - srv0) / time.Duration(*cycles)
	slices.Sort(durs)
	r.median, r.p90 = durs[len(durs)/2], durs[min(len(durs)-1, int(math.Ceil(0.9*float64(len(durs))))-1)]
	r.nodes, r.incidents, r.fleetIncs = len(s.Nodes), len(s.Incidents), len(s.Fleet)
	if r.label == "unsharded" && r.nodes != r.fleet {
		return r, fmt.Errorf("analysed %d nodes of %d", r.nodes, r.fleet)
	}
	for _, in := range s.Incidents {
		r.incidentKeys = append(r.incidentKeys, in.ID)
	}
	for _, f := range s.Fleet {
		r.fleetIDs = append(r.fleetIDs, f.ID+" "+strings.Join(f.Members, ","))
	}
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	r.heapPerNode = float64(ms.HeapInuse) / float64(max(1, r.nodes))
	r.rss = rss()
	return r, nil
}

func cycle(e *analyzer.Engine, at time.Time) (*analyzer.Snapshot, error) {
	s := e.Evaluate(context.Background(), at)
	if !s.Up {
		return s, fmt.Errorf("cycle failed: %s", s.Error)
	}
	if len(s.QueryErrors) > 0 {
		return s, fmt.Errorf("query errors: %v", s.QueryErrors)
	}
	return s, nil
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procCPU is the user+system time of process pid (clock ticks of 10 ms).
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// rss is this process's resident set size now.
func rss() float64 {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			return kb * 1024
		}
	}
	return math.NaN()
}

// runFleet measures a fleet of n nodes: unsharded, and for the large one
// also as two shards (server-side, and shard 0 with client-side filtering).
func runFleet(n int, keep string, shards bool) ([]row, error) {
	var dir string
	var err error
	if keep != "" {
		dir = filepath.Join(keep, fmt.Sprint(n))
		err = os.MkdirAll(dir, 0o755)
	} else {
		dir, err = os.MkdirTemp("", "analyzer-bench-")
		defer os.RemoveAll(dir)
	}
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	end, srv, err := tsdb(n, dir)
	if err != nil {
		return nil, err
	}
	defer stop(srv)
	fmt.Fprintf(os.Stderr, "%d nodes: data generated, backfilled and served in %v\n", n, time.Since(t0).Round(time.Second))
	var rows []row
	add := func(label string, sh analyzer.Shard, peers analyzer.FleetPeers) (*analyzer.Engine, error) {
		r, e, err := measure(label, n, srv, end, sh, peers)
		if err != nil {
			return nil, fmt.Errorf("%d nodes, %s: %w", n, label, err)
		}
		printRow(os.Stderr, r) // as it comes: a 10 000-node run takes a while
		rows = append(rows, r)
		return e, nil
	}
	if _, err := add("unsharded", analyzer.Shard{}, nil); err != nil || !shards {
		return rows, err
	}
	// Shard 1 first: shard 0 builds the fleet incidents with its incidents.
	// The peer answers with a copy of shard 1's last ones, so that shard 1's
	// engine is collected and shard 0's heap and RSS are its own.
	incs, err := lastIncidents(add("shard 1/2", analyzer.Shard{Index: 1, Count: 2}, nil))
	if err != nil {
		return rows, err
	}
	peer := func(context.Context) ([]analyzer.Incident, error) { return incs, nil }
	if _, err := add("shard 0/2", analyzer.Shard{Index: 0, Count: 2}, peer); err != nil {
		return rows, err
	}
	if *client {
		_, err = add("0/2 client", analyzer.Shard{Index: 0, Count: 2, Filter: "client"}, peer)
	}
	return rows, err
}

func lastIncidents(e *analyzer.Engine, err error) ([]analyzer.Incident, error) {
	if err != nil {
		return nil, err
	}
	return slices.Clone(e.Last().Incidents), nil
}

func main() {
	small := flag.Int("small", 10, "nodes in the small fleet")
	large := flag.Int("large", 10000, "nodes in the large fleet")
	keep := flag.String("keep", "", "keep the generated fleets under this directory and reuse them on later runs")
	flag.Parse()
	var rows []row
	for _, n := range []int{*small, *large} {
		rs, err := runFleet(n, *keep, *shards && n == *large)
		rows = append(rows, rs...)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			report(rows)
			os.Exit(1)
		}
	}
	if !report(rows) {
		os.Exit(1)
	}
}
