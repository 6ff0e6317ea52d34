package analyzer

import (
	"math"
	"sort"
	"strings"
)

// Blame is one signal on the node that moved, in a direction that can cause
// the incident, when the incident began.
type Blame struct {
	Signal string  `json:"signal"`
	Score  float64 `json:"score"`  // robust z: median shift in units of the signal's own MAD-σ before the incident
	Before float64 `json:"before"` // median before the incident
	During float64 `json:"during"` // median over the incident's first steps
	Unit   string  `json:"unit"`
}

// minBlameScore is the null hypothesis' bar: a smaller shift is within
// what the signal does on its own.
const minBlameScore = 3

// harmful is the direction in which a signal can cause a network problem:
// +1 when a rise can (more traffic, more CPU), −1 when a fall can (wifi
// signal). Less traffic or less CPU never explains latency or loss.
var harmful = map[string]float64{
	"cpu_busy": 1, "psi_cpu": 1, "psi_memory": 1, "psi_io": 1, "memory_used": 1, "oom_kills": 1,
	"wifi_signal": -1, "wifi_retries": 1, "wifi_roams": 1, "conntrack_fill": 1,
	"network_receive": 1, "network_transmit": 1, "thermal_throttle": 1, "under_voltage": 1,
	"temperature": 1, "process_starts": 1,
}

// causesOf lists the signals that can explain each kind. TCP retransmits
// are a symptom of loss, never its cause; a link that went down is not
// explained by the CPU; process starts reach the network only through the
// CPU, which is a signal of its own (alone they are the machine's noise:
// a build, a cron job).
var causesOf = map[string][]string{
	KindPacketLoss: {"cpu_busy", "psi_cpu", "psi_memory", "memory_used", "oom_kills", "wifi_signal", "wifi_retries", "wifi_roams",
		"conntrack_fill", "network_receive", "network_transmit", "thermal_throttle", "under_voltage"},
	KindLinkDown:    {"wifi_signal", "wifi_retries", "wifi_roams", "under_voltage"},
	KindISPOutage:   {"conntrack_fill"},
	KindDNSSlow:     {"cpu_busy", "psi_cpu", "psi_memory", "memory_used", "conntrack_fill", "network_receive", "network_transmit", "wifi_signal", "wifi_retries"},
	KindBufferbloat: {"network_receive", "network_transmit"},
	// The host kinds name their own signal first: it dates and sizes them.
	KindWifiDegraded:    {"wifi_signal", "wifi_retries", "wifi_roams"},
	KindThermalThrottle: {"thermal_throttle", "temperature", "cpu_busy", "psi_cpu"},
	KindUnderVoltage:    {"under_voltage", "cpu_busy"},
	KindConntrackFull:   {"conntrack_fill", "network_receive", "network_transmit", "process_starts"},
}

func init() { causesOf[KindLatencySpike] = causesOf[KindPacketLoss] }

// pathCauses load the path beyond the node rather than the node itself:
// they remain candidates when the gateway was spared (see spared).
var pathCauses = map[string]bool{"network_receive": true, "network_transmit": true, "conntrack_fill": true}

// networkKinds are the kinds that, without a local cause, lie on the path.
var networkKinds = map[string]bool{KindPacketLoss: true, KindLatencySpike: true, KindLinkDown: true, KindISPOutage: true, KindDNSSlow: true}

// blameWindow: where the ranking looks, in steps of the grid.
type blameWindow struct {
	start, end int // the incident, [start, end)
	near       int // a cause's change must begin within this many steps of the start (the rate window's ramp)
	during     int // steps after the start whose median is the signal's level during the incident
	minBefore  int // history needed before the start
}

// rankBlame (hostCauses false: only pathCauses) ranks the node's signals that changed in a harmful direction by
// their robust z against their own variation before the incident, keeping
// only those whose change began near the incident's start. Same data, same
// verdict: the levels come from fixed windows and ties break by name.
func rankBlame(kind string, signals map[string][]float64, defs map[string]signalDef, w blameWindow, top int, hostCauses bool) []Blame {
	allowed := map[string]bool{}
	for _, s := range causesOf[kind] {
		allowed[s] = hostCauses || pathCauses[s]
	}
	var out []Blame
	for name, v := range signals {
		base := strings.SplitN(name, ":", 2)[0]
		if !allowed[base] {
			continue
		}
		if b, ok := blameOf(name, v, defs[base], w); ok {
			out = append(out, b)
		}
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

func blameOf(name string, v []float64, d signalDef, w blameWindow) (Blame, bool) {
	end := min(w.end, len(v), w.start+w.during)
	refEnd := w.start - w.near // the ramp before the start belongs to neither side
	if w.start >= end || refEnd <= 0 {
		return Blame{}, false
	}
	ref, cur := v[:refEnd], v[w.start:end]
	if countFinite(ref) < max(3, w.minBefore) || countFinite(cur) < 2 {
		return Blame{}, false
	}
	z, rm, cm := robustZ(ref, cur, d.Floor)
	dir := harmful[strings.SplitN(name, ":", 2)[0]]
	if math.IsNaN(z) || z*dir < minBlameScore {
		return Blame{}, false
	}
	// Near the onset: still at its old level just before, already moved by
	// shortly after. A change long before (or long after) is another story.
	shift := cm - rm
	pre := median(v[max(0, refEnd-3):refEnd])
	early := median(v[w.start:min(end, w.start+w.near+2)])
	if math.IsNaN(pre) || math.Abs(pre-rm) >= math.Abs(shift)/2 || math.IsNaN(early) || (early-rm)/shift < 0.5 {
		return Blame{}, false
	}
	return Blame{Signal: name, Score: math.Abs(z), Before: rm, During: cm, Unit: d.Unit}, true
}
