package probes

import "sort"

// Custom labels come from the config's global section and from each target.
// Every series of a collector carries the union of their names (empty where a
// target sets none), so a metric family never mixes label sets.

// unionLabelNames is the sorted union of the global labels and every target's.
func unionLabelNames(global map[string]string, targets ...map[string]string) []string {
	set := map[string]bool{}
	for k := range global {
		set[k] = true
	}
	for _, t := range targets {
		for k := range t {
			set[k] = true
		}
	}
	names := make([]string, 0, len(set))
	for k := range set {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// labelValues are a target's values for names: its own, else the global one, else "".
func labelValues(names []string, global, own map[string]string) []string {
	v := make([]string, len(names))
	for i, n := range names {
		if x, ok := own[n]; ok {
			v[i] = x
		} else {
			v[i] = global[n]
		}
	}
	return v
}
