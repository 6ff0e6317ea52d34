package analyzer

import (
	"context"
	"time"
)

// EvaluateSpan is what the one-shot commands show for a window of any
// length: a long window is read at a coarse step (one query stays small),
// but a coarse step needs several bad steps and would miss an incident
// that began minutes ago. So the last Lookback is read at the engine's own
// step too, exactly as `serve` and `status` read it, and its incidents and
// node states replace the coarse ones: every view agrees on what is active.
func (e *Engine) EvaluateSpan(ctx context.Context, end time.Time, window time.Duration) *Snapshot {
	fine := e.EvaluateWindow(ctx, end, min(window, e.cfg.Lookback), e.cfg.Step, false)
	if window <= e.cfg.Lookback || !fine.Up {
		return fine
	}
	step := max(e.cfg.Step, (window / 720).Truncate(time.Second))
	coarse := e.EvaluateWindow(ctx, end, window, step, false)
	if !coarse.Up {
		return fine
	}
	merged := *fine
	merged.Grid = coarse.Grid
	merged.QueryErrors = append(append([]string(nil), fine.QueryErrors...), coarse.QueryErrors...)
	merged.Incidents = append([]Incident(nil), fine.Incidents...)
	// Older incidents: those the coarse view saw end before the fine window began.
	for _, in := range coarse.Incidents {
		if !in.Active && in.End.Before(fine.Grid.Start) {
			merged.Incidents = append(merged.Incidents, in)
		}
	}
	sortIncidents(merged.Incidents)
	merged.Series += coarse.Series
	merged.Queries += coarse.Queries
	return &merged
}
