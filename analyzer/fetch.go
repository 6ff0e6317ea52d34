package analyzer

import (
	"context"
	"sync"
	"time"

	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
)

func (e *Engine) run(ctx context.Context, g Grid, qs []Query, incremental bool) (map[string]*result, int) {
	res := make(map[string]*result, len(qs))
	e.mu.Lock()
	reuseSlow := incremental && e.slow != nil && !g.End().Before(e.slowAt) && g.End().Sub(e.slowAt) < e.cfg.SlowInterval
	if reuseSlow {
		for _, q := range qs {
			if q.Slow {
				res[q.Name] = e.slow[q.Name]
			}
		}
	}
	e.mu.Unlock()
	if incremental {
		e.cycle++
	}
	issued := 0
	if e.cfg.Shard.serverSide() {
		issued++
		sq, err := e.shardQueries(ctx, qs, g.End())
		if err != nil { // which nodes are ours is unknown: a blind cycle
			for _, q := range qs {
				res[q.Name] = &result{err: err}
			}
			return res, issued
		}
		qs = sq
	}
	var mu sync.Mutex
	sem := make(chan struct{}, max(1, e.cfg.Concurrency))
	var wg sync.WaitGroup
	for _, q := range qs {
		if q.Slow && reuseSlow {
			continue
		}
		if q.Ahead && incremental {
			if b := e.buf(q.Name); b != nil && b.covers(g, e.cfg.Ahead/2) {
				// Queries issued above are already writing res.
				mu.Lock()
				res[q.Name] = &result{series: b.slice(g)}
				mu.Unlock()
				continue
			}
		}
		issued++
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			r := e.fetch(ctx, q, g, incremental)
			mu.Lock()
			res[q.Name] = r
			mu.Unlock()
		}()
	}
	wg.Wait()
	if incremental {
		issued += e.backfill(ctx, g, qs, res)
	}
	if incremental && !reuseSlow {
		e.keepSlow(res, qs, g)
	}
	return res, issued
}

// fetch runs one query of a cycle: a range query from where its kept
// results end (or the whole window), an instant one at the grid's end, or
// one read ahead.
func (e *Engine) fetch(ctx context.Context, q Query, g Grid, incremental bool) *result {
	r := &result{}
	if q.Ahead && incremental {
		r.series, r.err = e.ahead(ctx, q, g)
		return r
	}
	timeout := e.cfg.QueryTimeout
	from := g.Start
	var old *rangeBuf
	if q.Range && incremental {
		old = e.buf(q.Name)
		if f, ok := old.refetchFrom(g, e.cfg.Refetch); ok {
			from = f
		} else {
			old = nil
		}
	}
	if q.Range && old == nil {
		// A whole window (start-up, or after a long outage) is many
		// times a normal cycle's data: give it time once, and read
		// only its end now when warming up (see backfill).
		timeout = max(timeout, 5*time.Minute)
		from = e.warmFrom(g, incremental)
	}
	qctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if q.Range {
		mat, err := e.src.QueryRange(qctx, q.Expr, v1.Range{Start: from, End: g.End(), Step: g.Step})
		if err == nil {
			b := merge(old, g, from, e.keepOwn(q.Name, mat))
			if old == nil {
				b.born = e.cycle
			}
			r.series = b.list()
			if incremental {
				e.setBuf(q.Name, b)
			}
		}
		r.err = err
	} else {
		vec, err := e.src.Query(qctx, q.Expr, g.End())
		if err == nil {
			r.series = vecSeries(e.keepOwnVector(q.Name, vec))
		}
		r.err = err
	}
	if r.err != nil {
		// One WARN per cycle, with the count, is the caller's (Snapshot.QueryErrors).
		e.logger.Debug("query failed", "query", q.Name, "err", r.err)
	}
	return r
}

// keepSlow remembers the slow queries' results until Config.SlowInterval
// has passed (all or none: a failed one is asked again next cycle).
func (e *Engine) keepSlow(res map[string]*result, qs []Query, g Grid) {
	e.mu.Lock()
	e.slow, e.slowAt = map[string]*result{}, g.End()
	for _, q := range qs {
		if q.Slow {
			if res[q.Name].err != nil {
				e.slow = nil // try again next cycle
				break
			}
			e.slow[q.Name] = res[q.Name]
		}
	}
	e.mu.Unlock()
}

// ahead fetches a seasonal query from the end of what is kept (or the
// window's start) to Ahead past the window's end.
func (e *Engine) ahead(ctx context.Context, q Query, g Grid) ([]Series, error) {
	old := e.buf(q.Name)
	end := g.End().Add(e.cfg.Ahead)
	ext := Grid{Start: g.Start, Step: g.Step, N: int(end.Sub(g.Start)/g.Step) + 1}
	from := e.warmFrom(g, true)
	if old != nil && old.grid.Step == g.Step && !old.grid.Start.After(g.Start) && !old.grid.End().Before(g.End()) {
		from = old.grid.End().Add(g.Step)
	} else {
		old = nil
	}
	timeout := e.cfg.QueryTimeout
	if old == nil {
		timeout = max(timeout, 5*time.Minute)
	}
	qctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	mat, err := e.src.QueryRange(qctx, q.Expr, v1.Range{Start: from, End: end, Step: g.Step})
	if err != nil {
		return nil, err
	}
	b := merge(old, ext, from, e.keepOwn(q.Name, mat))
	if old == nil {
		b.born = e.cycle
	}
	e.setBuf(q.Name, b)
	return b.slice(g), nil
}

func (e *Engine) buf(name string) *rangeBuf {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.bufs[name]
}

func (e *Engine) setBuf(name string, b *rangeBuf) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.bufs == nil {
		e.bufs = map[string]*rangeBuf{}
	}
	e.bufs[name] = b
}
