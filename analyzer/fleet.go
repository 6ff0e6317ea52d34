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
	Active    bool      `json:"active"`
	Level     float64   `json:"level"` // worst member level (loss ratio, RTT seconds…) of the first kind
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

// groupFleet builds the fleet incidents of a snapshot: active network
// incidents of at least two nodes that began within window of each other
// and share a key, taken scope by scope so each incident joins one group.
func (e *Engine) groupFleet(s *Snapshot, attrs map[string]*nodeAttrs, gateways map[string]string) []FleetIncident {
	var cands []*Incident
	for i := range s.Incidents {
		in := &s.Incidents[i]
		if in.Active && networkKinds[in.Kind] {
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
			incs := byKey[k]
			sort.Slice(incs, func(i, j int) bool { return incs[i].Start.Before(incs[j].Start) })
			var members []*Incident
			for _, in := range incs {
				if in.Start.Sub(incs[0].Start) <= e.cfg.FleetWindow {
					members = append(members, in)
				}
			}
			if f, ok := fleetOf(scope, k, members); ok {
				for _, in := range members {
					grouped[in.ID] = true
				}
				out = append(out, f)
			}
		}
	}
	return out
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
	f := FleetIncident{Scope: scope, Key: key, Active: true}
	for _, in := range members {
		nodes[in.Node], kinds[in.Kind] = true, true
		f.Incidents = append(f.Incidents, in.ID)
		if f.Start.IsZero() || in.Start.Before(f.Start) {
			f.Start = in.Start
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
	return fmt.Sprintf("%d nodes %s %s%s %s since %s: %s", len(f.Members), where, f.Key, extra, what,
		f.Start.In(loc).Format("15:04"), strings.Join(f.Members, ", "))
}
