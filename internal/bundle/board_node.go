package bundle

import "slices"

// The per-node dashboard: every signal of one node on one time axis.

const meshOnly = "nodes with mesh peers"

// portalText names the captive-portal states instead of 0 and 1.
func portalText(p map[string]any) {
	p["fieldConfig"].(map[string]any)["defaults"].(map[string]any)["mappings"] = []any{map[string]any{
		"type": "value",
		"options": map[string]any{
			"0": map[string]any{"text": "none", "index": 0},
			"1": map[string]any{"text": "portal", "index": 1},
		},
	}}
}

func nodeBoard() board {
	return board{
		uid: "smokemon-node", title: "smokemon / Node timeline", tags: []string{"node"},
		desc:        "Every signal of one node on one shared time axis: network quality, the path, services, the radio, the board and the exporter itself. Analyzer incidents are drawn as annotations.",
		vars:        []map[string]any{nodeVar(), targetVar()},
		annotations: []map[string]any{incidentAnnotation()},
		panels: slices.Concat(
			nodeLatencyPanels(),
			nodePathPanels(),
			nodeServicePanels(),
			nodeBandwidthPanels(),
			nodeMeshPanels(),
			nodeSyntheticPanels(),
			nodeWifiPanels(),
			nodeSystemPanels(),
			nodeExporterPanels(),
		),
	}
}

func nodeLatencyPanels() []P {
	return []P{
		row("Latency and loss"),
		{Title: "Smoke: $target", Type: "timeseries", Unit: "s", Repeat: "target", Min: f(0), Queries: smokeQueries(), Extra: smokeOverrides,
			Desc: "Round-trip time of answered pings, SmokePing style: the green line is the median, the dark band holds the middle half of the pings (p25–p75), the light band 80% (p10–p90). A thin band is a steady line; a wide band is jitter (queues filling and draining); a band that jumps as a whole is a route or link change. Lost pings are not in it: see Packet loss."},
		{Title: "RTT distribution", Type: "heatmap", Unit: "s", Extra: heatmap,
			Queries: []Q{{Expr: `sum by (le) (increase(smokemon_ping_rtt_seconds_bucket{` + snt + `}[$__rate_interval]))`, Legend: "{{le}}", Format: "heatmap"}},
			Desc:    "Answered pings per RTT bucket over time (all selected targets). One bright stripe is a stable path; two stripes are two paths (load balancing, a flapping route); a smear upwards is queueing."},
		{Title: "Packet loss", Type: "timeseries", Unit: "percentunit", Min: f(0),
			Queries: []Q{{Expr: `sum by (target) (increase(smokemon_ping_lost_total{` + snt + `}[$__rate_interval])) / sum by (target) (increase(smokemon_ping_sent_total{` + snt + `}[$__rate_interval]))`, Legend: "{{target}}"}},
			Desc:    "Share of pings without a reply within the timeout, per target. Loss on every target at once is the node's own link; loss beyond the gateway only is the ISP (see the Path dashboard for the hop where it starts)."},
	}
}

func nodePathPanels() []P {
	return []P{
		row("Path"),
		{Title: "Loss per hop", Type: "timeseries", Unit: "percentunit", Min: f(0),
			Queries: []Q{{Expr: `1 - sum by (target, hop) (increase(smokemon_mtr_hop_received_total{` + sn + `}[$__rate_interval])) / sum by (target, hop) (increase(smokemon_mtr_hop_sent_total{` + sn + `}[$__rate_interval]))`, Legend: "{{target}} hop {{hop}}"}},
			Desc:    "mtr loss at each hop. Loss that starts at a hop and persists to the destination is real; loss at one hop only is that router rate-limiting ICMP and harmless."},
		{Title: "RTT per hop", Type: "timeseries", Unit: "s", Min: f(0),
			Queries: []Q{{Expr: `sum by (target, hop) (rate(smokemon_mtr_hop_rtt_seconds_total{` + sn + `}[$__rate_interval])) / sum by (target, hop) (rate(smokemon_mtr_hop_received_total{` + sn + `}[$__rate_interval]))`, Legend: "{{target}} hop {{hop}}"}},
			Desc:    "Mean mtr round-trip time to each hop. The hop where the lines jump apart is where the delay is added."},
	}
}

