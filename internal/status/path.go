package status

import (
	"math"
	"strconv"
	"time"
)

// path is an mtr target's state: the latest hops and two snapshots of the
// hop counters, renewed in turn every pathSnapEvery, so that hop loss is
// always that of the last 2.5 to 5 minutes.
type path struct {
	name, family string
	hops         []HopSample
	reached      bool
	changes      uint64
	snaps        [2]pathSnap // snaps[0] is the older
}

type pathSnap struct {
	t          time.Time
	sent, recv []uint32
}

const pathSnapEvery = 150 * time.Second

// ObservePaths folds in a sample of every mtr target.
func (s *Status) ObservePaths(now time.Time, samples []PathSample) {
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := make(map[tkey]*path, len(samples))
	for _, ps := range samples {
		k := tkey{ps.Name, ps.Family}
		p := s.paths[k]
		if p == nil {
			p = &path{name: ps.Name, family: ps.Family, changes: ps.Changes}
			p.snaps[0], p.snaps[1] = snapOf(now, ps.Hops), snapOf(now, ps.Hops)
		}
		seen[k] = p
		if ps.Changes > p.changes {
			text := "path changed, now " + strconv.Itoa(len(ps.Hops)) + " hops"
			if !ps.Reached {
				text += ", destination not reached"
			}
			s.addEvent(Event{now, EventRouteChange, label(ps.Name, ps.Family), text})
		}
		p.changes, p.hops, p.reached = ps.Changes, ps.Hops, ps.Reached
		if now.Sub(p.snaps[1].t) >= pathSnapEvery {
			p.snaps[0], p.snaps[1] = p.snaps[1], snapOf(now, ps.Hops)
		}
	}
	s.paths = seen
}

func snapOf(t time.Time, hops []HopSample) pathSnap {
	s := pathSnap{t: t, sent: make([]uint32, len(hops)), recv: make([]uint32, len(hops))}
	for i, h := range hops {
		s.sent[i], s.recv[i] = uint32(h.Sent), uint32(h.Received)
	}
	return s
}

// hopLoss is the loss of each hop since the older snapshot (NaN where
// nothing was sent or the hop is new).
func (p *path) hopLoss() (loss []float64, sent []uint64) {
	base := p.snaps[0]
	loss, sent = make([]float64, len(p.hops)), make([]uint64, len(p.hops))
	for i, h := range p.hops {
		var ds, dr uint32
		if i < len(base.sent) {
			ds, dr = uint32(h.Sent)-base.sent[i], uint32(h.Received)-base.recv[i]
		} else {
			ds, dr = uint32(h.Sent), uint32(h.Received)
		}
		sent[i] = uint64(ds)
		loss[i] = nan
		if ds > 0 {
			loss[i] = 1 - float64(min(dr, ds))/float64(ds)
		}
	}
	return loss, sent
}

// lossOrigin is the first hop whose loss carries on to the destination:
// at least LossBurst there and at every later hop, and not more than the
// later hops lose beyond sampling noise. Loss that later hops do not share
// is the router rate-limiting its own ICMP answers, not loss on the path.
// 0 when there is none.
func lossOrigin(loss []float64, sent []uint64) int {
	origin := 0
	floor := math.Inf(1) // the least loss of the hops after i
	for i := len(loss) - 1; i >= 0; i-- {
		l := loss[i]
		if !(l >= LossBurst.Value) || !(floor >= LossBurst.Value) { // NaN (nothing sent) ends the run too
			break
		}
		// Noise: three standard deviations of the difference of two loss
		// ratios over this many probes, and never under 10 points.
		tol := 0.1
		if sent[i] > 0 {
			tol = math.Max(tol, 3*math.Sqrt(2*l*(1-l)/float64(sent[i])))
		}
		if math.IsInf(floor, 1) || l-floor <= tol {
			origin = i + 1
		}
		floor = math.Min(floor, l)
	}
	return origin
}
