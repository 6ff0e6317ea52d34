package analyzer

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"reflect"
	"sort"
	"strings"
	"time"
)

// The people's side: one-line status, incident history and a plain-English digest.

var sparks = []rune("▁▂▃▄▅▆▇█")

// Sparkline draws a series; gaps are spaces.
func Sparkline(v []float64, width int) string {
	if len(v) == 0 {
		return ""
	}
	// Bucket the series down to width points by their medians.
	pts := make([]float64, 0, width)
	for i := range width {
		a, b := i*len(v)/width, (i+1)*len(v)/width
		if b <= a {
			continue
		}
		pts = append(pts, median(v[a:b]))
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, p := range pts {
		if !math.IsNaN(p) {
			lo, hi = math.Min(lo, p), math.Max(hi, p)
		}
	}
	var b strings.Builder
	for _, p := range pts {
		switch {
		case math.IsNaN(p):
			b.WriteRune(' ')
		case hi == lo:
			b.WriteRune(sparks[0])
		default:
			b.WriteRune(sparks[int((p-lo)/(hi-lo)*float64(len(sparks)-1)+0.5)])
		}
	}
	return b.String()
}

func spanWords(d time.Duration) string {
	if d >= time.Hour && d%time.Hour == 0 {
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return d.Round(time.Minute).String()
}

// StatusLines renders one line per node. Loss and RTT are medians of the
// last Recent (the engine's long window), said so on the line.
func StatusLines(s *Snapshot) []string {
	var out []string
	for _, n := range s.Nodes {
		line := fmt.Sprintf("%-20s %-8s", n.Node, n.Health)
		if n.WorstTarget != "" {
			rtt := "rtt n/a"
			if v := tailMedian(n.Spark, 4); !math.IsNaN(v) {
				rtt = fmt.Sprintf("rtt %6.1f ms", 1000*v)
			} else if n.RTTMissing {
				rtt = "rtt n/a (no RTT series)"
			}
			line += fmt.Sprintf(" worst %-16s loss %5.1f%% %s (median of the last %s) %s", n.WorstTarget, 100*n.WorstLoss, rtt,
				spanWords(s.Recent), Sparkline(n.Spark, 24))
		}
		if n.Incidents > 0 {
			line += fmt.Sprintf("  %d incident(s)", n.Incidents)
		}
		out = append(out, line)
	}
	return out
}

func tailMedian(v []float64, k int) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	return median(v[max(0, len(v)-k):])
}

// causes says what a signal's harmful move means; blame holds only moves
// in that direction (see harmful), so "more" is always the cause.
var causes = []struct{ prefix, cause string }{
	{"wifi_", "wifi"}, {"cpu_busy", "CPU load"}, {"psi_cpu", "CPU load"}, {"process_starts", "a burst of new processes"},
	{"psi_memory", "memory pressure"}, {"memory_used", "memory pressure"}, {"oom_kills", "out-of-memory kills"},
	{"psi_io", "disk IO"}, {"network_receive", "this node's own download"}, {"network_transmit", "this node's own upload"},
	{"conntrack_fill", "a full conntrack table"}, {"thermal_throttle", "heat"}, {"temperature", "heat"},
	{"under_voltage", "the power supply"},
}

var signalWords = map[string]string{
	"cpu_busy": "CPU use", "psi_cpu": "CPU pressure", "psi_memory": "memory pressure", "psi_io": "IO pressure",
	"memory_used": "memory use", "oom_kills": "OOM kills", "wifi_signal": "wifi signal", "wifi_retries": "wifi retries",
	"wifi_roams": "wifi roams", "tcp_retransmits": "TCP retransmits", "conntrack_fill": "conntrack fill",
	"network_receive": "download on", "network_transmit": "upload on", "thermal_throttle": "throttling",
	"under_voltage": "under-voltage", "temperature": "temperature", "process_starts": "process starts",
}

// Human formats a value of a unit the way a person reads it.
func Human(v float64, unit string) string {
	switch unit {
	case "B/s":
		switch a := math.Abs(v); {
		case a >= 1e6:
			return fmt.Sprintf("%.1f MB/s", v/1e6)
		case a >= 1e3:
			return fmt.Sprintf("%.1f kB/s", v/1e3)
		}
		return fmt.Sprintf("%.0f B/s", v)
	case "ratio", "loss_ratio", "gateway_loss_ratio":
		return fmt.Sprintf("%.0f%%", 100*v)
	case "seconds", "rtt_seconds":
		return fmt.Sprintf("%.0f ms", 1000*v)
	case "dBm", "dbm":
		return fmt.Sprintf("%.0f dBm", v)
	case "°C":
		return fmt.Sprintf("%.0f °C", v)
	}
	return fmt.Sprintf("%.3g %s", v, unit)
}

func describeBlame(b Blame) string {
	base, dev, _ := strings.Cut(b.Signal, ":")
	w := signalWords[base]
	if w == "" {
		w = base
	}
	if dev != "" {
		w += " " + dev
	}
	verb := "rose"
	if b.During < b.Before {
		verb = "fell"
	}
	switch {
	case b.Unit == "bool":
		if b.During > b.Before {
			return w + " began"
		}
		return w + " stopped"
	case b.Unit != "ratio" && b.Before > 0 && b.During/b.Before >= 10:
		return fmt.Sprintf("%s %s %.0f× (%s to %s)", w, verb, b.During/b.Before, Human(b.Before, b.Unit), Human(b.During, b.Unit))
	}
	return fmt.Sprintf("%s %s from %s to %s", w, verb, Human(b.Before, b.Unit), Human(b.During, b.Unit))
}

// Sentence tells one incident in plain English.
func Sentence(in Incident, loc *time.Location) string {
	hm := func(t time.Time) string { return t.In(loc).Format("15:04") }
	when := "since " + hm(in.Start)
	if !in.Active {
		when = fmt.Sprintf("between %s and %s", hm(in.Start), hm(in.End))
		if in.SupersededBy != "" {
			when += ", then absorbed by the " + supersederKind(in.SupersededBy)
		}
	}
	var what string
	switch in.Kind {
	case KindPacketLoss:
		what = fmt.Sprintf("%s lost %.0f%% to %s %s (median; peak %.0f%%)", in.Node, 100*in.Level, in.Target, when, 100*in.Peak)
		if in.OriginHop > 0 {
			what += fmt.Sprintf(" (loss starts at hop %d)", in.OriginHop)
		}
	case KindLatencySpike:
		what = fmt.Sprintf("%s saw latency to %s rise from %.0f to %.0f ms (median; peak %.0f ms) %s", in.Node, in.Target, 1000*in.Before, 1000*in.Level, 1000*in.Peak, when)
	case KindLinkDown:
		what = fmt.Sprintf("%s lost its local link or gateway %s", in.Node, when)
	case KindISPOutage:
		what = fmt.Sprintf("%s could reach its gateway but nothing beyond it %s (ISP outage)", in.Node, when)
	case KindDNSSlow:
		what = fmt.Sprintf("%s had slow DNS from %s (up to %.0f ms) %s", in.Node, in.Target, 1000*in.Peak, when)
	case KindWifiDegraded:
		what = fmt.Sprintf("%s had poor wifi (down to %.0f dBm) %s", in.Node, in.Peak, when)
	case KindBufferbloat:
		what = fmt.Sprintf("%s showed bufferbloat (+%.0f ms under load) %s", in.Node, 1000*in.Peak, when)
	default:
		what = fmt.Sprintf("%s had %s %s", in.Node, in.Kind, when)
	}
	if in.NoLocalCause {
		switch {
		case in.OriginHop > 0:
			what += fmt.Sprintf("; no local cause found — the problem is on the path (hop %d)", in.OriginHop)
		case in.Kind == KindLinkDown:
			what += "; no local cause found — the link or the gateway"
		default:
			what += "; no local cause found — the problem is beyond the node"
		}
	}
	if len(in.Blame) > 0 {
		var parts []string
		for _, b := range in.Blame[:min(2, len(in.Blame))] {
			parts = append(parts, describeBlame(b))
		}
		what += "; " + strings.Join(parts, " and ")
		for _, c := range causes {
			if strings.HasPrefix(in.Blame[0].Signal, c.prefix) {
				what += " — likely " + c.cause
				break
			}
		}
	}
	return what
}

// Digest summarises a window's incidents, worst first.
func Digest(s *Snapshot, loc *time.Location) string {
	var b strings.Builder
	incs := append([]Incident(nil), s.Incidents...)
	sev := map[string]int{"critical": 0, "warning": 1, "info": 2}
	sort.SliceStable(incs, func(i, j int) bool {
		if sev[incs[i].Severity] != sev[incs[j].Severity] {
			return sev[incs[i].Severity] < sev[incs[j].Severity]
		}
		return incs[i].Start.Before(incs[j].Start)
	})
	healthy := 0
	for _, n := range s.Nodes {
		if n.Health == "ok" {
			healthy++
		}
	}
	active := 0
	for _, in := range incs {
		if in.Active {
			active++
		}
	}
	fmt.Fprintf(&b, "smokemon digest %s – %s (%s): %d of %d nodes healthy now, %d incident(s), %d active.\n",
		s.Grid.Start.In(loc).Format("Jan 2 15:04"), s.Time.In(loc).Format("Jan 2 15:04"), spanWords(s.Time.Sub(s.Grid.Start)),
		healthy, len(s.Nodes), len(incs), active)
	if s.Blind {
		b.WriteString("Some data was missing: figures for those nodes are held, not fresh.\n")
	}
	for _, f := range s.Fleet {
		b.WriteString("- Fleet: " + FleetSentence(f, loc) + ".\n")
	}
	for _, in := range incs {
		b.WriteString("- " + Sentence(in, loc) + ".\n")
	}
	return b.String()
}

// Notify posts text to an ntfy topic URL or a Slack incoming webhook. kind
// "auto" picks Slack for hooks.slack.com URLs.
func Notify(ctx context.Context, client *http.Client, url, kind, title, text string) error {
	if kind == "auto" {
		kind = "ntfy"
		if strings.Contains(url, "hooks.slack.com") {
			kind = "slack"
		}
	}
	var req *http.Request
	var err error
	switch kind {
	case "slack":
		body, _ := json.Marshal(map[string]string{"text": "*" + title + "*\n" + text})
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
		if err == nil {
			req.Header.Set("Content-Type", "application/json")
		}
	case "ntfy":
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(text))
		if err == nil {
			req.Header.Set("Title", title)
			req.Header.Set("Tags", "chart_with_downwards_trend")
		}
	default:
		return fmt.Errorf("unknown notification kind %q (ntfy, slack, auto)", kind)
	}
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s answered %s", kind, resp.Status)
	}
	return nil
}

