// Package scenario writes synthetic smokemon exporter data (what a fleet of
// nodes would have exposed, scrape by scrape) as OpenMetrics for promtool's
// backfill or as Prometheus text for VictoriaMetrics' import, and runs a real
// Prometheus on it. Tests and the analyzer bench share it.
package scenario

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Hop is one mtr hop's state at a moment.
type Hop struct {
	Loss float64
	RTT  float64
}

// Host is a node's host state at a moment; rates are per second.
type Host struct {
	CPUBusy                  float64 // 0-1
	PSICPU, PSIMemory, PSIIO float64 // waiting share 0-1
	MemUsed                  float64 // ratio
	OOMRate                  float64
	WifiSignal               float64 // dBm; NaN = no wifi
	WifiRetries, WifiRoams   float64
	Retrans                  float64
	ConntrackFill            float64
	RxBytes, TxBytes         float64 // eth0
	Throttled, UnderVoltage  bool
	Temp, TripPassive        float64
	Forks                    float64
	FSAvail, FSSize          float64 // bytes, "/" on /dev/mmcblk0p2
	Written                  float64 // bytes/s to mmcblk0
	EMMCUsed                 float64 // NaN = no eMMC
	BattEnergy, BattPower    float64 // NaN energy = no battery
	Discharging              bool
}

// BaseHost is a quiet, healthy Raspberry Pi-like node.
func BaseHost() Host {
	return Host{CPUBusy: 0.1, PSICPU: 0.01, PSIMemory: 0.001, PSIIO: 0.005, MemUsed: 0.4, WifiSignal: -55, WifiRetries: 5,
		Retrans: 2, ConntrackFill: 0.05, RxBytes: 50e3, TxBytes: 20e3, Temp: 55, TripPassive: 80, Forks: 5,
		FSAvail: 20e9, FSSize: 32e9, Written: 50e3, EMMCUsed: 0.1, BattEnergy: math.NaN()}
}

// Node describes one synthetic node. Functions take the sample time.
type Node struct {
	Name    string
	Targets []string // ping targets; "gateway" is marked as the gateway
	Start   time.Time
	Loss    func(target string, t time.Time) float64 // loss probability
	RTT     func(target string, t time.Time) float64 // seconds
	Host    func(t time.Time, h *Host)               // changes from BaseHost
	DNS     func(t time.Time) float64                // lookup seconds; nil = no DNS probe
	Bloat   func(t time.Time) float64                // latency increase seconds; nil = none
	MTR     func(target string, t time.Time) []Hop   // nil = no mtr
	Gaps    [][2]time.Time                           // exporter down: no samples, counters restart
	NoHost  bool
	// Interval overrides the scrape interval (long histories at a coarser step).
	Interval time.Duration
}

// Gen writes a fleet.
type Gen struct {
	End      time.Time
	Interval time.Duration // scrape interval
	Buckets  []float64     // ping histogram bounds (without +Inf)
	PingRate float64       // echo requests per second per target
	Format   string        // "openmetrics" (seconds, # EOF) or "prometheus" (milliseconds)
	Seed     uint64
}

func (g *Gen) defaults() {
	if g.Interval == 0 {
		g.Interval = 30 * time.Second
	}
	if g.Buckets == nil {
		g.Buckets = []float64{0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5}
	}
	if g.PingRate == 0 {
		g.PingRate = 1
	}
	if g.Format == "" {
		g.Format = "openmetrics"
	}
}

type family struct {
	name, typ string
	f         *os.File
	w         *bufio.Writer
}

type writer struct {
	g    *Gen
	dir  string
	fams map[string]*family
	ts   string
}

func (w *writer) fam(name, typ string) *family {
	f, ok := w.fams[name]
	if !ok {
		file, err := os.CreateTemp(w.dir, "fam-*")
		if err != nil {
			panic(err)
		}
		f = &family{name: name, typ: typ, f: file, w: bufio.NewWriterSize(file, 1<<16)}
		w.fams[name] = f
	}
	return f
}

// sample writes one sample line of family fam (series name = fam + suffix).
func (w *writer) sample(fam, typ, suffix, labels string, v float64) {
	f := w.fam(fam, typ)
	f.w.WriteString(fam)
	f.w.WriteString(suffix)
	f.w.WriteByte('{')
	f.w.WriteString(labels)
	f.w.WriteString("} ")
	f.w.WriteString(strconv.FormatFloat(v, 'g', -1, 64))
	f.w.WriteByte(' ')
	f.w.WriteString(w.ts)
	f.w.WriteByte('\n')
}

