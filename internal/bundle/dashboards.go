// Package bundle generates smokemon's Grafana dashboards and tests the whole
// deployable bundle (prometheus/, alertmanager/, grafana/, docker-compose.yml)
// with the real tools: promtool, amtool, docker-compose, and a real
// Prometheus scraping the real exporter and analyzer.
//
// The dashboards under grafana/dashboards/ are generated from this file:
//
//	go test ./internal/bundle -run TestDashboardsUpToDate -update
package bundle

import (
	"encoding/json"
	"fmt"
	"strings"
)

// DatasourceUID is the uid of the provisioned Prometheus datasource
// (grafana/provisioning/datasources/smokemon.yml); every panel uses it.
const DatasourceUID = "smokemon-prometheus"

// Markers in a panel description that the query test reads. Users read them too.
const (
	// HardwareMarker: the panel's series exist only on some boards; the test
	// checks its queries against the hardware fixtures' metrics.
	HardwareMarker = "Only on: "
	// EventMarker: the panel is empty until something happens (an incident).
	EventMarker = "Empty until: "
)

var ds = map[string]any{"type": "prometheus", "uid": DatasourceUID}

// Q is one panel query.
type Q struct {
	Expr, Legend string
	Instant      bool   // table and stat panels that show the value now
	Format       string // "time_series" (default), "heatmap", "table"
}

// P is a panel before layout.
type P struct {
	Title, Desc, Type, Unit string
	Queries                 []Q
	W, H                    int
	Min, Max                *float64
	Repeat                  string               // variable to repeat the panel by
	Interval                string               // minimum interval ($__interval) of the panel's queries
	Extra                   func(map[string]any) // panel-type specific options
	Stack                   bool
}

func f(v float64) *float64 { return &v }

func row(title string) P { return P{Type: "row", Title: title} }

type board struct {
	uid, title, desc string
	tags             []string
	vars             []map[string]any
	annotations      []map[string]any
	panels           []P
}

// Selectors shared by the per-node dashboards. Variables are used as regexes
// so multi-value selections and the test's substitutions work alike.
const (
	sn  = `node=~"$node"`
	snt = `node=~"$node",target=~"$target"`
)

func nodeVar() map[string]any {
	return map[string]any{
		"name": "node", "label": "Node", "type": "query", "datasource": ds,
		"query":      map[string]any{"query": "label_values(smokemon_node_info, node)", "refId": "node"},
		"definition": "label_values(smokemon_node_info, node)",
		"refresh":    2, "sort": 1, "multi": false, "includeAll": false,
		"description": "The node (the `node` label every smokemon series carries).",
	}
}

func targetVar() map[string]any {
	return map[string]any{
		"name": "target", "label": "Target", "type": "query", "datasource": ds,
		"query":      map[string]any{"query": `label_values(smokemon_ping_sent_total{node=~"$node"}, target)`, "refId": "target"},
		"definition": `label_values(smokemon_ping_sent_total{node=~"$node"}, target)`,
		"refresh":    2, "sort": 1, "multi": true, "includeAll": true, "allValue": ".*",
		"description": "Ping targets of the node; the smoke panel repeats for each one selected.",
	}
}

func hopTargetVar() map[string]any {
	return map[string]any{
		"name": "target", "label": "Target", "type": "query", "datasource": ds,
		"query":      map[string]any{"query": `label_values(smokemon_mtr_hops{node=~"$node"}, target)`, "refId": "target"},
		"definition": `label_values(smokemon_mtr_hops{node=~"$node"}, target)`,
		"refresh":    2, "sort": 1, "multi": false, "includeAll": false,
		"description": "Path (mtr) targets of the node.",
	}
}

func incidentAnnotation() map[string]any {
	return map[string]any{
		"name": "Incidents", "datasource": ds, "enable": true, "iconColor": "red",
		"expr":            `smokemon_analyzer_incident_active{node=~"$node"} == 1`,
		"step":            "30s",
		"titleFormat":     "{{kind}} ({{severity}})",
		"textFormat":      "{{target}}",
		"tagKeys":         "kind,severity,target",
		"useValueForTime": false,
	}
}

// smokeQueries are the SmokePing bands: p10–p90 and p25–p75 filled around the
// median, from the RTT histogram's classic buckets.
func smokeQueries() []Q {
	var qs []Q
	for _, q := range []struct{ q, l string }{{"0.5", "median"}, {"0.1", "p10"}, {"0.25", "p25"}, {"0.75", "p75"}, {"0.9", "p90"}} {
		qs = append(qs, Q{Expr: `histogram_quantile(` + q.q + `, sum by (le) (rate(smokemon_ping_rtt_seconds_bucket{` + snt + `}[$__rate_interval])))`, Legend: q.l})
	}
	return qs
}

