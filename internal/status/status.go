// Package status keeps the exporter's own short memory of its targets and
// host, and renders it for a person: plain text for curl, an HTML page that
// refreshes itself, JSON for scripts. It needs no Prometheus: the exporter
// feeds it samples of the counters its collectors already keep, every few
// seconds and never from the probe path.
package status

import (
	"math"
	"sort"
	"sync"
	"time"
)

// TargetSample is one ping target's cumulative counters at a moment.
type TargetSample struct {
	Name, Family string
	Probed       bool      // has an address and its family's prober is up
	Sent, Lost   uint64    // cumulative
	Bounds       []float64 // RTT histogram upper bounds, seconds, ascending, +Inf last
	// Counts are the observations per bucket since the start (not summed
	// over buckets), modulo 2^16: the status only ever subtracts two
	// samples 10 s apart, and 2 bytes a bucket keep a 10 000-target sample
	// at 1.6 MB. Total is the histogram's count.
	Counts []uint16
	Total  uint64
}

// PathSample is one mtr target's path: cumulative counters per hop.
type PathSample struct {
	Name, Family string
	Hops         []HopSample // Hops[k-1] is hop k
	Reached      bool
	Changes      uint64 // cumulative path changes
}

// HopSample is one hop of a path.
type HopSample struct {
	Addr           string
	Sent, Received uint64
}

// HostSample is the host's figures at a moment; NaN where the host has no
// such figure (no wifi, no thermal zone, not a Raspberry Pi).
type HostSample struct {
	CPUBusy, CPUTotal       float64 // cumulative CPU seconds, busy and all
	MemAvailable, MemTotal  float64 // bytes
	PSICPU, PSIMem, PSIIO   float64 // cumulative seconds with a task stalled (PSI some)
	TempC, TripC            float64 // hottest thermal zone; its passive trip point
	Throttled, UnderVoltage float64 // Raspberry Pi firmware flags now: 0 or 1
	CoreThrottles           float64 // cumulative x86 thermal throttle events
	WifiIface               string
	WifiSignal, WifiRoams   float64 // dBm; cumulative roams
	Conntrack, ConntrackMax float64
}

// NoHost is a HostSample without any figure.
func NoHost() HostSample {
	n := math.NaN()
	return HostSample{n, n, n, n, n, n, n, n, n, n, n, n, "", n, n, n, n}
}

// Event is something that happened, as the events list shows it.
type Event struct {
	Time   time.Time `json:"time"`
	Kind   string    `json:"kind"`
	Target string    `json:"target,omitempty"`
	Text   string    `json:"text"`
}

// Event kinds.
const (
	EventLossBurst    = "loss-burst"
	EventLossOver     = "loss-over"
	EventDown         = "target-down"
	EventUp           = "target-up"
	EventRouteChange  = "route-change"
	EventRoam         = "wifi-roam"
	EventThrottle     = "throttle"
	EventThrottleOver = "throttle-over"
	EventUnderVoltage = "under-voltage"
	EventReload       = "reload"
	EventReloadFailed = "reload-failed"
)

// MaxEvents bounds the events list.
const MaxEvents = 32

// Status is the memory. Its methods are safe for concurrent use.
type Status struct {
	mu      sync.Mutex
	node    string
	targets []*target // in the order of the last sample
	paths   map[tkey]*path
	host    hostState
	events  [MaxEvents]Event
	nEvents int // events recorded in all; the ring holds the last MaxEvents
}

// target is one ping target's state: its ring and what the events need.
type target struct {
	name, family string
	probed       bool
	down, lossy  bool
	ring         ring
	burstSince   int64 // Unix nanoseconds
	upAt         int64 // Unix nanoseconds of the last down → up
	burstSent    uint32
	burstLost    uint32
}

type tkey struct{ name, family string }

// family returns f, from a constant for the usual ones: a target keeps no
// copy of its own.
func family(f string) string {
	switch f {
	case "ip4":
		return "ip4"
	case "ip6":
		return "ip6"
	}
	return f
}

