package analyzer

import (
	"math"
	"sort"
	"time"

	"github.com/prometheus/common/model"
)

// rangeBuf is one range query's series on a grid, kept between cycles so
// that a cycle only asks for the steps that are new or may have changed.
type rangeBuf struct {
	grid   Grid
	series map[model.Fingerprint]*Series
	// since is the first point the buffer has been asked for: later than
	// grid.Start while a cold start fills the window backwards.
	since time.Time
	born  int // the engine's cycle that read it first (see backfill)
}

// refetchFrom says where the next query on grid g may start when the rest
// comes from b: the same step, the old end inside the new window, and the
// last refetch of the old window asked again.
func (b *rangeBuf) refetchFrom(g Grid, refetch time.Duration) (time.Time, bool) {
	if b == nil || b.grid.Step != g.Step || b.grid.End().After(g.End()) || !b.grid.End().After(g.Start) {
		return time.Time{}, false
	}
	from := b.grid.End().Add(-refetch).Truncate(g.Step)
	if from.Before(g.Start) {
		from = g.Start
	}
	return from, true
}

// merge lays the fresh result over the kept one: points from `from` on come
// only from the fresh answer (a series missing there is missing, not kept),
// earlier ones from old. Series with no point left in the window are dropped.
func merge(old *rangeBuf, g Grid, from time.Time, m model.Matrix) *rangeBuf {
	nb := &rangeBuf{grid: g, since: laterOf(from, g.Start)}
	cut := max(0, min(g.N, int(from.Sub(g.Start)/g.Step)))
	if old != nil {
		// The kept series move in place: old is not used again, and a
		// cycle over a large fleet should not allocate its window anew.
		nb.series = old.series
		nb.since, nb.born = laterOf(g.Start, earlierOf(from, old.since)), old.born
		shift := int(g.Start.Sub(old.grid.Start) / g.Step)
		for _, s := range nb.series {
			s.V = shifted(s.V, g.N, shift, cut)
		}
	} else {
		nb.series = make(map[model.Fingerprint]*Series, len(m))
	}
	for _, ss := range m {
		fp := ss.Metric.Fingerprint()
		s := nb.series[fp]
		if s == nil {
			s = &Series{Labels: labelMap(ss.Metric), V: nanSlice(g.N)}
			nb.series[fp] = s
		}
		for _, p := range ss.Values {
			i := int((p.Timestamp.Time().Sub(g.Start) + g.Step/2) / g.Step)
			if i >= cut && i < g.N {
				s.V[i] = float64(p.Value)
			}
		}
	}
	for fp, s := range nb.series {
		if countFinite(s.V) == 0 {
			delete(nb.series, fp)
		}
	}
	return nb
}

// shifted lays v, on a grid shift steps before the new one, onto the new
// grid of n points: points before cut kept, the rest NaN. It reuses v's
// array when it is large enough (moving left reads ahead of the writes,
// moving right walks backwards).
func shifted(v []float64, n, shift, cut int) []float64 {
	out := v
	if cap(v) < n {
		out = make([]float64, n)
	}
	out = out[:n]
	at := func(i int) float64 {
		if j := i + shift; i < cut && j >= 0 && j < len(v) {
			return v[j]
		}
		return math.NaN()
	}
	if shift >= 0 {
		for i := range n {
			out[i] = at(i)
		}
	} else {
		for i := n - 1; i >= 0; i-- {
			out[i] = at(i)
		}
	}
	return out
}

func (b *rangeBuf) list() []Series {
	fps := make([]model.Fingerprint, 0, len(b.series))
	for fp := range b.series {
		fps = append(fps, fp)
	}
	sort.Slice(fps, func(i, j int) bool { return fps[i] < fps[j] })
	out := make([]Series, 0, len(fps))
	for _, fp := range fps {
		// Copies: the analyses may hold on to them after the buffer moves on.
		s := b.series[fp]
		out = append(out, Series{Labels: s.Labels, V: append([]float64(nil), s.V...)})
	}
	return out
}

// covers says whether b holds g and at least margin beyond its end.
func (b *rangeBuf) covers(g Grid, margin time.Duration) bool {
	return b.grid.Step == g.Step && !b.grid.Start.After(g.Start) && !b.grid.End().Before(g.End().Add(margin))
}

// slice returns b's series cut to grid g (same step), dropping those with
// no point in it.
func (b *rangeBuf) slice(g Grid) []Series {
	shift := int(g.Start.Sub(b.grid.Start) / g.Step)
	out := make([]Series, 0, len(b.series))
	for _, s := range b.list() {
		v := nanSlice(g.N)
		for i := range v {
			if j := i + shift; j >= 0 && j < len(s.V) {
				v[i] = s.V[j]
			}
		}
		if countFinite(v) > 0 {
			out = append(out, Series{Labels: s.Labels, V: v})
		}
	}
	return out
}
