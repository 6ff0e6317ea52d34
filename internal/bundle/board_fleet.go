package bundle

// The fleet, path and incident dashboards.

// countStat shows a count of nodes beside the rest of the fleet, and is
// judged by the rest: one node missing is bad whatever the fleet's size
// (a count of 80 must not turn red); the count itself is there for scale.
func countStat(title, count, name, restName, bad, desc string) P {
	return P{Title: title, Type: "stat", Unit: "short", W: 4, H: 4, Steps: steps("green", 1.0, bad),
		Extra: both(stat("value_and_name"), override(name, "color", fixedColor("text"))),
		Queries: []Q{
			{Expr: count, Legend: name, Instant: true},
			{Expr: "fleet:smokemon_nodes:count - " + count, Legend: restName, Instant: true},
		},
		Desc: desc}
}

func fleetBoard() board {
	return board{
		uid: "smokemon-fleet", title: "smokemon / Fleet", tags: []string{"fleet"},
		desc: "All nodes at once: who is worst now, when loss and latency happened, and who stays up.",
		panels: []P{
			countStat("Nodes up", "fleet:smokemon_nodes_up:count", "up", "down", "red",
				"Nodes whose exporter answers its scrapes, and those of all nodes Prometheus knows that do not: red from one down."),
			countStat("Healthy nodes", "fleet:smokemon_nodes_healthy:count", "healthy", "not healthy", "orange",
				"Nodes with no loss over 2%, CPU, memory and disk under 90%, and an answering exporter, and the others: orange from one."),
			{Title: "Fleet averages", Type: "stat", Unit: "percentunit", W: 8, H: 4, Steps: steps("green", 0.7, "orange", 0.9, "red"), Extra: stat("value_and_name"),
				Queries: []Q{
					{Expr: `fleet:smokemon_cpu_busy:avg_ratio`, Legend: "CPU", Instant: true},
					{Expr: `fleet:smokemon_memory_used:avg_ratio`, Legend: "memory", Instant: true},
					{Expr: `fleet:smokemon_disk_used:avg_ratio`, Legend: "flash", Instant: true},
				},
				Desc: "Average CPU busy, memory used and flash (filesystem) used over the nodes: orange from 70%, red from 90% (where a node counts as unhealthy)."},
			{Title: "Worst loss", Type: "stat", Unit: "percentunit", W: 4, H: 4, Steps: steps("green", 0.005, "orange", 0.02, "red"), Extra: stat("value_and_name"),
				Queries: []Q{{Expr: `fleet:smokemon_ping_loss:worst_ratio_5m`, Legend: "{{node}} → {{target}}", Instant: true}},
				Desc:    "The worst target of the fleet over the last 5 minutes, and whose it is: orange from 0.5%, red from 2% (SmokemonPacketLoss's 5-minute bound)."},
			{Title: "Weakest wifi", Type: "stat", Unit: "dBm", W: 4, H: 4, Steps: steps("red", -75.0, "orange", -60.0, "green"), Extra: stat("value_and_name"),
				Queries: []Q{{Expr: `fleet:smokemon_wifi_signal_dbm:weakest`, Legend: "{{node}}", Instant: true}},
				Desc:    "The node with the weakest access-point signal: green above -60 dBm, red below -75 dBm (SmokemonWeakWifi)." + hw("wifi")},
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
				Steps:   steps("green", 0.005, "orange", 0.02, "red"),
				Queries: []Q{{Expr: `max by (node) (max_over_time(node:smokemon_ping_loss:max_ratio_5m[$__interval]))`, Legend: "{{node}}"}},
				Desc:    "Worst 5-minute loss of each node in each hour: a row per node, a cell per hour. A column lit across many nodes is a shared upstream; a row lit every evening is a congested line."},
			{Title: "Latency by node and hour", Type: "status-history", Unit: "s", W: 24, H: 10, Interval: "1h", Extra: statusHistory,
				Queries: []Q{{Expr: `max by (node) (max_over_time(node:smokemon_ping_rtt_seconds:max_median_5m[$__interval]))`, Legend: "{{node}}"}},
				Desc:    "Worst median RTT of each node in each hour."},
			{Title: "Uptime ranking", Type: "bargauge", Unit: "percentunit", Min: f(0), Max: f(1), Extra: bargaugeAsc,
				Steps:   steps("red", 0.99, "orange", 0.999, "green"),
				Queries: []Q{{Expr: `avg_over_time(node:smokemon_up:max[$__range])`, Legend: "{{node}}", Instant: true}},
				Desc:    "Share of the time range each exporter answered, least first: green from 99.9%, red under 99%."},
			{Title: "Loss-free time ranking", Type: "bargauge", Unit: "percentunit", Min: f(0), Max: f(1), Extra: bargaugeAsc,
				Steps:   steps("red", 0.95, "orange", 0.99, "green"),
				Queries: []Q{{Expr: `avg_over_time((node:smokemon_ping_loss:max_ratio_5m < bool 0.02)[$__range:$__interval])`, Legend: "{{node}}", Instant: true}},
				Desc:    "Share of the time range in which every target of the node lost under 2%, least first: green from 99%, red under 95%."},
			{Title: "Mesh pairs, worst first", Type: "table", Unit: "percentunit", W: 24, H: 8, Extra: both(tableSorted("Value #A"), override("Value #B", "unit", "s")),
				Queries: []Q{
					{Expr: `node_peer:smokemon_mesh_loss:ratio_5m`, Format: "table", Instant: true},
					{Expr: `histogram_quantile(0.5, sum by (node, peer, le) (rate(smokemon_mesh_rtt_seconds_bucket[5m])))`, Format: "table", Instant: true},
				},
				Desc: "Every node-to-node pair of the mesh, worst loss first: loss of the last 5 minutes (A) and median RTT (B). A node that loses to every peer is the problem itself; a peer every node loses to is the other end." + hw("nodes with mesh peers")},
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
			{Title: "Fleet incidents", Type: "table", Unit: "dateTimeAsIso", W: 12, H: 6,
				Queries: []Q{{Expr: `max by (scope, key) (smokemon_analyzer_fleet_incident_start_timestamp_seconds * 1000 and on (scope, key) smokemon_analyzer_fleet_incident_active == 1)`, Format: "table", Instant: true}},
				Desc:    "Incidents of several nodes at once grouped by what they share (scope: gateway, hop beyond the gateway, destination or site; key: which one), with when the earliest began: the fault is most likely at that shared place." + evt("several nodes fail together")},
			{Title: "Fleet incident members", Type: "table", Unit: "none", W: 12, H: 6,
				Queries: []Q{{Expr: `max by (scope, key, node) (smokemon_analyzer_fleet_incident_member_info{` + sn + `})`, Format: "table", Instant: true}},
				Desc:    "The nodes in each fleet incident; their own loss, latency and outage alerts are silenced while it lasts." + evt("several nodes fail together")},
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
