// Package bundle generates smokemon's Grafana dashboards and tests the whole
// deployable bundle (prometheus/, alertmanager/, grafana/, docker-compose.yml)
// with the real tools: promtool, amtool, docker-compose, and a real
// Prometheus scraping the real exporter and analyzer.
//
// The dashboards under grafana/dashboards/ are generated from this package
// (dashboards.go, panel_options.go and the boards in board_*.go):
//
//	go test ./internal/bundle -run TestDashboardsUpToDate -update
package bundle

import (
	"encoding/json"
	"fmt"
	"strings"
)

// DatasourceUID is the uid of the provisioned Prometheus datasource
// (grafana/provisioning/datasources/smokemon.yml), the default one there.
const DatasourceUID = "smokemon-prometheus"

// DatasourceRef is what every panel, query, variable and annotation names:
// the dashboard's `datasource` variable, so a dashboard imported into any
// Grafana works with whichever Prometheus-compatible source is picked.
const DatasourceRef = "${datasource}"

// Markers in a panel description that the query test reads. Users read them too.
const (
	// HardwareMarker: the panel's series exist only on some boards; the test
	// checks its queries against the hardware fixtures' metrics.
	HardwareMarker = "Only on: "
	// EventMarker: the panel is empty until something happens (an incident).
	EventMarker = "Empty until: "
)

var ds = map[string]any{"type": "prometheus", "uid": DatasourceRef}

// datasourceVar is the picker every board starts with. It defaults to
// Grafana's default datasource (the provisioned one is), not to an import
// input: file provisioning leaves ${DS_…} unreplaced and the panels broken.
func datasourceVar() map[string]any {
	return map[string]any{
		"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus",
		"current": map[string]any{"selected": false, "text": "default", "value": "default"},
		"hide":    0, "refresh": 1, "regex": "", "includeAll": false, "multi": false,
		"description": "Prometheus or a Prometheus-compatible API (VictoriaMetrics, Thanos, Mimir) holding the smokemon series and recording rules.",
	}
}

// inputs is the "export for sharing externally" header the grafana.com
// import flow reads to ask for a datasource.
var inputs = []any{map[string]any{
	"name": "DS_PROMETHEUS", "label": "Prometheus", "type": "datasource", "pluginId": "prometheus", "pluginName": "Prometheus",
	"description": "Prometheus (or compatible) with smokemon's recording rules loaded",
}}

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
	// Steps are the thresholds, lowest first: what is good and what is bad
	// (stat, gauge and bargauge colour by them). The first has no value.
	Steps []Step
}

// Step is one threshold: Color from Value up.
type Step struct {
	Color string
	Value *float64
}

// steps builds thresholds from a base colour and (value, colour) pairs.
func steps(base string, bounds ...any) []Step {
	out := []Step{{Color: base}}
	for i := 0; i+1 < len(bounds); i += 2 {
		out = append(out, Step{Color: bounds[i+1].(string), Value: f(bounds[i].(float64))})
	}
	return out
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

func tableSorted(by string) func(map[string]any) {
	return func(p map[string]any) {
		p["transformations"] = []any{
			map[string]any{"id": "merge", "options": map[string]any{}},
			map[string]any{"id": "organize", "options": map[string]any{"excludeByName": map[string]any{"Time": true}}},
			map[string]any{"id": "sortBy", "options": map[string]any{"sort": []any{map[string]any{"field": by, "desc": true}}}},
		}
	}
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
		if len(p.Steps) > 0 {
			var st []any
			for _, s := range p.Steps {
				var v any // the base step's value is null
				if s.Value != nil {
					v = *s.Value
				}
				st = append(st, map[string]any{"color": s.Color, "value": v})
			}
			defaults["thresholds"] = map[string]any{"mode": "absolute", "steps": st}
			defaults["color"] = map[string]any{"mode": "thresholds"}
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
		"schemaVersion": 41, "version": 1, "editable": true, "graphTooltip": 1, // shared crosshair: one time axis
		"time":        map[string]any{"from": "now-6h", "to": "now"},
		"refresh":     "1m",
		"timezone":    "browser",
		"templating":  map[string]any{"list": append([]map[string]any{datasourceVar()}, b.vars...)},
		"__inputs":    inputs,
		"annotations": map[string]any{"list": append([]map[string]any{{"builtIn": 1, "datasource": map[string]any{"type": "grafana", "uid": "-- Grafana --"}, "enable": true, "hide": true, "name": "Annotations & Alerts", "type": "dashboard", "iconColor": "rgba(0, 211, 255, 1)"}}, b.annotations...)},
		"panels":      panels,
		"links": []any{map[string]any{"title": "smokemon", "type": "dashboards", "tags": []any{"smokemon"}, "asDropdown": true, "includeVars": true, "keepTime": true,
			"icon": "external link", "tooltip": "", "targetBlank": false}},
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
