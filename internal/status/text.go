package status

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"strings"
	"time"
	"unicode/utf8"
)

// Width is the most columns a line of the text report takes.
const Width = 100

// TextEvents is how many events the text report lists.
const TextEvents = 12

var bars = []rune("▁▂▃▄▅▆▇█")

// Text writes the report for a terminal: a table of targets, the host
// figures and the last events, no line over Width columns.
func Text(out io.Writer, r *Report) error {
	w := bufio.NewWriter(out)
	loc := r.Time.Location()
	fmt.Fprintf(w, "smokemon status of %s at %s\n\n", clip(r.Node, 60), r.Time.Format("2006-01-02 15:04:05 MST"))
	fmt.Fprintf(w, "%-16s %-8s %5s %5s %5s  %6s %6s %6s  %s\n", "TARGET", "STATE", "1m", "5m", "15m", "median", "p90", "max",
		"last 15 min: RTT, ! loss, x down")
	fmt.Fprintf(w, "%-16s %-8s %17s  %20s\n", "", "", "loss", "RTT over 5 min")
	for i := range r.Targets {
		t := &r.Targets[i]
		fmt.Fprintf(w, "%-16s %-8s %5s %5s %5s  %6s %6s %6s  %s\n", clip(label(t.Name, t.Family), 16), t.State,
			pct(float64(t.Loss1m)), pct(float64(t.Loss5m)), pct(float64(t.Loss15m)),
			ms(float64(t.RTTMedian)), ms(float64(t.RTTP90)), ms(float64(t.RTTMax)), Sparkline(t.Slots))
		if p := t.Path; p != nil {
			fmt.Fprintf(w, "  mtr: %s\n", clip(p.describe(), Width-7))
		}
	}
	if len(r.Targets) == 0 {
		fmt.Fprintln(w, "(no ping targets)")
	}
	fmt.Fprintln(w)
	line := "host:"
	for _, f := range r.Host {
		item := " " + hostLabel[f.Name] + f.Text
		if f.Bad {
			item += "(!)"
		}
		if utf8.RuneCountInString(line)+utf8.RuneCountInString(item) > Width {
			fmt.Fprintln(w, line)
			line = "     "
		}
		line += item
	}
	if len(r.Host) == 0 {
		line += " no figures yet"
	}
	fmt.Fprintln(w, line)
	fmt.Fprintln(w)
	if len(r.Events) == 0 {
		fmt.Fprintln(w, "events: none since the exporter started")
	} else {
		fmt.Fprintln(w, "events, newest first:")
	}
	for i, e := range r.Events {
		if i == TextEvents {
			break
		}
		when := e.Time.In(loc).Format("15:04:05")
		if r.Time.Sub(e.Time) > 20*time.Hour {
			when = e.Time.In(loc).Format("Jan 2 ") + when[:5]
		}
		text := e.Text
		if e.Target != "" && e.Kind != EventRoam {
			text = e.Target + ": " + text
		}
		fmt.Fprintf(w, "  %-8s  %-13s %s\n", when, e.Kind, clip(text, Width-26))
	}
	return w.Flush()
}

var hostLabel = map[string]string{
	"cpu": "cpu ", "memory": "mem ", "psi_cpu": "psi cpu ", "psi_memory": "psi mem ", "psi_io": "psi io ",
	"temperature": "temp ", "throttled": "throttled ", "under_voltage": "under-voltage ", "wifi_signal": "wifi ",
	"wifi_roams": "roams ", "conntrack": "conntrack ",
}

func (p *PathReport) describe() string {
	s := fmt.Sprintf("%d hops", p.Hops)
	if !p.Reached {
		s += ", destination not reached"
	}
	switch {
	case p.LossOrigin > 0:
		s += fmt.Sprintf(", loss starts at hop %d", p.LossOrigin)
		if p.OriginAddr != "" {
			s += " (" + p.OriginAddr + ")"
		}
		s += ": " + pct(float64(p.OriginLoss)) + " there, " + pct(float64(p.DestLoss)) + " at the destination"
	case !math.IsNaN(float64(p.DestLoss)):
		s += ", no loss that persists to the destination"
	}
	return s
}

// Sparkline draws one character per slot: a bar for the median RTT, scaled
// from the lowest median shown to the highest (at least twice it, so that
// jitter of a few microseconds on a LAN stays flat), "!"
// for a slot losing over LossBurst, "x" for one losing all, " " without probes.
func Sparkline(slots []Slot) string {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, s := range slots {
		if v := float64(s.Median); !math.IsNaN(v) {
			lo, hi = math.Min(lo, v), math.Max(hi, v)
		}
	}
	hi = math.Max(hi, lo*2)
	var b strings.Builder
	for _, s := range slots {
		switch v := float64(s.Median); {
		case s.Sent == 0:
			b.WriteByte(' ')
		case s.Lost >= s.Sent:
			b.WriteByte('x')
		case LossBurst.Bad(float64(s.Lost) / float64(s.Sent)):
			b.WriteByte('!')
		case math.IsNaN(v):
			b.WriteByte(' ')
		default:
			i := int((v - lo) / (hi - lo) * float64(len(bars)))
			b.WriteRune(bars[min(max(i, 0), len(bars)-1)])
		}
	}
	return b.String()
}

func clip(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}
