package analyzer

import (
	"strings"
	"testing"
	"time"
)

func TestGroupFleet(t *testing.T) {
	t0 := time.Unix(1.7e9, 0).UTC()
	e := NewEngine(DefaultConfig(), nil, nil)
	at := func(gw, hop, site string) *nodeAttrs {
		return &nodeAttrs{hop: hop, targetIP: map[string]string{"gateway": gw, "dst": "203.0.113.9"}, labels: map[string]string{"site": site}}
	}
	loss := func(node string, start time.Time, level float64) Incident {
		in := Incident{Node: node, Target: "dst", Kind: KindPacketLoss, Start: start, Active: true, Level: level}
		in.ID = incidentID(&in)
		return in
	}
	gws := map[string]string{"a": "gateway", "b": "gateway", "c": "gateway", "d": "gateway"}
	s := &Snapshot{Incidents: []Incident{
		loss("a", t0, 0.3), loss("b", t0.Add(20*time.Second), 0.32), // one home: same gateway
		loss("c", t0.Add(time.Minute), 0.3), // another home, same ISP hop as d
		loss("d", t0.Add(time.Minute), 0.28),
		loss("e", t0.Add(time.Hour), 0.5),                                     // alone, much later
		{ID: "x", Node: "c", Kind: KindWifiDegraded, Start: t0, Active: true}, // not a network kind
	}}
	attrs := map[string]*nodeAttrs{
		"a": at("192.168.1.1", "203.0.113.1", "home"), "b": at("192.168.1.1", "203.0.113.1", "home"),
		"c": at("10.0.0.1", "198.51.100.1", "office"), "d": at("10.0.1.1", "198.51.100.1", "office"),
		"e": at("10.9.0.1", "192.0.2.1", "far"),
	}
	got := e.groupFleet(s, attrs, gws)
	if len(got) != 2 {
		t.Fatalf("got %d fleet incidents %+v, want 2", len(got), got)
	}
	if f := got[0]; f.Scope != "gateway" || f.Key != "192.168.1.1" || strings.Join(f.Members, ",") != "a,b" || !f.Start.Equal(t0) {
		t.Errorf("first: %+v, want a and b behind gateway 192.168.1.1 from %v", f, t0)
	}
	if f := got[1]; f.Scope != "hop" || f.Key != "198.51.100.1" || strings.Join(f.Members, ",") != "c,d" {
		t.Errorf("second: %+v, want c and d behind hop 198.51.100.1", f)
	}
	if w := FleetSentence(got[1], time.UTC); !strings.Contains(w, "2 nodes behind 198.51.100.1 (the first hop beyond their gateway) lost 30% since") {
		t.Errorf("sentence %q", w)
	}
}

// Pings answered but no RTT series (a server that keeps native histograms
// only): the analyzer names the missing input instead of showing NaN.
func TestMissingRTT(t *testing.T) {
	ok, gone := newNodeState("ok"), newNodeState("gone")
	ok.in.Loss["dst"], ok.in.RTT["dst"] = fill(5, 0), fill(5, 0.01)
	gone.in.Loss["dst"] = fill(5, 0)
	down := newNodeState("down") // nothing answers: no RTT is expected
	down.in.Loss["dst"] = fill(5, 1)
	if got := missingRTT(map[string]*nodeState{"ok": ok, "gone": gone, "down": down}); strings.Join(got, ",") != "gone" {
		t.Errorf("missing RTT on %v, want [gone]", got)
	}
	s := &Snapshot{Time: time.Unix(1e9, 0), Recent: 5 * time.Minute, Nodes: []NodeSummary{{Node: "gone", Health: "ok", WorstTarget: "dst", RTTMissing: true, Spark: fill(5, nan)}}}
	if l := StatusLines(s)[0]; strings.Contains(l, "NaN") || !strings.Contains(l, "rtt n/a (no RTT series)") {
		t.Errorf("status line %q", l)
	}
}