func smokeOverrides(p map[string]any) {
	fc := p["fieldConfig"].(map[string]any)
	band := func(name, below string, opacity int) map[string]any {
		return map[string]any{
			"matcher": map[string]any{"id": "byName", "options": name},
			"properties": []any{
				map[string]any{"id": "custom.fillBelowTo", "value": below},
				map[string]any{"id": "custom.fillOpacity", "value": opacity},
				map[string]any{"id": "custom.lineWidth", "value": 0},
				map[string]any{"id": "color", "value": map[string]any{"mode": "fixed", "fixedColor": "gray"}},
			},
		}
	}
	hide := func(name string) map[string]any {
		return map[string]any{
			"matcher": map[string]any{"id": "byName", "options": name},
			"properties": []any{
				map[string]any{"id": "custom.lineWidth", "value": 0},
				map[string]any{"id": "custom.hideFrom", "value": map[string]any{"legend": true, "tooltip": false, "viz": false}},
				map[string]any{"id": "color", "value": map[string]any{"mode": "fixed", "fixedColor": "gray"}},
			},
		}
	}
	median := map[string]any{
		"matcher": map[string]any{"id": "byName", "options": "median"},
		"properties": []any{
			map[string]any{"id": "custom.lineWidth", "value": 2},
			map[string]any{"id": "color", "value": map[string]any{"mode": "fixed", "fixedColor": "green"}},
		},
	}
	fc["overrides"] = []any{band("p90", "p10", 20), band("p75", "p25", 35), hide("p10"), hide("p25"), median}
}

func heatmap(p map[string]any) {
	p["options"] = map[string]any{
		"calculate": false,
		"yAxis":     map[string]any{"unit": p["fieldConfig"].(map[string]any)["defaults"].(map[string]any)["unit"]},
		"color":     map[string]any{"mode": "scheme", "scheme": "Oranges", "exponent": 0.5},
		"cellGap":   0,
		"tooltip":   map[string]any{"show": true, "yHistogram": true},
	}
}

func statusHistory(p map[string]any) {
	p["options"] = map[string]any{"showValue": "never", "rowHeight": 0.9, "colWidth": 0.95}
	p["fieldConfig"].(map[string]any)["defaults"].(map[string]any)["color"] = map[string]any{"mode": "continuous-GrYlRd"}
}

func tableSorted(by string) func(map[string]any) {
	return func(p map[string]any) {
		p["transformations"] = []any{
			map[string]any{"id": "merge", "options": map[string]any{}},
			map[string]any{"id": "organize", "options": map[string]any{"excludeByName": map[string]any{"Time": true}}},
			map[string]any{"id": "sortBy", "options": map[string]any{"sort": []any{map[string]any{"field": by, "desc": true}}}},
		}
	}
}

func statName(p map[string]any) {
	p["options"] = map[string]any{"textMode": "name", "colorMode": "background", "reduceOptions": map[string]any{"calcs": []any{"lastNotNull"}}}
}

func bargaugeAsc(p map[string]any) {
	p["options"] = map[string]any{"displayMode": "gradient", "orientation": "horizontal", "reduceOptions": map[string]any{"calcs": []any{"lastNotNull"}}}
	p["transformations"] = []any{map[string]any{"id": "sortBy", "options": map[string]any{"sort": []any{map[string]any{"field": "Value"}}}}}
}

// build lays panels out on Grafana's 24-column grid and numbers them.
func (b board) build() map[string]any {
	var panels []any
	x, y, rowH, id := 0, 0, 0, 1
	for _, p := range b.panels {
		if p.Type == "row" {
			if x > 0 {
				y += rowH
			}
			x, rowH = 0, 0
			panels = append(panels, map[string]any{"id": id, "type": "row", "title": p.Title, "collapsed": false,
				"gridPos": map[string]any{"x": 0, "y": y, "w": 24, "h": 1}, "panels": []any{}})
			id++
			y++
			continue
		}
		w, h := p.W, p.H
		if w == 0 {
			w = 12
		}
		if h == 0 {
			h = 8
		}
		if x+w > 24 {
			x, y = 0, y+rowH
			rowH = 0
		}
		var targets []any
		for i, q := range p.Queries {
			t := map[string]any{"refId": string(rune('A' + i)), "datasource": ds, "expr": q.Expr, "legendFormat": q.Legend,
				"range": !q.Instant, "instant": q.Instant}
			if q.Format != "" {
				t["format"] = q.Format
			}
			targets = append(targets, t)
		}
		defaults := map[string]any{"unit": p.Unit}
		if p.Min != nil {
			defaults["min"] = *p.Min
		}
		if p.Max != nil {
			defaults["max"] = *p.Max
		}
		if p.Type == "timeseries" {
			custom := map[string]any{"fillOpacity": 10, "showPoints": "never", "spanNulls": false}
			if p.Stack {
				custom["stacking"] = map[string]any{"mode": "normal"}
				custom["fillOpacity"] = 40
			}
			defaults["custom"] = custom
		}
		m := map[string]any{
			"id": id, "type": p.Type, "title": p.Title, "description": p.Desc, "datasource": ds,
			"gridPos":     map[string]any{"x": x, "y": y, "w": w, "h": h},
			"targets":     targets,
			"fieldConfig": map[string]any{"defaults": defaults, "overrides": []any{}},
		}
		if p.Repeat != "" {
			m["repeat"], m["repeatDirection"] = p.Repeat, "h"
			m["maxPerRow"] = 2
		}
		if p.Interval != "" {
			m["interval"] = p.Interval
		}
		if p.Extra != nil {
			p.Extra(m)
		}
		panels = append(panels, m)
		id++
		x += w
		rowH = max(rowH, h)
	}
	return map[string]any{
		"uid": b.uid, "title": b.title, "description": b.desc, "tags": append([]string{"smokemon"}, b.tags...),
		"schemaVersion": 39, "version": 1, "editable": true, "graphTooltip": 1, // shared crosshair: one time axis
		"time":        map[string]any{"from": "now-6h", "to": "now"},
		"refresh":     "1m",
		"timezone":    "browser",
		"templating":  map[string]any{"list": b.vars},
		"annotations": map[string]any{"list": append([]map[string]any{{"builtIn": 1, "datasource": map[string]any{"type": "grafana", "uid": "-- Grafana --"}, "enable": true, "hide": true, "name": "Annotations & Alerts", "type": "dashboard", "iconColor": "rgba(0, 211, 255, 1)"}}, b.annotations...)},
		"panels":      panels,
		"links":       []any{map[string]any{"title": "smokemon", "type": "dashboards", "tags": []any{"smokemon"}, "asDropdown": true, "includeVars": true, "keepTime": true}},
	}
}