// JSONValue converts v (structs, slices, maps of them) into plain values
// with NaN and ±Inf as null, which encoding/json refuses to write.
func JSONValue(v any) any { return jsonValue(reflect.ValueOf(v)) }

func jsonValue(v reflect.Value) any {
	switch v.Kind() {
	case reflect.Invalid:
		return nil
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return nil
		}
		return jsonValue(v.Elem())
	case reflect.Float32, reflect.Float64:
		f := v.Float()
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return nil
		}
		return f
	case reflect.Slice, reflect.Array:
		out := make([]any, v.Len())
		for i := range out {
			out[i] = jsonValue(v.Index(i))
		}
		return out
	case reflect.Map:
		out := map[string]any{}
		for _, k := range v.MapKeys() {
			out[fmt.Sprint(k.Interface())] = jsonValue(v.MapIndex(k))
		}
		return out
	case reflect.Struct:
		if t, ok := v.Interface().(time.Time); ok {
			if t.IsZero() {
				return nil
			}
			return t.UTC().Format(time.RFC3339)
		}
		if d, ok := v.Interface().(time.Duration); ok {
			return d.Seconds()
		}
		out := map[string]any{}
		t := v.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "-" {
				continue
			}
			if name == "" {
				name = f.Name
			}
			fv := v.Field(i)
			if strings.Contains(opts, "omit") && fv.IsZero() {
				continue
			}
			out[name] = jsonValue(fv)
		}
		return out
	}
	if d, ok := v.Interface().(time.Duration); ok {
		return d.Seconds()
	}
	return v.Interface()
}

// State is an incident's state in one word: ACTIVE, resolved or superseded.
func State(in Incident) string {
	switch {
	case in.Active:
		return "ACTIVE"
	case in.SupersededBy != "":
		return "superseded"
	}
	return "resolved"
}
