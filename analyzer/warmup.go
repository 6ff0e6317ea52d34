package analyzer

import (
	"context"
	"sync"
	"time"

	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
)

// A cold start (or the return from an outage longer than the window) has no
// kept range results: reading the whole lookback of a large fleet at once
// takes minutes. So the first cycle reads only its last Config.WarmupWindow
// and answers from that, and every later cycle also reads one
// Config.WarmupChunk further back, until the window is full; meanwhile the
// snapshot says it is warming up and how much of the window it covers.
// Steps not read yet are blind, so no incident starts or ends on them; an
// incident that began before the covered part is dated at that part's
// start until the chunk that holds its real start arrives (see redate).

// redate: an incident the previous cycle found at the start of what it had
// read while warming up was dated there only for want of older data, and
// its blame ranked without the time before it. This cycle, reading further
// back, dates and ranks it afresh: its start (and the ID made of it) and
// blame replace the provisional ones before reconcile keeps them for good;
// fleet incidents dated at the edge are dropped, to be grouped afresh.
func (e *Engine) redate(s, prev *Snapshot) *Snapshot {
	if prev == nil || !prev.WarmingUp {
		return prev
	}
	edge := prev.Time.Add(-prev.Covered).Add(e.cfg.RateWindow + 2*s.Grid.Step)
	cp := *prev
	cp.Incidents = append([]Incident(nil), prev.Incidents...)
	for i := range cp.Incidents {
		p := &cp.Incidents[i]
		if p.Start.After(edge) {
			continue
		}
		p.blameFixed = false
		for _, c := range s.Incidents {
			if c.key() == p.key() && c.Start.Before(p.Start) && overlaps(&c, p, s.Grid.Step) {
				p.Start = c.Start
				p.ID = incidentID(p)
				break
			}
		}
	}
	// A fleet incident dated at the edge is rebuilt from the redated member
	// incidents; kept, reconcileFleet would end it as one that vanished.
	cp.Fleet = nil
	for _, f := range prev.Fleet {
		if f.Start.After(edge) {
			cp.Fleet = append(cp.Fleet, f)
		}
	}
	return &cp
}

// warmFrom is where a range query without kept results starts.
func (e *Engine) warmFrom(g Grid, incremental bool) time.Time {
	w := e.cfg.WarmupWindow
	if !incremental || w <= 0 || w >= g.End().Sub(g.Start) {
		return g.Start
	}
	return g.End().Add(-w).Truncate(g.Step)
}

// backfill reads the chunk before each range buffer's first point and
// returns the number of queries sent; a buffer read first in this cycle
// waits for the next, so the first cycle is served fast. A failed chunk is
// asked again next cycle: the window stays short, which the snapshot says.
func (e *Engine) backfill(ctx context.Context, g Grid, qs []Query, res map[string]*result) int {
	issued := 0
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, max(1, e.cfg.Concurrency))
	for _, q := range qs {
		b := e.buf(q.Name)
		mu.Lock() // the chunks already on their way write res
		r := res[q.Name]
		mu.Unlock()
		if !q.Range || r == nil || r.err != nil || b == nil || b.born == e.cycle || !b.since.After(g.Start) {
			continue
		}
		back := b.since.Add(-max(g.Step, e.cfg.WarmupChunk))
		if back.Before(g.Start) {
			back = g.Start
		}
		issued++
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			qctx, cancel := context.WithTimeout(ctx, max(e.cfg.QueryTimeout, 5*time.Minute))
			defer cancel()
			mat, err := e.src.QueryRange(qctx, q.Expr, v1.Range{Start: back, End: b.since.Add(-g.Step), Step: g.Step})
			if err != nil {
				e.logger.Warn("warm-up query failed", "query", q.Name, "err", err)
				return
			}
			b.fill(back, e.keepOwn(q.Name, mat))
			r := &result{}
			if q.Ahead {
				r.series = b.slice(g)
			} else {
				r.series = b.list()
			}
			mu.Lock()
			res[q.Name] = r
			mu.Unlock()
		}()
	}
	wg.Wait()
	return issued
}

// fill lays a chunk [from, since) read during warm-up into b.
func (b *rangeBuf) fill(from time.Time, m model.Matrix) {
	for _, ss := range m {
		fp := ss.Metric.Fingerprint()
		s := b.series[fp]
		if s == nil {
			s = &Series{Labels: labelMap(ss.Metric), V: nanSlice(b.grid.N)}
			b.series[fp] = s
		}
		for _, p := range ss.Values {
			t := p.Timestamp.Time()
			if i := int((t.Sub(b.grid.Start) + b.grid.Step/2) / b.grid.Step); !t.Before(from) && t.Before(b.since) && i >= 0 && i < b.grid.N {
				s.V[i] = float64(p.Value)
			}
		}
	}
	b.since = from
}

// coverage is how much of the window ending at g's end every range result
// covers, and whether that is less than the whole window.
func (e *Engine) coverage(g Grid, qs []Query) (time.Duration, bool) {
	since := g.Start
	for _, q := range qs {
		if b := e.buf(q.Name); q.Range && b != nil && b.since.After(since) {
			since = b.since
		}
	}
	return g.End().Sub(since), since.After(g.Start)
}

func laterOf(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func earlierOf(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
