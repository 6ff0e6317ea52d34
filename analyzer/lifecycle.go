package analyzer

import (
	"fmt"
	"time"
)

// An incident the analyzer once reported (and Alertmanager may have paged
// on) never just leaves the list: it is resolved with an end time, or
// superseded by the outage that explains it. Replaying the window each
// cycle finds the episodes; reconcile ties them to the previous cycle's, so
// that an incident keeps its identity and start, and ends explicitly when
// a replay no longer finds it.

func incidentID(in *Incident) string {
	t := in.Target
	if t == "" {
		t = "-"
	}
	return fmt.Sprintf("%s/%s/%s@%d", in.Node, in.Kind, t, in.Start.Unix())
}

// absorbable kinds are per-target symptoms an outage explains.
var absorbable = map[string]bool{KindPacketLoss: true, KindLatencySpike: true, KindDNSSlow: true}

func overlaps(a, b *Incident, slack time.Duration) bool {
	far := time.Unix(1<<40, 0)
	ae, be := a.End, b.End
	if a.Active || ae.IsZero() {
		ae = far
	}
	if b.Active || be.IsZero() {
		be = far
	}
	return !a.Start.After(be.Add(slack)) && !b.Start.After(ae.Add(slack))
}

// reconcile carries identity from prev into s and ends what vanished. The
// engine's ended list keeps explicitly ended incidents while they are in
// the window.
func (e *Engine) reconcile(s *Snapshot, prev *Snapshot) {
	for i := range s.Incidents {
		if s.Incidents[i].ID == "" {
			s.Incidents[i].ID = incidentID(&s.Incidents[i])
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if prev != nil && s.Time.Before(prev.Time) {
		prev, e.ended = nil, nil // evaluated back in time: a new history
	}
	ended := map[string]bool{}
	for _, in := range e.ended {
		ended[in.ID] = true
	}
	if prev != nil {
		used := map[int]bool{}
		for _, p := range prev.Incidents {
			if ended[p.ID] {
				continue
			}
			found := false
			for i := range s.Incidents {
				c := &s.Incidents[i]
				if used[i] || c.key() != p.key() || !overlaps(c, &p, s.Grid.Step) {
					continue
				}
				used[i], found = true, true
				c.ID, c.Start = p.ID, p.Start // the first dating stays: identity and start are stable
				if p.blameFixed {
					c.Blame, c.NoLocalCause, c.blameFixed = p.Blame, p.NoLocalCause, true
				}
				break
			}
			if found {
				continue
			}
			if p.Active {
				p.Active = false
				p.End = prev.Time // last seen active there, not here
				for _, o := range s.Incidents {
					if o.Node == p.Node && (o.Kind == KindLinkDown || o.Kind == KindISPOutage) && absorbable[p.Kind] && overlaps(&o, &p, s.Grid.Step) {
						p.SupersededBy, p.End = o.ID, maxTime(p.Start, o.Start)
						break
					}
				}
			}
			e.ended = append(e.ended, p)
			ended[p.ID] = true
		}
	}
	e.ended, s.Incidents = keepEnded(e.ended, s.Incidents, s.Grid.Start, func(in Incident) (string, time.Time) { return in.ID, in.End })
}

// keepEnded keeps what ended while it is in the window (ended at or after
// from) and lists it once: it returns the kept ended ones and listed with
// those of them it lacked. key gives an item's ID and end.
func keepEnded[T any](ended, listed []T, from time.Time, key func(T) (string, time.Time)) (kept, all []T) {
	have := map[string]bool{}
	for _, x := range listed {
		id, _ := key(x)
		have[id] = true
	}
	kept = ended[:0]
	for _, x := range ended {
		id, end := key(x)
		if end.Before(from) {
			continue
		}
		kept = append(kept, x)
		if !have[id] {
			listed = append(listed, x)
		}
	}
	return kept, listed
}

// reconcileFleet does for fleet incidents what reconcile does for a node's:
// the same scope and key with a member in common is the same fleet
// incident (its ID and start stay), and one the regrouping no longer finds
// ends explicitly: superseded by the fleet incident that took its members,
// else resolved where it was last seen active. Ended ones stay listed
// while they are in the window.
func (e *Engine) reconcileFleet(s *Snapshot, prev *Snapshot) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if prev != nil && s.Time.Before(prev.Time) {
		prev, e.fleetEnded = nil, nil
	}
	ended := map[string]bool{}
	for _, f := range e.fleetEnded {
		ended[f.ID] = true
	}
	byID := map[string]*Incident{}
	for i := range s.Incidents {
		byID[s.Incidents[i].ID] = &s.Incidents[i]
	}
	if prev != nil {
		used := map[int]bool{}
		for _, p := range prev.Fleet {
			if ended[p.ID] {
				continue
			}
			if i := sameFleet(s.Fleet, &p, used); i >= 0 {
				used[i] = true
				s.Fleet[i].ID, s.Fleet[i].Start = p.ID, p.Start
				continue
			}
			if p.Active {
				// Last seen active there; its members may live on in another group.
				p.Active, p.End = false, prev.Time
				if by := supersederOf(s.Fleet, &p, byID); by != nil {
					p.SupersededBy = by.ID
				}
			}
			e.fleetEnded = append(e.fleetEnded, p)
			ended[p.ID] = true
		}
	}
	e.fleetEnded, s.Fleet = keepEnded(e.fleetEnded, s.Fleet, s.Grid.Start, func(f FleetIncident) (string, time.Time) { return f.ID, f.End })
}

// sameFleet finds p in fs: the same scope and key, and a member incident in common.
func sameFleet(fs []FleetIncident, p *FleetIncident, used map[int]bool) int {
	mine := map[string]bool{}
	for _, id := range p.Incidents {
		mine[id] = true
	}
	for i := range fs {
		if used[i] || fs[i].Scope != p.Scope || fs[i].Key != p.Key {
			continue
		}
		for _, id := range fs[i].Incidents {
			if mine[id] {
				return i
			}
		}
	}
	return -1
}
