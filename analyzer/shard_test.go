package analyzer

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/config"

	"github.com/smokemon/smokemon/analyzer/scenario"
)

// The shard of a name never changes (deployments rely on it), and a fleet
// of names splits evenly.
func TestShardOf(t *testing.T) {
	// FNV-1a 32 of "pi-kitchen" is 0xc9a472a7 (offset basis 0x811c9dc5,
	// prime 0x01000193, worked out apart from hash/fnv).
	if got := ShardOf("pi-kitchen", 7); got != 0xc9a472a7%7 {
		t.Errorf("ShardOf(pi-kitchen, 7) = %d, want %d", got, 0xc9a472a7%7)
	}
	for _, count := range []int{2, 3, 8} {
		per := make([]int, count)
		for i := range 10000 {
			per[ShardOf(fmt.Sprintf("node-%05d", i), count)]++
		}
		for s, n := range per {
			if want := 10000.0 / float64(count); math.Abs(float64(n)-want) > 0.05*want {
				t.Errorf("%d shards: shard %d has %d of 10000 nodes, want %.0f ± 5%%", count, s, n, want)
			}
		}
	}
	for _, sh := range []Shard{{Count: 0}, {Index: 2, Count: 2}, {Index: -1, Count: 2}, {Count: 2, Filter: "both"}} {
		if sh.Validate() == nil {
			t.Errorf("%+v validates", sh)
		}
	}
}

// Every selector of every query gets the shard's matcher, whatever its form.
func TestWithMatcher(t *testing.T) {
	m := `node=~"a|b"`
	for in, want := range map[string]string{
		`sum by (node) (rate(smokemon_cpu_seconds_total{mode!~"idle|iowait"}[2m])) / max by (node) (smokemon_cpu_online)`: `sum by (node) (rate(smokemon_cpu_seconds_total{mode!~"idle|iowait",node=~"a|b"}[2m])) / max by (node) (smokemon_cpu_online{node=~"a|b"})`,
		`smokemon_ping_sent_total{}`: `smokemon_ping_sent_total{node=~"a|b"}`,
		`max by (node) (smokemon_rpi_throttle_condition{condition=~"throttled|soft_temp_limit",when="now"}) or sum by (node) (clamp_max(rate(smokemon_cpu_core_throttles_total[2m]), 1))`: `max by (node) (smokemon_rpi_throttle_condition{condition=~"throttled|soft_temp_limit",when="now",node=~"a|b"}) or sum by (node) (clamp_max(rate(smokemon_cpu_core_throttles_total{node=~"a|b"}[2m]), 1))`,
	} {
		if got := withMatcher(in, m); got != want {
			t.Errorf("withMatcher(%s)\n = %s\nwant %s", in, got, want)
		}
	}
	cfg := DefaultConfig()
	sel := regexp.MustCompile(`smokemon_[a-z_]+(\{[^}]*\})?`)
	for _, q := range cfg.queries() {
		for _, s := range sel.FindAllString(withMatcher(q.Expr, m), -1) {
			if !strings.HasSuffix(s, m+"}") {
				t.Errorf("%s: selector %s lacks the shard matcher", q.Name, s)
			}
		}
	}
}

// shardFleet: 400 nodes; every 20th loses 30% to 1.1.1.1 from fault, every
// 20th from another offset loses 30% to its gateway 25 minutes later. All
// share the gateway address, so each wave is one fleet incident across shards.
func shardFleet(end time.Time) []scenario.Node {
	fault, fault2 := end.Add(-35*time.Minute), end.Add(-10*time.Minute)
	var ns []scenario.Node
	for i := range 400 {
		n := scenario.Node{Name: fmt.Sprintf("edge-%03d", i), Targets: []string{"gateway", "1.1.1.1"}, Start: end.Add(-70 * time.Minute), NoHost: true}
		switch i % 20 {
		case 3:
			n.Loss = func(tg string, t time.Time) float64 { return 0.3 * b2f(tg == "1.1.1.1" && !t.Before(fault)) }
		case 11:
			n.Loss = func(tg string, t time.Time) float64 { return 0.3 * b2f(tg == "gateway" && !t.Before(fault2)) }
		}
		ns = append(ns, n)
	}
	return ns
}

