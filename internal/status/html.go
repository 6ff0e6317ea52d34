package status

import (
	"fmt"
	"html/template"
	"io"
	"math"
	"strconv"
	"strings"
)

// HTML writes the report as a self-contained page (no external assets) that
// reloads itself every refresh seconds, with a latency and loss chart per target.
func HTML(w io.Writer, r *Report, refresh int) error {
	return page.Execute(w, struct {
		*Report
		Refresh int
	}{r, refresh})
}

const chartW, chartH, lossH = 240, 44, 16

var page = template.Must(template.New("status").Funcs(template.FuncMap{
	"pct":   func(n Num) string { return pct(float64(n)) },
	"ms":    func(n Num) string { return ms(float64(n)) },
	"label": label,
	"host":  func(name string) string { return strings.TrimSpace(hostLabel[name]) },
	"chart": chart,
	"when":  func(r *Report, e Event) string { return e.Time.In(r.Time.Location()).Format("15:04:05") },
}).Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="refresh" content="{{.Refresh}}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>smokemon · {{.Node}}</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:1em 2em;color:#222;background:#fafafa}
h1{font-size:1.3em;margin:0 0 .2em} .sub{color:#666;margin-bottom:1em}
table{border-collapse:collapse;background:#fff} th,td{padding:3px 8px;border-bottom:1px solid #e4e4e4;text-align:right;white-space:nowrap}
th{font-weight:600;color:#555} td.name,th.name{text-align:left} td.chart{padding:2px 8px}
.state{font-weight:600;padding:1px 6px;border-radius:3px;color:#fff}
.up{background:#2e7d32}.lossy{background:#ef6c00}.down{background:#c62828}.unprobed,.waiting{background:#777}
.bad{color:#c62828;font-weight:600} .path{color:#555;text-align:left;font-size:.9em}
ul.host{list-style:none;padding:0;display:flex;flex-wrap:wrap;gap:.4em 1.2em} ul.host li.bad::after{content:" ⚠"}
.events td{text-align:left} svg .band{fill:#90caf9} svg .med{fill:none;stroke:#1565c0;stroke-width:1.5} svg .loss{fill:#e53935} svg .grid{stroke:#ddd}
</style></head><body data-generated="{{.Time.UnixNano}}">
<h1>smokemon · {{.Node}}</h1>
<div class="sub">{{.Time.Format "2006-01-02 15:04:05 MST"}} · refreshes every {{.Refresh}} s · {{.SlotSeconds}} s per chart column, 15 minutes kept in the exporter's memory</div>
<table id="targets">
<tr><th class="name">target</th><th>state</th><th>loss 1m</th><th>5m</th><th>15m</th><th>RTT median</th><th>p90</th><th>max (5m)</th><th class="name">last 15 min: RTT median–p90, loss in red (√ scale)</th></tr>
{{range .Targets}}<tr class="target" data-state="{{.State}}">
<td class="name">{{label .Name .Family}}</td><td><span class="state {{.State}}">{{.State}}</span></td>
<td>{{pct .Loss1m}}</td><td>{{pct .Loss5m}}</td><td>{{pct .Loss15m}}</td>
<td>{{ms .RTTMedian}}</td><td>{{ms .RTTP90}}</td><td>{{ms .RTTMax}}</td>
<td class="chart">{{chart .Slots}}</td></tr>
{{with .Path}}<tr class="pathrow"><td></td><td class="path" colspan="8">mtr: {{.Describe}}</td></tr>{{end}}
{{else}}<tr><td colspan="9">no ping targets</td></tr>{{end}}
</table>
<h2>host</h2>
<ul class="host" id="host">{{range .Host}}<li class="{{if .Bad}}bad{{end}}" data-name="{{.Name}}">{{host .Name}} {{.Text}}</li>{{else}}<li>no figures yet</li>{{end}}</ul>
<h2>events</h2>
<table class="events" id="events">{{range .Events}}<tr><td>{{when $.Report .}}</td><td>{{.Kind}}</td><td>{{.Target}}</td><td>{{.Text}}</td></tr>{{else}}<tr><td>none since the exporter started</td></tr>{{end}}</table>
</body></html>
`))

// Describe is the path in one line, as the text report has it.
func (p *PathReport) Describe() string { return p.describe() }

// chart draws a target's slots: a band from the median to the 90th
// percentile RTT on a scale from 0 to the highest p90 shown, and below it a
// bar per slot for its loss (its height the square root of the ratio).
func chart(slots []Slot) template.HTML {
	top := 0.0
	for _, s := range slots {
		if v := float64(s.P90); !math.IsNaN(v) {
			top = math.Max(top, v)
		}
	}
	top *= 1.1
	dx := float64(chartW) / float64(max(len(slots), 1))
	y := func(v float64) float64 { return float64(chartH) - v/top*float64(chartH) }
	b := make([]byte, 0, 2048)
	b = fmt.Appendf(b, `<svg class="chart" width="%d" height="%d" viewBox="0 0 %[1]d %[2]d" role="img">`, chartW, chartH+lossH+2)
	b = fmt.Appendf(b, `<title>RTT 0–%s</title><line class="grid" x1="0" y1="%d" x2="%d" y2="%[2]d"/>`, ms(top), chartH, chartW)
	// One band per run of slots with an RTT, so that gaps stay gaps.
	run := -1
	flush := func(end int) {
		if run < 0 {
			return
		}
		// Steps: each slot's figures span its column, so that a lone slot shows too.
		b = append(b, `<polygon class="band" points="`...)
		for i := run; i < end; i++ {
			b = point(b, float64(i)*dx, y(float64(slots[i].P90)))
			b = point(b, float64(i+1)*dx, y(float64(slots[i].P90)))
		}
		for i := end - 1; i >= run; i-- {
			b = point(b, float64(i+1)*dx, y(float64(slots[i].Median)))
			b = point(b, float64(i)*dx, y(float64(slots[i].Median)))
		}
		b = append(b, `"/><polyline class="med" points="`...)
		for i := run; i < end; i++ {
			b = point(b, float64(i)*dx, y(float64(slots[i].Median)))
			b = point(b, float64(i+1)*dx, y(float64(slots[i].Median)))
		}
		b = append(b, `"/>`...)
		run = -1
	}
	for i, s := range slots {
		if math.IsNaN(float64(s.Median)) || math.IsNaN(float64(s.P90)) || top == 0 {
			flush(i)
		} else if run < 0 {
			run = i
		}
	}
	flush(len(slots))
	for i, s := range slots {
		if s.Sent > 0 && s.Lost > 0 {
			// Square root: a few lost probes show, and 20% stands well above them.
			h := math.Max(1, float64(lossH)*math.Sqrt(float64(s.Lost)/float64(s.Sent)))
			b = fmt.Appendf(b, `<rect class="loss" x="%.1f" y="%.1f" width="%.1f" height="%.1f"><title>%d of %d lost</title></rect>`,
				float64(i)*dx, float64(chartH+lossH+2)-h, dx-1, h, s.Lost, s.Sent)
		}
	}
	b = append(b, `</svg>`...)
	return template.HTML(b)
}

// point appends "x,y " in whole pixels, enough for a chart this small.
func point(b []byte, x, y float64) []byte {
	b = strconv.AppendInt(b, int64(math.Round(x)), 10)
	b = append(b, ',')
	b = strconv.AppendInt(b, int64(math.Round(y)), 10)
	return append(b, ' ')
}