// counters accumulate per series; reset when the exporter restarts.
type counters map[string]float64

// Write writes nodes' data to out.
func (g *Gen) Write(out io.Writer, nodes []Node) error {
	g.defaults()
	dir, err := os.MkdirTemp("", "scenario-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	w := &writer{g: g, dir: dir, fams: map[string]*family{}}
	for i, n := range nodes {
		g.node(w, n, uint64(i))
	}
	bw := bufio.NewWriterSize(out, 1<<16)
	names := make([]string, 0, len(w.fams))
	for n := range w.fams {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		f := w.fams[n]
		if err := f.w.Flush(); err != nil {
			return err
		}
		if g.Format == "openmetrics" {
			fmt.Fprintf(bw, "# TYPE %s %s\n", strings.TrimSuffix(n, "_total"), f.typ)
		}
		if _, err := f.f.Seek(0, 0); err != nil {
			return err
		}
		if _, err := io.Copy(bw, f.f); err != nil {
			return err
		}
		f.f.Close()
	}
	if g.Format == "openmetrics" {
		bw.WriteString("# EOF\n")
	}
	return bw.Flush()
}

func (g *Gen) inGap(n Node, t time.Time) (gap, restarted bool) {
	for _, gp := range n.Gaps {
		if !t.Before(gp[0]) && t.Before(gp[1]) {
			return true, false
		}
	}
	return false, false
}

func lbl(kv ...string) string {
	var b strings.Builder
	for i := 0; i < len(kv); i += 2 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(kv[i])
		b.WriteString(`="`)
		b.WriteString(kv[i+1])
		b.WriteByte('"')
	}
	return b.String()
}

// scrape is one node's generator state: what every sample of a scrape needs.
type scrape struct {
	g    *Gen
	w    *writer
	rng  *rand.Rand
	c    counters
	base string  // the node's instance, job and node labels
	dt   float64 // seconds since the previous scrape
}

// inc adds d to the counter key and returns its new value.
func (s *scrape) inc(key string, d float64) float64 { s.c[key] += d; return s.c[key] }

// noise scatters v by a normal relative error of rel.
func (s *scrape) noise(v, rel float64) float64 { return v * (1 + rel*s.rng.NormFloat64()) }

func pos(v float64) float64 { return math.Max(0, v) }

func b2f(v bool) float64 {
	if v {
		return 1
	}
	return 0
}

func (g *Gen) node(w *writer, n Node, idx uint64) {
	iv := g.Interval
	if n.Interval > 0 {
		iv = n.Interval
	}
	s := &scrape{g: g, w: w, rng: rand.New(rand.NewPCG(g.Seed, idx+1)), c: counters{},
		base: lbl("instance", n.Name+":9917", "job", "smokemon", "node", n.Name), dt: iv.Seconds()}
	wasGap := false
	start := n.Start.Truncate(iv)
	for t := start; !t.After(g.End); t = t.Add(iv) {
		if gap, _ := g.inGap(n, t); gap {
			wasGap = true
			continue
		}
		if wasGap {
			clear(s.c) // the exporter restarted: counters begin again
			wasGap = false
		}
		if g.Format == "openmetrics" {
			w.ts = strconv.FormatFloat(float64(t.UnixMilli())/1000, 'f', -1, 64)
		} else {
			w.ts = strconv.FormatInt(t.UnixMilli(), 10)
		}
		for _, tg := range n.Targets {
			s.ping(n, tg, t)
			if n.MTR != nil {
				s.mtr(tg, n.MTR(tg, t))
			}
		}
		s.services(n, t)
		if n.NoHost {
			continue
		}
		h := BaseHost()
		if n.Host != nil {
			n.Host(t, &h)
		}
		s.cpu(h)
		s.network(h)
		s.board(h)
	}
}