// Two replicas against a real VictoriaMetrics cover every node exactly
// once, about half each, and between them find exactly the incidents of a
// single unsharded analyzer; shard 0, told the other's incidents, finds the
// same fleet incidents. Client-side filtering gives the same answer.
func TestShardsVictoriaMetrics(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	vm, err := exec.LookPath(scenario.UpstreamOr("victoria-metrics"))
	if err != nil {
		t.Skip("neither the current VictoriaMetrics (.ci/upstream) nor Debian's victoria-metrics is installed")
	}
	dir := t.TempDir()
	end := time.Now().Truncate(time.Minute).Add(-time.Minute)
	pt := filepath.Join(dir, "fleet.prom")
	g := &scenario.Gen{End: end, Interval: time.Minute, Seed: 5, Format: "prometheus"}
	if err := g.WriteFile(pt, shardFleet(end)); err != nil {
		t.Fatal(err)
	}
	srv, err := scenario.StartVictoriaMetrics(vm, filepath.Join(dir, "vm"))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	if err := srv.Import(pt); err != nil {
		t.Fatal(err)
	}
	src, err := NewSource(srv.URL, config.HTTPClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	eval := func(sh Shard, peers FleetPeers) *Snapshot {
		t.Helper()
		cfg := DefaultConfig()
		cfg.Shard = sh
		e := NewEngine(cfg, src, nil)
		e.SetFleetPeers(peers)
		s := e.Evaluate(context.Background(), end)
		if !s.Up || len(s.QueryErrors) > 0 {
			t.Fatalf("shard %+v: up=%v %s %v", sh, s.Up, s.Error, s.QueryErrors)
		}
		return s
	}
	all := eval(Shard{}, nil)
	if len(all.Nodes) != 400 || len(all.Fleet) != 2 {
		t.Fatalf("unsharded: %d nodes, %d fleet incidents %v; want 400 and 2", len(all.Nodes), len(all.Fleet), all.Fleet)
	}
	warmStart(t, src, end, all)
	for _, filter := range []string{"server", "client"} {
		s1 := eval(Shard{Index: 1, Count: 2, Filter: filter}, nil)
		peer := func(context.Context) ([]Incident, error) { return s1.Incidents, nil }
		s0 := eval(Shard{Index: 0, Count: 2, Filter: filter}, peer)
		t.Logf("%s: %d + %d nodes; %d + %d incidents (unsharded %d); queries %d, %d (unsharded %d)", filter, len(s0.Nodes), len(s1.Nodes),
			len(s0.Incidents), len(s1.Incidents), len(all.Incidents), s0.Queries, s1.Queries, all.Queries)
		for i, s := range []*Snapshot{s0, s1} {
			if n := float64(len(s.Nodes)); math.Abs(n-200) > 20 {
				t.Errorf("%s: shard %d has %.0f nodes, want 200 ± 10%%", filter, i, n)
			}
			for _, n := range s.Nodes {
				if ShardOf(n.Node, 2) != i {
					t.Errorf("%s: shard %d analysed %s of shard %d", filter, i, n.Node, ShardOf(n.Node, 2))
				}
			}
		}
		sameJSON(t, filter+" nodes", append(append([]NodeSummary(nil), s0.Nodes...), s1.Nodes...), all.Nodes, func(v NodeSummary) string { return v.Node })
		sameJSON(t, filter+" incidents", append(append([]Incident(nil), s0.Incidents...), s1.Incidents...), all.Incidents, func(v Incident) string { return v.ID })
		sameJSON(t, filter+" fleet incidents", s0.Fleet, all.Fleet, func(v FleetIncident) string { return v.ID })
		if len(s1.Fleet) != 0 {
			t.Errorf("%s: shard 1 built fleet incidents %v; only shard 0 does", filter, s1.Fleet)
		}
	}
}

// sameJSON compares two lists in key order by their JSON (NaN is null).
func sameJSON[T any](t *testing.T, what string, got, want []T, key func(T) string) {
	t.Helper()
	enc := func(l []T) string {
		l = append([]T(nil), l...)
		sort.Slice(l, func(i, j int) bool { return key(l[i]) < key(l[j]) })
		b, _ := json.Marshal(JSONValue(l))
		return string(b)
	}
	if g, w := enc(got), enc(want); g != w {
		t.Errorf("%s differ from the unsharded analyzer's:\n got %.1500s\nwant %.1500s", what, g, w)
	}
}

// warmStart: a cold start that reads the last 10 minutes first serves at
// once, says it is warming up, and reads back chunk by chunk until its
// answer is the one of an analyzer that read the whole window at once.
func warmStart(t *testing.T, src Source, end time.Time, want *Snapshot) {
	cfg := DefaultConfig()
	cfg.WarmupWindow, cfg.WarmupChunk = 10*time.Minute, 15*time.Minute
	e := NewEngine(cfg, src, nil)
	var s *Snapshot
	for i := range 6 {
		s = e.Evaluate(context.Background(), end)
		if !s.Up || len(s.QueryErrors) > 0 {
			t.Fatalf("warm-up cycle %d: up=%v %s %v", i, s.Up, s.Error, s.QueryErrors)
		}
		covered := min(cfg.Lookback, cfg.WarmupWindow+time.Duration(i)*cfg.WarmupChunk)
		t.Logf("warm-up cycle %d: %d queries, covers %v, warming up %v, %d incidents", i, s.Queries, s.Covered, s.WarmingUp, len(s.Incidents))
		if s.Covered != covered || s.WarmingUp != (covered < cfg.Lookback) {
			t.Fatalf("warm-up cycle %d covers %v (warming up %v), want %v", i, s.Covered, s.WarmingUp, covered)
		}
		if !s.WarmingUp {
			break
		}
	}
	if s.WarmingUp {
		t.Fatalf("still warming up after 6 cycles")
	}
	sameJSON(t, "warmed-up incidents", s.Incidents, want.Incidents, func(v Incident) string { return v.ID })
	sameJSON(t, "warmed-up fleet incidents", s.Fleet, want.Fleet, func(v FleetIncident) string { return v.ID })
}
