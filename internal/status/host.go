package status

import (
	"math"
	"strconv"
	"time"
)

var nan = math.NaN()

// hostRateMin is the least time between the two host samples a rate (CPU
// busy, pressure) is taken over: samples also come with every scrape and
// every /status request, and a rate over a second is noise.
const hostRateMin = 10 * time.Second

// hostState is what the host line and the host events need.
type hostState struct {
	base, cur     HostSample
	baseT, curT   time.Time
	cpu, psiCPU   float64 // ratios between base and the sample that replaced it
	psiMem, psiIO float64
	throttled     bool
	coreThrAt     time.Time // core throttle counters last moved
	underVAt      time.Time // under-voltage last seen
	roams         [8]time.Time
	nRoams        int
}

func newHostState() hostState {
	return hostState{base: NoHost(), cur: NoHost(), cpu: nan, psiCPU: nan, psiMem: nan, psiIO: nan}
}

// ObserveHost folds in a sample of the host figures.
func (s *Status) ObserveHost(now time.Time, h HostSample) {
	s.mu.Lock()
	defer s.mu.Unlock()
	hs := &s.host
	prev, first := hs.cur, hs.curT.IsZero()
	hs.cur, hs.curT = h, now
	if hs.baseT.IsZero() {
		hs.base, hs.baseT = h, now
	} else if el := now.Sub(hs.baseT); el >= hostRateMin {
		b := hs.base
		hs.cpu = (h.CPUBusy - b.CPUBusy) / (h.CPUTotal - b.CPUTotal)
		hs.psiCPU = (h.PSICPU - b.PSICPU) / el.Seconds()
		hs.psiMem = (h.PSIMem - b.PSIMem) / el.Seconds()
		hs.psiIO = (h.PSIIO - b.PSIIO) / el.Seconds()
		if h.CoreThrottles > b.CoreThrottles {
			hs.coreThrAt = now
		}
		hs.base, hs.baseT = h, now
	}
	if h.UnderVoltage == 1 {
		if hs.underVAt.IsZero() || now.Sub(hs.underVAt) > UnderVoltage.Window {
			s.addEvent(Event{Time: now, Kind: EventUnderVoltage, Text: "under-voltage reported by the firmware"})
		}
		hs.underVAt = now
	}
	throttled, why := hs.throttling(now)
	switch {
	case throttled && !hs.throttled:
		s.addEvent(Event{Time: now, Kind: EventThrottle, Text: "CPU throttled: " + why})
	case !throttled && hs.throttled:
		s.addEvent(Event{Time: now, Kind: EventThrottleOver, Text: "CPU no longer throttled"})
	}
	hs.throttled = throttled
	if first {
		return
	}
	if n := h.WifiRoams - prev.WifiRoams; n > 0 {
		for range int(min(n, 8)) {
			hs.roams[hs.nRoams%len(hs.roams)] = now
			hs.nRoams++
		}
		s.addEvent(Event{Time: now, Kind: EventRoam, Target: h.WifiIface, Text: h.WifiIface + " roamed to another access point" + times(n)})
	}
}

func times(n float64) string {
	if n == 1 {
		return ""
	}
	return " (" + strconv.Itoa(int(n)) + " times)"
}

// throttling is the rule of SmokemonThermalThrottling without its `for`:
// the firmware says so, a core throttle counter moved within the window, or
// the hottest zone is at or past its passive trip point.
func (hs *hostState) throttling(now time.Time) (bool, string) {
	h := hs.cur
	switch {
	case h.Throttled == 1:
		return true, "firmware throttle flag"
	case !hs.coreThrAt.IsZero() && now.Sub(hs.coreThrAt) <= CoreThrottles.Window:
		return true, "core throttle counters moved"
	case TripMargin.Bad(h.TempC - h.TripC):
		return true, strconv.FormatFloat(h.TempC, 'f', 0, 64) + "°C, passive trip point " + strconv.FormatFloat(h.TripC, 'f', 0, 64) + "°C"
	}
	return false, ""
}

// roamsIn counts the roams within w before now.
func (hs *hostState) roamsIn(now time.Time, w time.Duration) int {
	n := 0
	for i := range min(hs.nRoams, len(hs.roams)) {
		if now.Sub(hs.roams[i]) <= w {
			n++
		}
	}
	return n
}