// ping writes one target's ping counters and RTT histogram.
func (s *scrape) ping(n Node, tg string, t time.Time) {
	g, w, rng := s.g, s.w, s.rng
	tl := s.base + "," + lbl("family", "ip4", "target", tg)
	p, rtt := 0.0, 0.02
	if n.Loss != nil {
		p = n.Loss(tg, t)
	}
	if n.RTT != nil {
		rtt = n.RTT(tg, t)
	}
	sent := int(math.Round(g.PingRate * s.dt))
	lost := 0
	hist := make([]float64, len(g.Buckets)+1)
	sum := 0.0
	for range sent {
		if rng.Float64() < p {
			lost++
			continue
		}
		// Heavy-tailed: mostly within a few %, sometimes a lot slower.
		r := rtt * (1 + 0.03*math.Abs(rng.NormFloat64()))
		if rng.Float64() < 0.01 {
			r *= 3
		}
		sum += r
		for i, b := range g.Buckets {
			if r <= b {
				hist[i]++
			}
		}
		hist[len(g.Buckets)]++
	}
	w.sample("smokemon_ping_sent_total", "counter", "", tl, s.inc("sent"+tg, float64(sent)))
	w.sample("smokemon_ping_lost_total", "counter", "", tl, s.inc("lost"+tg, float64(lost)))
	w.sample("smokemon_ping_received_total", "counter", "", tl, s.inc("recv"+tg, float64(sent-lost)))
	for i, b := range g.Buckets {
		w.sample("smokemon_ping_rtt_seconds", "histogram", "_bucket", tl+","+lbl("le", strconv.FormatFloat(b, 'g', -1, 64)), s.inc(fmt.Sprint("b", tg, i), hist[i]))
	}
	w.sample("smokemon_ping_rtt_seconds", "histogram", "_bucket", tl+`,le="+Inf"`, s.inc("binf"+tg, hist[len(g.Buckets)]))
	w.sample("smokemon_ping_rtt_seconds", "histogram", "_count", tl, s.inc("cnt"+tg, hist[len(g.Buckets)]))
	w.sample("smokemon_ping_rtt_seconds", "histogram", "_sum", tl, s.inc("sum"+tg, sum))
	host := tg
	if tg == "gateway" {
		host = "gateway"
	}
	w.sample("smokemon_ping_target_info", "gauge", "", tl+","+lbl("host", host, "ip", "198.18.0.1"), 1)
}

// mtr writes one target's mtr hops.
func (s *scrape) mtr(tg string, hops []Hop) {
	w := s.w
	for i, h := range hops {
		hl := s.base + "," + lbl("family", "ip4", "hop", strconv.Itoa(i+1), "target", tg)
		sent := 10.0
		recv := 0.0
		for range int(sent) {
			if s.rng.Float64() >= h.Loss {
				recv++
			}
		}
		w.sample("smokemon_mtr_hop_sent_total", "counter", "", hl, s.inc(fmt.Sprint("ms", tg, i), sent))
		w.sample("smokemon_mtr_hop_received_total", "counter", "", hl, s.inc(fmt.Sprint("mr", tg, i), recv))
		w.sample("smokemon_mtr_hop_rtt_seconds_total", "counter", "", hl, s.inc(fmt.Sprint("mrtt", tg, i), recv*h.RTT*(1+0.02*s.rng.Float64())))
	}
	w.sample("smokemon_mtr_path_changes_total", "counter", "", s.base+","+lbl("family", "ip4", "target", tg), s.c["mpc"+tg])
}

// services writes the DNS probe and the bandwidth test, where the node has them.
func (s *scrape) services(n Node, t time.Time) {
	w := s.w
	if n.DNS != nil {
		d := n.DNS(t)
		dl := s.base + "," + lbl("resolver", "10.0.0.53", "target", "example.org")
		k := 2 * s.dt / 30 // lookups per scrape
		w.sample("smokemon_dns_lookup_duration_seconds", "histogram", "_count", dl, s.inc("dnsc", k))
		w.sample("smokemon_dns_lookup_duration_seconds", "histogram", "_sum", dl, s.inc("dnss", k*d*(1+0.05*s.rng.Float64())))
		w.sample("smokemon_dns_lookup_duration_seconds", "histogram", "_bucket", dl+`,le="+Inf"`, s.inc("dnsb", k))
	}
	if n.Bloat != nil {
		w.sample("smokemon_bandwidth_latency_increase_seconds", "gauge", "", s.base+","+lbl("direction", "upload", "percentile", "50", "target", "iperf"), n.Bloat(t))
	}
}

