package analyzer

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"
)

func TestSentence(t *testing.T) {
	t0 := time.Date(2026, 11, 21, 14, 2, 0, 0, time.UTC)
	cases := []struct {
		in   Incident
		want []string
	}{
		{Incident{Node: "pi-kitchen", Target: "1.1.1.1", Kind: KindPacketLoss, Start: t0, End: t0.Add(17 * time.Minute), Level: 0.04, OriginHop: 3,
			Blame: []Blame{{Signal: "wifi_signal", Before: -55, During: -78, Unit: "dBm", Score: 9}, {Signal: "wifi_retries", Before: 5, During: 30, Unit: "/s", Score: 6}}},
			[]string{"pi-kitchen lost 4% to 1.1.1.1 between 14:02 and 14:19", "hop 3", "wifi signal fell from -55 dBm to -78 dBm", "wifi retries rose from 5 /s to 30 /s", "likely wifi"}},
		{Incident{Node: "n", Target: "9.9.9.9", Kind: KindLatencySpike, Start: t0, Active: true, Before: 0.02, Level: 0.12,
			Blame: []Blame{{Signal: "cpu_busy", Before: 0.1, During: 0.95, Unit: "ratio"}}},
			[]string{"latency to 9.9.9.9 rise from 20 to 120 ms (median; peak 0 ms) since 14:02", "CPU use rose from 10% to 95%", "likely CPU load"}},
		{Incident{Node: "n", Kind: KindISPOutage, Start: t0, Active: true, NoLocalCause: true}, []string{"nothing beyond it", "ISP outage", "no local cause found — the problem is beyond the node"}},
		{Incident{Node: "n", Target: "dst", Kind: KindPacketLoss, Start: t0, Active: true, Level: 0.3, Peak: 0.35, OriginHop: 3, NoLocalCause: true},
			[]string{"lost 30% to dst since 14:02 (median; peak 35%)", "no local cause found — the problem is on the path (hop 3)"}},
		{Incident{Node: "n", Kind: KindBufferbloat, Start: t0, Active: true, Peak: 0.35,
			Blame: []Blame{{Signal: "network_transmit:eth0", Before: 2e4, During: 5e6, Unit: "B/s"}}},
			[]string{"+350 ms under load", "upload on eth0 rose 250× (20.0 kB/s to 5.0 MB/s)", "likely this node's own upload"}},
	}
	for _, c := range cases {
		got := Sentence(c.in, time.UTC)
		for _, w := range c.want {
			if !strings.Contains(got, w) {
				t.Errorf("%q lacks %q", got, w)
			}
		}
	}
}

func TestSparkline(t *testing.T) {
	cases := []struct {
		in    []float64
		width int
		want  string
	}{
		{[]float64{1, 2, 3, 4, 5, 6, 7, 8}, 8, "▁▂▃▄▅▆▇█"},
		{[]float64{1, 1, 1, 1}, 4, "▁▁▁▁"},
		{[]float64{1, nan, 8}, 3, "▁ █"},
		{nil, 10, ""},
	}
	for _, c := range cases {
		if got := Sparkline(c.in, c.width); got != c.want {
			t.Errorf("Sparkline(%v) = %q, want %q", c.in, got, c.want)
		}
	}
}

// JSON must carry no NaN (encoding/json refuses them) and keep the tags.
func TestJSONValue(t *testing.T) {
	v := JSONValue([]NodeSummary{{Node: "a", Health: "blind", WorstLoss: math.NaN(), MedianRTT: math.Inf(1), CPU: 0.5}})
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, w := range []string{`"worst_loss_ratio":null`, `"median_rtt_seconds":null`, `"cpu_busy_ratio":0.5`, `"node":"a"`} {
		if !strings.Contains(s, w) {
			t.Errorf("%s lacks %s", s, w)
		}
	}
	if strings.Contains(s, "Spark") {
		t.Errorf("%s: json:\"-\" field leaked", s)
	}
}
