package analyzer

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// FleetIncident groups the active incidents of several nodes that share
// what can explain them all: their gateway, the first hop beyond it, the
// destination, or a site label.
type FleetIncident struct {
	ID        string    `json:"id"`
	Scope     string    `json:"scope"` // gateway, hop, destination or the label's name
	Key       string    `json:"key"`   // the shared address or label value
	Kinds     []string  `json:"kinds"`
	Members   []string  `json:"members"`   // nodes
	Incidents []string  `json:"incidents"` // member incident IDs
	Start     time.Time `json:"start"`
	// End: when fewer than two member nodes were still failing (zero while active).
	End    time.Time `json:"end,omitzero"`
	Active bool      `json:"active"` // two or more member nodes are failing now
	Level  float64   `json:"level"`  // worst member level (loss ratio, RTT seconds…) of the first kind
	// SupersededBy is the fleet incident that took over its members (e.g.
	// the outages that absorbed their packet loss).
	SupersededBy string `json:"superseded_by,omitempty"`
}

// nodeAttrs is what a node shares with others.
type nodeAttrs struct {
	hop      string            // address of mtr hop 2, the first beyond the gateway
	targetIP map[string]string // ping target → address
	labels   map[string]string // fleet labels (site, …)
}

// fleetScopes in the order they explain a shared problem, most specific first.
func (e *Engine) fleetScopes() []string {
	return append([]string{"gateway", "hop", "destination"}, e.cfg.FleetLabels...)
}

func (e *Engine) fleetAttrs(get func(string) []Series) map[string]*nodeAttrs {
	nl := e.cfg.NodeLabel
	attrs := map[string]*nodeAttrs{}
	of := func(n string) *nodeAttrs {
		a := attrs[n]
		if a == nil {
			a = &nodeAttrs{targetIP: map[string]string{}, labels: map[string]string{}}
			attrs[n] = a
		}
		return a
	}
	for _, s := range get(qTargetIP) {
		if ip := s.Labels["ip"]; ip != "" {
			of(s.Labels[nl]).targetIP[s.Labels["target"]] = ip
		}
	}
	for _, s := range get(qHop2) {
		if ip := s.Labels["ip"]; ip != "" {
			of(s.Labels[nl]).hop = ip
		}
	}
	for _, l := range e.cfg.FleetLabels {
		for _, s := range get("fleet_label_" + l) {
			if v := s.Labels[l]; v != "" {
				of(s.Labels[nl]).labels[l] = v
			}
		}
	}
	return attrs
}

// groupFleet builds the fleet incidents of a snapshot: network incidents
// (active, or ended with an end time) of at least two nodes that began
// within window of each other, overlapped in time and share a key, taken
// scope by scope so each incident joins one group. Ended members are kept,
// so a fleet incident ends explicitly (when fewer than two of its nodes
// still fail) rather than vanishing with its members.
func (e *Engine) groupFleet(s *Snapshot, attrs map[string]*nodeAttrs, gateways map[string]string) []FleetIncident {
	var cands []*Incident
	byID := map[string]*Incident{}
	for i := range s.Incidents {
		in := &s.Incidents[i]
		byID[in.ID] = in
		if networkKinds[in.Kind] && (in.Active || !in.End.IsZero()) {
			cands = append(cands, in)
		}
	}
	grouped := map[string]bool{}
	var out []FleetIncident
	for _, scope := range e.fleetScopes() {
		byKey := map[string][]*Incident{}
		for _, in := range cands {
			if grouped[in.ID] {
				continue
			}
			if k := fleetKey(scope, in, attrs[in.Node], gateways[in.Node]); k != "" {
				byKey[k] = append(byKey[k], in)
			}
		}
		for _, k := range sortedKeys(byKey) {
			for _, members := range fleetClusters(byKey[k], e.cfg.FleetWindow) {
				if f, ok := fleetOf(scope, k, members); ok {
					for _, in := range members {
						grouped[in.ID] = true
					}
					out = append(out, f)
				}
			}
		}
	}
	for i := range out {
		if f := &out[i]; !f.Active {
			if by := supersederOf(out, f, byID); by != nil {
				f.SupersededBy = by.ID
			}
		}
	}
	return out
}

// fleetClusters splits one key's incidents into runs that began within
// window of the run's first, keeping those that overlapped in time an
// incident of another node of the run.
func fleetClusters(incs []*Incident, window time.Duration) [][]*Incident {
	sort.Slice(incs, func(i, j int) bool { return incs[i].Start.Before(incs[j].Start) })
	var out [][]*Incident
	for i := 0; i < len(incs); {
		j := i + 1
		for j < len(incs) && incs[j].Start.Sub(incs[i].Start) <= window {
			j++
		}
		var members []*Incident
		for _, a := range incs[i:j] {
			for _, b := range incs[i:j] {
				if a.Node != b.Node && overlaps(a, b, 0) {
					members = append(members, a)
					break
				}
			}
		}
		out = append(out, members)
		i = j
	}
	return out
}