// cpu writes CPU time, pressure and memory.
func (s *scrape) cpu(h Host) {
	w, base, dt := s.w, s.base, s.dt
	cpus := 4.0
	busy := pos(s.noise(h.CPUBusy, 0.05)) * cpus * dt
	w.sample("smokemon_cpu_seconds_total", "counter", "", base+`,mode="user"`, s.inc("cu", busy*0.7))
	w.sample("smokemon_cpu_seconds_total", "counter", "", base+`,mode="system"`, s.inc("cs", busy*0.3))
	w.sample("smokemon_cpu_seconds_total", "counter", "", base+`,mode="idle"`, s.inc("ci", cpus*dt-busy))
	w.sample("smokemon_cpu_online", "gauge", "", base, cpus)
	w.sample("smokemon_cpu_forks_total", "counter", "", base, s.inc("fork", pos(s.noise(h.Forks, 0.1))*dt))
	for _, r := range []struct {
		n string
		v float64
	}{{"cpu", h.PSICPU}, {"memory", h.PSIMemory}, {"io", h.PSIIO}} {
		w.sample("smokemon_pressure_"+r.n+"_waiting_seconds_total", "counter", "", base, s.inc("psi"+r.n, pos(s.noise(r.v, 0.1))*dt))
	}
	total := 4e9
	w.sample("smokemon_memory_total_bytes", "gauge", "", base, total)
	w.sample("smokemon_memory_available_bytes", "gauge", "", base, total*(1-s.noise(h.MemUsed, 0.01)))
	w.sample("smokemon_memory_oom_kills_total", "counter", "", base, s.inc("oom", math.Round(h.OOMRate*dt)))
}

// network writes wifi, TCP, conntrack and interface traffic.
func (s *scrape) network(h Host) {
	w, base, dt := s.w, s.base, s.dt
	if !math.IsNaN(h.WifiSignal) {
		wl := base + `,interface="wlan0"`
		w.sample("smokemon_wifi_signal_dbm", "gauge", "", wl, math.Round(h.WifiSignal+s.rng.NormFloat64()))
		w.sample("smokemon_wifi_transmit_retries_total", "counter", "", wl, s.inc("wr", math.Round(pos(s.noise(h.WifiRetries, 0.1))*dt)))
		w.sample("smokemon_wifi_roams_total", "counter", "", wl, s.inc("roam", h.WifiRoams*dt))
	}
	w.sample("smokemon_netstat_tcp_retransmitted_segments_total", "counter", "", base, s.inc("rt", math.Round(pos(s.noise(h.Retrans, 0.1))*dt)))
	w.sample("smokemon_netstat_conntrack_entries_limit", "gauge", "", base, 65536)
	w.sample("smokemon_netstat_conntrack_entries", "gauge", "", base, math.Round(65536*math.Min(1, s.noise(h.ConntrackFill, 0.02))))
	el := base + `,device="eth0"`
	w.sample("smokemon_network_receive_bytes_total", "counter", "", el, s.inc("rx", math.Round(pos(s.noise(h.RxBytes, 0.1))*dt)))
	w.sample("smokemon_network_transmit_bytes_total", "counter", "", el, s.inc("tx", math.Round(pos(s.noise(h.TxBytes, 0.1))*dt)))
}

// board writes throttling, temperature, storage and battery.
func (s *scrape) board(h Host) {
	w, base := s.w, s.base
	for cond, v := range map[string]bool{"under_voltage": h.UnderVoltage, "frequency_capped": h.Throttled, "throttled": h.Throttled, "soft_temp_limit": false} {
		w.sample("smokemon_rpi_throttle_condition", "gauge", "", base+","+lbl("condition", cond, "when", "now"), b2f(v))
	}
	zl := base + `,type="cpu-thermal",zone="0"`
	w.sample("smokemon_thermal_zone_temperature_celsius", "gauge", "", zl, h.Temp+0.3*s.rng.NormFloat64())
	w.sample("smokemon_thermal_zone_trip_point_celsius", "gauge", "", zl+`,trip="0",trip_type="passive"`, h.TripPassive)
	fl := base + `,device="/dev/mmcblk0p2",fstype="ext4",mountpoint="/"`
	w.sample("smokemon_disk_filesystem_available_bytes", "gauge", "", fl, h.FSAvail)
	w.sample("smokemon_disk_filesystem_size_bytes", "gauge", "", fl, h.FSSize)
	w.sample("smokemon_disk_written_bytes_total", "counter", "", base+`,device="mmcblk0"`, s.inc("wb", h.Written*s.dt))
	if !math.IsNaN(h.EMMCUsed) {
		w.sample("smokemon_emmc_life_time_used_ratio", "gauge", "", base+`,device="mmcblk0",type="A"`, h.EMMCUsed)
	}
	if !math.IsNaN(h.BattEnergy) {
		sl := base + `,supply="BAT0"`
		w.sample("smokemon_power_supply_energy_joules", "gauge", "", sl, h.BattEnergy)
		w.sample("smokemon_power_supply_power_watts", "gauge", "", sl, h.BattPower)
		w.sample("smokemon_power_supply_status", "gauge", "", sl+`,status="Discharging"`, b2f(h.Discharging))
	}
}

// WriteFile writes the fleet to path.
func (g *Gen) WriteFile(path string, nodes []Node) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := g.Write(f, nodes); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
