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

// A fleet incident has the lifecycle of a node's: the same identity cycle
// after cycle, an explicit end (resolved with an end time, or superseded by
// the fleet incident that took its members), listed while in the window.
func TestFleetLifecycle(t *testing.T) {
	t0 := time.Unix(1.7e9, 0).UTC()
	step := 10 * time.Second
	e := NewEngine(DefaultConfig(), nil, nil)
	gws := map[string]string{"a": "gateway", "b": "gateway"}
	sameHop := map[string]*nodeAttrs{
		"a": {hop: "203.0.113.1", targetIP: map[string]string{"gateway": "192.168.1.1"}},
		"b": {hop: "203.0.113.1", targetIP: map[string]string{"gateway": "192.168.2.1"}},
	}
	sameGW := map[string]*nodeAttrs{
		"a": {hop: "203.0.113.1", targetIP: map[string]string{"gateway": "192.168.1.1"}},
		"b": {hop: "203.0.113.1", targetIP: map[string]string{"gateway": "192.168.1.1"}},
	}
	loss := func(node string, start time.Time) Incident {
		in := Incident{Node: node, Target: "dst", Kind: KindPacketLoss, Start: start, Active: true, Level: 0.3}
		in.ID = incidentID(&in)
		return in
	}
	var prev *Snapshot
	cycle := func(at time.Time, attrs map[string]*nodeAttrs, incs ...Incident) *Snapshot {
		s := &Snapshot{Time: at, Grid: Grid{Start: at.Add(-time.Hour), Step: step, N: 361}, Incidents: incs}
		s.Fleet = e.groupFleet(s, attrs, gws)
		e.reconcileFleet(s, prev)
		prev = s
		return s
	}
	byID := func(s *Snapshot) map[string]FleetIncident {
		m := map[string]FleetIncident{}
		for _, f := range s.Fleet {
			if _, dup := m[f.ID]; dup {
				t.Errorf("%v: fleet incident %s listed twice", s.Time, f.ID)
			}
			m[f.ID] = f
		}
		return m
	}

	a, b := loss("a", t0), loss("b", t0.Add(20*time.Second))
	s1 := cycle(t0.Add(time.Minute), sameHop, a, b)
	if len(s1.Fleet) != 1 || !s1.Fleet[0].Active || s1.Fleet[0].Scope != "hop" {
		t.Fatalf("first cycle: %+v, want one active hop fleet incident", s1.Fleet)
	}
	hopID := s1.Fleet[0].ID

	// a's incident is replayed a step later (its own reconcile would keep
	// the start; here it does not): the fleet incident keeps ID and start.
	a2 := a
	a2.Start, a2.ID = t0.Add(step), "other-id-a"
	s2 := cycle(t0.Add(time.Minute+step), sameHop, a2, b)
	if f := byID(s2)[hopID]; !f.Active || !f.Start.Equal(t0) {
		t.Fatalf("second cycle: %+v, want %s active from %v", s2.Fleet, hopID, t0)
	}

	// The gateway turns out to be shared: that group takes the members and
	// the hop one ends, superseded by it.
	s3 := cycle(t0.Add(time.Minute+2*step), sameGW, a2, b)
	m := byID(s3)
	var gwID string
	for id, f := range m {
		if f.Scope == "gateway" && f.Active {
			gwID = id
		}
	}
	if h := m[hopID]; gwID == "" || h.Active || h.SupersededBy != gwID || h.End.IsZero() {
		t.Fatalf("third cycle: %+v, want the hop incident superseded by an active gateway one", s3.Fleet)
	}

	// b recovers: fewer than two nodes fail, the gateway incident is
	// resolved at b's end, and both stay listed once.
	bEnd := t0.Add(3 * time.Minute)
	bDone := b
	bDone.Active, bDone.End = false, bEnd
	s4 := cycle(t0.Add(4*time.Minute), sameGW, a2, bDone)
	m = byID(s4)
	if g := m[gwID]; g.Active || !g.End.Equal(bEnd) || g.SupersededBy != "" {
		t.Errorf("fourth cycle: gateway incident %+v, want resolved at %v", g, bEnd)
	}
	if len(m) != 2 {
		t.Errorf("fourth cycle lists %d fleet incidents, want the superseded and the resolved one: %+v", len(m), s4.Fleet)
	}

	// The members leave the data (node incidents gone): nothing vanishes
	// while in the window; two hours on, the ended ones are gone.
	s5 := cycle(t0.Add(5*time.Minute), sameGW)
	if m := byID(s5); len(m) != 2 || m[gwID].End.IsZero() || m[hopID].SupersededBy == "" {
		t.Errorf("fifth cycle: %+v, want both ended incidents still listed", s5.Fleet)
	}
	if s6 := cycle(t0.Add(2*time.Hour), sameGW); len(s6.Fleet) != 0 {
		t.Errorf("two hours on: %+v, want none", s6.Fleet)
	}
}

// An active fleet incident that the regrouping no longer finds (its
// members vanished from one cycle to the next) ends where it was last seen.
func TestFleetVanishedEnds(t *testing.T) {
	t0 := time.Unix(1.7e9, 0).UTC()
	e := NewEngine(DefaultConfig(), nil, nil)
	grid := func(at time.Time) Grid { return Grid{Start: at.Add(-time.Hour), Step: 10 * time.Second, N: 361} }
	prev := &Snapshot{Time: t0, Grid: grid(t0), Fleet: []FleetIncident{{ID: "fleet/hop/h@1", Scope: "hop", Key: "h", Start: t0.Add(-time.Minute), Active: true,
		Members: []string{"a", "b"}, Incidents: []string{"x", "y"}}}}
	s := &Snapshot{Time: t0.Add(10 * time.Second), Grid: grid(t0.Add(10 * time.Second))}
	e.reconcileFleet(s, prev)
	if len(s.Fleet) != 1 || s.Fleet[0].Active || !s.Fleet[0].End.Equal(t0) {
		t.Errorf("got %+v, want the fleet incident ended at %v", s.Fleet, t0)
	}
}
