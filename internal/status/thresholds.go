package status

import (
	"strconv"
	"strings"
	"time"
)

// Threshold is one line between "normal" and "bad". Where an alerting or
// recording rule draws the same line, Rule names it and Expr is the piece of
// its PromQL that holds the value: a test reads prometheus/rules and checks
// that the piece is there, so the page and the alerts cannot drift apart.
type Threshold struct {
	Value  float64
	Window time.Duration // the rule's range, where it has one
	Rule   string        // alert or recorded series; "" for the status page's own lines
	Expr   string        // {v} stands for Value, {w} for Window
}

// Bad reports whether v is beyond the threshold: above it, or below it for
// thresholds whose rule compares with "<".
func (t Threshold) Bad(v float64) bool {
	switch {
	case strings.Contains(t.Expr, "< {v}"):
		return v < t.Value
	case strings.Contains(t.Expr, ">= {v}"):
		return v >= t.Value
	}
	return v > t.Value
}

// Fragment is Expr with the value and window filled in, as it reads in the rule.
func (t Threshold) Fragment() string {
	w := ""
	if t.Window > 0 {
		w = strconv.Itoa(int(t.Window.Minutes())) + "m"
	}
	return strings.NewReplacer("{v}", strconv.FormatFloat(t.Value, 'g', -1, 64), "{w}", w).Replace(t.Expr)
}

// The thresholds of the status page. Each Rule is in
// prometheus/rules/smokemon-alerts.yml or smokemon-recording.yml.
var (
	// A target is lossy when it loses over 5% in the last minute and over 2%
	// in the last five, as SmokemonPacketLoss fires.
	LossBurst = Threshold{Value: 0.05, Rule: "SmokemonPacketLoss", Expr: "node_target:smokemon_ping_loss:ratio_1m > {v}"}
	LossSlow  = Threshold{Value: 0.02, Rule: "SmokemonPacketLoss", Expr: "node_target:smokemon_ping_loss:ratio_5m > {v}"}
	// Down: (nearly) every ping of the last minute lost.
	TargetDown = Threshold{Value: 0.99, Rule: "SmokemonTargetDown", Expr: "node_target:smokemon_ping_loss:ratio_1m >= {v}"}
	// The node's health level counts CPU and memory above 90% as a problem.
	CPUBusy    = Threshold{Value: 0.9, Rule: "node:smokemon_health:level", Expr: "node:smokemon_cpu_busy:ratio_5m > bool {v}"}
	MemoryUsed = Threshold{Value: 0.9, Rule: "node:smokemon_health:level", Expr: "node:smokemon_memory_used:ratio > bool {v}"}
	WeakWifi   = Threshold{Value: -75, Window: 10 * time.Minute, Rule: "SmokemonWeakWifi", Expr: "max_over_time(smokemon_wifi_signal_dbm[{w}])) < {v}"}
	RoamStorm  = Threshold{Value: 3, Window: 10 * time.Minute, Rule: "SmokemonWifiRoamingStorm", Expr: "increase(smokemon_wifi_roams_total[{w}])) > {v}"}
	Conntrack  = Threshold{Value: 0.85, Rule: "SmokemonConntrackNearlyFull", Expr: "smokemon_netstat_conntrack_entries_limit) > {v}"}
	// Core throttle counters that moved in the window count as throttling.
	CoreThrottles = Threshold{Value: 0, Window: 5 * time.Minute, Rule: "SmokemonThermalThrottling", Expr: "increase(smokemon_cpu_core_throttles_total[{w}])) > {v}"}
	// A thermal zone at or past its passive trip point is throttling.
	TripMargin = Threshold{Value: 0, Rule: "SmokemonThermalThrottling", Expr: `(smokemon_thermal_zone_trip_point_celsius{trip_type="passive"}) ) >= {v}`}
	// Under-voltage counts for 5 minutes after the firmware last reported it.
	UnderVoltage = Threshold{Value: 1, Window: 5 * time.Minute, Rule: "SmokemonUnderVoltage", Expr: `smokemon_rpi_throttle_condition{condition="under_voltage", when="now"}[{w}])) == {v}`}
	// No rule pages on pressure; a fifth of the time with a task stalled
	// (PSI "some") is where a small board starts to feel slow.
	Pressure = Threshold{Value: 0.2, Expr: "> {v}"}
)

// All lists every threshold by the name the JSON report uses.
var All = map[string]*Threshold{
	"loss_1m": &LossBurst, "loss_5m": &LossSlow, "target_down": &TargetDown,
	"cpu": &CPUBusy, "memory": &MemoryUsed, "wifi_signal": &WeakWifi, "wifi_roams": &RoamStorm,
	"conntrack": &Conntrack, "core_throttles": &CoreThrottles, "trip_margin": &TripMargin,
	"under_voltage": &UnderVoltage, "pressure": &Pressure,
}