// Dashboards returns every dashboard by file name.
func Dashboards() map[string]map[string]any {
	return map[string]map[string]any{
		"smokemon-node.json":      nodeBoard().build(),
		"smokemon-fleet.json":     fleetBoard().build(),
		"smokemon-path.json":      pathBoard().build(),
		"smokemon-incidents.json": incidentsBoard().build(),
	}
}

// Marshal renders a dashboard the way it is stored.
func Marshal(d map[string]any) ([]byte, error) {
	b, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

func hw(what string) string  { return " " + HardwareMarker + what + "." }
func evt(what string) string { return " " + EventMarker + what + "." }

func rate(m, sel string) string { return fmt.Sprintf("rate(%s{%s}[$__rate_interval])", m, sel) }

func nodeBoard() board {
	psi := func(r string) Q {
		return Q{Expr: "rate(smokemon_pressure_" + r + "_waiting_seconds_total{" + sn + "}[$__rate_interval])", Legend: r}
	}
	return board{
		uid: "smokemon-node", title: "smokemon / Node timeline", tags: []string{"node"},
		desc:        "Every signal of one node on one shared time axis: network quality, the path, services, the radio, the board and the exporter itself. Analyzer incidents are drawn as annotations.",
		vars:        []map[string]any{nodeVar(), targetVar()},
		annotations: []map[string]any{incidentAnnotation()},
		panels: []P{
			row("Latency and loss"),
			{Title: "Smoke: $target", Type: "timeseries", Unit: "s", Repeat: "target", Min: f(0), Queries: smokeQueries(), Extra: smokeOverrides,
				Desc: "Round-trip time of answered pings, SmokePing style: the green line is the median, the dark band holds the middle half of the pings (p25–p75), the light band 80% (p10–p90). A thin band is a steady line; a wide band is jitter (queues filling and draining); a band that jumps as a whole is a route or link change. Lost pings are not in it: see Packet loss."},
			{Title: "RTT distribution", Type: "heatmap", Unit: "s", Extra: heatmap,
				Queries: []Q{{Expr: `sum by (le) (increase(smokemon_ping_rtt_seconds_bucket{` + snt + `}[$__rate_interval]))`, Legend: "{{le}}", Format: "heatmap"}},
				Desc:    "Answered pings per RTT bucket over time (all selected targets). One bright stripe is a stable path; two stripes are two paths (load balancing, a flapping route); a smear upwards is queueing."},
			{Title: "Packet loss", Type: "timeseries", Unit: "percentunit", Min: f(0),
				Queries: []Q{{Expr: `sum by (target) (increase(smokemon_ping_lost_total{` + snt + `}[$__rate_interval])) / sum by (target) (increase(smokemon_ping_sent_total{` + snt + `}[$__rate_interval]))`, Legend: "{{target}}"}},
				Desc:    "Share of pings without a reply within the timeout, per target. Loss on every target at once is the node's own link; loss beyond the gateway only is the ISP (see the Path dashboard for the hop where it starts)."},
			row("Path"),
			{Title: "Loss per hop", Type: "timeseries", Unit: "percentunit", Min: f(0),
				Queries: []Q{{Expr: `1 - sum by (target, hop) (increase(smokemon_mtr_hop_received_total{` + sn + `}[$__rate_interval])) / sum by (target, hop) (increase(smokemon_mtr_hop_sent_total{` + sn + `}[$__rate_interval]))`, Legend: "{{target}} hop {{hop}}"}},
				Desc:    "mtr loss at each hop. Loss that starts at a hop and persists to the destination is real; loss at one hop only is that router rate-limiting ICMP and harmless."},
			{Title: "RTT per hop", Type: "timeseries", Unit: "s", Min: f(0),
				Queries: []Q{{Expr: `sum by (target, hop) (rate(smokemon_mtr_hop_rtt_seconds_total{` + sn + `}[$__rate_interval])) / sum by (target, hop) (rate(smokemon_mtr_hop_received_total{` + sn + `}[$__rate_interval]))`, Legend: "{{target}} hop {{hop}}"}},
				Desc:    "Mean mtr round-trip time to each hop. The hop where the lines jump apart is where the delay is added."},
			row("Services"),
			{Title: "DNS lookup time", Type: "timeseries", Unit: "s", Min: f(0),
				Queries: []Q{{Expr: `sum by (target, resolver) (rate(smokemon_dns_lookup_duration_seconds_sum{` + sn + `}[$__rate_interval])) / sum by (target, resolver) (rate(smokemon_dns_lookup_duration_seconds_count{` + sn + `}[$__rate_interval]))`, Legend: "{{target}} @ {{resolver}}"}},
				Desc:    "Mean time a resolver took to answer, per name and resolver. A slow resolver makes every page feel slow even on a fast link."},
			{Title: "HTTP phases", Type: "timeseries", Unit: "s", Stack: true, Min: f(0),
				Queries: []Q{{Expr: `sum by (phase) (rate(smokemon_http_phase_duration_seconds_sum{` + sn + `}[$__rate_interval])) / sum by (phase) (rate(smokemon_http_phase_duration_seconds_count{` + sn + `}[$__rate_interval]))`, Legend: "{{phase}}"}},
				Desc:    "Mean time per phase of the HTTP probes, stacked: resolve (DNS), connect (TCP), tls, processing (server think time), transfer. The phase that grows tells network from server trouble."},
			{Title: "Probe success", Type: "timeseries", Unit: "percentunit", Min: f(0), Max: f(1),
				Queries: []Q{
					{Expr: `avg by (target) (avg_over_time(smokemon_http_success{` + sn + `}[$__rate_interval]))`, Legend: "http {{target}}"},
					{Expr: `avg by (target) (avg_over_time(smokemon_dns_success{` + sn + `}[$__rate_interval]))`, Legend: "dns {{target}}"},
					{Expr: `avg by (target) (avg_over_time(smokemon_tcp_success{` + sn + `}[$__rate_interval]))`, Legend: "tcp {{target}}"},
				},
				Desc: "Share of HTTP, DNS and TCP probes that succeeded. Anything under 100% is a user-visible failure."},
			{Title: "TCP connect time", Type: "timeseries", Unit: "s", Min: f(0),
				Queries: []Q{{Expr: `sum by (target) (rate(smokemon_tcp_connect_duration_seconds_sum{` + sn + `}[$__rate_interval])) / sum by (target) (rate(smokemon_tcp_connect_duration_seconds_count{` + sn + `}[$__rate_interval]))`, Legend: "{{target}}"}},
				Desc:    "Mean TCP handshake time per target: one round trip plus the server's accept queue."},
			row("Bandwidth"),
			{Title: "Throughput", Type: "timeseries", Unit: "bps", Min: f(0),
				Queries: []Q{{Expr: `8 * max by (target, direction) (smokemon_bandwidth_bytes_per_second{` + sn + `})`, Legend: "{{target}} {{direction}}"}},
				Desc:    "Throughput of the latest iperf3 test per direction (it holds until the next test)."},
			{Title: "Latency under load (bufferbloat)", Type: "timeseries", Unit: "s", Min: f(0),
				Queries: []Q{{Expr: `max by (target, direction) (smokemon_bandwidth_latency_increase_seconds{` + sn + `,percentile="50"})`, Legend: "{{target}} {{direction}}"}},
				Desc:    "How much the median RTT rose while the link was saturated: the bufferbloat. Under 5 ms is A+, 30 ms A, 60 ms B, 200 ms C, 400 ms D, more F."},
			{Title: "Bufferbloat grade", Type: "stat", Unit: "none", W: 6, Extra: statName,
				Queries: []Q{{Expr: `max by (grade) (smokemon_bandwidth_bufferbloat_grade_info{` + sn + `})`, Legend: "{{grade}}", Instant: true}},
				Desc:    "Grade of the latest bandwidth test (worst direction, DSLReports bands)."},
			row("Wifi"),
			{Title: "Wifi signal", Type: "timeseries", Unit: "dBm",
				Queries: []Q{{Expr: `smokemon_wifi_signal_dbm{` + sn + `}`, Legend: "{{interface}}"}},
				Desc:    "Signal of the access point at the node. Above -60 dBm is good, below -75 dBm costs retries and bitrate." + hw("wifi")},
			{Title: "Wifi bitrate", Type: "timeseries", Unit: "bps", Min: f(0),
				Queries: []Q{
					{Expr: `smokemon_wifi_transmit_bitrate_bits_per_second{` + sn + `}`, Legend: "{{interface}} tx"},
					{Expr: `smokemon_wifi_receive_bitrate_bits_per_second{` + sn + `}`, Legend: "{{interface}} rx"},
				},
				Desc: "PHY bitrate of the last frames: falls with the signal and with interference." + hw("wifi")},
			{Title: "Wifi retries and failures", Type: "timeseries", Unit: "pps", Min: f(0),
				Queries: []Q{
					{Expr: rate("smokemon_wifi_transmit_retries_total", sn), Legend: "{{interface}} retries"},
					{Expr: rate("smokemon_wifi_transmit_failures_total", sn), Legend: "{{interface}} failures"},
					{Expr: rate("smokemon_wifi_beacon_loss_total", sn), Legend: "{{interface}} beacons lost"},
				},
				Desc: "Frames retried or given up per second, and beacons missed. Retries rising before loss appears are the radio struggling." + hw("wifi")},
			{Title: "Wifi roams", Type: "timeseries", Unit: "short", Min: f(0),
				Queries: []Q{{Expr: `increase(smokemon_wifi_roams_total{` + sn + `}[$__rate_interval])`, Legend: "{{interface}}"}},
				Desc:    "Access-point changes. Several in minutes is a roaming storm: two APs of similar signal fighting for the node." + hw("wifi")},
			row("System"),
			{Title: "TCP retransmits", Type: "timeseries", Unit: "percentunit", Min: f(0),
				Queries: []Q{{Expr: `sum(rate(smokemon_netstat_tcp_retransmitted_segments_total{` + sn + `}[$__rate_interval])) / sum(rate(smokemon_netstat_tcp_sent_segments_total{` + sn + `}[$__rate_interval]))`, Legend: "retransmitted"}},
				Desc:    "Share of the node's TCP segments sent again: loss as the node's own connections feel it."},
			{Title: "Pressure (PSI)", Type: "timeseries", Unit: "percentunit", Min: f(0),
				Queries: []Q{psi("cpu"), psi("memory"), psi("io")},
				Desc:    "Share of time some task waited for CPU, memory or IO. Probes that wait measure the node, not the network: check here before blaming the ISP."},
			{Title: "CPU", Type: "timeseries", Unit: "percentunit", Stack: true, Min: f(0),
				Queries: []Q{{Expr: `sum by (mode) (rate(smokemon_cpu_seconds_total{` + sn + `,mode!="idle"}[$__rate_interval])) / scalar(max(smokemon_cpu_online{` + sn + `}))`, Legend: "{{mode}}"}},
				Desc:    "CPU time by mode as a share of all CPUs."},
			{Title: "CPU frequency", Type: "timeseries", Unit: "hertz", Min: f(0),
				Queries: []Q{
					{Expr: `avg(smokemon_cpu_frequency_hertz{` + sn + `})`, Legend: "average"},
					{Expr: `max(smokemon_cpu_frequency_max_hertz{` + sn + `})`, Legend: "maximum"},
				},
				Desc: "Average current CPU clock against the highest it supports. Running below the maximum while busy means capping or throttling." + hw("cpufreq")},
			{Title: "Throttling", Type: "timeseries", Unit: "short", Min: f(0),
				Queries: []Q{
					{Expr: `smokemon_rpi_throttle_condition{` + sn + `,when="now"}`, Legend: "{{condition}}"},
					{Expr: `sum(increase(smokemon_cpu_core_throttles_total{` + sn + `}[$__rate_interval]))`, Legend: "x86 core throttle events"},
				},
				Desc: "Raspberry Pi firmware flags now (1 = under-voltage, capped, throttled, soft temperature limit) and x86 thermal throttle events." + hw("rpi, x86 thermal_throttle")},
			{Title: "Temperature", Type: "timeseries", Unit: "celsius",
				Queries: []Q{
					{Expr: `smokemon_thermal_zone_temperature_celsius{` + sn + `}`, Legend: "{{type}}"},
					{Expr: `min by (type) (smokemon_thermal_zone_trip_point_celsius{` + sn + `,trip_type="passive"})`, Legend: "{{type}} throttles at"},
				},
				Desc: "Thermal zones and the passive trip point where the kernel starts throttling." + hw("thermal zones")},
			{Title: "Power rails", Type: "timeseries", Unit: "watt", Min: f(0),
				Queries: []Q{{Expr: `smokemon_power_rail_watts{` + sn + `}`, Legend: "{{rail}}"}},
				Desc:    "Power per board rail (Jetson INA3221). A rail well above its usual level is a runaway load." + hw("jetson")},
			{Title: "Battery", Type: "timeseries", Unit: "percentunit", Min: f(0), Max: f(1),
				Queries: []Q{{Expr: `smokemon_power_supply_capacity_ratio{` + sn + `}`, Legend: "{{supply}}"}},
				Desc:    "Battery charge." + hw("battery")},
			{Title: "GPU", Type: "timeseries", Unit: "percentunit", Min: f(0), Max: f(1),
				Queries: []Q{{Expr: `smokemon_gpu_load_ratio{` + sn + `}`, Legend: "load"}},
				Desc:    "Jetson GPU busy share." + hw("jetson")},
			{Title: "Memory", Type: "timeseries", Unit: "bytes", Min: f(0),
				Queries: []Q{
					{Expr: `smokemon_memory_total_bytes{` + sn + `} - smokemon_memory_available_bytes{` + sn + `}`, Legend: "used"},
					{Expr: `smokemon_memory_page_cache_bytes{` + sn + `}`, Legend: "page cache"},
					{Expr: `smokemon_memory_swap_used_bytes{` + sn + `}`, Legend: "swap used"},
					{Expr: `smokemon_memory_total_bytes{` + sn + `}`, Legend: "total"},
				},
				Desc: "Memory in use (total minus available), page cache and swap."},
			{Title: "Disk use", Type: "timeseries", Unit: "percentunit", Min: f(0), Max: f(1),
				Queries: []Q{{Expr: `1 - smokemon_disk_filesystem_available_bytes{` + sn + `} / smokemon_disk_filesystem_size_bytes{` + sn + `}`, Legend: "{{mountpoint}}"}},
				Desc:    "Share of each filesystem in use."},
			{Title: "Disk writes", Type: "timeseries", Unit: "Bps", Min: f(0),
				Queries: []Q{
					{Expr: rate("smokemon_disk_written_bytes_total", sn), Legend: "{{device}} write"},
					{Expr: rate("smokemon_disk_read_bytes_total", sn), Legend: "{{device}} read"},
				},
				Desc: "Bytes written and read per second. Writes are what wear out SD cards and eMMC."},
			{Title: "Flash wear", Type: "timeseries", Unit: "percentunit", Min: f(0), Max: f(1),
				Queries: []Q{{Expr: `smokemon_emmc_life_time_used_ratio{` + sn + `}`, Legend: "{{device}} type {{type}}"}},
				Desc:    "eMMC estimated life used, in the device's 10% steps." + hw("eMMC")},
			{Title: "Network traffic", Type: "timeseries", Unit: "bps",
				Queries: []Q{
					{Expr: `8 * rate(smokemon_network_receive_bytes_total{` + sn + `}[$__rate_interval])`, Legend: "{{device}} in"},
					{Expr: `-8 * rate(smokemon_network_transmit_bytes_total{` + sn + `}[$__rate_interval])`, Legend: "{{device}} out"},
				},
				Desc: "Traffic per interface (out drawn below zero). A busy link explains latency that rises with it."},
			{Title: "Conntrack", Type: "timeseries", Unit: "percentunit", Min: f(0), Max: f(1),
				Queries: []Q{{Expr: `smokemon_netstat_conntrack_entries{` + sn + `} / smokemon_netstat_conntrack_entries_limit{` + sn + `}`, Legend: "table fill"}},
				Desc:    "Fill of the connection-tracking table; when full, new connections are dropped." + hw("nf_conntrack loaded")},
			row("The exporter itself"),
			{Title: "Exporter memory", Type: "timeseries", Unit: "bytes", Min: f(0),
				Queries: []Q{
					{Expr: `process_resident_memory_bytes{job="smokemon",` + sn + `}`, Legend: "resident memory"},
				},
				Desc: "Resident memory of smokemon_exporter: it should stay flat (a few tens of MB)."},
			{Title: "Exporter CPU", Type: "timeseries", Unit: "percentunit", Min: f(0),
				Queries: []Q{{Expr: `rate(process_cpu_seconds_total{job="smokemon",` + sn + `}[$__rate_interval])`, Legend: "CPU"}},
				Desc:    "CPU the exporter uses, as a share of one core: its cost on the node."},
			{Title: "Collector time", Type: "timeseries", Unit: "s", Min: f(0),
				Queries: []Q{{Expr: `smokemon_scrape_collector_duration_seconds{` + sn + `}`, Legend: "{{collector}}"}},
				Desc:    "Time each collector took in the latest scrape. Probes run in the background, so these stay in milliseconds."},
			{Title: "Collector failures", Type: "timeseries", Unit: "short", Min: f(0),
				Queries: []Q{{Expr: `1 - smokemon_scrape_collector_success{` + sn + `}`, Legend: "{{collector}}"}},
				Desc:    "1 while a collector fails (its metrics are missing from that scrape). The exporter's log says why."},
		},
	}
}

func fleetBoard() board {
	return board{
		uid: "smokemon-fleet", title: "smokemon / Fleet", tags: []string{"fleet"},
		desc: "All nodes at once: who is worst now, when loss and latency happened, and who stays up.",
		panels: []P{
			{Title: "Nodes up", Type: "stat", Unit: "short", W: 4, H: 4,
				Queries: []Q{{Expr: `fleet:smokemon_nodes_up:count`, Legend: "up", Instant: true}, {Expr: `fleet:smokemon_nodes:count`, Legend: "known", Instant: true}},
				Desc:    "Nodes whose exporter answers its scrapes, of all nodes Prometheus knows."},
			{Title: "Healthy nodes", Type: "stat", Unit: "short", W: 4, H: 4,
				Queries: []Q{{Expr: `fleet:smokemon_nodes_healthy:count`, Legend: "healthy", Instant: true}},
				Desc:    "Nodes with no loss over 2%, CPU, memory and disk under 90%, and an answering exporter."},
			{Title: "Fleet averages", Type: "stat", Unit: "percentunit", W: 8, H: 4,
				Queries: []Q{
					{Expr: `fleet:smokemon_cpu_busy:avg_ratio`, Legend: "CPU", Instant: true},
					{Expr: `fleet:smokemon_memory_used:avg_ratio`, Legend: "memory", Instant: true},
					{Expr: `fleet:smokemon_disk_used:avg_ratio`, Legend: "flash", Instant: true},
				},
				Desc: "Average CPU busy, memory used and flash (filesystem) used over the nodes."},
			{Title: "Worst loss", Type: "stat", Unit: "percentunit", W: 4, H: 4,
				Queries: []Q{{Expr: `fleet:smokemon_ping_loss:worst_ratio_5m`, Legend: "{{node}} → {{target}}", Instant: true}},
				Desc:    "The worst target of the fleet over the last 5 minutes, and whose it is."},
			{Title: "Weakest wifi", Type: "stat", Unit: "dBm", W: 4, H: 4,
				Queries: []Q{{Expr: `fleet:smokemon_wifi_signal_dbm:weakest`, Legend: "{{node}}", Instant: true}},
				Desc:    "The node with the weakest access-point signal." + hw("wifi")},
			{Title: "Nodes, worst first", Type: "table", Unit: "none", W: 24, H: 10, Extra: tableSorted("Value #A"),
				Queries: []Q{
					{Expr: `node:smokemon_ping_loss:max_ratio_5m`, Format: "table", Instant: true},
					{Expr: `node:smokemon_ping_rtt_seconds:max_median_5m`, Format: "table", Instant: true},
					{Expr: `node:smokemon_health:level`, Format: "table", Instant: true},
					{Expr: `node:smokemon_cpu_busy:ratio_5m`, Format: "table", Instant: true},
					{Expr: `node:smokemon_memory_used:ratio`, Format: "table", Instant: true},
					{Expr: `node:smokemon_disk_used:max_ratio`, Format: "table", Instant: true},
				},
				Desc: "One row per node, worst loss first: loss of its worst target (5m), worst median RTT, health (0 ok, 1 degraded, 2 down), CPU, memory and disk use."},
			{Title: "Loss by node and hour", Type: "status-history", Unit: "percentunit", W: 24, H: 10, Interval: "1h", Extra: statusHistory,
				Queries: []Q{{Expr: `max by (node) (max_over_time(node:smokemon_ping_loss:max_ratio_5m[$__interval]))`, Legend: "{{node}}"}},
				Desc:    "Worst 5-minute loss of each node in each hour: a row per node, a cell per hour. A column lit across many nodes is a shared upstream; a row lit every evening is a congested line."},
			{Title: "Latency by node and hour", Type: "status-history", Unit: "s", W: 24, H: 10, Interval: "1h", Extra: statusHistory,
				Queries: []Q{{Expr: `max by (node) (max_over_time(node:smokemon_ping_rtt_seconds:max_median_5m[$__interval]))`, Legend: "{{node}}"}},
				Desc:    "Worst median RTT of each node in each hour."},
			{Title: "Uptime ranking", Type: "bargauge", Unit: "percentunit", Min: f(0), Max: f(1), Extra: bargaugeAsc,
				Queries: []Q{{Expr: `avg_over_time(node:smokemon_up:max[$__range])`, Legend: "{{node}}", Instant: true}},
				Desc:    "Share of the time range each exporter answered, least first."},
			{Title: "Loss-free time ranking", Type: "bargauge", Unit: "percentunit", Min: f(0), Max: f(1), Extra: bargaugeAsc,
				Queries: []Q{{Expr: `avg_over_time((node:smokemon_ping_loss:max_ratio_5m < bool 0.02)[$__range:$__interval])`, Legend: "{{node}}", Instant: true}},
				Desc:    "Share of the time range in which every target of the node lost under 2%, least first."},
		},
	}
}

func pathBoard() board {
	const s = `node=~"$node",target=~"$target"`
	return board{
		uid: "smokemon-path", title: "smokemon / Path", tags: []string{"path"},
		desc:        "The route to one target hop by hop (mtr): where loss and delay start, and when the route changed.",
		vars:        []map[string]any{nodeVar(), hopTargetVar()},
		annotations: []map[string]any{incidentAnnotation()},
		panels: []P{
			{Title: "Hops now", Type: "table", Unit: "none", W: 8, H: 10,
				Queries: []Q{{Expr: `max by (hop, ip) (smokemon_mtr_hop_info{` + s + `})`, Format: "table", Instant: true}},
				Desc:    "The address that last answered at each hop."},
			{Title: "Loss per hop", Type: "timeseries", Unit: "percentunit", W: 16, H: 10, Min: f(0),
				Queries: []Q{{Expr: `1 - sum by (hop) (increase(smokemon_mtr_hop_received_total{` + s + `}[$__rate_interval])) / sum by (hop) (increase(smokemon_mtr_hop_sent_total{` + s + `}[$__rate_interval]))`, Legend: "hop {{hop}}"}},
				Desc:    "Loss at each hop. Real loss starts at one hop and persists to the destination; loss at a single middle hop is ICMP rate limiting."},
			{Title: "RTT per hop", Type: "timeseries", Unit: "s", W: 12, Min: f(0),
				Queries: []Q{{Expr: `sum by (hop) (rate(smokemon_mtr_hop_rtt_seconds_total{` + s + `}[$__rate_interval])) / sum by (hop) (rate(smokemon_mtr_hop_received_total{` + s + `}[$__rate_interval]))`, Legend: "hop {{hop}}"}},
				Desc:    "Mean round-trip time to each hop. The first hop whose line rises with the destination's is where delay is added."},
			{Title: "Latest round", Type: "timeseries", Unit: "s", W: 12, Min: f(0),
				Queries: []Q{
					{Expr: `max by (hop) (smokemon_mtr_hop_rtt_max_seconds{` + s + `})`, Legend: "hop {{hop}} max"},
					{Expr: `min by (hop) (smokemon_mtr_hop_rtt_min_seconds{` + s + `})`, Legend: "hop {{hop}} min"},
				},
				Desc: "Fastest and slowest answer of each hop in the latest round: a wide gap is jitter at that hop."},
			{Title: "Route changes", Type: "timeseries", Unit: "short", W: 12, Min: f(0),
				Queries: []Q{
					{Expr: `sum(increase(smokemon_mtr_path_changes_total{` + s + `}[$__rate_interval]))`, Legend: "changes"},
					{Expr: `max(smokemon_mtr_hops{` + s + `})`, Legend: "hops"},
				},
				Desc: "Rounds in which the hop count or a hop's address changed, and the hop count. Changes that coincide with a latency step explain it."},
			{Title: "Destination reached", Type: "timeseries", Unit: "bool", W: 12, Min: f(0), Max: f(1),
				Queries: []Q{{Expr: `max(smokemon_mtr_destination_reached{` + s + `})`, Legend: "reached"}},
				Desc:    "1 if the destination answered in the latest round."},
			{Title: "Where problems start (analyzer)", Type: "timeseries", Unit: "short", W: 12, Min: f(0),
				Queries: []Q{{Expr: `smokemon_analyzer_path_origin_hop{` + s + `}`, Legend: "{{problem}} from hop"}},
				Desc:    "The hop from which loss or added latency persists to the destination, as the analyzer finds it." + evt("loss or latency reaches the destination")},
			{Title: "Rate-limiting hops (analyzer)", Type: "table", Unit: "none", W: 12,
				Queries: []Q{{Expr: `smokemon_analyzer_path_rate_limited_hop_info{` + s + `}`, Format: "table", Instant: true}},
				Desc:    "Hops whose loss does not persist: ICMP rate limiting, never to blame." + evt("a router rate-limits ICMP")},
		},
	}
}

func incidentsBoard() board {
	return board{
		uid: "smokemon-incidents", title: "smokemon / Incidents", tags: []string{"incidents"},
		desc:        "The analyzer's incidents: what is wrong now, what was, and which signal moved most (blame).",
		vars:        []map[string]any{nodeVar()},
		annotations: []map[string]any{incidentAnnotation()},
		panels: []P{
			{Title: "Node health", Type: "table", Unit: "none", W: 12, H: 8,
				Queries: []Q{{Expr: `max by (node, health) (smokemon_analyzer_node_health_info{` + sn + `})`, Format: "table", Instant: true}},
				Desc:    "The analyzer's verdict per node: ok, degraded, down or blind (no data to judge)."},
			{Title: "Active incidents per node", Type: "timeseries", Unit: "short", W: 12, H: 8, Min: f(0),
				Queries: []Q{{Expr: `smokemon_analyzer_node_active_incidents{` + sn + `}`, Legend: "{{node}}"}},
				Desc:    "How many incidents are open on each node over time."},
			{Title: "Active incidents", Type: "table", Unit: "dateTimeAsIso", W: 24, H: 8,
				Queries: []Q{{Expr: `smokemon_analyzer_incident_start_timestamp_seconds{` + sn + `} * 1000 and on (node, target, kind, severity) smokemon_analyzer_incident_active == 1`, Format: "table", Instant: true}},
				Desc:    "Open incidents: node, target, kind, severity and when each began." + evt("an incident is open")},
			{Title: "Blame", Type: "table", Unit: "none", W: 24, H: 8,
				Queries: []Q{{Expr: `smokemon_analyzer_blame_score{` + sn + `}`, Format: "table", Instant: true}},
				Desc:    "For each open incident, the node signals ranked by how far they moved (robust z-score of the incident window against the one before). Rank 1 is the first suspect: wifi signal moving with loss points at the radio, PSI at the node itself." + evt("an incident is open")},
			{Title: "Recent incidents", Type: "table", Unit: "dateTimeAsIso", W: 24, H: 8,
				Queries: []Q{
					{Expr: `max by (node, target, kind, severity) (max_over_time(smokemon_analyzer_incident_start_timestamp_seconds{` + sn + `}[$__range])) * 1000`, Format: "table", Instant: true},
					{Expr: `max by (node, target, kind, severity) (max_over_time(smokemon_analyzer_incident_end_timestamp_seconds{` + sn + `}[$__range])) * 1000`, Format: "table", Instant: true},
				},
				Desc: "Incidents of the time range with their start (A) and end (B); an empty end is still open." + evt("an incident happened in the range")},
			{Title: "Anomaly score", Type: "timeseries", Unit: "short", W: 12, Min: f(0),
				Queries: []Q{{Expr: `smokemon_analyzer_anomaly_score{` + sn + `}`, Legend: "{{node}} {{target}}"}},
				Desc:    "How far latency or loss sits from its time-of-day normal, in robust standard deviations. Above 3 is unusual; never a page by itself." + evt("the analyzer has a baseline of the target")},
			{Title: "Call quality (MOS)", Type: "timeseries", Unit: "none", W: 12, Min: f(1), Max: f(4.5),
				Queries: []Q{{Expr: `smokemon_analyzer_mos{` + sn + `}`, Legend: "{{node}} {{target}}"}},
				Desc:    "Mean opinion score of a voice call over each path (E-model): above 4 is good, under 3.6 people complain."},
			{Title: "Time to limits", Type: "table", Unit: "s", W: 12,
				Queries: []Q{{Expr: `smokemon_analyzer_seconds_until{` + sn + `} < 1e12`, Format: "table", Instant: true}},
				Desc:    "Time until a node reaches a hard limit at its present trend (disk full, flash worn out, thermal trip, battery empty); absent when not heading there." + evt("a node trends towards a limit")},
			{Title: "Analyzer", Type: "timeseries", Unit: "s", W: 12, Min: f(0),
				Queries: []Q{
					{Expr: `smokemon_analyzer_cycle_duration_seconds`, Legend: "cycle time"},
					{Expr: `time() - smokemon_analyzer_last_success_timestamp_seconds`, Legend: "since last success"},
				},
				Desc: "The analyzer's cycle time and the age of its last successful cycle: a growing age means it is blind."},
		},
	}
}

// Markers returns the hardware and event notes of a panel description.
func Markers(desc string) (hardware, event string) {
	if i := strings.Index(desc, HardwareMarker); i >= 0 {
		hardware = strings.TrimSuffix(desc[i+len(HardwareMarker):], ".")
	}
	if i := strings.Index(desc, EventMarker); i >= 0 {
		event = strings.TrimSuffix(desc[i+len(EventMarker):], ".")
	}
	return
}
