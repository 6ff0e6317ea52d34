package analyzer

import (
	"strings"
	"time"

	"github.com/prometheus/common/model"
)

// Every exporter metric the analyzer reads is named here and nowhere else, so
// the names can be aligned with the collectors in one place.
var (
	mPingSent     = "smokemon_ping_sent_total"
	mPingLost     = "smokemon_ping_lost_total"
	mPingRTT      = "smokemon_ping_rtt_seconds"                   // histogram: _sum, _count, _bucket
	mPingInfo     = "smokemon_ping_target_info"                   // host="gateway" marks the gateway target
	mDNSLookup    = "smokemon_dns_lookup_duration_seconds"        // histogram {target,resolver}
	mMTRSent      = "smokemon_mtr_hop_sent_total"                 // {target,family,hop}
	mMTRRecv      = "smokemon_mtr_hop_received_total"             // {target,family,hop}
	mMTRRTTSum    = "smokemon_mtr_hop_rtt_seconds_total"          // sum of answered RTTs {target,family,hop}
	mMTRChanges   = "smokemon_mtr_path_changes_total"             // {target,family}
	mMTRHopInfo   = "smokemon_mtr_hop_info"                       // {target,family,hop,ip}
	mBloat        = "smokemon_bandwidth_latency_increase_seconds" // loaded − idle RTT {target,direction,percentile}
	bloatPct      = "50"                                          // the median increase, as the exporter's own grade uses
	mCPUSeconds   = "smokemon_cpu_seconds_total"
	mCPUOnline    = "smokemon_cpu_online"
	mCPUForks     = "smokemon_cpu_forks_total"
	mCPUThrottles = "smokemon_cpu_core_throttles_total"
	mPSIPrefix    = "smokemon_pressure_" // + cpu|memory|io + _waiting_seconds_total
	mMemAvail     = "smokemon_memory_available_bytes"
	mMemTotal     = "smokemon_memory_total_bytes"
	mOOM          = "smokemon_memory_oom_kills_total"
	mWifiSignal   = "smokemon_wifi_signal_dbm"
	mWifiRetries  = "smokemon_wifi_transmit_retries_total"
	mWifiRoams    = "smokemon_wifi_roams_total"
	mRetrans      = "smokemon_netstat_tcp_retransmitted_segments_total"
	mCTEntries    = "smokemon_netstat_conntrack_entries"
	mCTLimit      = "smokemon_netstat_conntrack_entries_limit"
	mNetRx        = "smokemon_network_receive_bytes_total"
	mNetTx        = "smokemon_network_transmit_bytes_total"
	mRPICondition = "smokemon_rpi_throttle_condition" // {condition,when}
	mZoneTemp     = "smokemon_thermal_zone_temperature_celsius"
	mZoneTrip     = "smokemon_thermal_zone_trip_point_celsius" // {trip_type}
	mFSAvail      = "smokemon_disk_filesystem_available_bytes"
	mFSSize       = "smokemon_disk_filesystem_size_bytes"
	mWritten      = "smokemon_disk_written_bytes_total"
	mEMMCLife     = "smokemon_emmc_life_time_used_ratio"
	mPSEnergy     = "smokemon_power_supply_energy_joules"
	mPSPower      = "smokemon_power_supply_power_watts"
	mPSStatus     = "smokemon_power_supply_status" // {status}
)

// Query is one PromQL expression evaluated every cycle. Range queries run on
// the cycle's grid; instant ones at its end. Exprs aggregate by node, so the
// number of queries is fixed however large the fleet.
type Query struct {
	Name  string
	Expr  string
	Range bool
	// Slow queries feed figures that move over hours (disk, flash, trip
	// points): they run every Config.SlowInterval and are reused in between.
	Slow bool
	// Ahead marks seasonal range queries (offset 1d/7d): the past does not
	// change, so they are fetched Config.Ahead beyond the window's end and
	// reused until that runs low.
	Ahead bool
}

// Query names, used as keys of the results and as the label of the error counter.
const (
	qSent, qLost, qRTT       = "ping_sent", "ping_lost", "ping_rtt_sum"
	qSentS, qLostS, qRTTS    = "ping_sent_short", "ping_lost_short", "ping_rtt_sum_short"
	qRTT1d, qRTT7d           = "ping_rtt_mean_1d", "ping_rtt_mean_7d"
	qLoss1d, qLoss7d         = "ping_loss_1d", "ping_loss_7d"
	qGateway                 = "ping_gateway"
	qTargetIP, qHop2         = "ping_target_ip", "mtr_hop2_ip"
	qShortSamples            = "ping_short_window_samples"
	qDNS, qDNSS              = "dns_lookup_mean", "dns_lookup_mean_short"
	qMTRSent, qMTRRecv       = "mtr_hop_sent", "mtr_hop_received"
	qMTRRTT, qMTRChanges     = "mtr_hop_rtt", "mtr_path_changes"
	qBloat                   = "bufferbloat"
	qFSAvail, qFSDeriv       = "fs_available", "fs_available_deriv"
	qWritten, qEMMC, qFSSize = "disk_write_rate", "emmc_life_used", "fs_size"
	qTemp, qTrip, qTempDeriv = "thermal_temp", "thermal_trip", "thermal_temp_deriv"
	qBattE, qBattP, qBattDis = "battery_energy", "battery_power", "battery_discharging"
)