func nodeServicePanels() []P {
	return []P{
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
		{Title: "Certificate expiry", Type: "stat", Unit: "s", Extra: stat("value_and_name"),
			Steps:   steps("red", 3*86400.0, "orange", 14*86400.0, "green"),
			Queries: []Q{{Expr: `min by (target) (smokemon_http_tls_cert_expiry_timestamp_seconds{` + sn + `}) - time()`, Legend: "{{target}}", Instant: true}},
			Desc:    "Time until the earliest-expiring certificate of each HTTPS target expires: orange under 14 days, red under 3 (the expiry alerts)." + hw("HTTPS targets")},
		{Title: "TCP connect time", Type: "timeseries", Unit: "s", Min: f(0),
			Queries: []Q{{Expr: `sum by (target) (rate(smokemon_tcp_connect_duration_seconds_sum{` + sn + `}[$__rate_interval])) / sum by (target) (rate(smokemon_tcp_connect_duration_seconds_count{` + sn + `}[$__rate_interval]))`, Legend: "{{target}}"}},
			Desc:    "Mean TCP handshake time per target: one round trip plus the server's accept queue."},
	}
}

func nodeBandwidthPanels() []P {
	return []P{
		row("Bandwidth"),
		{Title: "Throughput", Type: "timeseries", Unit: "bps", Min: f(0),
			Queries: []Q{{Expr: `8 * max by (target, direction) (smokemon_bandwidth_bytes_per_second{` + sn + `})`, Legend: "{{target}} {{direction}}"}},
			Desc:    "Throughput of the latest iperf3 test per direction (it holds until the next test)."},
		{Title: "Latency under load (bufferbloat)", Type: "timeseries", Unit: "s", Min: f(0),
			Queries: []Q{{Expr: `max by (target, direction) (smokemon_bandwidth_latency_increase_seconds{` + sn + `,percentile="50"})`, Legend: "{{target}} {{direction}}"}},
			Desc:    "How much the median RTT rose while the link was saturated: the bufferbloat. Under 5 ms is A+, 30 ms A, 60 ms B, 200 ms C, 400 ms D, more F."},
		// The grade is the exporter's (its bands are configurable); its
		// colour comes from the latency increase behind it, in the
		// default DSLReports bands.
		{Title: "Bufferbloat grade", Type: "stat", Unit: "s", W: 6, Extra: stat("name"),
			Steps:   steps("dark-green", 0.005, "green", 0.03, "yellow", 0.06, "orange", 0.2, "red", 0.4, "dark-red"),
			Queries: []Q{{Expr: `max by (grade) (smokemon_bandwidth_bufferbloat_grade_info{` + sn + `} * on (node, target) group_left max by (node, target) (smokemon_bandwidth_latency_increase_seconds{` + sn + `,percentile="50"}))`, Legend: "{{grade}}", Instant: true}},
			Desc:    "Grade of the latest bandwidth test (worst direction), coloured by the median latency increase behind it: dark green A+ (under 5 ms), green A (30 ms), yellow B (60 ms), orange C (200 ms), red D (400 ms), dark red F."},
	}
}