// SetNode names the node the report is about.
func (s *Status) SetNode(node string) {
	s.mu.Lock()
	s.node = node
	s.mu.Unlock()
}

// New returns an empty status for the node.
func New(node string) *Status {
	return &Status{node: node, paths: map[tkey]*path{}, host: newHostState()}
}

// ObservePing folds in a sample of every ping target. Targets missing from
// it are forgotten (a reload removed them).
func (s *Status) ObservePing(now time.Time, samples []TargetSample) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.targets
	var byKey map[tkey]*target // built only when the targets changed order
	s.targets = make([]*target, 0, len(samples))
	for i := range samples {
		ts := &samples[i]
		var t *target
		if i < len(old) && old[i].name == ts.Name && old[i].family == ts.Family {
			t = old[i]
		} else {
			if byKey == nil {
				byKey = make(map[tkey]*target, len(old))
				for _, o := range old {
					byKey[tkey{o.name, o.family}] = o
				}
			}
			if t = byKey[tkey{ts.Name, ts.Family}]; t == nil {
				t = &target{name: ts.Name, family: family(ts.Family)}
			}
		}
		s.targets = append(s.targets, t)
		t.probed = ts.Probed
		if closed, ok := t.ring.add(now, ts.Sent, ts.Lost, ts.Total, ts.Bounds, ts.Counts); ok {
			s.judge(now, t, closed)
		}
	}
}

// judge updates a target's down and lossy states when a slot closes, and
// records the events of their edges.
func (s *Status) judge(now time.Time, t *target, closed slot) {
	sent, lost := t.ring.window(now, time.Minute)
	if sent == 0 {
		return
	}
	loss := float64(lost) / float64(sent)
	name := t.label()
	down := TargetDown.Bad(loss)
	switch {
	case down && !t.down:
		s.addEvent(Event{now, EventDown, name, "down: " + pct(loss) + " lost over the last minute"})
	case !down && t.down:
		s.addEvent(Event{now, EventUp, name, "up again: " + pct(loss) + " lost over the last minute"})
		t.upAt = now.UnixNano()
	}
	t.down = down
	// For a minute after an outage its tail is still in the window: that is
	// not a new burst.
	recovering := now.UnixNano()-t.upAt < int64(time.Minute)
	if t.lossy {
		t.burstSent += uint32(closed.sent)
		t.burstLost += uint32(closed.lost)
	}
	lossy := LossBurst.Bad(loss) && !down && !recovering
	switch {
	case lossy && !t.lossy:
		t.burstSince = now.UnixNano()
		t.burstSent, t.burstLost = uint32(closed.sent), uint32(closed.lost)
		s.addEvent(Event{now, EventLossBurst, name, "loss burst: " + pct(loss) + " lost over the last minute"})
	case !lossy && t.lossy && !down: // a burst that ends in an outage is told by the down event
		s.addEvent(Event{now, EventLossOver, name, "loss burst over after " + dur(now.Sub(time.Unix(0, t.burstSince))) + ": " +
			itoa(uint64(t.burstLost)) + " of " + itoa(uint64(t.burstSent)) + " lost"})
	}
	t.lossy = lossy
}

func (t *target) label() string { return label(t.name, t.family) }

// label names a target as the page shows it: the family only when not IPv4.
func label(name, family string) string {
	if family == "" || family == "ip4" {
		return name
	}
	return name + " (" + family + ")"
}

// AddEvent records an event the samples cannot show (a reload, say).
func (s *Status) AddEvent(e Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.addEvent(e)
}

func (s *Status) addEvent(e Event) {
	s.events[s.nEvents%MaxEvents] = e
	s.nEvents++
}

// recentEvents returns the last n events, newest first.
func (s *Status) recentEvents(n int) []Event {
	n = min(n, s.nEvents, MaxEvents)
	out := make([]Event, 0, n)
	for i := s.nEvents - 1; i >= s.nEvents-n; i-- {
		out = append(out, s.events[i%MaxEvents])
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Time.After(out[j].Time) })
	return out
}
