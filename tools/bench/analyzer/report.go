package main

import (
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"time"
)

func printRow(w io.Writer, r row) {
	ms := func(d time.Duration) string { return d.Round(time.Millisecond).String() }
	fmt.Fprintf(w, "%-7d %-11s %-6d %-8d %-9s %-9s %-9s %-9s %-10s %-10s %-9s %-8s %d/%d\n", r.fleet, r.label, r.nodes, r.queries,
		ms(r.served), ms(r.full), ms(r.median), ms(r.p90), ms(r.cpu), ms(r.serverCPU),
		fmt.Sprintf("%.0fkB", r.heapPerNode/1e3), fmt.Sprintf("%.0fMB", r.rss/1e6), r.incidents, r.fleetIncs)
}

// report prints the table and the verdicts against issue 18's figures;
// it says whether all passed.
func report(rows []row) bool {
	fmt.Printf("%-7s %-11s %-6s %-8s %-9s %-9s %-9s %-9s %-10s %-10s %-9s %-8s %s\n", "fleet", "run", "nodes", "queries", "served", "full",
		"median", "p90", "cpu/cycle", "srv/cycle", "heap/node", "RSS", "incidents/fleet")
	for _, r := range rows {
		printRow(os.Stdout, r)
	}
	fmt.Println("served: cold start to the first cycle served (its last --warmup.window); full: until a cycle covers the whole lookback;")
	fmt.Println("cpu, srv: CPU time per timed cycle of the analyzer and of the server; heap/node: live heap after GC over the nodes analysed")
	find := func(fleet int, label string) *row {
		for i := range rows {
			if rows[i].label == label && (fleet == 0 || rows[i].fleet == fleet) {
				return &rows[i]
			}
		}
		return nil
	}
	if len(rows) == 0 {
		return false
	}
	small, large := &rows[0], (*row)(nil)
	for i := range rows {
		if rows[i].label == "unsharded" && rows[i].fleet > small.fleet {
			large = &rows[i]
		}
	}
	ok := true
	check := func(pass bool, format string, a ...any) {
		v := "PASS"
		if !pass {
			v, ok = "FAIL", false
		}
		fmt.Printf("%s  %s\n", v, fmt.Sprintf(format, a...))
	}
	if large == nil {
		check(false, "the large fleet did not run")
		return false
	}
	check(large.median <= 10*time.Second, "%d nodes: cycle median %v ≤ 10s (p90 %v)", large.fleet, large.median.Round(time.Millisecond), large.p90.Round(time.Millisecond))
	check(large.queries == small.queries, "%d nodes: %d queries per cycle = %d at %d nodes", large.fleet, large.queries, small.queries, small.fleet)
	check(large.served <= time.Minute, "%d nodes: cold start served after %v ≤ 60s (whole window after %v)", large.fleet,
		large.served.Round(time.Millisecond), large.full.Round(time.Millisecond))
	s0, s1 := find(large.fleet, "shard 0/2"), find(large.fleet, "shard 1/2")
	if s0 == nil || s1 == nil {
		check(false, "two shards did not run (-shards=false?)")
		return false
	}
	half := float64(large.nodes) / 2
	check(s0.nodes+s1.nodes == large.nodes && math.Abs(float64(s0.nodes)-half) <= 0.1*half && math.Abs(float64(s1.nodes)-half) <= 0.1*half,
		"two shards: %d + %d nodes of %d, each within 10%% of half (cycle median %v and %v, %d and %d queries)", s0.nodes, s1.nodes, large.nodes,
		s0.median.Round(time.Millisecond), s1.median.Round(time.Millisecond), s0.queries, s1.queries)
	union := slices.Sorted(slices.Values(append(append([]string(nil), s0.incidentKeys...), s1.incidentKeys...)))
	check(slices.Equal(union, slices.Sorted(slices.Values(large.incidentKeys))) && slices.Equal(s0.fleetIDs, large.fleetIDs),
		"two shards: incidents of both (%d) = unsharded (%d); shard 0's fleet incidents, members included, = unsharded (%d)", len(union),
		len(large.incidentKeys), len(large.fleetIDs))
	return ok
}