func nodeMeshPanels() []P {
	return []P{
		row("Mesh"),
		{Title: "Mesh loss", Type: "timeseries", Unit: "percentunit", Min: f(0),
			Queries: []Q{{Expr: `sum by (peer, direction) (increase(smokemon_mesh_lost_total{` + sn + `}[$__rate_interval])) / on (peer) group_left sum by (peer) (increase(smokemon_mesh_sent_total{` + sn + `}[$__rate_interval]))`, Legend: "{{peer}} {{direction}}"}},
			Desc:    "Share of the mesh probes to each peer lost, by the direction they were lost in: forward on the way to the peer, return on the way back, unknown when no later reply could tell." + hw(meshOnly)},
		{Title: "Mesh RTT", Type: "timeseries", Unit: "s", Min: f(0),
			Queries: []Q{{Expr: `histogram_quantile(0.5, sum by (peer, protocol, le) (rate(smokemon_mesh_rtt_seconds_bucket{` + sn + `}[$__rate_interval])))`, Legend: "{{peer}} {{protocol}}"}},
			Desc:    "Median round-trip time to each peer's responder per protocol, without the responder's turnaround. UDP and TCP apart: a path that treats them differently shows here." + hw(meshOnly)},
		{Title: "One-way delay", Type: "timeseries", Unit: "s", Min: f(0),
			Queries: []Q{{Expr: `histogram_quantile(0.5, sum by (peer, direction, le) (rate(smokemon_mesh_one_way_delay_seconds_bucket{` + sn + `}[$__rate_interval]))) and on (peer) max by (peer) (smokemon_mesh_clock_trustworthy{` + sn + `}) == 1`, Legend: "{{peer}} {{direction}}"}},
			Desc:    "Median one-way delay per direction (forward: to the peer, return: back), drawn only while the two clocks are trustworthy. One direction rising alone is a queue on that side of the path." + hw(meshOnly)},
		{Title: "Clock offset to peers", Type: "timeseries", Unit: "s",
			Queries: []Q{
				{Expr: `smokemon_mesh_clock_offset_seconds{` + sn + `}`, Legend: "{{peer}} offset"},
				{Expr: `smokemon_mesh_clock_offset_uncertainty_seconds{` + sn + `}`, Legend: "{{peer}} ± uncertainty"},
			},
			Desc: "How far each peer's clock is from this node's, and how tightly the probes pin it down. One-way delays are only as good as this." + hw(meshOnly)},
	}
}

func nodeSyntheticPanels() []P {
	return []P{
		row("Synthetic"),
		{Title: "Captive portal", Type: "stat", Unit: "none", W: 6, Extra: both(stat("value_and_name"), portalText),
			Steps:   steps("green", 1.0, "red"),
			Queries: []Q{{Expr: `max by (target) (smokemon_synthetic_captive_portal_detected{` + sn + `})`, Legend: "{{target}}", Instant: true}},
			Desc:    "Whether the latest captive-portal check got its expected answer (green) or was redirected or answered otherwise: a portal intercepts the node's traffic (red)." + hw("captive-portal checks configured")},
		{Title: "DNS over HTTPS", Type: "timeseries", Unit: "s", W: 9, Min: f(0),
			Queries: []Q{{Expr: `sum by (target) (rate(smokemon_synthetic_doh_lookup_duration_seconds_sum{` + sn + `}[$__rate_interval])) / sum by (target) (rate(smokemon_synthetic_doh_lookup_duration_seconds_count{` + sn + `}[$__rate_interval]))`, Legend: "{{target}}"}},
			Desc:    "Mean time of a DNS-over-HTTPS lookup on a fresh connection (lookup of the server's name, connect, TLS, query). Compare with plain DNS above: the difference is the price of privacy." + hw("DoH targets configured")},
		{Title: "Synthetic success", Type: "timeseries", Unit: "percentunit", W: 9, Min: f(0), Max: f(1),
			Queries: []Q{
				{Expr: `avg by (target) (avg_over_time(smokemon_synthetic_doh_success{` + sn + `}[$__rate_interval]))`, Legend: "doh {{target}}"},
				{Expr: `avg by (target) (avg_over_time(smokemon_synthetic_captive_portal_check_success{` + sn + `}[$__rate_interval]))`, Legend: "portal check {{target}}"},
			},
			Desc: "Share of DoH lookups that got a NOERROR answer and of captive-portal checks that got any HTTP answer." + hw("synthetic checks configured")},
	}
}

func nodeWifiPanels() []P {
	return []P{
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
	}
}

func nodeSystemPanels() []P {
	psi := func(r string) Q {
		return Q{Expr: "rate(smokemon_pressure_" + r + "_waiting_seconds_total{" + sn + "}[$__rate_interval])", Legend: r}
	}
	return []P{
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
	}
}

func nodeExporterPanels() []P {
	return []P{
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
	}
}