// signalDef is a host signal used for incidents, blame and the fleet view.
// Its query returns one series per node (plus an optional detail label that
// is appended to the signal name, e.g. the interface of a throughput).
type signalDef struct {
	Name   string
	Expr   string
	Detail string  // label whose value qualifies the signal name
	Floor  float64 // smallest spread worth calling a change (units of the signal)
	Unit   string
}

func signalDefs() []signalDef {
	return []signalDef{
		{Name: "cpu_busy", Expr: `sum by ($node) (rate(` + mCPUSeconds + `{mode!~"idle|iowait"}[$w])) / max by ($node) (` + mCPUOnline + `)`, Floor: 0.05, Unit: "ratio"},
		{Name: "psi_cpu", Expr: `sum by ($node) (rate(` + mPSIPrefix + `cpu_waiting_seconds_total[$w]))`, Floor: 0.02, Unit: "ratio"},
		{Name: "psi_memory", Expr: `sum by ($node) (rate(` + mPSIPrefix + `memory_waiting_seconds_total[$w]))`, Floor: 0.02, Unit: "ratio"},
		{Name: "psi_io", Expr: `sum by ($node) (rate(` + mPSIPrefix + `io_waiting_seconds_total[$w]))`, Floor: 0.02, Unit: "ratio"},
		{Name: "memory_used", Expr: `1 - sum by ($node) (` + mMemAvail + `) / sum by ($node) (` + mMemTotal + `)`, Floor: 0.05, Unit: "ratio"},
		{Name: "oom_kills", Expr: `sum by ($node) (increase(` + mOOM + `[$w]))`, Floor: 0.5, Unit: "kills"},
		{Name: "wifi_signal", Expr: `min by ($node) (` + mWifiSignal + `)`, Floor: 2, Unit: "dBm"},
		{Name: "wifi_retries", Expr: `sum by ($node) (rate(` + mWifiRetries + `[$w]))`, Floor: 2, Unit: "/s"},
		{Name: "wifi_roams", Expr: `sum by ($node) (increase(` + mWifiRoams + `[$w]))`, Floor: 0.5, Unit: "roams"},
		{Name: "tcp_retransmits", Expr: `sum by ($node) (rate(` + mRetrans + `[$w]))`, Floor: 1, Unit: "/s"},
		{Name: "conntrack_fill", Expr: `sum by ($node) (` + mCTEntries + `) / sum by ($node) (` + mCTLimit + `)`, Floor: 0.05, Unit: "ratio"},
		{Name: "network_receive", Detail: "device", Expr: `sum by ($node, device) (rate(` + mNetRx + `[$w]))`, Floor: 125e3, Unit: "B/s"},
		{Name: "network_transmit", Detail: "device", Expr: `sum by ($node, device) (rate(` + mNetTx + `[$w]))`, Floor: 125e3, Unit: "B/s"},
		{Name: "thermal_throttle", Expr: `max by ($node) (` + mRPICondition + `{condition=~"throttled|soft_temp_limit",when="now"}) or sum by ($node) (clamp_max(rate(` + mCPUThrottles + `[$w]), 1))`, Floor: 0.2, Unit: "bool"},
		{Name: "under_voltage", Expr: `max by ($node) (` + mRPICondition + `{condition="under_voltage",when="now"})`, Floor: 0.2, Unit: "bool"},
		{Name: "temperature", Expr: `max by ($node) (` + mZoneTemp + `)`, Floor: 2, Unit: "°C"},
		{Name: "process_starts", Expr: `sum by ($node) (rate(` + mCPUForks + `[$w]))`, Floor: 2, Unit: "/s"},
	}
}

