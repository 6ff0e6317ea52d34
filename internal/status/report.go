package status

import (
	"math"
	"strconv"
	"time"
)

// SchemaVersion names the JSON layout; it changes when a field changes meaning.
const SchemaVersion = "smokemon.status/v1"

// Num is a number that is null in JSON when it is not known (NaN).
type Num float64

func (n Num) MarshalJSON() ([]byte, error) {
	f := float64(n)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return []byte("null"), nil
	}
	return strconv.AppendFloat(nil, f, 'g', 6, 64), nil
}

// Report is what every format renders: the JSON of ?format=json.
type Report struct {
	Schema      string         `json:"schema"`
	Node        string         `json:"node"`
	Time        time.Time      `json:"time"`
	SlotSeconds int            `json:"slot_seconds"`
	Targets     []TargetReport `json:"targets"`
	Host        []Figure       `json:"host"`
	Events      []Event        `json:"events"`
}

// TargetReport is one ping target. Ratios are 0–1, times in seconds.
type TargetReport struct {
	Name      string      `json:"name"`
	Family    string      `json:"family"`
	State     string      `json:"state"` // up, lossy, down, unprobed, waiting (no probes yet)
	Loss1m    Num         `json:"loss_1m"`
	Loss5m    Num         `json:"loss_5m"`
	Loss15m   Num         `json:"loss_15m"`
	RTTMedian Num         `json:"rtt_median_5m_seconds"`
	RTTP90    Num         `json:"rtt_p90_5m_seconds"`
	RTTMax    Num         `json:"rtt_max_5m_seconds"`
	Slots     []Slot      `json:"slots"` // the last 15 minutes, oldest first; the last one is still filling
	Path      *PathReport `json:"path,omitempty"`
}

// Slot is one SlotLength of a target.
type Slot struct {
	Sent   int `json:"sent"`
	Lost   int `json:"lost"`
	Median Num `json:"rtt_median_seconds"`
	P90    Num `json:"rtt_p90_seconds"`
	Max    Num `json:"rtt_max_seconds"`
}

// PathReport is what mtr saw toward a target over the last 2.5–5 minutes.
type PathReport struct {
	Hops       int    `json:"hops"`
	Reached    bool   `json:"destination_reached"`
	DestLoss   Num    `json:"destination_loss"`
	LossOrigin int    `json:"loss_origin_hop"` // 0: no loss that persists to the destination
	OriginAddr string `json:"loss_origin_address,omitempty"`
	OriginLoss Num    `json:"loss_origin_loss"`
}

// Figure is one host figure of the host line.
type Figure struct {
	Name  string `json:"name"` // cpu, memory, psi_cpu, psi_memory, psi_io, temperature, throttled, under_voltage, wifi_signal, wifi_roams, conntrack
	Value Num    `json:"value"`
	Unit  string `json:"unit"` // ratio, celsius, dbm, bool, count
	Text  string `json:"text"`
	Bad   bool   `json:"bad"`
}

// Target states.
const (
	StateUp       = "up"
	StateLossy    = "lossy"
	StateDown     = "down"
	StateUnprobed = "unprobed"
	StateWaiting  = "waiting"
)

// Report builds the report at now, with at most events events.
func (s *Status) Report(now time.Time, events int) *Report {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := &Report{Schema: SchemaVersion, Node: s.node, Time: now, SlotSeconds: int(SlotLength / time.Second),
		Targets: make([]TargetReport, 0, len(s.targets))}
	for _, t := range s.targets {
		r.Targets = append(r.Targets, s.targetReport(now, t))
	}
	r.Host = append([]Figure{}, s.host.figures(now)...) // [] rather than null in JSON
	r.Events = s.recentEvents(events)
	return r
}

func ratio(sent, lost uint64) Num {
	if sent == 0 {
		return Num(nan)
	}
	return Num(float64(lost) / float64(sent))
}

func (s *Status) targetReport(now time.Time, t *target) TargetReport {
	tr := TargetReport{Name: t.name, Family: t.family}
	tr.Loss1m = ratio(t.ring.window(now, time.Minute))
	tr.Loss5m = ratio(t.ring.window(now, 5*time.Minute))
	tr.Loss15m = ratio(t.ring.window(now, 15*time.Minute))
	p50, p90, hi := t.ring.rtt5()
	tr.RTTMedian, tr.RTTP90, tr.RTTMax = Num(p50), Num(p90), Num(hi)
	for _, sl := range t.ring.last(RingSlots) {
		tr.Slots = append(tr.Slots, Slot{int(sl.sent), int(sl.lost), Num(rttValue(sl.p50)), Num(rttValue(sl.p90)), Num(rttValue(sl.max))})
	}
	l1, l5 := float64(tr.Loss1m), float64(tr.Loss5m)
	switch {
	case !t.probed:
		tr.State = StateUnprobed
	case math.IsNaN(l1):
		tr.State = StateWaiting
	case TargetDown.Bad(l1):
		tr.State = StateDown
	case LossBurst.Bad(l1) && LossSlow.Bad(l5):
		tr.State = StateLossy
	default:
		tr.State = StateUp
	}
	if p := s.paths[tkey{t.name, t.family}]; p != nil {
		tr.Path = p.report()
	}
	return tr
}

