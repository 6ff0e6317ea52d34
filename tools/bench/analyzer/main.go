// Command analyzer is the smokemon_analyzer bench: a synthetic fleet (N nodes
// × 5 targets with host signals) backfilled into a real Prometheus, then
// analyzer cycles timed against it. Prints the cycle time and the number of
// queries per cycle for a small and a large fleet: the count must be equal.
package main

import (
	"context"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"sync/atomic"
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
	profile string
)

type result struct {
	nodes, series, queries int
	cold, median, worst    time.Duration
	analysis               time.Duration // longest Go-side part of a timed cycle
	incidents              int
}

func fleet(n int, end time.Time) []scenario.Node {
	targets := []string{"gateway", "1.1.1.1", "8.8.8.8", "9.9.9.9", "example.org"}
	fault := end.Add(-15 * time.Minute)
	var ns []scenario.Node
	for i := range n {
		node := scenario.Node{Name: fmt.Sprintf("node-%04d", i), Targets: targets, Start: end.Add(-75 * time.Minute)}
		if i%50 == 7 { // one node in fifty has a real problem, so incidents and blame cost something
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

func run(n, cycles int, keep string) (result, error) {
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
		return result{}, err
	}
	t0 := time.Now()
	end := time.Now().Truncate(time.Minute)
	if b, err := os.ReadFile(filepath.Join(dir, "end")); err == nil {
		end, err = time.Parse(time.RFC3339, string(b)) // a kept fleet: reuse its TSDB
		if err != nil {
			return result{}, err
		}
	} else {
		// The same window yesterday and last week too, so the seasonal
		// queries (offset 1d, 7d) have as much to read as on a real fleet.
		ends := []time.Time{end}
		if *history {
			ends = append(ends, end.Add(-24*time.Hour), end.Add(-7*24*time.Hour))
		}
		for i, e := range ends {
			g := &scenario.Gen{End: e, Interval: time.Minute, Buckets: []float64{0.01, 0.05, 0.1, 0.5}, Seed: 3 + uint64(i)}
			om := filepath.Join(dir, "fleet.om")
			if err := g.WriteFile(om, fleet(n, e)); err != nil {
				return result{}, err
			}
			if err := scenario.Backfill(om, filepath.Join(dir, "tsdb")); err != nil {
				return result{}, err
			}
			os.Remove(om)
		}
		if err := os.WriteFile(filepath.Join(dir, "end"), []byte(end.Format(time.RFC3339)), 0o644); err != nil {
			return result{}, err
		}
	}
	srv, err := scenario.StartPrometheus(filepath.Join(dir, "tsdb"))
	if err != nil {
		return result{}, err
	}
	defer srv.Stop()
	fmt.Fprintf(os.Stderr, "%d nodes: data generated, backfilled and served in %v\n", n, time.Since(t0).Round(time.Second))
	src, err := analyzer.NewSource(srv.URL, config.HTTPClientConfig{})
	if err != nil {
		return result{}, err
	}
	cs := &counting{Source: src, verbose: *verbose}
	cfg := analyzer.DefaultConfig()
	cfg.QueryTimeout = 2 * time.Minute // the first cycle reads the whole lookback
	e := analyzer.NewEngine(cfg, cs, nil)
	var durs []time.Duration
	r := result{nodes: n}
	step := analyzer.DefaultConfig().Step
	for i := range cycles + 1 {
		cs.n.Store(0)
		// Cycle 0 fetches the whole lookback (start-up); the timed ones are
		// the steady state, one step apart, as the serve loop runs them.
		s := e.Evaluate(context.Background(), end.Add(-time.Duration(cycles-i)*step))
		if !s.Up {
			return r, fmt.Errorf("cycle failed: %s", s.Error)
		}
		if len(s.QueryErrors) > 0 {
			return r, fmt.Errorf("query errors: %v", s.QueryErrors)
		}
		if i == 0 {
			r.cold = s.Duration
			if profile != "" && n > 100 {
				f, err := os.Create(profile)
				if err != nil {
					return r, err
				}
				pprof.StartCPUProfile(f)
				defer pprof.StopCPUProfile()
			}
			continue
		}
		durs = append(durs, s.Duration)
		r.analysis = max(r.analysis, s.Duration-s.QueryDuration)
		r.queries, r.series, r.incidents = max(r.queries, int(cs.n.Load())), s.Series, len(s.Incidents)
		if int(cs.n.Load()) != s.Queries {
			return r, fmt.Errorf("snapshot says %d queries, the server saw %d", s.Queries, cs.n.Load())
		}
		if len(s.Nodes) != n {
			return r, fmt.Errorf("analysed %d nodes, want %d", len(s.Nodes), n)
		}
	}
	slices.Sort(durs)
	r.median, r.worst = durs[len(durs)/2], durs[len(durs)-1]
	return r, nil
}

func main() {
	small := flag.Int("small", 10, "nodes in the small fleet")
	large := flag.Int("large", 1000, "nodes in the large fleet")
	cycles := flag.Int("cycles", 8, "timed cycles per fleet")
	keep := flag.String("keep", "", "keep the generated fleets under this directory and reuse them on later runs")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the timed cycles of the large fleet")
	flag.Parse()
	profile = *cpuprofile
	var rs []result
	for _, n := range []int{*small, *large} {
		r, err := run(n, *cycles, *keep)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		rs = append(rs, r)
	}
	fmt.Printf("%-8s %-10s %-14s %-14s %-14s %-14s %-10s %s\n", "nodes", "queries*", "first cycle", "cycle median", "cycle worst", "analysis max", "series", "incidents")
	for _, r := range rs {
		fmt.Printf("%-8d %-10d %-14v %-14v %-14v %-14v %-10d %d\n", r.nodes, r.queries, r.cold.Round(time.Millisecond), r.median.Round(time.Millisecond),
			r.worst.Round(time.Millisecond), r.analysis.Round(time.Millisecond), r.series, r.incidents)
	}
	fmt.Println("* most queries any timed cycle sent; the first cycle and every 5th minute also run the slow (disk, flash) queries")
	ok := rs[0].queries == rs[1].queries
	fmt.Printf("queries per cycle equal for %d and %d nodes: %v\n", rs[0].nodes, rs[1].nodes, ok)
	fmt.Printf("cycle time %d nodes / %d nodes: %.1f×; large fleet median cycle %v (target ≤ 2s): %v\n",
		rs[1].nodes, rs[0].nodes, float64(rs[1].median)/math.Max(1, float64(rs[0].median)), rs[1].median.Round(time.Millisecond), rs[1].median <= 2*time.Second)
	if !ok || rs[1].median > 2*time.Second {
		os.Exit(1)
	}
}
