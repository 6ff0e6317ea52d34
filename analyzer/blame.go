package analyzer

import (
	"math"
	"sort"
	"strings"
)

// Blame is one signal that moved when an incident started.
type Blame struct {
	Signal string  `json:"signal"`
	Score  float64 `json:"score"`  // |robust z|: median shift in units of the before-window's MAD-σ
	Before float64 `json:"before"` // median before the incident
	During float64 `json:"during"` // median during it
	Unit   string  `json:"unit"`
}

// minBlameScore hides signals that merely wobbled.
const minBlameScore = 3

// rankBlame ranks the node's signals by how far their median moved in the
// incident window [start, end) against the window just before it (at least
// minBefore steps, as long as the incident so far). Robust statistics only:
// a single spike in the before-window must not mask a real shift.
func rankBlame(signals map[string][]float64, defs map[string]signalDef, start, end, minBefore, top int) []Blame {
	var out []Blame
	for name, v := range signals {
		if end > len(v) {
			end = len(v)
		}
		if start >= end {
			continue
		}
		b0 := max(0, start-max(end-start, minBefore))
		ref, cur := v[b0:start], v[start:end]
		if countFinite(ref) < 3 || countFinite(cur) < 2 {
			continue
		}
		d := defs[strings.SplitN(name, ":", 2)[0]]
		z, rm, cm := robustZ(ref, cur, d.Floor)
		if math.IsNaN(z) || math.Abs(z) < minBlameScore {
			continue
		}
		out = append(out, Blame{Signal: name, Score: math.Abs(z), Before: rm, During: cm, Unit: d.Unit})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Score != out[j].Score {
			return out[i].Score > out[j].Score
		}
		return out[i].Signal < out[j].Signal
	})
	if len(out) > top {
		out = out[:top]
	}
	return out
}