func (p *path) report() *PathReport {
	loss, sent := p.hopLoss()
	pr := &PathReport{Hops: len(p.hops), Reached: p.reached, DestLoss: Num(nan), OriginLoss: Num(nan)}
	if n := len(loss); n > 0 {
		pr.DestLoss = Num(loss[n-1])
	}
	if o := lossOrigin(loss, sent); o > 0 {
		pr.LossOrigin, pr.OriginAddr, pr.OriginLoss = o, p.hops[o-1].Addr, Num(loss[o-1])
	}
	return pr
}

// figures is the host line, only with the figures this host has.
func (hs *hostState) figures(now time.Time) []Figure {
	h := hs.cur
	var out []Figure
	add := func(name string, v float64, unit, text string, bad bool) {
		if !math.IsNaN(v) && !math.IsInf(v, 0) {
			out = append(out, Figure{name, Num(v), unit, text, bad})
		}
	}
	add("cpu", hs.cpu, "ratio", pct(hs.cpu), CPUBusy.Bad(hs.cpu))
	used := 1 - h.MemAvailable/h.MemTotal
	add("memory", used, "ratio", pct(used), MemoryUsed.Bad(used))
	add("psi_cpu", hs.psiCPU, "ratio", pct(hs.psiCPU), Pressure.Bad(hs.psiCPU))
	add("psi_memory", hs.psiMem, "ratio", pct(hs.psiMem), Pressure.Bad(hs.psiMem))
	add("psi_io", hs.psiIO, "ratio", pct(hs.psiIO), Pressure.Bad(hs.psiIO))
	throttled, _ := hs.throttling(now)
	temp := strconv.FormatFloat(h.TempC, 'f', 0, 64) + "°C"
	if !math.IsNaN(h.TripC) {
		temp += " (trip " + strconv.FormatFloat(h.TripC, 'f', 0, 64) + ")"
	}
	add("temperature", h.TempC, "celsius", temp, TripMargin.Bad(h.TempC-h.TripC))
	if !math.IsNaN(h.Throttled) || !math.IsNaN(h.CoreThrottles) || !math.IsNaN(h.TripC) {
		add("throttled", b2f(throttled), "bool", yesNo(throttled, "yes", "no"), throttled)
	}
	uv := !hs.underVAt.IsZero() && now.Sub(hs.underVAt) <= UnderVoltage.Window
	if !math.IsNaN(h.UnderVoltage) || uv {
		add("under_voltage", b2f(uv), "bool", yesNo(uv, "yes", "no"), uv)
	}
	add("wifi_signal", h.WifiSignal, "dbm", h.WifiIface+" "+strconv.FormatFloat(h.WifiSignal, 'f', 0, 64)+" dBm", WeakWifi.Bad(h.WifiSignal))
	if !math.IsNaN(h.WifiRoams) {
		n := float64(hs.roamsIn(now, RoamStorm.Window))
		add("wifi_roams", n, "count", strconv.Itoa(int(n))+" in 10m", RoamStorm.Bad(n))
	}
	fill := h.Conntrack / h.ConntrackMax
	add("conntrack", fill, "ratio", pct(fill), Conntrack.Bad(fill))
	return out
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func yesNo(b bool, yes, no string) string {
	if b {
		return yes
	}
	return no
}

// pct formats a ratio as a percentage, one decimal under 10%.
func pct(r float64) string {
	switch {
	case math.IsNaN(r):
		return "-"
	case r > 0 && r < 0.001:
		return "<0.1%"
	case r > 0 && r < 0.1:
		return strconv.FormatFloat(r*100, 'f', 1, 64) + "%"
	}
	return strconv.FormatFloat(r*100, 'f', 0, 64) + "%"
}

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }

// dur formats a duration to the second, without a trailing "0s".
func dur(d time.Duration) string {
	d = d.Round(time.Second)
	s := d.String()
	if d >= time.Minute && d%time.Minute == 0 {
		s = s[:len(s)-2]
	}
	return s
}

// ms formats an RTT in seconds for a 6-column cell.
func ms(v float64) string {
	switch {
	case math.IsNaN(v):
		return "-"
	case v < 1e-3:
		return strconv.FormatFloat(v*1e6, 'f', 0, 64) + "µs"
	case v < 0.1:
		return strconv.FormatFloat(v*1e3, 'f', 2-int(math.Floor(math.Log10(v*1e3)+1e-9)), 64) + "ms"
	case v < 1:
		return strconv.FormatFloat(v*1e3, 'f', 0, 64) + "ms"
	}
	return strconv.FormatFloat(v, 'f', 2, 64) + "s"
}
