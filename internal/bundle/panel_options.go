package bundle

// Panel options, complete as the dashboard schema has them (the schema test
// decodes them strictly): Grafana fills in what is missing when it loads a
// dashboard, but an import or a provisioning diff should not depend on that.

var (
	legendHide = map[string]any{"displayMode": "hidden", "placement": "bottom", "showLegend": false, "calcs": []any{}}
	tooltip    = map[string]any{"mode": "multi", "sort": "desc"}
	lastValue  = map[string]any{"calcs": []any{"lastNotNull"}, "fields": "", "values": false}
)

func heatmap(p map[string]any) {
	p["options"] = map[string]any{
		"calculate": false,
		"yAxis":     map[string]any{"unit": p["fieldConfig"].(map[string]any)["defaults"].(map[string]any)["unit"]},
		"color":     map[string]any{"mode": "scheme", "scheme": "Oranges", "fill": "dark-orange", "exponent": 0.5, "steps": 64, "reverse": false},
		"cellGap":   0,
		"showValue": "never",
		"legend":    map[string]any{"show": true},
		"tooltip":   map[string]any{"mode": "single", "yHistogram": true, "showColorScale": false},
		"exemplars": map[string]any{"color": "rgba(255,0,255,0.7)"},
	}
}

func statusHistory(p map[string]any) {
	p["options"] = map[string]any{"showValue": "never", "rowHeight": 0.9, "colWidth": 0.95, "legend": legendHide, "tooltip": tooltip}
	defaults := p["fieldConfig"].(map[string]any)["defaults"].(map[string]any)
	if defaults["thresholds"] == nil {
		defaults["color"] = map[string]any{"mode": "continuous-GrYlRd"}
	}
}

// stat shows one big value per series, coloured by the panel's thresholds.
func stat(textMode string) func(map[string]any) {
	return func(p map[string]any) {
		p["options"] = map[string]any{
			"textMode": textMode, "colorMode": "background", "graphMode": "none", "justifyMode": "auto",
			"orientation": "auto", "wideLayout": true, "showPercentChange": false, "percentChangeColorMode": "standard",
			"reduceOptions": lastValue,
		}
	}
}

// override sets one property of one series or table column, e.g. a fixed
// colour for a count shown for scale beside the figure the thresholds
// judge, or the unit of a column unlike the panel's.
func override(name, property string, value any) func(map[string]any) {
	return func(p map[string]any) {
		fc := p["fieldConfig"].(map[string]any)
		fc["overrides"] = append(fc["overrides"].([]any), map[string]any{
			"matcher":    map[string]any{"id": "byName", "options": name},
			"properties": []any{map[string]any{"id": property, "value": value}},
		})
	}
}

func fixedColor(c string) map[string]any { return map[string]any{"mode": "fixed", "fixedColor": c} }

func both(fs ...func(map[string]any)) func(map[string]any) {
	return func(p map[string]any) {
		for _, f := range fs {
			f(p)
		}
	}
}

func bargaugeAsc(p map[string]any) {
	p["options"] = map[string]any{
		"displayMode": "gradient", "orientation": "horizontal", "valueMode": "color", "namePlacement": "auto",
		"showUnfilled": true, "sizing": "auto", "minVizWidth": 8, "minVizHeight": 16, "maxVizHeight": 300,
		"legend": legendHide, "reduceOptions": lastValue,
	}
	p["transformations"] = []any{map[string]any{"id": "sortBy", "options": map[string]any{"sort": []any{map[string]any{"field": "Value"}}}}}
}
