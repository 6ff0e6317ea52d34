package analyzer

import (
	"bytes"
	"context"
	"math"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/config"
	"github.com/prometheus/common/expfmt"
)

func promEngine(t *testing.T) *Engine {
	t.Helper()
	srv := suiteOf["prometheus"]
	if srv == nil {
		t.Skip("no prometheus binary (or -short)")
	}
	src, err := NewSource(srv.URL, config.HTTPClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	return NewEngine(DefaultConfig(), src, nil)
}

func activeKeys(s *Snapshot) map[string]time.Time {
	m := map[string]time.Time{}
	for _, in := range s.Incidents {
		if in.Active {
			m[in.key()] = in.Start
		}
	}
	return m
}

// With Prometheus gone the analyzer says it is blind and holds every
// incident as it was: nothing invented, nothing resolved.
func TestBlindHoldsState(t *testing.T) {
	e := promEngine(t)
	before := e.Evaluate(context.Background(), evalAt)
	want := activeKeys(before)
	if len(want) == 0 {
		t.Fatal("no incidents to hold")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + l.Addr().String()
	l.Close() // nothing listens here now
	e.src, _ = NewSource(dead, config.HTTPClientConfig{})
	s := e.Evaluate(context.Background(), evalAt.Add(time.Minute))
	if s.Up || !s.Blind || s.Error == "" {
		t.Fatalf("unreachable Prometheus: up=%v blind=%v err=%q, want down and blind", s.Up, s.Blind, s.Error)
	}
	got := activeKeys(s)
	if len(got) != len(want) {
		t.Fatalf("blind cycle has %d active incidents, want the %d held", len(got), len(want))
	}
	for k, st := range want {
		if !got[k].Equal(st) {
			t.Errorf("incident %q start %v, held %v", k, got[k], st)
		}
	}
	errs := e.QueryErrors()
	if errs[qSent] != 1 || errs[qLost] != 1 {
		t.Errorf("query error counts %v, want 1 for the ping queries", errs)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(NewCollector(e))
	if err := testutil.GatherAndCompare(reg, strings.NewReader("# HELP smokemon_analyzer_up 1 if the last cycle could query the ping data; 0 means the analyzer is blind and holds its previous state.\n# TYPE smokemon_analyzer_up gauge\nsmokemon_analyzer_up 0\n"), "smokemon_analyzer_up"); err != nil {
		t.Error(err)
	}
	// A node whose data stops entirely keeps its incidents, marked blind.
	e.src = before2src(t)
	s = e.EvaluateWindow(context.Background(), evalAt.Add(3*time.Hour), time.Hour, 30*time.Second, true)
	if got := activeKeys(s); len(got) != len(want) {
		t.Errorf("after the data ends: %d active incidents, want the %d held", len(got), len(want))
	}
	for _, n := range s.Nodes {
		if !n.Blind {
			t.Errorf("node %s not blind an hour after its data ended", n.Node)
		}
	}
}

func before2src(t *testing.T) Source {
	src, err := NewSource(suiteOf["prometheus"].URL, config.HTTPClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	return src
}

// The exposition of a full snapshot passes promtool, and a later snapshot
// without incidents leaves no incident series behind.
func TestCollector(t *testing.T) {
	e := promEngine(t)
	reg := prometheus.NewPedanticRegistry() // checks every collected metric was described
	reg.MustRegister(NewCollector(e))
	if _, err := reg.Gather(); err != nil {
		t.Fatalf("before the first cycle: %v", err)
	}
	e.Evaluate(context.Background(), evalAt)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
		if err := enc.Encode(mf); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []string{"smokemon_analyzer_incident_active", "smokemon_analyzer_blame_score", "smokemon_analyzer_anomaly_score",
		"smokemon_analyzer_change_point_timestamp_seconds", "smokemon_analyzer_path_origin_hop", "smokemon_analyzer_path_rate_limited_hop_info",
		"smokemon_analyzer_bufferbloat_grade", "smokemon_analyzer_seconds_until", "smokemon_analyzer_mos", "smokemon_analyzer_r_factor",
		"smokemon_analyzer_up", "smokemon_analyzer_cycle_duration_seconds", "smokemon_analyzer_series_analysed"} {
		if !names[n] {
			t.Errorf("%s missing from the exposition", n)
		}
	}
	if promtool, err := exec.LookPath("promtool"); err == nil {
		cmd := exec.Command(promtool, "check", "metrics")
		cmd.Stdin = bytes.NewReader(buf.Bytes())
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool check metrics: %v\n%s", err, out)
		}
	}
	if !strings.Contains(buf.String(), `smokemon_analyzer_path_origin_hop{node="loss",problem="loss",target="1.1.1.1"} 2`) {
		t.Error("loss origin hop 2 not exported")
	}
	// Before any fault: the same engine, a clean cycle, no incident series at all.
	e.Evaluate(context.Background(), fault.Add(-10*time.Minute))
	n, err := testutil.GatherAndCount(reg, "smokemon_analyzer_incident_active", "smokemon_analyzer_blame_score")
	if err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("%d incident series after a clean cycle, want 0 (no stale series)", n)
	}
}

// Cycles that fetch only the end of the window and keep the rest must see
// exactly what one full fetch sees.
func TestIncrementalMatchesFull(t *testing.T) {
	inc := promEngine(t)
	var s *Snapshot
	for at := evalAt.Add(-10 * time.Minute); !at.After(evalAt); at = at.Add(30 * time.Second) {
		s = inc.Evaluate(context.Background(), at)
	}
	full := promEngine(t).EvaluateWindow(context.Background(), evalAt, time.Hour, 30*time.Second, false)
	if d := describe(s.Incidents); d != describe(full.Incidents) {
		t.Errorf("incremental %s\nfull        %s", d, describe(full.Incidents))
	}
	if s.Series != full.Series || len(s.Anomalies) != len(full.Anomalies) || len(s.Changes) != len(full.Changes) {
		t.Errorf("incremental: %d series %d anomalies %d changes; full: %d %d %d", s.Series, len(s.Anomalies), len(s.Changes),
			full.Series, len(full.Anomalies), len(full.Changes))
	}
	for i := range s.Anomalies {
		if a, b := s.Anomalies[i], full.Anomalies[i]; a.Node != b.Node || math.Abs(a.Score-b.Score) > 1e-9 {
			t.Errorf("anomaly %d: incremental %+v full %+v", i, a, b)
		}
	}
}

// A long window (digest, incidents --since 24h) reads at a coarse step
// (2m), yet three minutes into the faults it lists exactly the incidents
// the serving window has active, with the same starts, and its grid spans
// the whole window. (The coarse step alone needs two bad 2-minute steps.)
func TestSpanAgreesOnActive(t *testing.T) {
	e := promEngine(t)
	at := fault.Add(3 * time.Minute)
	want := activeKeys(e.EvaluateWindow(context.Background(), at, time.Hour, DefaultConfig().Step, false))
	s := e.EvaluateSpan(context.Background(), at, 24*time.Hour)
	coarse := activeKeys(e.EvaluateWindow(context.Background(), at, 24*time.Hour, 2*time.Minute, false))
	t.Logf("active: 1h view %d, 24h span %d, coarse 24h alone %d", len(want), len(s.Incidents), len(coarse))
	got := activeKeys(s)
	if len(got) != len(want) || len(want) == 0 {
		t.Fatalf("24h span has %d active incidents, the 1h view %d", len(got), len(want))
	}
	for k, st := range want {
		if !got[k].Equal(st) {
			t.Errorf("%q starts %v in the span, %v in the 1h view", k, got[k], st)
		}
	}
	if d := s.Time.Sub(s.Grid.Start); d < 24*time.Hour-time.Minute {
		t.Errorf("span grid covers %v, want 24h", d)
	}
}

// Fleet incidents in the metrics: active 1 with members, ended 0 with an
// end time, superseded naming the scope that took over; promtool clean.
func TestCollectorFleet(t *testing.T) {
	t0 := time.Unix(1.7e9, 0).UTC()
	e := NewEngine(DefaultConfig(), nil, nil)
	e.record(&Snapshot{Time: t0, Up: true, Fleet: []FleetIncident{
		{ID: "fleet/gateway/192.168.1.1@1", Scope: "gateway", Key: "192.168.1.1", Start: t0.Add(-time.Minute), Active: true, Members: []string{"a", "b"}},
		{ID: "fleet/hop/203.0.113.1@1", Scope: "hop", Key: "203.0.113.1", Start: t0.Add(-2 * time.Minute), End: t0.Add(-time.Minute),
			SupersededBy: "fleet/gateway/192.168.1.1@1", Members: []string{"a", "b"}},
		{ID: "fleet/site/lab@1", Scope: "site", Key: "lab", Start: t0.Add(-20 * time.Minute), End: t0.Add(-10 * time.Minute), Members: []string{"a", "c"}},
	}}, true)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(NewCollector(e))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			t.Fatal(err)
		}
	}
	out := buf.String()
	for _, want := range []string{
		`smokemon_analyzer_fleet_incident_active{key="192.168.1.1",scope="gateway"} 1`,
		`smokemon_analyzer_fleet_incident_member_info{key="192.168.1.1",node="b",scope="gateway"} 1`,
		`smokemon_analyzer_fleet_incident_active{key="203.0.113.1",scope="hop"} 0`,
		`smokemon_analyzer_fleet_incident_superseded{key="203.0.113.1",scope="hop",superseded_by_scope="gateway"} 1`,
		`smokemon_analyzer_fleet_incident_active{key="lab",scope="site"} 0`,
		`smokemon_analyzer_fleet_incident_end_timestamp_seconds{key="lab",scope="site"} 1.6999994e+09`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %s", want)
		}
	}
	if strings.Contains(out, `member_info{key="lab"`) || strings.Contains(out, `superseded{key="lab"`) {
		t.Error("an ended fleet incident exports members or a superseder it does not have")
	}
	if promtool, err := exec.LookPath("promtool"); err == nil {
		cmd := exec.Command(promtool, "check", "metrics")
		cmd.Stdin = strings.NewReader(out)
		if o, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool check metrics: %v\n%s", err, o)
		}
	}
}
