package analyzer

import (
	"testing"
	"time"
)

func TestReconcile(t *testing.T) {
	t0 := time.Unix(1.7e9, 0)
	step := 10 * time.Second
	grid := func(end time.Time) Grid { return Grid{Start: end.Add(-time.Hour), Step: step, N: 361} }
	snap := func(end time.Time, incs ...Incident) *Snapshot {
		return &Snapshot{Time: end, Grid: grid(end), Incidents: incs}
	}
	e := NewEngine(DefaultConfig(), nil, nil)
	loss := Incident{Node: "n", Target: "dst", Kind: KindPacketLoss, Start: t0, Active: true}
	lat := Incident{Node: "n", Target: "dst", Kind: KindLatencySpike, Start: t0, Active: true}

	s1 := snap(t0.Add(30*time.Second), loss, lat)
	e.reconcile(s1, nil)
	id := s1.Incidents[0].ID

	// A replay dates the same loss a step later: same incident, first start kept.
	shifted := loss
	shifted.Start = t0.Add(step)
	s2 := snap(t0.Add(40*time.Second), shifted, lat)
	e.reconcile(s2, s1)
	if got := s2.Incidents[0]; got.ID != id || !got.Start.Equal(t0) {
		t.Fatalf("replayed incident %s from %v, want %s from %v", got.ID, got.Start, id, t0)
	}

	// The outage explains the loss: the loss is superseded, the latency
	// spike that the replay no longer finds is resolved; neither vanishes.
	outage := Incident{Node: "n", Kind: KindISPOutage, Start: t0.Add(5 * time.Second), Active: true}
	s3 := snap(t0.Add(50*time.Second), outage)
	e.reconcile(s3, s2)
	sortIncidents(s3.Incidents)
	byKind := map[string]Incident{}
	for _, in := range s3.Incidents {
		byKind[in.Kind] = in
	}
	if len(s3.Incidents) != 3 {
		t.Fatalf("got %d incidents, want the outage, the superseded loss and the ended spike: %+v", len(s3.Incidents), s3.Incidents)
	}
	l := byKind[KindPacketLoss]
	if l.Active || l.SupersededBy != byKind[KindISPOutage].ID || !l.End.Equal(outage.Start) {
		t.Errorf("loss %+v: want ended at the outage's start %v, superseded by %s", l, outage.Start, byKind[KindISPOutage].ID)
	}
	if sp := byKind[KindLatencySpike]; sp.Active || sp.End.IsZero() {
		t.Errorf("spike %+v: want ended with an end time", sp)
	}
	// Later cycles keep listing them, once, while they are in the window.
	s4 := snap(t0.Add(60*time.Second), outage)
	e.reconcile(s4, s3)
	if len(s4.Incidents) != 3 {
		t.Errorf("next cycle lists %d incidents, want 3", len(s4.Incidents))
	}
	s5 := snap(t0.Add(2*time.Hour), Incident{Node: "n", Kind: KindISPOutage, Start: t0.Add(5 * time.Second), Active: true})
	e.reconcile(s5, s4)
	if len(s5.Incidents) != 1 {
		t.Errorf("two hours on, %d incidents, want only the outage (the ended ones left the window)", len(s5.Incidents))
	}
}
