package probes

import (
	"sort"
	"strings"
)

// What every probe's reload shares. Prepare builds the new targets from the
// config alone; the commit matches them to the running ones by key and keeps
// or carries over state (counters, histograms, learned addresses, a probe in
// progress), as Prometheus' rules.Manager does with rule groups.

// labelSet is a collector's custom label names: the sorted union of the
// global labels and every target's. Every series of the collector carries
// all of them (empty where a target sets none), so a metric family never
// mixes label sets.
type labelSet struct {
	names  []string
	global map[string]string
}

func newLabelSet(global map[string]string, own ...map[string]string) labelSet {
	set := map[string]bool{}
	for k := range global {
		set[k] = true
	}
	for _, t := range own {
		for k := range t {
			set[k] = true
		}
	}
	names := make([]string, 0, len(set))
	for k := range set {
		names = append(names, k)
	}
	sort.Strings(names)
	return labelSet{names: names, global: global}
}

// values are a target's values for l's names: its own, else the global one, else "".
func (l labelSet) values(own map[string]string) []string {
	v := make([]string, len(l.names))
	for i, n := range l.names {
		if x, ok := own[n]; ok {
			v[i] = x
		} else {
			v[i] = l.global[n]
		}
	}
	return v
}

// series identifies a target's series across reloads: its name, the
// collector's label names and its values. Equal series keep their counters
// and histograms; a change of any label starts them afresh.
type series struct {
	name       string
	labelNames []string // the collector's
	labels     []string // the target's values for labelNames
}

func (s series) key() string {
	return s.name + "\x00" + strings.Join(s.labelNames, "\x01") + "\x00" + strings.Join(s.labels, "\x01")
}

// reconcile matches the next targets to the running ones by key. keep gets
// each next target that has a running one of the same key, and returns the
// one to run: next, having carried over what it should from old, or old
// itself, unchanged. out is the targets to run, in next's order; gone are
// the running targets not among them, for the caller to stop.
func reconcile[T comparable](running, next []T, key func(T) string, keep func(next, old T) T) (out, gone []T) {
	old := make(map[string]T, len(running))
	for _, o := range running {
		old[key(o)] = o
	}
	out = make([]T, 0, len(next))
	kept := map[T]bool{}
	for _, n := range next {
		if o, ok := old[key(n)]; ok {
			delete(old, key(n))
			n = keep(n, o)
		}
		out = append(out, n)
		kept[n] = true
	}
	for _, o := range running {
		if !kept[o] {
			gone = append(gone, o)
		}
	}
	return out, gone
}

// series of a target named name with its own labels own.
func (l labelSet) series(name string, own map[string]string) series {
	return series{name: name, labelNames: l.names, labels: l.values(own)}
}

// ownLabels are the labels of each target, for newLabelSet.
func ownLabels[T any](targets []T, labels func(T) map[string]string) []map[string]string {
	out := make([]map[string]string, len(targets))
	for i, t := range targets {
		out[i] = labels(t)
	}
	return out
}