// queries is the fixed list evaluated every cycle.
func (c *Config) queries() []Query {
	r := strings.NewReplacer("$node", c.NodeLabel, "$w", promDur(c.RateWindow), "$lw", promDur(c.LongWindow), "$sw", promDur(c.ShortWindow))
	q := func(name, expr string, rng bool) Query { return Query{Name: name, Expr: r.Replace(expr), Range: rng} }
	qa := func(name, expr string, _ bool) Query {
		return Query{Name: name, Expr: r.Replace(expr), Range: true, Ahead: true}
	}
	by := "$node, target"
	rtt := `sum by (` + by + `) (rate(` + mPingRTT + `_sum[$w]%s)) / sum by (` + by + `) (rate(` + mPingRTT + `_count[$w]%s))`
	loss := `sum by (` + by + `) (increase(` + mPingLost + `[$w]%s)) / sum by (` + by + `) (increase(` + mPingSent + `[$w]%s))`
	off := func(f, o string) string { return strings.ReplaceAll(f, "%s", o) }
	qs := []Query{
		q(qSent, `sum by (`+by+`) (increase(`+mPingSent+`[$w]))`, true),
		q(qLost, `sum by (`+by+`) (increase(`+mPingLost+`[$w]))`, true),
		// The RTT sum alone: divided in Go by the answered probes (sent − lost),
		// which saves the _count selector on the busiest query of the cycle.
		q(qRTT, `sum by (`+by+`) (increase(`+mPingRTT+`_sum[$w]))`, true),
		// The same over the short window: it dates the start and end of
		// incidents and sees outages within a step or two.
		q(qSentS, `sum by (`+by+`) (increase(`+mPingSent+`[$sw]))`, true),
		q(qLostS, `sum by (`+by+`) (increase(`+mPingLost+`[$sw]))`, true),
		q(qRTTS, `sum by (`+by+`) (increase(`+mPingRTT+`_sum[$sw]))`, true),
		// Scrapes per short window: how much of it a sample covers, to date ends.
		q(qShortSamples, `max by ($node) (count_over_time(`+mPingSent+`[$sw]))`, false),
		qa(qRTT1d, off(rtt, " offset 1d"), true),
		qa(qRTT7d, off(rtt, " offset 7d"), true),
		qa(qLoss1d, off(loss, " offset 1d"), true),
		qa(qLoss7d, off(loss, " offset 7d"), true),
		q(qGateway, `max by (`+by+`) (last_over_time(`+mPingInfo+`{host="gateway"}[1h]))`, false),
		// What nodes share, for fleet incidents: addresses of targets (the
		// gateway's among them) and of the first hop beyond the gateway.
		q(qTargetIP, `max by (`+by+`, ip) (last_over_time(`+mPingInfo+`[1h]))`, false),
		q(qHop2, `max by ($node, ip) (last_over_time(`+mMTRHopInfo+`{hop="2"}[$lw]))`, false),
		q(qDNS, `sum by ($node, resolver) (rate(`+mDNSLookup+`_sum[$w])) / sum by ($node, resolver) (rate(`+mDNSLookup+`_count[$w]))`, true),
		// Over the short window: dates a slow resolver's start and end.
		q(qDNSS, `sum by ($node, resolver) (rate(`+mDNSLookup+`_sum[$sw])) / sum by ($node, resolver) (rate(`+mDNSLookup+`_count[$sw]))`, true),
		q(qMTRSent, `sum by (`+by+`, hop) (increase(`+mMTRSent+`[$lw]))`, false),
		q(qMTRRecv, `sum by (`+by+`, hop) (increase(`+mMTRRecv+`[$lw]))`, false),
		q(qMTRRTT, `sum by (`+by+`, hop) (rate(`+mMTRRTTSum+`[$lw])) / sum by (`+by+`, hop) (rate(`+mMTRRecv+`[$lw]))`, false),
		q(qMTRChanges, `sum by (`+by+`) (increase(`+mMTRChanges+`[1h]))`, false),
		q(qBloat, `max by ($node) (last_over_time(`+mBloat+`{percentile="`+bloatPct+`"}[1d]))`, true),
		q(qFSAvail, `sum by ($node, mountpoint) (`+mFSAvail+`)`, false).slow(),
		q(qFSSize, `sum by ($node, mountpoint, device) (`+mFSSize+`)`, false).slow(),
		q(qFSDeriv, `sum by ($node, mountpoint) (deriv(`+mFSAvail+`[6h]))`, false).slow(),
		// The day's average write rate; a subquery so a node with only hours of history is not diluted.
		q(qWritten, `sum by ($node, device) (avg_over_time(rate(`+mWritten+`[15m])[1d:15m]))`, false).slow(),
		q(qEMMC, `max by ($node, device) (`+mEMMCLife+`)`, false).slow(),
		q(qTemp, `max by ($node, zone) (`+mZoneTemp+`)`, false),
		q(qTrip, `min by ($node, zone) (`+mZoneTrip+`{trip_type="passive"})`, false).slow(),
		q(qTempDeriv, `max by ($node, zone) (deriv(`+mZoneTemp+`[15m]))`, false),
		q(qBattE, `sum by ($node, supply) (`+mPSEnergy+`)`, false),
		q(qBattP, `sum by ($node, supply) (`+mPSPower+`)`, false),
		q(qBattDis, `max by ($node, supply) (`+mPSStatus+`{status="Discharging"})`, false),
	}
	for _, s := range signalDefs() {
		qs = append(qs, q("signal_"+s.Name, s.Expr, true))
	}
	for _, l := range c.FleetLabels {
		qs = append(qs, q("fleet_label_"+l, `max by ($node, `+l+`) (last_over_time(`+mPingInfo+`[1h]))`, false))
	}
	return qs
}

func (q Query) slow() Query { q.Slow = true; return q }

func promDur(d time.Duration) string { return model.Duration(d).String() }
