package analyzer

import "math"

// DeathClock is the time left until a node hits a hard limit. +Inf means the
// trend does not lead there.
type DeathClock struct {
	Node    string  `json:"node"`
	Limit   string  `json:"limit"`  // disk_full, flash_wear, thermal, battery
	Object  string  `json:"object"` // mountpoint, device, zone or supply
	Seconds float64 `json:"seconds"`
}

// diskFullIn: free bytes over the rate they disappear at (a least-squares
// slope over hours, so a log rotation does not stop the clock).
func diskFullIn(avail, slope float64) float64 {
	switch {
	case math.IsNaN(avail) || math.IsNaN(slope):
		return math.NaN()
	case avail <= 0:
		return 0
	case slope >= 0:
		return math.Inf(1)
	}
	return avail / -slope
}

// flashWearIn predicts wear-out from write volume: eMMC reports life used
// only in 10% steps, so the remaining share (band middle) is turned into
// bytes with the endurance (capacity × P/E cycles) and divided by the
// write rate.
func flashWearIn(usedLowerBound, writeRate, capacity, peCycles float64) float64 {
	switch {
	case math.IsNaN(usedLowerBound):
		return math.NaN()
	case usedLowerBound >= 1:
		return 0
	case math.IsNaN(writeRate) || writeRate <= 0 || math.IsNaN(capacity) || capacity <= 0:
		return math.Inf(1)
	}
	left := math.Max(0, 1-(usedLowerBound+0.05))
	return left * capacity * peCycles / writeRate
}

// thermalIn: headroom to the throttle trip point over the warming rate.
func thermalIn(temp, trip, slope float64) float64 {
	switch {
	case math.IsNaN(temp) || math.IsNaN(trip):
		return math.NaN()
	case temp >= trip:
		return 0
	case math.IsNaN(slope) || slope <= 0:
		return math.Inf(1)
	}
	return (trip - temp) / slope
}

// batteryIn: stored energy over the power drawn, while discharging.
func batteryIn(energy, power float64, discharging bool) float64 {
	switch {
	case math.IsNaN(energy):
		return math.NaN()
	case !discharging || math.IsNaN(power) || power <= 0:
		return math.Inf(1)
	}
	return energy / power
}
