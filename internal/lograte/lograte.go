// Package lograte keeps a log readable when the same thing goes wrong over
// and over (a sensor that fails every scrape, a scraper that keeps hanging
// up, a query server that is down): a slog.Handler that lets the first few
// records of each level and message through per interval, drops the rest,
// counts them in a metric, and tells on the next record it lets through how
// many it dropped.
package lograte

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Defaults: a message repeating every second shows up 10 times a minute at
// most; one that comes back every few minutes is always shown.
const (
	DefaultBurst    = 10
	DefaultInterval = time.Minute
)

// maxKeys bounds the memory of messages seen: messages that embed a changing
// value are a bug to fix, not a reason to grow without end.
const maxKeys = 4096

// SuppressedCounter is the counter of dropped records, by level, for a
// binary's registry: namespace_subsystem_log_messages_suppressed_total.
// Every level is present from the start, so that rate() sees the first drop.
func SuppressedCounter(namespace, subsystem string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: subsystem, Name: "log_messages_suppressed_total",
		Help: "Log records dropped because the same level and message was logged too often within the rate limit's interval.",
	}, []string{"level"})
	for _, l := range []slog.Level{slog.LevelDebug, slog.LevelInfo, slog.LevelWarn, slog.LevelError} {
		c.WithLabelValues(levelName(l))
	}
	return c
}

func levelName(l slog.Level) string { return strings.ToLower(l.String()) }

type key struct {
	level slog.Level
	msg   string
	attrs string // values of the key attrs, see New
}

type window struct {
	start      time.Time
	passed     int
	suppressed int // dropped since the last record let through
}

// limiter is the state the handlers derived by WithAttrs and WithGroup
// share: the limit is the logger's, not one per derived logger.
type limiter struct {
	burst      int
	interval   time.Duration
	keyAttrs   []string
	now        func() time.Time
	suppressed *prometheus.CounterVec

	mu      sync.Mutex
	windows map[key]*window
}

// Handler rate-limits the records it passes to the next handler.
type Handler struct {
	next slog.Handler
	l    *limiter
}

// New wraps next: per interval, the first burst records with the same level
// and message pass, the others are dropped and counted in suppressed (may
// be nil). burst < 1 or interval ≤ 0 turn the limit off. The values of the
// record's keyAttrs, when it has them, are part of what makes records the
// same: with "collector", one collector failing every scrape does not
// hide the first failures of another under the same message.
func New(next slog.Handler, burst int, interval time.Duration, suppressed *prometheus.CounterVec, keyAttrs ...string) *Handler {
	return &Handler{next: next, l: &limiter{
		burst: burst, interval: interval, keyAttrs: keyAttrs, now: time.Now, suppressed: suppressed, windows: map[key]*window{},
	}}
}

// Enabled defers to the wrapped handler: a record it would not write is
// not counted as suppressed either.
func (h *Handler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.next.Enabled(ctx, level)
}

// Handle passes r on, or drops it. The first record after drops carries
// suppressed=N, the number dropped since the previous one that passed.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	pass, dropped := h.l.allow(h.l.key(r))
	if !pass {
		if h.l.suppressed != nil {
			h.l.suppressed.WithLabelValues(levelName(r.Level)).Inc()
		}
		return nil
	}
	if dropped > 0 {
		r = r.Clone()
		r.AddAttrs(slog.Int("suppressed", dropped))
	}
	return h.next.Handle(ctx, r)
}

func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &Handler{next: h.next.WithAttrs(attrs), l: h.l}
}

func (h *Handler) WithGroup(name string) slog.Handler {
	return &Handler{next: h.next.WithGroup(name), l: h.l}
}

func (l *limiter) key(r slog.Record) key {
	k := key{level: r.Level, msg: r.Message}
	if len(l.keyAttrs) == 0 {
		return k
	}
	var b strings.Builder
	r.Attrs(func(a slog.Attr) bool {
		for _, name := range l.keyAttrs {
			if a.Key == name {
				b.WriteString(name)
				b.WriteByte('=')
				b.WriteString(a.Value.String())
				b.WriteByte(0)
			}
		}
		return true
	})
	k.attrs = b.String()
	return k
}

// allow reports whether a record with key k passes, and if so how many
// with that key were dropped since the last one that passed.
func (l *limiter) allow(k key) (bool, int) {
	if l.burst < 1 || l.interval <= 0 {
		return true, 0
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	w, ok := l.windows[k]
	if !ok {
		if len(l.windows) >= maxKeys {
			l.prune(now)
		}
		w = &window{start: now}
		l.windows[k] = w
	}
	if now.Sub(w.start) >= l.interval {
		w.start, w.passed = now, 0
	}
	if w.passed >= l.burst {
		w.suppressed++
		return false, 0
	}
	w.passed++
	dropped := w.suppressed
	w.suppressed = 0
	return true, dropped
}

// prune forgets the messages whose interval is over; if all are recent,
// it forgets them all (their drop counts restart at 0).
func (l *limiter) prune(now time.Time) {
	for k, w := range l.windows {
		if now.Sub(w.start) >= l.interval {
			delete(l.windows, k)
		}
	}
	if len(l.windows) >= maxKeys {
		clear(l.windows)
	}
}
