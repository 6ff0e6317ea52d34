package status

import (
	"bytes"
	"encoding/json"
	"flag"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// testBounds are the exporter's status buckets: schema 2, 15µs to 16s.
var testBounds = func() []float64 {
	var b []float64
	for k := -64; k <= 16; k++ {
		b = append(b, math.Exp2(float64(k)/4))
	}
	return b
}()

// simTarget probes once a second: rtt draws an RTT (0: lost) at second s.
type simTarget struct {
	name, family string
	probed       bool
	rtt          func(r *rand.Rand, s int) float64
	sent, lost   uint64
	counts       []uint64
}

func (t *simTarget) step(r *rand.Rand, s0, n int) {
	if !t.probed {
		return
	}
	if t.counts == nil {
		t.counts = make([]uint64, len(testBounds))
	}
	for s := s0; s < s0+n; s++ {
		t.sent++
		v := t.rtt(r, s)
		if v == 0 {
			t.lost++
			continue
		}
		i := 0
		for i < len(testBounds)-1 && testBounds[i] < v {
			i++
		}
		t.counts[i]++
	}
}

type randT = rand.Rand

func newRand() *rand.Rand { return rand.New(rand.NewPCG(19, 1)) }

func (t *simTarget) sample() TargetSample {
	return TargetSample{Name: t.name, Family: t.family, Probed: t.probed,
		Sent: t.sent, Lost: t.lost, Bounds: testBounds, Counts: counts16(t.counts), Total: total(t.counts)}
}

func jitter(base, spread float64) func(*rand.Rand, int) float64 {
	return func(r *rand.Rand, _ int) float64 { return base + spread*r.ExpFloat64() }
}

var scenarioStart = time.Date(2026, 12, 3, 18, 0, 0, 0, time.UTC)

// scenario plays 16 minutes of a node: a clean gateway (both families), a
// target with a loss burst from minute 6 to 8 and a route change at 9, a far
// and jittery one losing 12% from minute 12 on, from hop 3 of its mtr path
// (hop 2 rate-limits its answers), one that goes down at minute 11, one that
// never resolves; the host heats past its trip point at minute 13, roams
// twice, weakens its wifi and gets busy at the end; a reload at minute 5.
func scenario(t testing.TB) (*Status, time.Time) {
	r := newRand()
	minute := func(s int) float64 { return float64(s) / 60 }
	targets := []*simTarget{
		{name: "gateway", family: "ip4", probed: true, rtt: jitter(0.0004, 0.0001)},
		{name: "gateway", family: "ip6", probed: true, rtt: jitter(0.0005, 0.0001)},
		{name: "cloudflare", family: "ip4", probed: true, rtt: func(r *rand.Rand, s int) float64 {
			if m := minute(s); m >= 6 && m < 8 && r.Float64() < 0.3 {
				return 0
			}
			return 0.012 + 0.002*r.ExpFloat64()
		}},
		{name: "far-away", family: "ip4", probed: true, rtt: func(r *rand.Rand, s int) float64 {
			if minute(s) >= 12 && r.Float64() < 0.12 {
				return 0
			}
			return 0.15 + 0.02*r.ExpFloat64()
		}},
		{name: "backup-link", family: "ip4", probed: true, rtt: func(r *rand.Rand, s int) float64 {
			if minute(s) >= 11 {
				return 0
			}
			return 0.03 + 0.005*r.ExpFloat64()
		}},
		{name: "nas.lan", family: "ip4", rtt: nil},
	}
	hops, farHops := make([]HopSample, 5), make([]HopSample, 7)
	var changes uint64
	st := New("pi-kitchen")
	now := scenarioStart
	for s := 0; s <= 16*60-10; s += 10 {
		now = scenarioStart.Add(time.Duration(s) * time.Second)
		var samples []TargetSample
		for _, tg := range targets {
			tg.step(r, s, 10)
			samples = append(samples, tg.sample())
		}
		st.ObservePing(now, samples)

		m := minute(s)
		if m >= 9 && len(hops) == 5 {
			hops = append(hops, HopSample{})
			changes++
		}
		far := make([]HopSample, 7)
		for k := range hops {
			hops[k].Addr = "198.18." + string(rune('0'+k)) + ".1"
			hops[k].Sent += 10
			hops[k].Received += 10
		}
		for k := range farHops {
			h := &farHops[k]
			h.Addr = "198.19." + string(rune('0'+k)) + ".1"
			loss := 0.0
			if k == 1 {
				loss = 0.5 // a router rate-limiting its ICMP answers
			}
			if k >= 2 && m >= 12 {
				loss = 0.2
			}
			h.Sent += 10
			h.Received += uint64(math.Round(10 * (1 - loss)))
			far[k] = *h
		}
		st.ObservePaths(now, []PathSample{
			{Name: "cloudflare", Family: "ip4", Hops: append([]HopSample(nil), hops...), Reached: true, Changes: changes},
			{Name: "far-away", Family: "ip4", Hops: far, Reached: true},
		})

		st.ObserveHost(now, scenarioHost(s))
		if s == 5*60 {
			st.AddEvent(Event{Time: now, Kind: EventReload, Text: "configuration reloaded: 6 ping targets"})
		}
	}
	return st, now
}

// scenarioHost is the host at second s of the scenario.
func scenarioHost(s int) HostSample {
	m := float64(s) / 60
	h := NoHost()
	busy := 0.2
	if m >= 14 {
		busy = 0.95
	}
	h.CPUTotal, h.CPUBusy = float64(4*s), busy*float64(4*s)
	h.MemAvailable, h.MemTotal = 2.2e9, 4e9
	h.PSICPU, h.PSIMem, h.PSIIO = 0.03*float64(s), 0, 0.01*float64(s)
	h.TempC, h.TripC = 60, 85
	if m >= 13 {
		h.TempC = 88
	}
	h.Throttled, h.UnderVoltage = 0, 0
	h.WifiIface, h.WifiSignal, h.WifiRoams = "wlan0", -68, 0
	if m >= 4 {
		h.WifiRoams = 1
	}
	if m >= 12 {
		h.WifiRoams = 2
	}
	if m >= 15 {
		h.WifiSignal = -79
	}
	h.Conntrack, h.ConntrackMax = 1000, 65536
	return h
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test -update rewrites it); got:\n%s", name, got)
	}
}

