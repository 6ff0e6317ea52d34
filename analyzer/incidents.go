package analyzer

import (
	"math"
	"sort"
	"time"
)

// Incident kinds.
const (
	KindLinkDown        = "link-down"
	KindISPOutage       = "isp-outage"
	KindPacketLoss      = "packet-loss"
	KindLatencySpike    = "latency-spike"
	KindDNSSlow         = "dns-slow"
	KindWifiDegraded    = "wifi-degraded"
	KindBufferbloat     = "bufferbloat"
	KindThermalThrottle = "thermal-throttle"
	KindUnderVoltage    = "under-voltage"
	KindConntrackFull   = "conntrack-full"
)

// level is one step's verdict for an incident rule. Between the enter and the
// exit threshold a rule says "hold"; with no data it says "blind", which also
// holds: an incident is never started or ended on missing data.
type level int8

const (
	lvBlind level = iota
	lvGood
	lvHold
	lvBad
)

// episode is one incident on the grid: steps [Start, End); End = -1 while active.
type episode struct{ Start, End int }

// hysteresis turns per-step verdicts into incidents: enterN consecutive bad
// steps open one (dated at the first of them), exitN consecutive good steps
// close it (dated at the first good one). Blind steps neither count nor
// break a run, so a gap from an exporter restart changes nothing.
func hysteresis(lv []level, enterN, exitN int) []episode {
	var eps []episode
	active := false
	run, runStart := 0, 0
	for i, l := range lv {
		switch {
		case l == lvBlind:
			continue
		case !active && l == lvBad:
			if run == 0 {
				runStart = i
			}
			run++
			if run >= enterN {
				active = true
				eps = append(eps, episode{Start: runStart, End: -1})
				run = 0
			}
		case active && l == lvGood:
			if run == 0 {
				runStart = i
			}
			run++
			if run >= exitN {
				active = false
				eps[len(eps)-1].End = runStart
				run = 0
			}
		default:
			run = 0
		}
	}
	return eps
}

// threshold maps a value to a level: bad at or beyond enter, good before exit.
// higherIsWorse chooses the direction (wifi signal gets worse as it falls).
func threshold(x, enter, exit float64, higherIsWorse bool) level {
	if math.IsNaN(x) {
		return lvBlind
	}
	if !higherIsWorse {
		x, enter, exit = -x, -enter, -exit
	}
	switch {
	case x >= enter:
		return lvBad
	case x < exit:
		return lvGood
	}
	return lvHold
}

// Thresholds of the incident rules (enter, exit).
type Thresholds struct {
	EnterSteps, ExitSteps int
	OutageEnterSteps      int           // link-down and isp-outage, judged on the short window
	RampSteps             int           // rate window in steps (set by the engine)
	RateWindow            time.Duration // set by the engine
	ShortWindow           time.Duration // set by the engine
	OutageLoss            float64       // a target counts as unreachable at this loss ratio
	ReachableLoss         float64       // and as reachable below it
	LossEnter, LossExit   float64
	LossCritical          float64
	LatencyRatio          float64 // spike: above ref·ratio and ref+LatencyAbs
	LatencyAbs            float64 // seconds
	DNSEnter, DNSExit     float64 // seconds
	WifiEnter, WifiExit   float64 // dBm
	WifiRoams             float64 // roams per rate window
	BloatEnter, BloatExit float64 // seconds of latency increase
	ConntrackEnter        float64
	ConntrackExit         float64
}

func DefaultThresholds() Thresholds {
	return Thresholds{
		EnterSteps: 2, ExitSteps: 4, OutageEnterSteps: 1,
		OutageLoss: 0.9, ReachableLoss: 0.5,
		LossEnter: 0.05, LossExit: 0.01, LossCritical: 0.2,
		LatencyRatio: 2, LatencyAbs: 0.02,
		DNSEnter: 0.5, DNSExit: 0.2,
		WifiEnter: -75, WifiExit: -70, WifiRoams: 2,
		BloatEnter: 0.2, BloatExit: 0.1,
		ConntrackEnter: 0.9, ConntrackExit: 0.8,
	}
}

// Incident is one detected problem. Start and End are grid times.
type Incident struct {
	// ID stays the same for the incident's whole life: node/kind/target@start.
	ID        string    `json:"id"`
	Node      string    `json:"node"`
	Target    string    `json:"target,omitempty"`
	Kind      string    `json:"kind"`
	Severity  string    `json:"severity"`
	Start     time.Time `json:"start"`
	End       time.Time `json:"end,omitzero"`
	Active    bool      `json:"active"`
	Peak      float64   `json:"peak"`      // worst value of the rule's signal during the incident
	PeakUnit  string    `json:"peak_unit"` // what Peak measures
	Level     float64   `json:"level"`     // median of the rule's signal during the incident
	Before    float64   `json:"before"`    // the rule's signal before the incident (median)
	OriginHop int       `json:"origin_hop,omitempty"`
	Blame     []Blame   `json:"blame,omitempty"`
	// NoLocalCause: nothing on the node moved with the incident; the
	// problem is on the path or beyond the node.
	NoLocalCause bool `json:"no_local_cause,omitempty"`
	// SupersededBy is the ID of the outage that absorbed this incident
	// (it ended, as End says, because the outage explains it).
	SupersededBy string `json:"superseded_by,omitempty"`

	startIdx, endIdx int
	blameFixed       bool // Blame was ranked over the whole onset window: it no longer changes
}

func (in *Incident) key() string { return in.Node + "\x00" + in.Target + "\x00" + in.Kind }

// nodeInput is what the incident rules need of one node, on the grid.
type nodeInput struct {
	Node    string
	Gateway string               // target name of the gateway, "" if none
	Loss    map[string][]float64 // per target loss ratio
	RTT     map[string][]float64 // per target mean RTT, seconds
	RTTRef  map[string][]float64 // per target expected RTT (seasonal or trailing)
	// The same over the short window (nil maps or missing targets: not queried).
	LossShort, RTTShort map[string][]float64
	ShortSamples        float64              // samples of the ping counters in a short window (NaN: unknown)
	DNS                 map[string][]float64 // per resolver mean lookup time
	DNSShort            map[string][]float64 // the same over the short window
	Signals             map[string][]float64 // host signals by name
	Bloat               []float64
}

// above is an onset test: the value is past the exit threshold (a NaN is not).
func above(xs []float64, v float64) func(int) bool {
	return func(i int) bool { return xs[i] > v }
}

func levels(xs []float64, enter, exit float64, higherIsWorse bool) []level {
	lv := make([]level, len(xs))
	for i, x := range xs {
		lv[i] = threshold(x, enter, exit, higherIsWorse)
	}
	return lv
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