// supersederOf is the active fleet incident that took over f's members:
// one of them, or the incidents that absorbed them.
func supersederOf(fs []FleetIncident, f *FleetIncident, byID map[string]*Incident) *FleetIncident {
	want := map[string]bool{}
	for _, id := range f.Incidents {
		want[id] = true
		if in := byID[id]; in != nil && in.SupersededBy != "" {
			want[in.SupersededBy] = true
		}
	}
	for i := range fs {
		o := &fs[i]
		if o.ID == f.ID || !o.Active {
			continue
		}
		for _, id := range o.Incidents {
			if want[id] {
				return o
			}
		}
	}
	return nil
}

func fleetKey(scope string, in *Incident, a *nodeAttrs, gatewayTarget string) string {
	if a == nil {
		return ""
	}
	switch scope {
	case "gateway":
		return a.targetIP[gatewayTarget]
	case "hop":
		return a.hop
	case "destination":
		if in.Target == "" {
			return ""
		}
		if in.Kind == KindDNSSlow {
			return in.Target // the resolver's address
		}
		if ip := a.targetIP[in.Target]; ip != "" {
			return ip
		}
		return in.Target
	}
	return a.labels[scope]
}

func fleetOf(scope, key string, members []*Incident) (FleetIncident, bool) {
	nodes, kinds := map[string]bool{}, map[string]bool{}
	last := map[string]time.Time{} // per node, when its last member ended (far future: active)
	far := time.Unix(1<<40, 0)
	f := FleetIncident{Scope: scope, Key: key}
	for _, in := range members {
		nodes[in.Node], kinds[in.Kind] = true, true
		f.Incidents = append(f.Incidents, in.ID)
		if f.Start.IsZero() || in.Start.Before(f.Start) {
			f.Start = in.Start
		}
		end := in.End
		if in.Active {
			end = far
		}
		if end.After(last[in.Node]) {
			last[in.Node] = end
		}
	}
	if len(nodes) < 2 {
		return f, false
	}
	f.Members, f.Kinds = sortedKeys(nodes), sortedKeys(kinds)
	for _, in := range members {
		if in.Kind == f.Kinds[0] && in.Level > f.Level {
			f.Level = in.Level
		}
	}
	// It lasts while two nodes fail: it ends when the second-last one recovered.
	ends := make([]time.Time, 0, len(last))
	for _, t := range last {
		ends = append(ends, t)
	}
	sort.Slice(ends, func(i, j int) bool { return ends[i].After(ends[j]) })
	f.Active = ends[1].Equal(far)
	if !f.Active {
		f.End = maxTime(ends[1], f.Start)
	}
	f.ID = fmt.Sprintf("fleet/%s/%s@%d", scope, key, f.Start.Unix())
	return f, true
}

var scopeWords = map[string]string{"gateway": "behind gateway", "hop": "behind", "destination": "towards"}

// FleetSentence tells a fleet incident in plain English.
func FleetSentence(f FleetIncident, loc *time.Location) string {
	where := scopeWords[f.Scope]
	if where == "" {
		where = "at " + f.Scope
	}
	what := strings.Join(f.Kinds, " and ")
	switch f.Kinds[0] {
	case KindPacketLoss:
		what = fmt.Sprintf("lost %.0f%%", 100*f.Level)
	case KindLatencySpike:
		what = fmt.Sprintf("saw latency up to %.0f ms", 1000*f.Level)
	}
	extra := ""
	if f.Scope == "hop" {
		extra = " (the first hop beyond their gateway)"
	}
	when := "since " + f.Start.In(loc).Format("15:04")
	switch {
	case f.Active:
	case f.SupersededBy != "":
		when = fmt.Sprintf("from %s to %s (superseded by %s)", f.Start.In(loc).Format("15:04"), f.End.In(loc).Format("15:04"), f.SupersededBy)
	default:
		when = fmt.Sprintf("from %s to %s (resolved)", f.Start.In(loc).Format("15:04"), f.End.In(loc).Format("15:04"))
	}
	return fmt.Sprintf("%d nodes %s %s%s %s %s: %s", len(f.Members), where, f.Key, extra, what, when, strings.Join(f.Members, ", "))
}

// FleetState is ACTIVE, resolved or superseded, as State is for a node's incident.
func FleetState(f FleetIncident) string {
	return State(Incident{Active: f.Active, SupersededBy: f.SupersededBy})
}