func TestTextGolden(t *testing.T) {
	st, now := scenario(t)
	var buf bytes.Buffer
	if err := Text(&buf, st.Report(now, TextEvents)); err != nil {
		t.Fatal(err)
	}
	for i, line := range strings.Split(buf.String(), "\n") {
		if n := utf8.RuneCountInString(line); n > Width {
			t.Errorf("line %d is %d columns: %q", i+1, n, line)
		}
	}
	golden(t, "scenario.txt", buf.Bytes())
}

func TestJSONGolden(t *testing.T) {
	st, now := scenario(t)
	b, err := json.MarshalIndent(st.Report(now, MaxEvents), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "scenario.json", append(b, '\n'))
}

// The page of the scenario renders whole: a row and a chart per target,
// loss bars, the mtr lines, host figures and every event.
func TestHTMLScenario(t *testing.T) {
	st, now := scenario(t)
	r := st.Report(now, MaxEvents)
	var buf bytes.Buffer
	if err := HTML(&buf, r, 10); err != nil {
		t.Fatal(err)
	}
	page := buf.String()
	for what, want := range map[string]int{
		`<tr class="target"`:         len(r.Targets),
		`<svg class="chart"`:         len(r.Targets),
		`<tr class="pathrow">`:       2,
		`<li class="bad"`:            4,
		`data-name=`:                 len(r.Host),
		`<meta http-equiv="refresh"`: 1,
	} {
		if n := strings.Count(page, what); n != want {
			t.Errorf("%d × %s, want %d", n, what, want)
		}
	}
	if n := strings.Count(page, `<rect class="loss"`); n < 10 {
		t.Errorf("%d loss bars", n)
	}
	for _, e := range r.Events {
		if !strings.Contains(page, "<td>"+e.Time.Format("15:04:05")+"</td><td>"+e.Kind+"</td>") {
			t.Errorf("event %s at %s missing", e.Kind, e.Time)
		}
	}
}

func counts16(c []uint64) []uint16 {
	out := make([]uint16, len(c))
	for i, v := range c {
		out[i] = uint16(v)
	}
	return out
}

func total(c []uint64) uint64 {
	var n uint64
	for _, v := range c {
		n += v
	}
	return n
}
